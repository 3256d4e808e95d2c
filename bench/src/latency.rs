//! Latency samples and their summary (percentiles by the nearest-rank method).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Percentiles of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Smallest sample.
    pub min_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place); all zero when empty.
    pub fn of(samples: &mut [Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let rank = |p: f64| {
            // Nearest rank: the smallest sample with at least p of the samples at or below it.
            let n = samples.len();
            let idx = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            us(samples[idx])
        };
        let total: Duration = samples.iter().sum();
        Summary {
            count: samples.len(),
            min_us: us(samples[0]),
            mean_us: us(total) / samples.len() as f64,
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            p999_us: rank(0.999),
            max_us: us(samples[samples.len() - 1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let s = Summary::of(&mut samples);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p90_us, 90.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert_eq!(s.min_us, 1.0);
        assert!((s.mean_us - 50.5).abs() < 1e-9);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Summary::of(&mut []), Summary::default());
    }
}
