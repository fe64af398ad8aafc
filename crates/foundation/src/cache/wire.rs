//! What nodes send each other for the cache: requests, replies, and the
//! envelope that matches them.

use bytes::Bytes;
use foundation_proto::cache::Version;
use serde::{Deserialize, Serialize};

use super::store::Entry;

/// The frame kind of requests.
pub(crate) const KIND_REQUEST: u16 = *foundation_proto::kinds::CACHE.start();
/// The frame kind of replies.
pub(crate) const KIND_REPLY: u16 = KIND_REQUEST + 1;

/// Most entries in one `Store` request (handoffs send many in batches).
pub(crate) const MAX_BATCH: usize = 512;

/// A request or reply, matched by `corr`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) corr: u64,
    pub(crate) body: T,
}

impl<T: Serialize> Envelope<T> {
    pub(crate) fn encode(&self) -> Result<Bytes, postcard::Error> {
        postcard::to_allocvec(self).map(Bytes::from)
    }
}

impl<T: for<'de> Deserialize<'de>> Envelope<T> {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// The tier a request was made under: the serving node places keys the
/// way the caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Spread {
    /// `replicas` copies beyond the owner's.
    Replicas(u32),
    /// On every node.
    Everywhere,
}

/// Asked of a peer: an operation on cache `cache`, placed by `spread`
/// (a node that has not opened the cache yet creates its part with the
/// caller's spread and the default bounds).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) cache: String,
    pub(crate) spread: Spread,
    pub(crate) op: Op,
}

/// What a request asks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// The entry under `key`, as this node holds it; `near`: the caller
    /// keeps a near copy, so tell it when the key changes.
    Get { key: Bytes, near: bool },
    /// Stamp and store a write (`value` none: a delete) as the key's
    /// owner, and copy it to the other holders.
    Write {
        key: Bytes,
        value: Option<Bytes>,
        ttl_ms: Option<u64>,
    },
    /// Keep these copies unless newer ones are held (replication and
    /// handoff).
    Store { entries: Vec<(Bytes, Entry)> },
    /// Drop every entry of the cache on this node.
    Clear,
    /// `get_or_compute` on a miss: the value if the owner has it, else the
    /// right to compute it, else wait for whoever computes it.
    Claim { key: Bytes },
    /// The computation failed: pass the claim on.
    Release { key: Bytes },
    /// These keys were written at these versions: drop older near copies.
    Invalidate { keys: Vec<(Bytes, Version)> },
    /// Reconciliation: the near copies the caller keeps, at their
    /// versions; the owner answers which are stale.
    Versions { keys: Vec<(Bytes, Version)> },
}

/// The answer to a claim.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Claim {
    /// The value is stored (or, when none, was deleted or expired at
    /// once: claim again).
    Value(Option<Entry>),
    /// Compute it, then put it.
    Granted,
    /// Too many keys are being computed on the owner.
    Full,
}

/// Answered by a peer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// A get's answer, tombstones included.
    Value(Option<Entry>),
    /// A write was stored by the owner and copied to this many holders.
    Written { entry: Entry, copies: u32 },
    /// Copies kept or refused as older; clear done.
    Done,
    /// A claim's answer.
    Claim(Claim),
    /// Reconciliation: the keys whose near copies are stale.
    Stale(Vec<Bytes>),
    /// Too many requests in progress on the peer.
    Busy,
}

#[cfg(test)]
mod tests {
    use foundation_proto::NodeId;
    use proptest::prelude::*;

    use super::*;

    fn entry(stamp: u64, value: Option<Vec<u8>>) -> Entry {
        Entry {
            value: value.map(Bytes::from),
            version: Version {
                stamp,
                node: NodeId(stamp ^ 7),
            },
            ttl_ms: Some(stamp % 1000),
        }
    }

    proptest! {
        /// Any bytes decode to a request or reply, or to an error: never a
        /// panic, never a huge allocation.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::<Request>::decode(&bytes);
            let _ = Envelope::<Reply>::decode(&bytes);
        }

        /// What is encoded decodes to the same request, and a cut frame is
        /// refused.
        #[test]
        fn requests_round_trip(
            cache in ".{0,12}",
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            stamp in any::<u64>(),
            corr in any::<u64>(),
        ) {
            let req = Request {
                cache: cache.clone(),
                spread: Spread::Replicas((stamp % 4) as u32),
                op: Op::Store { entries: vec![(Bytes::from(key.clone()), entry(stamp, value))] },
            };
            let bytes = Envelope { corr, body: req }.encode().expect("encode");
            let back = Envelope::<Request>::decode(&bytes).expect("decode");
            prop_assert_eq!(back.corr, corr);
            prop_assert_eq!(&back.body.cache, &cache);
            let Op::Store { entries } = back.body.op else {
                return Err(TestCaseError::fail("not a store"));
            };
            prop_assert_eq!(&entries[0].0[..], &key[..]);
            prop_assert!(Envelope::<Request>::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }
}
