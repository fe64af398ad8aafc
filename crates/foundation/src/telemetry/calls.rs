//! Per service protocol: call latency histograms and outcome counts, for
//! `/metrics` (issue 19). Bounded: at most [`MAX_PROTOCOLS`] protocols are
//! told apart, the rest are counted under [`OTHER_PROTOCOL`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::locks::Locked as _;

/// Protocols (service types) told apart.
pub const MAX_PROTOCOLS: usize = 256;
/// The label of calls to protocols past the limit.
pub const OTHER_PROTOCOL: &str = "other";

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How a call ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// A reply.
    Ok,
    /// No reply in time.
    Timeout,
    /// The service or its node is gone, or unreachable.
    Unavailable,
    /// Its mailbox was full.
    Overloaded,
    /// The handler failed.
    Failed,
    /// Request or reply did not (de)serialize.
    Codec,
}

impl CallOutcome {
    /// Every outcome, in label order.
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Ok,
        CallOutcome::Timeout,
        CallOutcome::Unavailable,
        CallOutcome::Overloaded,
        CallOutcome::Failed,
        CallOutcome::Codec,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Overloaded => "overloaded",
            CallOutcome::Failed => "failed",
            CallOutcome::Codec => "codec",
        }
    }
}

/// One protocol's figures.
#[derive(Debug, Default)]
pub struct ProtocolCalls {
    /// Calls per latency bucket (not cumulative), the last past every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of latencies, microseconds.
    sum_us: AtomicU64,
    outcomes: [AtomicU64; CallOutcome::ALL.len()],
}

impl ProtocolCalls {
    fn record(&self, took: Duration, outcome: CallOutcome) {
        let s = took.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
        let o = CallOutcome::ALL
            .iter()
            .position(|x| *x == outcome)
            .unwrap_or(0);
        self.outcomes[o].fetch_add(1, Relaxed);
    }

    /// Cumulative counts per bucket bound, then the total (`+Inf`).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.buckets
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect()
    }

    /// Sum of latencies in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us.load(Relaxed) as f64 / 1e6
    }

    /// Calls that ended with `outcome`.
    pub fn count(&self, outcome: CallOutcome) -> u64 {
        CallOutcome::ALL
            .iter()
            .position(|x| *x == outcome)
            .map_or(0, |i| self.outcomes[i].load(Relaxed))
    }
}

/// A node's call figures by protocol.
#[derive(Debug, Default)]
pub struct CallStats {
    by_protocol: Mutex<HashMap<String, Arc<ProtocolCalls>>>,
}

impl CallStats {
    /// Records one call to a service speaking `protocol`.
    pub fn record(&self, protocol: &str, took: Duration, outcome: CallOutcome) {
        let entry = {
            let mut map = self.by_protocol.locked();
            match map.get(protocol) {
                Some(e) => e.clone(),
                None if map.len() < MAX_PROTOCOLS => {
                    map.entry(protocol.to_owned()).or_default().clone()
                }
                None => map.entry(OTHER_PROTOCOL.to_owned()).or_default().clone(),
            }
        };
        entry.record(took, outcome);
    }

    /// Every protocol's figures, sorted by protocol.
    pub fn all(&self) -> Vec<(String, Arc<ProtocolCalls>)> {
        let mut v: Vec<_> = self
            .by_protocol
            .locked()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_bucket_and_protocols_are_bounded() {
        let s = CallStats::default();
        s.record("A", Duration::from_micros(50), CallOutcome::Ok);
        s.record("A", Duration::from_millis(3), CallOutcome::Ok);
        s.record("A", Duration::from_secs(9), CallOutcome::Timeout);
        let all = s.all();
        let a = &all[0].1;
        let c = a.cumulative();
        assert_eq!(c[0], 1, "50 µs is within 0.1 ms");
        assert_eq!(c[4], 1, "3 ms is past 2.5 ms");
        assert_eq!(c[5], 2, "and within 5 ms");
        assert_eq!(c[BUCKETS.len() - 1], 2);
        assert_eq!(c[BUCKETS.len()], 3, "+Inf counts everything");
        assert_eq!(a.count(CallOutcome::Ok), 2);
        assert_eq!(a.count(CallOutcome::Timeout), 1);
        assert!((a.sum_seconds() - 9.00305).abs() < 1e-9);
        for i in 0..MAX_PROTOCOLS + 10 {
            s.record(&format!("P{i}"), Duration::from_millis(1), CallOutcome::Ok);
        }
        let all = s.all();
        assert_eq!(all.len(), MAX_PROTOCOLS + 1);
        let other = all
            .iter()
            .find(|(k, _)| k == OTHER_PROTOCOL)
            .expect("other");
        assert_eq!(other.1.count(CallOutcome::Ok), 11);
    }
}
