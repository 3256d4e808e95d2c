//! The JavaScript, Python and C guests serve the same endpoints as the Rust
//! guest through the real tarn and a real PostgreSQL. Each is built with its
//! own `build.sh`, which installs its toolchain from npm, PyPI or crates.io.

use tarn_tests::sample::{check_endpoints, guest};
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{rust_guest, unique_name};

async fn serve_and_check(wasm: &std::path::Path) {
    let app = unique_name("polyglot");
    let tarn = Tarn::start(Options {
        manifest: manifest(wasm, ""),
        runtime_config: String::new(),
        database_url: Some(format!(
            "postgres://postgres@127.0.0.1:5432/postgres?application_name={app}"
        )),
        args: vec![],
        env: vec![],
    });
    check_endpoints(tarn.port, wasm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_guest_serves_the_sample_app() {
    serve_and_check(rust_guest()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_guest_serves_the_sample_app() {
    serve_and_check(&guest("js")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_guest_serves_the_sample_app() {
    serve_and_check(&guest("python")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_guest_serves_the_sample_app() {
    serve_and_check(&guest("c")).await;
}
