//! Load beyond capacity: the seed's burst scenario, a bounded admission
//! queue under a much larger burst, and a noisy neighbour held to its
//! per-component connection quota.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tarn_tests::faults::Database;
use tarn_tests::hostile;
use tarn_tests::invariants::{Sampler, assert_bounds, assert_secret_kept, pool_gauges};
use tarn_tests::load::{Load, Report, Request};
use tarn_tests::tarn::{Component, Options, Tarn, manifest, manifest_of, rss_kib};
use tarn_tests::{TempDir, figures, rust_guest, unique_name};

fn start_tarn(manifest: String, url: String, config: &str) -> Tarn {
    Tarn::start(Options {
        manifest,
        runtime_config: config.to_string(),
        database_url: Some(url),
        args: vec![],
        env: vec![],
    })
}

/// Every request that was not served must be a 503 with `Retry-After`.
fn assert_refusals_retryable(report: &Report) {
    for s in report.unserved() {
        assert_eq!(s.status(), Some(503), "not a clean refusal: {s:?}");
        assert!(
            matches!(
                &s.outcome,
                tarn_tests::load::Outcome::Status {
                    retry_after: Some(_),
                    ..
                }
            ),
            "503 without Retry-After: {s:?}"
        );
    }
}

/// Bar (the seed's scenario 4): 100 simultaneous requests running 2 s
/// queries against a pool of 5 + 10 never open more than 15 server
/// connections; every request is either served or refused with 503 +
/// `Retry-After` within `pool_timeout` (1 s here, plus slack); the pool
/// shrinks back to 5.
#[tokio::test(flavor = "multi_thread")]
async fn burst_beyond_capacity() {
    let db = Database::start().await;
    let app = unique_name("burst");
    let config = "[database.default]\npool_size = 5\nmax_overflow = 10\npool_timeout = 1\n";
    let tarn = start_tarn(manifest(rust_guest(), ""), db.url(&app), config);
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(25));
    let burst = Load::new(tarn.port, 100, 100, Request::query("select pg_sleep(2)"))
        .run()
        .await;
    let samples = sampler.stop().await;
    let settled = db.settle(&tarn, &app, 5).await;
    let slowest_refusal = burst
        .unserved()
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    figures(
        "burst beyond capacity (100 x 2 s, pool 5 + 10)",
        &format!(
            "{}; slowest refusal {slowest_refusal:?}; max server connections {}; settled at {}",
            burst.summary(),
            samples.max_connections,
            settled.pool.total
        ),
    );
    assert_eq!(burst.hung(), 0, "{}", burst.summary());
    assert!(
        burst.served() >= 15,
        "the 15 connections should serve: {}",
        burst.summary()
    );
    assert_refusals_retryable(&burst);
    assert!(
        slowest_refusal <= Duration::from_millis(2500),
        "refusals should come within pool_timeout: {slowest_refusal:?}"
    );
    for s in burst.samples.iter().filter(|s| s.served()) {
        assert!(
            s.latency >= Duration::from_secs(2),
            "served too fast for a 2 s query: {s:?}"
        );
    }
    assert_bounds(&samples, 15);
    assert_secret_kept(&tarn, &[&burst]);
}

/// Bar: under a burst far beyond capacity (400 simultaneous requests, a
/// pool of 2 + 1, `max_waiting = 5`), at
/// most 5 callers ever wait for a connection, every caller beyond that is
/// refused without waiting (503 + `Retry-After`, `waited_ms` 0), and
/// tarn's memory stays bounded (< 256 MiB growth).
#[tokio::test(flavor = "multi_thread")]
async fn admission_queue_is_bounded() {
    let db = Database::start().await;
    let app = unique_name("admission");
    let config =
        "[database.default]\npool_size = 2\nmax_overflow = 1\npool_timeout = 2\nmax_waiting = 5\n";
    let tarn = start_tarn(manifest(rust_guest(), ""), db.url(&app), config);
    let warm = Load::new(tarn.port, 20, 4, Request::query("select 1 as one"))
        .run()
        .await;
    assert_eq!(warm.served(), 20, "{}", warm.summary());
    let rss_before = tarn.rss_kib();

    let max_waiting = Arc::new(AtomicI64::new(0));
    let max_rss = Arc::new(AtomicU64::new(rss_before));
    let watching = {
        let (admin, pid) = (tarn.admin_port, tarn.pid());
        let (max_waiting, max_rss) = (max_waiting.clone(), max_rss.clone());
        tokio::spawn(async move {
            for _ in 0..100 {
                let gauges = pool_gauges(admin, "default").await;
                max_waiting.fetch_max(gauges.waiting, Ordering::Relaxed);
                if let Some(rss) = rss_kib(pid) {
                    max_rss.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let burst = Load::new(tarn.port, 400, 400, Request::query("select pg_sleep(1.5)"))
        .run()
        .await;
    watching.await.expect("watcher");
    let settled = db.settle(&tarn, &app, 2).await;
    let rss_after = tarn.rss_kib();
    // Refusals by layer: the HTTP admission limit, the pool's full wait
    // queue (turned away without waiting), and waiters that timed out.
    let at_http = burst
        .unserved()
        .filter(|s| s.text.contains("concurrent requests"))
        .count();
    let queue_full: Vec<_> = burst
        .unserved()
        .filter(|s| s.text.contains("\"waited_ms\":0"))
        .collect();
    let timed_out = burst.failed() - at_http - queue_full.len();
    let slowest_queue_full = queue_full
        .iter()
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let max_waiting = max_waiting.load(Ordering::Relaxed);
    let peak = max_rss.load(Ordering::Relaxed);
    figures(
        "admission queue bounded (400 at once, pool 2 + 1, max_waiting 5)",
        &format!(
            "{}; refused by the HTTP limit {at_http}, by the full wait queue {} (slowest {slowest_queue_full:?}), \
             after waiting pool_timeout {timed_out}; most callers seen waiting: {max_waiting}; \
             RSS {} MiB before, {} MiB peak, {} MiB after; settled at {}",
            burst.summary(),
            queue_full.len(),
            rss_before >> 10,
            peak >> 10,
            rss_after >> 10,
            settled.pool.total
        ),
    );
    assert_eq!(burst.hung(), 0, "{}", burst.summary());
    assert!(burst.served() >= 3, "{}", burst.summary());
    assert_refusals_retryable(&burst);
    assert!(
        max_waiting <= 5,
        "{max_waiting} callers waited; max_waiting is 5"
    );
    // Each of the 5 wait slots can see at most one full pool_timeout (2 s)
    // pass per 2 s of burst.
    let most_timeouts = 5 * (burst.elapsed.as_secs() as usize / 2 + 1);
    assert!(
        timed_out <= most_timeouts,
        "{timed_out} callers waited the full pool_timeout; at most {most_timeouts} can with max_waiting = 5"
    );
    // They did not wait (waited_ms 0); even at the back of a 400-request
    // burst on a busy machine they are answered within seconds.
    assert!(
        slowest_queue_full < Duration::from_secs(4),
        "a queue-full refusal took {slowest_queue_full:?}"
    );
    assert!(
        peak.saturating_sub(rss_before) < 256 << 10,
        "memory grew by {} MiB under the burst",
        peak.saturating_sub(rss_before) >> 10
    );
    assert_secret_kept(&tarn, &[&burst]);
}

/// Bar: a component running slow queries (1 s each, 10 at once) holds at
/// most its quota (`max_connections = 2`) of the shared pool (4 + 2), so
/// another component on the same pool keeps being served, its p99 latency
/// within 500 ms.
#[tokio::test(flavor = "multi_thread")]
async fn noisy_neighbour_is_held_to_its_quota() {
    let db = Database::start().await;
    let app = unique_name("noisy");
    let dir = TempDir::new("noisy-wat");
    let noisy = dir.path().join("noisy.wat");
    std::fs::write(&noisy, hostile::execute("select pg_sleep(1)")).expect("write wat");
    let manifest = manifest_of(&[
        Component {
            id: "noisy",
            route: "/noisy/...",
            source: &noisy,
            limits: "max_connections = 2",
            environment: "",
        },
        Component {
            id: "quiet",
            route: "/...",
            source: rust_guest(),
            limits: "",
            environment: "",
        },
    ]);
    let config = "[database.default]\npool_size = 4\nmax_overflow = 2\npool_timeout = 1\n";
    let tarn = start_tarn(manifest, db.url(&app), config);
    let baseline = Load {
        pause: Duration::from_millis(20),
        ..Load::new(tarn.port, 40, 2, Request::query("select 1 as one"))
    }
    .run()
    .await;

    let observer = db.observer().await;
    let noise = tokio::spawn(
        Load {
            budget: Duration::from_secs(4),
            ..Load::new(tarn.port, 1000, 10, Request::get("/noisy/x"))
        }
        .run(),
    );
    let quiet = tokio::spawn(
        Load {
            pause: Duration::from_millis(20),
            budget: Duration::from_secs(4),
            ..Load::new(tarn.port, 1000, 2, Request::query("select 1 as one"))
        }
        .run(),
    );
    let mut most_sleeping = 0i64;
    while !quiet.is_finished() {
        let sleeping: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND state = 'active' AND query LIKE 'select pg_sleep%'",
                &[&app],
            )
            .await
            .expect("count sleeping")
            .get(0);
        most_sleeping = most_sleeping.max(sleeping);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let quiet = quiet.await.expect("quiet load");
    let noise = noise.await.expect("noisy load");
    let settled = db.settle(&tarn, &app, 4).await;
    figures(
        "noisy neighbour (quota 2 of pool 4 + 2)",
        &format!(
            "quiet alone: {}; noisy: {}; quiet meanwhile: {}; most noisy statements running at once: \
             {most_sleeping}; settled at {}",
            baseline.summary(),
            noise.summary(),
            quiet.summary(),
            settled.pool.total
        ),
    );
    assert!(
        most_sleeping <= 2,
        "the noisy component held {most_sleeping} connections; its quota is 2"
    );
    assert!(most_sleeping >= 1, "the noisy component never ran");
    assert_eq!(
        quiet.served(),
        quiet.sent(),
        "the quiet component suffered: {}",
        quiet.summary()
    );
    assert!(
        quiet.latency_percentile(0.99) <= Duration::from_millis(500),
        "the quiet component's latency suffered: {}",
        quiet.summary()
    );
    assert_secret_kept(&tarn, &[&baseline, &quiet, &noise]);
}
