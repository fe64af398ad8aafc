//! Timeouts that follow the network and this node's own health (Lifeguard,
//! adapted to foca; ADR 019).
//!
//! foca runs SWIM with one probe timeout, one probe period and one
//! suspicion timeout for every member. It hands every timer to the
//! runtime, though, and the core sees them on their way out: this module
//! sets their durations.
//!
//! - **Round trips.** The core reads foca's headers: a `Ping` sent and its
//!   `Ack` give a round-trip sample per member, kept as TCP keeps them
//!   (RFC 6298: smoothed mean and mean deviation). The retransmission
//!   timeout `rto = srtt + 4 · rttvar` sets, per probed member, the direct
//!   probe timeout (at least the configured one), the probe period (long
//!   enough for the indirect probes' two round trips) and the suspicion
//!   timeout (ten `rto`, for the suspect to hear and refute). An ack after
//!   its probe round gives no sample (Karn's rule: so late an ack mostly
//!   measures a stalled peer, and ten of such a sample made a LAN's
//!   suspicion 13 s after a peer had been paused). On
//!   a LAN `rto` is a few milliseconds and the configured values stand; on
//!   a 100 ms WAN they stretch by themselves. Every sample also feeds one
//!   estimate of the whole network, and a member's `rto` is never below
//!   it: a member this node has not probed since the network slowed down
//!   gets the network's figure, not a stale one.
//! - **Local health.** A node whose own timers fire late (starved CPU, a
//!   paused process) is the likelier culprit when its probes fail. Its health score (0 = healthy, up to
//!   [`MAX_SCORE`]) multiplies its probe timeout and probe period by
//!   `1 + score`, and drops by one with each probe answered in time. A
//!   suspicion timer that fires late is armed once more instead of
//!   declaring the member down: the node was not there to hear the
//!   refutation.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Codec, Message, PostcardCodec, ProbeNumber};

use super::identity::SwimId;
use crate::NodeId;

/// Highest health score: timeouts stretch at most nine-fold.
pub const MAX_SCORE: u32 = 8;

/// A timer this much late (or more) counts against this node's health.
pub const LATE: Duration = Duration::from_millis(100);

/// Pings remembered while their acks are awaited.
const PINGS: usize = 64;

/// Round trips (`rto`) that stretch the suspicion timeout.
const SUSPICION_RTOS: u32 = 10;

/// The short suspicion timeout, reached with every confirmation expected
/// (ADR 020), is the configured one divided by this...
const SHORT_DIVISOR: u32 = 4;

/// ...and at least this many round trips (`rto`): a live suspect's
/// refutation must have time to arrive.
const SHORT_RTOS: u32 = 4;

/// Round trips the probe period leaves after the direct probe timeout: the
/// indirect probes' two, and one of margin.
const PERIOD_RTOS: u32 = 3;

/// One member's round-trip estimate (RFC 6298).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtt {
    /// Smoothed round trip.
    pub srtt: Duration,
    /// Mean deviation.
    pub rttvar: Duration,
}

impl Rtt {
    fn first(sample: Duration) -> Self {
        Rtt {
            srtt: sample,
            rttvar: sample / 2,
        }
    }

    fn update(&mut self, sample: Duration) {
        let dev = self.srtt.abs_diff(sample);
        self.rttvar = (self.rttvar * 3 + dev) / 4;
        self.srtt = (self.srtt * 7 + sample) / 8;
    }

    /// `srtt + 4 · rttvar`.
    pub fn rto(&self) -> Duration {
        self.srtt + self.rttvar * 4
    }
}

/// The configured timeouts, the floor of the adapted ones.
#[derive(Debug, Clone, Copy)]
pub struct Base {
    /// Probe period.
    pub probe_period: Duration,
    /// Direct probe timeout.
    pub probe_rtt: Duration,
    /// Suspicion timeout.
    pub suspect_to_down: Duration,
}

/// Round trips per member and this node's health.
#[derive(Debug)]
pub struct Lifeguard {
    base: Base,
    rtts: HashMap<NodeId, Rtt>,
    /// Every sample, whoever answered.
    network: Option<Rtt>,
    /// Pings sent: (to, probe number, when, end of their probe round).
    pings: VecDeque<(SocketAddr, ProbeNumber, Instant, Instant)>,
    score: u32,
}

impl Lifeguard {
    /// Starts healthy, with no estimates.
    pub fn new(base: Base) -> Self {
        Lifeguard {
            base,
            rtts: HashMap::new(),
            network: None,
            pings: VecDeque::new(),
            score: 0,
        }
    }

    /// This node's health score (0 = healthy).
    pub fn score(&self) -> u32 {
        self.score
    }

    /// The estimate for `id`, if any probe of it was answered.
    pub fn rtt(&self, id: NodeId) -> Option<Rtt> {
        self.rtts.get(&id).copied()
    }

    fn multiplier(&self) -> u32 {
        1 + self.score
    }

    fn rto(&self, id: NodeId) -> Duration {
        let member = self.rtts.get(&id).map_or(Duration::ZERO, Rtt::rto);
        member.max(self.network.as_ref().map_or(Duration::ZERO, Rtt::rto))
    }

    /// The estimate over every member's answers.
    pub fn network(&self) -> Option<Rtt> {
        self.network
    }

    /// How long the direct probe of `id` waits for its ack.
    pub fn probe_timeout(&self, id: NodeId) -> Duration {
        self.base.probe_rtt.max(self.rto(id)) * self.multiplier()
    }

    /// The probe period while `id` is probed: the direct timeout, then
    /// room for the indirect probes.
    pub fn probe_period(&self, id: Option<NodeId>) -> Duration {
        let adapted = id.map_or(Duration::ZERO, |id| {
            self.probe_timeout(id) + self.rto(id) * PERIOD_RTOS * self.multiplier()
        });
        (self.base.probe_period * self.multiplier()).max(adapted)
    }

    /// How long `id` stays suspect before this node declares it down. Not
    /// stretched by the health score (as in memberlist, the score slows
    /// this node's probing, not its verdicts): a node that was itself
    /// paused took many seconds to see the next hang. A suspicion timer
    /// that fires late is armed again instead (the core).
    pub fn suspicion(&self, id: NodeId) -> Duration {
        self.base.suspect_to_down.max(self.rto(id) * SUSPICION_RTOS)
    }

    /// The suspicion timeout once every expected confirmation arrived
    /// (ADR 020): a quarter of the configured one, and at least four
    /// round trips, never above [`Lifeguard::suspicion`].
    pub fn suspicion_short(&self, id: NodeId) -> Duration {
        (self.base.suspect_to_down / SHORT_DIVISOR)
            .max(self.rto(id) * SHORT_RTOS)
            .min(self.suspicion(id))
    }

    /// A SWIM datagram this node sends to `to`.
    pub fn sent(&mut self, to: SocketAddr, body: &[u8], now: Instant) {
        let Ok(header) = Codec::<SwimId>::decode_header(&mut PostcardCodec, body) else {
            return;
        };
        if let Message::Ping(n) = header.message {
            if self.pings.len() == PINGS {
                self.pings.pop_front();
            }
            let round = self.probe_period(Some(header.dst.id));
            self.pings.push_back((to, n, now, now + round));
        }
    }

    /// A SWIM datagram this node received; `alive` says whether its
    /// sender is alive (not suspect, not down) in this node's view.
    pub fn received(&mut self, body: &[u8], now: Instant, alive: impl Fn(&SwimId) -> bool) {
        let Ok(header) = Codec::<SwimId>::decode_header(&mut PostcardCodec, body) else {
            return;
        };
        let Message::Ack(n) = header.message else {
            return;
        };
        let from = header.src.addr;
        let Some(k) = self
            .pings
            .iter()
            .position(|(to, m, _, _)| *to == from && *m == n)
        else {
            return;
        };
        let Some((_, _, at, round_end)) = self.pings.remove(k) else {
            return;
        };
        // An ack after its probe round ended mostly measures a stall (a
        // paused peer answering on SIGCONT the pings it got while
        // stopped), not the network: as TCP skips retransmitted segments
        // (Karn), it gives no sample. Taking those swelled a paused peer's
        // estimate until the next hang took 13 s to see. An ack after the
        // direct timeout but within the round is a sample: refusing those
        // too kept a network whose round trip exceeds the configured
        // probe timeout from ever being learnt (100 ms against 100 ms on
        // real processes: hundreds of false suspicions a minute). Nor is
        // an ack from a member this node holds suspect or down a sample:
        // a peer paused by SIGSTOP is one, and its acks on SIGCONT, taken
        // while the round stretched with them, drove hang detection to
        // 7–24 s (an earlier version; docs/BENCHMARKS.md).
        if now > round_end || !alive(&header.src) {
            return;
        }
        let sample = now.saturating_duration_since(at);
        self.rtts
            .entry(header.src.id)
            .and_modify(|r| r.update(sample))
            .or_insert_with(|| Rtt::first(sample));
        match self.network.as_mut() {
            Some(r) => r.update(sample),
            None => self.network = Some(Rtt::first(sample)),
        }
        // A probe answered: this node hears its peers in time.
        self.score = self.score.saturating_sub(1);
    }

    /// A timer fired `lateness` after it was due.
    pub fn timer_late(&mut self, lateness: Duration) {
        if lateness >= LATE {
            self.worse();
        }
    }

    /// Only this node's own late timers count against it. Lifeguard also
    /// counts being suspected, but the accuser is often the slow one: a
    /// paused process that wakes up fails its probes and accuses healthy
    /// members, and when that raised their scores, their probing slowed
    /// until a hang took 12 s to see (`bench failover --signal stop`).
    fn worse(&mut self) {
        self.score = (self.score + 1).min(MAX_SCORE);
    }

    /// Forgets the estimate of a member that is gone.
    pub fn forget(&mut self, id: NodeId) {
        self.rtts.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Base {
        Base {
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            suspect_to_down: Duration::from_millis(700),
        }
    }

    fn member(id: u64) -> SwimId {
        SwimId {
            id: NodeId(id),
            addr: SocketAddr::from(([10, 0, 0, id as u8], 7946)),
            generation: 1,
        }
    }

    fn frame(src: &SwimId, dst: &SwimId, message: Message<SwimId>) -> Vec<u8> {
        let mut buf = Vec::new();
        let header = foca::Header {
            src: *src,
            src_incarnation: 0,
            dst: *dst,
            message,
        };
        PostcardCodec
            .encode_header(&header, &mut buf)
            .expect("encode");
        buf
    }

    /// Feeds `n` probes answered after `rtt`.
    fn probe(l: &mut Lifeguard, me: &SwimId, peer: &SwimId, rtt: Duration, n: u8) {
        let t0 = Instant::now();
        for k in 0..n {
            let at = t0 + Duration::from_secs(u64::from(k));
            l.sent(peer.addr, &frame(me, peer, Message::Ping(k)), at);
            l.received(&frame(peer, me, Message::Ack(k)), at + rtt, |_| true);
        }
    }

    #[test]
    fn on_a_lan_the_configured_timeouts_stand() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        probe(&mut l, &me, &peer, Duration::from_millis(1), 20);
        assert_eq!(l.probe_timeout(peer.id), Duration::from_millis(150));
        assert_eq!(l.probe_period(Some(peer.id)), Duration::from_millis(300));
        assert_eq!(l.suspicion(peer.id), Duration::from_millis(700));
        assert_eq!(l.suspicion_short(peer.id), Duration::from_millis(175));
    }

    #[test]
    fn on_a_wan_they_stretch_to_the_measured_round_trip() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        probe(&mut l, &me, &peer, Duration::from_millis(100), 20);
        let rtt = l.rtt(peer.id).expect("sampled");
        assert_eq!(rtt.srtt, Duration::from_millis(100));
        let rto = rtt.rto();
        assert!(rto >= Duration::from_millis(100), "{rto:?}");
        // The indirect probes' two round trips fit in the period.
        let period = l.probe_period(Some(peer.id));
        assert!(period >= l.probe_timeout(peer.id) + rto * 2, "{period:?}");
        assert!(l.suspicion(peer.id) >= rto * 10);
        assert!(l.suspicion_short(peer.id) >= rto * 4);
        assert!(l.suspicion_short(peer.id) < l.suspicion(peer.id));
        // Another member, never measured, gets the network's figure.
        assert_eq!(l.suspicion(NodeId(3)), l.suspicion(peer.id));
        assert_eq!(
            l.network().map(|r| r.srtt),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn a_late_node_stretches_its_probing_and_recovers() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        l.timer_late(Duration::from_millis(10));
        assert_eq!(l.score(), 0, "a little late is on time");
        l.timer_late(Duration::from_secs(2));
        l.timer_late(Duration::from_millis(100));
        assert_eq!(l.score(), 2);
        assert_eq!(l.probe_timeout(peer.id), Duration::from_millis(450));
        assert_eq!(l.probe_period(Some(peer.id)), Duration::from_millis(900));
        // Verdicts are not slowed: the next hang is seen as fast.
        assert_eq!(l.suspicion(peer.id), Duration::from_millis(700));
        for _ in 0..20 {
            l.timer_late(Duration::from_secs(1));
        }
        assert_eq!(l.score(), MAX_SCORE);
        probe(&mut l, &me, &peer, Duration::from_millis(1), 3);
        assert_eq!(l.score(), MAX_SCORE - 3, "answered probes restore health");
    }

    /// A peer that was paused answers a ping seconds late: that is not a
    /// round trip, and must not stretch its timeouts (it did, and a
    /// second pause of the same peer took 7 s to detect instead of 1).
    #[test]
    fn an_ack_after_its_probe_round_gives_no_sample() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        probe(&mut l, &me, &peer, Duration::from_millis(1), 5);
        let before = l.rtt(peer.id);
        probe(&mut l, &me, &peer, Duration::from_secs(5), 1);
        assert_eq!(l.rtt(peer.id), before);
        assert_eq!(l.suspicion(peer.id), Duration::from_millis(700));
    }

    /// A round trip above the configured probe timeout (100 ms against
    /// 100 ms) is learnt from the acks that come after the direct timeout
    /// but within the probe round, and the timeouts stretch to it.
    #[test]
    fn a_round_trip_longer_than_the_probe_timeout_is_learnt() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(Base {
            probe_period: Duration::from_millis(200),
            probe_rtt: Duration::from_millis(100),
            suspect_to_down: Duration::from_millis(700),
        });
        probe(&mut l, &me, &peer, Duration::from_millis(1), 5);
        probe(&mut l, &me, &peer, Duration::from_millis(105), 20);
        let rtt = l.rtt(peer.id).expect("sampled");
        assert!(rtt.srtt >= Duration::from_millis(90), "{rtt:?}");
        assert!(l.probe_timeout(peer.id) >= Duration::from_millis(105));
        assert!(l.probe_period(Some(peer.id)) >= l.probe_timeout(peer.id) + rtt.rto() * 2);
    }

    /// A suspect's or a down member's ack is no sample, even within the
    /// round: a peer that was paused answers the pings it got meanwhile.
    #[test]
    fn an_ack_from_a_member_not_alive_gives_no_sample() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        probe(&mut l, &me, &peer, Duration::from_millis(1), 5);
        let before = l.rtt(peer.id);
        let at = Instant::now();
        l.sent(peer.addr, &frame(&me, &peer, Message::Ping(9)), at);
        let ack = frame(&peer, &me, Message::Ack(9));
        l.received(&ack, at + Duration::from_millis(250), |_| false);
        assert_eq!(l.rtt(peer.id), before);
    }

    #[test]
    fn an_ack_without_its_ping_and_garbage_are_ignored() {
        let (me, peer) = (member(1), member(2));
        let mut l = Lifeguard::new(base());
        l.received(&frame(&peer, &me, Message::Ack(7)), Instant::now(), |_| {
            true
        });
        l.received(b"not a header", Instant::now(), |_| true);
        l.sent(peer.addr, b"", Instant::now());
        assert!(l.rtt(peer.id).is_none());
        // Bounded: only the last pings are remembered.
        for k in 0..=255 {
            l.sent(
                peer.addr,
                &frame(&me, &peer, Message::Ping(k)),
                Instant::now(),
            );
        }
        assert!(l.pings.len() <= PINGS);
    }
}
