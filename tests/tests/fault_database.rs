//! Database faults on throwaway clusters, with tarn serving the Rust sample
//! guest: a restart under steady load, backends terminated while idle, the
//! database down at start with `lazy_init`, and every connection slot taken
//! by another client. After each: the invariants of `tarn_tests::invariants`.

use std::time::{Duration, Instant};

use tarn_tests::faults::{Database, PASSWORD, time_until};
use tarn_tests::http::{get, send};
use tarn_tests::invariants::{
    Sampler, assert_bounds, assert_no_secret, assert_secret_kept, metrics, pool_metric,
};
use tarn_tests::load::{Load, Report, Request};
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{figures, rust_guest, unique_name};

/// Starts tarn with the sample guest on `url`.
fn start_tarn(url: String, config: &str) -> Tarn {
    Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config: config.to_string(),
        database_url: Some(url),
        args: vec![],
        env: vec![],
    })
}

/// One outage: when it began and when the server accepted connections again,
/// from the start of the load.
struct Outage {
    began: Duration,
    accepting: Duration,
}

/// Runs steady load (4 workers) while the database goes down and comes back
/// `rounds` times (a fast shutdown, or a SIGKILL crash every
/// `crash_every`-th round), and checks the bar of
/// [`restart_under_steady_load`].
async fn restarts_under_load(scenario: &str, rounds: u32, crash_every: Option<u32>) {
    let mut db = Database::start().await;
    let app = unique_name("restart");
    let config = "[database.default]\npool_size = 5\nmax_overflow = 10\npool_timeout = 2\nconnect_timeout = 2\n\
                  [runtime]\nrequest_timeout_ms = 5000\n";
    let tarn = start_tarn(db.url(&app), config);
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));
    let load = Load {
        pause: Duration::from_millis(20),
        deadline: Duration::from_secs(6),
        budget: Duration::from_secs(3) * rounds + Duration::from_secs(4),
        ..Load::new(tarn.port, 1_000_000, 4, Request::query("select 1 as one"))
    };
    let run_started = Instant::now();
    let running = tokio::spawn(load.run());
    let mut outages = Vec::new();
    for round in 1..=rounds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let began = run_started.elapsed();
        if crash_every.is_some_and(|n| round % n == 0) {
            db.kill().await;
        } else {
            db.stop().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        db.start_again().await;
        outages.push(Outage {
            began,
            accepting: run_started.elapsed(),
        });
    }
    let report = running.await.expect("load");
    let samples = sampler.stop().await;

    // A failed request must have overlapped an outage: ended after it
    // began, and sent before the server accepted connections again + 1 s.
    let grace = Duration::from_secs(1);
    let outage_of = |s: &tarn_tests::load::Sample| {
        outages
            .iter()
            .find(|o| s.ended() >= o.began && s.started <= o.accepting + grace)
    };
    let outside: Vec<_> = report
        .unserved()
        .filter(|s| outage_of(s).is_none())
        .collect();
    // Of the failures, those already in flight when an outage began, and
    // those sent while the server was down.
    let in_flight = report
        .unserved()
        .filter(|s| {
            outages
                .iter()
                .any(|o| s.started < o.began && s.ended() >= o.began)
        })
        .count();
    let recovery = report
        .unserved()
        .filter_map(|s| outage_of(s).map(|o| s.ended().saturating_sub(o.accepting)))
        .max()
        .unwrap_or_default();
    let after_last = report
        .samples
        .iter()
        .filter(|s| {
            outages
                .last()
                .is_some_and(|o| s.started > o.accepting + grace)
        })
        .count();
    let settled = db.settle(&tarn, &app, 5).await;
    let windows: Vec<String> = outages
        .iter()
        .map(|o| format!("{:.2?}..{:.2?}", o.began, o.accepting))
        .collect();
    figures(
        scenario,
        &format!(
            "{}; outages (stop issued .. accepting again) {}; failures in flight as an outage began \
             {in_flight}, sent during one {}; last failure ended {recovery:?} after the server \
             accepted connections; max server connections {}; settled to {} in {:?}",
            report.summary(),
            windows.join(", "),
            report.failed() - in_flight,
            samples.max_connections,
            settled.pool.total,
            settled.after
        ),
    );
    assert_eq!(report.hung(), 0, "requests hung: {}", report.summary());
    assert!(
        outside.is_empty(),
        "failures outside the outages: {outside:#?}"
    );
    assert!(
        recovery <= grace,
        "full service took {recovery:?} after a restart"
    );
    assert!(
        after_last >= 20,
        "too few requests after the recovery to judge it: {after_last}"
    );
    assert_bounds(&samples, 15);
    assert_secret_kept(&tarn, &[&report]);
}

/// Bar: no request hangs past its deadline; only requests in flight while
/// the database was down fail; full service again within 1 s of the database
/// accepting connections; the pool back to `pool_size`; never more than
/// `pool_size + max_overflow` server connections.
#[tokio::test(flavor = "multi_thread")]
async fn restart_under_steady_load() {
    restarts_under_load("restart under steady load", 1, None).await;
}

/// The same bar over 12 outages, every third a crash (SIGKILL); runs only
/// with `TARN_SOAK=1` (about 45 s).
#[tokio::test(flavor = "multi_thread")]
async fn soak_restarts_and_crashes_under_load() {
    if std::env::var_os("TARN_SOAK").is_none() {
        eprintln!("soak test skipped: set TARN_SOAK=1 to run it");
        return;
    }
    restarts_under_load("soak: 12 restarts and crashes under load", 12, Some(3)).await;
}

/// Bar: with pre-ping, backends terminated while idle cost clients nothing,
/// and the pool refills to `pool_size`.
#[tokio::test(flavor = "multi_thread")]
async fn idle_backends_terminated_with_pre_ping() {
    let db = Database::start().await;
    let app = unique_name("terminate");
    let config = "[database.default]\npool_size = 3\nmax_overflow = 2\npool_timeout = 2\npool_pre_ping = true\n";
    let tarn = start_tarn(db.url(&app), config);
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));
    let mut reports = Vec::new();
    let mut terminated = 0;
    for _ in 0..3 {
        // Idle for longer than pre_ping_after (1 s): the next checkout pings.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        terminated += db.terminate_backends(&app).await;
        let report = Load::new(tarn.port, 30, 3, Request::query("select 1 as one"))
            .run()
            .await;
        reports.push(report);
    }
    let samples = sampler.stop().await;
    let settled = db.settle(&tarn, &app, 3).await;
    let (sent, served) = reports.iter().fold((0, 0), |(sent, served), r| {
        (sent + r.sent(), served + r.served())
    });
    figures(
        "idle backends terminated (pre-ping)",
        &format!(
            "3 rounds, {terminated} backends terminated; sent {sent} served {served} failed {} hung {}; \
             max server connections {}; pool refilled to {} in {:?}",
            sent - served - reports.iter().map(Report::hung).sum::<usize>(),
            reports.iter().map(Report::hung).sum::<usize>(),
            samples.max_connections,
            settled.pool.total,
            settled.after
        ),
    );
    assert!(
        terminated >= 3,
        "only {terminated} backends were terminated"
    );
    for r in &reports {
        assert_eq!(
            r.served(),
            r.sent(),
            "client-visible errors: {}",
            r.summary()
        );
    }
    assert_bounds(&samples, 5);
    let refs: Vec<&Report> = reports.iter().collect();
    assert_secret_kept(&tarn, &refs);
}

/// Bar: with the server cutting idle sessions after 300 ms (`ALTER SYSTEM
/// SET idle_session_timeout` + reload), requests that arrive after longer
/// pauses are still served — dead connections are discarded at checkout —
/// and any that lose the race with the server fail with a 503, never a 4xx;
/// at least 90 % are served.
#[tokio::test(flavor = "multi_thread")]
async fn server_cuts_idle_sessions() {
    let db = Database::start().await;
    let app = unique_name("idlecut");
    let config = "[database.default]\npool_size = 2\nmax_overflow = 2\npool_timeout = 2\n";
    let tarn = start_tarn(db.url(&app), config);
    db.alter_system("idle_session_timeout", "300ms").await;
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));
    let report = Load {
        pause: Duration::from_millis(500),
        ..Load::new(tarn.port, 20, 2, Request::query("select 1 as one"))
    }
    .run()
    .await;
    let samples = sampler.stop().await;
    let created = pool_metric(
        &metrics(tarn.admin_port).await,
        "connections_created_total",
        "default",
    );
    db.alter_system("idle_session_timeout", "0").await;
    let settled = db.settle(&tarn, &app, 2).await;
    figures(
        "server cuts idle sessions (idle_session_timeout 300 ms)",
        &format!(
            "{}; connections opened in all {created} (the server kept cutting them); max server \
             connections {}; settled at {}",
            report.summary(),
            samples.max_connections,
            settled.pool.total
        ),
    );
    assert!(
        created >= 6,
        "the server did not cut sessions: only {created} connections opened"
    );
    for s in report.unserved() {
        assert_eq!(s.status(), Some(503), "{s:?}");
    }
    assert!(report.served() >= 18, "{}", report.summary());
    assert_bounds(&samples, 4);
    assert_secret_kept(&tarn, &[&report]);
}

/// Bar: a backend terminated while running a statement fails only that
/// request, with 503 `connection-failed` (the client did nothing wrong, so
/// not a 4xx), and the next requests are served.
#[tokio::test(flavor = "multi_thread")]
async fn busy_backends_terminated() {
    let db = Database::start().await;
    let app = unique_name("busy");
    let config = "[database.default]\npool_size = 3\nmax_overflow = 0\npool_timeout = 2\n";
    let tarn = start_tarn(db.url(&app), config);
    let running =
        tokio::spawn(Load::new(tarn.port, 3, 3, Request::query("select pg_sleep(3)")).run());
    let port = tarn.port;
    let observer = db.observer().await;
    let busy = time_until(Duration::from_secs(5), || {
        let observer = &observer;
        let app = app.clone();
        async move { tarn_tests::postgres::active(observer, &app).await == 3 }
    })
    .await;
    assert!(busy.is_some(), "the statements never ran");
    let terminated = db.terminate_backends(&app).await;
    let busy_report = running.await.expect("load");
    let after = Load::new(port, 20, 2, Request::query("select 1 as one"))
        .run()
        .await;
    let settled = db.settle(&tarn, &app, 3).await;
    figures(
        "busy backends terminated",
        &format!(
            "{terminated} terminated mid-statement: {}; then {}; pool refilled to {}",
            busy_report.summary(),
            after.summary(),
            settled.pool.total
        ),
    );
    for s in &busy_report.samples {
        assert_eq!(
            s.status(),
            Some(503),
            "a terminated statement should be a 503: {}",
            s.text
        );
        assert!(s.text.contains("connection-failed"), "{}", s.text);
    }
    assert_eq!(after.served(), after.sent(), "{}", after.summary());
    assert_secret_kept(&tarn, &[&busy_report, &after]);
}

/// Bar: with `lazy_init = true` and the database down, tarn starts and
/// serves, `/health/db` answers 503 `disconnected`, and it heals by itself
/// (within 5 s) once the database accepts connections.
#[tokio::test(flavor = "multi_thread")]
async fn database_down_at_start_with_lazy_init() {
    let mut db = Database::start().await;
    db.stop().await;
    let app = unique_name("lazy");
    let config = "[database.default]\npool_size = 2\nmax_overflow = 2\nlazy_init = true\npool_timeout = 2\nconnect_timeout = 2\n";
    let tarn = start_tarn(db.url(&app), config);

    let health = get(tarn.port, "/health").await;
    assert_eq!(health.status, 200, "{}", health.text());
    let down = get(tarn.port, "/health/db").await;
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(down.json()["status"], "disconnected", "{}", down.text());
    let query = Load::new(tarn.port, 5, 1, Request::query("select 1 as one"))
        .run()
        .await;
    assert_eq!(query.statuses().get("503"), Some(&5), "{}", query.summary());
    assert_eq!(get(tarn.admin_port, "/readyz").await.status, 503);

    db.start_again().await;
    let port = tarn.port;
    let healed = time_until(Duration::from_secs(10), move || async move {
        send(port, "GET", "/health/db", bytes::Bytes::new())
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    let after = Load::new(tarn.port, 20, 2, Request::query("select 1 as one"))
        .run()
        .await;
    let settled = db.settle(&tarn, &app, 2).await;
    figures(
        "database down at start (lazy_init)",
        &format!(
            "while down: /health 200, /health/db {} {}, /query {:?}; healed {healed:?} after the database \
             accepted connections; then {}; pool warm at {} after {:?}",
            down.status,
            down.json()["status"],
            query.statuses(),
            after.summary(),
            settled.pool.total,
            settled.after
        ),
    );
    let healed = healed.expect("/health/db did not heal within 10 s");
    assert!(healed <= Duration::from_secs(5), "healing took {healed:?}");
    assert_eq!(after.served(), after.sent(), "{}", after.summary());
    assert_eq!(get(tarn.admin_port, "/readyz").await.status, 200);
    let down_text = format!("{:?} {}", down.headers, down.text());
    assert_no_secret(PASSWORD, [("/health/db", down_text.as_str())]);
    assert_secret_kept(&tarn, &[&query, &after]);
}

/// Bar: with every free connection slot taken by another client, requests
/// that need a new connection fail at once with a clear 503 naming the
/// cause, the pool's own connections keep serving, and service is whole
/// again (within 2 s) once the slots free up.
#[tokio::test(flavor = "multi_thread")]
async fn max_connections_exhausted_by_another_client() {
    let db = Database::start_with(|o| o.max_connections = 12).await;
    let app = unique_name("exhausted");
    let config = "[database.default]\npool_size = 2\nmax_overflow = 4\npool_timeout = 2\nconnect_timeout = 2\n";
    let tarn = start_tarn(db.url(&app), config);
    let sampler = Sampler::start(&db.observer_url(), &app, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hog = db.hog_all_slots().await;

    let burst = Load::new(tarn.port, 6, 6, Request::query("select pg_sleep(0.5)"))
        .run()
        .await;
    let refused: Vec<_> = burst.unserved().collect();
    for s in &refused {
        assert_eq!(s.status(), Some(503), "{s:?}");
        assert!(
            s.text.contains("too many clients"),
            "the error does not name the cause: {}",
            s.text
        );
        assert!(
            s.latency < Duration::from_secs(2),
            "refusal took {:?}",
            s.latency
        );
    }
    let sequential = Load::new(tarn.port, 10, 1, Request::query("select 1 as one"))
        .run()
        .await;

    let held = hog.len();
    let refusal = hog.refusal.clone();
    let freed = Instant::now();
    drop(hog);
    let port = tarn.port;
    let recovered = time_until(Duration::from_secs(10), move || async move {
        Load::new(port, 6, 6, Request::query("select pg_sleep(0.2)"))
            .run()
            .await
            .served()
            == 6
    })
    .await;
    let samples = sampler.stop().await;
    let settled = db.settle(&tarn, &app, 2).await;
    figures(
        "max_connections exhausted by another client",
        &format!(
            "other client held {held} slots (server said: {refusal}); burst of 6 slow queries: {}; \
             sequential on pool connections: {}; whole again {recovered:?} after the slots were freed \
             ({:?} incl. the probe); max server connections {}; settled at {}",
            burst.summary(),
            sequential.summary(),
            freed.elapsed(),
            samples.max_connections,
            settled.pool.total
        ),
    );
    assert!(refusal.contains("too many clients"), "{refusal}");
    assert_eq!(
        burst.served(),
        2,
        "the pool's own connections should serve: {}",
        burst.summary()
    );
    assert_eq!(
        sequential.served(),
        sequential.sent(),
        "{}",
        sequential.summary()
    );
    let recovered = recovered.expect("no recovery within 10 s of the slots being freed");
    assert!(
        recovered <= Duration::from_secs(2),
        "recovery took {recovered:?}"
    );
    assert_bounds(&samples, 6);
    assert_secret_kept(&tarn, &[&burst, &sequential]);
}
