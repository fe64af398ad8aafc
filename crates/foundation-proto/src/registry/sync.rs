//! The registry's replication protocol, sans-IO: a decoded message or a
//! membership change goes in with the state, and what to send comes out.
//! [`SyncTask`](super::SyncTask) is its tokio shell; the simulator in
//! `foundation-testkit` drives the same functions over a simulated network.

use super::state::{Applied, RegistryState};
use super::wire::RegistryMsg;
use crate::NodeId;

/// What one input asks of the shell.
#[derive(Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Reaction {
    /// Messages to send, in order.
    pub send: Vec<(NodeId, RegistryMsg)>,
    /// The state changed (wake waiters, check name conflicts).
    pub changed: bool,
    /// This node now holds the sender's own set.
    pub heard_from: Option<NodeId>,
    /// The sender holds this node's set at this version or newer.
    pub acked: Option<u64>,
    /// A delta or snapshot was refused, and why.
    pub refused: Option<&'static str>,
}

/// Handles message `msg` from peer `from`. `is_member` says whether a node
/// is an active member: a set relayed by a third node is taken only for a
/// current member, or the entries of a node that died before this one knew
/// it would never be dropped (no Down event comes for it).
pub fn on_message(
    state: &mut RegistryState,
    from: NodeId,
    msg: RegistryMsg,
    is_member: impl Fn(NodeId) -> bool,
) -> Reaction {
    let mut r = Reaction::default();
    match msg {
        RegistryMsg::Delta { delta, ack } => {
            let outcome = state.apply_delta(&delta);
            r.changed = outcome == Applied::Applied;
            if delta.owner == from && matches!(outcome, Applied::Applied | Applied::Duplicate) {
                r.heard_from = Some(from);
            }
            match outcome {
                Applied::Applied | Applied::Duplicate => {}
                Applied::Gap { have } => {
                    tracing::debug!(owner = %delta.owner, have, base = delta.base, "registry gap: asking for a snapshot");
                    let digest = state.digest();
                    r.send.push((
                        from,
                        RegistryMsg::Digest {
                            digest,
                            reply: false,
                        },
                    ));
                }
                Applied::Refused(why) => {
                    tracing::debug!(peer = %from, owner = %delta.owner, why, "registry delta refused");
                    r.refused = Some(why);
                }
            }
            if ack && delta.owner == from {
                ack_owner(state, from, delta.version, &mut r);
            }
        }
        RegistryMsg::Ack { owner, version } => {
            if owner == state.local() {
                r.acked = Some(version);
            }
        }
        RegistryMsg::Digest { digest, reply } => {
            let theirs = digest
                .iter()
                .find(|(o, _)| *o == from)
                .map_or(0, |(_, v)| *v);
            if state.version_of(from) >= theirs {
                r.heard_from = Some(from);
            }
            let diff = state.compare(from, &digest);
            for o in &diff.send {
                if let Some(s) = state.snapshot(*o) {
                    r.send.push((from, RegistryMsg::Snapshot(s)));
                }
            }
            if diff.behind && !reply {
                r.send.push((
                    from,
                    RegistryMsg::Digest {
                        digest: state.digest(),
                        reply: true,
                    },
                ));
            }
        }
        RegistryMsg::Holding { version } => {
            if version < state.local_version() {
                if let Some(s) = state.snapshot(state.local()) {
                    r.send.push((from, RegistryMsg::Snapshot(s)));
                }
            }
        }
        RegistryMsg::Snapshot(snap) => {
            if snap.owner != from && !is_member(snap.owner) {
                tracing::debug!(owner = %snap.owner, peer = %from, "relayed set of a non-member ignored");
                return r;
            }
            match state.merge_snapshot(&snap) {
                Ok(changed) => {
                    r.changed = changed;
                    if snap.owner == from {
                        r.heard_from = Some(from);
                        ack_owner(state, from, 0, &mut r);
                    }
                }
                Err(why) => {
                    tracing::warn!(peer = %from, owner = %snap.owner, why, "registry snapshot refused");
                    r.refused = Some(why);
                }
            }
        }
    }
    r
}

/// Tells `owner` which version of its set this node holds, if at least
/// `min`.
fn ack_owner(state: &RegistryState, owner: NodeId, min: u64, r: &mut Reaction) {
    let version = state.version_of(owner);
    if version >= min {
        r.send.push((owner, RegistryMsg::Ack { owner, version }));
    }
}

/// Member `id` came up: it gets this node's set at once, and is told
/// which version of its own set this node holds (it answers with its set
/// if that is stale).
///
/// Every owner does the same when it sees `id` come up, so sets travel
/// owner to holder; periodic [`anti_entropy`] covers what is lost on the
/// way. This once sent a digest instead of the version, which made every
/// pair of members that met exchange third-party sets: in a mass join each
/// node meets every other, and a 400-node simulated join moved 22 million
/// registry messages in 4 s (cubic in the cluster's size).
pub fn on_member_up(state: &mut RegistryState, id: NodeId) -> Vec<(NodeId, RegistryMsg)> {
    state.owner_up(id);
    let mut send = Vec::with_capacity(2);
    if let Some(s) = state.snapshot(state.local()) {
        send.push((id, RegistryMsg::Snapshot(s)));
    }
    send.push((
        id,
        RegistryMsg::Holding {
            version: state.version_of(id),
        },
    ));
    send
}

/// Member `id` went down or left: its entries go. Whether any did.
pub fn on_member_gone(state: &mut RegistryState, id: NodeId) -> bool {
    state.owner_down(id)
}

/// One anti-entropy round: this node's digest to one peer, in turn.
pub fn anti_entropy(
    state: &RegistryState,
    mut peers: Vec<NodeId>,
    round: usize,
) -> Option<(NodeId, RegistryMsg)> {
    if peers.is_empty() {
        return None;
    }
    peers.sort();
    let to = peers[round % peers.len()];
    Some((
        to,
        RegistryMsg::Digest {
            digest: state.digest(),
            reply: false,
        },
    ))
}

/// How long a set whose owner is not an active member is kept: a member's
/// first snapshot may arrive before this node sees it come up.
pub const STRAY_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Drops the sets of owners that have not been active members for
/// [`STRAY_GRACE`]; `strays` remembers since when each was seen as one.
/// Returns the owners dropped.
///
/// Down and Left events drop a set at once; this catches what they cannot:
/// a set sent by a node just before it crashed that arrives after its Down,
/// or the set of a node this one never saw as a member. The simulation's
/// rolling restart left such sets in place for good before this.
pub fn prune_strays(
    state: &mut RegistryState,
    is_member: impl Fn(NodeId) -> bool,
    strays: &mut std::collections::HashMap<NodeId, std::time::Instant>,
    now: std::time::Instant,
) -> Vec<NodeId> {
    let local = state.local();
    let owners: Vec<NodeId> = state
        .owners()
        .iter()
        .filter(|(o, set)| **o != local && !set.entries.is_empty())
        .map(|(o, _)| *o)
        .collect();
    strays.retain(|o, _| owners.contains(o) && !is_member(*o));
    let mut dropped = Vec::new();
    for o in owners {
        if is_member(o) {
            continue;
        }
        let since = *strays.entry(o).or_insert(now);
        if now.saturating_duration_since(since) >= STRAY_GRACE {
            state.owner_down(o);
            strays.remove(&o);
            dropped.push(o);
        }
    }
    dropped
}
