//! Servers under test as child processes: tarn itself and the baselines (`tarn-bench serve`).
//! Each is started on free loopback ports, waited for until `GET /health` answers 200, and
//! killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tarn_tests::tarn::{Component, manifest_of};

use crate::baseline::Strategy;

/// How long a server may take to answer its first `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The binaries the suite drives.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `tarn` executable.
    pub tarn: PathBuf,
    /// The `tarn-bench` executable (for `serve`).
    pub bench: PathBuf,
    /// The Rust sample guest component.
    pub guest: PathBuf,
}

/// How to start tarn.
#[derive(Debug, Clone)]
pub struct TarnOptions {
    /// PostgreSQL URL of the `default` database.
    pub database_url: String,
    /// Compiled-component cache directory.
    pub cache_dir: PathBuf,
    /// Open the pool on first use instead of at start-up.
    pub lazy_init: bool,
    /// Extra `runtime-config.toml` text.
    pub extra_config: String,
    /// Another `tarn` executable than `Binaries::tarn`.
    pub binary: Option<PathBuf>,
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// Its application address.
    pub addr: SocketAddr,
    /// What it is (for messages).
    pub label: String,
    /// From spawn to the first 200 on `/health`.
    pub startup: Duration,
}

/// A free loopback port (released again: a later bind may race, which is harmless here).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Writes tarn's manifest and runtime config into `dir`; returns (manifest, config).
fn tarn_files(bins: &Binaries, options: &TarnOptions, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        manifest_of(&[Component {
            id: "sample",
            route: "/...",
            source: &bins.guest,
            limits: "",
            environment: "QUERY_STATEMENT_TIMEOUT_MS = \"5000\"",
        }]),
    )?;
    let config = dir.join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\ncache_dir = \"{}\"\n{}",
            options.cache_dir.display(),
            options.extra_config
        ),
    )?;
    Ok((manifest, config))
}

impl Server {
    /// Starts tarn (`tarn up --no-build`) with its files and log in `dir`.
    pub async fn tarn(bins: &Binaries, options: &TarnOptions, dir: &Path) -> Result<Server> {
        let (manifest, config) = tarn_files(bins, options, dir)?;
        let (port, admin) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.join("tarn.log"))?;
        let mut cmd = Command::new(options.binary.as_ref().unwrap_or(&bins.tarn));
        cmd.arg("up")
            .arg("--manifest")
            .arg(&manifest)
            .arg("--runtime-config")
            .arg(&config)
            .arg("--listen")
            .arg(loopback(port).to_string())
            .arg("--admin-listen")
            .arg(loopback(admin).to_string())
            .arg("--no-build")
            .arg("--database-url")
            .arg(&options.database_url)
            .arg("--lazy-init")
            .arg(options.lazy_init.to_string())
            .env("TARN_LOG", "warn")
            .env_remove("TARN_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let label = format!("tarn (log: {})", dir.join("tarn.log").display());
        Server::start(cmd, port, label).await
    }

    /// Starts a baseline (`tarn-bench serve`).
    pub async fn baseline(
        bins: &Binaries,
        strategy: Strategy,
        database_url: &str,
    ) -> Result<Server> {
        let port = free_port()?;
        let mut cmd = Command::new(&bins.bench);
        cmd.arg("serve")
            .arg(strategy.name())
            .arg("--database-url")
            .arg(database_url)
            .arg("--listen")
            .arg(loopback(port).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Server::start(cmd, port, strategy.name().to_string()).await
    }

    async fn start(mut cmd: Command, port: u16, label: String) -> Result<Server> {
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("start {label}"))?;
        let mut server = Server {
            child,
            addr: loopback(port),
            label,
            startup: Duration::ZERO,
        };
        loop {
            if health(server.addr).await {
                server.startup = started.elapsed();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited ({status}) before serving", server.label);
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("{} did not serve within {START_TIMEOUT:?}", server.label);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM`).
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("{name} in /proc/{}/status", self.pid()))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /health` answers 200 on a new connection.
pub async fn health(addr: SocketAddr) -> bool {
    async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/health")
            .header(hyper::header::HOST, addr.to_string())
            .body(http_body_util::Full::new(Bytes::new()))
            .ok()?;
        let res = sender.send_request(req).await.ok()?;
        (res.status() == 200).then_some(())
    }
    .await
    .is_some()
}
