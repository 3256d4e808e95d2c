//! Where a baseline gets its PostgreSQL connection for a request: the strategies the
//! suite compares tarn against.

use std::ops::Deref;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

/// Connections of the native ceiling's pool: the same cap as tarn's default pool (5 + 10).
pub const NATIVE_POOL_SIZE: usize = 15;

/// Connections of the reset-per-checkout pool: Spin 3.4+'s hard-coded size.
pub const RESET_POOL_SIZE: usize = 64;

/// A connection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// deadpool-postgres, `RecyclingMethod::Fast`, 15 connections: the ceiling.
    Native,
    /// `native`, with every query prepared once per connection (deadpool-postgres'
    /// `prepare_typed_cached`): the ceiling with a statement cache, as tarn has.
    NativePrepared,
    /// A new connection for every request (Spin before 3.4).
    ConnectPerRequest,
    /// deadpool-postgres, `RecyclingMethod::Clean` (7 reset statements per checkout), 64
    /// connections, no timeouts (Spin 3.4+).
    ResetPerCheckout,
    /// One connection held forever, one request at a time on it.
    SingleConnection,
}

impl Strategy {
    /// Every baseline strategy.
    pub const ALL: [Strategy; 5] = [
        Strategy::Native,
        Strategy::NativePrepared,
        Strategy::ConnectPerRequest,
        Strategy::ResetPerCheckout,
        Strategy::SingleConnection,
    ];

    /// The name used in results and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Native => "native",
            Strategy::NativePrepared => "native-prepared",
            Strategy::ConnectPerRequest => "connect-per-request",
            Strategy::ResetPerCheckout => "reset-per-checkout",
            Strategy::SingleConnection => "single-connection",
        }
    }
}

/// The connection source of a running baseline.
pub enum Connections {
    /// A deadpool pool (native and reset-per-checkout).
    Pool(Pool),
    /// A deadpool pool whose queries go through each connection's statement cache.
    Caching(Pool),
    /// Connect anew each time.
    PerRequest(tokio_postgres::Config),
    /// The one shared connection.
    Single(Mutex<Client>),
}

/// A connection lent to one request; returned (or closed) when dropped.
pub enum Lease<'a> {
    /// From a pool.
    Pooled(Object),
    /// From a pool; queries are prepared once per connection.
    Caching(Object),
    /// Opened for this request; closed when dropped.
    Owned(Client),
    /// The shared connection, locked for this request.
    Shared(MutexGuard<'a, Client>),
}

impl Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            Lease::Pooled(obj) | Lease::Caching(obj) => obj,
            Lease::Owned(client) => client,
            Lease::Shared(guard) => guard,
        }
    }
}

impl Lease<'_> {
    /// Runs a query with typed parameters: unnamed, or for `native-prepared` through the
    /// connection's statement cache (prepared on first use).
    pub async fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self {
            Lease::Caching(obj) => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let statement = obj.prepare_typed_cached(sql, &types).await?;
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                obj.query(&statement, &values).await
            }
            other => Client::query_typed(other, sql, params).await,
        }
    }
}

async fn connect(pg: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = pg.connect(NoTls).await.context("connect to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

impl Connections {
    /// Sets up `strategy` against `pg` (pools open their connections lazily, as deadpool does).
    pub async fn new(strategy: Strategy, pg: tokio_postgres::Config) -> Result<Connections> {
        let pool = |method, size| {
            let manager = Manager::from_config(
                pg.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: method,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .build()
                .context("build the pool")
        };
        Ok(match strategy {
            Strategy::Native => Connections::Pool(pool(RecyclingMethod::Fast, NATIVE_POOL_SIZE)?),
            Strategy::NativePrepared => {
                Connections::Caching(pool(RecyclingMethod::Fast, NATIVE_POOL_SIZE)?)
            }
            Strategy::ResetPerCheckout => {
                Connections::Pool(pool(RecyclingMethod::Clean, RESET_POOL_SIZE)?)
            }
            Strategy::ConnectPerRequest => Connections::PerRequest(pg),
            Strategy::SingleConnection => Connections::Single(Mutex::new(connect(&pg).await?)),
        })
    }

    /// A connection for one request.
    pub async fn lease(&self) -> Result<Lease<'_>> {
        Ok(match self {
            Connections::Pool(pool) => Lease::Pooled(pool.get().await.context("pool checkout")?),
            Connections::Caching(pool) => {
                Lease::Caching(pool.get().await.context("pool checkout")?)
            }
            Connections::PerRequest(pg) => Lease::Owned(connect(pg).await?),
            Connections::Single(client) => Lease::Shared(client.lock().await),
        })
    }
}
