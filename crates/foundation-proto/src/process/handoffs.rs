//! Handoffs received and not yet used: the state an instance's previous
//! holder sent to the node it chose as the next one.
//!
//! A handoff is only good while no other instance has run since it was
//! made. Kept past that, it rolls the service back: a node that received
//! a handoff, did not start the instance (its view placed it elsewhere)
//! and became the owner much later would start from the old state while
//! the current holder hands off the new one, and the two run at once
//! until conflict resolution stops one, whose acknowledged work is lost.
//! So a handoff is dropped as soon as the registry names a holder other
//! than this node and the handoff's sender, and one this node does not
//! place is dropped after [`KEEP`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use std::time::Instant;

use crate::NodeId;

/// How long a handoff for an instance this node does not place is kept
/// (its spec, or the membership change that makes this node the owner,
/// may still be on the way).
pub const KEEP: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Handoff {
    state: Option<Bytes>,
    from: NodeId,
    at: Instant,
}

/// Handoffs by instance name, at most `limit`.
#[derive(Debug)]
pub struct Handoffs {
    by_instance: HashMap<String, Handoff>,
    limit: usize,
}

impl Handoffs {
    /// At most `limit` pending handoffs.
    pub fn new(limit: usize) -> Self {
        Handoffs {
            by_instance: HashMap::new(),
            limit,
        }
    }

    /// Keeps `state` for `instance`, replacing an earlier one; false (and
    /// nothing kept) when `limit` handoffs are pending already.
    pub fn receive(
        &mut self,
        instance: &str,
        state: Option<Bytes>,
        from: NodeId,
        now: Instant,
    ) -> bool {
        if self.by_instance.len() >= self.limit && !self.by_instance.contains_key(instance) {
            return false;
        }
        self.by_instance.insert(
            instance.to_owned(),
            Handoff {
                state,
                from,
                at: now,
            },
        );
        true
    }

    /// Whether a handoff for `instance` is pending.
    pub fn has(&self, instance: &str) -> bool {
        self.by_instance.contains_key(instance)
    }

    /// Takes the state handed off for `instance`, if any.
    pub fn take(&mut self, instance: &str) -> Option<Bytes> {
        self.by_instance.remove(instance).and_then(|h| h.state)
    }

    /// Drops the handoffs that are stale at `now`: another holder than
    /// `me` and the sender is registered (`holder`), or this node does not
    /// place the instance (`owner`) and the handoff is older than [`KEEP`].
    /// Returns the instances dropped.
    pub fn prune(
        &mut self,
        me: NodeId,
        now: Instant,
        holder: impl Fn(&str) -> Option<NodeId>,
        owner: impl Fn(&str) -> Option<NodeId>,
    ) -> Vec<String> {
        let mut dropped = Vec::new();
        self.by_instance.retain(|inst, h| {
            let superseded = holder(inst).is_some_and(|n| n != me && n != h.from);
            let unclaimed = owner(inst) != Some(me) && now.duration_since(h.at) >= KEEP;
            if superseded || unclaimed {
                dropped.push(inst.clone());
            }
            !(superseded || unclaimed)
        });
        dropped
    }

    /// Pending handoffs.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_instance.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = NodeId(1);
    const SENDER: NodeId = NodeId(2);
    const OTHER: NodeId = NodeId(3);

    fn one(now: Instant) -> Handoffs {
        let mut h = Handoffs::new(8);
        assert!(h.receive("leader", Some(Bytes::from_static(b"7")), SENDER, now));
        h
    }

    #[test]
    fn a_handoff_survives_while_its_sender_or_nobody_holds_the_instance() {
        let t0 = Instant::now();
        let mut h = one(t0);
        // The sender keeps its registration until we acknowledge; then
        // there is a gap until we (or the owner we become) register.
        for holder in [Some(SENDER), None, Some(ME)] {
            let dropped = h.prune(ME, t0 + Duration::from_secs(1), |_| holder, |_| Some(ME));
            assert!(dropped.is_empty(), "holder {holder:?}");
        }
        assert_eq!(h.take("leader"), Some(Bytes::from_static(b"7")));
        assert!(!h.has("leader"));
    }

    #[test]
    fn another_holder_makes_a_handoff_stale_at_once() {
        let t0 = Instant::now();
        let mut h = one(t0);
        let dropped = h.prune(ME, t0, |_| Some(OTHER), |_| Some(ME));
        assert_eq!(dropped, vec!["leader".to_owned()]);
        assert!(
            !h.has("leader"),
            "an instance ran elsewhere since: the state is old"
        );
    }

    #[test]
    fn an_unclaimed_handoff_is_dropped_after_keep_and_a_claimed_one_is_not() {
        let t0 = Instant::now();
        let later = t0 + KEEP;
        let mut claimed = one(t0);
        assert!(claimed.prune(ME, later, |_| None, |_| Some(ME)).is_empty());
        let mut unclaimed = one(t0);
        assert!(unclaimed
            .prune(
                ME,
                later - Duration::from_millis(1),
                |_| None,
                |_| Some(OTHER)
            )
            .is_empty());
        assert_eq!(
            unclaimed.prune(ME, later, |_| None, |_| Some(OTHER)).len(),
            1
        );
    }

    #[test]
    fn at_most_limit_instances_wait_and_a_newer_state_replaces_an_older() {
        let t0 = Instant::now();
        let mut h = Handoffs::new(2);
        assert!(h.receive("a", None, SENDER, t0));
        assert!(h.receive("b", None, SENDER, t0));
        assert!(!h.receive("c", None, SENDER, t0), "bounded");
        assert!(h.receive("a", Some(Bytes::from_static(b"2")), OTHER, t0));
        assert_eq!(h.len(), 2);
        assert_eq!(h.take("a"), Some(Bytes::from_static(b"2")));
    }
}
