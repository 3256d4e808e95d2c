//! [`Pool`]: checkout (fast path, bounded FIFO wait), start-up, health check, reconnect and
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Object, QueueMode, TimeoutType, Timeouts};
use tracing::{info, warn};

use crate::connection::PooledConnection;
use crate::maintenance;
use crate::manager::{Manager, Shared};
use crate::stats::{MetricsSnapshot, PoolStats, bump};
use crate::{PoolConfig, PoolError};

/// Try to take a free slot without waiting.
const NO_WAIT: Timeouts = Timeouts {
    wait: Some(Duration::ZERO),
    create: None,
    recycle: None,
};

/// After the shutdown grace period, how long [`Pool::close`] waits for connections to finish
/// sending Terminate.
const TERMINATE_WAIT: Duration = Duration::from_secs(1);

/// A PostgreSQL connection pool with SQLAlchemy `QueuePool` semantics (see the crate docs).
/// Cloning is cheap and every clone is the same pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &*self.inner.shared;
        f.debug_struct("Pool")
            .field("name", &shared.name)
            .field("host", &shared.host)
            .field("stats", &shared.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    pool: managed::Pool<Manager>,
    shared: Arc<Shared>,
    /// deadpool timeouts for a checkout that has to queue: `pool_timeout`. Create and recycle
    /// are bounded inside the manager (connect, ping) instead.
    wait: Timeouts,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the maintenance task and close the parked connections
        // (deadpool closes its idle ones; checked-out ones close when returned).
        self.shared.closed.store(true, Relaxed);
        self.shared.wake.notify_one();
        drop(self.shared.unpark(usize::MAX, |_| true));
    }
}

impl Pool {
    /// Creates the pool named `name` (for logs and metrics). Unless `config.lazy_init`, opens
    /// `pool_size` connections concurrently before returning, and fails if any of them cannot be
    /// opened. Must run inside a Tokio runtime with time and IO enabled.
    ///
    /// `pg` gets `application_name = tarn` if it has none, TCP keepalives (idle 60 s unless set)
    /// and `connect_timeout` unless set.
    pub async fn connect(
        name: impl Into<String>,
        pg: tokio_postgres::Config,
        config: PoolConfig,
    ) -> Result<Pool, PoolError> {
        config.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| PoolError::NoRuntime)?;
        let shared = Shared::new(name.into(), pg, config);
        let config = &shared.config;
        let pool = managed::Pool::builder(Manager {
            shared: Arc::clone(&shared),
        })
        .max_size(config.max_size())
        .queue_mode(if config.use_lifo {
            QueueMode::Lifo
        } else {
            QueueMode::Fifo
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| PoolError::Internal(err.to_string()))?;
        let wait = Timeouts {
            wait: Some(config.pool_timeout),
            create: None,
            recycle: None,
        };
        let pool = Pool {
            inner: Arc::new(Inner {
                pool,
                shared: Arc::clone(&shared),
                wait,
            }),
        };
        if !config.lazy_init {
            // On failure `pool` is dropped, which closes the connections already opened.
            maintenance::refill(&shared).await?;
        }
        tokio::spawn(maintenance::run(
            Arc::clone(&shared),
            pool.inner.pool.weak(),
        ));
        info!(pool = %shared.name, host = %shared.host, "pool {} ready: {} connections",
            shared.name, shared.stats().total);
        Ok(pool)
    }

    /// Checks out a connection: an idle one (checked by age, invalidation and, if idle longer
    /// than `pre_ping_after`, a pre-ping), else a new one while under the cap, else waits FIFO up
    /// to `pool_timeout`. Fails at once with [`PoolError::QueueFull`] if `max_waiting` callers
    /// already wait.
    pub async fn get(&self) -> Result<PooledConnection, PoolError> {
        match self.inner.pool.timeout_get(&NO_WAIT).await {
            Ok(obj) => Ok(self.checked_out(obj, None)),
            // Boxed: the queued path (a timer, a semaphore waiter) would otherwise make every
            // `get` future twice as large; waiting costs far more than the allocation.
            Err(managed::PoolError::Timeout(TimeoutType::Wait)) => {
                Box::pin(self.get_queued()).await
            }
            Err(err) => Err(self.map_err(err, None)),
        }
    }

    /// The slow path: every slot is taken, so queue (FIFO) behind the other waiters.
    async fn get_queued(&self) -> Result<PooledConnection, PoolError> {
        let shared = &*self.inner.shared;
        let ahead = shared.waiting.fetch_add(1, Relaxed);
        let waiting = WaitingGuard(shared);
        if shared.config.max_waiting.is_some_and(|max| ahead >= max) {
            drop(waiting);
            bump(&shared.counters.queue_full);
            return Err(PoolError::QueueFull {
                pool_size: shared.config.pool_size,
                max_overflow: shared.config.max_overflow,
                checked_out: shared.state.load().out,
                waiting: ahead,
            });
        }
        let started = Instant::now();
        let result = self.inner.pool.timeout_get(&self.inner.wait).await;
        drop(waiting);
        match result {
            Ok(obj) => Ok(self.checked_out(obj, Some(started))),
            Err(err) => Err(self.map_err(err, Some(started))),
        }
    }

    fn checked_out(&self, mut obj: Object<Manager>, queued: Option<Instant>) -> PooledConnection {
        let io = std::mem::take(&mut obj.checkout_io);
        let hist = &self.inner.shared.wait_hist;
        match queued {
            Some(started) => hist.record(started.elapsed()),
            None if io.is_zero() => hist.record_zero(),
            None => hist.record(io),
        }
        PooledConnection::new(obj)
    }

    fn map_err(&self, err: managed::PoolError<PoolError>, queued: Option<Instant>) -> PoolError {
        let shared = &*self.inner.shared;
        match err {
            managed::PoolError::Backend(err) => err,
            managed::PoolError::Closed => PoolError::Closed,
            managed::PoolError::Timeout(_) => {
                bump(&shared.counters.checkout_timeouts);
                PoolError::Timeout {
                    pool_size: shared.config.pool_size,
                    max_overflow: shared.config.max_overflow,
                    checked_out: shared.state.load().out,
                    waiting: shared.waiting.load(Relaxed),
                    waited: queued.map(|started| started.elapsed()).unwrap_or_default(),
                }
            }
            other => PoolError::Internal(other.to_string()),
        }
    }

    /// Exact connection counts (one atomic snapshot).
    pub fn stats(&self) -> PoolStats {
        self.inner.shared.stats()
    }

    /// Counters, gauges and the checkout-wait histogram.
    pub fn metrics(&self) -> MetricsSnapshot {
        let shared = &*self.inner.shared;
        let c = &shared.counters;
        MetricsSnapshot {
            name: shared.name.clone(),
            stats: shared.stats(),
            connecting: shared.state.load().opening,
            connections_created: c.created.load(Relaxed),
            connections_closed: c.closed.load(Relaxed),
            recycled: c.recycled.load(Relaxed),
            invalidated: c.invalidated.load(Relaxed),
            broken: c.broken.load(Relaxed),
            overflow_closed: c.overflow_closed.load(Relaxed),
            failed_pings: c.failed_pings.load(Relaxed),
            failed_health_checks: c.failed_health_checks.load(Relaxed),
            checkout_timeouts: c.checkout_timeouts.load(Relaxed),
            queue_full_rejections: c.queue_full.load(Relaxed),
            resets: c.resets.load(Relaxed),
            reset_failures: c.reset_failures.load(Relaxed),
            connect_failures: c.connect_failures.load(Relaxed),
            statements_prepared: c.statements_prepared.load(Relaxed),
            statement_cache_hits: c.statement_cache_hits.load(Relaxed),
            checkout_wait: shared.wait_hist.snapshot(),
        }
    }

    /// The configuration the pool was created with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.shared.config
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// Checks out a connection and makes one round trip on it, bounded by `ping_timeout`.
    /// Failures are counted (`failed_health_checks`) and the connection is then closed.
    pub async fn health_check(&self) -> Result<(), PoolError> {
        let result = async {
            let mut conn = self.get().await?;
            let timeout = self.config().ping_timeout;
            match tokio::time::timeout(timeout, conn.check_connection()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => {
                    conn.mark_broken();
                    Err(PoolError::Backend(err))
                }
                Err(_) => {
                    conn.mark_broken();
                    Err(PoolError::HealthCheck(format!(
                        "no reply within {timeout:?}"
                    )))
                }
            }
        }
        .await;
        if let Err(err) = &result {
            bump(&self.inner.shared.counters.failed_health_checks);
            warn!(pool = %self.name(), host = %self.inner.shared.host, "health check failed: {err}");
        }
        result
    }

    /// Replaces every connection: closes the idle ones now, marks the checked-out ones to be
    /// closed when returned, and opens `pool_size` new ones (single-flight with the refill task;
    /// if that fails, the refill task keeps retrying with backoff).
    pub async fn reconnect(&self) {
        let shared = &self.inner.shared;
        if shared.closed.load(Relaxed) {
            return;
        }
        shared.invalidate();
        drop(self.inner.pool.retain(|_, _| false).removed);
        drop(shared.unpark(usize::MAX, |_| true));
        match maintenance::refill(shared).await {
            Ok(opened) => info!(pool = %shared.name, "reconnected: {opened} new connections"),
            Err(err) => warn!(pool = %shared.name, "reconnect: {err}; retrying in the background"),
        }
    }

    /// Shuts the pool down: new and queued checkouts fail with [`PoolError::Closed`], idle
    /// connections are closed now, checked-out ones as they are returned, for up to `grace`.
    /// Connections still checked out after that are cut. Returns once every connection has
    /// sent Terminate (bounded by one more second).
    pub async fn close(&self, grace: Duration) {
        let shared = &*self.inner.shared;
        let deadline = Instant::now().checked_add(grace);
        shared.closed.store(true, Relaxed);
        self.inner.pool.close();
        drop(shared.unpark(usize::MAX, |_| true));
        shared.wake.notify_one();
        let all_returned = || shared.state.load().committed() == 0;
        wait_until(shared, deadline, all_returned).await;
        let left = shared.state.load().committed();
        if left > 0 {
            warn!(pool = %shared.name, "closing {left} connections still in use after {grace:?}");
        }
        shared.kill_drivers();
        let terminated = || shared.drivers.load(Relaxed) == 0;
        wait_until(
            shared,
            Instant::now().checked_add(TERMINATE_WAIT),
            terminated,
        )
        .await;
        info!(pool = %shared.name, "pool {} closed", shared.name);
    }
}

/// Waits for `done` (re-checked whenever a connection or driver goes away) until `deadline`.
async fn wait_until(shared: &Shared, deadline: Option<Instant>, done: impl Fn() -> bool) {
    loop {
        let notified = shared.drained.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        match deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline.into(), notified)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            None => notified.await,
        }
    }
}

/// Keeps `Shared::waiting` exact even if the waiting checkout is cancelled.
struct WaitingGuard<'a>(&'a Shared);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}
