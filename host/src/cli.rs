//! Command-line interface: `tarn up`, `tarn build`, `tarn check`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use tarn::config::Overrides;

/// tarn: a WebAssembly host that lends pooled PostgreSQL connections to
/// sandboxed guest components, Spin-style (a fresh instance per request).
#[derive(Debug, Parser)]
#[command(name = "tarn", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Threads that serve requests (HTTP, guests, database I/O); 0 means
    /// one per CPU but one, and at least one: on a 2-CPU machine a second
    /// worker cost 25-70 % more CPU per request in wake-ups between threads
    /// (BENCHMARKS.md) [default: 0].
    #[arg(long, global = true, env = "TARN_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
}

impl Cli {
    /// The number of worker threads to start on a machine with `cpus` CPUs.
    pub fn workers(&self, cpus: usize) -> usize {
        match self.worker_threads {
            0 => cpus.saturating_sub(1).max(1),
            n => n,
        }
    }
}

/// tarn's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build what is stale, open the database pools and serve the manifest's
    /// routes (and the admin endpoints) until SIGINT/SIGTERM.
    Up(UpArgs),
    /// Run every component's build command from the manifest.
    Build(ManifestArgs),
    /// Validate the runtime config and the manifest, load every component,
    /// connect to every database once, and report.
    Check(CheckArgs),
}

/// Where the manifest is.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The application manifest (Spin manifest v2 with tarn's database grants).
    #[arg(long, short = 'f', env = "TARN_MANIFEST", default_value = "spin.toml")]
    pub manifest: PathBuf,
}

/// Database and pool settings for the `default` database; they override the
/// runtime config file's `[database.default]` table.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Runtime config file (TOML): `[database.NAME]` tables, `[runtime]`,
    /// `[http]`. See the README for every key.
    #[arg(long, env = "TARN_RUNTIME_CONFIG")]
    pub runtime_config: Option<PathBuf>,

    /// PostgreSQL URL of the `default` database (DATABASE_URL is used when
    /// TARN_DATABASE_URL is unset). With none, `tarn up` starts a private
    /// PostgreSQL in `.tarn/pgdata` next to the manifest.
    #[arg(long, env = "TARN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Persistent connections kept open [default: 5].
    #[arg(long, env = "TARN_POOL_SIZE", allow_negative_numbers = true)]
    pub pool_size: Option<i64>,

    /// Extra connections opened under load, closed again when returned to a
    /// full pool [default: 10].
    #[arg(long, env = "TARN_MAX_OVERFLOW", allow_negative_numbers = true)]
    pub max_overflow: Option<i64>,

    /// Seconds after which a connection is replaced; 0 or negative disables
    /// [default: 3600].
    #[arg(long, env = "TARN_POOL_RECYCLE", allow_negative_numbers = true)]
    pub pool_recycle: Option<i64>,

    /// Check a connection that has been idle before handing it out
    /// [default: true].
    #[arg(long, env = "TARN_POOL_PRE_PING", value_parser = BoolishValueParser::new())]
    pub pool_pre_ping: Option<bool>,

    /// Seconds a checkout waits for a free connection before failing
    /// [default: 30].
    #[arg(long, env = "TARN_POOL_TIMEOUT", allow_negative_numbers = true)]
    pub pool_timeout: Option<f64>,

    /// Open connections on first use instead of at start-up [default: false].
    #[arg(long, env = "TARN_LAZY_INIT", value_parser = BoolishValueParser::new())]
    pub lazy_init: Option<bool>,
}

/// Arguments of `tarn up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address of the application listener [default: 127.0.0.1:3000].
    #[arg(long, env = "TARN_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Address of the admin listener (/livez, /readyz, /metrics)
    /// [default: 127.0.0.1:9090].
    #[arg(long, env = "TARN_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Serve the components as they are, without building stale ones.
    #[arg(long)]
    pub no_build: bool,
}

/// Arguments of `tarn check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

impl DatabaseArgs {
    /// The overrides these flags and variables give.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            database_url: self
                .database_url
                .clone()
                .or_else(|| std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty())),
            pool_size: self.pool_size,
            max_overflow: self.max_overflow,
            pool_recycle: self.pool_recycle,
            pool_pre_ping: self.pool_pre_ping,
            pool_timeout: self.pool_timeout,
            lazy_init: self.lazy_init,
            listen: None,
            admin_listen: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn worker_threads_leave_a_cpu_unless_told() {
        let auto = cli(&["tarn", "check"]);
        assert_eq!(auto.workers(1), 1);
        assert_eq!(auto.workers(2), 1);
        assert_eq!(auto.workers(16), 15);
        let told = cli(&["tarn", "up", "--worker-threads", "4"]);
        assert_eq!(told.workers(2), 4);
    }
}
