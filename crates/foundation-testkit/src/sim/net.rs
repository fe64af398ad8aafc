//! The simulated network: seeded latency and loss, partitions, and the two
//! kinds of path a node uses (SWIM datagrams, and QUIC streams, which are
//! reliable and ordered but die with their connection).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Latency and loss of every link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// One-way latency, drawn uniformly from `[min, max)`.
    pub latency: (Duration, Duration),
    /// Probability that one datagram (or one stream segment) is lost.
    pub loss: f64,
}

impl NetConfig {
    /// A LAN: 0.2–2 ms one way, no loss.
    pub fn lan() -> Self {
        NetConfig {
            latency: (Duration::from_micros(200), Duration::from_millis(2)),
            loss: 0.0,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig::lan()
    }
}

/// Links between node indexes.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) config: NetConfig,
    rng: SmallRng,
    /// Directed pairs (from, to) whose packets are dropped.
    cut: HashSet<(usize, usize)>,
    /// Per directed pair, when the last stream message arrives: streams are
    /// ordered, so a later message never overtakes an earlier one.
    last: HashMap<(usize, usize), Duration>,
}

impl Net {
    pub(crate) fn new(config: NetConfig, seed: u64) -> Self {
        Net {
            config,
            rng: SmallRng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00),
            cut: HashSet::new(),
            last: HashMap::new(),
        }
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.config.latency;
        if hi <= lo {
            return lo;
        }
        let us = self
            .rng
            .random_range(lo.as_micros() as u64..hi.as_micros() as u64);
        Duration::from_micros(us)
    }

    fn lost(&mut self) -> bool {
        self.config.loss > 0.0 && self.rng.random_bool(self.config.loss.min(1.0))
    }

    /// Whether `from` can reach `to` at all.
    pub(crate) fn reachable(&self, from: usize, to: usize) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// When a datagram sent at `now` arrives, or `None` if it is lost.
    pub(crate) fn datagram(&mut self, from: usize, to: usize, now: Duration) -> Option<Duration> {
        if !self.reachable(from, to) || self.lost() {
            return None;
        }
        Some(now + self.latency())
    }

    /// When a stream message sent at `now` arrives, or `None` if the link is
    /// cut (the connection fails; what was in flight is lost, as with a
    /// real connection). A lost segment costs a retransmission: about
    /// three one-way latencies more.
    pub(crate) fn stream(&mut self, from: usize, to: usize, now: Duration) -> Option<Duration> {
        if !self.reachable(from, to) {
            return None;
        }
        let mut at = now + self.latency();
        let mut tries = 0;
        while self.lost() && tries < 16 {
            at += 3 * self.config.latency.1.max(Duration::from_millis(1));
            tries += 1;
        }
        let last = self.last.entry((from, to)).or_default();
        let at = at.max(*last);
        *last = at;
        Some(at)
    }

    /// Cuts `a` from `b` both ways.
    pub(crate) fn cut(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Cuts `from → to` only.
    pub(crate) fn cut_one_way(&mut self, from: &[usize], to: &[usize]) {
        for &x in from {
            for &y in to {
                self.cut.insert((x, y));
            }
        }
    }

    /// Removes every cut.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Forgets the ordering state of streams to and from `i` (its
    /// connections died with it).
    pub(crate) fn reset(&mut self, i: usize) {
        self.last.retain(|(a, b), _| *a != i && *b != i);
    }
}
