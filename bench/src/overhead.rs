//! Per-request Wasm overhead: tarn's own runtime, in process, running `GET /health` through
//! the Rust guest sequentially: store + instantiate + call + drop, everything
//! `Runtime::invoke` does for a request except HTTP and the database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tarn::bindings::exports::tarn::postgres::handler::Request;
use tarn::config::RuntimeSettings;
use tarn::database::Databases;
use tarn::runtime::{ComponentConfig, GuestLimits, Runtime};

use crate::latency::Summary;

/// What the overhead measurement found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overhead {
    /// Per call (sequential, warm).
    pub per_request: Summary,
    /// The same calls, 2 at a time (one per core): the cost under concurrency.
    pub per_request_2_parallel: Summary,
    /// Calls per second with 2 in parallel.
    pub calls_per_second_2_parallel: f64,
}

fn health_request() -> Request {
    Request {
        method: "GET".into(),
        path: "/health".into(),
        query: String::new(),
        headers: vec![("host".into(), "127.0.0.1".into())],
        body: Vec::new(),
    }
}

/// Loads `guest` into a fresh runtime (cache in `cache_dir`) and times `calls` invocations
/// after `calls / 10` warm-up ones, first one at a time and then two at a time.
pub fn measure(guest: &Path, cache_dir: &Path, calls: usize) -> Result<Overhead> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let settings = RuntimeSettings {
            cache_dir: cache_dir.to_path_buf(),
            ..RuntimeSettings::default()
        };
        let limits = GuestLimits::defaults(&settings);
        let mut runtime = Runtime::new(&settings, Databases::default(), limits.memory_bytes)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        runtime
            .load(&ComponentConfig {
                id: "sample".into(),
                source: guest.to_path_buf(),
                environment: Vec::new(),
                databases: Vec::new(),
                limits,
            })
            .context("load the guest")?;
        let runtime = std::sync::Arc::new(runtime);
        let call = |runtime: std::sync::Arc<Runtime>, n: usize| async move {
            let mut times = Vec::with_capacity(n);
            for i in 0..n {
                let started = Instant::now();
                let response = runtime.invoke("sample", i as u64, health_request()).await?;
                times.push(started.elapsed());
                anyhow::ensure!(response.status == 200, "status {}", response.status);
            }
            Ok::<Vec<Duration>, anyhow::Error>(times)
        };
        call(runtime.clone(), calls / 10).await?;
        let mut sequential = call(runtime.clone(), calls).await?;
        let started = Instant::now();
        let (a, b) = tokio::join!(
            tokio::spawn(call(runtime.clone(), calls / 2)),
            tokio::spawn(call(runtime.clone(), calls / 2))
        );
        let elapsed = started.elapsed();
        let mut parallel = a??;
        parallel.extend(b??);
        Ok(Overhead {
            per_request: Summary::of(&mut sequential),
            calls_per_second_2_parallel: parallel.len() as f64 / elapsed.as_secs_f64(),
            per_request_2_parallel: Summary::of(&mut parallel),
        })
    })
}
