//! Full-state exchange on join (memberlist's push-pull, over datagrams).
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

use std::net::SocketAddr;

use super::{MembershipCore, Output, Rejected};
use crate::membership::identity::MemberId;
use crate::membership::seal::DatagramKind;

/// Bytes reserved for the list's length prefix (a postcard varint).
const PREFIX: usize = 5;

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
            self.greet(*to, kind);
        }
    }

    /// Queues a Hello or a Pull carrying our identity to `to`.
    pub(super) fn greet(&mut self, to: SocketAddr, kind: DatagramKind) {
        match postcard::to_allocvec(self.foca.identity()) {
            Ok(body) => self.outputs.push_back(Output::Send { to, kind, body }),
            Err(e) => tracing::warn!(error = %e, "cannot encode hello"),
        }
    }

    /// A Hello from `joiner`: foca announces us to it, which lets it in.
    /// Returns whether it was someone else (our own Hello, looped back
    /// through a seed list naming us, is ignored).
    pub(super) fn welcome(&mut self, joiner: MemberId) -> Result<bool, Rejected> {
        if joiner.id == self.foca.identity().id {
            return Ok(false);
        }
        self.foca
            .announce(joiner, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))?;
        Ok(true)
    }

    /// A Pull from `joiner`: welcome it as for a Hello, then send it every
    /// Alive member we know, ourselves included.
    pub(super) fn answer_pull(&mut self, joiner: MemberId) -> Result<(), Rejected> {
        if !self.welcome(joiner.clone())? {
            return Ok(());
        }
        let budget = self.config.max_packet_size.get().saturating_sub(PREFIX);
        let mut chunk: Vec<&foca::Member<MemberId>> = Vec::new();
        let mut size = 0;
        let mut bodies = Vec::new();
        let me = foca::Member::alive(self.foca.identity().clone());
        let members = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Alive && m.id().id != joiner.id);
        for m in std::iter::once(&me).chain(members) {
            let Ok(len) = postcard::to_allocvec(m).map(|b| b.len()) else {
                continue;
            };
            if len > budget {
                tracing::debug!(member = %m.id().id, len, "member too large for a state datagram");
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
            match body {
                Ok(body) => self.outputs.push_back(Output::Send {
                    to: joiner.addr,
                    kind: DatagramKind::State,
                    body,
                }),
                Err(e) => tracing::warn!(error = %e, "cannot encode member list"),
            }
        }
        Ok(())
    }

    /// Part of a member list from the node we pulled: applied as known
    /// facts, not re-gossiped.
    pub(super) fn apply_state(&mut self, body: &[u8]) -> Result<(), Rejected> {
        let members: Vec<foca::Member<MemberId>> =
            postcard::from_bytes(body).map_err(|e| Rejected(format!("member list: {e}")))?;
        self.foca
            .apply_many(members.into_iter(), false, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))
    }
}
