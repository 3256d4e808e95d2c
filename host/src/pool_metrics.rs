//! Prometheus exposition of the pools' counters and checkout-wait histograms.

use std::fmt::Write;

use tarn_pool::MetricsSnapshot;

/// A pool counter: metric name (without `tarn_pool_` and `_total`), help, getter.
type Counter = (&'static str, &'static str, fn(&MetricsSnapshot) -> u64);

/// Every pool counter tarn exports.
const COUNTERS: [Counter; 15] = [
    ("connections_created", "Connections opened.", |m| {
        m.connections_created
    }),
    (
        "connections_closed",
        "Connections closed, for any reason.",
        |m| m.connections_closed,
    ),
    (
        "recycled",
        "Connections replaced after pool_recycle.",
        |m| m.recycled,
    ),
    (
        "invalidated",
        "Connections discarded by a pool-wide invalidation after a disconnect.",
        |m| m.invalidated,
    ),
    ("broken", "Connections found dead and discarded.", |m| {
        m.broken
    }),
    (
        "overflow_closed",
        "Overflow connections closed on return or when idle.",
        |m| m.overflow_closed,
    ),
    ("failed_pings", "Pre-pings that failed.", |m| m.failed_pings),
    ("failed_health_checks", "Health checks that failed.", |m| {
        m.failed_health_checks
    }),
    (
        "checkout_timeouts",
        "Checkouts that timed out after pool_timeout.",
        |m| m.checkout_timeouts,
    ),
    (
        "queue_full",
        "Checkouts refused because the wait queue was full.",
        |m| m.queue_full_rejections,
    ),
    (
        "resets",
        "Dirty connections reset (ROLLBACK / DISCARD ALL) before reuse.",
        |m| m.resets,
    ),
    (
        "reset_failures",
        "Dirty connections whose reset failed (closed instead).",
        |m| m.reset_failures,
    ),
    (
        "connect_failures",
        "Failed attempts to open a connection.",
        |m| m.connect_failures,
    ),
    (
        "statements_prepared",
        "Statements prepared into a connection's statement cache.",
        |m| m.statements_prepared,
    ),
    (
        "statement_cache_hits",
        "Statement runs that reused a prepared statement (no parse, no plan).",
        |m| m.statement_cache_hits,
    ),
];

/// Renders the counters and checkout-wait histograms of `pools`.
pub fn render(out: &mut String, pools: &[MetricsSnapshot]) {
    for (name, help, get) in COUNTERS {
        let _ = writeln!(out, "# HELP tarn_pool_{name}_total {help}");
        let _ = writeln!(out, "# TYPE tarn_pool_{name}_total counter");
        for m in pools {
            let _ = writeln!(
                out,
                "tarn_pool_{name}_total{{database=\"{}\"}} {}",
                m.name,
                get(m)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tarn_pool_checkout_wait_seconds Time a checkout took (queueing, pre-ping, connect)."
    );
    let _ = writeln!(out, "# TYPE tarn_pool_checkout_wait_seconds histogram");
    for m in pools {
        let h = &m.checkout_wait;
        for b in &h.buckets {
            let _ = writeln!(
                out,
                "tarn_pool_checkout_wait_seconds_bucket{{database=\"{}\",le=\"{}\"}} {}",
                m.name, b.le, b.count
            );
        }
        let _ = writeln!(
            out,
            "tarn_pool_checkout_wait_seconds_bucket{{database=\"{}\",le=\"+Inf\"}} {}",
            m.name, h.count
        );
        let _ = writeln!(
            out,
            "tarn_pool_checkout_wait_seconds_sum{{database=\"{}\"}} {}",
            m.name, h.sum_seconds
        );
        let _ = writeln!(
            out,
            "tarn_pool_checkout_wait_seconds_count{{database=\"{}\"}} {}",
            m.name, h.count
        );
    }
}
