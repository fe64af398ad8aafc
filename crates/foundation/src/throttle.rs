//! Throttles for what a peer (or anyone who can reach a port) can make
//! happen at will: a warning per event would let a flood fill the log, and
//! a full handshake per packet would let it spend this node's CPU.

use std::time::{Duration, Instant};

use crate::locks::Locked as _;

/// At most one log line per period; the lines in between are counted and
/// reported with the next one.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// One line per `every`.
    pub(crate) const fn new(every: Duration) -> Self {
        Throttle {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Whether to log now; `Some(n)` with the number of lines suppressed
    /// since the last one logged.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.locked();
        let (last, suppressed) = &mut *st;
        match last {
            Some(at) if now.saturating_duration_since(*at) < self.every => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

/// Counts events in one-second buckets and says when the rate is above a
/// limit.
#[derive(Debug)]
pub(crate) struct Rate {
    limit: u32,
    state: std::sync::Mutex<(Option<Instant>, u32)>,
}

impl Rate {
    /// Busy above `limit` events a second.
    pub(crate) const fn new(limit: u32) -> Self {
        Rate {
            limit,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Counts one event at `now`; whether this second has seen more than
    /// the limit.
    pub(crate) fn busy(&self, now: Instant) -> bool {
        let mut st = self.state.locked();
        let (start, count) = &mut *st;
        match start {
            Some(s) if now.saturating_duration_since(*s) < Duration::from_secs(1) => {}
            _ => {
                *start = Some(now);
                *count = 0;
            }
        }
        *count = count.saturating_add(1);
        *count > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_logs_once_per_period_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.admit(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(t.admit(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(t.admit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn a_rate_is_busy_above_its_limit_within_one_second() {
        let r = Rate::new(3);
        let t0 = Instant::now();
        let seen: Vec<bool> = (0..5)
            .map(|i| r.busy(t0 + Duration::from_millis(i * 100)))
            .collect();
        assert_eq!(seen, [false, false, false, true, true]);
        // A new second starts afresh.
        assert!(!r.busy(t0 + Duration::from_millis(1000)));
    }
}
