//! Looking at tarn from PostgreSQL's side.

use tokio_postgres::{Client, NoTls};

/// The machine's PostgreSQL (trust auth).
pub const MACHINE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connects an observer client to `url`.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Server connections with this `application_name`.
pub async fn connections(client: &Client, application_name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .await
        .expect("count connections")
        .get(0)
}

/// Server connections with this `application_name` that sit idle inside a transaction.
pub async fn idle_in_transaction(client: &Client, application_name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND state LIKE 'idle in transaction%'",
            &[&application_name],
        )
        .await
        .expect("count idle in transaction")
        .get(0)
}

/// Server connections with this `application_name` running a statement.
pub async fn active(client: &Client, application_name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
            &[&application_name],
        )
        .await
        .expect("count active")
        .get(0)
}

/// Backend process ids of the connections with this `application_name`.
pub async fn pids(client: &Client, application_name: &str) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&application_name],
        )
        .await
        .expect("list backends")
        .iter()
        .map(|r| r.get(0))
        .collect()
}
