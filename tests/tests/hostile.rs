//! Hostile guests (WAT) against the real tarn: whatever they do, no
//! connection stays idle in a transaction, their writes are rolled back,
//! the pool's counts come back, and other requests keep being served.

use std::time::{Duration, Instant};

use serde_json::json;
use tarn_tests::hostile;
use tarn_tests::http::{get, post_json};
use tarn_tests::postgres::{MACHINE_URL, active, connect, idle_in_transaction};
use tarn_tests::tarn::{Component, Options, Tarn, manifest_of};
use tarn_tests::{TempDir, rust_guest, unique_name};

/// Starts tarn with `wat` as the hostile component at `/hostile/...` and the
/// sample app everywhere else. The returned dir holds the component.
fn start(app: &str, wat: &str, limits: &str) -> (Tarn, TempDir) {
    let dir = TempDir::new("hostile-wat");
    let path = dir.path().join("hostile.wat");
    std::fs::write(&path, wat).expect("write wat");
    let manifest = manifest_of(&[
        Component {
            id: "hostile",
            route: "/hostile/...",
            source: &path,
            limits,
            environment: "",
        },
        Component {
            id: "sample",
            route: "/...",
            source: rust_guest(),
            limits: "",
            environment: "",
        },
    ]);
    let tarn = Tarn::start(Options {
        manifest,
        runtime_config: "[runtime]\nmax_handles = 100\n".into(),
        database_url: Some(format!(
            "postgres://postgres@127.0.0.1:5432/postgres?application_name={app}"
        )),
        args: vec![],
        env: vec![],
    });
    (tarn, dir)
}

async fn marks_table() -> tokio_postgres::Client {
    let observer = connect(MACHINE_URL).await;
    observer
        .batch_execute("CREATE TABLE IF NOT EXISTS hostile_marks (tag text)")
        .await
        .ok();
    observer
}

async fn marks(observer: &tokio_postgres::Client, tag: &str) -> i64 {
    observer
        .query_one("SELECT count(*) FROM hostile_marks WHERE tag = $1", &[&tag])
        .await
        .unwrap()
        .get(0)
}

/// After a hostile request: nothing idle in transaction, nothing written,
/// the pool has everything back, and the sample app still answers.
async fn assert_clean(tarn: &Tarn, observer: &tokio_postgres::Client, app: &str, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = get(tarn.port, "/pool/stats").await.json();
        let idle_tx = idle_in_transaction(observer, app).await;
        if idle_tx == 0 && stats["checked_out"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not clean: {idle_tx} idle in transaction, stats {stats}\n{}",
            tarn.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        marks(observer, tag).await,
        0,
        "the hostile write was not rolled back"
    );
    let r = post_json(tarn.port, "/query", &json!({"sql": "select 1 as one"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"], json!([[1]]));
}

fn insert(tag: &str) -> String {
    format!("insert into hostile_marks (tag) values ('{tag}')")
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_while_holding_a_transaction() {
    let observer = marks_table().await;
    let app = unique_name("trap");
    let (tarn, _dir) = start(&app, &hostile::trap_in_transaction(&insert(&app)), "");
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.json()["request_id"].is_string());
    assert_clean(&tarn, &observer, &app, &app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_stopped_by_the_cpu_limit() {
    let observer = marks_table().await;
    let app = unique_name("loop");
    let (tarn, _dir) = start(
        &app,
        &hostile::loop_in_transaction(&insert(&app)),
        "cpu_ms = 200",
    );
    let started = Instant::now();
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_clean(&tarn, &observer, &app, &app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_is_stopped_by_the_memory_limit() {
    let observer = marks_table().await;
    let app = unique_name("membomb");
    let (tarn, _dir) = start(
        &app,
        &hostile::memory_bomb_in_transaction(&insert(&app)),
        "memory_mb = 16",
    );
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        tarn.wait_for_log("memory limit", Duration::from_secs(2)),
        "{}",
        tarn.log()
    );
    assert_clean(&tarn, &observer, &app, &app).await;
}

/// `begin` sends nothing (its `BEGIN` waits for the first statement), so a
/// guest that traps right after it leaves nothing on the server to undo:
/// the connection goes back without a reset.
#[tokio::test(flavor = "multi_thread")]
async fn trap_before_the_first_statement_leaves_nothing_to_reset() {
    let observer = marks_table().await;
    let app = unique_name("begin-trap");
    let (tarn, _dir) = start(&app, &hostile::trap_after_begin(), "");
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_clean(&tarn, &observer, &app, &app).await;
    let metrics = get(tarn.admin_port, "/metrics").await.text();
    assert!(
        metrics.contains("tarn_pool_resets_total{database=\"default\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn returning_with_an_open_transaction_rolls_it_back() {
    let observer = marks_table().await;
    let app = unique_name("leak");
    let (tarn, _dir) = start(&app, &hostile::return_in_transaction(&insert(&app)), "");
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_clean(&tarn, &observer, &app, &app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_flood_hits_the_handle_cap() {
    let observer = marks_table().await;
    let app = unique_name("flood");
    let (tarn, _dir) = start(&app, &hostile::handle_flood(), "");
    let r = get(tarn.port, "/hostile/x").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_clean(&tarn, &observer, &app, "never-written").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn running_statement_is_cancelled_at_the_deadline() {
    let observer = marks_table().await;
    let app = unique_name("cancel");
    let (tarn, _dir) = start(
        &app,
        &hostile::execute("select pg_sleep(30)"),
        "timeout_ms = 500",
    );
    let started = Instant::now();
    let r = get(tarn.port, "/hostile/x").await;
    // The host answers the guest's call with `timeout` at the deadline; this
    // guest traps on any error.
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(3);
    while active(&observer, &app).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the statement kept running on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_clean(&tarn, &observer, &app, "never-written").await;
}
