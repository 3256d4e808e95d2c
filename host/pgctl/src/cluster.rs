//! A PostgreSQL cluster this process started (or found running): start, stop, restart,
//! kill, query.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::data_dir::DataDirState;
use crate::options::SUPERUSER;
use crate::pidfile::{self, PidFile};
use crate::process::{self, Postmaster, Signal};
use crate::server_user::ServerUser;
use crate::temp::{self, OwnedDir};
use crate::{ClusterOptions, PgCtlError, config, port, quote};

/// The address every cluster listens on.
const HOST: &str = "127.0.0.1";

/// The database [`Cluster::start_temp`] creates.
const TEMP_DATABASE: &str = "tarn";

/// The server log's name inside the data directory.
const LOG_FILE: &str = "server.log";

/// How long a server gets to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server gets to shut down.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval between state checks while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Tries to find a free port when the chosen one turns out to be taken.
const PORT_ATTEMPTS: u32 = 5;

/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// How a server is asked to shut down (PostgreSQL's shutdown modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect, then shut down (SIGTERM).
    Smart,
    /// Disconnect clients, checkpoint and shut down (SIGINT).
    Fast,
    /// Exit at once without a checkpoint; the next start runs crash recovery (SIGQUIT).
    Immediate,
}

impl StopMode {
    fn signal(self) -> Signal {
        match self {
            Self::Smart => Signal::Term,
            Self::Fast => Signal::Int,
            Self::Immediate => Signal::Quit,
        }
    }
}

/// The server process of a cluster.
#[derive(Debug)]
struct Server {
    pid: u32,
    /// Our child, when we started it (rather than finding it running).
    child: Option<Child>,
}

impl Server {
    /// How the server exited, if it has (reaping it when it is our child).
    fn exit_status(&mut self) -> Option<String> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(error) => Some(format!("could not wait for it: {error}")),
            },
            None => (!process::is_alive(self.pid)).then(|| "exited".to_owned()),
        }
    }
}

/// A PostgreSQL cluster listening on 127.0.0.1, with trust authentication for superuser
/// `postgres`.
///
/// Throwaway clusters ([`Cluster::start_temp`], or `persistent: false`) are stopped
/// (immediate mode) and have the directories they created removed on drop. Persistent
/// clusters are left running on drop; stop them with [`Cluster::stop`].
///
/// When this process runs as root, the server runs as the `postgres` OS user (PostgreSQL
/// refuses to run as root), and the directories it needs are handed over to that user.
#[derive(Debug)]
pub struct Cluster {
    /// The options, with `data_dir` made absolute.
    options: ClusterOptions,
    /// The port actually listened on.
    port: u16,
    binaries: Binaries,
    server_user: ServerUser,
    server: Option<Server>,
    /// Removed on drop, after the server has stopped.
    owned_dirs: Vec<OwnedDir>,
}

impl Cluster {
    /// Starts a cluster: runs `initdb` if the data directory is missing or empty, reuses the
    /// server if one is already running there, otherwise starts one and waits (up to 30 s)
    /// until it accepts connections; then creates `options.database` if missing.
    pub fn start(options: ClusterOptions) -> Result<Cluster, PgCtlError> {
        Self::launch(options, Vec::new())
    }

    /// Starts a throwaway cluster in a fresh temporary directory (free port, Unix socket in
    /// the same directory, database `tarn`, fsync off), removed on drop.
    pub fn start_temp() -> Result<Cluster, PgCtlError> {
        Self::start_temp_with(|_| {})
    }

    /// Like [`Cluster::start_temp`], letting `configure` adjust the options first (e.g.
    /// `max_connections`, `extra_settings`, `database`); the data directory, socket directory
    /// and `persistent: false` are kept regardless.
    pub fn start_temp_with(
        configure: impl FnOnce(&mut ClusterOptions),
    ) -> Result<Cluster, PgCtlError> {
        let root = OwnedDir::create_temp_root()?;
        let data_dir = temp::data_dir_of(root.path());
        let socket_dir = root.path().join("socket");
        let mut options = ClusterOptions::new(&data_dir);
        options.database = TEMP_DATABASE.to_owned();
        configure(&mut options);
        options.data_dir = data_dir;
        options.socket_dir = Some(socket_dir);
        options.persistent = false;
        Self::launch(options, vec![root])
    }

    fn launch(
        mut options: ClusterOptions,
        mut owned_dirs: Vec<OwnedDir>,
    ) -> Result<Cluster, PgCtlError> {
        options.validate()?;
        options.data_dir = std::path::absolute(&options.data_dir)
            .map_err(|source| PgCtlError::io("resolve", &options.data_dir, source))?;
        let server_user = ServerUser::detect()?;
        let data_dir = options.data_dir.clone();
        let state = DataDirState::inspect(&data_dir)?;
        if state == DataDirState::Missing {
            fs::create_dir_all(&data_dir)
                .map_err(|source| PgCtlError::io("create directory", &data_dir, source))?;
            if !options.persistent {
                owned_dirs.push(OwnedDir::new(data_dir.clone()));
            }
        }
        if !state.is_initialized() {
            server_user.own_private_dir(&data_dir)?;
        }
        if let Some(socket_dir) = options.socket_dir.as_ref().filter(|dir| !dir.exists()) {
            fs::create_dir_all(socket_dir)
                .map_err(|source| PgCtlError::io("create directory", socket_dir, source))?;
            server_user.give(socket_dir)?;
            if !options.persistent {
                owned_dirs.push(OwnedDir::new(socket_dir.clone()));
            }
        }
        let major = match state {
            DataDirState::Initialized { major } => major,
            DataDirState::Missing | DataDirState::Empty => None,
        };
        let binaries = Binaries::locate(options.bindir.as_deref(), major)?;
        let mut cluster = Cluster {
            port: options.port,
            options,
            binaries,
            server_user,
            server: None,
            owned_dirs,
        };
        let started = if state.is_initialized() {
            cluster.adopt_running_server()
        } else {
            cluster.initdb()
        }
        .and_then(|()| match cluster.server {
            Some(_) => cluster.wait_ready(None),
            None => cluster.spawn_on_free_port(),
        })
        .and_then(|()| cluster.ensure_database());
        if let Err(error) = started {
            cluster.abandon_start();
            return Err(error);
        }
        Ok(cluster)
    }

    /// Runs `initdb` on the (empty) data directory.
    fn initdb(&mut self) -> Result<(), PgCtlError> {
        let data_dir = &self.options.data_dir;
        let program = self.binaries.initdb();
        let mut command = self.server_user.command(&program);
        command
            .arg("--pgdata")
            .arg(data_dir)
            .args([
                "--auth=trust",
                "--username",
                SUPERUSER,
                "--encoding=UTF8",
                "--no-locale",
            ])
            .current_dir(data_dir)
            .stdin(Stdio::null());
        if !self.options.persistent {
            command.arg("--no-sync");
        }
        tracing::info!(data_dir = %data_dir.display(), "initializing PostgreSQL cluster");
        let output = command
            .output()
            .map_err(|source| self.server_user.spawn_error(&program, data_dir, source))?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stdout));
            return Err(PgCtlError::CommandFailed {
                program,
                status: output.status.to_string(),
                output: text.trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Adopts the server `postmaster.pid` says is running, if it really is; removes the pid
    /// file when its pid now belongs to an unrelated process (PostgreSQL would refuse to
    /// start otherwise).
    fn adopt_running_server(&mut self) -> Result<(), PgCtlError> {
        let data_dir = &self.options.data_dir;
        let Some(pid_file) = PidFile::read(data_dir)? else {
            return Ok(());
        };
        match process::postmaster_of(pid_file.pid, data_dir) {
            Postmaster::Gone => {}
            Postmaster::Impostor => {
                tracing::warn!(
                    pid = pid_file.pid,
                    data_dir = %data_dir.display(),
                    "removing stale postmaster.pid whose pid now belongs to another process"
                );
                let path = data_dir.join(pidfile::FILE_NAME);
                fs::remove_file(&path)
                    .map_err(|source| PgCtlError::io("remove stale", path, source))?;
            }
            Postmaster::Running => {
                let port = pid_file.port.unwrap_or(self.port);
                if self.options.port != 0 && self.options.port != port {
                    tracing::warn!(
                        requested = self.options.port,
                        port,
                        "reusing the running server on its own port"
                    );
                }
                tracing::info!(
                    pid = pid_file.pid,
                    port,
                    data_dir = %data_dir.display(),
                    "reusing running PostgreSQL server"
                );
                self.port = port;
                self.server = Some(Server {
                    pid: pid_file.pid,
                    child: None,
                });
            }
        }
        Ok(())
    }

    /// Writes the configuration and starts the server, choosing another free port and trying
    /// again when the chosen one is taken (if the port was to be chosen at all).
    fn spawn_on_free_port(&mut self) -> Result<(), PgCtlError> {
        let data_dir = self.options.data_dir.clone();
        let choose = self.options.port == 0;
        let mut attempt = 1;
        loop {
            if choose {
                let previous = config::previous_port(&data_dir)
                    .filter(|&port| attempt == 1 && self.options.persistent && port::is_free(port));
                self.port = match previous {
                    Some(port) => port,
                    None => port::pick_free()?,
                };
            }
            let config_path = config::write(&data_dir, &self.options, self.port)?;
            self.server_user.give(&config_path)?;
            config::ensure_included(&data_dir)?;
            match self.spawn() {
                Err(PgCtlError::StartFailed { log, .. })
                    if choose && attempt < PORT_ATTEMPTS && log.contains("could not bind") =>
                {
                    tracing::debug!(port = self.port, "port taken meanwhile; trying another");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts the server process and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), PgCtlError> {
        let data_dir = &self.options.data_dir;
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| PgCtlError::io("open", &log_path, source))?;
        self.server_user.give(&log_path)?;
        let log_start = log
            .metadata()
            .map_err(|source| PgCtlError::io("inspect", &log_path, source))?
            .len();
        let stdout = log
            .try_clone()
            .map_err(|source| PgCtlError::io("duplicate the handle of", &log_path, source))?;
        let program = self.binaries.postgres();
        let mut command = self.server_user.command(&program);
        command
            .arg("-D")
            .arg(data_dir)
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        if self.options.persistent {
            // Its own process group: a terminal's Ctrl-C reaches tarn, which then stops the
            // server in order, rather than both at once.
            command.process_group(0);
        }
        let child = command
            .spawn()
            .map_err(|source| self.server_user.spawn_error(&program, data_dir, source))?;
        tracing::debug!(
            pid = child.id(),
            port = self.port,
            "started PostgreSQL server"
        );
        self.server = Some(Server {
            pid: child.id(),
            child: Some(child),
        });
        self.wait_ready(Some(log_start))
    }

    /// Waits until the server reports `ready` in `postmaster.pid`; on failure quotes the log
    /// from byte `log_start` on (or its end).
    fn wait_ready(&mut self, log_start: Option<u64>) -> Result<(), PgCtlError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let Some(server) = self.server.as_mut() else {
                return Err(self.not_running());
            };
            if let Some(status) = server.exit_status() {
                self.server = None;
                return Err(PgCtlError::StartFailed {
                    data_dir: self.options.data_dir.clone(),
                    port: self.port,
                    status,
                    log: self.log_tail(log_start),
                });
            }
            let pid = server.pid;
            if let Some(pid_file) = PidFile::read(&self.options.data_dir)?
                && pid_file.pid == pid
                && pid_file.is_ready()
            {
                self.port = pid_file.port.unwrap_or(self.port);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("accept connections", START_TIMEOUT, log_start));
            }
            sleep(POLL_INTERVAL);
        }
    }

    /// Creates the configured database unless it exists.
    fn ensure_database(&self) -> Result<(), PgCtlError> {
        let database = &self.options.database;
        let count = self.psql_in(
            SUPERUSER,
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                quote::literal(database)
            ),
        )?;
        if count != "1" {
            tracing::info!(database, "creating database");
            self.psql_in(
                SUPERUSER,
                &format!("CREATE DATABASE {}", quote::identifier(database)),
            )?;
        }
        Ok(())
    }

    /// After a failed start: stops a server this call started (a found one is left alone).
    fn abandon_start(&mut self) {
        if self
            .server
            .as_ref()
            .is_some_and(|server| server.child.is_some())
        {
            self.stop_quietly();
        }
    }

    /// Stops the server in immediate mode, killing it if that fails; logs failures.
    fn stop_quietly(&mut self) {
        if let Err(error) = self.stop_with(StopMode::Immediate) {
            tracing::warn!(%error, "immediate shutdown failed; killing the server");
            if let Err(error) = self.kill() {
                tracing::warn!(%error, "could not kill the server");
            }
        }
    }

    /// Stops the server in fast mode (clients are disconnected) and waits until it has exited.
    /// Stopping a stopped cluster does nothing.
    pub fn stop(&mut self) -> Result<(), PgCtlError> {
        self.stop_with(StopMode::Fast)
    }

    /// Stops the server in the given mode and waits (up to 30 s) until it has exited.
    pub fn stop_with(&mut self, mode: StopMode) -> Result<(), PgCtlError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        if server.exit_status().is_none() {
            tracing::debug!(pid = server.pid, ?mode, "stopping PostgreSQL server");
            process::send(server.pid, mode.signal())?;
            self.wait_for_exit("shut down")?;
        }
        self.server = None;
        Ok(())
    }

    /// Simulates a crash: SIGKILLs the server and all its backends, and waits until they are
    /// gone. The next start runs crash recovery.
    pub fn kill(&mut self) -> Result<(), PgCtlError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let pid = server.pid;
        // Frozen, the postmaster cannot fork while its children are collected and killed.
        process::send(pid, Signal::Stop)?;
        let children = process::children(pid);
        for &child in &children {
            process::send(child, Signal::Kill)?;
        }
        process::send(pid, Signal::Kill)?;
        self.wait_for_exit("die after SIGKILL")?;
        self.server = None;
        // A restart must not find shared memory still attached by a dying backend.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while children.iter().any(|&child| process::is_alive(child)) {
            if Instant::now() >= deadline {
                return Err(self.timeout("let its backends die after SIGKILL", STOP_TIMEOUT, None));
            }
            sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Starts a stopped cluster again, on the same port; waits until it accepts connections.
    /// Starting a running cluster does nothing.
    pub fn start_again(&mut self) -> Result<(), PgCtlError> {
        if self.is_running() {
            return Ok(());
        }
        if let Some(mut server) = self.server.take() {
            server.exit_status();
        }
        self.spawn()
    }

    /// Stops (fast mode) and starts the cluster again, on the same port.
    pub fn restart(&mut self) -> Result<(), PgCtlError> {
        self.stop()?;
        self.start_again()
    }

    /// Waits until the server process has exited.
    fn wait_for_exit(&mut self, what: &'static str) -> Result<(), PgCtlError> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        while let Some(server) = self.server.as_mut() {
            if server.exit_status().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(what, STOP_TIMEOUT, None));
            }
            sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Whether the server process is alive.
    pub fn is_running(&self) -> bool {
        self.server
            .as_ref()
            .is_some_and(|server| process::is_alive(server.pid))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server
            .as_ref()
            .map(|server| server.pid)
            .filter(|&pid| process::is_alive(pid))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The (superuser) role to connect as: `postgres`, with trust authentication.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The database created for the application.
    pub fn database(&self) -> &str {
        &self.options.database
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@{HOST}:{}/{}",
            quote::url_component(SUPERUSER),
            self.port,
            quote::url_component(&self.options.database)
        )
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    /// The Unix-domain socket directory, if the server has one.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.options.socket_dir.as_deref()
    }

    /// The server log (inside the data directory).
    pub fn log_path(&self) -> PathBuf {
        self.options.data_dir.join(LOG_FILE)
    }

    /// The directory of the PostgreSQL binaries in use.
    pub fn bindir(&self) -> &Path {
        self.binaries.bindir()
    }

    /// Whether the cluster outlives this value (see [`ClusterOptions::persistent`]).
    pub fn is_persistent(&self) -> bool {
        self.options.persistent
    }

    /// Runs `sql` on the cluster's database with `psql` as superuser, returning its unaligned,
    /// tuples-only output (rows on lines, columns separated by `|`) without the final newline.
    pub fn psql(&self, sql: &str) -> Result<String, PgCtlError> {
        self.psql_in(&self.options.database, sql)
    }

    /// Like [`Cluster::psql`], on another database of the cluster.
    pub fn psql_in(&self, database: &str, sql: &str) -> Result<String, PgCtlError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        let conninfo = format!(
            "host={HOST} port={} user={SUPERUSER} dbname={} connect_timeout=10",
            self.port,
            quote::conninfo_value(database)
        );
        let program = self.binaries.psql();
        let output = Command::new(&program)
            .args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only"])
            .args([
                "--set",
                "ON_ERROR_STOP=1",
                "--dbname",
                &conninfo,
                "--command",
                sql,
            ])
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| PgCtlError::Spawn { program, source })?;
        if !output.status.success() {
            return Err(PgCtlError::Sql {
                database: database.to_owned(),
                sql: sql.to_owned(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    fn not_running(&self) -> PgCtlError {
        PgCtlError::NotRunning {
            data_dir: self.options.data_dir.clone(),
            port: self.port,
        }
    }

    fn timeout(&self, what: &'static str, limit: Duration, log_start: Option<u64>) -> PgCtlError {
        PgCtlError::Timeout {
            what,
            data_dir: self.options.data_dir.clone(),
            port: self.port,
            seconds: limit.as_secs(),
            log: self.log_tail(log_start),
        }
    }

    /// The last lines of the server log, from byte `start` on if given.
    fn log_tail(&self, start: Option<u64>) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = fs::File::open(self.log_path()) {
            let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
            let from = start
                .unwrap_or(0)
                .min(length)
                .max(length.saturating_sub(64 * 1024));
            if file.seek(SeekFrom::Start(from)).is_ok() {
                let _ = file.read_to_end(&mut text);
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        if tail.trim().is_empty() {
            "(empty)".to_owned()
        } else {
            tail
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.options.persistent {
            self.stop_quietly();
        }
        // Only now that the server is down (throwaway clusters own directories; persistent
        // ones none).
        self.owned_dirs.clear();
    }
}
