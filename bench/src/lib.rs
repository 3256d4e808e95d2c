//! tarn's benchmark suite: a closed-loop HTTP load generator, the baselines tarn is compared
//! with (a native hyper + deadpool-postgres server with four connection strategies), and
//! measurements of per-request Wasm overhead, pool checkout, cold start and memory, written
//! as JSON with Markdown tables and SVG charts. See `BENCHMARKS.md` at the repository root.

pub mod baseline;
pub mod build;
pub mod checkout;
pub mod coldstart;
pub mod cpu;
pub mod database;
pub mod delay;
pub mod latency;
pub mod load;
pub mod memory;
pub mod overhead;
pub mod plot;
pub mod report;
pub mod server;
pub mod smoke;
pub mod suite;
pub mod workload;
