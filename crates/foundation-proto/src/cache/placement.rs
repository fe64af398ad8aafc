//! Where a key lives: its owner and `replicas` more nodes, the members
//! with the highest rendezvous weights for the key.

use crate::process::placement::weight_of;
use crate::NodeId;

/// The nodes that hold `key` among `members`, owner first, then the
/// replicas in the order they take over: at most `1 + replicas` nodes.
/// Every node with the same member list computes the same list, and a
/// change of members moves only the keys whose holders came or went.
pub fn holders(key: &[u8], members: &[NodeId], replicas: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u64, std::cmp::Reverse<NodeId>)> = members
        .iter()
        .map(|n| (weight_of(key, *n), std::cmp::Reverse(*n)))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by_key(|r| r.1);
    ranked
        .into_iter()
        .take(replicas.saturating_add(1))
        .map(|(_, std::cmp::Reverse(n))| n)
        .collect()
}

/// What a node that holds a key does when the member set changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// New holders to send the key to: those that were not holders before.
    pub send_to: Vec<NodeId>,
    /// Whether this node is still a holder. If not, it drops its copy once
    /// every node in `send_to` has acknowledged the key.
    pub keep: bool,
}

/// The handoff of a key held by `me` whose holders change from `old` to
/// `new` (each as [`holders`] gives them).
///
/// Every holder that was one before sends the key to each new holder,
/// not only the old owner: the old owner may be the node that left, and
/// a copy sent twice is harmless (the receiver keeps the newer
/// [`Version`](super::Version)). A node that holds a key it should not
/// (it arrived late, or the view moved twice) sends it to all holders.
pub fn handoff(me: NodeId, old: &[NodeId], new: &[NodeId]) -> Handoff {
    let keep = new.contains(&me);
    let send_to = new
        .iter()
        .copied()
        .filter(|n| *n != me && (!old.contains(n) || !old.contains(&me)))
        .collect();
    Handoff { send_to, keep }
}
