//! Resident memory of a server: idle, and with many requests in flight at once (each a
//! `SELECT pg_sleep(..)`, so with 15 connections nearly all of them wait for one, and for
//! tarn each holds a live guest instance meanwhile).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::server::Server;

/// What one server's memory did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryResult {
    /// The target's name.
    pub target: String,
    /// `VmRSS` after start-up and one warm request, in KiB.
    pub idle_kib: u64,
    /// Requests sent at once.
    pub in_flight: usize,
    /// Largest `VmRSS` seen while they ran (sampled every 5 ms), in KiB.
    pub peak_kib: u64,
    /// `VmHWM` afterwards, in KiB.
    pub high_water_kib: u64,
    /// Requests answered 200.
    pub ok: usize,
    /// Seconds until the last answer.
    pub seconds: f64,
}

/// Sends `n` slow queries at once to `server` and watches its memory.
pub async fn measure(
    server: &Server,
    target: &str,
    n: usize,
    sleep: Duration,
) -> Result<MemoryResult> {
    let body = Bytes::from(format!(
        r#"{{"sql":"SELECT pg_sleep({})"}}"#,
        sleep.as_secs_f64()
    ));
    // One warm request, then the idle reading.
    send_all(server.addr, 1, body.clone()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (idle_kib, _) = server.rss_kib()?;
    let started = Instant::now();
    let burst = tokio::spawn(send_all(server.addr, n, body));
    let mut peak_kib = idle_kib;
    while !burst.is_finished() {
        peak_kib = peak_kib.max(server.rss_kib()?.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ok = burst.await??;
    let seconds = started.elapsed().as_secs_f64();
    let (_, high_water_kib) = server.rss_kib()?;
    Ok(MemoryResult {
        target: target.into(),
        idle_kib,
        in_flight: n,
        peak_kib,
        high_water_kib,
        ok,
        seconds,
    })
}

/// Opens `n` connections, then sends one `POST /query` on each at once; returns how many got 200.
async fn send_all(addr: SocketAddr, n: usize, body: Bytes) -> Result<usize> {
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .context("connect")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        senders.push(sender);
    }
    let requests = senders.into_iter().map(|mut sender| {
        let body = body.clone();
        async move {
            let req = hyper::Request::post("/query")
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))?;
            let res = sender.send_request(req).await?;
            let status = res.status();
            res.into_body().collect().await?;
            Ok::<bool, anyhow::Error>(status == 200)
        }
    });
    let answers = futures::future::join_all(requests).await;
    Ok(answers
        .into_iter()
        .filter(|a| matches!(a, Ok(true)))
        .count())
}
