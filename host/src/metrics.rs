//! Request metrics, and the Prometheus text exposition of them together with
//! every pool's gauges, counters and checkout-wait histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::database::Databases;

/// Upper bounds (seconds) of the request latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counts and latencies of served requests, by route and status.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: Mutex<BTreeMap<String, RouteMetrics>>,
}

#[derive(Default)]
struct RouteMetrics {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

impl RequestMetrics {
    /// Records one finished request.
    pub fn record(&self, route: &str, status: u16, latency: Duration) {
        let mut routes = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = match routes.get_mut(route) {
            Some(m) => m,
            None => routes.entry(route.to_string()).or_default(),
        };
        *metrics.statuses.entry(status).or_default() += 1;
        metrics.latency.observe(latency);
    }

    /// Renders request metrics and pool metrics in Prometheus text format.
    pub fn render(&self, databases: &Databases) -> String {
        let mut out = String::new();
        out.push_str("# HELP tarn_requests_total HTTP requests served, by route and status.\n");
        out.push_str("# TYPE tarn_requests_total counter\n");
        let routes = self.by_route.lock().unwrap_or_else(|e| e.into_inner());
        for (route, m) in routes.iter() {
            for (status, n) in &m.statuses {
                let _ = writeln!(
                    out,
                    "tarn_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP tarn_request_duration_seconds HTTP request latency, by route.\n");
        out.push_str("# TYPE tarn_request_duration_seconds histogram\n");
        for (route, m) in routes.iter() {
            m.latency.render(
                &mut out,
                "tarn_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        drop(routes);
        render_pools(&mut out, databases);
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A pool gauge: metric name (without `tarn_pool_`), help, getter.
type Gauge = (
    &'static str,
    &'static str,
    fn(&tarn_pool::PoolStats) -> usize,
);

fn render_pools(out: &mut String, databases: &Databases) {
    let all = databases.all();
    let gauges: [Gauge; 6] = [
        (
            "size",
            "Configured persistent connections (pool_size).",
            |s| s.size,
        ),
        ("checked_in", "Idle connections.", |s| s.checked_in),
        ("checked_out", "Connections lent out.", |s| s.checked_out),
        ("overflow", "Open connections beyond pool_size.", |s| {
            s.overflow
        }),
        ("total", "Open connections.", |s| s.total),
        ("waiting", "Callers waiting for a connection.", |s| {
            s.waiting
        }),
    ];
    let stats: Vec<_> = all
        .iter()
        .map(|db| (db.name.as_str(), db.pool.stats()))
        .collect();
    for (name, help, get) in gauges {
        let _ = writeln!(out, "# HELP tarn_pool_{name} {help}");
        let _ = writeln!(out, "# TYPE tarn_pool_{name} gauge");
        for (db, s) in &stats {
            let _ = writeln!(out, "tarn_pool_{name}{{database=\"{db}\"}} {}", get(s));
        }
    }
    let snapshots: Vec<_> = all.iter().map(|db| db.pool.metrics()).collect();
    crate::pool_metrics::render(out, &snapshots);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_prometheus_text() {
        let m = RequestMetrics::default();
        m.record("/query", 200, Duration::from_millis(3));
        m.record("/query", 200, Duration::from_millis(30));
        m.record("/query", 503, Duration::from_secs(20));
        let text = m.render(&Databases::default());
        assert!(
            text.contains("tarn_requests_total{route=\"/query\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tarn_requests_total{route=\"/query\",status=\"503\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tarn_request_duration_seconds_bucket{route=\"/query\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tarn_request_duration_seconds_bucket{route=\"/query\",le=\"+Inf\"} 3"),
            "{text}"
        );
    }
}
