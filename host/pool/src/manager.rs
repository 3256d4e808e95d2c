//! The deadpool [`Manager`](deadpool::managed::Manager) over tokio-postgres, the pooled
//! connection type [`Conn`] with its per-connection state, and [`Shared`]: the state that the
//! pool, its connections and its maintenance task share.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use tokio::sync::{Notify, watch};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, warn};

use crate::stats::{
    CachePadded, Counters, Counts, Histogram, IDLE, OPENING, OUT, PoolStats, State, bump,
};
use crate::{PoolConfig, PoolError, StatementCache};

/// The `application_name` set on connections whose configuration has none.
pub const DEFAULT_APPLICATION_NAME: &str = "tarn";

/// TCP keepalive idle time set on connections whose configuration left tokio-postgres' 2 h default.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(60);

/// tokio-postgres' default `keepalives_idle`.
const DRIVER_DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// At shutdown, how long a killed connection may still run to finish sending Terminate.
const KILL_GRACE: Duration = Duration::from_millis(100);

/// Largest recycle jitter, as a fraction of `pool_recycle` (HikariCP's 2.5 %).
const RECYCLE_JITTER: f64 = 0.025;

/// State shared by the pool handle, the deadpool manager, every connection and the maintenance
/// task. It never owns the deadpool pool, so connections can point back to it without a cycle
/// (the refill stash is emptied when the pool is dropped or closed).
pub(crate) struct Shared {
    pub name: String,
    pub config: PoolConfig,
    pg: tokio_postgres::Config,
    /// `host:port` list for errors and logs (never the password).
    pub host: String,
    /// Where to send a CancelRequest for a connection of this pool.
    pub cancel_route: CancelRoute,
    /// Idle / checked-out / opening counts.
    pub state: CachePadded<State>,
    /// Callers queued for a connection (slow path only).
    pub waiting: CachePadded<AtomicUsize>,
    /// Invalidation epoch: connections created under an older epoch are suspect.
    pub epoch: CachePadded<AtomicU64>,
    /// Lowest idle count seen while above `pool_size` since the last reaper pass.
    pub idle_low: CachePadded<AtomicUsize>,
    pub counters: Counters,
    pub wait_hist: Histogram,
    /// Idle connections opened by the refill task (deadpool cannot adopt objects it did not
    /// create): handed out by [`Shared::checkout_new`] when deadpool's own idle queue is empty.
    #[expect(
        clippy::vec_box,
        reason = "the boxes move between here and deadpool as they are"
    )]
    stash: Mutex<Vec<Box<Conn>>>,
    /// Wakes the maintenance task (connection lost, invalidation, first use of a lazy pool).
    pub wake: Notify,
    /// Signalled while closing whenever a connection or its driver task goes away.
    pub drained: Notify,
    /// Set by [`Pool::close`](crate::Pool::close) and when the last pool handle is dropped.
    pub closed: AtomicBool,
    /// Whether the refill task keeps `pool_size` connections open (from start for an eager pool,
    /// from the first checkout for a lazy one).
    warm: AtomicBool,
    /// Makes refills single-flight.
    pub refill_lock: tokio::sync::Mutex<()>,
    /// Tells connection driver tasks to stop (shutdown after the grace period).
    kill: watch::Sender<bool>,
    /// Connection driver tasks still running.
    pub drivers: AtomicUsize,
    next_id: AtomicU64,
    random: RandomState,
}

impl Shared {
    /// Builds the shared state; adjusts `pg` (application name, keepalives, connect timeout).
    pub fn new(name: String, mut pg: tokio_postgres::Config, config: PoolConfig) -> Arc<Self> {
        if pg.get_application_name().is_none() {
            pg.application_name(DEFAULT_APPLICATION_NAME);
        }
        pg.keepalives(true);
        if pg.get_keepalives_idle() == DRIVER_DEFAULT_KEEPALIVES_IDLE {
            pg.keepalives_idle(KEEPALIVES_IDLE);
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        Arc::new(Self {
            host: describe_hosts(&pg),
            cancel_route: CancelRoute::from_config(&pg),
            warm: AtomicBool::new(!config.lazy_init),
            name,
            config,
            pg,
            state: CachePadded::default(),
            waiting: CachePadded::default(),
            epoch: CachePadded::default(),
            idle_low: CachePadded::default(),
            counters: Counters::default(),
            wait_hist: Histogram::default(),
            stash: Mutex::new(Vec::new()),
            wake: Notify::new(),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            refill_lock: tokio::sync::Mutex::new(()),
            kill: watch::Sender::new(false),
            drivers: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            random: RandomState::new(),
        })
    }

    /// A pseudo-random number derived from `salt` (per-process random keys).
    pub fn random(&self, salt: u64) -> u64 {
        self.random.hash_one(salt)
    }

    /// How many connections the refill task keeps open.
    pub fn target(&self) -> usize {
        if self.warm.load(Relaxed) && !self.closed.load(Relaxed) {
            self.config.pool_size
        } else {
            0
        }
    }

    /// Exact current statistics.
    pub fn stats(&self) -> PoolStats {
        let c = self.state.load();
        PoolStats {
            size: self.config.pool_size,
            checked_in: c.idle,
            checked_out: c.out,
            overflow: c.open().saturating_sub(self.config.pool_size),
            total: c.open(),
            waiting: self.waiting.load(Relaxed),
        }
    }

    /// Marks every existing connection as suspect (SQLAlchemy's `_invalidate_time`): each is
    /// discarded at its next checkout or return instead of being reused.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Relaxed);
        self.wake.notify_one();
    }

    /// Whether `conn` was created before the last invalidation.
    pub fn is_suspect(&self, conn: &Conn) -> bool {
        conn.epoch < self.epoch.load(Relaxed)
    }

    /// Registers a connection about to be opened by a checkout (bounded by deadpool's permits).
    pub fn reserve(&self) -> Reservation<'_> {
        self.state.add(OPENING);
        Reservation(&self.state)
    }

    /// Registers a connection about to be opened by the refill task, if the pool is below target.
    pub fn try_reserve(&self) -> Option<Reservation<'_>> {
        self.state
            .try_reserve(self.target())
            .then(|| Reservation(&self.state)) // lazily: dropping one releases a count
    }

    /// Opens a connection bounded by `connect_timeout`; it starts in state `slot` (IDLE or OUT).
    pub async fn connect(
        self: &Arc<Self>,
        reservation: Reservation<'_>,
        slot: u64,
    ) -> Result<Box<Conn>, PoolError> {
        let started = Instant::now();
        let attempt = tokio::time::timeout(self.config.connect_timeout, self.pg.connect(NoTls));
        match attempt.await {
            Ok(Ok((client, connection))) => {
                let id = self.next_id.fetch_add(1, Relaxed);
                self.spawn_driver(connection, id);
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(started);
                let mut conn = Conn::new(self, reservation, client, slot, id, now);
                if slot == OUT {
                    conn.checkout_io = elapsed; // this checkout waited for the connect
                }
                debug!(pool = %self.name, conn = id, "connected to {} in {elapsed:?}", self.host);
                Ok(conn)
            }
            // tokio-postgres' own (socket-level) connect timeout is a timeout too.
            Ok(Err(source)) if !is_timeout(&source) => {
                bump(&self.counters.connect_failures);
                warn!(pool = %self.name, host = %self.host, "cannot connect to PostgreSQL: {source}");
                Err(PoolError::Connect {
                    host: self.host.clone(),
                    source,
                })
            }
            Ok(Err(_)) | Err(_) => {
                bump(&self.counters.connect_failures);
                warn!(pool = %self.name, host = %self.host,
                    "cannot connect to PostgreSQL: timed out after {:?}", self.config.connect_timeout);
                Err(PoolError::ConnectTimeout {
                    host: self.host.clone(),
                    timeout: self.config.connect_timeout,
                })
            }
        }
    }

    /// Drives a connection's socket until its client is dropped (then it sends Terminate), the
    /// server goes away (then the maintenance task is woken), or shutdown kills it.
    fn spawn_driver(
        self: &Arc<Self>,
        connection: impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
        id: u64,
    ) {
        self.drivers.fetch_add(1, Relaxed);
        let shared = Arc::clone(self);
        let mut kill = self.kill.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let killed = async {
                // An error means the sender is gone, which cannot happen while we hold `shared`.
                let _ = kill.wait_for(|kill| *kill).await;
            };
            let result = tokio::select! {
                result = &mut connection => result,
                () = killed => {
                    tokio::time::timeout(KILL_GRACE, &mut connection).await.unwrap_or(Ok(()))
                }
            };
            if let Err(err) = result {
                debug!(pool = %shared.name, conn = id, "connection ended: {err}");
                shared.wake.notify_one();
            }
            shared.drivers.fetch_sub(1, Relaxed);
            shared.drained.notify_waiters();
        });
    }

    /// Stops every connection driver still running (after the shutdown grace period).
    pub fn kill_drivers(&self) {
        self.kill.send_replace(true);
    }

    /// Decides whether an idle connection may be handed out; counts discards.
    fn verdict(&self, conn: &Conn, now: Instant) -> Verdict {
        if conn.client.is_closed() {
            bump(&self.counters.broken);
            return Verdict::Discard("its socket is closed");
        }
        if self.is_suspect(conn) {
            bump(&self.counters.invalidated);
            return Verdict::Discard("it predates a disconnect (invalidated)");
        }
        if conn.expires.is_some_and(|expires| now >= expires) {
            bump(&self.counters.recycled);
            return Verdict::Discard("it reached pool_recycle");
        }
        if self.config.pool_pre_ping
            && now.saturating_duration_since(conn.last_returned) >= self.config.pre_ping_after
        {
            return Verdict::Ping;
        }
        Verdict::Ready
    }

    /// Checks an idle connection being checked out: age, invalidation, liveness and, when it
    /// has been idle long enough, a pre-ping. `false` means discard it.
    pub async fn vet(&self, conn: &mut Conn) -> bool {
        let now = if self.config.pool_pre_ping || conn.expires.is_some() {
            Instant::now()
        } else {
            conn.last_returned // no clock needed
        };
        match self.verdict(conn, now) {
            Verdict::Ready => true,
            Verdict::Ping => Box::pin(self.ping(conn, now)).await,
            Verdict::Discard(why) => {
                debug!(pool = %self.name, conn = conn.id, "discarding a connection at checkout: {why}");
                false
            }
        }
    }

    /// Pre-pings a connection (a protocol Sync round trip) bounded by `ping_timeout`. A failure
    /// invalidates every connection created before now.
    async fn ping(&self, conn: &mut Conn, started: Instant) -> bool {
        let reply =
            tokio::time::timeout(self.config.ping_timeout, conn.client.check_connection()).await;
        let failure = match reply {
            Ok(Ok(())) => {
                conn.checkout_io += started.elapsed();
                return true;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no reply within {:?}", self.config.ping_timeout),
        };
        bump(&self.counters.failed_pings);
        warn!(pool = %self.name, host = %self.host, conn = conn.id,
            "pre-ping failed ({failure}); invalidating every connection opened before now");
        self.invalidate();
        false
    }

    /// Produces a connection when deadpool's idle queue is empty: a parked one from the refill
    /// task if any passes [`Shared::vet`], else a new one opened by this caller.
    async fn checkout_new(self: &Arc<Self>) -> Result<Box<Conn>, PoolError> {
        if !self.warm.swap(true, Relaxed) {
            // First use of a lazy pool: from now on the refill task keeps pool_size open.
            self.wake.notify_one();
        }
        while let Some(mut conn) = self.pop_parked() {
            conn.check_out();
            if self.vet(&mut conn).await {
                return Ok(conn);
            }
        }
        let reservation = self.reserve();
        self.connect(reservation, OUT).await
    }

    /// Lets the overflow reaper see how low the idle count dipped (only while above pool_size).
    fn note_checkout(&self, idle_after: usize, open: usize) {
        if !self.config.overflow_idle_timeout.is_zero() && open > self.config.pool_size {
            self.idle_low.fetch_min(idle_after, Relaxed);
        }
    }

    #[expect(
        clippy::vec_box,
        reason = "the boxes move between here and deadpool as they are"
    )]
    fn stash(&self) -> MutexGuard<'_, Vec<Box<Conn>>> {
        self.stash.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks an idle connection opened by the refill task. Returns false (and closes it) if the
    /// pool is closed, if a burst of checkouts already took the pool to its cap, or if
    /// checkouts opened connections of their own meanwhile so that this one would take the pool
    /// past `pool_size` with nobody waiting (an idle overflow connection, which the pool does
    /// not keep).
    pub fn park(&self, conn: Box<Conn>) -> bool {
        let rejected = {
            let mut stash = self.stash();
            let committed = self.state.load().committed();
            let surplus = committed > self.config.pool_size && self.waiting.load(Relaxed) == 0;
            if self.closed.load(Relaxed) || committed > self.config.max_size() || surplus {
                Some(conn)
            } else {
                stash.push(conn);
                None
            }
        };
        rejected.is_none()
    }

    fn pop_parked(&self) -> Option<Box<Conn>> {
        self.stash().pop()
    }

    /// Removes parked connections matching `remove`, at most `limit`, oldest first.
    #[expect(
        clippy::vec_box,
        reason = "the boxes move between here and deadpool as they are"
    )]
    pub fn unpark(&self, limit: usize, mut remove: impl FnMut(&Conn) -> bool) -> Vec<Box<Conn>> {
        let mut left = limit;
        let removed: Vec<Box<Conn>> = self
            .stash()
            .extract_if(.., |conn| {
                let take = left > 0 && remove(conn);
                left -= usize::from(take);
                take
            })
            .collect();
        removed
    }

    /// Called by [`Conn`]'s drop: wakes whoever cares about the pool shrinking.
    fn connection_closed(&self, after: Counts) {
        if self.closed.load(Relaxed) {
            self.drained.notify_waiters();
        } else if after.committed() < self.target() {
            self.wake.notify_one();
        }
    }
}

/// A registered connection attempt (the OPENING count); released if the attempt fails or is
/// cancelled, converted into the new connection's state on success.
pub(crate) struct Reservation<'a>(&'a State);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.sub(OPENING);
    }
}

enum Verdict {
    Ready,
    Ping,
    Discard(&'static str),
}

/// One PostgreSQL connection owned by the pool (boxed, so that deadpool's objects and futures
/// that carry it stay small). Its drop keeps the pool's counts exact on every
/// path, and drops the client so that the driver task sends Terminate (a graceful close).
pub(crate) struct Conn {
    pub client: Client,
    pub id: u64,
    /// Creation time minus `pool_recycle` and jitter: replaced at checkout from then on.
    expires: Option<Instant>,
    /// When the connection was last returned (or created): the pre-ping idle clock.
    pub last_returned: Instant,
    /// The invalidation epoch at creation.
    epoch: u64,
    /// IDLE or OUT: which count this connection is in.
    slot: u64,
    /// Time spent connecting or pre-pinging during the checkout that is producing it.
    pub checkout_io: Duration,
    /// Statements prepared on this connection (locked only between awaits, never contended:
    /// one user at a time).
    pub statements: Mutex<StatementCache>,
    pub shared: Arc<Shared>,
}

impl Conn {
    fn new(
        shared: &Arc<Shared>,
        reservation: Reservation<'_>,
        client: Client,
        slot: u64,
        id: u64,
        now: Instant,
    ) -> Box<Self> {
        let before = shared.state.transfer(OPENING, slot);
        std::mem::forget(reservation); // its OPENING count just became `slot`
        bump(&shared.counters.created);
        if slot == OUT {
            shared.note_checkout(before.idle, before.open() + 1);
        }
        let expires = shared.config.pool_recycle.and_then(|recycle| {
            let fraction = (shared.random(id) % 10_000) as f64 / 10_000.0 * RECYCLE_JITTER;
            let jitter =
                Duration::try_from_secs_f64(recycle.as_secs_f64() * fraction).unwrap_or_default();
            now.checked_add(recycle.saturating_sub(jitter))
        });
        Box::new(Self {
            client,
            id,
            expires,
            last_returned: now,
            epoch: shared.epoch.load(Relaxed),
            slot,
            checkout_io: Duration::ZERO,
            statements: Mutex::new(StatementCache::new(shared.config.statement_cache_size)),
            shared: Arc::clone(shared),
        })
    }

    /// Moves this connection from idle to checked out.
    pub fn check_out(&mut self) {
        if self.slot == IDLE {
            let before = self.shared.state.transfer(IDLE, OUT);
            self.slot = OUT;
            self.shared.note_checkout(before.idle - 1, before.open());
        }
    }

    /// Moves this connection from checked out to idle; returns the counts before the move.
    pub fn check_in(&mut self) -> Counts {
        let before = self.shared.state.transfer(OUT, IDLE);
        self.slot = IDLE;
        before
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let after = self.shared.state.sub(self.slot);
        bump(&self.shared.counters.closed);
        self.shared.connection_closed(after);
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("idle", &(self.slot == IDLE))
            .finish_non_exhaustive()
    }
}

/// deadpool's side of the pool: `create` when its idle queue is empty, `recycle` for every idle
/// connection it pops. deadpool's own recycle methods are not used (they never roll back).
pub(crate) struct Manager {
    pub shared: Arc<Shared>,
}

impl deadpool::managed::Manager for Manager {
    type Type = Box<Conn>;
    type Error = PoolError;

    async fn create(&self) -> Result<Box<Conn>, PoolError> {
        // Boxed: connecting is the cold path, and its future (several KB) would otherwise be
        // inlined into every `Pool::get` future.
        Box::pin(self.shared.checkout_new()).await
    }

    async fn recycle(&self, conn: &mut Box<Conn>, _: &Metrics) -> RecycleResult<PoolError> {
        conn.check_out();
        if self.shared.vet(conn).await {
            Ok(())
        } else {
            Err(RecycleError::message("discarded at checkout"))
        }
    }
}

/// Where a CancelRequest for this pool's connections goes. With a single host we open that
/// socket ourselves so that we can wait for the server to process the request (see
/// `connection::cancel`); with several we cannot tell which one a connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelRoute {
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
    /// Let tokio-postgres pick the host; the connection is closed after the cancel.
    Driver,
}

impl CancelRoute {
    fn from_config(pg: &tokio_postgres::Config) -> Self {
        let port = match pg.get_ports() {
            [] => 5432,
            [port] => *port,
            _ => return Self::Driver,
        };
        match (pg.get_hosts(), pg.get_hostaddrs()) {
            (hosts, [addr]) if hosts.len() <= 1 => Self::Tcp {
                host: addr.to_string(),
                port,
            },
            ([Host::Tcp(host)], []) => Self::Tcp {
                host: host.clone(),
                port,
            },
            #[cfg(unix)]
            ([Host::Unix(dir)], []) => Self::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            _ => Self::Driver,
        }
    }
}

/// Whether a driver error is tokio-postgres' socket connect timeout.
fn is_timeout(err: &tokio_postgres::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// `host:port` for every configured host, comma separated (never the password).
fn describe_hosts(pg: &tokio_postgres::Config) -> String {
    let hosts = pg.get_hosts();
    let addrs = pg.get_hostaddrs();
    let ports = pg.get_ports();
    let count = hosts.len().max(addrs.len());
    if count == 0 {
        return "(no host configured)".to_owned();
    }
    (0..count)
        .map(|i| {
            let port = match ports {
                [] => 5432,
                [port] => *port,
                ports => ports.get(i).copied().unwrap_or(5432),
            };
            let host = match (hosts.get(i), addrs.get(i)) {
                (Some(Host::Tcp(host)), _) => host.clone(),
                #[cfg(unix)]
                (Some(Host::Unix(dir)), _) => dir.display().to_string(),
                (None, Some(addr)) => addr.to_string(),
                (None, None) => "?".to_owned(),
            };
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> tokio_postgres::Config {
        s.parse().expect("valid test config")
    }

    #[test]
    fn hosts_are_described_without_password() {
        let pg = config("host=db1,db2 port=5433 user=u password=sekret dbname=d");
        assert_eq!(describe_hosts(&pg), "db1:5433,db2:5433");
        let pg = config("host=/run/postgresql user=u password=sekret");
        assert_eq!(describe_hosts(&pg), "/run/postgresql:5432");
        let pg = config("postgresql://u:sekret@127.0.0.1:6543/d");
        assert_eq!(describe_hosts(&pg), "127.0.0.1:6543");
    }

    #[test]
    fn cancel_route_needs_a_single_host() {
        assert_eq!(
            CancelRoute::from_config(&config("host=127.0.0.1 port=5433")),
            CancelRoute::Tcp {
                host: "127.0.0.1".into(),
                port: 5433
            }
        );
        assert_eq!(
            CancelRoute::from_config(&config("host=/tmp")),
            CancelRoute::Unix(PathBuf::from("/tmp/.s.PGSQL.5432"))
        );
        assert_eq!(
            CancelRoute::from_config(&config("host=a,b")),
            CancelRoute::Driver
        );
    }
}
