use proptest::prelude::*;

use super::*;
use crate::NodeId;

fn nodes(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().map(|i| NodeId(*i)).collect()
}

#[test]
fn holders_are_distinct_owner_first_and_bounded() {
    let m = nodes(&[1, 2, 3, 4, 5]);
    let h = holders(b"k", &m, 2);
    assert_eq!(h.len(), 3);
    let mut d = h.clone();
    d.dedup();
    assert_eq!(d.len(), 3);
    // More replicas than members: every member, once.
    assert_eq!(holders(b"k", &m, 9).len(), 5);
    assert!(holders(b"k", &[], 1).is_empty());
    // The owner is the process manager's rendezvous winner for the same bytes.
    let owner = crate::process::placement::rendezvous("k", m.iter().copied());
    assert_eq!(Some(h[0]), owner);
}

#[test]
fn a_clock_stamps_after_what_it_made_and_saw() {
    let mut a = Clock::new(NodeId(1));
    let v1 = a.stamp(1_000);
    let v2 = a.stamp(1_000);
    assert!(v2 > v1);
    // The wall clock went back: the stamp still moves forward.
    let v3 = a.stamp(10);
    assert!(v3 > v2);
    let mut b = Clock::new(NodeId(2));
    b.observe(v3);
    let v4 = b.stamp(5);
    assert!(v3.is_superseded_by(v4));
    assert!(!v4.is_superseded_by(v3));
    // A restarted node (a new clock) stamps after its old writes once the
    // wall clock has moved on.
    let mut again = Clock::new(NodeId(1));
    assert!(again.stamp(2_000) > v2);
}

proptest! {
    /// Any order of the members gives the same holders.
    #[test]
    fn holders_ignore_member_order(ids in proptest::collection::hash_set(1u64..1_000, 1..12), key in any::<Vec<u8>>(), r in 0usize..4) {
        let mut m: Vec<NodeId> = ids.into_iter().map(NodeId).collect();
        let a = holders(&key, &m, r);
        m.reverse();
        prop_assert_eq!(&a, &holders(&key, &m, r));
        m.sort();
        prop_assert_eq!(&a, &holders(&key, &m, r));
    }

    /// A node joining changes a key's holders only by taking a place:
    /// the old holders keep their order, the last one may drop out.
    #[test]
    fn a_join_moves_only_what_the_newcomer_takes(ids in proptest::collection::hash_set(1u64..1_000, 1..10), new in 1_000u64..2_000, key in any::<Vec<u8>>(), r in 0usize..3) {
        let before: Vec<NodeId> = ids.into_iter().map(NodeId).collect();
        let mut after = before.clone();
        after.push(NodeId(new));
        let old = holders(&key, &before, r);
        let now = holders(&key, &after, r);
        let kept: Vec<NodeId> = now.iter().copied().filter(|n| n.0 != new).collect();
        prop_assert!(old.starts_with(&kept), "{:?} then {:?}", old, now);
    }

    /// After any change of members, every new holder that lacks the key is
    /// sent it by every old holder still present, and an old holder keeps
    /// its copy exactly when it is still a holder.
    #[test]
    fn handoff_reaches_every_new_holder(
        before in proptest::collection::hash_set(1u64..40, 1..8),
        after in proptest::collection::hash_set(1u64..40, 1..8),
        key in any::<Vec<u8>>(),
        r in 0usize..3,
    ) {
        let before: Vec<NodeId> = before.into_iter().map(NodeId).collect();
        let after: Vec<NodeId> = after.into_iter().map(NodeId).collect();
        let old = holders(&key, &before, r);
        let new = holders(&key, &after, r);
        for me in old.iter().filter(|n| after.contains(n)) {
            let h = handoff(*me, &old, &new);
            prop_assert_eq!(h.keep, new.contains(me));
            for n in &new {
                if n != me && !old.contains(n) {
                    prop_assert!(h.send_to.contains(n), "{:?} not sent to {:?}", me, n);
                }
            }
            prop_assert!(!h.send_to.contains(me));
        }
        // A node holding a copy it should not hold sends it to every
        // holder and drops it.
        if let Some(stray) = (40u64..50).map(NodeId).find(|n| !new.contains(n)) {
            let h = handoff(stray, &new, &new);
            prop_assert!(!h.keep);
            prop_assert_eq!(&h.send_to, &new);
        }
    }

    /// Versions are a total order that every node agrees on.
    #[test]
    fn versions_order_totally(a in any::<(u64, u64)>(), b in any::<(u64, u64)>()) {
        let va = Version { stamp: a.0, node: NodeId(a.1) };
        let vb = Version { stamp: b.0, node: NodeId(b.1) };
        prop_assert!(va == vb || va.is_superseded_by(vb) != vb.is_superseded_by(va));
    }
}

#[test]
fn one_claim_at_a_time_and_waiters_learn_the_outcome() {
    let t0 = std::time::Instant::now();
    let lease = std::time::Duration::from_secs(5);
    let mut c = Claims::new(2);
    let (a, b, d) = (NodeId(1), NodeId(2), NodeId(3));
    assert_eq!(c.claim(b"k", a, "a", t0, lease), Claimed::Granted);
    assert_eq!(c.claim(b"k", b, "b", t0, lease), Claimed::Wait);
    assert_eq!(c.claim(b"k", d, "d", t0, lease), Claimed::Wait);
    // A release by a node that does not hold the claim changes nothing.
    assert!(c.release(b"k", b, t0).is_empty());
    // The holder gives up: the first waiter computes, the other waits on.
    assert_eq!(c.release(b"k", a, t0), vec![("b", Outcome::Granted)]);
    // The new holder dies: the last waiter computes.
    assert_eq!(c.node_down(b, t0), vec![("d", Outcome::Granted)]);
    assert_eq!(c.claim(b"k", a, "a2", t0, lease), Claimed::Wait);
    // The value is stored: every waiter reads it, and the claim is gone.
    assert_eq!(c.stored(b"k"), vec![("a2", Outcome::Stored)]);
    assert!(c.is_empty());
    // The table is bounded.
    assert_eq!(c.claim(b"x", a, "x", t0, lease), Claimed::Granted);
    assert_eq!(c.claim(b"y", a, "y", t0, lease), Claimed::Granted);
    assert_eq!(c.claim(b"z", a, "z", t0, lease), Claimed::Full);
    // A lease that runs out passes the claim on; with no waiter it ends.
    assert_eq!(c.claim(b"x", b, "bx", t0, lease), Claimed::Wait);
    assert_eq!(c.next_expiry(), Some(t0 + lease));
    let later = t0 + lease;
    let mut expired = c.expire(later);
    expired.sort_by_key(|(w, _)| *w);
    assert_eq!(expired, vec![("bx", Outcome::Granted)]);
    assert_eq!(c.len(), 1);
    assert!(c.expire(later + lease).is_empty());
    assert!(c.is_empty());
}

proptest! {
    /// Whatever happens, at most one node holds a key's claim, a waiter
    /// is answered at most once, and the table holds a claim exactly when
    /// a model of it says someone computes.
    #[test]
    fn at_most_one_holder_and_no_waiter_forgotten(ops in proptest::collection::vec((0u8..5, 1u64..5, 0u64..20), 1..80)) {
        let lease = std::time::Duration::from_millis(100);
        let t0 = std::time::Instant::now();
        let mut c: Claims<u32> = Claims::new(16);
        // The model: who computes, until when, and who waits.
        let mut holder: Option<(NodeId, std::time::Instant)> = None;
        let mut waiting: Vec<(u32, NodeId)> = Vec::new();
        let mut next = 0u32;
        for (op, node, ms) in ops {
            let now = t0 + std::time::Duration::from_millis(ms * 10);
            let node = NodeId(node);
            let answered = match op {
                0 => {
                    next += 1;
                    match c.claim(b"k", node, next, now, lease) {
                        Claimed::Granted => {
                            prop_assert!(holder.is_none());
                            holder = Some((node, now + lease));
                        }
                        Claimed::Wait => {
                            prop_assert!(holder.is_some());
                            waiting.push((next, node));
                        }
                        Claimed::Full => prop_assert!(false, "one key cannot fill 16"),
                    }
                    Vec::new()
                }
                1 => {
                    holder = None;
                    let r = c.stored(b"k");
                    prop_assert!(r.iter().all(|(_, o)| *o == Outcome::Stored));
                    prop_assert_eq!(r.len(), waiting.len());
                    waiting.clear();
                    Vec::new()
                }
                2 => {
                    if holder.is_some_and(|(h, _)| h == node) {
                        holder = None;
                    }
                    c.release(b"k", node, now)
                }
                3 => {
                    waiting.retain(|(_, n)| *n != node);
                    if holder.is_some_and(|(h, _)| h == node) {
                        holder = None;
                    }
                    c.node_down(node, now)
                }
                _ => {
                    if holder.is_some_and(|(_, until)| until <= now) {
                        holder = None;
                    }
                    c.expire(now)
                }
            };
            for (w, outcome) in answered {
                prop_assert_eq!(outcome, Outcome::Granted);
                prop_assert!(holder.is_none(), "granted while {:?} computes", holder);
                prop_assert_eq!(waiting.first().map(|(x, _)| *x), Some(w), "not the first waiter");
                let (_, n) = waiting.remove(0);
                holder = Some((n, now + lease));
            }
            if holder.is_none() {
                // No one computes: a claim left behind would block the key.
                prop_assert!(waiting.is_empty());
                prop_assert!(c.is_empty());
            } else {
                prop_assert_eq!(c.len(), 1);
            }
        }
    }
}

fn v(stamp: u64) -> Version {
    Version {
        stamp,
        node: NodeId(1),
    }
}

#[test]
fn a_fetch_crossing_an_invalidation_is_not_kept() {
    let mut f = near::Fetches::default();
    let t = f.begin(b"k");
    let other = f.begin(b"other");
    // The write at 5 is invalidated while the fetch is out...
    f.invalidated(b"k", v(5));
    // ...so the old answer (3) is not kept, and a new one (5) would be.
    assert!(!f.finish(t, Some(v(3))));
    let t2 = f.begin(b"k");
    f.invalidated(b"k", v(5));
    assert!(f.finish(t2, Some(v(5))));
    // Another key's fetch is untouched; a miss is never kept.
    assert!(f.finish(other, Some(v(1))));
    let t3 = f.begin(b"k");
    assert!(!f.finish(t3, None));
    let t4 = f.begin(b"k");
    f.abandon(t4);
    assert!(f.is_empty());
    assert!(near::drops(v(3), v(5)));
    assert!(!near::drops(v(5), v(5)));
    assert!(!near::drops(v(6), v(5)));
}

proptest! {
    /// Whatever the interleaving of fetch answers and invalidations, a
    /// copy is kept exactly when it is at least as new as every
    /// invalidation of its key that arrived while it was fetched, and
    /// never one older than that.
    #[test]
    fn the_near_tier_never_keeps_a_copy_older_than_an_invalidation_it_crossed(
        events in proptest::collection::vec((0u8..3, 1u64..50), 1..60),
    ) {
        let mut f = near::Fetches::default();
        // Each open fetch with the newest invalidation it has crossed.
        let mut open: Vec<(near::Ticket, Version)> = Vec::new();
        for (op, stamp) in events {
            match op {
                0 => open.push((f.begin(b"k"), Version::ZERO)),
                1 => {
                    f.invalidated(b"k", v(stamp));
                    for (_, crossed) in &mut open {
                        *crossed = (*crossed).max(v(stamp));
                    }
                }
                _ => {
                    if let Some((t, crossed)) = open.pop() {
                        let kept = f.finish(t, Some(v(stamp)));
                        prop_assert_eq!(kept, v(stamp) >= crossed);
                    }
                }
            }
        }
        prop_assert_eq!(f.len(), open.len());
    }
}
