//! Helpers for the integration tests: connection settings, an admin client that counts a pool's
//! server-side backends by `application_name`, and polling.

#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::{Duration, Instant};

use tarn_pool::{Pool, PoolConfig};
use tokio_postgres::{Client, NoTls};

/// The machine's server (trust auth); `TARN_TEST_PG` overrides it (without application_name).
pub fn base_url() -> String {
    std::env::var("TARN_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".to_owned())
}

/// A unique application name for one test, so parallel tests and runs don't see each other.
pub fn app(test: &str) -> String {
    let mut name = format!("tp_{test}_{}", std::process::id());
    name.truncate(63);
    name
}

/// Connection settings for a pool whose backends are tagged with `app`.
pub fn pg(app: &str) -> tokio_postgres::Config {
    format!("{} application_name={app}", base_url())
        .parse()
        .expect("valid test connection string")
}

/// Small, fast settings for tests.
pub fn config(pool_size: usize, max_overflow: usize) -> PoolConfig {
    PoolConfig {
        pool_size,
        max_overflow,
        pool_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(5),
        ping_timeout: Duration::from_secs(1),
        reset_timeout: Duration::from_secs(3),
        ..PoolConfig::default()
    }
}

/// A pool called `name` whose connections are tagged `app`.
pub async fn pool(name: &str, app: &str, config: PoolConfig) -> Pool {
    Pool::connect(name, pg(app), config).await.expect("pool")
}

/// A plain (unpooled) client for inspecting the server.
pub async fn admin() -> Client {
    connect(&format!("{} application_name=tp_admin", base_url())).await
}

pub async fn connect(config: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(config, NoTls)
        .await
        .expect("the tests need PostgreSQL at 127.0.0.1:5432 (or TARN_TEST_PG)");
    tokio::spawn(connection);
    client
}

/// Server-side backends tagged with `app`.
pub async fn backends(admin: &Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("count backends")
        .get(0)
}

/// Polls until `app` has exactly `expected` backends (or 10 s pass); returns the last count.
pub async fn wait_backends(admin: &Client, app: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = backends(admin, app).await;
        if count == expected || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 10 ms until it holds (or 10 s pass); returns whether it held.
pub async fn eventually<F: Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The backend pid of a connection.
pub async fn pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0)
}
