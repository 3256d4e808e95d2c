//! The sample app's contract, checked the same way for every guest
//! language, and the builds of the non-Rust guests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::json;

use crate::http::{Reply, get, post_json, send};
use crate::workspace;

/// Builds `guest/<lang>` with its `build.sh` (once per test process) and
/// returns the component.
pub fn guest(lang: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let dir = workspace().join("guest").join(lang);
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|l| l == lang) {
        let out = Command::new("bash")
            .arg(dir.join("build.sh"))
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run guest/{lang}/build.sh: {e}"));
        assert!(
            out.status.success(),
            "guest/{lang}/build.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        built.push(lang.to_string());
    }
    dir.join("build").join("guest.wasm")
}

/// The fields of `GET /pool/stats` (SQLAlchemy's names).
pub const POOL_STATS_KEYS: [&str; 6] = [
    "size",
    "checked_in",
    "checked_out",
    "overflow",
    "total",
    "waiting",
];

/// Checks every endpoint of the sample app served on `port`.
pub async fn check_endpoints(port: u16, wasm: &Path) {
    let what = wasm.display();
    let r = get(port, "/health").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"status": "ok"})),
        "{what}"
    );

    let r = get(port, "/health/db").await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["database_healthy"], true, "{what}");
    assert_eq!(r.json()["status"], "connected", "{what}");

    let r = get(port, "/config").await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["pool_size"], 5, "{what}");
    assert_eq!(r.json()["max_overflow"], 10, "{what}");

    let r = get(port, "/pool/stats").await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    for key in POOL_STATS_KEYS {
        assert!(
            r.json()[key].is_u64(),
            "{what}: {key} missing in {}",
            r.text()
        );
    }

    let r = post_json(
        port,
        "/query",
        &json!({"sql": "select $1::int + 7 as answer, 'x' as s, null::text as n", "params": [5]}),
    )
    .await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["columns"], json!(["answer", "s", "n"]), "{what}");
    assert_eq!(r.json()["rows"], json!([[12, "x", null]]), "{what}");
    assert_eq!(r.json()["row_count"], 1, "{what}");

    let r = post_json(
        port,
        "/query",
        &json!({"sql": "select * from no_such_table"}),
    )
    .await;
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    assert_eq!(r.json()["code"], "42P01", "{what}");
    // Every guest's error bodies carry the host's request id.
    let carries_request_id = |r: &Reply| {
        assert!(r.header("x-request-id").is_some(), "{what}");
        assert_eq!(
            r.json()["request_id"].as_str(),
            r.header("x-request-id"),
            "{what}: {}",
            r.text()
        );
    };
    carries_request_id(&r);
    let r = send(port, "POST", "/query", "{not json")
        .await
        .expect("send");
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    carries_request_id(&r);

    let r = post_json(
        port,
        "/notes",
        &json!({"title": "polyglot", "body": what.to_string()}),
    )
    .await;
    assert_eq!(r.status, 201, "{what}: {}", r.text());
    let id = r.json()["id"].as_i64().expect("id");
    let r = get(port, &format!("/notes/{id}")).await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["title"], "polyglot", "{what}");
    let r = send(port, "DELETE", &format!("/notes/{id}"), "")
        .await
        .expect("send");
    assert_eq!(r.status, 204, "{what}: {}", r.text());
    assert_eq!(
        get(port, &format!("/notes/{id}")).await.status,
        404,
        "{what}"
    );
    assert_eq!(get(port, "/nope").await.status, 404, "{what}");
}
