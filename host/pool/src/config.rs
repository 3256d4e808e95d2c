//! Pool configuration: sizes, timeouts and health-check policy, with SQLAlchemy's defaults.

use std::time::Duration;

use crate::PoolError;

/// The largest `pool_size + max_overflow` accepted by [`PoolConfig::validate`].
///
/// PostgreSQL itself is limited to 262 143 connections; a single pool far beyond a few hundred is a
/// configuration mistake, and the limit keeps the pool's packed counters far from overflowing.
pub const MAX_CONNECTIONS: usize = 10_000;

/// How a [`Pool`](crate::Pool) sizes itself, waits, and checks its connections.
///
/// [`Default`] gives SQLAlchemy `QueuePool`'s defaults (5 + 10 connections, 30 s wait, recycle
/// after an hour) with pre-ping on and eager start-up.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// Persistent connections: opened at start-up (unless `lazy_init`) and kept open by the
    /// refill task. At most this many connections stay idle. Default 5.
    pub pool_size: usize,
    /// Extra connections opened under load on top of `pool_size`; the hard cap on open
    /// connections is `pool_size + max_overflow`. Default 10.
    pub max_overflow: usize,
    /// How long a checkout waits (FIFO) for a connection once the cap is reached before failing
    /// with [`PoolError::Timeout`]. Default 30 s.
    pub pool_timeout: Duration,
    /// Maximum age of a connection, measured from its creation minus a per-connection jitter of
    /// up to 2.5 %. Older connections are replaced at checkout. `None` disables. Default 1 hour.
    pub pool_recycle: Option<Duration>,
    /// Check a connection that has been idle for `pre_ping_after` before handing it out.
    /// Default true.
    pub pool_pre_ping: bool,
    /// Open no connection until the first checkout. Default false: `pool_size` connections are
    /// opened by [`Pool::connect`](crate::Pool::connect).
    pub lazy_init: bool,
    /// Zero (the default): a connection returned while `pool_size` connections are already idle
    /// and nobody waits is closed at once (SQLAlchemy). Non-zero: it is kept, and the maintenance
    /// task closes the excess once more than `pool_size` connections stayed idle this long.
    pub overflow_idle_timeout: Duration,
    /// Bound on callers waiting for a connection; further callers fail at once with
    /// [`PoolError::QueueFull`]. `None` is unbounded, `Some(0)` never waits. Default 1000.
    pub max_waiting: Option<usize>,
    /// Bound on opening one connection (TCP, TLS-less start-up and authentication). Default 10 s.
    pub connect_timeout: Duration,
    /// Bound on a pre-ping or health-check round trip. Default 2 s.
    pub ping_timeout: Duration,
    /// Bound on the reset (cancel, `ROLLBACK`, `DISCARD ALL`) of a dirty connection. Default 5 s.
    pub reset_timeout: Duration,
    /// Idle time after which a checkout pre-pings a connection. Default 1 s.
    pub pre_ping_after: Duration,
    /// Hand out the most recently returned idle connection first (LIFO) instead of the least
    /// recently returned one (FIFO, the default, as in SQLAlchemy).
    pub use_lifo: bool,
    /// Prepared statements each connection keeps (see [`StatementCache`](crate::StatementCache)):
    /// a statement run a second time on a connection is prepared there and later runs skip
    /// PostgreSQL's parse and plan. 0 prepares nothing. Default 100 (as asyncpg).
    pub statement_cache_size: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            pool_size: 5,
            max_overflow: 10,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Some(Duration::from_secs(3600)),
            pool_pre_ping: true,
            lazy_init: false,
            overflow_idle_timeout: Duration::ZERO,
            max_waiting: Some(1000),
            connect_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(2),
            reset_timeout: Duration::from_secs(5),
            pre_ping_after: Duration::from_secs(1),
            use_lifo: false,
            statement_cache_size: 100,
        }
    }
}

impl PoolConfig {
    /// The hard cap on open connections: `pool_size + max_overflow`.
    pub fn max_size(&self) -> usize {
        self.pool_size.saturating_add(self.max_overflow)
    }

    /// Checks the configuration; the error names the offending field and value.
    pub fn validate(&self) -> Result<(), PoolError> {
        if self.pool_size == 0 {
            return Err(invalid("pool_size", &self.pool_size, "must be at least 1"));
        }
        if self.max_size() > MAX_CONNECTIONS {
            return Err(invalid(
                "max_overflow",
                &self.max_overflow,
                &format!(
                    "pool_size + max_overflow = {} exceeds {MAX_CONNECTIONS}",
                    self.max_size()
                ),
            ));
        }
        for (field, value) in [
            ("pool_timeout", self.pool_timeout),
            ("connect_timeout", self.connect_timeout),
            ("ping_timeout", self.ping_timeout),
            ("reset_timeout", self.reset_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(field, &value, "must be greater than zero"));
            }
        }
        if let Some(recycle) = self.pool_recycle
            && recycle.is_zero()
        {
            return Err(invalid(
                "pool_recycle",
                &recycle,
                "must be greater than zero (use None to disable recycling)",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, value: &dyn std::fmt::Debug, reason: &str) -> PoolError {
    PoolError::Config {
        field,
        value: format!("{value:?}"),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: &PoolConfig) -> &'static str {
        match config.validate() {
            Err(PoolError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_sqlalchemy_plus_spec() {
        let c = PoolConfig::default();
        assert_eq!((c.pool_size, c.max_overflow, c.max_size()), (5, 10, 15));
        assert_eq!(c.pool_timeout, Duration::from_secs(30));
        assert_eq!(c.pool_recycle, Some(Duration::from_secs(3600)));
        assert!(c.pool_pre_ping && !c.lazy_init && !c.use_lifo);
        assert_eq!(c.max_waiting, Some(1000));
        assert_eq!(c.pre_ping_after, Duration::from_secs(1));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let ok = PoolConfig::default();
        assert_eq!(
            field_of(&PoolConfig {
                pool_size: 0,
                ..ok.clone()
            }),
            "pool_size"
        );
        assert_eq!(
            field_of(&PoolConfig {
                max_overflow: usize::MAX,
                ..ok.clone()
            }),
            "max_overflow"
        );
        assert_eq!(
            field_of(&PoolConfig {
                pool_timeout: Duration::ZERO,
                ..ok.clone()
            }),
            "pool_timeout"
        );
        assert_eq!(
            field_of(&PoolConfig {
                pool_recycle: Some(Duration::ZERO),
                ..ok.clone()
            }),
            "pool_recycle"
        );
        assert_eq!(
            field_of(&PoolConfig {
                connect_timeout: Duration::ZERO,
                ..ok.clone()
            }),
            "connect_timeout"
        );
        assert_eq!(
            field_of(&PoolConfig {
                ping_timeout: Duration::ZERO,
                ..ok.clone()
            }),
            "ping_timeout"
        );
        assert_eq!(
            field_of(&PoolConfig {
                reset_timeout: Duration::ZERO,
                ..ok.clone()
            }),
            "reset_timeout"
        );
    }

    #[test]
    fn accepts_edge_values() {
        let c = PoolConfig {
            pool_size: 1,
            max_overflow: 0,
            pool_recycle: None,
            max_waiting: Some(0),
            pre_ping_after: Duration::ZERO,
            ..PoolConfig::default()
        };
        assert!(c.validate().is_ok());
        let c = PoolConfig {
            max_waiting: None,
            ..PoolConfig::default()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn error_names_field_and_value() {
        let err = PoolConfig {
            pool_size: 0,
            ..PoolConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid pool configuration: pool_size = 0: must be at least 1"
        );
    }
}
