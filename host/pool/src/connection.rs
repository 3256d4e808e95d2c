//! [`PooledConnection`], the checkout guard: [`Dirt`] tracking, cheap clean returns, and the
//! reset-on-drop of dirty connections (cancel, `ROLLBACK`, `DISCARD ALL`).

use std::error::Error as _;
use std::fmt;
use std::ops::{BitOr, BitOrAssign, Deref, DerefMut};
use std::sync::{MutexGuard, PoisonError};
use std::time::Instant;

use deadpool::managed::Object;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, Client, NoTls, Statement};
use tracing::{debug, warn};

use crate::manager::{CancelRoute, Conn, Manager};
use crate::statements::{Plan, StatementCache};
use crate::stats::bump;

/// What may be left on a connection by its user; set by upper layers with
/// [`PooledConnection::mark`]. A clean connection is returned with no round trip at all.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Dirt(u8);

impl Dirt {
    /// Nothing to reset.
    pub const CLEAN: Dirt = Dirt(0);
    /// A transaction may be open: `ROLLBACK` on return.
    pub const TRANSACTION: Dirt = Dirt(1);
    /// Session state may have changed (`SET`, temp tables, prepared statements, `LISTEN`,
    /// advisory locks): `DISCARD ALL` on return.
    pub const SESSION: Dirt = Dirt(2);
    /// A statement may still be running on the server (its future was dropped): cancel it,
    /// then `ROLLBACK`, on return.
    pub const IN_FLIGHT: Dirt = Dirt(4);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Dirt) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Dirt) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub const fn is_clean(self) -> bool {
        self.0 == 0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Dirt) -> Dirt {
        Dirt(self.0 | other.0)
    }

    /// The flags of `self` not in `other`.
    pub const fn difference(self, other: Dirt) -> Dirt {
        Dirt(self.0 & !other.0)
    }
}

impl BitOr for Dirt {
    type Output = Dirt;
    fn bitor(self, other: Dirt) -> Dirt {
        self.union(other)
    }
}

impl BitOrAssign for Dirt {
    fn bitor_assign(&mut self, other: Dirt) {
        *self = self.union(other);
    }
}

/// Whether an error means the connection (or the whole server) is gone: the client is closed,
/// an I/O error, a FATAL/PANIC server error (which ends the session: admin or crash shutdown,
/// idle-session and idle-in-transaction timeouts, ...), or SQLSTATE class 08 (connection
/// exception) except 08P01, which PostgreSQL also raises at ERROR level on a live connection
/// (a bind message with the wrong number of parameters).
pub fn is_disconnect(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        return matches!(db.severity(), "FATAL" | "PANIC")
            || (code.starts_with("08") && code != "08P01")
            || matches!(code, "57P01" | "57P02" | "57P03" | "57P05" | "25P03");
    }
    err.source()
        .is_some_and(|source| source.is::<std::io::Error>())
}

/// A connection checked out of a [`Pool`](crate::Pool); derefs to [`tokio_postgres::Client`].
///
/// Dropping it returns the connection: at once if it is clean, after a reset in a background
/// task if it is dirty, or it is closed if it is broken, invalidated, or surplus overflow.
pub struct PooledConnection {
    /// `Some` until drop.
    obj: Option<Object<Manager>>,
    dirt: Dirt,
    broken: bool,
}

impl PooledConnection {
    pub(crate) fn new(obj: Object<Manager>) -> Self {
        Self {
            obj: Some(obj),
            dirt: Dirt::CLEAN,
            broken: false,
        }
    }

    fn conn(&self) -> &Conn {
        match &self.obj {
            Some(obj) => obj,
            // Invariant: `obj` is only taken in `drop`.
            None => unreachable!("PooledConnection used after drop"),
        }
    }

    /// Adds dirt flags: what the return must reset. Session dirt forgets the connection's
    /// prepared statements: the statement that changes the session may deallocate them, and
    /// the reset (`DISCARD ALL`) will.
    pub fn mark(&mut self, dirt: Dirt) {
        if dirt.contains(Dirt::SESSION) && !self.dirt.contains(Dirt::SESSION) {
            self.statements().clear();
        }
        self.dirt |= dirt;
    }

    fn statements(&self) -> MutexGuard<'_, StatementCache> {
        self.conn()
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How to run `sql` with parameters of `types` on this connection: with a statement it
    /// prepared earlier, by preparing it now (a statement seen before), or unnamed. Always
    /// unnamed while the session is dirty (its statements are discarded on return).
    pub fn plan(&self, sql: &str, types: &[Type]) -> Plan {
        if self.dirt.contains(Dirt::SESSION) {
            return Plan::Unnamed;
        }
        let plan = self.statements().plan(sql, types);
        if let Plan::Prepared(_) = plan {
            bump(&self.conn().shared.counters.statement_cache_hits);
        }
        plan
    }

    /// Keeps `statement`, just prepared on this connection for `sql` with `types`, for later
    /// runs (after [`Plan::Prepare`]).
    pub fn remember(&self, sql: &str, types: &[Type], statement: Statement) {
        self.statements().insert(sql, types, statement);
        bump(&self.conn().shared.counters.statements_prepared);
    }

    /// Drops the prepared statement for `sql` with `types`: PostgreSQL refused to run it
    /// (its cached plan no longer fits the schema, or it was deallocated).
    pub fn forget(&self, sql: &str, types: &[Type]) {
        self.statements().remove(sql, types);
    }

    /// Removes dirt flags (e.g. `TRANSACTION` after a successful `COMMIT`).
    pub fn clear(&mut self, dirt: Dirt) {
        self.dirt = self.dirt.difference(dirt);
    }

    /// The current dirt flags.
    pub fn dirt(&self) -> Dirt {
        self.dirt
    }

    /// Looks at an error from this connection: a disconnect-class error (see
    /// [`is_disconnect`]) marks it broken (it is closed, not reused) and invalidates every other
    /// connection of the pool opened before now (they are replaced at their next checkout).
    pub fn observe_error(&mut self, err: &tokio_postgres::Error) {
        if is_disconnect(err) && !self.broken {
            self.broken = true;
            let conn = self.conn();
            warn!(pool = %conn.shared.name, host = %conn.shared.host, conn = conn.id,
                "connection lost ({err}); invalidating every connection opened before now");
            conn.shared.invalidate();
        }
    }

    /// Marks the connection broken without an error (e.g. after a timeout left it in an unknown
    /// state): it is closed instead of returned.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether the connection will be closed instead of returned.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The connection's id within its pool (for logs).
    pub fn id(&self) -> u64 {
        self.conn().id
    }
}

impl Deref for PooledConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.conn().client
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.obj {
            Some(obj) => &mut obj.client,
            // Invariant: `obj` is only taken in `drop`.
            None => unreachable!("PooledConnection used after drop"),
        }
    }
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("id", &self.obj.as_ref().map(|obj| obj.id))
            .field("dirt", &self.dirt)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(obj) = self.obj.take() else { return };
        if self.broken {
            bump(&obj.shared.counters.broken);
            close(obj);
        } else if self.dirt.is_clean() {
            check_in(obj);
        } else if obj.shared.closed.load(std::sync::atomic::Ordering::Relaxed) {
            close(obj);
        } else {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reset(ResetJob(Some(obj)), self.dirt));
                }
                Err(_) => close(obj),
            }
        }
    }
}

/// Closes a connection for good: deadpool forgets it, dropping it sends Terminate.
fn close(obj: Object<Manager>) {
    drop(Object::take(obj));
}

/// Returns a clean connection: into deadpool's idle queue, or closed if it is dead, invalidated,
/// or surplus (SQLAlchemy: `pool_size` already idle and nobody waiting).
fn check_in(mut obj: Object<Manager>) {
    let conn: &mut Conn = &mut obj;
    let shared = &conn.shared;
    if conn.client.is_closed() {
        bump(&shared.counters.broken);
        return close(obj);
    }
    if shared.is_suspect(conn) {
        bump(&shared.counters.invalidated);
        return close(obj);
    }
    conn.last_returned = Instant::now();
    let before = conn.check_in();
    let shared = &conn.shared;
    let surplus = shared.config.overflow_idle_timeout.is_zero()
        && before.idle >= shared.config.pool_size
        && shared.waiting.load(std::sync::atomic::Ordering::Relaxed) == 0;
    if surplus {
        bump(&shared.counters.overflow_closed);
        close(obj);
    }
    // Otherwise dropping the object hands it back to deadpool (and to the first waiter).
}

/// Owns a dirty connection during its reset; closes it if the reset does not finish (failure,
/// timeout, or the task being dropped at runtime shutdown), so a dirty connection can never be
/// returned to the pool.
struct ResetJob(Option<Object<Manager>>);

impl Drop for ResetJob {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            bump(&obj.shared.counters.reset_failures);
            close(obj);
        }
    }
}

/// Resets a dirty connection in the background, bounded by `reset_timeout`, then returns it.
async fn reset(mut job: ResetJob, dirt: Dirt) {
    let Some(obj) = job.0.as_ref() else { return };
    let (shared, conn) = (&obj.shared, &**obj);
    let timeout = shared.config.reset_timeout;
    match tokio::time::timeout(timeout, run_reset(conn, dirt)).await {
        Ok(Ok(reusable)) => {
            if reusable {
                bump(&shared.counters.resets);
                debug!(pool = %shared.name, conn = conn.id, "reset {dirt:?}");
                if let Some(obj) = job.0.take() {
                    check_in(obj);
                }
            }
            // Not reusable: cancelled through another host; `job` closes it.
        }
        Ok(Err(err)) => {
            warn!(pool = %shared.name, conn = conn.id, "closing a connection whose reset ({dirt:?}) failed: {err}");
        }
        Err(_) => {
            warn!(pool = %shared.name, conn = conn.id, "closing a connection whose reset ({dirt:?}) took longer than {timeout:?}");
        }
    }
}

/// Cancels, rolls back and discards as `dirt` requires. Returns whether the connection may be
/// reused.
async fn run_reset(conn: &Conn, dirt: Dirt) -> Result<bool, ResetError> {
    if dirt.contains(Dirt::IN_FLIGHT) {
        let token = conn.client.cancel_token();
        match &conn.shared.cancel_route {
            CancelRoute::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                cancel_and_wait(&token, stream).await?;
            }
            #[cfg(unix)]
            CancelRoute::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                cancel_and_wait(&token, stream).await?;
            }
            #[cfg(not(unix))]
            CancelRoute::Unix(_) => return Ok(false),
            CancelRoute::Driver => {
                // We cannot wait for this cancel to be processed, so it could still hit a later
                // statement: never reuse the connection.
                token.cancel_query(NoTls).await?;
                return Ok(false);
            }
        }
    }
    if dirt.intersects(Dirt::TRANSACTION.union(Dirt::IN_FLIGHT)) {
        conn.client.batch_execute("ROLLBACK").await?;
    }
    if dirt.contains(Dirt::SESSION) {
        conn.client.batch_execute("DISCARD ALL").await?;
    }
    Ok(true)
}

/// Sends a CancelRequest on `stream` and waits until the server closes it: by then the server
/// has signalled the backend, so the cancel cannot hit a statement sent afterwards (tokio-postgres'
/// `cancel_query` returns as soon as the request is written).
async fn cancel_and_wait<S>(token: &CancelToken, mut stream: S) -> Result<(), ResetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    token.cancel_query_raw(&mut stream, NoTls).await?;
    let mut sink = [0u8; 64];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Why a reset failed.
#[derive(Debug, thiserror::Error)]
enum ResetError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("cancel request: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirt_flags_combine() {
        let d = Dirt::TRANSACTION | Dirt::SESSION;
        assert!(d.contains(Dirt::TRANSACTION) && d.contains(Dirt::SESSION));
        assert!(!d.contains(Dirt::IN_FLIGHT));
        assert!(!d.contains(Dirt::TRANSACTION | Dirt::IN_FLIGHT));
        assert!(d.intersects(Dirt::TRANSACTION | Dirt::IN_FLIGHT));
        assert!(!d.is_clean());
        assert!(Dirt::default().is_clean());
        assert_eq!(Dirt::default(), Dirt::CLEAN);
        let mut e = Dirt::CLEAN;
        e |= Dirt::IN_FLIGHT;
        assert_eq!(e, Dirt::IN_FLIGHT);
        assert_eq!(d.difference(Dirt::TRANSACTION), Dirt::SESSION);
        assert!(d.difference(d).is_clean());
    }
}
