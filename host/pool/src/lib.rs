//! tarn's PostgreSQL connection pool: SQLAlchemy `QueuePool` semantics on deadpool and
//! tokio-postgres, owned by the native runtime and lent to sandboxed guests.
//!
//! # Semantics
//!
//! A [`Pool`] keeps `pool_size` (5) persistent connections, opened concurrently by
//! [`Pool::connect`] unless `lazy_init` (then from the first checkout on), and lets up to
//! `max_overflow` (10) more be opened under load: a checkout takes an idle connection, else opens
//! one while fewer than `pool_size + max_overflow` are open, else waits in a FIFO queue for at most
//! `pool_timeout` (30 s) and fails with [`PoolError::Timeout`] ("pool limit of size 5 overflow 10
//! reached: 15 checked out, 7 waiting, timed out after 30.0s"). When `max_waiting` (1000) callers
//! already wait, further ones fail at once with [`PoolError::QueueFull`], so memory stays bounded.
//! A connection returned while `pool_size` are already idle and nobody waits is closed (or, with
//! `overflow_idle_timeout`, closed once the surplus stayed idle that long). Connections older than
//! `pool_recycle` (1 h, minus up to 2.5 % per-connection jitter) are replaced at checkout; ones
//! idle longer than `pre_ping_after` (1 s) are pre-pinged (a protocol Sync bounded by
//! `ping_timeout`). A failed ping or a disconnect error reported through
//! [`PooledConnection::observe_error`] invalidates every connection opened before it, like
//! SQLAlchemy's pool invalidation: after a database restart callers get fresh connections, not
//! errors, while a background task drops dead idle connections and refills the pool to
//! `pool_size` (single-flight, jittered backoff capped at 5 s). A clean connection goes back with
//! no round trip; one that upper layers [`mark`](PooledConnection::mark)ed dirty is reset in the
//! background first (cancel for [`Dirt::IN_FLIGHT`], `ROLLBACK` for [`Dirt::TRANSACTION`],
//! `DISCARD ALL` for [`Dirt::SESSION`], bounded by `reset_timeout`) and closed if that fails.
//! [`Pool::stats`] is exact under concurrency; [`Pool::metrics`] adds event counters and a
//! checkout-wait histogram. [`Pool::close`] stops checkouts, waits up to a grace period for
//! connections in use, and closes everything with a proper Terminate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tarn_pool::PoolError> {
//! use tarn_pool::{Dirt, Pool, PoolConfig};
//! let pg = "host=127.0.0.1 user=postgres dbname=postgres".parse().expect("config");
//! let pool = Pool::connect("main", pg, PoolConfig::default()).await?;
//! let mut conn = pool.get().await?;
//! conn.batch_execute("BEGIN").await.map_err(tarn_pool::PoolError::Backend)?;
//! conn.mark(Dirt::TRANSACTION); // dropped now, the pool rolls it back before reuse
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod connection;
mod error;
mod maintenance;
mod manager;
mod pool;
mod statements;
mod stats;

pub use config::{MAX_CONNECTIONS, PoolConfig};
pub use connection::{Dirt, PooledConnection, is_disconnect};
pub use error::PoolError;
pub use manager::DEFAULT_APPLICATION_NAME;
pub use pool::Pool;
pub use statements::{MAX_CACHED_SQL_BYTES, Plan, StatementCache};
pub use stats::{HistogramBucket, HistogramSnapshot, MetricsSnapshot, PoolStats, WAIT_BUCKETS};
