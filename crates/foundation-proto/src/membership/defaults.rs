//! Membership defaults, each with the reason for its value (the
//! configuration's `defaults` re-exports them).

/// Membership (SWIM, UDP) port: 7946, the port memberlist and Serf use, so
/// firewall rules written for them fit.
pub const MEMBERSHIP_PORT: u16 = 7946;

/// SWIM probe period: 200 ms. A hung member is first probed within a few
/// periods (foca probes the members in a shuffled round), so the period
/// bounds hang detection: with 300 ms, `bench failover --signal stop` had
/// a p99 of 0.86–1.15 s over four runs, with 200 ms 0.76–0.95 s
/// (docs/BENCHMARKS.md). On a slow network Lifeguard stretches it (ADR
/// 019). memberlist's LAN default is 1 s / 500 ms / ~4 s.
pub const PROBE_PERIOD_MS: u64 = 200;

/// Time to wait for a direct probe ack before asking others to probe; at
/// least the measured round-trip timeout (ADR 019).
pub const PROBE_RTT_MS: u64 = 100;

/// How long a member stays Suspect before it is declared Down when no
/// other member confirms the suspicion; with every confirmation expected
/// it is a quarter of this (ADR 020).
pub const SUSPECT_TO_DOWN_MS: u64 = 700;

/// WAN preset ([`MembershipConfig::wan`](super::MembershipConfig::wan)),
/// for round trips around 100 ms: probe period 1 s. With 10% loss and
/// 50 ms each way for 30 s under pub/sub, whole nodes under turmoil saw 0
/// Down events in 10 of 10 seeds with 1 s / 400 ms / 3 s, against 0–22 per
/// run with the LAN defaults (docs/RELIABILITY.md). A crash takes about 4 s
/// to detect with them.
pub const WAN_PROBE_PERIOD_MS: u64 = 1_000;

/// WAN preset: direct probe timeout, long enough for the round trip.
pub const WAN_PROBE_RTT_MS: u64 = 400;

/// WAN preset: a suspect gets 3 s to refute.
pub const WAN_SUSPECT_TO_DOWN_MS: u64 = 3_000;

/// Members asked to probe indirectly when a direct probe fails.
pub const INDIRECT_PROBES: u32 = 3;

/// Largest membership datagram: 1400 bytes fits a 1500-byte Ethernet MTU
/// with IP, UDP and sealing overhead.
pub const MAX_PACKET_SIZE: u32 = 1400;

/// Interval of the extra gossip rounds that spread updates fast.
pub const GOSSIP_PERIOD_MS: u64 = 100;

/// Replay window: a membership datagram or beacon sealed more than 60 s
/// before or after this node's clock is refused. It is also the clock
/// skew tolerated between hosts: NTP keeps hosts within milliseconds, and
/// a host a minute off is broken in other ways too. It must stay under
/// [`FORGET_AFTER`](super::core::FORGET_AFTER) (300 s), during which foca
/// ignores a departed member's old datagrams.
pub const REPLAY_WINDOW_MS: u64 = 60_000;

/// Smallest replay window accepted (a second: datagrams are in flight for
/// milliseconds, but clocks differ).
pub const MIN_REPLAY_WINDOW_MS: u64 = 1_000;

/// Largest replay window accepted: under [`FORGET_AFTER`](super::core::FORGET_AFTER)
/// with a margin.
pub const MAX_REPLAY_WINDOW_MS: u64 = 240_000;
