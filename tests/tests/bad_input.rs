//! Bad input gets a clear error, loses nothing and leaks nothing: broken
//! HTTP, slow clients, bad JSON, bad SQL and parameters, huge results, and
//! invalid configuration or manifest fields.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tarn_tests::faults::PASSWORD;
use tarn_tests::http::{get, post_json, send_with};
use tarn_tests::invariants::{assert_no_secret, settle};
use tarn_tests::postgres::MACHINE_URL;
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{TempDir, figures, run_output, rust_guest, tarn_binary, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn start_tarn(app: &str, config: &str) -> Tarn {
    Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config: config.to_string(),
        database_url: Some(format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres?application_name={app}"
        )),
        args: vec![],
        env: vec![],
    })
}

/// Writes `bytes` on a new connection and reads until the server closes it
/// or `wait` passes; returns what came back and when the server closed.
async fn raw(port: u16, bytes: &[u8], wait: Duration) -> (String, Option<Duration>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let started = Instant::now();
    // The server may close as soon as it sees enough; a failed write is fine.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout_at((started + wait).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

/// Bar: malformed requests get 400, oversized headers 431, oversized bodies
/// 413 (declared or streamed), slow-header clients are cut off within their
/// timeout (0.5 s here) and slow-body clients get 408 within theirs (1 s),
/// neither holding the server (a normal request is served meanwhile), bad JSON / wrong types / non-UTF-8 get 400 with a
/// message saying what is wrong; tarn's pool is clean afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn http_bad_input() {
    let app = unique_name("badhttp");
    let config =
        "[http]\nmax_body_kb = 4\nheader_read_timeout_ms = 500\nbody_read_timeout_ms = 1000\n";
    let tarn = start_tarn(&app, config);
    let port = tarn.port;
    let wait = Duration::from_secs(5);
    let mut seen = Vec::new();

    let (answer, _) = raw(port, b"GARBAGE\r\n\r\n", wait).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400"),
        "malformed: {answer}"
    );
    seen.push(format!("malformed request line: {}", status_line(&answer)));

    let (answer, _) = raw(port, b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n", wait).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400"),
        "non-UTF-8 path: {answer}"
    );
    seen.push(format!("non-UTF-8 path: {}", status_line(&answer)));

    let huge = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 << 10)
    );
    let (answer, _) = raw(port, huge.as_bytes(), wait).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431"),
        "oversized headers: {answer}"
    );
    seen.push(format!("100 KiB header: {}", status_line(&answer)));

    let r = send_with(port, "POST", "/query", &[], vec![b'x'; 8 << 10])
        .await
        .expect("send");
    assert_eq!(r.status, 413, "{}", r.text());
    seen.push(format!("8 KiB body (limit 4): {}", r.status));
    let chunked = format!(
        "POST /query HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2000\r\n{}\r\n0\r\n\r\n",
        "x".repeat(0x2000)
    );
    let (answer, _) = raw(port, chunked.as_bytes(), wait).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 413"),
        "chunked oversized body: {answer}"
    );
    seen.push(format!("8 KiB chunked body: {}", status_line(&answer)));

    let (answer, _) = raw(
        port,
        b"GET /health HTTP/1.1\r\nhost: x\r\nx-bad: caf\xe9\r\n\r\n",
        wait,
    )
    .await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400"),
        "non-ASCII header value: {answer}"
    );
    assert!(answer.contains("not visible ASCII"), "{answer}");
    seen.push(format!("non-ASCII header value: {}", status_line(&answer)));

    // Slow clients: 20 connections send half a request line / half a body
    // and stall; each is cut off, and a normal request is served meanwhile.
    let slow_header =
        (0..10).map(|_| tokio::spawn(raw(port, b"GET /health HTTP/1.1\r\nhost:", wait)));
    let slow_body = (0..10).map(|_| {
        tokio::spawn(raw(
            port,
            b"POST /query HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"sql\":",
            Duration::from_secs(20),
        ))
    });
    let slow: Vec<_> = slow_header.chain(slow_body).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let served_at = Instant::now();
    let ok = get(port, "/health").await;
    let served_in = served_at.elapsed();
    assert_eq!(ok.status, 200);
    let mut cut_off = Vec::new();
    for (i, client) in slow.into_iter().enumerate() {
        let (answer, closed) = client.await.expect("slow client");
        let kind = if i < 10 { "slow header" } else { "slow body" };
        let closed =
            closed.unwrap_or_else(|| panic!("a {kind} client was never cut off: {answer:?}"));
        cut_off.push((kind, closed, status_line(&answer).to_string()));
    }
    let header_cut = cut_off[..10].iter().map(|c| c.1).max().unwrap_or_default();
    let body_cut = cut_off[10..].iter().map(|c| c.1).max().unwrap_or_default();
    assert!(
        header_cut <= Duration::from_secs(2),
        "slow-header clients held on for {header_cut:?}"
    );
    assert!(
        served_in <= Duration::from_secs(1),
        "a normal request waited {served_in:?}"
    );
    seen.push(format!(
        "10 slow-header clients cut off within {header_cut:?}; 10 slow-body clients cut off within \
         {body_cut:?} ({}); /health meanwhile in {served_in:?}",
        cut_off[10].2
    ));

    for (body, expect) in [
        (b"{not json".to_vec(), "invalid JSON body"),
        (b"[1, 2]".to_vec(), "must be a JSON object"),
        (b"{\"sql\": 5}".to_vec(), "`sql` must be a string"),
        (
            b"{\"sql\": \"select 1\", \"params\": \"x\"}".to_vec(),
            "`params` must be an array",
        ),
        (b"{\"params\": []}".to_vec(), "missing `sql`"),
        (b"{\"sql\": \"  \"}".to_vec(), "must not be empty"),
        (vec![0xff, 0xfe, b'{', 0x80], "invalid JSON body"),
    ] {
        let r = send_with(
            port,
            "POST",
            "/query",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await
        .expect("send");
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            r.text()
        );
        assert!(
            r.text().contains(expect),
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            r.text()
        );
    }
    seen.push("7 kinds of bad JSON: 400 each, naming the problem".into());

    let settled = settle(&tarn, MACHINE_URL, &app, None, Duration::from_secs(5)).await;
    figures(
        "bad HTTP input",
        &format!("{}; settled: {settled:?}", seen.join("; ")),
    );
    assert!(
        body_cut <= Duration::from_secs(3),
        "slow-body clients held on for {body_cut:?}"
    );
    assert!(
        cut_off[10].2.starts_with("HTTP/1.1 408"),
        "slow body: {}",
        cut_off[10].2
    );
    assert_no_secret(PASSWORD, [("tarn's log", tarn.log().as_str())]);
}

/// Bar: SQL errors, wrong parameter counts and types and out-of-range values
/// get 400 with the SQLSTATE or a message naming the parameter; results
/// over the row or byte cap get a clear `too-large` error quickly, tarn's
/// memory does not balloon, and the pool is clean afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn sql_bad_input() {
    let app = unique_name("badsql");
    let config = "[runtime]\nmax_result_rows = 1000\nmax_result_bytes = 1048576\n";
    let tarn = start_tarn(&app, config);
    let port = tarn.port;
    let mut seen = Vec::new();
    let cases = [
        (json!({"sql": "selec 1"}), "42601"),
        (json!({"sql": "select * from no_such_table_here"}), "42P01"),
        (
            json!({"sql": "select $1::int, $2::int", "params": [1]}),
            "bad-parameter",
        ),
        (
            json!({"sql": "select $1::int as v", "params": ["x"]}),
            "22P02",
        ),
        (
            json!({"sql": "select $1::smallint as v", "params": [100000]}),
            "out of range",
        ),
        (json!({"sql": "select 2147483647::int + 1 as v"}), "22003"),
        (json!({"sql": "select 1 / 0 as v"}), "22012"),
        (json!({"sql": "select '2024-02-30'::date as v"}), "22008"),
        (
            json!({"sql": "select g from generate_series(1, 1000000) g"}),
            "1000 rows",
        ),
        (
            json!({"sql": "select repeat('x', 100000) from generate_series(1, 100)"}),
            "1048576 bytes",
        ),
    ];
    let rss_before = tarn.rss_kib();
    for (body, expect) in &cases {
        let started = Instant::now();
        let r = post_json(port, "/query", body).await;
        let took = started.elapsed();
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(
            r.text().contains(expect),
            "{body}: expected {expect:?} in {}",
            r.text()
        );
        assert!(took < Duration::from_secs(5), "{body} took {took:?}");
        seen.push(format!(
            "{} -> {} {:?} in {took:?}",
            body["sql"],
            r.status,
            r.json()["kind"]
        ));
        assert_no_secret(PASSWORD, [("a response", r.text().as_str())]);
    }
    let rss_after = tarn.rss_kib();
    let settled = settle(&tarn, MACHINE_URL, &app, None, Duration::from_secs(5)).await;
    let r = post_json(port, "/query", &json!({"sql": "select 1 as one"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    figures(
        "bad SQL input",
        &format!(
            "{}; RSS {} -> {} MiB; settled: {settled:?}",
            seen.join("; "),
            rss_before >> 10,
            rss_after >> 10
        ),
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 64 << 10,
        "tarn grew by {} MiB",
        rss_after.saturating_sub(rss_before) >> 10
    );
    assert_no_secret(PASSWORD, [("tarn's log", tarn.log().as_str())]);
}

/// Runs `tarn check` with a runtime config and a manifest; returns whether
/// it succeeded and what it printed.
fn check(dir: &Path, config: &str, manifest: &str, env: &[(&str, &str)]) -> (bool, String) {
    std::fs::write(dir.join("runtime-config.toml"), config).expect("write config");
    std::fs::write(dir.join("spin.toml"), manifest).expect("write manifest");
    run_output(
        Command::new(tarn_binary())
            .args([
                "check",
                "--manifest",
                "spin.toml",
                "--runtime-config",
                "runtime-config.toml",
            ])
            .current_dir(dir)
            .env_remove("TARN_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied()),
    )
}

/// Bar: every invalid runtime-config field, environment override and
/// manifest field makes `tarn check` fail with an error that names the
/// field (and never echoes a password).
#[test]
fn invalid_fields_are_named() {
    let dir = TempDir::new("invalid-fields");
    std::fs::write(dir.path().join("app.wasm"), b"").expect("write wasm");
    let good_manifest = manifest(Path::new("app.wasm"), "");
    let db = format!(
        "[database.default]\nurl = \"postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres\"\n"
    );
    let config_cases: &[(&str, &str)] = &[
        ("pool_size = 0", "database.default.pool_size"),
        ("pool_size = -3", "database.default.pool_size"),
        ("max_overflow = -1", "database.default.max_overflow"),
        ("pool_timeout = 0", "database.default.pool_timeout"),
        ("pool_timeout = \"soon\"", "pool_timeout"),
        ("pool_recycle = \"hourly\"", "pool_recycle"),
        ("pool_pre_ping = \"yes\"", "pool_pre_ping"),
        ("lazy_init = 1", "lazy_init"),
        (
            "overflow_idle_timeout = -1",
            "database.default.overflow_idle_timeout",
        ),
        ("max_waiting = -1", "database.default.max_waiting"),
        ("connect_timeout = 0", "database.default.connect_timeout"),
        ("use_lifo = \"no\"", "use_lifo"),
        ("session_reset = \"never\"", "session_reset"),
        ("pool_sise = 3", "pool_sise"),
    ];
    let mut named = 0;
    for (line, key) in config_cases {
        let (ok, text) = check(dir.path(), &format!("{db}{line}\n"), &good_manifest, &[]);
        assert!(
            !ok && text.contains(key),
            "`{line}` should fail naming {key}: {text}"
        );
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
        named += 1;
    }
    let bad_url = format!("[database.default]\nurl = \"postgres://u:{PASSWORD}@h:notaport/db\"\n");
    let other_cases: &[(&str, &str)] = &[
        (&bad_url, "database.default.url"),
        (
            "[database.Bad]\nurl = \"postgres://u@h/db\"\n",
            "database.Bad",
        ),
        (
            "[database.reports]\npool_size = 2\n",
            "database.reports.url",
        ),
        (
            "[runtime]\nmemory_limit_mb = 0\n",
            "runtime.memory_limit_mb",
        ),
        ("[runtime]\ncpu_limit_ms = 0\n", "runtime.cpu_limit_ms"),
        (
            "[runtime]\nrequest_timeout_ms = -5\n",
            "runtime.request_timeout_ms",
        ),
        ("[runtime]\nmax_instances = 0\n", "runtime.max_instances"),
        ("[runtime]\nmax_handles = 0\n", "runtime.max_handles"),
        (
            "[runtime]\nmax_result_rows = 0\n",
            "runtime.max_result_rows",
        ),
        (
            "[runtime]\nmax_result_bytes = 0\n",
            "runtime.max_result_bytes",
        ),
        ("[http]\nmax_body_kb = 0\n", "http.max_body_kb"),
        (
            "[http]\nmax_concurrent_requests = 0\n",
            "http.max_concurrent_requests",
        ),
        (
            "[http]\nheader_read_timeout_ms = 0\n",
            "http.header_read_timeout_ms",
        ),
        ("[http]\nshutdown_grace_ms = 0\n", "http.shutdown_grace_ms"),
        ("[http]\nlisten = \"nowhere\"\n", "listen"),
        ("[http]\nlisten_port = 1\n", "listen_port"),
        ("[nonsense]\n", "nonsense"),
    ];
    for (config, key) in other_cases {
        let (ok, text) = check(dir.path(), config, &good_manifest, &[]);
        assert!(
            !ok && text.contains(key),
            "`{config}` should fail naming {key}: {text}"
        );
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
        named += 1;
    }
    for (var, value) in [
        ("TARN_POOL_SIZE", "0"),
        ("TARN_MAX_OVERFLOW", "-2"),
        ("TARN_POOL_TIMEOUT", "-1"),
        ("TARN_POOL_PRE_PING", "maybe"),
        ("TARN_LAZY_INIT", "maybe"),
    ] {
        let (ok, text) = check(dir.path(), &db, &good_manifest, &[(var, value)]);
        let flag = var
            .trim_start_matches("TARN_")
            .to_lowercase()
            .replace('_', "-");
        assert!(
            !ok && (text.contains(var) || text.contains(&flag)),
            "{var}={value} should fail naming it: {text}"
        );
        named += 1;
    }
    let component = "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n[component.app]\nsource = \"app.wasm\"\n";
    let head = "spin_manifest_version = 2\n[application]\nname = \"t\"\n";
    let manifest_cases: Vec<(String, &str)> = vec![
        (
            head.replace("= 2", "= 1") + component,
            "spin_manifest_version",
        ),
        (
            format!(
                "{head}[[trigger.http]]\nroute = \"no-slash\"\ncomponent = \"app\"\n[component.app]\nsource = \"app.wasm\"\n"
            ),
            "route",
        ),
        (
            format!(
                "{head}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"nope\"\n[component.app]\nsource = \"app.wasm\"\n"
            ),
            "nope",
        ),
        (format!("{head}{component}sourc = \"x\"\n"), "sourc"),
        (
            format!("{head}{component}databases = [\"Bad Name\"]\n"),
            "database grant",
        ),
        (
            format!("{head}{component}databases = [\"reports\"]\n"),
            "reports",
        ),
        (
            format!("{head}{component}allowed_outbound_hosts = [\"*\"]\n"),
            "allowed_outbound_hosts",
        ),
        (
            format!("{head}{component}[component.app.limits]\nmemory_mb = 0\n"),
            "limits.memory_mb",
        ),
        (
            format!("{head}{component}[component.app.limits]\nmemory_mb = 5000\n"),
            "limits.memory_mb",
        ),
        (
            format!("{head}{component}[component.app.limits]\ncpu_ms = 0\n"),
            "limits.cpu_ms",
        ),
        // Type errors point at the value's line and column (the manifest
        // parser does not repeat the key's name for them).
        (
            format!("{head}{component}[component.app.limits]\ntimeout_ms = -1\n"),
            "spin.toml:10:14",
        ),
        (
            format!("{head}{component}[component.app.limits]\nmax_connections = 0\n"),
            "limits.max_connections",
        ),
        (
            format!("{head}{component}[component.app.limits]\nmax_body_kb = \"big\"\n"),
            "spin.toml:10:15",
        ),
        (
            format!("{head}{component}[component.app.limits]\nmax_conections = 2\n"),
            "max_conections",
        ),
    ];
    for (text, key) in &manifest_cases {
        let (ok, out) = check(dir.path(), &db, text, &[]);
        assert!(
            !ok && out.contains(key),
            "manifest should fail naming {key}:\n{text}\n---\n{out}"
        );
        named += 1;
    }
    figures(
        "invalid configuration and manifest fields",
        &format!("{named} invalid fields, each named in the error"),
    );
}
