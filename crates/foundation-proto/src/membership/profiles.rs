//! Members' metadata, carried once (ADR 024).
//!
//! foca's headers carry [`SwimId`]s: node id, address and generation. The
//! rest of a member (name, transport address, roles, version) is learnt
//! from its Hello, Pull, Who or Profile, or from a `State` list, and kept
//! here until the member's entry holds it. A member foca reports up before
//! its metadata is known waits in `pending`, and is asked once per sync
//! round with a Who; the Profile that answers completes its `Up`.

use std::time::Instant;

use super::{MembershipCore, Output};
use crate::membership::identity::{MemberId, SwimId};
use crate::membership::member::Member;
use crate::membership::seal::DatagramKind;

/// Sync rounds a learnt profile is kept for while nothing needs it (a
/// joiner's Hello precedes the SWIM message that makes it a member by
/// about a round trip).
const KEEP_ROUNDS: usize = 2;

/// Most profiles kept at once beyond those pending members need: a peer
/// that sends Hellos under ever new ids fills no more than this.
const MAX_PROFILES: usize = 4096;

impl MembershipCore {
    /// The metadata of exactly this identity, if known.
    pub(super) fn identity_of(&self, id: &SwimId) -> Option<MemberId> {
        if let Some((p, _)) = self
            .profiles
            .get(&id.id)
            .filter(|(p, _)| p.generation == id.generation)
        {
            return Some(p.clone());
        }
        self.members
            .get(&id.id)
            .map(|e| &e.member)
            .filter(|m| m.generation == id.generation)
            .map(Member::identity)
    }

    /// The metadata to use for `id`: its own if known; else, for a known
    /// node under another generation, the metadata it had, confirmed by a
    /// Who (a Profile that differs replaces it). One node id is one
    /// process: every process draws its id afresh, and its metadata is
    /// fixed for its life, so a renewal (a rejoin after being declared
    /// down, both sides of a healed partition) keeps it.
    pub(super) fn metadata_for(&mut self, id: &SwimId) -> Option<MemberId> {
        if let Some(full) = self.identity_of(id) {
            return Some(full);
        }
        let full = self.members.get(&id.id)?.member.identity().renamed(id);
        self.send_me(id.addr, DatagramKind::Who);
        Some(full)
    }

    /// `id` is active in foca without known metadata: its `Up` waits, and a
    /// Who asks it for its profile.
    pub(super) fn ask(&mut self, id: SwimId) {
        self.pending.insert(id.id, id);
        self.send_me(id.addr, DatagramKind::Who);
    }

    /// A member rejoined under a renewed identity: its entry takes the new
    /// generation at once, with the metadata it had (see
    /// [`MembershipCore::metadata_for`]).
    pub(super) fn renewed(&mut self, new: SwimId) {
        let Some(full) = self.metadata_for(&new) else {
            return;
        };
        if let Some(e) = self.members.get_mut(&new.id) {
            e.member = Member::from_identity(&full, e.member.state, e.member.incarnation);
        }
    }

    /// A datagram that carries its sender's profile: a Hello (welcome it),
    /// a Pull (welcome it and send our member list), a Who (answer it) or
    /// a Profile (learn it).
    pub(super) fn sender_profile(
        &mut self,
        kind: DatagramKind,
        sender: MemberId,
        now: Instant,
    ) -> Result<(), super::Rejected> {
        match kind {
            DatagramKind::Hello => self.welcome(sender, now).map(|_| ()),
            DatagramKind::Pull => self.answer_pull(sender, now),
            DatagramKind::Who => {
                self.answer_who(sender, now);
                Ok(())
            }
            _ => {
                self.learn(sender, now);
                Ok(())
            }
        }
    }

    /// A Who: learn the asker's profile, and answer with ours.
    pub(super) fn answer_who(&mut self, asker: MemberId, now: Instant) {
        if asker.id == self.local.id {
            return;
        }
        let to = asker.addr;
        self.learn(asker, now);
        self.send_me(to, DatagramKind::Profile);
    }

    /// Metadata of a member: kept, and the member's wait ends if it was
    /// pending; an entry of the same generation takes it.
    pub(super) fn learn(&mut self, id: MemberId, now: Instant) {
        if id.id == self.local.id {
            return;
        }
        let pending = self
            .pending
            .get(&id.id)
            .is_some_and(|p| p.generation == id.generation);
        if let Some(e) = self
            .members
            .get_mut(&id.id)
            .filter(|e| e.member.generation == id.generation)
        {
            let fresh = Member::from_identity(&id, e.member.state, e.member.incarnation);
            if fresh != e.member {
                e.member = fresh;
                self.dirty = true;
            }
        }
        if pending || self.profiles.len() < MAX_PROFILES || self.profiles.contains_key(&id.id) {
            let swim = id.swim();
            self.profiles.insert(id.id, (id, self.sync_round));
            if pending {
                self.pending.remove(&swim.id);
                if super::view_of(&self.foca, &swim).is_some_and(|(s, _)| s != foca::State::Down) {
                    self.member_up(swim, now);
                }
            }
        }
    }

    /// Once per sync round: members still pending are asked again (a Who
    /// or its Profile may have been lost), those foca no longer holds
    /// active stop waiting, and profiles nothing needs are dropped.
    pub(super) fn profiles_round(&mut self) {
        let foca = &self.foca;
        self.pending
            .retain(|_, id| super::view_of(foca, id).is_some_and(|(s, _)| s != foca::State::Down));
        let ask: Vec<SwimId> = self.pending.values().copied().collect();
        for id in ask {
            self.send_me(id.addr, DatagramKind::Who);
        }
        let round = self.sync_round;
        let (members, pending) = (&self.members, &self.pending);
        self.profiles.retain(|id, (p, at)| {
            pending
                .get(id)
                .is_some_and(|w| w.generation == p.generation)
                || (round.wrapping_sub(*at) < KEEP_ROUNDS
                    && members
                        .get(id)
                        .is_none_or(|e| e.member.generation != p.generation))
        });
    }

    /// Sends our own identity with its metadata to `to` as `kind` (a Who
    /// asks for the answerer's, a Profile answers one).
    pub(super) fn send_me(&mut self, to: std::net::SocketAddr, kind: DatagramKind) {
        match postcard::to_allocvec(&self.local) {
            Ok(body) => self.outputs.push_back(Output::Send { to, kind, body }),
            Err(e) => tracing::warn!(error = %e, ?kind, "cannot encode our profile"),
        }
    }
}
