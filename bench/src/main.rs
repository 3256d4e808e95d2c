//! `tarn-bench`: runs the benchmark suite (`suite`), its smoke run (`smoke`), one baseline
//! server (`serve`, used by the suite), or re-renders a report (`report`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tarn_bench::baseline::{self, Strategy};
use tarn_bench::load::{self, LoadSpec};
use tarn_bench::report::Report;
use tarn_bench::suite::{self, SuiteConfig, TarnVariant};
use tarn_bench::workload::Workload;
use tarn_bench::{build, overhead, smoke};

#[derive(Parser)]
#[command(about = "tarn's benchmark suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The full suite: HTTP load against tarn and every baseline, memory, Wasm overhead,
    /// pool checkout, cold start. Writes JSON, Markdown and SVG charts.
    Suite(SuiteArgs),
    /// A few hundred requests through every part of the suite; fails on any wrong answer.
    Smoke(SmokeArgs),
    /// Serves the sample app's endpoints natively with one connection strategy.
    Serve {
        /// The connection strategy.
        strategy: Strategy,
        /// PostgreSQL URL.
        #[arg(long)]
        database_url: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Loads one running server (for profiling it) and prints the result as JSON.
    Load {
        /// The server's address (loopback).
        #[arg(long)]
        addr: SocketAddr,
        /// What to send.
        #[arg(long, default_value = "select1")]
        workload: Workload,
        /// Connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Measures only the per-request Wasm overhead (in process) and prints it as JSON.
    Overhead {
        /// Calls to time.
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// Do not build the guest first.
        #[arg(long)]
        no_build: bool,
    },
    /// Re-renders the Markdown tables and charts of a JSON report.
    Report {
        /// The JSON report.
        #[arg(long = "in", default_value = "bench/results/latest.json")]
        input: PathBuf,
    },
}

#[derive(clap::Args)]
struct SuiteArgs {
    /// Where the JSON goes (Markdown and `plots/` beside it).
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
    /// PostgreSQL URL; by default a private cluster under the work directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Scratch directory.
    #[arg(long, default_value = "target/tarn-bench")]
    work_dir: PathBuf,
    /// Workloads.
    #[arg(long, value_delimiter = ',', default_values_t = Workload::ALL.to_vec().into_iter().map(|w| w.name().to_string()).collect::<Vec<_>>())]
    workloads: Vec<String>,
    /// Baselines.
    #[arg(long, value_delimiter = ',', default_values_t = Strategy::ALL.to_vec().into_iter().map(|s| s.name().to_string()).collect::<Vec<_>>())]
    baselines: Vec<String>,
    /// Concurrencies.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32, 128])]
    concurrency: Vec<usize>,
    /// Unmeasured seconds per point.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds per point.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Cap on measured requests per point.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Runs per point.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// One-way delay in milliseconds between the servers under test and PostgreSQL (a
    /// delay line in between, to measure the database across a network); 0 is direct.
    #[arg(long, default_value_t = 0.0)]
    db_delay_ms: f64,
    /// The servers under test log in with a password (SCRAM-SHA-256, as managed databases
    /// require) instead of trust authentication; needs the private cluster.
    #[arg(long)]
    db_scram: bool,
    /// Requests in flight for the memory measurement (0 skips).
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Calls for the Wasm overhead measurement (0 skips).
    #[arg(long, default_value_t = 20_000)]
    overhead_calls: usize,
    /// Uncontended checkout pairs (0 skips the checkout measurement).
    #[arg(long, default_value_t = 20_000)]
    checkout_pairs: usize,
    /// Contended checkout rounds per task.
    #[arg(long, default_value_t = 200)]
    checkout_rounds: usize,
    /// Starts per cold-start configuration (0 skips).
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// tarn configurations to load, as `NAME[@BINARY]:key=value;key=value` (keys of
    /// `[database.default]`, e.g. `tarn-big:pool_size=30`; `BINARY` another `tarn`
    /// executable, to compare two builds in one run); by default `tarn` as shipped and
    /// `tarn-tuned` (15 persistent connections, session reset only when detected).
    #[arg(long)]
    tarn_variant: Vec<String>,
    /// Do not build tarn and the guest first.
    #[arg(long)]
    no_build: bool,
}

#[derive(clap::Args)]
struct SmokeArgs {
    /// PostgreSQL URL (its database is created if missing).
    #[arg(long, default_value = smoke::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Where the JSON goes; by default only into the work directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scratch directory.
    #[arg(long, default_value = "target/tarn-bench-smoke")]
    work_dir: PathBuf,
    /// Do not build tarn and the guest first.
    #[arg(long)]
    no_build: bool,
}

fn parse<T: clap::ValueEnum>(names: &[String]) -> Result<Vec<T>> {
    names
        .iter()
        .map(|n| T::from_str(n, true).map_err(|e| anyhow::anyhow!("{n}: {e}")))
        .collect()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = build::workspace();
    let bench = std::env::current_exe().context("locate tarn-bench")?;
    match cli.command {
        Command::Serve {
            strategy,
            database_url,
            listen,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(baseline::serve(strategy, &database_url, listen)),
        Command::Load {
            addr,
            workload,
            concurrency,
            duration,
        } => {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "load goes to loopback addresses only"
            );
            let spec = LoadSpec {
                addr,
                workload,
                concurrency,
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs_f64(duration),
                max_requests: 10_000_000,
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(load::run(spec))?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Command::Overhead { calls, no_build } => {
            let binaries = build::binaries(bench, !no_build)?;
            let cache = root.join("target").join("tarn-bench").join("cache");
            let result = overhead::measure(&binaries.guest, &cache, calls)?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Command::Report { input } => {
            let input = root.join(input);
            let mut report: Report = serde_json::from_slice(&std::fs::read(&input)?)?;
            report.check_goals();
            suite::write(&report, &input)?;
            println!("{}", report.markdown());
            Ok(())
        }
        Command::Smoke(args) => {
            let work_dir = root.join(&args.work_dir);
            let config = smoke::config(
                build::binaries(bench, !args.no_build)?,
                work_dir.join("cache"),
                work_dir,
                args.database_url,
            );
            let report = smoke::run(&config)?;
            let out = args
                .out
                .map_or_else(|| config.work_dir.join("smoke.json"), |o| root.join(o));
            suite::write(&report, &out)?;
            println!("{}", report.markdown());
            println!("smoke run passed; results in {}", out.display());
            Ok(())
        }
        Command::Suite(args) => {
            let config = SuiteConfig {
                binaries: build::binaries(bench, !args.no_build)?,
                cache_dir: root.join(&args.work_dir).join("cache"),
                work_dir: root.join(&args.work_dir),
                database_url: args.database_url,
                db_delay: Duration::try_from_secs_f64(args.db_delay_ms / 1e3)
                    .context("--db-delay-ms must be a non-negative number")?,
                db_scram: args.db_scram,
                tarn_variants: if args.tarn_variant.is_empty() {
                    vec![TarnVariant::defaults(), TarnVariant::tuned()]
                } else {
                    args.tarn_variant
                        .iter()
                        .map(|v| TarnVariant::parse(v))
                        .collect::<Result<_>>()?
                },
                workloads: parse(&args.workloads)?,
                baselines: parse(&args.baselines)?,
                concurrencies: args.concurrency,
                warmup: Duration::from_secs_f64(args.warmup),
                duration: Duration::from_secs_f64(args.duration),
                max_requests: args.max_requests,
                repeats: args.repeats.max(1),
                in_flight: args.in_flight,
                overhead_calls: args.overhead_calls,
                checkout_pairs: args.checkout_pairs,
                checkout_rounds: args.checkout_rounds,
                cold_starts: args.cold_starts,
                cold_without_cache: true,
            };
            let report = suite::run(&config)?;
            let out = root.join(&args.out);
            suite::write(&report, &out)?;
            println!("{}", report.markdown());
            println!("results in {}", out.display());
            Ok(())
        }
    }
}
