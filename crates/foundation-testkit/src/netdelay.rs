//! Latency and loss for real network stacks where the kernel has no
//! `netem` qdisc: a userspace delay line on a netfilter queue.
//!
//! An `iptables` NFQUEUE rule hands each packet a host sends to this
//! program ([`run_nfqueue`], the `foundation-netdelay` binary), which
//! holds it for a delay (fixed, plus a uniform random jitter), or drops it
//! with a given probability, then gives the kernel its verdict.
//! [`DelayLine`] is the sans-IO part: what to hold, what to lose, what is
//! due. A constant delay keeps the order; jitter reorders, as netem's
//! `delay D J` does. [`crate::netns::Lab::delayed`] sets it up in a lab
//! host.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Packets held at most; beyond, a packet is passed on at once (the
/// kernel's own queue limit, set to the same, does likewise).
pub const MAX_HELD: usize = 8192;

/// Holds packets for a delay and loses some at random.
#[derive(Debug)]
pub struct DelayLine<T> {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    rng: SmallRng,
    held: BinaryHeap<Reverse<Held<T>>>,
    seq: u64,
}

/// A held packet, ordered by when it is due, then by arrival.
#[derive(Debug)]
struct Held<T> {
    at: Instant,
    seq: u64,
    packet: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What to do with a packet that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<T> {
    /// Held until its delay has passed.
    Held,
    /// Lost: drop it now.
    Lost(T),
    /// Too many held: pass it on now.
    Overflow(T),
}

impl<T> DelayLine<T> {
    /// A line delaying by `delay` and losing with probability `loss`
    /// (0.0 to 1.0), drawn from an RNG seeded with `seed`.
    pub fn new(delay: Duration, loss: f64, seed: u64) -> Self {
        DelayLine {
            delay,
            jitter: Duration::ZERO,
            loss: loss.clamp(0.0, 1.0),
            rng: SmallRng::seed_from_u64(seed),
            held: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Adds to each packet's delay a uniform random share of `jitter`:
    /// packets then overtake each other.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Takes a packet that arrived at `now`.
    pub fn arrive(&mut self, now: Instant, packet: T) -> Arrival<T> {
        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
            return Arrival::Lost(packet);
        }
        if self.held.len() >= MAX_HELD {
            return Arrival::Overflow(packet);
        }
        let extra = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(self.rng.random::<f64>())
        };
        self.seq += 1;
        self.held.push(Reverse(Held {
            at: now + self.delay + extra,
            seq: self.seq,
            packet,
        }));
        Arrival::Held
    }

    /// The next packet whose delay has passed at `now`, the earliest due
    /// first (arrival order among equals).
    pub fn due(&mut self, now: Instant) -> Option<T> {
        if self.held.peek().is_some_and(|h| h.0.at <= now) {
            self.held.pop().map(|h| h.0.packet)
        } else {
            None
        }
    }

    /// When the next held packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.0.at)
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Serves netfilter queue `queue` with a [`DelayLine`] until an error
/// (Linux, as root, in the namespace whose rule feeds the queue).
#[cfg(target_os = "linux")]
pub fn run_nfqueue(
    queue: u16,
    delay: Duration,
    jitter: Duration,
    loss: f64,
    seed: u64,
) -> std::io::Result<()> {
    use nfq::Verdict;
    let mut q = nfq::Queue::open()?;
    q.bind(queue)?;
    // Only the verdict matters: no payload is copied to userspace.
    q.set_copy_range(queue, 0)?;
    q.set_queue_max_len(queue, MAX_HELD as u32)?;
    // A full kernel queue passes packets on rather than dropping them.
    q.set_fail_open(queue, true)?;
    q.set_nonblocking(true);
    let mut line = DelayLine::new(delay, loss, seed).with_jitter(jitter);
    loop {
        loop {
            let mut msg = match q.recv() {
                Ok(msg) => msg,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            msg.set_verdict(Verdict::Accept);
            match line.arrive(Instant::now(), msg) {
                Arrival::Held => {}
                Arrival::Lost(mut msg) => {
                    msg.set_verdict(Verdict::Drop);
                    q.verdict(msg)?;
                }
                Arrival::Overflow(msg) => q.verdict(msg)?,
            }
        }
        let now = Instant::now();
        while let Some(msg) = line.due(now) {
            q.verdict(msg)?;
        }
        // 1 ms of granularity on top of the delay.
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_packet_for_the_delay_and_keeps_the_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut line = DelayLine::new(ms(50), 0.0, 1);
        assert_eq!(line.arrive(t0, 1), Arrival::Held);
        assert_eq!(line.arrive(t0 + ms(10), 2), Arrival::Held);
        assert_eq!(line.due(t0 + ms(49)), None);
        assert_eq!(line.next_due(), Some(t0 + ms(50)));
        assert_eq!(line.due(t0 + ms(50)), Some(1));
        assert_eq!(line.due(t0 + ms(50)), None);
        assert_eq!(line.due(t0 + ms(70)), Some(2));
        assert_eq!(line.held(), 0);
    }

    #[test]
    fn loses_about_the_given_share_the_same_way_for_the_same_seed() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut line = DelayLine::new(Duration::ZERO, 0.1, seed);
            (0..10_000)
                .map(|i| matches!(line.arrive(t0, i), Arrival::Lost(_)))
                .collect::<Vec<bool>>()
        };
        let lost = run(7).iter().filter(|l| **l).count();
        assert!((800..1200).contains(&lost), "lost {lost} of 10,000 at 10%");
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn jitter_reorders_within_its_bound() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut line = DelayLine::new(ms(50), 0.0, 3).with_jitter(ms(20));
        for i in 0..100u32 {
            assert_eq!(line.arrive(t0, i), Arrival::Held);
        }
        assert_eq!(line.due(t0 + ms(49)), None, "nothing before the delay");
        let mut out = Vec::new();
        while let Some(p) = line.due(t0 + ms(70)) {
            out.push(p);
        }
        assert_eq!(out.len(), 100, "everything by delay + jitter");
        assert!(out.windows(2).any(|w| w[0] > w[1]), "reordered: {out:?}");
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn beyond_the_bound_packets_pass_at_once() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_secs(1), 0.0, 1);
        for i in 0..MAX_HELD {
            assert_eq!(line.arrive(t0, i), Arrival::Held);
        }
        assert_eq!(line.arrive(t0, MAX_HELD), Arrival::Overflow(MAX_HELD));
        assert_eq!(line.held(), MAX_HELD);
    }
}
