//! A real `tarn up` process for a test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{TempDir, tarn_binary};

/// What a test's tarn runs with.
pub struct Options {
    /// The manifest text; `{dir}` is replaced by the test's directory.
    pub manifest: String,
    /// The runtime config file text (may be empty).
    pub runtime_config: String,
    /// `--database-url`; `None` leaves it unset (tarn starts a private one).
    pub database_url: Option<String>,
    /// Extra arguments for `tarn up`.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// A manifest serving `wasm` on every path with the `default` database
/// granted, plus a `[component.app.limits]` table built from `limits`.
pub fn manifest(wasm: &Path, limits: &str) -> String {
    manifest_of(&[Component {
        id: "app",
        route: "/...",
        source: wasm,
        limits,
        environment: "",
    }])
}

/// One component of a manifest built by [`manifest_of`].
pub struct Component<'a> {
    /// Its id.
    pub id: &'a str,
    /// The route it serves, e.g. `/noisy/...`.
    pub route: &'a str,
    /// Its `.wasm` or `.wat` file.
    pub source: &'a Path,
    /// Lines of its `[component.ID.limits]` table.
    pub limits: &'a str,
    /// The inside of its `environment` inline table, e.g. `KEY = "value"`.
    pub environment: &'a str,
}

/// A manifest serving `components` (the most specific route matching a
/// path wins), each granted the `default` database.
pub fn manifest_of(components: &[Component<'_>]) -> String {
    let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"test\"\n");
    for c in components {
        text.push_str(&format!(
            "[[trigger.http]]\nroute = \"{}\"\ncomponent = \"{}\"\n",
            c.route, c.id
        ));
    }
    for c in components {
        text.push_str(&format!(
            "[component.{id}]\nsource = \"{}\"\ndatabases = [\"default\"]\nenvironment = {{ {} }}\n\
             [component.{id}.limits]\n{}\n",
            c.source.display(),
            c.environment,
            c.limits,
            id = c.id
        ));
    }
    text
}

/// A running tarn; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Tarn {
    child: Child,
    /// The application port.
    pub port: u16,
    /// The admin port.
    pub admin_port: u16,
    log: Arc<Mutex<String>>,
    /// The test's directory (manifest, config, cache).
    pub dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Tarn {
    /// Starts tarn and waits until it serves (or fails with its log).
    pub fn start(options: Options) -> Tarn {
        let dir = TempDir::new("tarn");
        let manifest = dir.path().join("spin.toml");
        std::fs::write(
            &manifest,
            options
                .manifest
                .replace("{dir}", &dir.path().display().to_string()),
        )
        .expect("write manifest");
        let config = dir.path().join("runtime-config.toml");
        let cache = format!("[runtime]\ncache_dir = \"{}\"\n", shared_cache().display());
        let config_text = if options.runtime_config.contains("[runtime]\n") {
            options.runtime_config.replacen("[runtime]\n", &cache, 1)
        } else {
            format!("{cache}{}", options.runtime_config)
        };
        std::fs::write(&config, config_text).expect("write runtime config");
        let port = free_port();
        let admin_port = free_port();
        let mut cmd = Command::new(tarn_binary());
        cmd.arg("up")
            .arg("--manifest")
            .arg(&manifest)
            .arg("--runtime-config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--no-build")
            .args(&options.args)
            .env_remove("TARN_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env("TARN_LOG", "info,tarn=debug")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd.spawn().expect("spawn tarn");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("tarn is serving") {
                    let _ = ready_tx.send(());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let started = Instant::now();
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "tarn exited ({status}) before serving:\n{}",
                    log.lock().unwrap()
                );
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("tarn did not start within 120 s:\n{}", log.lock().unwrap());
            }
        }
        Tarn {
            child,
            port,
            admin_port,
            log,
            dir,
        }
    }

    /// Everything tarn wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for `needle` to appear in the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.log.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The tarn process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// tarn's resident memory (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id()).expect("VmRSS of the tarn process")
    }

    /// Sends SIGTERM and waits up to `timeout` for exit; returns the exit success.
    pub fn terminate(&mut self, timeout: Duration) -> Option<bool> {
        signal(self.child.id(), "TERM");
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The resident memory (`VmRSS`) of process `pid` in KiB, while it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A compiled-component cache shared by the tests of one run, so each
/// component is compiled once.
pub fn shared_cache() -> PathBuf {
    crate::workspace().join("target").join("tarn-test-cache")
}

impl Drop for Tarn {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "TERM");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
