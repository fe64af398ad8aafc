//! Registry messages between nodes (postcard, on the control channel, or
//! the data channel when large).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::state::{Delta, Digest, Snapshot};
use crate::NodeId;

/// Message kinds of the registry ([`crate::kinds::REGISTRY`]).
pub const KINDS: std::ops::RangeInclusive<u16> = crate::kinds::REGISTRY;
/// The one kind in use: a [`RegistryMsg`].
pub const KIND_MSG: u16 = *KINDS.start();

/// A registry message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryMsg {
    /// An owner's change; `ack` asks the receiver to confirm it.
    Delta {
        /// The change.
        delta: Delta,
        /// Reply with an [`RegistryMsg::Ack`].
        ack: bool,
    },
    /// The receiver holds the owner's set at `version` or newer.
    Ack {
        /// Whose set.
        owner: NodeId,
        /// The version held.
        version: u64,
    },
    /// Anti-entropy: the sender's versions. A receiver that is ahead sends
    /// snapshots; one that is behind answers with its own digest
    /// (`reply = true`, which is never answered with a digest).
    Digest {
        /// Every owner's version at the sender.
        digest: Digest,
        /// An answer to a digest.
        reply: bool,
    },
    /// An owner's whole set.
    Snapshot(Snapshot),
    /// The sender holds the receiver's own set at `version` (0: not at
    /// all); a receiver whose set is newer answers with its snapshot. Sent
    /// when a member comes up: it also reaches a member that never saw the
    /// sender go (a paused process, resumed), which pushes nothing itself.
    Holding {
        /// The version of the receiver's set the sender holds.
        version: u64,
    },
}

impl RegistryMsg {
    /// Encodes for the wire.
    pub fn encode(&self) -> Bytes {
        // Serialising plain data into a Vec cannot fail.
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Decodes from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
