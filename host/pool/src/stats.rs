//! Exact statistics: one packed atomic word for the connection states, event counters and the
//! checkout-wait histogram, plus the plain-data snapshots handed to callers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

/// One idle connection in the packed state word.
pub(crate) const IDLE: u64 = 1;
/// One checked-out connection (including one being pinged, or reset after a dirty return).
pub(crate) const OUT: u64 = 1 << FIELD_BITS;
/// One connection being opened.
pub(crate) const OPENING: u64 = 1 << (2 * FIELD_BITS);

/// Aligns a value to its own cache lines so hot atomics do not share a line.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The connection counts decoded from the state word: one consistent snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub idle: usize,
    pub out: usize,
    pub opening: usize,
}

impl Counts {
    fn unpack(word: u64) -> Self {
        Self {
            idle: (word & FIELD_MASK) as usize,
            out: ((word >> FIELD_BITS) & FIELD_MASK) as usize,
            opening: ((word >> (2 * FIELD_BITS)) & FIELD_MASK) as usize,
        }
    }

    /// Open connections (idle + checked out).
    pub fn open(self) -> usize {
        self.idle + self.out
    }

    /// Open connections plus those being opened.
    pub fn committed(self) -> usize {
        self.open() + self.opening
    }
}

/// Idle, checked-out and opening connections packed in one atomic word (21 bits each, far above
/// [`MAX_CONNECTIONS`](crate::MAX_CONNECTIONS)), so every move between states is one atomic
/// operation and every snapshot is consistent.
#[derive(Default)]
pub(crate) struct State(AtomicU64);

impl State {
    pub fn load(&self) -> Counts {
        Counts::unpack(self.0.load(Relaxed))
    }

    /// Moves one connection from state `from` to state `to` (units above); returns the counts
    /// before the move. The caller guarantees the `from` field is not zero.
    pub fn transfer(&self, from: u64, to: u64) -> Counts {
        let before = Counts::unpack(self.0.fetch_add(to.wrapping_sub(from), Relaxed));
        debug_assert!(
            field(before, from) > 0,
            "state underflow: {before:?} moving {from:#x}"
        );
        before
    }

    /// Adds one connection in state `unit`.
    pub fn add(&self, unit: u64) {
        self.0.fetch_add(unit, Relaxed);
    }

    /// Removes one connection in state `unit`; returns the counts after.
    pub fn sub(&self, unit: u64) -> Counts {
        let before = self.0.fetch_sub(unit, Relaxed);
        debug_assert!(
            field(Counts::unpack(before), unit) > 0,
            "state underflow: {before:#x} removing {unit:#x}"
        );
        Counts::unpack(before.wrapping_sub(unit))
    }

    /// Registers one connection being opened if open + opening stays below `target`.
    pub fn try_reserve(&self, target: usize) -> bool {
        self.0
            .fetch_update(Relaxed, Relaxed, |word| {
                (Counts::unpack(word).committed() < target).then_some(word + OPENING)
            })
            .is_ok()
    }
}

fn field(counts: Counts, unit: u64) -> usize {
    match unit {
        IDLE => counts.idle,
        OUT => counts.out,
        _ => counts.opening,
    }
}

/// Event counters (monotonic).
#[derive(Default)]
pub(crate) struct Counters {
    pub created: AtomicU64,
    pub closed: AtomicU64,
    pub recycled: AtomicU64,
    pub invalidated: AtomicU64,
    pub broken: AtomicU64,
    pub overflow_closed: AtomicU64,
    pub failed_pings: AtomicU64,
    pub failed_health_checks: AtomicU64,
    pub checkout_timeouts: AtomicU64,
    pub queue_full: AtomicU64,
    pub resets: AtomicU64,
    pub reset_failures: AtomicU64,
    pub connect_failures: AtomicU64,
    pub statements_prepared: AtomicU64,
    pub statement_cache_hits: AtomicU64,
}

/// Adds one to an event counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Upper bounds (seconds) of the checkout-wait histogram buckets; a final `+Inf` bucket is implied.
pub const WAIT_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
];

const WAIT_BOUNDS_NANOS: [u64; 12] = [
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// A Prometheus-style histogram of durations with fixed buckets (non-cumulative internally).
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records a duration.
    pub fn record(&self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let bucket = WAIT_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Records a zero duration (an immediate checkout): one atomic increment.
    pub fn record_zero(&self) {
        self.buckets[0].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(WAIT_BUCKETS.len());
        for (le, count) in WAIT_BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Relaxed);
            buckets.push(HistogramBucket {
                le: *le,
                count: cumulative,
            });
        }
        cumulative += self.buckets[WAIT_BUCKETS.len()].load(Relaxed);
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Relaxed)).as_secs_f64(),
        }
    }
}

/// SQLAlchemy-style pool status; an exact snapshot (all connection counts read atomically).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// The configured `pool_size`.
    pub size: usize,
    /// Idle connections ready to be handed out.
    pub checked_in: usize,
    /// Connections handed out (including ones being checked or reset).
    pub checked_out: usize,
    /// Open connections beyond `pool_size` (never negative, unlike SQLAlchemy's).
    pub overflow: usize,
    /// Open connections: `checked_in + checked_out`.
    pub total: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// One cumulative histogram bucket: checkouts that took at most `le` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HistogramBucket {
    /// Upper bound in seconds.
    pub le: f64,
    /// Cumulative count.
    pub count: u64,
}

/// A cumulative histogram; the `+Inf` bucket is `count`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// Finite buckets, ascending ([`WAIT_BUCKETS`]).
    pub buckets: Vec<HistogramBucket>,
    /// Number of observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
}

/// Everything a metrics exporter needs about one pool: plain data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// The pool's name.
    pub name: String,
    /// Current connection counts.
    pub stats: PoolStats,
    /// Connections being opened right now.
    pub connecting: usize,
    /// Connections opened since start.
    pub connections_created: u64,
    /// Connections closed since start, for any reason.
    pub connections_closed: u64,
    /// Connections replaced because they reached `pool_recycle`.
    pub recycled: u64,
    /// Connections discarded because a disconnect invalidated every older connection.
    pub invalidated: u64,
    /// Connections found dead (closed socket or disconnect error) and discarded.
    pub broken: u64,
    /// Overflow connections closed on return or by the idle reaper.
    pub overflow_closed: u64,
    /// Pre-pings that failed.
    pub failed_pings: u64,
    /// [`Pool::health_check`](crate::Pool::health_check) calls that failed.
    pub failed_health_checks: u64,
    /// Checkouts that failed with [`PoolError::Timeout`](crate::PoolError::Timeout).
    pub checkout_timeouts: u64,
    /// Checkouts rejected with [`PoolError::QueueFull`](crate::PoolError::QueueFull).
    pub queue_full_rejections: u64,
    /// Dirty connections reset and returned to the pool.
    pub resets: u64,
    /// Dirty connections whose reset failed or timed out (they were closed).
    pub reset_failures: u64,
    /// Failed attempts to open a connection.
    pub connect_failures: u64,
    /// Statements prepared into a connection's statement cache.
    pub statements_prepared: u64,
    /// Statement runs that reused a prepared statement.
    pub statement_cache_hits: u64,
    /// Time successful checkouts took (`get()` latency: queueing, plus any pre-ping or connect).
    pub checkout_wait: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_moves_are_exact() {
        let s = State::default();
        assert!(s.try_reserve(2));
        assert!(s.try_reserve(2));
        assert!(!s.try_reserve(2));
        assert_eq!(
            s.load(),
            Counts {
                idle: 0,
                out: 0,
                opening: 2
            }
        );
        s.transfer(OPENING, IDLE);
        s.transfer(OPENING, OUT);
        assert_eq!(
            s.load(),
            Counts {
                idle: 1,
                out: 1,
                opening: 0
            }
        );
        let before = s.transfer(IDLE, OUT);
        assert_eq!(
            before,
            Counts {
                idle: 1,
                out: 1,
                opening: 0
            }
        );
        assert_eq!(
            s.load(),
            Counts {
                idle: 0,
                out: 2,
                opening: 0
            }
        );
        s.transfer(OUT, IDLE);
        assert_eq!(
            s.sub(OUT),
            Counts {
                idle: 1,
                out: 0,
                opening: 0
            }
        );
        assert_eq!(s.sub(IDLE).committed(), 0);
        s.add(OPENING);
        assert_eq!(s.load().opening, 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative_le() {
        let h = Histogram::default();
        h.record_zero();
        h.record(Duration::from_micros(100)); // exactly on the first bound: le 0.0001
        h.record(Duration::from_micros(101));
        h.record(Duration::from_millis(20));
        h.record(Duration::from_secs(31)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets.len(), 12);
        assert_eq!((s.buckets[0].le, s.buckets[0].count), (0.0001, 2));
        assert_eq!(s.buckets[1].count, 3);
        assert_eq!(s.buckets[4].count, 3); // le 0.01
        assert_eq!(s.buckets[5].count, 4); // le 0.05
        assert_eq!(s.buckets[11].count, 4); // le 30
        let expected = 0.0001 + 0.000101 + 0.02 + 31.0;
        assert!((s.sum_seconds - expected).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn histogram_saturates_huge_values() {
        let h = Histogram::default();
        h.record(Duration::MAX);
        assert_eq!(h.snapshot().count, 1);
        assert_eq!(h.snapshot().buckets[11].count, 0);
    }
}
