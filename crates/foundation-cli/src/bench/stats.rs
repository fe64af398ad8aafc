//! Percentiles.

use serde::Serialize;

/// p50, p99 and max of a sample, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub(crate) struct Summary {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) samples: usize,
}

/// Nearest-rank percentiles of `samples` (microseconds).
pub(crate) fn summarize(mut samples: Vec<f64>) -> Summary {
    if samples.is_empty() {
        return Summary {
            p50: 0.0,
            p99: 0.0,
            max: 0.0,
            samples: 0,
        };
    }
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    Summary {
        p50: rank(0.50),
        p99: rank(0.99),
        max: samples[samples.len() - 1],
        samples: samples.len(),
    }
}

/// A table row: name, p50, p99, max (rounded), sample count.
pub(crate) fn row(name: &str, s: &Summary) -> Vec<String> {
    row_with(name, s, 0)
}

/// [`row`] with `decimals` places (milliseconds want two).
pub(crate) fn row_with(name: &str, s: &Summary, decimals: usize) -> Vec<String> {
    let mut cells = vec![name.to_owned()];
    cells.extend(
        [s.p50, s.p99, s.max]
            .iter()
            .map(|v| format!("{v:.decimals$}")),
    );
    cells.push(s.samples.to_string());
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max, s.samples), (50.0, 99.0, 100.0, 100));
        assert_eq!(summarize(vec![]).samples, 0);
        assert_eq!(summarize(vec![7.0]).p99, 7.0);
    }
}
