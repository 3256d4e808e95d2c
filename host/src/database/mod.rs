//! The WIT `database` interface: named databases, value conversion, and the
//! rules that keep lent connections clean.

pub mod host;
pub mod registry;
pub mod statement;
pub mod value;

pub use host::{DatabaseHandle, DbContext, DbView, Grants, HasDb, ResultLimits, TransactionHandle};
pub use registry::{Database, Databases};

use crate::bindings::tarn::postgres::types::Error;

/// A one-line description of a database error, for logs and status texts.
pub fn describe(e: &Error) -> String {
    match e {
        Error::QueryFailed(db) => format!("{} ({}): {}", db.severity, db.code, db.message),
        Error::PoolTimeout(t) => format!(
            "pool limit of size {} overflow {} reached: {} checked out, {} waiting, timed out after {:.1}s",
            t.pool_size,
            t.max_overflow,
            t.checked_out,
            t.waiting,
            t.waited_ms as f64 / 1000.0
        ),
        Error::ConnectionFailed(m) => format!("connection failed: {m}"),
        Error::BadParameter(m) => format!("bad parameter: {m}"),
        Error::ValueConversion(m) => format!("value conversion: {m}"),
        Error::NotAllowed(m) => format!("not allowed: {m}"),
        Error::TooLarge(m) => format!("too large: {m}"),
        Error::Timeout(m) => format!("timeout: {m}"),
    }
}
