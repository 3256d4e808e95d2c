//! Secrets and grants. The database password must appear in no response
//! body, header, log line or error message, whatever goes wrong (every
//! fault test checks this for its own tarn too; here a tour of failures
//! runs against a server that really checks passwords). A guest that opens
//! a database it was not granted gets `not allowed`, and the attempt is
//! logged.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tarn_tests::faults::{Database, PASSWORD};
use tarn_tests::http::{get, post_json, send};
use tarn_tests::invariants::assert_no_secret;
use tarn_tests::tarn::{Component, Options, Tarn, manifest, manifest_of};
use tarn_tests::{TempDir, figures, run_output, rust_guest, tarn_binary, unique_name};

/// A password with characters that must be percent-encoded in a URL.
const TOUR_PASSWORD: &str = "Tour:p@ss/w%rd?-42";

/// `TOUR_PASSWORD` percent-encoded, as it appears in a URL.
const TOUR_PASSWORD_ENCODED: &str = "Tour%3Ap%40ss%2Fw%25rd%3F-42";

/// Every text tarn produced, with where it came from.
#[derive(Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push((source.into(), text.into()));
    }

    async fn request(&mut self, port: u16, method: &str, path: &str, body: &str) -> u16 {
        let reply = send(port, method, path, Bytes::from(body.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let headers: String = reply
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect();
        self.add(
            format!("{method} {path}"),
            format!("{headers}\n{}", reply.text()),
        );
        reply.status
    }

    fn assert_clean(&self) {
        for secret in [TOUR_PASSWORD, TOUR_PASSWORD_ENCODED, PASSWORD] {
            assert_no_secret(secret, self.0.iter().map(|(s, t)| (s.as_str(), t.as_str())));
        }
    }
}

/// Runs `tarn check` with `TARN_DATABASE_URL` set; returns its output.
fn check(dir: &TempDir, url: &str) -> (bool, String) {
    std::fs::write(dir.path().join("spin.toml"), manifest(rust_guest(), ""))
        .expect("write manifest");
    run_output(
        Command::new(tarn_binary())
            .args(["check", "--manifest", "spin.toml"])
            .current_dir(dir.path())
            .env("TARN_DATABASE_URL", url)
            .env_remove("DATABASE_URL"),
    )
}

/// Bar: across a tour of failures — wrong password (URL and key/value
/// forms), a bad URL, the database stopped and restarted under a running
/// tarn, backends killed, SQL errors, oversized results, shutdown — the
/// password (raw or percent-encoded) appears in no response body or header,
/// no log line and no error message.
#[tokio::test(flavor = "multi_thread")]
async fn password_never_leaks() {
    let mut db = Database::start().await;
    db.require_password("app", TOUR_PASSWORD).await;
    let app = unique_name("secrets");
    let port = db.port();
    let url = |password: &str| {
        format!(
            "postgres://app:{password}@127.0.0.1:{port}/{}?application_name={app}",
            db.database()
        )
    };
    let mut transcript = Transcript::default();
    let dir = TempDir::new("secrets");

    let (ok, text) = check(&dir, &url(&format!("{TOUR_PASSWORD_ENCODED}x")));
    assert!(
        !ok && text.contains("password authentication failed"),
        "{text}"
    );
    transcript.add("tarn check, wrong password (URL)", text);
    let key_value = format!(
        "host=127.0.0.1 port={port} user=app dbname={} password='{TOUR_PASSWORD}x'",
        db.database()
    );
    let (ok, text) = check(&dir, &key_value);
    assert!(
        !ok && text.contains("password authentication failed"),
        "{text}"
    );
    transcript.add("tarn check, wrong password (key/value)", text);
    let (ok, text) = check(
        &dir,
        &format!("postgres://app:{TOUR_PASSWORD_ENCODED}@127.0.0.1:notaport/db"),
    );
    assert!(!ok, "{text}");
    transcript.add("tarn check, bad URL", text);
    let (ok, text) = check(&dir, &url(TOUR_PASSWORD_ENCODED));
    assert!(ok, "the right password should pass: {text}");
    transcript.add("tarn check, right password", text);

    let mut tarn = Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config:
            "[database.default]\nlazy_init = true\npool_timeout = 2\nconnect_timeout = 2\n\
                         [runtime]\nmax_result_rows = 10\n"
                .into(),
        database_url: None,
        args: vec![],
        env: vec![("TARN_DATABASE_URL".into(), url(TOUR_PASSWORD_ENCODED))],
    });
    let (p, admin) = (tarn.port, tarn.admin_port);
    let query = |sql: &str| json!({ "sql": sql }).to_string();
    let mut statuses = Vec::new();
    for (method, path, body) in [
        ("GET", "/config", String::new()),
        ("GET", "/health/db", String::new()),
        ("POST", "/query", query("select current_user as u")),
        ("POST", "/query", query("selec 1")),
        (
            "POST",
            "/query",
            query("select g from generate_series(1, 100) g"),
        ),
        ("POST", "/query", query("select 1/0")),
        ("GET", "/pool/stats", String::new()),
    ] {
        statuses.push(transcript.request(p, method, path, &body).await);
    }
    for path in ["/metrics", "/readyz", "/nope"] {
        statuses.push(transcript.request(admin, "GET", path, "").await);
    }
    db.terminate_backends(&app).await;
    statuses.push(
        transcript
            .request(p, "POST", "/query", &query("select 1"))
            .await,
    );
    db.stop().await;
    for (method, path, body) in [
        ("GET", "/health/db", String::new()),
        ("POST", "/query", query("select 1")),
        ("GET", "/config", String::new()),
    ] {
        statuses.push(transcript.request(p, method, path, &body).await);
    }
    statuses.push(transcript.request(admin, "GET", "/readyz", "").await);
    db.start_again().await;
    statuses.push(transcript.request(p, "GET", "/health/db", "").await);
    let exited = tarn.terminate(Duration::from_secs(20));
    transcript.add("tarn's log", tarn.log());
    figures(
        "password never leaks",
        &format!(
            "{} texts checked (tarn check outputs, responses with headers, the whole log); statuses {statuses:?}; \
             clean exit {exited:?}",
            transcript.0.len()
        ),
    );
    assert_eq!(exited, Some(true), "tarn did not stop cleanly");
    assert!(
        statuses.contains(&503),
        "the outage should have shown: {statuses:?}"
    );
    let config = transcript
        .0
        .iter()
        .find(|(s, _)| s == "GET /config")
        .expect("/config");
    assert!(
        config.1.contains("app:***@"),
        "the URL is not redacted: {}",
        config.1
    );
    transcript.assert_clean();
}

/// Bar: a guest that opens a database it was not granted gets
/// `not-allowed` (403), and tarn logs the attempt with the component and
/// database names.
#[tokio::test(flavor = "multi_thread")]
async fn ungranted_database_is_refused_and_logged() {
    let app = unique_name("grants");
    let machine =
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres?application_name={app}");
    let tarn = Tarn::start(Options {
        manifest: manifest_of(&[Component {
            id: "nosy",
            route: "/...",
            source: rust_guest(),
            limits: "",
            environment: "TARN_DATABASE = \"reports\"",
        }]),
        runtime_config: format!("[database.reports]\nurl = \"{machine}\"\npool_size = 1\n"),
        database_url: Some(machine.clone()),
        args: vec![],
        env: vec![],
    });
    let r = post_json(tarn.port, "/query", &json!({ "sql": "select 1 as one" })).await;
    let health = get(tarn.port, "/health/db").await;
    let logged = tarn.wait_for_log(
        "guest opened a database it was not granted",
        Duration::from_secs(2),
    );
    let log = tarn.log();
    let line = log
        .lines()
        .find(|l| l.contains("not granted"))
        .unwrap_or_default()
        .to_string();
    figures(
        "ungranted database",
        &format!(
            "/query {} {}; /health/db {}; logged: {line}",
            r.status,
            r.text(),
            health.status
        ),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["kind"], "not-allowed", "{}", r.text());
    assert!(r.text().contains("reports"), "{}", r.text());
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(logged, "the attempt was not logged:\n{log}");
    assert!(
        line.contains("nosy") && line.contains("reports"),
        "the log line should name both: {line}"
    );
    assert_no_secret(
        PASSWORD,
        [
            ("tarn's log", log.as_str()),
            ("a response", r.text().as_str()),
        ],
    );
}
