//! Network faults between tarn and PostgreSQL, staged by the TCP fault proxy
//! (`tarn_tests::proxy`) in front of a throwaway cluster: a half-open peer
//! (stall), added latency, resets, and refused connections.

use std::time::Duration;

use tarn_tests::faults::{Database, time_until};
use tarn_tests::invariants::{Sampler, assert_bounds, assert_secret_kept, settle};
use tarn_tests::load::{Load, Request};
use tarn_tests::proxy::{Fault, Proxy};
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{figures, rust_guest, unique_name};

/// tarn's settings for these scenarios: 2 + 2 connections, 1 s pool and
/// connect timeouts, a 4 s request deadline.
const CONFIG: &str = "[database.default]\npool_size = 2\nmax_overflow = 2\npool_timeout = 1\nconnect_timeout = 1\n\
                      [runtime]\nrequest_timeout_ms = 4000\n";

/// The request deadline in `CONFIG`, plus the runtime's 100 ms grace and
/// scheduling slack: no request may take longer.
const BOUND: Duration = Duration::from_millis(5000);

/// A cluster, a proxy in front of it, and tarn connected through the proxy.
async fn setup(label: &str) -> (Database, Proxy, Tarn, String) {
    let db = Database::start().await;
    let proxy = Proxy::start(db.port()).await;
    let app = unique_name(label);
    let tarn = Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config: CONFIG.to_string(),
        database_url: Some(db.url_via(proxy.port(), &app)),
        args: vec![],
        env: vec![],
    });
    (db, proxy, tarn, app)
}

fn select_one(port: u16, requests: usize, concurrency: usize) -> Load {
    Load {
        deadline: Duration::from_secs(10),
        ..Load::new(
            port,
            requests,
            concurrency,
            Request::query("select 1 as one"),
        )
    }
}

/// Bar: while the network stalls (a half-open peer), every request — the
/// one whose statement was in flight and the ones that need a checkout —
/// ends with an error within the configured timeouts (request deadline
/// 4 s), none hangs; once the network heals, service is whole again within
/// 5 s (connections that lived through the stall are dead and replaced).
#[tokio::test(flavor = "multi_thread")]
async fn half_open_network_fails_fast_and_recovers() {
    let (db, proxy, tarn, app) = setup("stall").await;
    let warm = select_one(tarn.port, 10, 2).run().await;
    assert_eq!(warm.served(), 10, "{}", warm.summary());
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));

    let in_flight = tokio::spawn(
        Load {
            deadline: Duration::from_secs(10),
            ..Load::new(tarn.port, 1, 1, Request::query("select pg_sleep(1)"))
        }
        .run(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(Fault::Stall);
    // Idle connections now need a pre-ping (idle > 1 s) before use.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stalled = select_one(tarn.port, 9, 3).run().await;
    let in_flight = in_flight.await.expect("in-flight request");

    proxy.heal();
    let port = tarn.port;
    let recovered = time_until(Duration::from_secs(15), move || async move {
        select_one(port, 1, 1).run().await.served() == 1
    })
    .await;
    let healed = select_one(tarn.port, 20, 2).run().await;
    let samples = sampler.stop().await;
    let settled = settle(
        &tarn,
        &db.observer_url(),
        &app,
        Some(2),
        Duration::from_secs(15),
    )
    .await;
    // Half-open connections tarn gave up on must be closed, not leaked.
    let total = settled.pool.total;
    let proxy_settled = time_until(Duration::from_secs(5), || {
        let proxy = &proxy;
        async move { proxy.open_connections() as i64 == total }
    })
    .await;
    let through_proxy = proxy.open_connections();
    figures(
        "half-open network (stall)",
        &format!(
            "statement in flight at the stall: {}; during the stall: {}; whole again {recovered:?} \
             after healing; then {}; max server connections {}; settled at {} after {:?}, \
             {through_proxy} connections open through the proxy",
            in_flight.summary(),
            stalled.summary(),
            healed.summary(),
            samples.max_connections,
            settled.pool.total,
            settled.after
        ),
    );
    assert!(
        proxy_settled.is_some(),
        "{through_proxy} connections open through the proxy, the pool has {total}"
    );
    for report in [&in_flight, &stalled] {
        assert_eq!(report.hung(), 0, "hung: {}", report.summary());
        assert_eq!(
            report.served(),
            0,
            "served through a stalled network?: {}",
            report.summary()
        );
        assert!(
            report.max_latency() <= BOUND,
            "slower than the deadline: {}",
            report.summary()
        );
        for s in &report.samples {
            assert!(
                matches!(s.status(), Some(503 | 504)),
                "expected 503/504: {s:?}"
            );
        }
    }
    let recovered = recovered.expect("no recovery within 15 s of healing");
    assert!(
        recovered <= Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    assert_eq!(healed.served(), healed.sent(), "{}", healed.summary());
    assert_bounds(&samples, 4);
    assert_secret_kept(&tarn, &[&in_flight, &stalled, &healed]);
}

/// Bar: added latency slows requests down but fails none; resetting every
/// connection while idle costs clients nothing (dead connections are
/// discarded at checkout); refused new connections leave the pool's open
/// connections serving and fail only the requests that need a new one,
/// fast and clearly; after healing, everything is served.
#[tokio::test(flavor = "multi_thread")]
async fn latency_resets_and_refusals() {
    let (db, proxy, tarn, app) = setup("netfaults").await;
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));
    let baseline = select_one(tarn.port, 10, 1).run().await;

    proxy.set(Fault::Latency(Duration::from_millis(50)));
    let slow = select_one(tarn.port, 10, 2).run().await;

    proxy.set(Fault::Reset);
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.heal();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_reset = select_one(tarn.port, 20, 2).run().await;

    // Both pool connections idle (their resets done) before the refusal.
    settle(
        &tarn,
        &db.observer_url(),
        &app,
        Some(2),
        Duration::from_secs(5),
    )
    .await;
    proxy.set(Fault::Refuse);
    let on_open = select_one(tarn.port, 10, 1).run().await;
    let refused = Load::new(tarn.port, 4, 4, Request::query("select pg_sleep(0.5)"))
        .run()
        .await;
    proxy.heal();
    let healed = Load::new(tarn.port, 4, 4, Request::query("select pg_sleep(0.5)"))
        .run()
        .await;
    let samples = sampler.stop().await;
    let settled = db.settle(&tarn, &app, 2).await;
    figures(
        "network latency / reset / refusal",
        &format!(
            "baseline: {}; +50 ms per chunk: {}; after resetting every connection: {}; refusing new \
             connections, sequential: {}; refusing, burst of 4 slow queries: {}; healed, burst: {}; \
             max server connections {}; settled at {}",
            baseline.summary(),
            slow.summary(),
            after_reset.summary(),
            on_open.summary(),
            refused.summary(),
            healed.summary(),
            samples.max_connections,
            settled.pool.total
        ),
    );
    assert_eq!(slow.served(), slow.sent(), "{}", slow.summary());
    assert!(
        slow.latency_percentile(0.5) >= Duration::from_millis(100),
        "the latency fault did not slow anything down: {}",
        slow.summary()
    );
    assert_eq!(
        after_reset.served(),
        after_reset.sent(),
        "{}",
        after_reset.summary()
    );
    assert_eq!(on_open.served(), on_open.sent(), "{}", on_open.summary());
    assert_eq!(
        refused.served(),
        2,
        "the 2 open connections should serve: {}",
        refused.summary()
    );
    for s in refused.unserved() {
        assert_eq!(s.status(), Some(503), "{s:?}");
        assert!(
            s.text.contains("refused"),
            "the error does not name the cause: {}",
            s.text
        );
        assert!(
            s.latency < Duration::from_secs(1),
            "refusal took {:?}",
            s.latency
        );
    }
    assert_eq!(healed.served(), healed.sent(), "{}", healed.summary());
    assert_bounds(&samples, 4);
    assert_secret_kept(
        &tarn,
        &[&baseline, &slow, &after_reset, &on_open, &refused, &healed],
    );
}
