//! How a message picks its channel.

use crate::transport::{Channel, DATA_LANES};

/// How urgent a message is, when it names no channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// Events below the threshold, data above it.
    #[default]
    Normal,
    /// The control channel, ahead of everything else.
    High,
}

/// Options of one broadcast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Publish {
    /// The channel; `None` lets [`pick_channel`] choose.
    pub channel: Option<Channel>,
    /// Used when `channel` is `None`.
    pub priority: Priority,
}

impl Publish {
    /// On `channel`.
    pub fn on(channel: Channel) -> Self {
        Publish {
            channel: Some(channel),
            ..Publish::default()
        }
    }

    /// On control (high priority).
    pub fn high_priority() -> Self {
        Publish {
            channel: None,
            priority: Priority::High,
        }
    }
}

/// The channel rule: a named channel wins; otherwise high priority goes to
/// control, a body over `data_threshold` bytes (`channels.data_threshold`,
/// default 10 KiB) to data, and the rest to events.
pub fn pick_channel(opts: Publish, len: usize, data_threshold: usize) -> Channel {
    match (opts.channel, opts.priority) {
        (Some(c), _) => c,
        (None, Priority::High) => Channel::Control,
        (None, Priority::Normal) if len > data_threshold => Channel::Data,
        (None, Priority::Normal) => Channel::Events,
    }
}

/// The data lane of a topic: FNV-1a of its name. Every message of a topic
/// takes the same lane, so it stays in order; topics spread over lanes, so
/// a huge message on one topic does not hold the others.
pub fn lane_of(topic: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(DATA_LANES)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_rule() {
        let t = 10 * 1024;
        assert_eq!(pick_channel(Publish::default(), 100, t), Channel::Events);
        assert_eq!(pick_channel(Publish::default(), t, t), Channel::Events);
        assert_eq!(pick_channel(Publish::default(), t + 1, t), Channel::Data);
        assert_eq!(
            pick_channel(Publish::high_priority(), 1 << 20, t),
            Channel::Control
        );
        assert_eq!(
            pick_channel(Publish::on(Channel::Telemetry), 1 << 20, t),
            Channel::Telemetry
        );
        assert_eq!(
            pick_channel(Publish::on(Channel::Data), 1, t),
            Channel::Data
        );
    }

    #[test]
    fn lanes_are_pinned_and_spread() {
        // Deterministic: a topic always takes the same lane.
        assert_eq!(lane_of(""), (0x811c_9dc5u32 % 8) as u8);
        assert_eq!(lane_of("a"), lane_of("a"));
        let used: std::collections::HashSet<u8> =
            (0..64).map(|i| lane_of(&format!("topic-{i}"))).collect();
        assert_eq!(used.len(), usize::from(DATA_LANES));
    }
}
