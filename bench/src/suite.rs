//! The whole suite: HTTP load against tarn and the baselines (all running at once, points
//! interleaved so drift hits every target alike), then memory, per-request Wasm overhead,
//! pool checkout and cold start; the report as JSON, Markdown tables and SVG charts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::baseline::Strategy;
use crate::database::BenchDatabase;
use crate::delay::{self, DelayProxy};
use crate::load::{self, LoadSpec};
use crate::report::{HttpPoint, Machine, Report, Settings, TARN};
use crate::server::{Binaries, Server, TarnOptions};
use crate::workload::{self, Workload};
use crate::{checkout, coldstart, cpu, memory, overhead, plot};

/// Everything a suite run is told.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The binaries to drive.
    pub binaries: Binaries,
    /// Scratch directory (tarn's files and logs, the private cluster, caches).
    pub work_dir: PathBuf,
    /// tarn's compiled-component cache for the load and memory runs and the overhead
    /// measurement.
    pub cache_dir: PathBuf,
    /// PostgreSQL URL; `None` starts a private cluster under `work_dir`.
    pub database_url: Option<String>,
    /// One-way delay between the HTTP targets and PostgreSQL (a [`DelayProxy`] in
    /// between); zero connects them directly.
    pub db_delay: Duration,
    /// The HTTP targets log in with a password (SCRAM-SHA-256) instead of trust
    /// authentication; needs the private cluster.
    pub db_scram: bool,
    /// tarn configurations to load, each a target of its own.
    pub tarn_variants: Vec<TarnVariant>,
    /// Workloads to load.
    pub workloads: Vec<Workload>,
    /// Baselines to compare with.
    pub baselines: Vec<Strategy>,
    /// Concurrencies.
    pub concurrencies: Vec<usize>,
    /// Unmeasured time per point.
    pub warmup: Duration,
    /// Measured time per point.
    pub duration: Duration,
    /// Cap on measured requests per point.
    pub max_requests: u64,
    /// Runs per point.
    pub repeats: usize,
    /// Requests in flight for the memory measurement (0 skips it).
    pub in_flight: usize,
    /// Calls for the Wasm overhead measurement (0 skips it).
    pub overhead_calls: usize,
    /// Uncontended checkout pairs (0 skips the checkout measurement).
    pub checkout_pairs: usize,
    /// Contended checkout rounds per task.
    pub checkout_rounds: usize,
    /// Starts per cold-start configuration (0 skips it).
    pub cold_starts: usize,
    /// Also measure cold start with an empty cache (compiles the guest each time).
    pub cold_without_cache: bool,
}

/// One tarn configuration under test.
#[derive(Debug, Clone)]
pub struct TarnVariant {
    /// Its target name (starts with `tarn`).
    pub name: String,
    /// Extra `runtime-config.toml` text.
    pub config: String,
    /// Another `tarn` executable than the suite's (to compare two builds in one run).
    pub binary: Option<PathBuf>,
}

impl TarnVariant {
    /// tarn as shipped: pool of 5 + 10 overflow connections (overflow closed when returned
    /// to a pool with 5 idle).
    pub fn defaults() -> TarnVariant {
        TarnVariant {
            name: TARN.into(),
            config: String::new(),
            binary: None,
        }
    }

    /// tarn tuned for the benchmark's steady load: 15 persistent connections (the native
    /// ceiling's budget, so no overflow connection is closed and reopened) and a reset only
    /// after statements that visibly change session state.
    pub fn tuned() -> TarnVariant {
        TarnVariant::parse("tarn-tuned:pool_size=15;max_overflow=0;session_reset=\"detected\"")
            .unwrap_or_else(|e| unreachable!("a valid variant: {e}"))
    }

    /// Parses `NAME[@BINARY]:key=value;key=value` (keys of `[database.default]`, TOML
    /// values; `BINARY` another `tarn` executable).
    pub fn parse(spec: &str) -> Result<TarnVariant> {
        let (name, settings) = spec.split_once(':').unwrap_or((spec, ""));
        let (name, binary) = match name.split_once('@') {
            Some((name, binary)) => (name, Some(PathBuf::from(binary))),
            None => (name, None),
        };
        if !name.starts_with(TARN) {
            bail!("a tarn variant's name starts with `{TARN}`: {name}");
        }
        let mut config = String::from("[database.default]\n");
        for setting in settings.split(';').filter(|s| !s.trim().is_empty()) {
            let Some((key, value)) = setting.split_once('=') else {
                bail!("`{setting}` is not key=value")
            };
            config.push_str(&format!("{} = {}\n", key.trim(), value.trim()));
        }
        Ok(TarnVariant {
            name: name.into(),
            config,
            binary,
        })
    }
}

/// Runs the suite and returns its report (goals checked).
pub fn run(config: &SuiteConfig) -> Result<Report> {
    std::fs::create_dir_all(&config.work_dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load_before = loadavg();
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let db = rt.block_on(BenchDatabase::open(
        config.database_url.clone(),
        &config.work_dir.join("pgdata"),
    ))?;
    let postgres = rt.block_on(db.version())?;
    rt.block_on(workload::prepare_tables(&db.url))?;
    eprintln!("database: {} (PostgreSQL {postgres})", db.url);
    // The servers under test log in with a password and reach the database through the
    // delay line, if asked; the suite's own connections (tables, checkout, cold start) do
    // neither.
    let login_url = if config.db_scram {
        rt.block_on(db.scram_url())?
    } else {
        db.url.clone()
    };
    let proxy = if config.db_delay.is_zero() {
        None
    } else {
        let upstream = delay::upstream(&login_url)?;
        let proxy = DelayProxy::start(upstream, config.db_delay)?;
        let url = proxy.url(&login_url)?;
        let direct = rt.block_on(delay::round_trip(&login_url))?;
        let delayed = rt.block_on(delay::round_trip(&url))?;
        eprintln!(
            "delay line: {:?} each way; SELECT 1 round trip {delayed:?} through it, {direct:?} direct",
            config.db_delay
        );
        Some((proxy, url, delayed))
    };
    let target_url = proxy.as_ref().map_or(login_url.as_str(), |(_, url, _)| url);
    let db_round_trip_ms = proxy
        .as_ref()
        .map_or(0.0, |(_, _, rtt)| rtt.as_secs_f64() * 1e3);

    let http = rt.block_on(http_points(config, &db, target_url))?;
    let memory = if config.in_flight > 0 {
        rt.block_on(memory_points(config, target_url))?
    } else {
        Vec::new()
    };
    let overhead = if config.overhead_calls > 0 {
        eprintln!("wasm overhead: {} calls", config.overhead_calls);
        Some(overhead::measure(
            &config.binaries.guest,
            &config.cache_dir,
            config.overhead_calls,
        )?)
    } else {
        None
    };
    let checkout = if config.checkout_pairs > 0 {
        eprintln!("pool checkout");
        checkout::measure(&db.url, config.checkout_pairs, config.checkout_rounds)?
    } else {
        Vec::new()
    };
    let cold_start = if config.cold_starts > 0 {
        eprintln!(
            "cold start: {} starts per configuration",
            config.cold_starts
        );
        rt.block_on(coldstart::measure(
            &config.binaries,
            &db.url,
            &config.work_dir.join("coldstart"),
            config.cold_starts,
            config.cold_without_cache,
        ))?
    } else {
        Vec::new()
    };
    let mut report = Report {
        machine: Machine {
            cpu: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: memory_gib(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .into(),
            postgres,
            database: if config.database_url.is_some() {
                "given server".into()
            } else {
                "private cluster, fsync on".into()
            },
            load_before,
            load_after: loadavg(),
            started,
        },
        settings: Settings {
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: config.duration.as_secs_f64(),
            max_requests: config.max_requests,
            concurrencies: config.concurrencies.clone(),
            repeats: config.repeats,
            db_delay_ms: config.db_delay.as_secs_f64() * 1e3,
            db_round_trip_ms,
            db_auth: if config.db_scram {
                "scram-sha-256"
            } else {
                "trust"
            }
            .into(),
        },
        http,
        overhead,
        checkout,
        cold_start,
        memory,
        goals: Vec::new(),
    };
    report.check_goals();
    Ok(report)
}

/// Writes the report as JSON to `out` (`DIR/NAME.json`), its Markdown tables to
/// `DIR/NAME.md` and its charts to `DIR/plots/NAME/`.
pub fn write(report: &Report, out: &Path) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let name = out.file_stem().context("the output file has no name")?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(out, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("write {}", out.display()))?;
    std::fs::write(out.with_extension("md"), report.markdown())?;
    plot::write_all(report, &dir.join("plots").join(name))?;
    Ok(())
}

/// Which targets a workload runs against: a workload without the database needs only the
/// native server as a baseline.
fn targets(config: &SuiteConfig, workload: Workload) -> Vec<String> {
    let mut targets: Vec<String> = config
        .tarn_variants
        .iter()
        .map(|v| v.name.clone())
        .collect();
    for s in &config.baselines {
        if workload != Workload::Health || *s == Strategy::Native {
            targets.push(s.name().to_string());
        }
    }
    targets
}

async fn http_points(
    config: &SuiteConfig,
    db: &BenchDatabase,
    url: &str,
) -> Result<Vec<HttpPoint>> {
    let mut servers = Vec::new();
    for variant in &config.tarn_variants {
        let dir = config.work_dir.join(&variant.name);
        servers.push((
            variant.name.clone(),
            Server::tarn(&config.binaries, &tarn_options(config, url, variant), &dir).await?,
        ));
    }
    for s in &config.baselines {
        servers.push((
            s.name().to_string(),
            Server::baseline(&config.binaries, *s, url).await?,
        ));
    }
    let mut points = Vec::new();
    for &workload in &config.workloads {
        let targets = targets(config, workload);
        for &concurrency in &config.concurrencies {
            let first = points.len();
            for target in &targets {
                points.push(HttpPoint {
                    workload: workload.name().into(),
                    target: target.clone(),
                    concurrency,
                    runs: Vec::new(),
                });
            }
            for repeat in 0..config.repeats {
                // Rotate who goes first, so no target always follows the same one.
                for k in 0..targets.len() {
                    let i = (k + repeat) % targets.len();
                    let Some((_, server)) = servers.iter().find(|(n, _)| *n == targets[i]) else {
                        bail!("no server for {}", targets[i]);
                    };
                    let spec = LoadSpec {
                        addr: server.addr,
                        workload,
                        concurrency,
                        warmup: config.warmup,
                        duration: config.duration,
                        max_requests: config.max_requests,
                    };
                    let (server_before, pg_before) =
                        (cpu::process(server.pid()), db.postmaster().map(cpu::tree));
                    let mut result = load::run(spec).await?;
                    let per_request =
                        |d: Duration| d.as_secs_f64() * 1e6 / result.total.max(1) as f64;
                    result.server_cpu_us = Some(per_request(
                        cpu::process(server.pid()).saturating_sub(server_before),
                    ));
                    result.postgres_cpu_us = pg_before
                        .zip(db.postmaster())
                        .map(|(before, pid)| per_request(cpu::tree(pid).saturating_sub(before)));
                    eprintln!(
                        "{:<10} c={:<3} {:<20} {:>8.0} rps  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms  cpu/req server {:>5.0} µs pg {:>5.0} µs  errors {}{}",
                        workload.name(),
                        concurrency,
                        targets[i],
                        result.rps,
                        result.latency.p50_us / 1e3,
                        result.latency.p99_us / 1e3,
                        result.latency.max_us / 1e3,
                        result.server_cpu_us.unwrap_or_default(),
                        result.postgres_cpu_us.unwrap_or_default(),
                        result.errors,
                        result
                            .first_error
                            .as_deref()
                            .map(|e| format!(" (first: {e})"))
                            .unwrap_or_default()
                    );
                    points[first + i].runs.push(result);
                }
            }
        }
    }
    Ok(points)
}

fn tarn_options(config: &SuiteConfig, url: &str, variant: &TarnVariant) -> TarnOptions {
    TarnOptions {
        database_url: url.into(),
        cache_dir: config.cache_dir.clone(),
        lazy_init: false,
        extra_config: variant.config.clone(),
        binary: variant.binary.clone(),
    }
}

async fn memory_points(config: &SuiteConfig, url: &str) -> Result<Vec<memory::MemoryResult>> {
    eprintln!("memory: {} requests in flight", config.in_flight);
    let sleep = Duration::from_millis(100);
    let mut results = Vec::new();
    let variant = TarnVariant::defaults();
    let tarn = Server::tarn(
        &config.binaries,
        &tarn_options(config, url, &variant),
        &config.work_dir.join("tarn-memory"),
    )
    .await?;
    results.push(memory::measure(&tarn, TARN, config.in_flight, sleep).await?);
    drop(tarn);
    let native = Server::baseline(&config.binaries, Strategy::Native, url).await?;
    results.push(memory::measure(&native, Strategy::Native.name(), config.in_flight, sleep).await?);
    Ok(results)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}
