//! The sample app's endpoints, served by the real tarn with the real Rust
//! guest against the machine's PostgreSQL.

use std::time::Duration;

use serde_json::json;
use tarn_tests::http::{get, post_json, send_with};
use tarn_tests::postgres::{MACHINE_URL, connect, connections, idle_in_transaction, pids};
use tarn_tests::sample::POOL_STATS_KEYS;
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{rust_guest, unique_name};

/// A password the machine's trust auth ignores, so it can be looked for.
const PASSWORD: &str = "s3cret-pa55word";

fn start(app: &str, config: &str, limits: &str) -> Tarn {
    Tarn::start(Options {
        manifest: manifest(rust_guest(), limits),
        runtime_config: config.to_string(),
        database_url: Some(format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres?application_name={app}"
        )),
        args: vec![],
        env: vec![],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn health_config_and_stats() {
    let app = unique_name("endpoints");
    let tarn = start(&app, "", "");
    let observer = connect(MACHINE_URL).await;
    assert_eq!(
        connections(&observer, &app).await,
        5,
        "eager init opens pool_size"
    );

    let r = get(tarn.port, "/health").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert!(r.header("x-request-id").is_some());

    let r = get(tarn.port, "/health/db").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["database_healthy"], true);
    assert_eq!(r.json()["status"], "connected");

    let r = get(tarn.port, "/config").await;
    assert_eq!(r.status, 200);
    let config = r.json();
    assert_eq!(config["pool_size"], 5);
    assert_eq!(config["max_overflow"], 10);
    assert_eq!(config["pool_recycle"], 3600);
    assert_eq!(config["pool_pre_ping"], true);
    assert_eq!(config["lazy_init"], false);
    let url = config["url"].as_str().unwrap();
    assert!(url.contains("postgres:***@"), "{url}");
    assert!(!r.text().contains(PASSWORD));

    let r = get(tarn.port, "/pool/stats").await;
    assert_eq!(r.status, 200);
    let stats = r.json();
    for key in POOL_STATS_KEYS {
        assert!(stats[key].is_u64(), "{key} missing in {stats}");
    }
    assert_eq!(stats["size"], 5);
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["overflow"], 0);

    let metrics = get(tarn.admin_port, "/metrics").await.text();
    assert!(
        metrics.contains("tarn_pool_total{database=\"default\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tarn_requests_total{route=\"/...\",status=\"200\"}"),
        "{metrics}"
    );
    assert_eq!(get(tarn.admin_port, "/readyz").await.status, 200);
    assert_eq!(get(tarn.admin_port, "/livez").await.status, 200);
    assert!(
        !tarn.log().contains(PASSWORD),
        "the password reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_endpoint() {
    let app = unique_name("query");
    let tarn = start(&app, "", "");
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "select $1::int + 7 as answer, 'x' as s, null::text as n, 1.50::numeric as num", "params": [5]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["columns"], json!(["answer", "s", "n", "num"]));
    assert_eq!(body["rows"], json!([[12, "x", null, "1.50"]]));
    assert_eq!(body["row_count"], 1);

    // An empty result still names its columns.
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "select 1 as a where false"}),
    )
    .await;
    assert_eq!(r.json()["columns"], json!(["a"]), "{}", r.text());

    // SQL errors carry the SQLSTATE.
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "select * from no_such_table"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "42P01");
    assert_eq!(
        r.json()["request_id"].as_str(),
        r.header("x-request-id"),
        "error bodies carry the request id"
    );

    // The endpoint cannot write.
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "create table query_endpoint_t (a int)"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "25006");

    // Bad input.
    let r = send_with(tarn.port, "POST", "/query", &[], "{not json")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post_json(tarn.port, "/query", &json!({"params": []})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "select $1::int", "params": ["x"]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post_json(
        tarn.port,
        "/query",
        &json!({"sql": "select $1::int, $2::int", "params": [1]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post_json(tarn.port, "/query", &json!({"sql": "begin"})).await;
    assert_eq!(r.status, 403, "{}", r.text());

    let observer = connect(MACHINE_URL).await;
    assert_eq!(idle_in_transaction(&observer, &app).await, 0);
    assert_eq!(get(tarn.port, "/pool/stats").await.json()["checked_out"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_round_trip() {
    let app = unique_name("notes");
    let tarn = start(&app, "", "");
    let r = post_json(
        tarn.port,
        "/notes",
        &json!({"title": "hello", "body": "world"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let note = r.json();
    let id = note["id"].as_i64().expect("id");
    assert_eq!(note["title"], "hello");

    let r = get(tarn.port, &format!("/notes/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], "world");

    assert_eq!(get(tarn.port, "/notes/999999999").await.status, 404);
    assert_eq!(get(tarn.port, "/notes/abc").await.status, 400);
    let r = post_json(tarn.port, "/notes", &json!({"title": 5})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let list = get(tarn.port, "/notes").await;
    assert_eq!(list.status, 200, "{}", list.text());

    let r = send_with(tarn.port, "DELETE", &format!("/notes/{id}"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(get(tarn.port, &format!("/notes/{id}")).await.status, 404);

    let observer = connect(MACHINE_URL).await;
    assert_eq!(idle_in_transaction(&observer, &app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors() {
    let app = unique_name("bad");
    let tarn = start(&app, "[http]\nmax_body_kb = 1\n", "");
    let r = send_with(tarn.port, "POST", "/query", &[], vec![b'x'; 4096])
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["request_id"].is_string());
    let r = get(tarn.port, "/no/such/endpoint").await;
    assert_eq!(r.status, 404);
    let r = send_with(tarn.port, "PUT", "/health", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn overflow_and_timeout_seen_from_http() {
    let app = unique_name("overflow");
    let config = "[database.default]\npool_size = 2\nmax_overflow = 1\npool_timeout = 1\n";
    let tarn = start(&app, config, "");
    let observer = connect(MACHINE_URL).await;
    let port = tarn.port;
    let requests: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn(async move {
                post_json(port, "/query", &json!({"sql": "select pg_sleep(2)"})).await
            })
        })
        .collect();
    let mut max_seen = 0;
    for _ in 0..20 {
        max_seen = max_seen.max(connections(&observer, &app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ok = 0;
    let mut refused = 0;
    for r in requests {
        let r = r.await.unwrap();
        match r.status {
            200 => ok += 1,
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!((ok, refused), (3, 3));
    assert!(max_seen <= 3, "saw {max_seen} connections");
    assert_eq!(max_seen, 3);
    // Overflow closes again once the load is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections(&observer, &app).await, 2);
}

/// tarn does not wait for a read-only transaction's `ROLLBACK` (the guest's
/// `rollback` returns at once) and sends `BEGIN` with the first statement;
/// on a single connection every request must still get a transaction of its
/// own, so `now()` (the transaction's start) differs every time.
#[tokio::test(flavor = "multi_thread")]
async fn each_transaction_ends_before_its_connection_is_reused() {
    let app = unique_name("txn-reuse");
    let tarn = start(
        &app,
        "[database.default]\npool_size = 1\nmax_overflow = 0\n",
        "",
    );
    let mut starts = std::collections::HashSet::new();
    for _ in 0..40 {
        let r = post_json(
            tarn.port,
            "/query",
            &json!({"sql": "select now()::text as started, pg_backend_pid() as pid"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let started = r.json()["rows"][0][0].as_str().unwrap().to_string();
        assert!(
            starts.insert(started),
            "a transaction was reused: {}",
            r.text()
        );
    }
    let observer = connect(MACHINE_URL).await;
    assert_eq!(connections(&observer, &app).await, 1);
    assert_eq!(idle_in_transaction(&observer, &app).await, 0);
}

/// The value of a `tarn_pool_*_total` counter of the default database.
async fn pool_counter(admin_port: u16, name: &str) -> u64 {
    let metrics = get(admin_port, "/metrics").await.text();
    let prefix = format!("tarn_pool_{name}_total{{database=\"default\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_queries_are_prepared_and_survive_schema_changes() {
    let app = unique_name("prepared");
    let table = app.replace('-', "_");
    let tarn = start(
        &app,
        "[database.default]\npool_size = 1\nmax_overflow = 0\n",
        "",
    );
    let observer = connect(MACHINE_URL).await;
    observer
        .batch_execute(&format!(
            "CREATE TABLE {table} (a int); INSERT INTO {table} VALUES (1)"
        ))
        .await
        .unwrap();
    let select = json!({"sql": format!("SELECT * FROM {table} WHERE a = $1"), "params": [1]});
    let rows = || async {
        let r = post_json(tarn.port, "/query", &select).await;
        assert_eq!(r.status, 200, "{}", r.text());
        (r.json()["columns"].clone(), r.json()["rows"].clone())
    };
    for _ in 0..3 {
        assert_eq!(rows().await, (json!(["a"]), json!([[1]])));
    }
    assert_eq!(
        pool_counter(tarn.admin_port, "statements_prepared").await,
        1
    );
    assert_eq!(
        pool_counter(tarn.admin_port, "statement_cache_hits").await,
        1
    );

    // The prepared `SELECT *` now returns another row type: PostgreSQL
    // refuses to run it, and tarn runs the transaction again unprepared.
    observer
        .batch_execute(&format!("ALTER TABLE {table} ADD COLUMN b int DEFAULT 2"))
        .await
        .unwrap();
    assert_eq!(rows().await, (json!(["a", "b"]), json!([[1, 2]])));

    // A guest that deallocates every statement of its session.
    let r = post_json(tarn.port, "/query", &json!({"sql": "DEALLOCATE ALL"})).await;
    assert!(r.status == 200 || r.status == 400, "{}", r.text());
    for _ in 0..3 {
        assert_eq!(rows().await, (json!(["a", "b"]), json!([[1, 2]])));
    }
    observer
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_prepared_when_every_session_is_reset() {
    let app = unique_name("prepared-always");
    let tarn = start(
        &app,
        "[database.default]\npool_size = 1\nmax_overflow = 0\nsession_reset = \"always\"\n",
        "",
    );
    for _ in 0..3 {
        let r = post_json(tarn.port, "/query", &json!({"sql": "SELECT 1"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        pool_counter(tarn.admin_port, "statements_prepared").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let app = unique_name("shutdown");
    let mut tarn = start(&app, "", "");
    let port = tarn.port;
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(async move {
                post_json(port, "/query", &json!({"sql": "select pg_sleep(1)"})).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exited = tokio::task::spawn_blocking(move || {
        let ok = tarn.terminate(Duration::from_secs(20));
        (ok, tarn)
    });
    for r in in_flight {
        let r = r.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (ok, tarn) = exited.await.unwrap();
    assert_eq!(ok, Some(true), "tarn did not exit cleanly:\n{}", tarn.log());
    let observer = connect(MACHINE_URL).await;
    assert_eq!(
        connections(&observer, &app).await,
        0,
        "pools closed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reconnect_replaces_the_connections() {
    let app = unique_name("reconnect");
    let tarn = start(&app, "", "");
    let observer = connect(MACHINE_URL).await;
    let before = pids(&observer, &app).await;
    assert_eq!(before.len(), 5);
    let r = send_with(tarn.admin_port, "POST", "/reconnect", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let after = pids(&observer, &app).await;
        if after.len() == 5 && after.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "before {before:?}, after {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(tarn.port, "/health/db").await.status, 200);
}
