//! tarn's settings: named databases with their pool settings, runtime limits
//! and HTTP listeners.
//!
//! Sources, highest first: command-line flags, environment (both handled by
//! the CLI layer and passed in as [`Overrides`]), the runtime config file
//! (TOML, one `[database.NAME]` table per named database) and defaults.
//! Flags and environment configure the `default` database only.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tarn_pool::PoolConfig;

use crate::redact::{MASK, redact_url};

/// The database guests get when they open `default`.
pub const DEFAULT_DATABASE: &str = "default";

/// A configuration error; messages name the key and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The runtime config file could not be read.
    #[error("cannot read runtime config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime config file is not valid TOML or has unknown keys.
    #[error("invalid runtime config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for `{key}`: {value}: {reason}")]
    Invalid {
        /// The key, e.g. `database.default.pool_size` or `TARN_POOL_SIZE`.
        key: String,
        /// The value as given (URLs redacted).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A PostgreSQL connection string whose `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Parses and checks a connection string (URL or key/value form).
    pub fn parse(key: &str, raw: &str) -> Result<Self, ConfigError> {
        let url = DatabaseUrl(raw.to_string());
        url.pg_config().map_err(|e| ConfigError::Invalid {
            key: key.to_string(),
            value: url.redacted(),
            reason: e.to_string(),
        })?;
        Ok(url)
    }

    /// The connection string with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        // The driver reads a URL's credentials up to the first `@`, so a
        // password may hold `/`, `?` or `#` unencoded; mask it by the same
        // rule before the general redaction (which also covers
        // `?password=` and key/value strings).
        if let Some((scheme, rest)) = self.0.split_once("://")
            && matches!(scheme, "postgres" | "postgresql")
            && let Some((credentials, after)) = rest.split_once('@')
            && let Some((user, _)) = credentials.split_once(':')
        {
            return redact_url(&format!("{scheme}://{user}:{MASK}@{after}"));
        }
        redact_url(&self.0)
    }

    /// The parsed driver configuration.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        self.0.parse()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// When a connection lent to a guest is reset (`DISCARD ALL`) before it is
/// lent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionReset {
    /// After every use: nothing a request did to its session (even through
    /// a function it called) can reach the next request. Costs one round
    /// trip (`DISCARD ALL`) at the end of each statement run outside a
    /// transaction and of each transaction. For untrusted tenants.
    Always,
    /// Only after statements that visibly change session state (`SET`,
    /// `LISTEN`, `PREPARE`, temporary tables, advisory locks, cursors, ...),
    /// so clean connections go back with no reset round trip. State changed
    /// inside a called function, and sequence positions (`currval`,
    /// `lastval`), can reach the next request on the connection.
    #[default]
    Detected,
}

/// One named database: where it is and how its pool behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSettings {
    /// The name guests open it by.
    pub name: String,
    /// Its connection string; `None` only for `default`, in which case
    /// `tarn up` starts a private PostgreSQL.
    pub url: Option<DatabaseUrl>,
    /// Pool settings.
    pub pool: PoolConfig,
    /// When lent connections are reset.
    pub session_reset: SessionReset,
}

/// Limits applied to every guest instance unless its manifest entry says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// Linear memory a single instance may grow to.
    pub memory_limit_bytes: u64,
    /// Guest CPU time per request (measured in epoch ticks while wasm runs).
    pub cpu_limit: Duration,
    /// Wall-clock deadline of a whole request, database waits included.
    pub request_timeout: Duration,
    /// Instances that may exist at once (pooling allocator slots).
    pub max_instances: u32,
    /// Resource handles a guest may hold at once.
    pub max_handles: usize,
    /// Rows one query may return.
    pub max_result_rows: usize,
    /// Bytes (approximate, of decoded values) one query may return.
    pub max_result_bytes: usize,
    /// Where compiled components are cached, keyed by content hash.
    pub cache_dir: PathBuf,
}

/// HTTP listeners and request limits.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Application listener.
    pub listen: SocketAddr,
    /// Admin listener (liveness, readiness, metrics).
    pub admin_listen: SocketAddr,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests served at once; more get 503.
    pub max_concurrent_requests: usize,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// How long a client may take to send its request body once the
    /// headers are in.
    pub body_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

/// Everything tarn is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Named databases; always contains `default`.
    pub databases: BTreeMap<String, DatabaseSettings>,
    /// Guest limits.
    pub runtime: RuntimeSettings,
    /// HTTP settings.
    pub http: HttpSettings,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            memory_limit_bytes: 128 << 20,
            cpu_limit: Duration::from_secs(1),
            request_timeout: Duration::from_secs(60),
            max_instances: 1000,
            max_handles: 1000,
            max_result_rows: 100_000,
            max_result_bytes: 32 << 20,
            cache_dir: PathBuf::from(".tarn/cache"),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 1000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Values from flags and environment (highest precedence). `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url` / `TARN_DATABASE_URL` / `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--pool-size` / `TARN_POOL_SIZE`.
    pub pool_size: Option<i64>,
    /// `--max-overflow` / `TARN_MAX_OVERFLOW`.
    pub max_overflow: Option<i64>,
    /// `--pool-recycle` / `TARN_POOL_RECYCLE` (seconds, <= 0 disables).
    pub pool_recycle: Option<i64>,
    /// `--pool-pre-ping` / `TARN_POOL_PRE_PING`.
    pub pool_pre_ping: Option<bool>,
    /// `--pool-timeout` / `TARN_POOL_TIMEOUT` (seconds).
    pub pool_timeout: Option<f64>,
    /// `--lazy-init` / `TARN_LAZY_INIT`.
    pub lazy_init: Option<bool>,
    /// `--listen` / `TARN_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen` / `TARN_ADMIN_LISTEN`.
    pub admin_listen: Option<SocketAddr>,
}

/// The runtime config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    database: BTreeMap<String, FileDatabase>,
    #[serde(default)]
    runtime: FileRuntime,
    #[serde(default)]
    http: FileHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
    pool_size: Option<i64>,
    max_overflow: Option<i64>,
    pool_timeout: Option<f64>,
    pool_recycle: Option<i64>,
    pool_pre_ping: Option<bool>,
    lazy_init: Option<bool>,
    overflow_idle_timeout: Option<f64>,
    max_waiting: Option<i64>,
    connect_timeout: Option<f64>,
    use_lifo: Option<bool>,
    statement_cache_size: Option<i64>,
    session_reset: Option<SessionReset>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRuntime {
    memory_limit_mb: Option<i64>,
    cpu_limit_ms: Option<i64>,
    request_timeout_ms: Option<i64>,
    max_instances: Option<i64>,
    max_handles: Option<i64>,
    max_result_rows: Option<i64>,
    max_result_bytes: Option<i64>,
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    max_body_kb: Option<i64>,
    max_concurrent_requests: Option<i64>,
    header_read_timeout_ms: Option<i64>,
    body_read_timeout_ms: Option<i64>,
    shutdown_grace_ms: Option<i64>,
}

impl Settings {
    /// Resolves settings from overrides, an optional runtime config file and defaults.
    pub fn resolve(overrides: &Overrides, file: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        Self::from_parts(overrides, file)
    }

    fn from_parts(o: &Overrides, mut file: FileConfig) -> Result<Settings, ConfigError> {
        let mut databases = BTreeMap::new();
        let default_file = file.database.remove(DEFAULT_DATABASE).unwrap_or_default();
        let default_flags = FileDatabase {
            url: o.database_url.clone(),
            pool_size: o.pool_size,
            max_overflow: o.max_overflow,
            pool_timeout: o.pool_timeout,
            pool_recycle: o.pool_recycle,
            pool_pre_ping: o.pool_pre_ping,
            lazy_init: o.lazy_init,
            ..FileDatabase::default()
        };
        databases.insert(
            DEFAULT_DATABASE.to_string(),
            database(DEFAULT_DATABASE, &default_flags, &default_file)?,
        );
        for (name, db) in &file.database {
            if !valid_name(name) {
                return Err(invalid(
                    format!("database.{name}"),
                    name,
                    "database names are lower-case letters, digits, '-' and '_'",
                ));
            }
            let settings = database(name, &FileDatabase::default(), db)?;
            if settings.url.is_none() {
                return Err(invalid(
                    format!("database.{name}.url"),
                    "(missing)",
                    "every database except `default` needs a url",
                ));
            }
            databases.insert(name.clone(), settings);
        }
        Ok(Settings {
            databases,
            runtime: runtime(&file.runtime)?,
            http: http(o, &file.http)?,
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn invalid(key: impl Into<String>, value: impl fmt::Display, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Picks the override if present, else the file's value, tagging the key
/// that supplied it so errors name the right source.
fn pick<T: Copy>(
    name: &str,
    field: &str,
    env: &str,
    flag: Option<T>,
    file: Option<T>,
) -> Option<(String, T)> {
    match (flag, file) {
        (Some(v), _) => Some((format!("--{} / {env}", field.replace('_', "-")), v)),
        (None, Some(v)) => Some((format!("database.{name}.{field}"), v)),
        (None, None) => None,
    }
}

fn database(
    name: &str,
    flags: &FileDatabase,
    file: &FileDatabase,
) -> Result<DatabaseSettings, ConfigError> {
    let mut pool = PoolConfig::default();
    let url = match flags.url.as_ref().or(file.url.as_ref()) {
        Some(raw) => {
            let key = if flags.url.is_some() {
                "--database-url / TARN_DATABASE_URL".to_string()
            } else {
                format!("database.{name}.url")
            };
            Some(DatabaseUrl::parse(&key, raw)?)
        }
        None => None,
    };
    if let Some((key, v)) = pick(
        name,
        "pool_size",
        "TARN_POOL_SIZE",
        flags.pool_size,
        file.pool_size,
    ) {
        pool.pool_size = positive(&key, v)?;
    }
    if let Some((key, v)) = pick(
        name,
        "max_overflow",
        "TARN_MAX_OVERFLOW",
        flags.max_overflow,
        file.max_overflow,
    ) {
        pool.max_overflow = non_negative(&key, v)?;
    }
    if let Some((key, v)) = pick(
        name,
        "pool_timeout",
        "TARN_POOL_TIMEOUT",
        flags.pool_timeout,
        file.pool_timeout,
    ) {
        pool.pool_timeout = seconds(&key, v, false)?;
    }
    if let Some((_, v)) = pick(
        name,
        "pool_recycle",
        "TARN_POOL_RECYCLE",
        flags.pool_recycle,
        file.pool_recycle,
    ) {
        pool.pool_recycle = (v > 0).then(|| Duration::from_secs(v.unsigned_abs()));
    }
    if let Some((_, v)) = pick(
        name,
        "pool_pre_ping",
        "TARN_POOL_PRE_PING",
        flags.pool_pre_ping,
        file.pool_pre_ping,
    ) {
        pool.pool_pre_ping = v;
    }
    if let Some((_, v)) = pick(
        name,
        "lazy_init",
        "TARN_LAZY_INIT",
        flags.lazy_init,
        file.lazy_init,
    ) {
        pool.lazy_init = v;
    }
    if let Some(v) = file.overflow_idle_timeout {
        pool.overflow_idle_timeout =
            seconds(&format!("database.{name}.overflow_idle_timeout"), v, true)?;
    }
    if let Some(v) = file.max_waiting {
        let key = format!("database.{name}.max_waiting");
        pool.max_waiting = (v != 0).then_some(non_negative(&key, v)?);
    }
    if let Some(v) = file.connect_timeout {
        pool.connect_timeout = seconds(&format!("database.{name}.connect_timeout"), v, false)?;
    }
    if let Some(v) = file.use_lifo {
        pool.use_lifo = v;
    }
    if let Some(v) = file.statement_cache_size {
        pool.statement_cache_size =
            non_negative(&format!("database.{name}.statement_cache_size"), v)?;
    }
    pool.validate()
        .map_err(|e| invalid(format!("database.{name}"), "", &e.to_string()))?;
    Ok(DatabaseSettings {
        name: name.to_string(),
        url,
        pool,
        session_reset: file.session_reset.unwrap_or_default(),
    })
}

fn positive(key: &str, v: i64) -> Result<usize, ConfigError> {
    if v < 1 {
        return Err(invalid(key, v, "must be at least 1"));
    }
    usize::try_from(v).map_err(|_| invalid(key, v, "too large"))
}

/// A positive amount in units of `2^shift` bytes, in bytes; refused rather
/// than wrapped around when it does not fit.
fn scaled(key: &str, v: i64, shift: u32) -> Result<usize, ConfigError> {
    positive(key, v)?
        .checked_mul(1 << shift)
        .ok_or_else(|| invalid(key, v, "too large"))
}

fn non_negative(key: &str, v: i64) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| invalid(key, v, "must not be negative"))
}

fn seconds(key: &str, v: f64, zero_ok: bool) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) {
        let reason = if zero_ok {
            "must be a number of seconds >= 0"
        } else {
            "must be a number of seconds > 0"
        };
        return Err(invalid(key, v, reason));
    }
    Duration::try_from_secs_f64(v).map_err(|_| invalid(key, v, "too large"))
}

fn millis(key: &str, v: i64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(positive(key, v)? as u64))
}

fn runtime(f: &FileRuntime) -> Result<RuntimeSettings, ConfigError> {
    let mut r = RuntimeSettings::default();
    if let Some(v) = f.memory_limit_mb {
        r.memory_limit_bytes = scaled("runtime.memory_limit_mb", v, 20)? as u64;
    }
    if let Some(v) = f.cpu_limit_ms {
        r.cpu_limit = millis("runtime.cpu_limit_ms", v)?;
    }
    if let Some(v) = f.request_timeout_ms {
        r.request_timeout = millis("runtime.request_timeout_ms", v)?;
    }
    if let Some(v) = f.max_instances {
        r.max_instances = u32::try_from(positive("runtime.max_instances", v)?)
            .map_err(|_| invalid("runtime.max_instances", v, "too large"))?;
    }
    if let Some(v) = f.max_handles {
        r.max_handles = positive("runtime.max_handles", v)?;
    }
    if let Some(v) = f.max_result_rows {
        r.max_result_rows = positive("runtime.max_result_rows", v)?;
    }
    if let Some(v) = f.max_result_bytes {
        r.max_result_bytes = positive("runtime.max_result_bytes", v)?;
    }
    if let Some(dir) = &f.cache_dir {
        r.cache_dir = dir.clone();
    }
    Ok(r)
}

fn http(o: &Overrides, f: &FileHttp) -> Result<HttpSettings, ConfigError> {
    let mut h = HttpSettings::default();
    if let Some(addr) = o.listen.or(f.listen) {
        h.listen = addr;
    }
    if let Some(addr) = o.admin_listen.or(f.admin_listen) {
        h.admin_listen = addr;
    }
    if let Some(v) = f.max_body_kb {
        h.max_body_bytes = scaled("http.max_body_kb", v, 10)?;
    }
    if let Some(v) = f.max_concurrent_requests {
        h.max_concurrent_requests = positive("http.max_concurrent_requests", v)?;
    }
    if let Some(v) = f.header_read_timeout_ms {
        h.header_read_timeout = millis("http.header_read_timeout_ms", v)?;
    }
    if let Some(v) = f.body_read_timeout_ms {
        h.body_read_timeout = millis("http.body_read_timeout_ms", v)?;
    }
    if let Some(v) = f.shutdown_grace_ms {
        h.shutdown_grace = millis("http.shutdown_grace_ms", v)?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        Settings::from_parts(&Overrides::default(), file)
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = parse("").unwrap();
        let db = &s.databases[DEFAULT_DATABASE];
        assert_eq!(db.pool.pool_size, 5);
        assert_eq!(db.pool.max_overflow, 10);
        assert_eq!(db.pool.pool_timeout, Duration::from_secs(30));
        assert_eq!(db.pool.pool_recycle, Some(Duration::from_secs(3600)));
        assert!(db.pool.pool_pre_ping);
        assert!(!db.pool.lazy_init);
        assert!(db.url.is_none());
    }

    #[test]
    fn flags_beat_file() {
        let file: FileConfig =
            toml::from_str("[database.default]\npool_size = 3\nmax_overflow = 2\n").unwrap();
        let o = Overrides {
            pool_size: Some(7),
            ..Overrides::default()
        };
        let s = Settings::from_parts(&o, file).unwrap();
        assert_eq!(s.databases[DEFAULT_DATABASE].pool.pool_size, 7);
        assert_eq!(s.databases[DEFAULT_DATABASE].pool.max_overflow, 2);
    }

    #[test]
    fn zero_pool_size_names_the_key() {
        let err = parse("[database.default]\npool_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.default.pool_size"), "{err}");
        assert!(err.contains('0'), "{err}");
        let o = Overrides {
            pool_size: Some(-1),
            ..Overrides::default()
        };
        let err = Settings::from_parts(&o, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("TARN_POOL_SIZE"), "{err}");
    }

    #[test]
    fn recycle_zero_or_negative_disables() {
        let s = parse("[database.default]\npool_recycle = -1\n").unwrap();
        assert_eq!(s.databases[DEFAULT_DATABASE].pool.pool_recycle, None);
        let s = parse("[database.default]\npool_recycle = 0\n").unwrap();
        assert_eq!(s.databases[DEFAULT_DATABASE].pool.pool_recycle, None);
    }

    #[test]
    fn statement_cache_size_is_read_and_checked() {
        let pool = |text: &str| parse(text).map(|s| s.databases[DEFAULT_DATABASE].pool.clone());
        assert_eq!(pool("").unwrap().statement_cache_size, 100);
        let off = pool("[database.default]\nstatement_cache_size = 0\n").unwrap();
        assert_eq!(off.statement_cache_size, 0);
        let err = pool("[database.default]\nstatement_cache_size = -1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database.default.statement_cache_size"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let err = parse("[database.default]\n\npool_sise = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool_sise"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_url_is_named_and_redacted() {
        let err = parse("[database.default]\nurl = \"postgres://u:hunter2@h:notaport/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.default.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn sizes_too_large_to_hold_are_refused() {
        let err = parse("[http]\nmax_body_kb = 18014398509481984\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http.max_body_kb") && err.contains("too large"),
            "{err}"
        );
        let err = parse("[runtime]\nmemory_limit_mb = 17592186044416\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runtime.memory_limit_mb") && err.contains("too large"),
            "{err}"
        );
    }

    #[test]
    fn passwords_with_url_delimiters_are_masked() {
        for (raw, shown) in [
            ("postgres://u:pa/ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:pa?ss#x@h:5432/db?sslmode=disable",
                "postgres://u:***@h:5432/db?sslmode=disable",
            ),
            ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
            (
                "postgres://u@h/db?password=pa/ss",
                "postgres://u@h/db?password=***",
            ),
        ] {
            let url = DatabaseUrl::parse("url", raw).unwrap();
            assert_eq!(url.redacted(), shown, "{raw}");
        }
    }

    #[test]
    fn named_databases_need_urls() {
        let err = parse("[database.analytics]\npool_size = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.analytics.url"), "{err}");
        let s = parse("[database.analytics]\nurl = \"postgres://a@h/x\"\npool_size = 2\n").unwrap();
        assert_eq!(s.databases["analytics"].pool.pool_size, 2);
    }

    #[test]
    fn body_read_timeout_is_read_and_checked() {
        assert_eq!(
            parse("").unwrap().http.body_read_timeout,
            Duration::from_secs(30)
        );
        let s = parse("[http]\nbody_read_timeout_ms = 1500\n").unwrap();
        assert_eq!(s.http.body_read_timeout, Duration::from_millis(1500));
        let err = parse("[http]\nbody_read_timeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.body_read_timeout_ms"), "{err}");
    }

    #[test]
    fn session_reset_defaults_to_always() {
        let s = parse("").unwrap();
        assert_eq!(
            s.databases[DEFAULT_DATABASE].session_reset,
            SessionReset::Detected
        );
        let s = parse("[database.default]\nsession_reset = \"always\"\n").unwrap();
        assert_eq!(
            s.databases[DEFAULT_DATABASE].session_reset,
            SessionReset::Always
        );
        let err = parse("[database.default]\nsession_reset = \"never\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("session_reset") || err.contains("never"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_hides_passwords() {
        let s = parse("[database.default]\nurl = \"postgres://u:hunter2@h/db\"\n").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("u:***@h"), "{shown}");
    }
}
