//! The pool's error type.

use std::time::Duration;

/// Why a pool operation failed. No variant ever contains the database password.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection (`pool_size + max_overflow`) stayed checked out for `pool_timeout`.
    #[error(
        "pool limit of size {pool_size} overflow {max_overflow} reached: {checked_out} checked out, \
         {waiting} waiting, timed out after {:.1}s",
        .waited.as_secs_f64()
    )]
    Timeout {
        /// The configured `pool_size`.
        pool_size: usize,
        /// The configured `max_overflow`.
        max_overflow: usize,
        /// Connections checked out when the wait ended.
        checked_out: usize,
        /// Other callers still waiting when the wait ended.
        waiting: usize,
        /// How long this caller waited.
        waited: Duration,
    },
    /// `max_waiting` callers were already waiting, so this one was turned away at once.
    #[error(
        "pool limit of size {pool_size} overflow {max_overflow} reached: {checked_out} checked out, \
         {waiting} waiting, wait queue is full"
    )]
    QueueFull {
        /// The configured `pool_size`.
        pool_size: usize,
        /// The configured `max_overflow`.
        max_overflow: usize,
        /// Connections checked out at the time.
        checked_out: usize,
        /// Callers already waiting (the `max_waiting` bound).
        waiting: usize,
    },
    /// Opening a connection failed.
    #[error("cannot connect to PostgreSQL at {host}: {}", Causes(source))]
    Connect {
        /// `host:port` (or `socket-dir:port`) of every configured host, comma separated.
        host: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// Opening a connection took longer than `connect_timeout`.
    #[error("cannot connect to PostgreSQL at {host}: timed out after {:.1}s", .timeout.as_secs_f64())]
    ConnectTimeout {
        /// `host:port` (or `socket-dir:port`) of every configured host, comma separated.
        host: String,
        /// The configured `connect_timeout`.
        timeout: Duration,
    },
    /// The pool was closed by [`Pool::close`](crate::Pool::close).
    #[error("pool is closed")]
    Closed,
    /// The [`PoolConfig`](crate::PoolConfig) is invalid.
    #[error("invalid pool configuration: {field} = {value}: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server or the driver reported an error on an established connection.
    #[error("PostgreSQL error: {}", Causes(.0))]
    Backend(#[source] tokio_postgres::Error),
    /// [`Pool::health_check`](crate::Pool::health_check) got no answer in time.
    #[error("health check failed: {0}")]
    HealthCheck(String),
    /// The pool was used outside a Tokio runtime.
    #[error("the connection pool needs a Tokio runtime (with time and IO enabled)")]
    NoRuntime,
    /// deadpool reported an error that this pool's setup rules out (a bug in tarn-pool).
    #[error("internal pool error: {0}")]
    Internal(String),
}

/// Shows a driver error with its causes: tokio-postgres prints a bare "db
/// error" and keeps the server's words ("FATAL: sorry, too many clients
/// already") in its source.
struct Causes<'a>(&'a tokio_postgres::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_display_matches_the_spec() {
        let err = PoolError::Timeout {
            pool_size: 5,
            max_overflow: 10,
            checked_out: 15,
            waiting: 7,
            waited: Duration::from_millis(30_012),
        };
        assert_eq!(
            err.to_string(),
            "pool limit of size 5 overflow 10 reached: 15 checked out, 7 waiting, timed out after 30.0s"
        );
    }

    #[test]
    fn queue_full_display() {
        let err = PoolError::QueueFull {
            pool_size: 5,
            max_overflow: 10,
            checked_out: 15,
            waiting: 1000,
        };
        assert_eq!(
            err.to_string(),
            "pool limit of size 5 overflow 10 reached: 15 checked out, 1000 waiting, wait queue is full"
        );
    }

    #[test]
    fn connect_timeout_display_names_host() {
        let err = PoolError::ConnectTimeout {
            host: "db.internal:5432".into(),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(
            err.to_string(),
            "cannot connect to PostgreSQL at db.internal:5432: timed out after 10.0s"
        );
    }
}
