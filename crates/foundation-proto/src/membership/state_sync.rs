//! Full-state exchange (memberlist's push-pull, over datagrams): on join,
//! and every [`SYNC_INTERVAL`] with one member when the views differ.
//!
//! foca answers an announce with one packet of members: about twenty. A
//! node joining a cluster of hundreds then learns the rest from gossip and
//! from its periodic announces, one sample every two seconds (the
//! simulation measured 12–20 s to know a 100-node cluster). A join round
//! therefore sends one of its Hellos as a [`DatagramKind::Pull`]: the
//! answering member announces the joiner as usual and also sends its whole
//! active member list, in as many [`DatagramKind::State`] datagrams as it
//! takes. The joiner applies them without re-gossiping (the cluster knows
//! them already).
//!
//! Gossip sends each update a bounded number of times, so a member can
//! miss one for good (the 400-node simulation: a handful of early nodes
//! each missed one early joiner, and periodic announces, one sample of
//! about twenty members every two seconds, took up to 70 s to fill the
//! gap). So every [`SYNC_INTERVAL`] each node sends one member a
//! [`DatagramKind::Digest`]: the count and a hash of the members it holds,
//! with their incarnations and whether they are suspect, leaving out the
//! two ends of the exchange (neither knows its own incarnation as the
//! others do). A refutation that gossip did not bring to a node shows as a
//! difference and is repaired within a round. Equal hashes end the
//! exchange there (one small datagram per node per interval in a settled
//! cluster). Otherwise the side that holds at least
//! as many members sends its list, and the side that holds fewer asks for
//! the other's with a reply digest: equal counts with different sets
//! exchange both lists.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MembershipCore, Output, Rejected};
use crate::membership::identity::{MemberId, SwimId};
use crate::membership::seal::DatagramKind;

/// Bytes reserved for the list's length prefix (a postcard varint).
const PREFIX: usize = 5;

/// How often the shell calls [`MembershipCore::sync_round`].
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// A summary of the members a node holds (every member not down, itself
/// included), sent to compare views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Digest {
    /// Where to send the answer.
    from: SocketAddr,
    /// How many members (the two ends left out).
    count: u32,
    /// XOR of a mix of each member's id, generation, incarnation and
    /// suspicion (the two ends left out).
    hash: u64,
    /// An answer to a digest (never answered with another digest).
    reply: bool,
}

/// splitmix64's finalizer: spreads one member's identity and state over
/// 64 bits.
fn mix(m: &foca::Member<SwimId>) -> u64 {
    let id = m.id();
    let state = u64::from(m.incarnation()) << 1 | u64::from(m.state() == foca::State::Suspect);
    let mut z = id.id.0 ^ id.generation.rotate_left(32) ^ state.rotate_left(13);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl MembershipCore {
    /// Asks the nodes at `targets` to let us join: a Hello to each, and a
    /// Pull (Hello plus the full member list) to one of them, in turn from
    /// call to call, so a join round costs one member list, not one per
    /// candidate.
    pub fn join(&mut self, targets: &[SocketAddr]) {
        if targets.is_empty() {
            return;
        }
        let pull = self.join_round % targets.len();
        self.join_round = self.join_round.wrapping_add(1);
        for (k, to) in targets.iter().enumerate() {
            let kind = if k == pull {
                DatagramKind::Pull
            } else {
                DatagramKind::Hello
            };
            self.send_me(*to, kind);
        }
    }

    /// A Hello from `joiner`: we keep its metadata, send it ours, and foca
    /// announces us to it, which lets it in. Returns whether it was
    /// someone else (our own Hello, looped back through a seed list naming
    /// us, is ignored).
    pub(super) fn welcome(
        &mut self,
        joiner: MemberId,
        now: std::time::Instant,
    ) -> Result<bool, Rejected> {
        if joiner.id == self.local.id {
            return Ok(false);
        }
        let swim = joiner.swim();
        self.learn(joiner, now);
        self.send_me(swim.addr, DatagramKind::Profile);
        self.foca
            .announce(swim, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))?;
        Ok(true)
    }

    /// A Pull from `joiner`: welcome it as for a Hello, then send it every
    /// Alive member we know, ourselves included.
    pub(super) fn answer_pull(
        &mut self,
        joiner: MemberId,
        now: std::time::Instant,
    ) -> Result<(), Rejected> {
        if self.welcome(joiner.clone(), now)? {
            self.send_state(joiner.addr, Some(joiner.id));
        }
        Ok(())
    }

    /// One anti-entropy round: a digest of our view to the next active
    /// member in turn. The shell calls it every [`SYNC_INTERVAL`].
    pub fn sync_round(&mut self) {
        let peers: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .filter(|m| m.state() != foca::State::Down)
            .map(|m| m.id().addr)
            .collect();
        if peers.is_empty() {
            return;
        }
        let to = peers[self.sync_round % peers.len()];
        self.sync_round = self.sync_round.wrapping_add(1);
        self.send_digest(to, false);
        self.profiles_round();
    }

    /// The digest of our view, for an exchange with the member at `peer`.
    fn digest(&self, peer: SocketAddr, reply: bool) -> Digest {
        let me = self.foca.identity();
        let (count, hash) = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() != foca::State::Down && m.id().addr != peer)
            .fold((0u32, 0u64), |(c, h), m| (c.saturating_add(1), h ^ mix(m)));
        Digest {
            from: me.addr,
            count,
            hash,
            reply,
        }
    }

    fn send_digest(&mut self, to: SocketAddr, reply: bool) {
        let body = postcard::to_allocvec(&self.digest(to, reply));
        self.send_encoded(to, DatagramKind::Digest, body);
    }

    /// Queues `body` as a `kind` datagram to `to`, or logs why it could not
    /// be encoded.
    fn send_encoded(
        &mut self,
        to: SocketAddr,
        kind: DatagramKind,
        body: Result<Vec<u8>, postcard::Error>,
    ) {
        match body {
            Ok(body) => self.outputs.push_back(Output::Send { to, kind, body }),
            Err(e) => tracing::warn!(error = %e, ?kind, "cannot encode a membership datagram"),
        }
    }

    /// A peer's digest: nothing if the views match; else our list if we
    /// hold at least as many members, and a reply digest (asking for its
    /// list) if we hold at most as many.
    pub(super) fn answer_digest(&mut self, body: &[u8]) -> Result<(), Rejected> {
        let theirs: Digest =
            postcard::from_bytes(body).map_err(|e| Rejected(format!("digest: {e}")))?;
        let mine = self.digest(theirs.from, true);
        if theirs.from == mine.from || theirs.hash == mine.hash {
            return Ok(());
        }
        if mine.count >= theirs.count {
            self.send_state(theirs.from, None);
        }
        if mine.count <= theirs.count && !theirs.reply {
            self.send_digest(theirs.from, true);
        }
        Ok(())
    }

    /// Sends every Alive member we know the metadata of, ourselves
    /// included and `except` left out, to `to` in as many State datagrams
    /// as it takes.
    fn send_state(&mut self, to: SocketAddr, except: Option<crate::NodeId>) {
        let budget = self.config.max_packet_size.get().saturating_sub(PREFIX);
        let mut chunk: Vec<(MemberId, foca::Incarnation)> = Vec::new();
        let mut size = 0;
        let mut bodies = Vec::new();
        let me = (self.local.clone(), 0);
        let members: Vec<(MemberId, foca::Incarnation)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Alive && Some(m.id().id) != except)
            .filter_map(|m| Some((self.identity_of(m.id())?, m.incarnation())))
            .collect();
        for m in std::iter::once(me).chain(members) {
            let Ok(len) = postcard::to_allocvec(&m).map(|b| b.len()) else {
                continue;
            };
            if len > budget {
                tracing::debug!(member = %m.0.id, len, "member too large for a state datagram");
                continue;
            }
            if size + len > budget {
                bodies.push(postcard::to_allocvec(&chunk));
                chunk.clear();
                size = 0;
            }
            chunk.push(m);
            size += len;
        }
        if !chunk.is_empty() {
            bodies.push(postcard::to_allocvec(&chunk));
        }
        for body in bodies {
            self.send_encoded(to, DatagramKind::State, body);
        }
    }

    /// Part of a member list from the node we pulled: their metadata is
    /// kept, and they are applied as known facts, not re-gossiped.
    pub(super) fn apply_state(
        &mut self,
        body: &[u8],
        now: std::time::Instant,
    ) -> Result<(), Rejected> {
        let members: Vec<(MemberId, foca::Incarnation)> =
            postcard::from_bytes(body).map_err(|e| Rejected(format!("member list: {e}")))?;
        let mut alive = Vec::with_capacity(members.len());
        for (m, incarnation) in members {
            alive.push(foca::Member::new(m.swim(), incarnation, foca::State::Alive));
            self.learn(m, now);
        }
        self.foca
            .apply_many(alive.into_iter(), false, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))
    }
}
