//! Service messages between nodes: remote calls, casts and replies.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Message kinds of services (`crate::kinds::SERVICES`).
pub const KINDS: std::ops::RangeInclusive<u16> = crate::kinds::SERVICES;
/// The one kind in use: a [`ServiceMsg`].
pub const KIND_MSG: u16 = *KINDS.start();

/// Why a remote node could not deliver or answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteFailure {
    /// No service with that id runs there.
    NoSuchService,
    /// Its mailbox is full.
    Overloaded,
    /// The request's protocol is not the service's.
    Protocol(String),
    /// The request did not decode.
    Decode(String),
    /// The instance failed while handling it, or stopped.
    Failed(String),
}

/// A service message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceMsg {
    /// A request expecting a reply with the same `corr`.
    Call {
        /// Correlation id, unique per caller node.
        corr: u64,
        /// The target service's local id.
        to: u64,
        /// The caller's idea of the protocol (checked).
        protocol: String,
        /// The request (postcard).
        payload: Bytes,
    },
    /// A request without reply.
    Cast {
        /// The target service's local id.
        to: u64,
        /// The caller's idea of the protocol (checked).
        protocol: String,
        /// The request (postcard).
        payload: Bytes,
    },
    /// The answer to a call.
    Reply {
        /// The call's correlation id.
        corr: u64,
        /// The reply (postcard) or why there is none.
        result: Result<Bytes, RemoteFailure>,
    },
}

impl ServiceMsg {
    /// Encodes for the wire.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Decodes from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
