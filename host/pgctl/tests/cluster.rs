//! Integration tests against real PostgreSQL servers started from the installed binaries.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use tarn_pgctl::{Cluster, ClusterOptions, PgCtlError, StopMode};

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit(')').next().unwrap().trim_start().chars().next(),
            Some('Z')
        )
    })
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tarn-pgctl-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn temp_cluster_runs_sql_and_reports_its_address() {
    let cluster = Cluster::start_temp().unwrap();
    assert!(cluster.is_running());
    assert_eq!(cluster.psql("SELECT 1 + 1").unwrap(), "2");
    assert_eq!(
        cluster
            .psql("SELECT current_database(), current_user")
            .unwrap(),
        "tarn|postgres"
    );
    assert_eq!(cluster.psql("SHOW fsync").unwrap(), "off");
    assert_eq!(cluster.psql("SHOW listen_addresses").unwrap(), "127.0.0.1");
    assert_eq!(cluster.host(), "127.0.0.1");
    assert_eq!(cluster.user(), "postgres");
    assert_eq!(cluster.database(), "tarn");
    assert_ne!(cluster.port(), 5432);
    assert_eq!(
        cluster.url(),
        format!("postgres://postgres@127.0.0.1:{}/tarn", cluster.port())
    );
    let socket = cluster
        .socket_dir()
        .unwrap()
        .join(format!(".s.PGSQL.{}", cluster.port()));
    assert!(socket.exists(), "{} missing", socket.display());
    assert_eq!(cluster.psql("SELECT 1; SELECT 2").unwrap(), "1\n2");
    assert!(!cluster.is_persistent());
    assert!(cluster.bindir().join("postgres").is_file());
}

#[test]
fn sql_errors_are_reported_with_the_statement() {
    let cluster = Cluster::start_temp().unwrap();
    let error = cluster.psql("SELECT * FROM no_such_table").unwrap_err();
    assert!(matches!(error, PgCtlError::Sql { .. }));
    let message = error.to_string();
    assert!(
        message.contains("no_such_table") && message.contains("does not exist"),
        "{message}"
    );
    assert_eq!(
        cluster
            .psql_in("postgres", "SELECT current_database()")
            .unwrap(),
        "postgres"
    );
}

#[test]
fn stop_and_start_again_keep_data_and_port() {
    let mut cluster = Cluster::start_temp().unwrap();
    cluster
        .psql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .unwrap();
    let port = cluster.port();
    cluster.stop().unwrap();
    assert!(!cluster.is_running());
    assert_eq!(cluster.pid(), None);
    assert!(
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok(),
        "port still bound"
    );
    let error = cluster.psql("SELECT 1").unwrap_err();
    assert!(matches!(error, PgCtlError::NotRunning { .. }), "{error}");
    cluster.stop().unwrap();
    cluster.start_again().unwrap();
    cluster.start_again().unwrap();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("SELECT n FROM kept").unwrap(), "7");
}

#[test]
fn restart_applies_alter_system_settings() {
    let mut cluster = Cluster::start_temp().unwrap();
    let before = cluster.pid().unwrap();
    cluster
        .psql("ALTER SYSTEM SET max_connections = 20")
        .unwrap();
    cluster.restart().unwrap();
    assert_ne!(cluster.pid().unwrap(), before);
    assert_eq!(cluster.psql("SHOW max_connections").unwrap(), "20");
}

#[test]
fn kill_takes_down_every_process_and_recovers_on_start() {
    let mut cluster = Cluster::start_temp().unwrap();
    cluster
        .psql("CREATE TABLE survived (n int); INSERT INTO survived VALUES (1)")
        .unwrap();
    // With synchronous_commit off a commit may not be in the WAL yet; a checkpoint flushes it.
    cluster.psql("CHECKPOINT").unwrap();
    let pid = cluster.pid().unwrap();
    let backends: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|child: &u32| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                stat.rsplit(')').next().unwrap().split_whitespace().nth(1) == Some(&pid.to_string())
            })
        })
        .collect();
    assert!(!backends.is_empty(), "a server has auxiliary processes");
    cluster.kill().unwrap();
    assert!(!cluster.is_running());
    assert!(!alive(pid));
    assert!(backends.iter().all(|&backend| !alive(backend)));
    cluster.start_again().unwrap();
    assert_eq!(cluster.psql("SELECT n FROM survived").unwrap(), "1");
    cluster.stop_with(StopMode::Immediate).unwrap();
    cluster.start_again().unwrap();
    assert_eq!(cluster.psql("SELECT count(*) FROM survived").unwrap(), "1");
}

#[test]
fn drop_stops_the_server_and_removes_its_directories() {
    let cluster = Cluster::start_temp().unwrap();
    let pid = cluster.pid().unwrap();
    let root = cluster.data_dir().parent().unwrap().to_owned();
    assert!(root.join("data/PG_VERSION").exists());
    drop(cluster);
    assert!(!alive(pid));
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn temp_options_can_be_adjusted() {
    let cluster = Cluster::start_temp_with(|options| {
        options.max_connections = 12;
        options.database = "my app's db".into();
        options.extra_settings = vec![("work_mem".into(), "8MB".into())];
    })
    .unwrap();
    assert_eq!(cluster.psql("SHOW max_connections").unwrap(), "12");
    assert_eq!(cluster.psql("SHOW work_mem").unwrap(), "8MB");
    assert_eq!(
        cluster.psql("SELECT current_database()").unwrap(),
        "my app's db"
    );
    assert!(
        cluster.url().ends_with("/my%20app%27s%20db"),
        "{}",
        cluster.url()
    );
}

#[test]
fn persistent_cluster_is_left_running_and_reused() {
    let scratch = Scratch::new("persistent");
    let mut options = ClusterOptions::new(scratch.path().join("pgdata"));
    options.database = "app".into();
    let cluster = Cluster::start(options.clone()).unwrap();
    assert_eq!(cluster.psql("SHOW fsync").unwrap(), "on");
    cluster
        .psql("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hi')")
        .unwrap();
    let (pid, port) = (cluster.pid().unwrap(), cluster.port());
    drop(cluster);
    assert!(alive(pid), "a persistent cluster outlives its handle");

    let mut reused = Cluster::start(options.clone()).unwrap();
    assert_eq!((reused.pid(), reused.port()), (Some(pid), port));
    assert_eq!(reused.psql("SELECT body FROM notes").unwrap(), "hi");
    reused.stop().unwrap();
    assert!(!alive(pid));

    let mut again = Cluster::start(options).unwrap();
    assert_ne!(again.pid(), Some(pid));
    assert_eq!(again.port(), port, "a free previous port is kept");
    assert_eq!(again.psql("SELECT body FROM notes").unwrap(), "hi");
    again.stop().unwrap();
    assert!(scratch.path().join("pgdata/PG_VERSION").exists());
}

#[test]
fn throwaway_cluster_on_a_taken_port_fails_and_cleans_up() {
    let scratch = Scratch::new("taken-port");
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut options = ClusterOptions::new(scratch.path().join("data"));
    options.port = taken.local_addr().unwrap().port();
    options.persistent = false;
    let error = Cluster::start(options).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, PgCtlError::StartFailed { .. }), "{message}");
    assert!(message.contains("could not bind"), "{message}");
    assert!(
        !scratch.path().join("data").exists(),
        "the created data dir is removed"
    );
}

#[test]
fn refuses_a_directory_that_is_not_a_cluster() {
    let scratch = Scratch::new("not-a-cluster");
    std::fs::write(scratch.path().join("notes.txt"), "mine").unwrap();
    let error = Cluster::start(ClusterOptions::new(scratch.path())).unwrap_err();
    assert!(matches!(error, PgCtlError::NotADataDir { .. }), "{error}");
    assert!(scratch.path().join("notes.txt").exists());
}

#[test]
fn explicit_bindir_without_binaries_says_how_to_install() {
    let scratch = Scratch::new("no-binaries");
    let mut options = ClusterOptions::new(scratch.path().join("data"));
    options.bindir = Some("/nonexistent/bin".into());
    let message = Cluster::start(options).unwrap_err().to_string();
    assert!(message.contains("/nonexistent/bin"), "{message}");
    assert!(message.contains("apt-get install postgresql"), "{message}");
}

#[test]
fn invalid_options_are_rejected_before_touching_disk() {
    let scratch = Scratch::new("invalid");
    let mut options = ClusterOptions::new(scratch.path().join("data"));
    options.max_connections = 0;
    let message = Cluster::start(options).unwrap_err().to_string();
    assert!(message.contains("max_connections"), "{message}");
    assert!(!scratch.path().join("data").exists());
}

#[test]
fn as_root_an_unreachable_data_dir_is_explained() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1);
    if euid != Some("0") {
        return; // Only root hands the server over to the `postgres` user.
    }
    let scratch = Scratch::new("unreachable");
    let private = scratch.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let error = Cluster::start(ClusterOptions::new(private.join("pgdata"))).unwrap_err();
    assert!(matches!(error, PgCtlError::NotAccessible { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("`postgres`") && message.contains("private/pgdata"),
        "{message}"
    );
}
