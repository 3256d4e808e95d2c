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

use futures::future::{BoxFuture, join};
use futures::{FutureExt, TryStreamExt};
use tarn_pool::{Dirt, Plan, PoolError, PooledConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};
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
///
/// `begin` costs no round trip: its `BEGIN` waits here and goes out with
/// the transaction's first statement, in the same round trip.
pub struct TransactionHandle {
    lease: Lease,
    /// The `BEGIN` not sent yet (no statement has run).
    begin: Option<String>,
    /// Set when a statement failed: PostgreSQL aborted the transaction.
    failed: bool,
}

impl Drop for TransactionHandle {
    fn drop(&mut self) {
        if self.begin.is_some() {
            // Nothing reached the server: there is no transaction to roll back.
            self.lease.conn.clear(Dirt::TRANSACTION);
        }
    }
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

/// Why a statement failed before its error was mapped.
enum Failure {
    /// The driver's error for the statement.
    Statement(tokio_postgres::Error),
    /// The deferred `BEGIN` sent with the statement failed.
    Begin(tokio_postgres::Error),
    /// The host's own refusal (limits, unconvertible columns).
    Host(Error),
}

/// Where a guest statement runs.
enum Scope<'a> {
    /// On its own (autocommit).
    Alone,
    /// In a transaction, after its deferred `BEGIN` while that is unsent.
    Transaction(&'a mut Option<String>),
}

/// Checks a guest statement, converts its parameters, marks `conn` for what
/// the statement may leave behind, and runs it with `attempt` (given the
/// client, the SQL, the statement prepared for it if any, and the converted
/// parameters), after the transaction's deferred `BEGIN` if any.
///
/// A prepared statement PostgreSQL calls stale (its table changed shape, or
/// it was deallocated) is forgotten. If the statement ran alone or first in
/// its transaction, it failed before anything else happened there, so it is
/// tried once more, unprepared (after `ROLLBACK` of the aborted transaction
/// and a new `BEGIN`); later in a transaction the guest gets the error.
async fn run<T>(
    conn: &mut PooledConnection,
    scope: Scope<'_>,
    sql: &str,
    params: Vec<Value>,
    attempt: impl for<'c> Fn(
        &'c Client,
        &'c str,
        Option<Statement>,
        &'c [Param],
    ) -> BoxFuture<'c, Result<T, Failure>>,
) -> Result<T, Error> {
    let effect = classify(sql).map_err(not_allowed)?;
    let params = convert(params)?;
    mark(conn, effect);
    let types: Vec<Type> = params.iter().map(Param::pg_type).collect();
    let (alone, begin) = match scope {
        Scope::Alone => (true, None),
        Scope::Transaction(begin) => (false, begin.take()),
    };
    let once = |begin: Option<String>| {
        let conn: &PooledConnection = conn;
        let statement = async {
            let prepared = prepared(conn, effect, sql, &types)
                .await
                .map_err(Failure::Statement)?;
            attempt(conn, sql, prepared, &params).await
        };
        after_begin(conn, begin, statement)
    };
    let mut outcome = once(begin.clone()).await;
    if effect == Effect::Planned && is_stale(&outcome) {
        conn.forget(sql, &types);
        if alone || begin.is_some() {
            let again = begin.map(|begin| format!("ROLLBACK; {begin}"));
            outcome = once(again).await;
        }
    }
    settle(conn, outcome)
}

/// The statement to run `sql` with on `conn`: one it prepared earlier, one
/// prepared now (a query it has run before), or none (run it unnamed).
async fn prepared(
    conn: &PooledConnection,
    effect: Effect,
    sql: &str,
    types: &[Type],
) -> Result<Option<Statement>, tokio_postgres::Error> {
    if effect != Effect::Planned {
        return Ok(None);
    }
    let statement = match conn.plan(sql, types) {
        Plan::Prepared(statement) => statement,
        Plan::Unnamed => return Ok(None),
        Plan::Prepare => {
            let statement = conn.prepare_typed(sql, types).await?;
            conn.remember(sql, types, statement.clone());
            statement
        }
    };
    // PostgreSQL counts more parameters than the guest sent: run it unnamed,
    // so that the guest gets PostgreSQL's own error.
    Ok((statement.params().len() == types.len()).then_some(statement))
}

/// Whether a statement failed because the prepared statement it ran is no
/// longer valid on the server.
fn is_stale<T>(outcome: &Result<T, Failure>) -> bool {
    let Err(Failure::Statement(e)) = outcome else {
        return false;
    };
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
            || (*db.code() == SqlState::FEATURE_NOT_SUPPORTED
                && db
                    .message()
                    .starts_with("cached plan must not change result type"))
    })
}

/// A statement's outcome as the guest sees it, with the connection that ran
/// it told whether the statement finished.
fn settle<T>(conn: &mut PooledConnection, outcome: Result<T, Failure>) -> Result<T, Error> {
    match outcome {
        Ok(value) => {
            conn.clear(Dirt::IN_FLIGHT);
            Ok(value)
        }
        Err(Failure::Statement(e)) => {
            conn.clear(Dirt::IN_FLIGHT);
            Err(pg_error(conn, e))
        }
        Err(Failure::Begin(e)) => {
            // The statement behind it may have run outside the transaction:
            // this connection is not trusted again.
            conn.mark_broken();
            Err(pg_error(conn, e))
        }
        // A result cut short: the statement may still be running, so the
        // connection stays IN_FLIGHT (cancelled and reset on return).
        Err(Failure::Host(e)) => Err(e),
    }
}

/// Runs `statement` on `client`, preceded in the same round trip by a
/// transaction's deferred `BEGIN` when there is one: the `BEGIN` future is
/// polled first, so tokio-postgres queues it first and pipelines both.
async fn after_begin<T>(
    client: &Client,
    begin: Option<String>,
    statement: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match begin {
        None => statement.await,
        Some(begin) => {
            let (begun, result) = join(client.batch_execute(&begin), statement).await;
            begun.map_err(Failure::Begin)?;
            result
        }
    }
}

/// Runs a row-returning statement on `conn`.
async fn query(
    conn: &mut PooledConnection,
    scope: Scope<'_>,
    sql: &str,
    params: Vec<Value>,
    limits: ResultLimits,
) -> Result<RowSet, Error> {
    run(conn, scope, sql, params, |client, sql, prepared, params| {
        Box::pin(fetch(client, sql, prepared, params, limits))
    })
    .await
}

/// Runs a statement on `conn` and returns the rows it affected.
async fn execute(
    conn: &mut PooledConnection,
    scope: Scope<'_>,
    sql: &str,
    params: Vec<Value>,
) -> Result<u64, Error> {
    run(conn, scope, sql, params, |client, sql, prepared, params| {
        Box::pin(async move {
            let affected = match prepared {
                Some(statement) => client.execute_raw(&statement, params).await,
                None => {
                    let typed: Vec<(&(dyn ToSql + Sync), _)> = params
                        .iter()
                        .map(|p| (p as &(dyn ToSql + Sync), p.pg_type()))
                        .collect();
                    client.execute_typed(sql, &typed).await
                }
            };
            affected.map_err(Failure::Statement)
        })
    })
    .await
}

/// Runs a row-returning statement (`prepared` for it, or `sql` unnamed) and
/// collects its rows within `limits`.
async fn fetch(
    client: &Client,
    sql: &str,
    prepared: Option<Statement>,
    params: &[Param],
    limits: ResultLimits,
) -> Result<RowSet, Failure> {
    let stream = match &prepared {
        Some(statement) => client.query_raw(statement, params).await,
        None => {
            let typed = params.iter().map(|p| (p, p.pg_type()));
            client.query_typed_raw(sql, typed).await
        }
    };
    let stream = stream.map_err(Failure::Statement)?;
    let mut stream = pin!(stream);
    let mut cols = None;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await.map_err(Failure::Statement)? {
        let cols = match &cols {
            Some(c) => c,
            None => {
                let described = columns(row.columns());
                check_columns(&described).map_err(|e| Failure::Host(Error::ValueConversion(e)))?;
                cols.insert(described)
            }
        };
        if rows.len() >= limits.max_rows {
            return Err(Failure::Host(Error::TooLarge(format!(
                "the result has more than {} rows (the host's limit); add a LIMIT",
                limits.max_rows
            ))));
        }
        let (values, size) =
            decode_row(&row, cols).map_err(|e| Failure::Host(Error::ValueConversion(e)))?;
        bytes += size;
        if bytes > limits.max_bytes {
            return Err(Failure::Host(Error::TooLarge(format!(
                "the result is larger than {} bytes (the host's limit); select fewer rows or columns",
                limits.max_bytes
            ))));
        }
        rows.push(values);
    }
    let columns = match cols {
        Some(c) => c,
        None => match prepared {
            Some(statement) => columns(statement.columns()),
            // No rows: ask PostgreSQL for the columns (one extra round trip,
            // only for empty results of unprepared statements).
            None => {
                let types: Vec<_> = params.iter().map(Param::pg_type).collect();
                let stmt = client
                    .prepare_typed(sql, &types)
                    .await
                    .map_err(Failure::Statement)?;
                columns(stmt.columns())
            }
        },
    };
    Ok(RowSet { columns, rows })
}

fn mark(conn: &mut PooledConnection, effect: Effect) {
    conn.mark(match effect {
        Effect::Planned | Effect::Clean => Dirt::IN_FLIGHT,
        Effect::Session => Dirt::IN_FLIGHT | Dirt::SESSION,
    });
}

/// Sends `ROLLBACK` without waiting for its answer and gives the connection
/// back: tokio-postgres queues requests in order, so whoever uses the
/// connection next is served after the `ROLLBACK`. Its answer only matters
/// when the connection is lost, and then the next user sees that.
fn send_rollback(conn: &mut PooledConnection) -> Result<(), Error> {
    // The first poll queues the statement; the rest of the future (waiting
    // for the answer) is dropped.
    match conn.batch_execute("ROLLBACK").now_or_never() {
        Some(Err(e)) => Err(pg_error(conn, e)),
        Some(Ok(())) | None => {
            conn.clear(Dirt::TRANSACTION);
            Ok(())
        }
    }
}

/// Commits, waiting for the server's answer (the guest must know whether
/// its writes are durable).
async fn send_commit(conn: &mut PooledConnection, deadline: Instant) -> Result<(), Error> {
    conn.mark(Dirt::IN_FLIGHT);
    match tokio::time::timeout_at(deadline, conn.batch_execute("COMMIT")).await {
        Ok(Ok(())) => {
            conn.clear(Dirt::IN_FLIGHT | Dirt::TRANSACTION);
            Ok(())
        }
        Ok(Err(e)) => Err(pg_error(conn, e)),
        Err(_) => Err(deadline_error()),
    }
}

/// The `BEGIN` (and `SET LOCAL`) for `options`.
fn begin_sql(options: &TransactionOptions) -> Result<String, Error> {
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
        if ms > i32::MAX as u32 {
            return Err(Error::BadParameter(format!(
                "statement-timeout-ms {ms} is out of range (at most {})",
                i32::MAX
            )));
        }
        sql.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
    }
    Ok(sql)
}

impl DbView<'_> {
    fn database(&self, handle: &Resource<DatabaseHandle>) -> wasmtime::Result<Arc<Database>> {
        Ok(self.table.get(handle)?.db.clone())
    }

    /// Runs a statement of an open transaction (after its deferred `BEGIN`,
    /// if still unsent); a failure aborts it.
    async fn in_transaction<T>(
        &mut self,
        tx: &Resource<TransactionHandle>,
        op: impl for<'c> FnOnce(
            &'c mut PooledConnection,
            &'c mut Option<String>,
        ) -> BoxFuture<'c, Result<T, Error>>,
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
        let result =
            tokio::time::timeout_at(deadline, op(&mut handle.lease.conn, &mut handle.begin))
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
        if handle.begin.is_some() {
            // No statement ran, so nothing was sent: nothing to end.
            return Ok(Ok(()));
        }
        let conn = &mut handle.lease.conn;
        let ended = if commit {
            send_commit(conn, deadline).await
        } else {
            send_rollback(conn)
        };
        if ended.is_ok() {
            let _ = tokio::time::timeout_at(deadline, handle.lease.reset_session()).await;
        }
        Ok(ended)
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
                let rows = query(&mut lease.conn, Scope::Alone, &sql, params, limits).await;
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
                let affected = execute(&mut lease.conn, Scope::Alone, &sql, params).await;
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
        let sql = match begin_sql(&options) {
            Ok(sql) => sql,
            Err(e) => return Ok(Err(e)),
        };
        let ctx = &*self.ctx;
        let begun = ctx
            .bounded(async {
                let mut lease = ctx.lease(&db).await?;
                lease.conn.mark(Dirt::TRANSACTION);
                Ok(lease)
            })
            .await;
        Ok(match begun {
            Ok(lease) => Ok(self.table.push(TransactionHandle {
                lease,
                begin: Some(sql),
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
        self.in_transaction(&tx, move |conn, begin| {
            Box::pin(
                async move { query(conn, Scope::Transaction(begin), &sql, params, limits).await },
            )
        })
        .await
    }

    async fn execute(
        &mut self,
        tx: Resource<TransactionHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        self.in_transaction(&tx, move |conn, begin| {
            Box::pin(async move { execute(conn, Scope::Transaction(begin), &sql, params).await })
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
    fn begin_statements_carry_the_options() {
        let options = |isolation, read_only, statement_timeout_ms| TransactionOptions {
            isolation,
            read_only,
            statement_timeout_ms,
        };
        assert_eq!(
            begin_sql(&options(IsolationLevel::ReadCommitted, true, Some(5000))).unwrap(),
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; SET LOCAL statement_timeout = 5000"
        );
        assert_eq!(
            begin_sql(&options(IsolationLevel::Serializable, false, None)).unwrap(),
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE"
        );
        // PostgreSQL's limit: refused here rather than by a failed SET that
        // would only surface at the first statement.
        assert!(
            begin_sql(&options(
                IsolationLevel::RepeatableRead,
                true,
                Some(i32::MAX as u32)
            ))
            .is_ok()
        );
        assert!(matches!(
            begin_sql(&options(
                IsolationLevel::RepeatableRead,
                true,
                Some(u32::MAX)
            )),
            Err(Error::BadParameter(_))
        ));
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
