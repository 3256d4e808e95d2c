//! tarn: a serverless-friendly WebAssembly host whose runtime owns pools of
//! PostgreSQL connections and lends them to sandboxed guest components
//! through the WIT `database` interface (`wit/database.wit`).
//!
//! Guests are instantiated afresh for every HTTP request; connections are
//! not. See the README for the configuration and the guest contract.

pub mod bindings;
pub mod build;
pub mod config;
pub mod database;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod pool_metrics;
pub mod redact;
pub mod route;
pub mod runtime;
