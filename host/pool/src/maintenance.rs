//! The background maintenance task: drops dead and invalidated idle connections, refills the
//! pool to `pool_size` (single-flight, jittered exponential backoff capped at 5 s, never on a
//! caller's path) and, with `overflow_idle_timeout`, reaps surplus idle connections.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use deadpool::managed::WeakPool;
use futures::future::join_all;
use tracing::{debug, info};

use crate::PoolError;
use crate::manager::{Manager, Shared};
use crate::stats::IDLE;

/// First retry delay after a failed refill.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Safety-net period of the task when nothing wakes it.
const TICK: Duration = Duration::from_secs(10);
/// Shortest reaper period.
const MIN_REAP_PERIOD: Duration = Duration::from_millis(10);

/// Runs until the pool is closed or dropped.
pub(crate) async fn run(shared: Arc<Shared>, pool: WeakPool<Manager>) {
    let reap_period = (!shared.config.overflow_idle_timeout.is_zero())
        .then(|| shared.config.overflow_idle_timeout.max(MIN_REAP_PERIOD));
    let mut next_reap = reap_period.and_then(|period| Instant::now().checked_add(period));
    let mut backoff = Backoff::default();
    loop {
        if let Some(delay) = backoff.delay(&shared) {
            // The database is failing: retry on our own schedule, not on every wake-up.
            tokio::time::sleep(delay).await;
        } else {
            let mut wake_at = Instant::now() + TICK;
            if let Some(reap_at) = next_reap {
                wake_at = wake_at.min(reap_at);
            }
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
        if shared.closed.load(Relaxed) {
            break;
        }
        let Some(pool) = pool.upgrade() else { break };
        purge(&shared, &pool);
        if let (Some(reap_at), Some(period)) = (next_reap, reap_period)
            && Instant::now() >= reap_at
        {
            reap(&shared, &pool);
            next_reap = Instant::now().checked_add(period);
        }
        drop(pool);
        match refill(&shared).await {
            Ok(_) => backoff.reset(),
            Err(_) => backoff.failed(),
        }
    }
    debug!(pool = %shared.name, "maintenance task stopped");
}

/// Opens connections until open + opening reaches the target (`pool_size`), concurrently, and
/// parks them as idle. Single-flight: concurrent calls wait for each other. Returns how many
/// were added, or the first connect error.
pub(crate) async fn refill(shared: &Arc<Shared>) -> Result<usize, PoolError> {
    let _single_flight = shared.refill_lock.lock().await;
    let reservations: Vec<_> = std::iter::from_fn(|| shared.try_reserve()).collect();
    if reservations.is_empty() {
        return Ok(0);
    }
    let attempts = reservations
        .into_iter()
        .map(|reservation| shared.connect(reservation, IDLE));
    let mut added = 0;
    let mut first_error = None;
    for result in join_all(attempts).await {
        match result {
            Ok(conn) => added += usize::from(shared.park(conn)),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if added > 0 {
        debug!(pool = %shared.name, "refill opened {added} connections");
    }
    first_error.map_or(Ok(added), Err)
}

/// Closes idle connections whose socket is closed or that predate an invalidation, so the
/// refill can replace them before a caller trips over them.
fn purge(shared: &Shared, pool: &deadpool::managed::Pool<Manager>) {
    let (mut dead, mut suspect) = (0, 0);
    let mut stale = |conn: &crate::manager::Conn| {
        if conn.client.is_closed() {
            dead += 1;
            true
        } else if shared.is_suspect(conn) {
            suspect += 1;
            true
        } else {
            false
        }
    };
    let parked = shared.unpark(usize::MAX, &mut stale);
    let idle = pool.retain(|conn, _| !stale(conn)).removed;
    let removed = parked.len() + idle.len();
    drop((parked, idle));
    if removed > 0 {
        shared.counters.broken.fetch_add(dead, Relaxed);
        shared.counters.invalidated.fetch_add(suspect, Relaxed);
        debug!(pool = %shared.name, "dropped {dead} dead and {suspect} invalidated idle connections");
    }
}

/// Closes the idle connections that stayed surplus (idle beyond `pool_size`) for a whole
/// `overflow_idle_timeout`: the lowest idle count seen since the last pass, minus `pool_size`.
fn reap(shared: &Shared, pool: &deadpool::managed::Pool<Manager>) {
    let now = shared.state.load();
    let low = shared.idle_low.swap(now.idle, Relaxed);
    let size = shared.config.pool_size;
    let excess = low
        .min(now.idle)
        .saturating_sub(size)
        .min(now.open().saturating_sub(size));
    if excess == 0 {
        return;
    }
    let parked = shared.unpark(excess, |_| true);
    let mut left = excess - parked.len();
    let idle = pool
        .retain(|_, _| {
            let keep = left == 0;
            left = left.saturating_sub(1);
            keep
        })
        .removed;
    let closed = parked.len() + idle.len();
    drop((parked, idle));
    shared
        .counters
        .overflow_closed
        .fetch_add(closed as u64, Relaxed);
    info!(pool = %shared.name, "closed {closed} overflow connections idle for {:?}",
        shared.config.overflow_idle_timeout);
}

/// Jittered exponential backoff between failed refills: 100 ms doubling up to 5 s, each delay
/// drawn uniformly from its upper half.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next attempt, if the last one failed.
    fn delay(&self, shared: &Shared) -> Option<Duration> {
        let exponent = self.failures.checked_sub(1)?;
        let ceiling = BACKOFF_START
            .saturating_mul(1 << exponent.min(16))
            .min(BACKOFF_CAP);
        let unit = (shared.random(u64::from(self.failures) ^ 0xb0ff) % 1_000) as f64 / 1_000.0;
        Some(ceiling.mul_f64(0.5 + unit / 2.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolConfig;

    #[test]
    fn backoff_is_jittered_doubling_and_capped() {
        let shared = Shared::new(
            "t".into(),
            "host=127.0.0.1".parse().expect("config"),
            PoolConfig::default(),
        );
        let mut backoff = Backoff::default();
        assert_eq!(backoff.delay(&shared), None);
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            backoff.failed();
            let delay = backoff.delay(&shared).expect("a delay after a failure");
            ceilings.push(delay);
        }
        assert!(ceilings[0] >= Duration::from_millis(50) && ceilings[0] <= BACKOFF_START);
        assert!(
            ceilings[1] >= Duration::from_millis(100) && ceilings[1] <= Duration::from_millis(200)
        );
        for delay in &ceilings {
            assert!(*delay <= BACKOFF_CAP);
        }
        assert!(ceilings[11] >= BACKOFF_CAP / 2);
        backoff.reset();
        assert_eq!(backoff.delay(&shared), None);
    }
}
