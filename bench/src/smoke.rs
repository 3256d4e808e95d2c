//! The smoke run: every part of the suite, a few hundred requests in all, against the
//! machine's PostgreSQL; it fails if any target answers wrongly. Seconds, not minutes: it
//! keeps the benchmark code from rotting (CI runs it as a test), it measures nothing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::baseline::Strategy;
use crate::report::Report;
use crate::server::Binaries;
use crate::suite::{self, SuiteConfig, TarnVariant};
use crate::workload::Workload;

/// The smoke run's database unless told otherwise (created on the machine's server if missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tarn_bench";

/// The smoke configuration.
pub fn config(
    binaries: Binaries,
    cache_dir: PathBuf,
    work_dir: PathBuf,
    database_url: String,
) -> SuiteConfig {
    SuiteConfig {
        binaries,
        cache_dir,
        work_dir,
        database_url: Some(database_url),
        db_delay: Duration::ZERO,
        db_scram: false,
        tarn_variants: vec![TarnVariant::defaults()],
        workloads: Workload::ALL.to_vec(),
        baselines: Strategy::ALL.to_vec(),
        concurrencies: vec![1, 4],
        warmup: Duration::from_millis(50),
        duration: Duration::from_secs(1),
        max_requests: 12,
        repeats: 1,
        in_flight: 20,
        overhead_calls: 50,
        checkout_pairs: 100,
        checkout_rounds: 10,
        cold_starts: 1,
        cold_without_cache: false,
    }
}

/// Runs the smoke configuration and checks that every part produced sane numbers.
pub fn run(config: &SuiteConfig) -> Result<Report> {
    let report = suite::run(config)?;
    for point in &report.http {
        for run in &point.runs {
            ensure!(
                run.errors == 0 && run.ok > 0,
                "{} against {} at c={}: {} ok, {} errors (first: {:?})",
                point.workload,
                point.target,
                point.concurrency,
                run.ok,
                run.errors,
                run.first_error
            );
        }
    }
    ensure!(
        report
            .overhead
            .as_ref()
            .is_some_and(|o| o.per_request.count > 0),
        "no overhead measured"
    );
    ensure!(
        report.checkout.len() == 3,
        "checkout measured {} pools",
        report.checkout.len()
    );
    ensure!(!report.cold_start.is_empty(), "no cold start measured");
    for m in &report.memory {
        ensure!(
            m.ok == m.in_flight,
            "{}: {} of {} in-flight requests answered",
            m.target,
            m.ok,
            m.in_flight
        );
    }
    ensure!(
        !report.goals.is_empty() && !report.markdown().is_empty(),
        "empty report"
    );
    Ok(report)
}
