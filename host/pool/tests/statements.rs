//! The per-connection statement cache against the machine's PostgreSQL: what it prepares, when
//! it forgets, and that the server's prepared statements follow it.

mod common;

use std::time::Duration;

use common::{app, config, pool};
use tarn_pool::{Dirt, MAX_CACHED_SQL_BYTES, Plan, Pool, PoolConfig, PooledConnection};
use tokio_postgres::types::Type;

/// Named statements the connection's session holds on the server (counted with an unnamed one).
async fn server_statements(conn: &PooledConnection) -> i64 {
    conn.query_typed("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .expect("count prepared statements")[0]
        .get(0)
}

/// Runs `sql` as the cache plans it, preparing and remembering it when told to; returns the
/// plan's kind.
async fn run(conn: &PooledConnection, sql: &str) -> &'static str {
    let types = [Type::INT4];
    let (kind, statement) = match conn.plan(sql, &types) {
        Plan::Prepared(statement) => ("prepared", Some(statement)),
        Plan::Unnamed => ("unnamed", None),
        Plan::Prepare => {
            let statement = conn.prepare_typed(sql, &types).await.expect("prepare");
            conn.remember(sql, &types, statement.clone());
            ("prepare", Some(statement))
        }
    };
    let row = match statement {
        Some(statement) => conn.query_one(&statement, &[&7i32]).await,
        None => conn
            .query_typed(sql, &[(&7i32, Type::INT4)])
            .await
            .map(|mut rows| rows.remove(0)),
    }
    .expect("query");
    assert_eq!(row.get::<_, i32>(0), 7);
    kind
}

/// A one-connection pool for `test` whose connections keep `size` statements.
async fn cached_pool(test: &str, size: usize) -> Pool {
    let config = PoolConfig {
        statement_cache_size: size,
        ..config(1, 0)
    };
    pool(test, &app(test), config).await
}

#[tokio::test]
async fn a_statement_is_prepared_when_it_runs_again() {
    let pool = cached_pool("stmt_again", 10).await;
    let conn = pool.get().await.expect("checkout");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "unnamed");
    assert_eq!(server_statements(&conn).await, 0);
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepare");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepared");
    assert_eq!(server_statements(&conn).await, 1);
    drop(conn);
    // The statement stays with the connection across checkouts.
    let conn = pool.get().await.expect("checkout");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepared");
    let metrics = pool.metrics();
    assert_eq!(
        (metrics.statements_prepared, metrics.statement_cache_hits),
        (1, 2)
    );
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_least_recently_used_statement_is_closed_on_the_server() {
    let pool = cached_pool("stmt_lru", 2).await;
    let conn = pool.get().await.expect("checkout");
    let sqls = [
        "SELECT $1::int4 AS a",
        "SELECT $1::int4 AS b",
        "SELECT $1::int4 AS c",
    ];
    for sql in &sqls[..2] {
        run(&conn, sql).await;
        run(&conn, sql).await;
    }
    // `a` is used again, so `b` is the one evicted for `c`.
    assert_eq!(run(&conn, sqls[0]).await, "prepared");
    run(&conn, sqls[2]).await;
    assert_eq!(run(&conn, sqls[2]).await, "prepare");
    assert_eq!(server_statements(&conn).await, 2);
    assert_eq!(run(&conn, sqls[0]).await, "prepared");
    assert_eq!(run(&conn, sqls[1]).await, "unnamed");
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn session_dirt_forgets_the_statements_and_the_reset_deallocates_them() {
    let pool = cached_pool("stmt_session", 10).await;
    let mut conn = pool.get().await.expect("checkout");
    run(&conn, "SELECT $1::int4").await;
    run(&conn, "SELECT $1::int4").await;
    conn.mark(Dirt::SESSION);
    // While the session is dirty nothing is prepared.
    assert_eq!(run(&conn, "SELECT $1::int4").await, "unnamed");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "unnamed");
    drop(conn);
    let conn = pool.get().await.expect("checkout");
    assert_eq!(server_statements(&conn).await, 0, "DISCARD ALL ran");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "unnamed");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepare");
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_statement_prepared_in_a_rolled_back_transaction_survives() {
    let pool = cached_pool("stmt_rollback", 10).await;
    let conn = pool.get().await.expect("checkout");
    run(&conn, "SELECT $1::int4").await;
    conn.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepare");
    conn.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(run(&conn, "SELECT $1::int4").await, "prepared");
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_zero_size_cache_prepares_nothing() {
    let pool = cached_pool("stmt_off", 0).await;
    let conn = pool.get().await.expect("checkout");
    for _ in 0..3 {
        assert_eq!(run(&conn, "SELECT $1::int4").await, "unnamed");
    }
    assert_eq!(server_statements(&conn).await, 0);
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn statements_too_long_to_keep_stay_unnamed() {
    let pool = cached_pool("stmt_long", 10).await;
    let conn = pool.get().await.expect("checkout");
    let padding = "-".repeat(MAX_CACHED_SQL_BYTES);
    let long = format!("SELECT $1::int4 /* {padding} */");
    for _ in 0..3 {
        assert_eq!(run(&conn, &long).await, "unnamed");
    }
    assert_eq!(server_statements(&conn).await, 0);
    drop(conn);
    pool.close(Duration::from_secs(1)).await;
}
