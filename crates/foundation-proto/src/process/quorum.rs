//! Split-brain policy: whether this side of a partition may run
//! singletons and shards.
//!
//! - keep-majority (default): run only with a strict majority of the last
//!   agreed membership (the base); on an exact half, the side holding the
//!   lowest node id of the base wins. Members that left gracefully leave
//!   the base at once, so a rolling restart never loses quorum. Otherwise
//!   the base follows the view once the view has been stable for
//!   `stable_after`: a partition is detected one member at a time, and
//!   shrinking the base at each step would let a minority reach a
//!   "majority" of what remains; a node that crashes right after joining
//!   never enters it. While this side keeps quorum, the base also follows
//!   each member on its own: one active for `stable_after` enters, one
//!   gone for as long leaves. Without this, crash-restarts closer
//!   together than `stable_after` (the view never stable) left the base
//!   full of dead ids until no side had a majority of it, for good (the
//!   simulation's rolling SIGKILL restart of 100 nodes, one every 2 s,
//!   found it). A partition's minority must lose quorum before its first
//!   detected departure has been gone `stable_after`: it sees the whole
//!   other side go down within about one suspicion timeout plus gossip
//!   (membership declares stale suspicions down on every node), and the
//!   simulated 40|60 partitions measure it. A side without quorum keeps
//!   its base until it regains a majority of it.
//!
//!   At boot, keep-majority has no base to count against. A node that has
//!   never seen a peer has no quorum: it may be one of several nodes that
//!   each found nobody (a DNS, Consul or etcd outage; Kubernetes listing
//!   only ready pods), and each would run every singleton. It may run
//!   alone only when configured to ([`Boot`]): static discovery without
//!   seeds, or `process.expected_members = 1`. With `expected_members = n`
//!   it needs a strict majority of `n` until its first base is agreed.
//! - static-quorum(n): run only while at least `n` members are active.
//! - keep-all: always run; after a heal, duplicates are resolved (one
//!   winner per name, the losers stop).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::NodeId;

/// What keep-majority may assume before this node has seen a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Boot {
    /// How many members the cluster is meant to have
    /// (`process.expected_members`); 0 when not said.
    pub expected_members: usize,
    /// The node runs alone on purpose (static discovery without seeds).
    pub alone_by_config: bool,
}

/// The configured policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitBrain {
    /// A strict majority of the last agreed membership (the default).
    #[default]
    KeepMajority,
    /// At least this many active members.
    StaticQuorum(usize),
    /// Availability first: every side runs.
    KeepAll,
}

/// Tracks the membership base for keep-majority. Sans-IO: the caller
/// passes `now`.
#[derive(Clone, Debug)]
pub struct Quorum {
    policy: SplitBrain,
    stable_after: Duration,
    base: BTreeSet<NodeId>,
    view: BTreeSet<NodeId>,
    view_since: Option<Instant>,
    /// A stable view has set the base at least once.
    confirmed: bool,
    /// Active members outside the base, and since when (continuously).
    arrived: HashMap<NodeId, Instant>,
    /// Base members not active, and since when.
    departed: HashMap<NodeId, Instant>,
    boot: Boot,
    /// Another member has been active at some point.
    seen_peer: bool,
}

/// The stability window keep-majority waits before the base follows the
/// view: longer than the spread between the detections of the members of
/// one partition (two SWIM rounds of probe and suspicion, plus a round
/// trip), from the membership timings.
pub fn stable_window(
    probe_period: Duration,
    suspect_to_down: Duration,
    probe_rtt: Duration,
) -> Duration {
    2 * (probe_period + suspect_to_down) + probe_rtt
}

impl Quorum {
    /// A tracker for `policy`; departed members leave the base after the
    /// view has not changed for `stable_after`.
    pub fn new(policy: SplitBrain, stable_after: Duration) -> Self {
        Quorum {
            policy,
            stable_after,
            base: BTreeSet::new(),
            view: BTreeSet::new(),
            view_since: None,
            confirmed: false,
            arrived: HashMap::new(),
            departed: HashMap::new(),
            boot: Boot::default(),
            seen_peer: false,
        }
    }

    /// What keep-majority may assume at boot (default: nothing, so a node
    /// that has never seen a peer has no quorum).
    pub fn with_boot(mut self, boot: Boot) -> Self {
        self.boot = boot;
        self
    }

    /// Whether keep-majority withholds quorum because no base is agreed
    /// yet and the boot rule does not let this view hold it (for the log).
    pub fn waiting_for_peers(&self) -> bool {
        self.policy == SplitBrain::KeepMajority
            && !self.confirmed
            && !self.boot_allows(self.view.len())
    }

    /// Whether, before the first base is agreed, `active` members may hold
    /// quorum.
    fn boot_allows(&self, active: usize) -> bool {
        match self.boot.expected_members {
            0 => self.seen_peer || self.boot.alone_by_config,
            n => 2 * active > n,
        }
    }

    /// The policy.
    pub fn policy(&self) -> SplitBrain {
        self.policy
    }

    /// A member left gracefully: it no longer counts.
    pub fn left(&mut self, id: NodeId) {
        self.base.remove(&id);
    }

    /// Updates with the active members (this node included) at `now`;
    /// whether this side has quorum.
    pub fn update(&mut self, active: &BTreeSet<NodeId>, now: Instant) -> bool {
        if self.view_since.is_none() || &self.view != active {
            self.view = active.clone();
            self.view_since = Some(now);
        }
        match self.policy {
            SplitBrain::KeepAll => true,
            SplitBrain::StaticQuorum(n) => active.len() >= n,
            SplitBrain::KeepMajority => {
                if active.len() > 1 {
                    self.seen_peer = true;
                }
                if !self.confirmed && !self.boot_allows(active.len()) {
                    // No base yet: it starts from the first view that may
                    // hold quorum.
                    self.base.clear();
                    return false;
                }
                let stable = self
                    .view_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= self.stable_after);
                if self.base.is_empty() {
                    // Everyone counted left gracefully: start again from
                    // the current view.
                    self.base = active.clone();
                    return true;
                }
                if !self.confirmed {
                    // Formation: until a view has been stable once, the
                    // base is the current view and every side runs (a
                    // partition during formation is not protected, ADR
                    // 008). A crash during formation must not leave the
                    // survivors counting against a partial first view.
                    self.base = active.clone();
                    self.confirmed = stable;
                    return true;
                }
                let present = self.base.intersection(active).count();
                let total = self.base.len();
                let quorum = 2 * present > total
                    || (2 * present == total
                        && self.base.first().is_some_and(|low| active.contains(low)));
                // The base follows the view only once the view is stable:
                // departures detected one at a time must not shrink it
                // step by step, and joiners that crash at once must not
                // swell it.
                self.track(active, now);
                if quorum && stable {
                    self.base = active.clone();
                } else if quorum {
                    self.follow_members(now);
                }
                quorum
            }
        }
    }

    /// Records since when each member outside the base has been active
    /// and each base member has been gone (bounded by the view and the
    /// base).
    fn track(&mut self, active: &BTreeSet<NodeId>, now: Instant) {
        let base = &self.base;
        self.arrived
            .retain(|id, _| active.contains(id) && !base.contains(id));
        self.departed
            .retain(|id, _| base.contains(id) && !active.contains(id));
        for id in active.difference(base) {
            self.arrived.entry(*id).or_insert(now);
        }
        for id in base.difference(active) {
            self.departed.entry(*id).or_insert(now);
        }
    }

    /// With quorum but no stable view: members active for `stable_after`
    /// enter the base, members gone for as long leave it.
    fn follow_members(&mut self, now: Instant) {
        let after = self.stable_after;
        let aged = |since: &Instant| now.saturating_duration_since(*since) >= after;
        let base = &mut self.base;
        self.arrived.retain(|id, since| {
            let enters = aged(since);
            if enters {
                base.insert(*id);
            }
            !enters
        });
        self.departed.retain(|id, since| {
            let leaves = aged(since);
            if leaves {
                base.remove(id);
            }
            !leaves
        });
    }

    /// The membership keep-majority counts against.
    pub fn base(&self) -> &BTreeSet<NodeId> {
        &self.base
    }

    /// Whether a stable view has set the base (before that, during
    /// formation, every side keeps quorum).
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STABLE: Duration = Duration::from_secs(2);

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|i| NodeId(*i)).collect()
    }

    /// A keep-majority tracker whose base is `base`, settled.
    fn settled(base: &[u64], t0: Instant) -> Quorum {
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE);
        q.update(&set(base), t0);
        q.update(&set(base), t0 + STABLE);
        assert_eq!(q.base(), &set(base));
        q
    }

    #[test]
    fn keep_majority_table() {
        // (base, active, has quorum)
        let table: &[(&[u64], &[u64], bool)] = &[
            (&[1, 2, 3], &[1, 2, 3], true),
            (&[1, 2, 3], &[1, 2], true),
            (&[1, 2, 3], &[3], false),
            (&[1, 2, 3, 4, 5], &[1, 2], false),
            (&[1, 2, 3, 4, 5], &[3, 4, 5], true),
            (&[1, 2, 3, 4], &[1, 2], true),
            (&[1, 2, 3, 4], &[3, 4], false),
            (&[1, 2], &[2], false),
            (&[1, 2], &[1], true),
        ];
        let t0 = Instant::now();
        for (base, active, want) in table {
            let mut q = settled(base, t0);
            let t = t0 + 2 * STABLE;
            assert_eq!(
                q.update(&set(active), t),
                *want,
                "base {base:?} active {active:?}"
            );
        }
    }

    #[test]
    fn a_partition_detected_one_member_at_a_time_leaves_the_minority_without_quorum() {
        // 5 nodes split 2|3; the minority {1,2} notices 3, 4, 5 go down in
        // turn, 400 ms apart.
        let t0 = Instant::now();
        let mut q = settled(&[1, 2, 3, 4, 5], t0);
        let t = t0 + 3 * STABLE;
        let ms = Duration::from_millis;
        assert!(q.update(&set(&[1, 2, 4, 5]), t));
        assert!(q.update(&set(&[1, 2, 5]), t + ms(400)));
        assert!(!q.update(&set(&[1, 2]), t + ms(800)));
        assert!(!q.update(&set(&[1, 2]), t + ms(800) + 10 * STABLE));
        // The three on the other side keep it, and after a stable spell
        // count against themselves.
        let mut other = settled(&[1, 2, 3, 4, 5], t0);
        assert!(other.update(&set(&[2, 3, 4, 5]), t));
        assert!(other.update(&set(&[3, 4, 5]), t + ms(400)));
        assert!(other.update(&set(&[3, 4, 5]), t + ms(400) + STABLE));
        assert_eq!(other.base(), &set(&[3, 4, 5]));
    }

    #[test]
    fn members_that_left_do_not_count_so_rolling_restarts_keep_quorum() {
        let t0 = Instant::now();
        let mut q = settled(&[1, 2, 3], t0);
        q.left(NodeId(1));
        q.left(NodeId(2));
        assert!(q.update(&set(&[3]), t0 + STABLE));
        assert!(q.update(&set(&[3, 4]), t0 + STABLE));
        q.left(NodeId(3));
        assert!(q.update(&set(&[4]), t0 + STABLE));
    }

    #[test]
    fn crashes_spread_over_time_keep_quorum_while_each_step_is_a_majority() {
        let t0 = Instant::now();
        let mut q = settled(&[1, 2, 3, 4, 5], t0);
        let mut t = t0 + STABLE;
        for alive in [&[1, 2, 3, 4][..], &[1, 2, 3], &[1, 2]] {
            t += STABLE;
            assert!(q.update(&set(alive), t));
            assert!(q.update(&set(alive), t + STABLE));
            t += STABLE;
        }
        assert!(
            q.update(&set(&[1]), t + STABLE),
            "half of {{1,2}} with the lowest id"
        );
    }

    #[test]
    fn a_node_that_crashes_right_after_each_restart_does_not_swell_the_base() {
        let t0 = Instant::now();
        let mut q = settled(&[1, 2, 3], t0);
        let ms = Duration::from_millis;
        let mut t = t0 + 2 * STABLE;
        for flap in 4..10 {
            assert!(q.update(&set(&[1, 2]), t));
            assert!(q.update(&set(&[1, 2, flap]), t + ms(300)));
            t += ms(600);
        }
        // 3 (gone for good) left the base after STABLE; no flapper entered.
        assert_eq!(q.base(), &set(&[1, 2]));
        assert!(q.update(&set(&[1, 2]), t));
    }

    #[test]
    fn a_crash_during_formation_does_not_strand_the_survivors() {
        // The first view held 2 of the 3 nodes; node 1 crashes before any
        // view was stable.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE);
        assert!(q.update(&set(&[1, 2]), t0));
        assert!(q.update(&set(&[1, 2, 3]), t0 + ms(100)));
        assert!(q.update(&set(&[2, 3]), t0 + ms(500)));
        assert!(q.update(&set(&[2, 3]), t0 + ms(500) + STABLE));
        assert_eq!(q.base(), &set(&[2, 3]));
        // From then on the base protects.
        assert!(
            !q.update(&set(&[3]), t0 + ms(600) + 2 * STABLE),
            "3 alone is half with the higher id"
        );
    }

    #[test]
    fn crash_restarts_closer_than_the_window_keep_quorum_and_renew_the_base() {
        // Each node in turn is SIGKILLed and comes back under a new id
        // 300 ms later, one every 1.5 s: the view is never stable for
        // STABLE (2 s).
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = settled(&[1, 2, 3, 4, 5], t0);
        let mut active = set(&[1, 2, 3, 4, 5]);
        let mut t = t0 + 2 * STABLE;
        // The process manager re-checks every few hundred milliseconds.
        let run = |q: &mut Quorum, active: &BTreeSet<NodeId>, t: &mut Instant, d: u64| {
            for _ in 0..d / 100 {
                assert!(q.update(active, *t), "{active:?} of {:?}", q.base());
                *t += ms(100);
            }
        };
        for old in 1..=5u64 {
            active.remove(&NodeId(old));
            run(&mut q, &active, &mut t, 300);
            active.insert(NodeId(old + 10));
            run(&mut q, &active, &mut t, 1200);
        }
        run(&mut q, &active, &mut t, 2000);
        assert_eq!(q.base(), &set(&[11, 12, 13, 14, 15]));
        // And the base still protects: a 2|3 split leaves the 2 without.
        assert!(!q.update(&set(&[11, 12]), t));
    }

    #[test]
    fn static_quorum_and_keep_all() {
        let t0 = Instant::now();
        let mut q = Quorum::new(SplitBrain::StaticQuorum(3), STABLE);
        assert!(q.update(&set(&[1, 2, 3]), t0));
        assert!(!q.update(&set(&[1, 2]), t0));
        let mut q = Quorum::new(SplitBrain::KeepAll, STABLE);
        assert!(q.update(&set(&[1]), t0));
    }

    #[test]
    fn a_node_that_never_saw_a_peer_has_no_quorum_unless_configured_to() {
        let t0 = Instant::now();
        let later = t0 + 10 * STABLE;
        // Three pods that each found nobody (discovery down): none of them
        // may run the singletons, however long they wait.
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE);
        assert!(!q.update(&set(&[1]), t0));
        assert!(!q.update(&set(&[1]), later));
        assert!(q.waiting_for_peers());
        assert!(q.base().is_empty());
        // A peer appears: the base forms from the first shared view.
        assert!(q.update(&set(&[1, 2]), later));
        assert!(!q.waiting_for_peers());
        assert!(q.update(&set(&[1, 2]), later + STABLE));
        assert_eq!(q.base(), &set(&[1, 2]));

        // Alone on purpose (static discovery without seeds): quorum alone.
        let alone = Boot {
            alone_by_config: true,
            ..Boot::default()
        };
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE).with_boot(alone);
        assert!(q.update(&set(&[1]), t0));

        // Expected members: a strict majority of them, until a base is
        // agreed.
        let five = Boot {
            expected_members: 5,
            ..Boot::default()
        };
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE).with_boot(five);
        assert!(!q.update(&set(&[1]), t0));
        assert!(!q.update(&set(&[1, 2]), t0));
        assert!(q.waiting_for_peers());
        assert!(q.update(&set(&[1, 2, 3]), t0));
        let one = Boot {
            expected_members: 1,
            ..Boot::default()
        };
        let mut q = Quorum::new(SplitBrain::KeepMajority, STABLE).with_boot(one);
        assert!(q.update(&set(&[1]), t0), "a cluster of one is configured");

        // The other policies say it themselves.
        let mut q = Quorum::new(SplitBrain::StaticQuorum(1), STABLE);
        assert!(q.update(&set(&[1]), t0));
    }
}
