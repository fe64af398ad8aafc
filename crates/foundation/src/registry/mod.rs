//! The cluster-wide registry of named services (ADR 007).
//!
//! - [`RegistryState`] is the sans-IO core: each owner's entries with a
//!   version, deltas, snapshots, digests, the merge rule and the conflict
//!   rule ([`winner`]). Pure, table- and property-tested.
//! - [`sync`] is the replication protocol, also sans-IO: deltas, acks,
//!   digests and snapshots in, messages to send out.
//! - The sync task is its tokio shell; it also stops local losers of name
//!   conflicts.
//! - [`Registry`] is the facade: `node.registry()`.

mod api;
mod entry;
mod event;
mod runtime;
mod shared;
mod state;
pub mod sync;
mod wire;

#[cfg(test)]
mod tests;

pub use api::{Registry, RegistryError, RegistrySnapshot};
pub use entry::{winner, Entry, EntryKey, EntryKind, ServiceAddr};
pub use event::RegistryEvent;
pub use state::{
    Applied, Delta, Digest, DigestDiff, Op, OwnerSet, RegisterError, RegistryState, Snapshot,
    MAX_NAME_LEN, MAX_PROTOCOL_LEN,
};
pub use wire::{RegistryMsg, KINDS, KIND_MSG};

pub(crate) use runtime::SyncTask;
pub(crate) use shared::RegistryShared;
