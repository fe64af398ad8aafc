//! Split-brain policy: whether this side of a partition may run
//! singletons and shards.
//!
//! - keep-majority (default): run only with a strict majority of the last
//!   agreed membership; on an exact half, the side holding the lowest node
//!   id wins. Members that left gracefully are not counted, so a rolling
//!   restart never loses quorum. A side that lost quorum keeps the old
//!   membership as its base until it regains a majority of it.
//! - static-quorum(n): run only while at least `n` members are active.
//! - keep-all: always run; after a heal, duplicates are resolved (one
//!   winner per name, the losers stop).

use std::collections::BTreeSet;

use crate::id::NodeId;

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

/// Tracks the membership base for keep-majority.
#[derive(Clone, Debug, Default)]
pub struct Quorum {
    policy: SplitBrain,
    base: BTreeSet<NodeId>,
}

impl Quorum {
    /// A tracker for `policy`.
    pub fn new(policy: SplitBrain) -> Self {
        Quorum {
            policy,
            base: BTreeSet::new(),
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

    /// Updates with the active members (this node included); whether this
    /// side has quorum.
    pub fn update(&mut self, active: &BTreeSet<NodeId>) -> bool {
        match self.policy {
            SplitBrain::KeepAll => true,
            SplitBrain::StaticQuorum(n) => active.len() >= n,
            SplitBrain::KeepMajority => {
                let present = self.base.intersection(active).count();
                let total = self.base.len();
                let majority = 2 * present > total
                    || (2 * present == total
                        && self.base.first().is_some_and(|low| active.contains(low)));
                if majority || total == 0 {
                    self.base = active.clone();
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The membership keep-majority counts against.
    pub fn base(&self) -> &BTreeSet<NodeId> {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|i| NodeId(*i)).collect()
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
            (&[], &[7], true),
        ];
        for (base, active, want) in table {
            let mut q = Quorum::new(SplitBrain::KeepMajority);
            q.update(&set(base));
            assert_eq!(
                q.update(&set(active)),
                *want,
                "base {base:?} active {active:?}"
            );
        }
    }

    #[test]
    fn a_minority_keeps_its_base_until_it_regains_a_majority() {
        let mut q = Quorum::new(SplitBrain::KeepMajority);
        assert!(q.update(&set(&[1, 2, 3, 4, 5])));
        assert!(!q.update(&set(&[4, 5])));
        assert_eq!(q.base(), &set(&[1, 2, 3, 4, 5]));
        // Even if it later sees only itself and a newcomer, still no.
        assert!(!q.update(&set(&[4, 5, 9])));
        assert!(q.update(&set(&[1, 2, 3, 4, 5])));
    }

    #[test]
    fn members_that_left_do_not_count_so_rolling_restarts_keep_quorum() {
        let mut q = Quorum::new(SplitBrain::KeepMajority);
        assert!(q.update(&set(&[1, 2, 3])));
        q.left(NodeId(1));
        q.left(NodeId(2));
        assert!(q.update(&set(&[3])));
        assert!(q.update(&set(&[3, 4])));
        q.left(NodeId(3));
        assert!(q.update(&set(&[4])));
    }

    #[test]
    fn one_by_one_crashes_keep_quorum_while_each_step_is_a_majority() {
        let mut q = Quorum::new(SplitBrain::KeepMajority);
        assert!(q.update(&set(&[1, 2, 3, 4, 5])));
        assert!(q.update(&set(&[1, 2, 3, 4])));
        assert!(q.update(&set(&[1, 2, 3])));
        assert!(q.update(&set(&[1, 2])));
        assert!(q.update(&set(&[1])), "half of {{1,2}} with the lowest id");
    }

    #[test]
    fn static_quorum_and_keep_all() {
        let mut q = Quorum::new(SplitBrain::StaticQuorum(3));
        assert!(q.update(&set(&[1, 2, 3])));
        assert!(!q.update(&set(&[1, 2])));
        let mut q = Quorum::new(SplitBrain::KeepAll);
        assert!(q.update(&set(&[1])));
    }
}
