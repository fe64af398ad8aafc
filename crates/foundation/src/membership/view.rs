//! This node's view of the cluster, as the layers above it read it: the
//! members with this node first, and whether the node has joined.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{Member, MemberId, MemberState, Membership};

/// The member list and readiness that the node's facades and the process
/// manager share (one copy of the rule).
#[derive(Debug)]
pub(crate) struct View {
    local: MemberId,
    membership: Membership,
    /// Static discovery without seeds: the node runs alone on purpose.
    alone_by_config: bool,
    /// Latched once the node has seen another active member.
    ready: AtomicBool,
}

impl View {
    pub(crate) fn new(local: MemberId, membership: Membership, alone_by_config: bool) -> Self {
        View {
            local,
            membership,
            alone_by_config,
            ready: AtomicBool::new(false),
        }
    }

    /// This node's identity.
    pub(crate) fn local(&self) -> &MemberId {
        &self.local
    }

    /// This node as a member.
    pub(crate) fn local_member(&self) -> Member {
        Member::from_identity(&self.local, MemberState::Alive, 0)
    }

    /// Every member this node knows, itself first, the others by name.
    pub(crate) fn members(&self) -> Vec<Member> {
        let mut all = vec![self.local_member()];
        let mut others = self.membership.members();
        others.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        all.extend(others);
        all
    }

    /// Whether the node has joined a cluster (or runs alone by
    /// configuration). Latches: once ready, always ready.
    pub(crate) fn is_ready(&self) -> bool {
        if self.alone_by_config || self.ready.load(Ordering::Relaxed) {
            return true;
        }
        // An Up event may come before the loop that watches for it
        // subscribed: the view itself is the truth.
        let joined = self
            .membership
            .members()
            .iter()
            .any(|m| m.state.is_active());
        if joined {
            self.ready.store(true, Ordering::Relaxed);
        }
        joined
    }

    /// Marks the node ready (an Up event arrived).
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
}
