//! Membership settings: the SWIM timings passed to foca, and the port.

use std::time::Duration;

use super::defaults;

/// SWIM membership settings (passed to foca).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// UDP port of the membership protocol: the address seeds name. 0 = any.
    pub port: u16,
    /// Probe period.
    pub probe_period: Duration,
    /// Direct probe timeout.
    pub probe_rtt: Duration,
    /// Suspicion timeout.
    pub suspect_to_down: Duration,
    /// Members asked for indirect probes.
    pub indirect_probes: u32,
    /// Largest datagram.
    pub max_packet_size: u32,
    /// Period of extra gossip rounds.
    pub gossip_period: Duration,
    /// Crash detection through ICMP "port unreachable" (ADR 009): a
    /// refusal confirmed on a fresh socket declares the member down at
    /// once. Off: SWIM's timeouts alone.
    pub port_unreachable: bool,
    /// Replay window: datagrams sealed further than this from this node's
    /// clock, either way, are refused, and so is any datagram seen twice
    /// within it ([`super::freshness`]).
    pub replay_window: Duration,
}

impl MembershipConfig {
    /// For a LAN (the defaults): a crash is declared Down everywhere within
    /// about 1.5 s.
    pub fn lan() -> Self {
        MembershipConfig::default()
    }

    /// For round trips around 100 ms: probe 1 s, probe timeout 400 ms,
    /// suspicion 3 s ([`defaults::WAN_PROBE_PERIOD_MS`] says why).
    pub fn wan() -> Self {
        MembershipConfig {
            probe_period: Duration::from_millis(defaults::WAN_PROBE_PERIOD_MS),
            probe_rtt: Duration::from_millis(defaults::WAN_PROBE_RTT_MS),
            suspect_to_down: Duration::from_millis(defaults::WAN_SUSPECT_TO_DOWN_MS),
            ..MembershipConfig::default()
        }
    }
}

impl Default for MembershipConfig {
    /// The defaults of [`defaults`] (what a node uses when nothing is set).
    fn default() -> Self {
        MembershipConfig {
            port: defaults::MEMBERSHIP_PORT,
            probe_period: Duration::from_millis(defaults::PROBE_PERIOD_MS),
            probe_rtt: Duration::from_millis(defaults::PROBE_RTT_MS),
            suspect_to_down: Duration::from_millis(defaults::SUSPECT_TO_DOWN_MS),
            indirect_probes: defaults::INDIRECT_PROBES,
            max_packet_size: defaults::MAX_PACKET_SIZE,
            gossip_period: Duration::from_millis(defaults::GOSSIP_PERIOD_MS),
            port_unreachable: true,
            replay_window: Duration::from_millis(defaults::REPLAY_WINDOW_MS),
        }
    }
}
