//! The suite's results as JSON, the goals checked against them, and their Markdown tables.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checkout::CheckoutResult;
use crate::coldstart::ColdStart;
use crate::load::LoadResult;
use crate::memory::MemoryResult;
use crate::overhead::Overhead;

/// The name of tarn among the targets.
pub const TARN: &str = "tarn";

/// Everything one suite run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Where and when.
    pub machine: Machine,
    /// How long each load point ran, and the concurrencies.
    pub settings: Settings,
    /// HTTP load points.
    pub http: Vec<HttpPoint>,
    /// Per-request Wasm overhead (in process).
    pub overhead: Option<Overhead>,
    /// Pool checkout + return.
    pub checkout: Vec<CheckoutResult>,
    /// Process start to first 200.
    pub cold_start: Vec<ColdStart>,
    /// Resident memory idle and under 1,000 requests in flight.
    pub memory: Vec<MemoryResult>,
    /// The goals, checked.
    pub goals: Vec<Goal>,
}

/// The machine and its load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// PostgreSQL server version.
    pub postgres: String,
    /// Where PostgreSQL ran.
    pub database: String,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when it ended.
    pub load_after: String,
    /// Start time, RFC 3339.
    pub started: String,
}

/// Run lengths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Unmeasured seconds before each point.
    pub warmup_s: f64,
    /// Measured seconds per point.
    pub duration_s: f64,
    /// Cap on measured requests per point.
    pub max_requests: u64,
    /// Concurrencies.
    pub concurrencies: Vec<usize>,
    /// Runs per point (the table shows the run with the median throughput).
    pub repeats: usize,
    /// One-way delay added between the HTTP targets and PostgreSQL, in milliseconds (0:
    /// direct).
    #[serde(default)]
    pub db_delay_ms: f64,
    /// Median `SELECT 1` round trip through that delay, in milliseconds (0: direct).
    #[serde(default)]
    pub db_round_trip_ms: f64,
    /// How the servers under test logged in: `trust` or `scram-sha-256`.
    #[serde(default = "trust")]
    pub db_auth: String,
}

fn trust() -> String {
    "trust".into()
}

/// One (workload, target, concurrency) point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpPoint {
    /// Workload name.
    pub workload: String,
    /// `tarn` or a baseline strategy.
    pub target: String,
    /// Connections of the load generator.
    pub concurrency: usize,
    /// Every run, in order.
    pub runs: Vec<LoadResult>,
}

impl HttpPoint {
    /// The run with the median throughput.
    pub fn median(&self) -> &LoadResult {
        let mut order: Vec<&LoadResult> = self.runs.iter().collect();
        order.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        order[order.len() / 2]
    }
}

/// One goal of the issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    /// What is required.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Whether it holds.
    pub met: bool,
}

impl Report {
    /// The median run of a point.
    pub fn point(&self, workload: &str, target: &str, concurrency: usize) -> Option<&LoadResult> {
        self.http
            .iter()
            .find(|p| p.workload == workload && p.target == target && p.concurrency == concurrency)
            .map(HttpPoint::median)
    }

    /// Targets of a workload, in first-seen order.
    pub fn targets(&self, workload: &str) -> Vec<String> {
        let mut targets: Vec<String> = Vec::new();
        for p in self.http.iter().filter(|p| p.workload == workload) {
            if !targets.contains(&p.target) {
                targets.push(p.target.clone());
            }
        }
        targets
    }

    /// Workloads, in first-seen order.
    pub fn workloads(&self) -> Vec<String> {
        let mut workloads: Vec<String> = Vec::new();
        for p in &self.http {
            if !workloads.contains(&p.workload) {
                workloads.push(p.workload.clone());
            }
        }
        workloads
    }

    /// Checks the goals against the measurements that exist (the throughput and
    /// latency goals for every tarn variant).
    pub fn check_goals(&mut self) {
        let mut goals = Vec::new();
        let conc = self.settings.concurrencies.clone();
        let tarns: Vec<String> = self
            .targets("select1")
            .into_iter()
            .filter(|t| t.starts_with(TARN))
            .collect();
        for tarn in &tarns {
            let ratios = |other: &str, f: fn(&LoadResult) -> f64| -> Vec<(usize, f64)> {
                conc.iter()
                    .filter_map(|&c| {
                        let t = self.point("select1", tarn, c)?;
                        let o = self.point("select1", other, c)?;
                        Some((c, f(t) / f(o).max(1e-9)))
                    })
                    .collect()
            };
            let listed = |pairs: &[(usize, f64)]| {
                pairs
                    .iter()
                    .map(|(c, r)| format!("c={c}: {r:.2}×"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            for (name, other, need) in [
                ("Ceiling", "native", 0.85),
                ("vs Spin < 3.4", "connect-per-request", 10.0),
                ("vs Spin 3.4+", "reset-per-checkout", 3.0),
            ] {
                let pairs = ratios(other, |r| r.rps);
                if !pairs.is_empty() {
                    goals.push(Goal {
                        goal: format!("{name}: {tarn} ≥ {need}× {other} throughput on `SELECT 1`"),
                        measured: listed(&pairs),
                        met: pairs.iter().all(|(_, r)| *r >= need),
                    });
                }
            }
            let p99 = ratios("native", |r| r.latency.p99_us);
            if !p99.is_empty() {
                goals.push(Goal {
                    goal: format!("Ceiling: {tarn} p99 ≤ 1.5× native p99 on `SELECT 1`"),
                    measured: listed(&p99),
                    met: p99.iter().all(|(_, r)| *r <= 1.5),
                });
            }
        }
        if let Some(o) = &self.overhead {
            goals.push(Goal {
                goal: "Wasm per-request overhead ≤ 30 µs p50 (Rust guest)".into(),
                measured: format!("{:.1} µs p50", o.per_request.p50_us),
                met: o.per_request.p50_us <= 30.0,
            });
        }
        let cached: Vec<&ColdStart> = self.cold_start.iter().filter(|c| c.cached).collect();
        if !cached.is_empty() {
            goals.push(Goal {
                goal: "Cold start ≤ 200 ms to first 200 with the cache".into(),
                measured: cached
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {:.0} ms p50, {:.0} ms max",
                            pool_mode(c.lazy),
                            c.to_first_200.p50_us / 1e3,
                            c.to_first_200.max_us / 1e3
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                met: cached.iter().all(|c| c.to_first_200.p50_us <= 200e3),
            });
        }
        self.goals = goals;
    }

    /// Markdown tables of everything measured.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} × {}, {:.0} GiB, Linux {}; PostgreSQL {} ({}). Load average before: {}; after: {}. Started {}.\n",
            m.cpus,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.postgres,
            m.database,
            m.load_before,
            m.load_after,
            m.started
        );
        let s = &self.settings;
        let _ = writeln!(
            md,
            "Each point: {} s warm-up, {} s measured (at most {} requests), {} run(s); the median-throughput run is shown.\n",
            s.warmup_s, s.duration_s, s.max_requests, s.repeats
        );
        if s.db_auth != "trust" {
            let _ = writeln!(
                md,
                "The servers logged in to PostgreSQL with a password ({}), as managed databases require.\n",
                s.db_auth
            );
        }
        if s.db_delay_ms > 0.0 {
            let _ = writeln!(
                md,
                "The servers reached PostgreSQL through a delay line (`--db-delay-ms`): {} ms each way, as to a database across a network; a `SELECT 1` round trip through it took {:.2} ms (median).\n",
                s.db_delay_ms, s.db_round_trip_ms
            );
        }
        for workload in self.workloads() {
            let _ = writeln!(md, "### {workload}\n");
            let _ = writeln!(
                md,
                "| target | c | rps | vs native | p50 ms | p99 ms | max ms | server CPU µs/req | PostgreSQL CPU µs/req | errors |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for c in &s.concurrencies {
                let native = self.point(&workload, "native", *c).map(|r| r.rps);
                for target in self.targets(&workload) {
                    let Some(r) = self.point(&workload, &target, *c) else {
                        continue;
                    };
                    let rel = native.map_or("".into(), |n| format!("{:.2}×", r.rps / n.max(1e-9)));
                    let cpu = |v: Option<f64>| v.map_or("".into(), |v| format!("{v:.0}"));
                    let _ = writeln!(
                        md,
                        "| {target} | {c} | {:.0} | {rel} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                        r.rps,
                        r.latency.p50_us / 1e3,
                        r.latency.p99_us / 1e3,
                        r.latency.max_us / 1e3,
                        cpu(r.server_cpu_us),
                        cpu(r.postgres_cpu_us),
                        r.errors
                    );
                }
            }
            md.push('\n');
        }
        if let Some(o) = &self.overhead {
            let _ = writeln!(
                md,
                "### Per-request Wasm overhead (GET /health through `Runtime::invoke`, in process)\n"
            );
            let _ = writeln!(md, "| mode | p50 µs | p90 µs | p99 µs | max µs | calls/s |");
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
            let row = |s: &crate::latency::Summary| {
                format!(
                    "{:.1} | {:.1} | {:.1} | {:.0}",
                    s.p50_us, s.p90_us, s.p99_us, s.max_us
                )
            };
            let _ = writeln!(
                md,
                "| sequential | {} | {:.0} |",
                row(&o.per_request),
                1e6 / o.per_request.mean_us.max(1e-9)
            );
            let _ = writeln!(
                md,
                "| 2 in parallel | {} | {:.0} |\n",
                row(&o.per_request_2_parallel),
                o.calls_per_second_2_parallel
            );
        }
        if !self.checkout.is_empty() {
            let _ = writeln!(md, "### Pool checkout + return\n");
            let _ = writeln!(
                md,
                "| pool | uncontended p50 µs | p99 µs | contended (64 tasks, 15 conns) cycles/s | cycle p50 µs | p99 µs |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
            for c in &self.checkout {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} |",
                    c.pool,
                    c.uncontended.p50_us,
                    c.uncontended.p99_us,
                    c.contended_per_second,
                    c.contended_cycle.p50_us,
                    c.contended_cycle.p99_us
                );
            }
            md.push('\n');
        }
        if !self.cold_start.is_empty() {
            let _ = writeln!(md, "### Cold start (spawn to first 200 on /health)\n");
            let _ = writeln!(
                md,
                "| component cache | pool | p50 ms | min ms | max ms | runs |"
            );
            let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
            for c in &self.cold_start {
                let t = &c.to_first_200;
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {} |",
                    if c.cached { "warm" } else { "empty" },
                    pool_mode(c.lazy),
                    t.p50_us / 1e3,
                    t.min_us / 1e3,
                    t.max_us / 1e3,
                    t.count
                );
            }
            md.push('\n');
        }
        if !self.memory.is_empty() {
            let _ = writeln!(md, "### Resident memory\n");
            let _ = writeln!(
                md,
                "| target | idle MiB | in flight | peak RSS MiB | per in-flight request KiB | answered 200 | seconds |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
            for r in &self.memory {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | {} | {:.1} | {:.0} | {} | {:.1} |",
                    r.target,
                    r.idle_kib as f64 / 1024.0,
                    r.in_flight,
                    r.high_water_kib.max(r.peak_kib) as f64 / 1024.0,
                    (r.high_water_kib.max(r.peak_kib).saturating_sub(r.idle_kib)) as f64
                        / r.in_flight.max(1) as f64,
                    r.ok,
                    r.seconds
                );
            }
            md.push('\n');
        }
        if !self.goals.is_empty() {
            let _ = writeln!(md, "### Goals\n");
            let _ = writeln!(md, "| goal | measured | met |");
            let _ = writeln!(md, "|---|---|---|");
            for g in &self.goals {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    g.goal,
                    g.measured,
                    if g.met { "yes" } else { "**no**" }
                );
            }
        }
        md
    }
}

fn pool_mode(lazy: bool) -> &'static str {
    if lazy { "lazy" } else { "eager" }
}
