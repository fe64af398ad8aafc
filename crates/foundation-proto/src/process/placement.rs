//! Placement by rendezvous (highest random weight) hashing: each instance
//! goes to the eligible member with the highest hash of (instance, node).
//! Every node with the same member list computes the same owner, and a
//! membership change moves only the instances whose owner came or went.

use crate::NodeId;

use super::spec::{ChildSpec, Strategy};

/// A member as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub id: NodeId,
    /// Its roles.
    pub roles: Vec<String>,
}

/// One instance of a spec and the node that should run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The instance's registered name (`id`, `id#shard` or `id@node`).
    pub instance: String,
    /// The shard, for partitioned specs.
    pub shard: Option<u32>,
    /// Where it runs.
    pub owner: NodeId,
}

/// The rendezvous weight of `node` for `key`: a fixed 64-bit hash (FNV-1a
/// then a splitmix finalizer), identical on every platform and version.
pub fn weight(key: &str, node: NodeId) -> u64 {
    weight_of(key.as_bytes(), node)
}

/// [`weight`] of a key given as bytes (the cache's keys are serialized
/// values, not names).
pub fn weight_of(key: &[u8], node: NodeId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.iter().chain(&node.0.to_le_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner of `key` among `nodes`: the highest weight, ties to the
/// lowest id.
pub fn rendezvous(key: &str, nodes: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
    nodes
        .into_iter()
        .max_by_key(|n| (weight(key, *n), std::cmp::Reverse(*n)))
}

/// Where each instance of `spec` runs among `members`.
pub fn place(spec: &ChildSpec, members: &[Candidate]) -> Vec<Placement> {
    let eligible: Vec<NodeId> = members
        .iter()
        .filter(|m| spec.role.as_ref().is_none_or(|r| m.roles.contains(r)))
        .map(|m| m.id)
        .collect();
    match spec.strategy {
        Strategy::Singleton => rendezvous(&spec.id, eligible.iter().copied())
            .map(|owner| Placement {
                instance: spec.id.clone(),
                shard: None,
                owner,
            })
            .into_iter()
            .collect(),
        Strategy::Partitioned { shards } => (0..shards)
            .filter_map(|s| {
                let instance = format!("{}#{s}", spec.id);
                rendezvous(&instance, eligible.iter().copied()).map(|owner| Placement {
                    instance,
                    shard: Some(s),
                    owner,
                })
            })
            .collect(),
        Strategy::Replicated => eligible
            .iter()
            .map(|n| Placement {
                instance: format!("{}@{n}", spec.id),
                shard: None,
                owner: *n,
            })
            .collect(),
    }
}

/// The shard of `key` for a spec with `shards` shards (stable hash).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (weight(key, NodeId(0)) % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn spec(strategy: Strategy, role: Option<&str>) -> ChildSpec {
        ChildSpec {
            id: "s".into(),
            kind: "k".into(),
            args: Bytes::new(),
            strategy,
            role: role.map(str::to_owned),
            fenced: false,
        }
    }

    fn members(n: u64) -> Vec<Candidate> {
        (1..=n)
            .map(|i| Candidate {
                id: NodeId(i * 7919),
                roles: if i % 2 == 0 {
                    vec!["web".into()]
                } else {
                    vec![]
                },
            })
            .collect()
    }

    const PINNED: u64 = 11_035_862_003_963_440_444;

    #[test]
    fn the_weight_is_fixed_across_builds() {
        // Changing the hash would move every instance on upgrade.
        assert_eq!(weight("singleton", NodeId(42)), PINNED);
        assert_ne!(weight("a", NodeId(1)), weight("a", NodeId(2)));
        assert_ne!(weight("a", NodeId(1)), weight("b", NodeId(1)));
    }

    #[test]
    fn placement_is_the_same_whatever_the_member_order() {
        let mut m = members(5);
        let s = spec(Strategy::Partitioned { shards: 16 }, None);
        let a = place(&s, &m);
        m.reverse();
        assert_eq!(a, place(&s, &m));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_departure_moves_only_the_instances_it_owned() {
        let m = members(5);
        let s = spec(Strategy::Partitioned { shards: 64 }, None);
        let before = place(&s, &m);
        let gone = m[2].id;
        let rest: Vec<Candidate> = m.iter().filter(|c| c.id != gone).cloned().collect();
        let after = place(&s, &rest);
        for (b, a) in before.iter().zip(&after) {
            if b.owner != gone {
                assert_eq!(b.owner, a.owner, "{} moved without cause", b.instance);
            } else {
                assert_ne!(a.owner, gone);
            }
        }
        // Every node got some of 64 shards.
        for c in &m {
            assert!(before.iter().any(|p| p.owner == c.id));
        }
    }

    #[test]
    fn roles_filter_the_candidates_and_replicated_runs_one_per_node() {
        let m = members(5);
        let web = place(&spec(Strategy::Singleton, Some("web")), &m);
        assert_eq!(web.len(), 1);
        assert!(m.iter().any(|c| c.id == web[0].owner && c.roles == ["web"]));
        let rep = place(&spec(Strategy::Replicated, Some("web")), &m);
        assert_eq!(rep.len(), 2);
        assert!(place(&spec(Strategy::Singleton, Some("db")), &m).is_empty());
        assert_eq!(place(&spec(Strategy::Replicated, None), &m).len(), 5);
    }

    #[test]
    fn shards_spread_keys() {
        let mut counts = [0u32; 8];
        for k in 0..8000 {
            counts[shard_of(&format!("key-{k}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (700..1300).contains(c)), "{counts:?}");
    }
}
