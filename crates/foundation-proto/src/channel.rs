//! The four channels and their priorities (ADR 003).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A logical channel between two nodes. Each is carried on its own QUIC
/// stream, and QUIC sends higher-priority streams first, so a large data
/// message never delays a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    /// Membership-critical and request/reply traffic. Highest priority.
    Control,
    /// Cluster events (registry changes, pub/sub).
    Events,
    /// Metrics and traces.
    Telemetry,
    /// Bulk data. Lowest priority.
    Data,
}

impl Channel {
    /// All channels, highest priority first.
    pub const ALL: [Channel; 4] = [
        Channel::Control,
        Channel::Events,
        Channel::Telemetry,
        Channel::Data,
    ];

    /// Index 0..4, for per-channel arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// quinn stream priority (higher is sent first).
    pub fn priority(self) -> i32 {
        match self {
            Channel::Control => 30,
            Channel::Events => 20,
            Channel::Telemetry => 10,
            Channel::Data => 0,
        }
    }

    /// Lower-case name, as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Control => "control",
            Channel::Events => "events",
            Channel::Telemetry => "telemetry",
            Channel::Data => "data",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_strictly_ordered() {
        for pair in Channel::ALL.windows(2) {
            assert!(pair[0].priority() > pair[1].priority());
        }
        for (i, c) in Channel::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
