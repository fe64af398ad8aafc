//! The registry's sans-IO cores (ADR 007).
//!
//! - [`RegistryState`]: each owner's entries with a version, deltas,
//!   snapshots, digests, the merge rule and the conflict rule ([`winner`]).
//! - [`sync`]: the replication protocol: deltas, acks, digests and
//!   snapshots in, messages to send out.
//! - [`RegistryMsg`]: what nodes send each other, and its codec.
//!
//! The node's sync task and the simulator run the same functions.

mod entry;
mod state;
pub mod sync;
#[cfg(test)]
mod tests;
mod wire;

pub use entry::{winner, Entry, EntryKey, EntryKind, ServiceAddr};
pub use state::{
    Applied, Delta, Digest, DigestDiff, Op, OwnerSet, RegisterError, RegistryState, Snapshot,
    MAX_NAME_LEN, MAX_PROTOCOL_LEN,
};
pub use wire::{RegistryMsg, KINDS, KIND_MSG};
