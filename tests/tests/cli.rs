//! The `tarn` command line: help, `check`, `build`, start-up errors, the
//! private database and the compiled-component cache.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use tarn_tests::http::get;
use tarn_tests::tarn::{Options, Tarn, manifest};
use tarn_tests::{TempDir, rust_guest, tarn_binary};

fn tarn(args: &[&str], dir: &Path) -> Output {
    Command::new(tarn_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("TARN_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tarn")
}

/// `tarn check` against the machine's PostgreSQL, in `dir`.
fn check(dir: &Path) -> Output {
    tarn(
        &[
            "check",
            "--database-url",
            "postgres://postgres@127.0.0.1/postgres",
        ],
        dir,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_explains_every_option_and_its_default() {
    let dir = TempDir::new("help");
    let out = tarn(&["up", "--help"], dir.path());
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--database-url",
        "TARN_DATABASE_URL",
        "--pool-size",
        "default: 5",
        "--max-overflow",
        "default: 10",
        "--pool-timeout",
        "default: 30",
        "--pool-recycle",
        "default: 3600",
        "--pool-pre-ping",
        "--lazy-init",
        "--listen",
        "127.0.0.1:3000",
        "--admin-listen",
        "127.0.0.1:9090",
        "--manifest",
    ] {
        assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
    }
    let out = tarn(&["--help"], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["up", "build", "check"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn bad_settings_name_the_key_and_value() {
    let dir = TempDir::new("badcfg");
    std::fs::write(dir.path().join("spin.toml"), manifest(rust_guest(), "")).unwrap();
    let out = tarn(
        &[
            "check",
            "--pool-size",
            "0",
            "--database-url",
            "postgres://postgres@127.0.0.1/postgres",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("TARN_POOL_SIZE") && err.contains('0'), "{err}");

    std::fs::write(
        dir.path().join("rc.toml"),
        "[database.default]\nmax_overflow = -2\n",
    )
    .unwrap();
    let out = tarn(&["check", "--runtime-config", "rc.toml"], dir.path());
    let err = stderr(&out);
    assert!(
        err.contains("database.default.max_overflow") && err.contains("-2"),
        "{err}"
    );

    let out = tarn(
        &["check", "--database-url", "postgres://u:hunter2@h:nope/db"],
        dir.path(),
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}

#[test]
fn bad_manifest_names_the_line() {
    let dir = TempDir::new("badmanifest");
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"nope\"\n",
    )
    .unwrap();
    let out = check(dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("spin.toml:6"), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn missing_component_is_a_clear_error() {
    let dir = TempDir::new("missing");
    std::fs::write(
        dir.path().join("spin.toml"),
        manifest(&dir.path().join("absent.wasm"), ""),
    )
    .unwrap();
    let out = check(dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("absent.wasm"), "{err}");
    // The reason, once.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn database_down_at_start_fails_fast_naming_the_host() {
    let dir = TempDir::new("down");
    std::fs::write(dir.path().join("spin.toml"), manifest(rust_guest(), "")).unwrap();
    // Nothing listens on port 1.
    let out = tarn(
        &[
            "up",
            "--no-build",
            "--database-url",
            "postgres://postgres:pw@127.0.0.1:1/postgres",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}

#[test]
fn check_reports_databases_and_components() {
    let dir = TempDir::new("check");
    std::fs::write(dir.path().join("spin.toml"), manifest(rust_guest(), "")).unwrap();
    let out = tarn(
        &[
            "check",
            "--database-url",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reachable"), "{text}");
    assert!(text.contains("all components load"), "{text}");
}

#[test]
fn build_runs_the_build_command_and_explains_failures() {
    let dir = TempDir::new("build");
    let wasm = dir.path().join("out.wasm");
    let ok = format!(
        "{}[component.app.build]\ncommand = \"cp '{}' out.wasm\"\n",
        manifest(&wasm, ""),
        rust_guest().display()
    );
    std::fs::write(dir.path().join("spin.toml"), ok).unwrap();
    let out = tarn(&["build"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wasm.exists());

    let failing = format!(
        "{}[component.app.build]\ncommand = \"exit 3\"\n",
        manifest(&wasm, "")
    );
    std::fs::write(dir.path().join("spin.toml"), failing).unwrap();
    let out = tarn(&["build"], dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("`exit 3` failed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lazy_init_opens_no_connection_until_first_use() {
    let app = tarn_tests::unique_name("lazy");
    let tarn = Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config: String::new(),
        database_url: Some(format!(
            "postgres://postgres@127.0.0.1:5432/postgres?application_name={app}"
        )),
        args: vec!["--lazy-init".into(), "true".into()],
        env: vec![],
    });
    let observer = tarn_tests::postgres::connect(tarn_tests::postgres::MACHINE_URL).await;
    assert_eq!(tarn_tests::postgres::connections(&observer, &app).await, 0);
    assert_eq!(get(tarn.port, "/health/db").await.status, 200);
    assert!(tarn_tests::postgres::connections(&observer, &app).await >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_url_tarn_up_starts_a_private_postgres() {
    let tarn = Tarn::start(Options {
        manifest: manifest(rust_guest(), ""),
        runtime_config: String::new(),
        database_url: None,
        args: vec![],
        env: vec![],
    });
    assert!(
        tarn.log()
            .contains("started a private PostgreSQL at postgres://"),
        "{}",
        tarn.log()
    );
    let r = get(tarn.port, "/health/db").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = tarn_tests::http::post_json(
        tarn.port,
        "/notes",
        &serde_json::json!({"title": "t", "body": "b"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_load_components_from_the_cache() {
    let start = || {
        Tarn::start(Options {
            manifest: manifest(rust_guest(), ""),
            runtime_config: String::new(),
            database_url: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            args: vec![],
            env: vec![],
        })
    };
    drop(start());
    let tarn = start();
    assert!(
        tarn.wait_for_log("origin=Cache", Duration::from_secs(2)),
        "{}",
        tarn.log()
    );
}
