//! Pub/sub counters, per topic and for the node.
//!
//! At most [`MAX_TOPICS`] topics get their own counters; later ones share
//! the `_other` row, so a flood of topic names cannot grow memory or the
//! metrics page without bound.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Topics with their own counters.
pub const MAX_TOPICS: usize = 1024;
/// The row shared by topics beyond [`MAX_TOPICS`].
pub const OTHER_TOPIC: &str = "_other";

/// One topic's counters (monotonic).
#[derive(Debug, Default)]
pub(crate) struct TopicCounters {
    pub(crate) published: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// A copy of one topic's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TopicStats {
    /// Broadcasts from this node.
    pub published: u64,
    /// Items queued for other nodes (one per interested node).
    pub sent: u64,
    /// Their bytes (item encoding, before compression).
    pub sent_bytes: u64,
    /// Items received from other nodes.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Deliveries to local subscriptions.
    pub delivered: u64,
    /// Messages lost: overrun in a slow subscription's buffer, not queued
    /// for a peer within `pubsub.publish_timeout_ms`, or queued but not
    /// sent because the peer could not be reached (reconnecting, backing
    /// off, unknown) or the node stopped. Such a message also counts in
    /// `sent`, which counts what was queued.
    pub dropped: u64,
}

impl TopicCounters {
    fn load(&self) -> TopicStats {
        TopicStats {
            published: self.published.load(Relaxed),
            sent: self.sent.load(Relaxed),
            sent_bytes: self.sent_bytes.load(Relaxed),
            received: self.received.load(Relaxed),
            received_bytes: self.received_bytes.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}

/// Every topic's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    topics: Mutex<HashMap<String, Arc<TopicCounters>>>,
    /// Pub/sub frames (or parts of them) rejected as malformed.
    pub(crate) rejected: AtomicU64,
}

impl Counters {
    /// The counters of `topic` (or of `_other` past the cap).
    pub(crate) fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let mut map = self.topics.locked();
        if let Some(c) = map.get(topic) {
            return c.clone();
        }
        let key = if map.len() < MAX_TOPICS {
            topic
        } else {
            OTHER_TOPIC
        };
        map.entry(key.to_owned()).or_default().clone()
    }

    /// A copy of `topic`'s counters, if it has any.
    pub(crate) fn get(&self, topic: &str) -> Option<TopicStats> {
        let map = self.topics.locked();
        map.get(topic).map(|c| c.load())
    }

    /// Every topic's counters, sorted by topic.
    pub(crate) fn all(&self) -> Vec<(String, TopicStats)> {
        let map = self.topics.locked();
        let mut all: Vec<_> = map.iter().map(|(t, c)| (t.clone(), c.load())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_past_the_cap_share_one_row() {
        let c = Counters::default();
        for i in 0..MAX_TOPICS + 10 {
            c.topic(&format!("t{i}")).published.fetch_add(1, Relaxed);
        }
        let all = c.all();
        assert_eq!(all.len(), MAX_TOPICS + 1);
        assert_eq!(c.get(OTHER_TOPIC).map(|s| s.published), Some(10));
        assert_eq!(c.get("t0").map(|s| s.published), Some(1));
    }
}
