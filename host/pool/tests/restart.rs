//! Database restarts and outages, staged on throwaway clusters (tarn-pgctl), never on the
//! machine's server.

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use tarn_pgctl::Cluster;
use tarn_pool::{Pool, PoolConfig, PoolError};
use tokio_postgres::NoTls;

const APP: &str = "tp_restart";

async fn start_cluster() -> Cluster {
    tokio::task::spawn_blocking(Cluster::start_temp)
        .await
        .expect("join")
        .expect("a throwaway PostgreSQL cluster")
}

/// Runs a blocking cluster operation off the runtime.
async fn with_cluster(
    mut cluster: Cluster,
    op: impl FnOnce(&mut Cluster) -> Result<(), tarn_pgctl::PgCtlError> + Send + 'static,
) -> Cluster {
    tokio::task::spawn_blocking(move || {
        op(&mut cluster).expect("cluster operation");
        cluster
    })
    .await
    .expect("join")
}

fn pg(cluster: &Cluster) -> tokio_postgres::Config {
    let mut pg: tokio_postgres::Config = cluster.url().parse().expect("cluster url");
    pg.application_name(APP);
    pg
}

fn config() -> PoolConfig {
    PoolConfig {
        pool_size: 3,
        max_overflow: 2,
        pool_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ping_timeout: Duration::from_secs(1),
        ..PoolConfig::default()
    }
}

/// Backends of the pool as the cluster sees them.
async fn backends(cluster: &Cluster) -> i64 {
    let mut pg = pg(cluster);
    pg.application_name("tp_restart_admin");
    let (client, connection) = pg.connect(NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&APP],
        )
        .await
        .expect("count")
        .get(0)
}

async fn wait_backends(cluster: &Cluster, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = backends(cluster).await;
        if count == expected || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_costs_callers_nothing_and_the_pool_refills() {
    let cluster = start_cluster().await;
    let pool = Pool::connect("restart", pg(&cluster), config())
        .await
        .expect("pool");
    assert_eq!(backends(&cluster).await, 3);
    let held = pool.get().await.expect("checkout");

    let cluster = with_cluster(cluster, Cluster::restart).await;

    // The idle connections died with the old server: callers get fresh ones, not errors.
    for _ in 0..5 {
        let conn = pool.get().await.expect("checkout after the restart");
        conn.simple_query("SELECT 1")
            .await
            .expect("a working connection");
    }
    // The connection held across the restart is dead: its user sees the error, reports it,
    // and the pool closes it instead of reusing it.
    let mut held = held;
    let err = held
        .simple_query("SELECT 1")
        .await
        .expect_err("its server is gone");
    held.observe_error(&err);
    assert!(held.is_broken());
    drop(held);

    assert!(
        eventually(|| async { pool.stats().total == 3 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&cluster, 3).await, 3);
    let m = pool.metrics();
    assert!(m.broken + m.invalidated + m.failed_pings >= 3, "{m:?}");
    pool.close(Duration::from_secs(1)).await;
    assert_eq!(wait_backends(&cluster, 0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_then_the_pool_recovers_by_itself() {
    let cluster = start_cluster().await;
    // Ping at every checkout: the connections are fresh, and the kill may not have been noticed
    // by their drivers yet when the first checkout comes.
    let config = PoolConfig {
        pre_ping_after: Duration::ZERO,
        ..config()
    };
    let pool = Pool::connect("outage", pg(&cluster), config)
        .await
        .expect("pool");
    let cluster = with_cluster(cluster, Cluster::kill).await;

    // The database is really down: the caller gets the connect error naming the host.
    let started = Instant::now();
    match pool.get().await {
        Err(PoolError::Connect { host, .. }) => {
            assert_eq!(host, format!("127.0.0.1:{}", cluster.port()));
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(pool.health_check().await.is_err());
    assert_eq!(pool.metrics().failed_health_checks, 1);
    // Dead idle connections are dropped in the background while the refill backs off.
    assert!(
        eventually(|| async { pool.stats().total == 0 }).await,
        "{:?}",
        pool.stats()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failures = pool.metrics().connect_failures;
    assert!(failures >= 2, "the refill kept trying: {failures}");

    let cluster = with_cluster(cluster, Cluster::start_again).await;
    // Without any caller, the refill task reopens pool_size connections (backoff <= 5 s).
    assert!(
        eventually(|| async { pool.stats().total == 3 }).await,
        "{:?}",
        pool.stats()
    );
    assert_eq!(wait_backends(&cluster, 3).await, 3);
    pool.health_check().await.expect("healthy again");
    pool.close(Duration::from_secs(1)).await;
}
