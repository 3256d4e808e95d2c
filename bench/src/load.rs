//! The load generator: a closed-loop HTTP/1.1 client on hyper. `concurrency` keep-alive
//! connections each send one request, wait for the whole answer, and send the next, for a
//! warm-up and then a measured period (both bounded in time and in requests). Only requests
//! that start and finish inside the measured period count.
//!
//! It runs on the caller's (current-thread) Tokio runtime, so it uses at most one core, the
//! same for every target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::latency::Summary;
use crate::workload::Workload;

/// A request that takes longer than this counts as an error (and its connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server (loopback).
    pub addr: SocketAddr,
    /// What to send.
    pub workload: Workload,
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Unmeasured time first (connections open, caches and pools warm up).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Stop early after this many measured requests.
    pub max_requests: u64,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests answered with the expected status in the measured period.
    pub ok: u64,
    /// Requests answered with another status, or failed (connection error, timeout).
    pub errors: u64,
    /// Measured wall-clock time.
    pub seconds: f64,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency of the successful requests.
    pub latency: Summary,
    /// The first failure, if any (status and body excerpt, or the connection error).
    pub first_error: Option<String>,
    /// Requests completed in all, warm-up included.
    pub total: u64,
    /// The server process's CPU time per completed request (set by the suite).
    #[serde(default)]
    pub server_cpu_us: Option<f64>,
    /// PostgreSQL's CPU time per completed request, all backends (set by the suite when it
    /// runs its own cluster).
    #[serde(default)]
    pub postgres_cpu_us: Option<f64>,
}

struct Shared {
    spec: LoadSpec,
    next: AtomicU64,
    measured: AtomicU64,
    measure_from: Instant,
    end: Instant,
}

/// What one connection's loop recorded.
#[derive(Default)]
struct Recorded {
    latencies: Vec<Duration>,
    total: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `spec` to completion.
pub async fn run(spec: LoadSpec) -> Result<LoadResult> {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let shared = Arc::new(Shared {
        end: measure_from + spec.duration,
        measure_from,
        next: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        spec,
    });
    let mut tasks = Vec::with_capacity(shared.spec.concurrency);
    for _ in 0..shared.spec.concurrency {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move { connection_loop(&shared).await }));
    }
    let mut all = Recorded::default();
    for task in tasks {
        let rec = task.await.context("load task")?;
        all.latencies.extend(rec.latencies);
        all.errors += rec.errors;
        all.total += rec.total;
        all.first_error = all.first_error.or(rec.first_error);
    }
    let measured_end = Instant::now().min(shared.end);
    let seconds = measured_end
        .saturating_duration_since(shared.measure_from)
        .as_secs_f64();
    let ok = all.latencies.len() as u64;
    Ok(LoadResult {
        ok,
        errors: all.errors,
        seconds,
        rps: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        latency: Summary::of(&mut all.latencies),
        first_error: all.first_error,
        total: all.total,
        server_cpu_us: None,
        postgres_cpu_us: None,
    })
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection_loop(shared: &Shared) -> Recorded {
    let spec = &shared.spec;
    let mut rec = Recorded::default();
    let mut sender = None;
    let host = spec.addr.to_string();
    loop {
        let started = Instant::now();
        if started >= shared.end || shared.measured.load(Ordering::Relaxed) >= spec.max_requests {
            return rec;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let outcome =
            tokio::time::timeout(REQUEST_TIMEOUT, one_request(&mut sender, spec, &host, n)).await;
        let finished = Instant::now();
        rec.total += 1;
        let counted = started >= shared.measure_from && finished <= shared.end;
        match outcome {
            Ok(Ok(())) => {
                if counted {
                    shared.measured.fetch_add(1, Ordering::Relaxed);
                    rec.latencies.push(finished - started);
                }
            }
            other => {
                sender = None;
                let why = match other {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => format!("no answer within {REQUEST_TIMEOUT:?}"),
                };
                rec.errors += u64::from(counted);
                rec.first_error.get_or_insert(why);
                // Do not spin on a refusing server.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Sends request `n`, reusing the connection when it is still open, and reads the whole
/// answer; fails unless it has the workload's expected status.
async fn one_request(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    spec: &LoadSpec,
    host: &str,
    n: u64,
) -> Result<()> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(spec.addr).await?);
    }
    let Some(s) = sender.as_mut() else {
        unreachable!("just connected")
    };
    s.ready().await?;
    let w = spec.workload;
    let req = hyper::Request::builder()
        .method(w.method())
        .uri(w.path())
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(w.body(n)))?;
    let res = s.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    if status != w.expected_status() {
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        anyhow::bail!("status {status}: {excerpt}");
    }
    Ok(())
}
