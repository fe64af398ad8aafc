//! Pub/sub in the simulation: interest replicated as registry entries (as
//! `node.pubsub().subscribe` does), routing by the publisher's registry
//! view, and delivery checked for duplicates.

use foundation::NodeId;
use foundation_proto::registry::EntryKind;

use super::world::{Ev, Sim};

impl Sim {
    /// Node `i` subscribes to `topic` (its interest is replicated through
    /// the registry, as `node.pubsub().subscribe` does).
    pub fn subscribe(&mut self, i: usize, topic: &str) {
        let at = self.now_ms();
        let node = &mut self.nodes[i];
        node.subscribed.insert(topic.to_owned());
        let entry = node.entry(topic, EntryKind::Interest, at);
        if let Ok(Some(delta)) = node.registry.register(entry) {
            self.publish_delta(i, delta);
        }
    }

    /// Node `i` broadcasts the next message of its sequence on `topic`:
    /// to its own subscription, and once to each node whose interest its
    /// registry holds.
    pub fn publish(&mut self, i: usize, topic: &str) {
        if !self.nodes[i].alive || self.nodes[i].paused {
            return;
        }
        let seq = {
            let s = self.next_pub.entry(i).or_insert(0);
            *s += 1;
            *s
        };
        self.expected += self
            .nodes
            .iter()
            .filter(|n| n.alive && !n.paused && n.subscribed.contains(topic))
            .count() as u64;
        let from = self.nodes[i].id;
        if self.nodes[i].subscribed.contains(topic) {
            self.deliver(i, from, topic, seq);
        }
        for to in self.nodes[i].registry.interested(topic) {
            if to == from {
                continue;
            }
            let Some(j) = self.index_of_id(to) else {
                continue;
            };
            self.sent += 1;
            if let Some(at) = self.net.stream(i, j, self.now) {
                let inc = self.nodes[j].incarnation;
                let topic = topic.to_owned();
                self.push(
                    at,
                    Ev::Message {
                        from,
                        to: j,
                        inc,
                        topic,
                        seq,
                    },
                );
            }
        }
    }

    pub(crate) fn deliver(&mut self, i: usize, from: NodeId, topic: &str, seq: u64) {
        let node = &mut self.nodes[i];
        if !node.subscribed.contains(topic) {
            return;
        }
        let last = node.last_seq.entry((from, topic.to_owned())).or_insert(0);
        if seq <= *last {
            self.violations.push(format!(
                "at {:?}: node {i} got message {seq} of {from} on {topic:?} after {}: delivered twice or out of order",
                self.now, *last
            ));
            return;
        }
        *last = seq;
        node.delivered += 1;
        self.delivered += 1;
    }
}
