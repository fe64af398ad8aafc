//! Process manager messages: replicated child specs and handoffs.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::spec::SpecEntry;

/// Message kinds of the process manager
/// (`crate::kinds::PROCESS_MANAGER`).
pub const KINDS: std::ops::RangeInclusive<u16> = crate::kinds::PROCESS_MANAGER;
/// The one kind in use: a [`ManagerMsg`].
pub const KIND_MSG: u16 = *KINDS.start();

/// A process manager message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerMsg {
    /// Spec entries to merge.
    Specs(Vec<(String, SpecEntry)>),
    /// Anti-entropy: the digest of the sender's spec map. A receiver with
    /// another digest sends all its entries, and (unless `reply`) its
    /// digest back.
    Digest {
        /// [`SpecMap::digest`](super::spec::SpecMap::digest).
        digest: u64,
        /// An answer to a digest.
        reply: bool,
    },
    /// The sender stopped `instance` (migration or shutdown) and hands its
    /// state (postcard) to the receiver, the instance's next owner.
    Handoff {
        /// The instance name.
        instance: String,
        /// The state from its stopping hook, if any.
        state: Option<Bytes>,
        /// The sender is shutting down: leave it out of placement now.
        leaving: bool,
    },
    /// The receiver holds the handoff of `instance`: the sender may now
    /// withdraw the instance's registration.
    HandoffAck {
        /// The instance name.
        instance: String,
    },
}

impl ManagerMsg {
    /// Encodes for the wire.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Decodes from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
