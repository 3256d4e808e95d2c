//! The database operations the request logic needs, as a small trait, so the
//! logic runs against the host's `database` interface in the guest and against
//! a fake in native unit tests.

use crate::tarn::postgres::database::{self, Health, PoolConfig, PoolStats, TransactionOptions};
use crate::tarn::postgres::types::{Error, RowSet, Value};

/// Opens databases by name.
pub trait Backend {
    type Db: Db;
    /// `database.open(name)`.
    fn open(&self, name: &str) -> Result<Self::Db, Error>;
}

/// An opened database (the WIT `database` resource).
pub trait Db {
    type Tx: Tx;
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error>;
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error>;
    fn begin(&self, options: TransactionOptions) -> Result<Self::Tx, Error>;
    fn health(&self) -> Health;
    fn pool_stats(&self) -> PoolStats;
    fn pool_config(&self) -> PoolConfig;
}

/// An open transaction (the WIT `transaction` resource). Dropping it without
/// `commit` rolls it back on the host.
pub trait Tx {
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error>;
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error>;
    fn commit(self) -> Result<(), Error>;
    fn rollback(self) -> Result<(), Error>;
}

/// The host's `tarn:postgres/database` imports.
pub struct Wit;

impl Backend for Wit {
    type Db = database::Database;
    fn open(&self, name: &str) -> Result<database::Database, Error> {
        database::Database::open(name)
    }
}

impl Db for database::Database {
    type Tx = database::Transaction;
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error> {
        database::Database::query(self, sql, params)
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        database::Database::execute(self, sql, params)
    }
    fn begin(&self, options: TransactionOptions) -> Result<database::Transaction, Error> {
        database::Database::begin(self, options)
    }
    fn health(&self) -> Health {
        database::Database::health(self)
    }
    fn pool_stats(&self) -> PoolStats {
        database::Database::pool_stats(self)
    }
    fn pool_config(&self) -> PoolConfig {
        database::Database::pool_config(self)
    }
}

impl Tx for database::Transaction {
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error> {
        database::Transaction::query(self, sql, params)
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        database::Transaction::execute(self, sql, params)
    }
    fn commit(self) -> Result<(), Error> {
        database::Transaction::commit(self)
    }
    fn rollback(self) -> Result<(), Error> {
        database::Transaction::rollback(self)
    }
}
