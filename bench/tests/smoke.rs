//! The benchmark suite's smoke run as a test (debug build, a few hundred requests against the
//! machine's PostgreSQL), so `cargo test --workspace` keeps the benchmark code working.

use std::path::PathBuf;

use tarn_bench::server::Binaries;
use tarn_bench::smoke;

#[test]
fn smoke_run_passes() {
    let binaries = Binaries {
        tarn: tarn_tests::tarn_binary().to_path_buf(),
        bench: PathBuf::from(env!("CARGO_BIN_EXE_tarn-bench")),
        guest: tarn_tests::rust_guest().to_path_buf(),
    };
    let work = tarn_tests::TempDir::new("bench-smoke");
    let config = smoke::config(
        binaries,
        tarn_tests::tarn::shared_cache(),
        work.path().to_path_buf(),
        smoke::DEFAULT_DATABASE_URL.into(),
    );
    let report = smoke::run(&config).unwrap_or_else(|e| panic!("smoke run failed: {e:#}"));
    tarn_bench::suite::write(&report, &work.path().join("smoke.json")).expect("write the report");
}
