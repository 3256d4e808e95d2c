//! The named databases tarn serves, each with its own pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tarn_pool::{Pool, PoolError};

use crate::config::{DatabaseSettings, DatabaseUrl, SessionReset};

/// One named database and its pool.
pub struct Database {
    /// The name guests open it by.
    pub name: String,
    /// Its connection pool.
    pub pool: Pool,
    /// Its connection string, password redacted.
    pub redacted_url: String,
    /// When connections lent to guests are reset.
    pub session_reset: SessionReset,
}

/// Every configured database, by name.
#[derive(Clone, Default)]
pub struct Databases {
    by_name: Arc<HashMap<String, Arc<Database>>>,
}

/// A database that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("database `{name}` ({url}): {source}")]
pub struct StartError {
    /// Its name.
    pub name: String,
    /// Its redacted URL.
    pub url: String,
    /// Why.
    #[source]
    pub source: PoolError,
}

impl Databases {
    /// Opens a pool for every database. `urls` supplies the URL of databases
    /// whose settings have none (the private database of `tarn up`).
    pub async fn open(
        settings: &BTreeMap<String, DatabaseSettings>,
        fallback_default: Option<&DatabaseUrl>,
    ) -> Result<Databases, StartError> {
        let mut by_name = HashMap::new();
        for (name, db) in settings {
            let Some(url) = db.url.as_ref().or(fallback_default) else {
                continue;
            };
            let fail = |source| StartError {
                name: name.clone(),
                url: url.redacted(),
                source,
            };
            let pg = url.pg_config().map_err(|e| fail(PoolError::Backend(e)))?;
            let pool = Pool::connect(name.clone(), pg, db.pool.clone())
                .await
                .map_err(fail)?;
            by_name.insert(
                name.clone(),
                Arc::new(Database {
                    name: name.clone(),
                    pool,
                    redacted_url: url.redacted(),
                    session_reset: db.session_reset,
                }),
            );
        }
        Ok(Databases {
            by_name: Arc::new(by_name),
        })
    }

    /// The database called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<Database>> {
        self.by_name.get(name)
    }

    /// All databases, in name order.
    pub fn all(&self) -> Vec<&Arc<Database>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Closes every pool, waiting up to `grace` for lent connections.
    pub async fn close(&self, grace: Duration) {
        futures::future::join_all(self.by_name.values().map(|db| db.pool.close(grace))).await;
    }
}
