//! Guests that misbehave, against the machine's PostgreSQL (nothing here
//! breaks the server): hostile guests under load, session state left behind
//! on a connection, and statements cancelled when a guest is killed at its
//! deadline or its client goes away.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tarn_tests::faults::{PASSWORD, time_until};
use tarn_tests::hostile;
use tarn_tests::http::post_json;
use tarn_tests::invariants::{
    Sampler, assert_bounds, assert_no_secret, assert_secret_kept, settle,
};
use tarn_tests::load::{Load, Request};
use tarn_tests::postgres::{MACHINE_URL, active, connect};
use tarn_tests::tarn::{Component, Options, Tarn, manifest_of};
use tarn_tests::{TempDir, figures, rust_guest, unique_name};
use tokio::io::AsyncWriteExt;

/// tarn's URL for the machine's server, with the password (ignored by its
/// trust authentication) so that it can be looked for.
fn url(app: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres?application_name={app}")
}

/// Writes WAT components into a directory that lives as long as the test.
struct Wats(TempDir);

impl Wats {
    fn new() -> Wats {
        Wats(TempDir::new("guests-wat"))
    }

    fn write(&self, name: &str, wat: &str) -> PathBuf {
        let path = self.0.path().join(format!("{name}.wat"));
        std::fs::write(&path, wat).expect("write wat");
        path
    }
}

fn start_tarn(components: &[Component<'_>], app: &str, config: &str) -> Tarn {
    Tarn::start(Options {
        manifest: manifest_of(components),
        runtime_config: config.to_string(),
        database_url: Some(url(app)),
        args: vec![],
        env: vec![],
    })
}

fn sample(limits: &'static str, environment: &'static str) -> Component<'static> {
    Component {
        id: "sample",
        route: "/...",
        source: rust_guest(),
        limits,
        environment,
    }
}

/// Bar: while guests trap, loop, blow their memory, return inside a
/// transaction and open thousands of handles (up to the cap of 5000), the sample app keeps serving
/// every request; afterwards nothing is checked out or idle in a
/// transaction, no hostile write survived, the pool agrees with the server,
/// and tarn's memory grew by less than 64 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_guests_under_load() {
    let app = unique_name("hostile-load");
    let observer = connect(MACHINE_URL).await;
    observer
        .batch_execute("CREATE TABLE IF NOT EXISTS hostile_marks (tag text)")
        .await
        .ok();
    let insert = format!("insert into hostile_marks (tag) values ('{app}')");
    let wats = Wats::new();
    let hostile_routes = [
        ("trap", hostile::trap_in_transaction(&insert), "", 500),
        (
            "loop",
            hostile::loop_in_transaction(&insert),
            "cpu_ms = 100",
            504,
        ),
        (
            "bomb",
            hostile::memory_bomb_in_transaction(&insert),
            "memory_mb = 16",
            500,
        ),
        ("opentx", hostile::return_in_transaction(&insert), "", 200),
        ("handles", hostile::handle_flood(), "", 500),
    ];
    let paths: Vec<(String, PathBuf)> = hostile_routes
        .iter()
        .map(|(name, wat, _, _)| (format!("/{name}/..."), wats.write(name, wat)))
        .collect();
    let mut components: Vec<Component<'_>> = hostile_routes
        .iter()
        .zip(&paths)
        .map(|((name, _, limits, _), (route, path))| Component {
            id: name,
            route,
            source: path,
            limits,
            environment: "",
        })
        .collect();
    components.push(sample("", ""));
    let config = "[database.default]\npool_size = 4\nmax_overflow = 4\npool_timeout = 2\n[runtime]\nmax_handles = 5000\n";
    let tarn = start_tarn(&components, &app, config);
    let warm = Load::new(tarn.port, 20, 2, Request::query("select 1 as one"))
        .run()
        .await;
    assert_eq!(warm.served(), 20, "{}", warm.summary());
    let rss_before = tarn.rss_kib();
    let sampler = Sampler::start(MACHINE_URL, &app, Duration::from_millis(50));

    let names: Vec<&'static str> = hostile_routes.iter().map(|(name, ..)| *name).collect();
    let hostile_load = Load {
        budget: Duration::from_secs(6),
        request: std::sync::Arc::new(move |i| {
            Request::get(&format!("/{}/x", names[i % names.len()]))
        }),
        ..Load::new(tarn.port, 150, 2, Request::get("/"))
    };
    let hostile_run = tokio::spawn(hostile_load.run());
    let good = Load {
        pause: Duration::from_millis(10),
        budget: Duration::from_secs(6),
        ..Load::new(tarn.port, 2000, 3, Request::query("select 1 as one"))
    }
    .run()
    .await;
    let bad = hostile_run.await.expect("hostile load");
    let samples = sampler.stop().await;
    let settled = settle(&tarn, MACHINE_URL, &app, None, Duration::from_secs(10)).await;
    let rss_after = tarn.rss_kib();
    let marks: i64 = observer
        .query_one("SELECT count(*) FROM hostile_marks WHERE tag = $1", &[&app])
        .await
        .expect("count marks")
        .get(0);
    figures(
        "hostile guests under load",
        &format!(
            "sample app: {}; hostile requests: {}; hostile writes surviving {marks}; max server \
             connections {}; RSS {} MiB before, {} MiB after; settled: {settled:?}",
            good.summary(),
            bad.summary(),
            samples.max_connections,
            rss_before >> 10,
            rss_after >> 10
        ),
    );
    assert_eq!(
        good.served(),
        good.sent(),
        "the sample app suffered: {}",
        good.summary()
    );
    assert_eq!(bad.hung(), 0, "{}", bad.summary());
    for s in &bad.samples {
        let (name, _, _, expected) = &hostile_routes[s.index % hostile_routes.len()];
        assert_eq!(s.status(), Some(*expected), "/{name}: {s:?}");
    }
    assert_eq!(marks, 0, "hostile writes were committed");
    assert_bounds(&samples, 8);
    assert!(
        rss_after.saturating_sub(rss_before) < 64 << 10,
        "tarn grew by {} MiB",
        rss_after.saturating_sub(rss_before) >> 10
    );
    assert_secret_kept(&tarn, &[&good, &bad]);
}

/// Runs `sql` through the sample app's `/query` and returns the first value.
async fn observe(port: u16, sql: &str) -> serde_json::Value {
    let r = post_json(port, "/query", &json!({ "sql": sql })).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.text());
    r.json()["rows"][0][0].clone()
}

/// Bar: whatever one request changes in its session — settings, temporary
/// tables, prepared statements, advisory locks (also taken inside a
/// transaction it left open), LISTEN, held cursors, settings changed inside
/// a function, a sequence's `currval` — is not visible to the next request
/// on the same connection (a pool of one, so it is the same server backend,
/// which the test checks).
#[tokio::test(flavor = "multi_thread")]
async fn session_state_does_not_cross_requests() {
    let app = unique_name("session");
    // State changed where the statement classifier cannot see it: inside a
    // function, and a sequence's position in the session.
    connect(MACHINE_URL)
        .await
        .batch_execute(
            "CREATE OR REPLACE FUNCTION tarn_leak_fn() RETURNS void LANGUAGE plpgsql AS \
             $$BEGIN PERFORM set_config('tarn.leak3', 'yes', false); END$$; \
             CREATE SEQUENCE IF NOT EXISTS tarn_leak_seq; \
             CREATE OR REPLACE FUNCTION tarn_leak_currval_defined() RETURNS bool LANGUAGE plpgsql AS \
             $$BEGIN PERFORM currval('tarn_leak_seq'); RETURN true; \
             EXCEPTION WHEN object_not_in_prerequisite_state THEN RETURN false; END$$",
        )
        .await
        .expect("create the helpers");
    let wats = Wats::new();
    // (route, hostile SQL, observation through /query, clean value)
    let cases: [(&str, String, &str, serde_json::Value); 10] = [
        (
            "set",
            hostile::execute("SET tarn.leak = 'yes'"),
            "select coalesce(current_setting('tarn.leak', true), '') as v",
            json!(""),
        ),
        (
            "set-config",
            hostile::execute("select set_config('tarn.leak2', 'yes', false)"),
            "select coalesce(current_setting('tarn.leak2', true), '') as v",
            json!(""),
        ),
        (
            "temp",
            hostile::execute("CREATE TEMP TABLE leak_t (a int)"),
            "select to_regclass('pg_temp.leak_t')::text as v",
            json!(null),
        ),
        (
            "prepare",
            hostile::execute("PREPARE leak_p AS SELECT 1"),
            "select count(*)::int as v from pg_prepared_statements where name = 'leak_p'",
            json!(0),
        ),
        (
            "lock",
            hostile::execute("select pg_advisory_lock(4242)"),
            "select count(*)::int as v from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
            json!(0),
        ),
        (
            "tx-lock",
            hostile::return_in_transaction("select pg_advisory_lock(4243)"),
            "select count(*)::int as v from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
            json!(0),
        ),
        (
            "listen",
            hostile::execute("LISTEN leak_channel"),
            "select count(*)::int as v from pg_listening_channels()",
            json!(0),
        ),
        (
            "cursor",
            hostile::execute("DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1"),
            "select count(*)::int as v from pg_cursors where name = 'leak_c'",
            json!(0),
        ),
        (
            "function",
            hostile::execute("select tarn_leak_fn()"),
            "select coalesce(current_setting('tarn.leak3', true), '') as v",
            json!(""),
        ),
        (
            "sequence",
            hostile::execute("select nextval('tarn_leak_seq')"),
            "select tarn_leak_currval_defined() as v",
            json!(false),
        ),
    ];
    let paths: Vec<(String, PathBuf)> = cases
        .iter()
        .map(|(name, wat, ..)| (format!("/{name}/..."), wats.write(name, wat)))
        .collect();
    let mut components: Vec<Component<'_>> = cases
        .iter()
        .zip(&paths)
        .map(|((name, ..), (route, path))| Component {
            id: name,
            route,
            source: path,
            limits: "",
            environment: "",
        })
        .collect();
    components.push(sample("", ""));
    // `always` resets every used connection; `detected` (the default) only
    // those whose statements visibly changed the session, which must cover
    // every case but the last two (the classifier cannot see into functions).
    for (mode, checked_cases) in [("always", &cases[..]), ("detected", &cases[..8])] {
        let app = format!("{app}-{mode}");
        let config = format!(
            "[database.default]\npool_size = 1\nmax_overflow = 0\npool_timeout = 5\nsession_reset = \"{mode}\"\n"
        );
        let tarn = start_tarn(&components, &app, &config);
        let backend = observe(tarn.port, "select pg_backend_pid() as pid").await;
        let mut checked = Vec::new();
        for (name, _, observation, clean) in checked_cases {
            let r = tarn_tests::http::get(tarn.port, &format!("/{name}/x")).await;
            assert_eq!(r.status, 200, "/{name}: {}", r.text());
            let seen = observe(tarn.port, observation).await;
            let same_backend =
                observe(tarn.port, "select pg_backend_pid() as pid").await == backend;
            checked.push(format!("{name}: {seen} (same backend: {same_backend})"));
            assert_eq!(
                &seen, clean,
                "{mode}: /{name} left state behind for the next request"
            );
            assert!(
                same_backend,
                "{mode}: /{name}: the connection was replaced, so the reset was not tested"
            );
        }
        let settled = settle(&tarn, MACHINE_URL, &app, Some(1), Duration::from_secs(5)).await;
        figures(
            &format!("session state does not cross requests (session_reset = {mode})"),
            &format!(
                "pool of 1, backend {backend}; seen by the next request: {}; settled: {settled:?}",
                checked.join(", ")
            ),
        );
        assert_no_secret(PASSWORD, [("tarn's log", tarn.log().as_str())]);
    }
}

/// Bar: a statement still running when its guest is killed at the deadline,
/// or when its client disconnects, is cancelled on the server within 2 s
/// (gone from `pg_stat_activity`), and its connection comes back clean.
#[tokio::test(flavor = "multi_thread")]
async fn statements_are_cancelled_on_deadline_and_disconnect() {
    let app = unique_name("cancel");
    let wats = Wats::new();
    let slow = wats.write("slow", &hostile::execute("select pg_sleep(30)"));
    let components = [
        Component {
            id: "slow",
            route: "/slow/...",
            source: &slow,
            limits: "",
            environment: "",
        },
        sample("timeout_ms = 1000", "QUERY_STATEMENT_TIMEOUT_MS = \"0\""),
    ];
    let config = "[database.default]\npool_size = 2\nmax_overflow = 0\npool_timeout = 2\n";
    let tarn = start_tarn(&components, &app, config);
    let observer = connect(MACHINE_URL).await;
    let sleep = json!({ "sql": "select pg_sleep(30)" });

    // The sample app's guest is killed at its 1 s deadline (no statement
    // timeout of its own).
    let killed = Instant::now();
    let r = post_json(tarn.port, "/query", &sleep).await;
    let answered = killed.elapsed();
    let deadline_status = r.status;
    let deadline_gone = time_until(Duration::from_secs(10), || {
        let (observer, app) = (&observer, app.clone());
        async move { active(observer, &app).await == 0 }
    })
    .await;

    // The client goes away while its statement runs (a guest with the
    // default 60 s deadline).
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", tarn.port))
        .await
        .expect("connect");
    let request = "GET /slow/x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    client.write_all(request.as_bytes()).await.expect("send");
    let running = time_until(Duration::from_secs(5), || {
        let (observer, app) = (&observer, app.clone());
        async move { active(observer, &app).await == 1 }
    })
    .await;
    let disconnected = Instant::now();
    drop(client);
    let disconnect_gone = time_until(Duration::from_secs(10), || {
        let (observer, app) = (&observer, app.clone());
        async move { active(observer, &app).await == 0 }
    })
    .await;
    let settled = settle(&tarn, MACHINE_URL, &app, Some(2), Duration::from_secs(10)).await;
    figures(
        "query cancellation",
        &format!(
            "killed at the deadline: {deadline_status} after {answered:?}, statement gone {deadline_gone:?} later; \
             client disconnected: statement running {running:?}, gone {disconnect_gone:?} after the \
             disconnect ({:?} incl. polling); settled: {settled:?}",
            disconnected.elapsed()
        ),
    );
    assert!(
        running.is_some(),
        "the disconnected client's statement never ran"
    );
    assert_eq!(deadline_status, 504, "{}", r.text());
    let deadline_gone = deadline_gone.expect("the statement outlived its guest's deadline by 10 s");
    assert!(
        deadline_gone <= Duration::from_secs(2),
        "cancelled only after {deadline_gone:?}"
    );
    let disconnect_gone = disconnect_gone.expect("the statement outlived its client by 10 s");
    assert!(
        disconnect_gone <= Duration::from_secs(2),
        "cancelled only after {disconnect_gone:?}"
    );
    assert_no_secret(
        PASSWORD,
        [
            ("tarn's log", tarn.log().as_str()),
            ("a response", r.text().as_str()),
        ],
    );
}
