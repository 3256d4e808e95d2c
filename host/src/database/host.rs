//! The host side of the WIT `database` interface.
//!
//! A `database` handle is a name plus permission; each `query`/`execute` on
//! it leases a pooled connection for that one statement. A `transaction`
//! holds its lease until commit, rollback or drop. Leases give connections
//! back through `Drop`, so whatever the guest does (trap, timeout, leaked
//! handle), the connection returns and the pool cleans it if it is dirty.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use tarn_pool::{Dirt, PoolError, PooledConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::tarn::postgres::database::{
    Health, Host, HostDatabase, HostTransaction, IsolationLevel, PoolConfig, PoolStats,
    TransactionOptions,
};
use crate::bindings::tarn::postgres::types::{self, DbError, Error, RowSet, Value};
use crate::config::SessionReset;
use crate::database::registry::{Database, Databases};
use crate::database::statement::{Effect, classify};
use crate::database::value::{Param, check_columns, columns, decode_row};

/// The databases one component may open, shared by all its requests.
pub struct Grants {
    names: Vec<String>,
    quota: Option<Arc<Semaphore>>,
}

impl Grants {
    /// Grants `names`; `max_connections` caps the connections this component
    /// may hold at once across all its requests (per-component quota).
    pub fn new(names: Vec<String>, max_connections: Option<usize>) -> Grants {
        Grants {
            names,
            quota: max_connections.map(|n| Arc::new(Semaphore::new(n))),
        }
    }

    fn allows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// Limits on what one query may return.
#[derive(Debug, Clone, Copy)]
pub struct ResultLimits {
    /// Rows.
    pub max_rows: usize,
    /// Approximate bytes of decoded values.
    pub max_bytes: usize,
}

/// Per-request database state of one guest instance.
pub struct DbContext {
    databases: Databases,
    grants: Arc<Grants>,
    deadline: Instant,
    limits: ResultLimits,
    component: Arc<str>,
}

impl DbContext {
    /// Database access for one request of `component`, ending at `deadline`.
    pub fn new(
        databases: Databases,
        grants: Arc<Grants>,
        deadline: Instant,
        limits: ResultLimits,
        component: Arc<str>,
    ) -> DbContext {
        DbContext {
            databases,
            grants,
            deadline,
            limits,
            component,
        }
    }
}

/// What the `database` host functions operate on: the request's context and
/// the instance's resource table.
pub struct DbView<'a> {
    /// The request's database context.
    pub ctx: &'a mut DbContext,
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
}

/// [`HasData`] marker for linking the `database` interface through [`DbView`].
pub struct HasDb;

impl HasData for HasDb {
    type Data<'a> = DbView<'a>;
}

/// The host value behind a guest's `database` handle.
pub struct DatabaseHandle {
    db: Arc<Database>,
}

/// A pooled connection lent to a guest, with its quota permit.
struct Lease {
    conn: PooledConnection,
    _quota: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// Resets a connection whose only dirt is session state (`DISCARD ALL`)
    /// before the guest's call returns, so that it goes back to the pool
    /// clean at once: a reset left to the pool keeps it checked out for a
    /// round trip after the call, and checkouts meanwhile open new
    /// connections (or fail, when none can be opened). If this reset fails
    /// or is cut short, the pool's own reset (or close) still happens.
    async fn reset_session(&mut self) {
        if self.conn.dirt() != Dirt::SESSION || self.conn.is_broken() {
            return;
        }
        self.conn.mark(Dirt::IN_FLIGHT);
        if self.conn.batch_execute("DISCARD ALL").await.is_ok() {
            self.conn.clear(Dirt::IN_FLIGHT | Dirt::SESSION);
        }
    }
}

/// The host value behind a guest's `transaction` handle. Dropping it rolls
/// the transaction back (the connection is marked dirty until commit).
pub struct TransactionHandle {
    lease: Lease,
    /// Set when a statement failed: PostgreSQL aborted the transaction.
    failed: bool,
}

fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Timeout {
            pool_size,
            max_overflow,
            checked_out,
            waiting,
            waited,
        } => Error::PoolTimeout(types::PoolTimeout {
            pool_size: pool_size as u32,
            max_overflow: max_overflow as u32,
            checked_out: checked_out as u32,
            waiting: waiting as u32,
            waited_ms: waited.as_millis() as u64,
        }),
        PoolError::QueueFull {
            pool_size,
            max_overflow,
            checked_out,
            waiting,
        } => Error::PoolTimeout(types::PoolTimeout {
            pool_size: pool_size as u32,
            max_overflow: max_overflow as u32,
            checked_out: checked_out as u32,
            waiting: waiting as u32,
            waited_ms: 0,
        }),
        other => Error::ConnectionFailed(with_sources(&other)),
    }
}

/// An error's message followed by those of its sources, so that the
/// driver's bare "db error" carries the server's words (e.g. "FATAL: sorry,
/// too many clients already").
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Maps a driver error, telling the connection when it is a disconnect.
fn pg_error(conn: &mut PooledConnection, e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        // 08P01: the bind message's parameter count did not match; the
        // connection itself is fine.
        if db.code().code() == "08P01" {
            return Error::BadParameter(db.message().to_string());
        }
    }
    conn.observe_error(&e);
    if tarn_pool::is_disconnect(&e) {
        // The server ended the session (shutdown, pg_terminate_backend, a
        // crash) or the network did: not the statement's fault.
        return Error::ConnectionFailed(format!("connection lost: {}", with_sources(&e)));
    }
    match e.as_db_error() {
        Some(db) => Error::QueryFailed(DbError {
            code: db.code().code().to_string(),
            severity: db.severity().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
        }),
        None => {
            let text = with_sources(&e);
            if text.contains("serializing parameter") {
                Error::BadParameter(text)
            } else if text.contains("deserializing column") {
                Error::ValueConversion(text)
            } else {
                Error::ConnectionFailed(text)
            }
        }
    }
}

fn deadline_error() -> Error {
    Error::Timeout("the request's deadline passed while waiting on the database".into())
}

fn convert(params: Vec<Value>) -> Result<Vec<Param>, Error> {
    params
        .into_iter()
        .enumerate()
        .map(|(i, v)| Param::from_value(i, v))
        .collect::<Result<_, _>>()
        .map_err(Error::BadParameter)
}

fn not_allowed(e: impl ToString) -> Error {
    Error::NotAllowed(e.to_string())
}

impl DbContext {
    /// Runs `op` unless the request's deadline passes first.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        tokio::time::timeout_at(self.deadline, op)
            .await
            .unwrap_or_else(|_| Err(deadline_error()))
    }

    /// Leases a connection of `db`, within quota, pool timeout and deadline.
    async fn lease(&self, db: &Database) -> Result<Lease, Error> {
        let quota = match &self.grants.quota {
            Some(sem) => {
                let wait_until = self
                    .deadline
                    .min(Instant::now() + db.pool.config().pool_timeout);
                match tokio::time::timeout_at(wait_until, sem.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    Ok(Err(_)) => return Err(Error::ConnectionFailed("quota closed".into())),
                    Err(_) if wait_until == self.deadline => return Err(deadline_error()),
                    Err(_) => {
                        let stats = db.pool.stats();
                        let config = db.pool.config();
                        return Err(Error::PoolTimeout(types::PoolTimeout {
                            pool_size: config.pool_size as u32,
                            max_overflow: config.max_overflow as u32,
                            checked_out: stats.checked_out as u32,
                            waiting: stats.waiting as u32,
                            waited_ms: config.pool_timeout.as_millis() as u64,
                        }));
                    }
                }
            }
            None => None,
        };
        let mut conn = self
            .bounded(async { db.pool.get().await.map_err(pool_error) })
            .await?;
        if db.session_reset == SessionReset::Always {
            // Whatever the guest runs, the connection is reset (DISCARD ALL)
            // before it is lent again: session state changed inside a
            // function escapes the statement classifier.
            conn.mark(Dirt::SESSION);
        }
        Ok(Lease {
            conn,
            _quota: quota,
        })
    }
}

/// Runs a row-returning statement on `conn`.
async fn query(
    conn: &mut PooledConnection,
    sql: &str,
    params: Vec<Value>,
    limits: ResultLimits,
) -> Result<RowSet, Error> {
    let effect = classify(sql).map_err(not_allowed)?;
    let params = convert(params)?;
    mark(conn, effect);
    let rows = fetch(conn, sql, &params, limits).await;
    if rows.is_ok() {
        conn.clear(Dirt::IN_FLIGHT);
    }
    rows
}

/// Runs a statement on `conn` and returns the rows it affected.
async fn execute(conn: &mut PooledConnection, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
    let effect = classify(sql).map_err(not_allowed)?;
    let params = convert(params)?;
    mark(conn, effect);
    let typed: Vec<(&(dyn ToSql + Sync), _)> = params
        .iter()
        .map(|p| (p as &(dyn ToSql + Sync), p.pg_type()))
        .collect();
    let affected = conn.execute_typed(sql, &typed).await;
    match affected {
        Ok(n) => {
            conn.clear(Dirt::IN_FLIGHT);
            Ok(n)
        }
        Err(e) => {
            conn.clear(Dirt::IN_FLIGHT);
            Err(pg_error(conn, e))
        }
    }
}

fn mark(conn: &mut PooledConnection, effect: Effect) {
    conn.mark(match effect {
        Effect::Clean => Dirt::IN_FLIGHT,
        Effect::Session => Dirt::IN_FLIGHT | Dirt::SESSION,
    });
}

async fn fetch(
    conn: &mut PooledConnection,
    sql: &str,
    params: &[Param],
    limits: ResultLimits,
) -> Result<RowSet, Error> {
    let typed = params.iter().map(|p| (p, p.pg_type()));
    let stream = match conn.query_typed_raw(sql, typed).await {
        Ok(stream) => stream,
        Err(e) => {
            conn.clear(Dirt::IN_FLIGHT);
            return Err(pg_error(conn, e));
        }
    };
    let mut stream = pin!(stream);
    let mut cols = None;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    loop {
        let row = match stream.try_next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                conn.clear(Dirt::IN_FLIGHT);
                return Err(pg_error(conn, e));
            }
        };
        let cols = match &cols {
            Some(c) => c,
            None => {
                let described = columns(row.columns());
                check_columns(&described).map_err(Error::ValueConversion)?;
                cols.insert(described)
            }
        };
        if rows.len() >= limits.max_rows {
            return Err(Error::TooLarge(format!(
                "the result has more than {} rows (the host's limit); add a LIMIT",
                limits.max_rows
            )));
        }
        let (values, size) = decode_row(&row, cols).map_err(Error::ValueConversion)?;
        bytes += size;
        if bytes > limits.max_bytes {
            return Err(Error::TooLarge(format!(
                "the result is larger than {} bytes (the host's limit); select fewer rows or columns",
                limits.max_bytes
            )));
        }
        rows.push(values);
    }
    let columns = match cols {
        Some(c) => c,
        // No rows: ask PostgreSQL for the columns (one extra round trip, only
        // for empty results).
        None => {
            let types: Vec<_> = params.iter().map(Param::pg_type).collect();
            match conn.prepare_typed(sql, &types).await {
                Ok(stmt) => columns(stmt.columns()),
                Err(e) => return Err(pg_error(conn, e)),
            }
        }
    };
    Ok(RowSet { columns, rows })
}

fn begin_sql(options: &TransactionOptions) -> String {
    let isolation = match options.isolation {
        IsolationLevel::ReadCommitted => "READ COMMITTED",
        IsolationLevel::RepeatableRead => "REPEATABLE READ",
        IsolationLevel::Serializable => "SERIALIZABLE",
    };
    let access = if options.read_only {
        "READ ONLY"
    } else {
        "READ WRITE"
    };
    let mut sql = format!("BEGIN ISOLATION LEVEL {isolation} {access}");
    if let Some(ms) = options.statement_timeout_ms {
        sql.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
    }
    sql
}

impl DbView<'_> {
    fn database(&self, handle: &Resource<DatabaseHandle>) -> wasmtime::Result<Arc<Database>> {
        Ok(self.table.get(handle)?.db.clone())
    }

    /// Runs a statement of an open transaction; a failure aborts it.
    async fn in_transaction<T>(
        &mut self,
        tx: &Resource<TransactionHandle>,
        op: impl for<'c> FnOnce(&'c mut PooledConnection) -> BoxFuture<'c, Result<T, Error>>,
    ) -> wasmtime::Result<Result<T, Error>> {
        let deadline = self.ctx.deadline;
        let handle = self.table.get_mut(tx)?;
        if handle.failed {
            return Ok(Err(Error::QueryFailed(DbError {
                code: "25P02".into(),
                severity: "ERROR".into(),
                message: "current transaction is aborted, commands ignored until end of transaction block".into(),
                detail: None,
                hint: Some("roll the transaction back".into()),
            })));
        }
        let result = tokio::time::timeout_at(deadline, op(&mut handle.lease.conn))
            .await
            .unwrap_or_else(|_| Err(deadline_error()));
        if result.is_err() {
            handle.failed = true;
        }
        Ok(result)
    }

    async fn end_transaction(
        &mut self,
        tx: Resource<TransactionHandle>,
        commit: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        let deadline = self.ctx.deadline;
        let mut handle = self.table.delete(tx)?;
        if commit && handle.failed {
            // PostgreSQL answers COMMIT of an aborted transaction with a
            // silent ROLLBACK; say so instead. Drop rolls it back.
            return Ok(Err(Error::QueryFailed(DbError {
                code: "25P02".into(),
                severity: "ERROR".into(),
                message: "the transaction was aborted by an earlier error and has been rolled back"
                    .into(),
                detail: None,
                hint: None,
            })));
        }
        let conn = &mut handle.lease.conn;
        conn.mark(Dirt::IN_FLIGHT);
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let result = tokio::time::timeout_at(deadline, conn.batch_execute(sql)).await;
        Ok(match result {
            Ok(Ok(())) => {
                conn.clear(Dirt::IN_FLIGHT | Dirt::TRANSACTION);
                let _ = tokio::time::timeout_at(deadline, handle.lease.reset_session()).await;
                Ok(())
            }
            Ok(Err(e)) => Err(pg_error(conn, e)),
            Err(_) => Err(deadline_error()),
        })
    }
}

impl Host for DbView<'_> {}

impl types::Host for DbView<'_> {}

impl HostDatabase for DbView<'_> {
    async fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<DatabaseHandle>, Error>> {
        if !self.ctx.grants.allows(&name) {
            tracing::warn!(
                component = %self.ctx.component,
                database = %name,
                "guest opened a database it was not granted"
            );
            return Ok(Err(Error::NotAllowed(format!(
                "this component is not granted the database `{name}` (add it to `databases` in its manifest entry)"
            ))));
        }
        let Some(db) = self.ctx.databases.get(&name).cloned() else {
            return Ok(Err(Error::NotAllowed(format!(
                "no database named `{name}` is configured"
            ))));
        };
        Ok(Ok(self.table.push(DatabaseHandle { db })?))
    }

    async fn query(
        &mut self,
        handle: Resource<DatabaseHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let db = self.database(&handle)?;
        let limits = self.ctx.limits;
        let ctx = &*self.ctx;
        Ok(ctx
            .bounded(async {
                let mut lease = ctx.lease(&db).await?;
                let rows = query(&mut lease.conn, &sql, params, limits).await;
                lease.reset_session().await;
                rows
            })
            .await)
    }

    async fn execute(
        &mut self,
        handle: Resource<DatabaseHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let db = self.database(&handle)?;
        let ctx = &*self.ctx;
        Ok(ctx
            .bounded(async {
                let mut lease = ctx.lease(&db).await?;
                let affected = execute(&mut lease.conn, &sql, params).await;
                lease.reset_session().await;
                affected
            })
            .await)
    }

    async fn begin(
        &mut self,
        handle: Resource<DatabaseHandle>,
        options: TransactionOptions,
    ) -> wasmtime::Result<Result<Resource<TransactionHandle>, Error>> {
        let db = self.database(&handle)?;
        let ctx = &*self.ctx;
        let begun = ctx
            .bounded(async {
                let mut lease = ctx.lease(&db).await?;
                lease.conn.mark(Dirt::TRANSACTION | Dirt::IN_FLIGHT);
                match lease.conn.batch_execute(&begin_sql(&options)).await {
                    Ok(()) => {
                        lease.conn.clear(Dirt::IN_FLIGHT);
                        Ok(lease)
                    }
                    Err(e) => Err(pg_error(&mut lease.conn, e)),
                }
            })
            .await;
        Ok(match begun {
            Ok(lease) => Ok(self.table.push(TransactionHandle {
                lease,
                failed: false,
            })?),
            Err(e) => Err(e),
        })
    }

    async fn health(&mut self, handle: Resource<DatabaseHandle>) -> wasmtime::Result<Health> {
        let db = self.database(&handle)?;
        let checked = self
            .ctx
            .bounded(async { db.pool.health_check().await.map_err(pool_error) })
            .await;
        Ok(match checked {
            Ok(()) => Health {
                healthy: true,
                status: "connected".into(),
                error: None,
            },
            Err(e) => Health {
                healthy: false,
                status: "disconnected".into(),
                error: Some(crate::database::describe(&e)),
            },
        })
    }

    async fn pool_stats(
        &mut self,
        handle: Resource<DatabaseHandle>,
    ) -> wasmtime::Result<PoolStats> {
        let s = self.database(&handle)?.pool.stats();
        Ok(PoolStats {
            size: s.size as u32,
            checked_in: s.checked_in as u32,
            checked_out: s.checked_out as u32,
            overflow: s.overflow as u32,
            total: s.total as u32,
            waiting: s.waiting as u32,
        })
    }

    async fn pool_config(
        &mut self,
        handle: Resource<DatabaseHandle>,
    ) -> wasmtime::Result<PoolConfig> {
        let db = self.database(&handle)?;
        let c = db.pool.config();
        Ok(PoolConfig {
            name: db.name.clone(),
            url: db.redacted_url.clone(),
            pool_size: c.pool_size as u32,
            max_overflow: c.max_overflow as u32,
            pool_timeout_seconds: c.pool_timeout.as_secs_f64(),
            pool_recycle_seconds: c.pool_recycle.map_or(0, |d| d.as_secs()),
            pool_pre_ping: c.pool_pre_ping,
            lazy_init: c.lazy_init,
        })
    }

    async fn drop(&mut self, handle: Resource<DatabaseHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl HostTransaction for DbView<'_> {
    async fn query(
        &mut self,
        tx: Resource<TransactionHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let limits = self.ctx.limits;
        self.in_transaction(&tx, move |conn| {
            Box::pin(async move { query(conn, &sql, params, limits).await })
        })
        .await
    }

    async fn execute(
        &mut self,
        tx: Resource<TransactionHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.in_transaction(&tx, move |conn| {
            Box::pin(async move { execute(conn, &sql, params).await })
        })
        .await
    }

    async fn commit(
        &mut self,
        tx: Resource<TransactionHandle>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.end_transaction(tx, true).await
    }

    async fn rollback(
        &mut self,
        tx: Resource<TransactionHandle>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.end_transaction(tx, false).await
    }

    async fn drop(&mut self, tx: Resource<TransactionHandle>) -> wasmtime::Result<()> {
        self.table.delete(tx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(message: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            message,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn messages_carry_their_sources_once() {
        let server = layer("FATAL: sorry, too many clients already", None);
        let driver = layer("db error", Some(server));
        let pool = layer(
            "cannot connect to PostgreSQL at h:1: db error",
            Some(driver),
        );
        assert_eq!(
            with_sources(&pool),
            "cannot connect to PostgreSQL at h:1: db error: FATAL: sorry, too many clients already"
        );
        assert_eq!(with_sources(&layer("alone", None)), "alone");
    }
}
