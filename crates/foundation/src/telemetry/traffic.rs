//! What the membership protocol costs on the network: datagrams and bytes
//! sent and received, and the rate over the last window.
//!
//! Bytes are UDP payload (sealed datagrams as they leave the socket); the
//! IP and UDP headers (28 bytes per datagram over IPv4) are not in them.
//! Empty datagrams (canary nudges) count as datagrams of 0 bytes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How often [`RateMeter`] updates the bytes-per-second gauges.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Totals in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams.
    pub datagrams: u64,
    /// UDP payload bytes.
    pub bytes: u64,
}

/// The counters of one direction.
#[derive(Debug, Default)]
struct Counters {
    datagrams: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    /// Counts one datagram, here and in the `metrics` facade.
    fn count(&self, bytes: usize, direction: &'static str) {
        self.datagrams.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        metrics::counter!("foundation_membership_datagrams_total", "direction" => direction)
            .increment(1);
        metrics::counter!("foundation_membership_bytes_total", "direction" => direction)
            .increment(bytes as u64);
    }

    fn total(&self) -> Traffic {
        Traffic {
            datagrams: self.datagrams.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }
}

/// The membership protocol's traffic counters of one node.
#[derive(Debug, Default)]
pub struct MembershipTraffic {
    sent: Counters,
    received: Counters,
    rate: [AtomicU64; 2],
}

impl MembershipTraffic {
    /// Counts a datagram sent.
    pub fn sent(&self, bytes: usize) {
        self.sent.count(bytes, "sent");
    }

    /// Counts a datagram received (whether or not it was then accepted).
    pub fn received(&self, bytes: usize) {
        self.received.count(bytes, "received");
    }

    /// Everything sent so far.
    pub fn total_sent(&self) -> Traffic {
        self.sent.total()
    }

    /// Everything received so far.
    pub fn total_received(&self) -> Traffic {
        self.received.total()
    }

    /// Bytes per second sent and received over the last complete window
    /// (10 s); both 0 until the first window has passed.
    pub fn bytes_per_second(&self) -> (u64, u64) {
        (self.rate[0].load(Relaxed), self.rate[1].load(Relaxed))
    }

    fn set_rates(&self, sent: u64, received: u64) {
        self.rate[0].store(sent, Relaxed);
        self.rate[1].store(received, Relaxed);
        metrics::gauge!("foundation_membership_bytes_per_second", "direction" => "sent")
            .set(sent as f64);
        metrics::gauge!("foundation_membership_bytes_per_second", "direction" => "received")
            .set(received as f64);
    }
}

/// Turns the totals into the bytes-per-second gauges, one window at a time.
#[derive(Debug)]
pub(crate) struct RateMeter {
    at: Instant,
    sent: u64,
    received: u64,
}

impl RateMeter {
    /// Starts a window at `now`.
    pub(crate) fn new(now: Instant, traffic: &MembershipTraffic) -> Self {
        RateMeter {
            at: now,
            sent: traffic.total_sent().bytes,
            received: traffic.total_received().bytes,
        }
    }

    /// Ends the window at `now`: sets the gauges to its rates and starts
    /// the next. A window shorter than a millisecond changes nothing.
    pub(crate) fn update(&mut self, now: Instant, traffic: &MembershipTraffic) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        if elapsed < 1e-3 {
            return;
        }
        let (sent, received) = (traffic.total_sent().bytes, traffic.total_received().bytes);
        let per_s =
            |now: u64, then: u64| (now.saturating_sub(then) as f64 / elapsed).round() as u64;
        traffic.set_rates(per_s(sent, self.sent), per_s(received, self.received));
        *self = RateMeter {
            at: now,
            sent,
            received,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_datagrams_and_bytes_per_direction() {
        let t = MembershipTraffic::default();
        t.sent(100);
        t.sent(0);
        t.received(40);
        assert_eq!(
            t.total_sent(),
            Traffic {
                datagrams: 2,
                bytes: 100
            }
        );
        assert_eq!(
            t.total_received(),
            Traffic {
                datagrams: 1,
                bytes: 40
            }
        );
    }

    #[test]
    fn the_rate_is_the_bytes_of_the_window_over_its_length() {
        let t = MembershipTraffic::default();
        let start = Instant::now();
        t.sent(1_000);
        let mut meter = RateMeter::new(start, &t);
        assert_eq!(t.bytes_per_second(), (0, 0), "no window has passed yet");
        t.sent(5_000);
        t.received(2_500);
        meter.update(start + Duration::from_secs(10), &t);
        assert_eq!(t.bytes_per_second(), (500, 250));
        // The next window starts where this one ended: nothing new, rate 0.
        meter.update(start + Duration::from_secs(20), &t);
        assert_eq!(t.bytes_per_second(), (0, 0));
        // A window of no length leaves the gauges alone.
        t.sent(9_999);
        meter.update(start + Duration::from_secs(20), &t);
        assert_eq!(t.bytes_per_second(), (0, 0));
    }
}
