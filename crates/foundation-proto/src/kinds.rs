//! The allocation of message kinds: which subsystem owns which range.
//!
//! A frame's `kind` routes it to an inbox. Kinds from [`RESERVED`] up are
//! Foundation's own; applications use kinds below it, and their inboxes
//! never see Foundation's. Each subsystem takes its range from here, so a
//! new one is one line in [`TABLE`], and the test below refuses overlaps.

use std::ops::RangeInclusive;

/// The first kind reserved for Foundation.
pub const RESERVED: u16 = 0xFE00;

/// The registry's messages.
pub const REGISTRY: RangeInclusive<u16> = 0xFE00..=0xFE0F;
/// Services: calls, casts and replies.
pub const SERVICES: RangeInclusive<u16> = 0xFE10..=0xFE1F;
/// The process manager: specs, digests and handoffs.
pub const PROCESS_MANAGER: RangeInclusive<u16> = 0xFE20..=0xFE2F;
/// Publish/subscribe.
pub const PUBSUB: RangeInclusive<u16> = 0xFE30..=0xFE3F;
/// Coordination: Raft's messages and requests forwarded to the leader.
pub const COORD: RangeInclusive<u16> = 0xFE40..=0xFE4F;
/// The distributed cache: reads, writes, replication and handoff.
pub const CACHE: RangeInclusive<u16> = 0xFE50..=0xFE5F;
/// Telemetry: nodes' reports about themselves (the dashboard).
pub const TELEMETRY: RangeInclusive<u16> = 0xFE60..=0xFE6F;
/// The node's clock-offset pings.
pub const CLOCK: RangeInclusive<u16> = 0xFF00..=0xFF0F;

/// Every allocation, by owner.
pub const TABLE: &[(&str, RangeInclusive<u16>)] = &[
    ("registry", REGISTRY),
    ("services", SERVICES),
    ("process manager", PROCESS_MANAGER),
    ("pubsub", PUBSUB),
    ("coord", COORD),
    ("cache", CACHE),
    ("telemetry", TELEMETRY),
    ("clock", CLOCK),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_reserved_and_do_not_overlap() {
        for (i, (a, ra)) in TABLE.iter().enumerate() {
            assert!(
                *ra.start() >= RESERVED,
                "{a} starts below the reserved kinds"
            );
            assert!(ra.start() <= ra.end(), "{a} is empty");
            for (b, rb) in &TABLE[i + 1..] {
                let apart = ra.end() < rb.start() || rb.end() < ra.start();
                assert!(apart, "{a} and {b} overlap");
            }
        }
    }
}
