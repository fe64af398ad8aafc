//! A latency histogram small enough to print once per window per process:
//! logarithmic buckets, eight per doubling (each about 9 % wide), sparse.
//! Histograms of several processes and windows merge exactly, so a p99 over
//! a whole stretch of a long run is a p99 of every sample in it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Buckets per doubling.
const PER_OCTAVE: f64 = 8.0;

/// Counts of samples (microseconds) per logarithmic bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Histogram {
    /// Bucket index to count; bucket `i` holds samples below
    /// `2^((i + 1) / 8)` µs and at or above `2^(i / 8)` µs.
    buckets: BTreeMap<u16, u64>,
}

impl Histogram {
    /// Adds one sample, in microseconds (below 1 µs counts as 1 µs).
    pub(crate) fn record(&mut self, us: f64) {
        let i = (us.max(1.0).log2() * PER_OCTAVE).floor();
        let i = i.clamp(0.0, f64::from(u16::MAX)) as u16;
        *self.buckets.entry(i).or_default() += 1;
    }

    /// Adds every sample of `other`.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    /// Samples recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The nearest-rank `q` quantile in milliseconds: the upper edge of the
    /// bucket that holds it (an overestimate by at most one bucket, 9 %);
    /// 0 with no samples.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return 2f64.powf(f64::from(*i + 1) / PER_OCTAVE) / 1000.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_bucket() {
        let mut h = Histogram::default();
        for us in 1..=1000 {
            h.record(f64::from(us));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile_ms(0.5) * 1000.0;
        let p99 = h.quantile_ms(0.99) * 1000.0;
        assert!((500.0..=500.0 * 1.1).contains(&p50), "{p50}");
        assert!((990.0..=990.0 * 1.1).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile_ms(0.99), 0.0);
    }

    #[test]
    fn merged_histograms_count_every_sample() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for _ in 0..99 {
            a.record(100.0);
        }
        b.record(50_000.0);
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert!(a.quantile_ms(0.99) < 0.2);
        assert!(a.quantile_ms(1.0) >= 50.0);
        let json = serde_json::to_string(&a).expect("json");
        let back: Histogram = serde_json::from_str(&json).expect("back");
        assert_eq!(back, a);
    }
}
