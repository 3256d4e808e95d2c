//! The error type of every fallible operation in this crate.

use std::io;
use std::path::PathBuf;

/// Why a cluster could not be started, stopped or queried.
#[derive(Debug, thiserror::Error)]
pub enum PgCtlError {
    /// No directory holding `initdb`, `postgres` and `psql` was found.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres, psql) found; looked in: {}; \
         install them with `apt-get install postgresql` (Debian/Ubuntu) \
         or point ClusterOptions::bindir at their directory",
        searched.join(", ")
    )]
    NoServerBinaries {
        /// Every place that was searched, in order.
        searched: Vec<String>,
    },

    /// We run as root, PostgreSQL refuses to, and there is no `postgres` user to run it as.
    #[error(
        "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
         OS user in /etc/passwd to run it as; create one (`apt-get install postgresql` does) \
         or run as a non-root user"
    )]
    NoPostgresUser,

    /// A [`ClusterOptions`](crate::ClusterOptions) field has an unusable value.
    #[error("invalid cluster option `{option}` = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: String,
        /// The rejected value, as written in Rust (strings quoted).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The data directory holds files, but no PostgreSQL cluster.
    #[error(
        "{path} exists and is not empty, but is not a PostgreSQL data directory (it has no \
         PG_VERSION file); refusing to initialize a cluster there"
    )]
    NotADataDir {
        /// The data directory.
        path: PathBuf,
    },

    /// The OS user that runs PostgreSQL cannot reach a directory it needs.
    #[error(
        "the OS user `{user}` cannot reach {path} (PostgreSQL refuses to run as root, so it runs \
         as `{user}`): make every parent directory searchable by it (chmod o+x) or choose a \
         directory elsewhere"
    )]
    NotAccessible {
        /// The unreachable directory.
        path: PathBuf,
        /// The OS user PostgreSQL runs as.
        user: String,
    },

    /// A file-system operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A program could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A helper program (e.g. `initdb`) exited unsuccessfully.
    #[error("{program} failed ({status}): {output}")]
    CommandFailed {
        /// The program.
        program: PathBuf,
        /// How it exited.
        status: String,
        /// Its standard error and output.
        output: String,
    },

    /// The server exited before accepting connections.
    #[error(
        "PostgreSQL ({data_dir}, port {port}) exited during startup ({status}); \
         end of its log:\n{log}"
    )]
    StartFailed {
        /// The data directory.
        data_dir: PathBuf,
        /// The port it was to listen on.
        port: u16,
        /// How it exited.
        status: String,
        /// The end of the server log.
        log: String,
    },

    /// The server did not reach the expected state in time.
    #[error(
        "PostgreSQL ({data_dir}, port {port}) did not {what} within {seconds} s; \
         end of its log:\n{log}"
    )]
    Timeout {
        /// What it failed to do, e.g. "accept connections".
        what: &'static str,
        /// The data directory.
        data_dir: PathBuf,
        /// Its port.
        port: u16,
        /// The time allowed.
        seconds: u64,
        /// The end of the server log.
        log: String,
    },

    /// An operation needs a running server, and it is stopped.
    #[error("PostgreSQL ({data_dir}, port {port}) is not running")]
    NotRunning {
        /// The data directory.
        data_dir: PathBuf,
        /// Its port.
        port: u16,
    },

    /// A signal could not be delivered to a server process.
    #[error("could not send {signal} to PostgreSQL process {pid}: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process.
        pid: u32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `psql` reported an error (SQL error, or no connection).
    #[error("SQL failed on database {database:?}: {message}\n  SQL: {sql}")]
    Sql {
        /// The database it ran on.
        database: String,
        /// The statement(s).
        sql: String,
        /// psql's error output.
        message: String,
    },
}

impl PgCtlError {
    /// Builds an [`PgCtlError::Io`] error.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
