//! The cluster-wide registry of named services (ADR 007).
//!
//! - The registry's state, merge and conflict rules and its replication
//!   protocol are sans-IO cores in `foundation_proto::registry`.
//! - The sync task is their tokio shell; it also stops local losers of
//!   name conflicts.
//! - [`Registry`] is the facade: `node.registry()`.

mod api;
mod event;
mod runtime;
mod shared;

pub use api::{Registry, RegistryError, RegistrySnapshot};
pub use event::RegistryEvent;
pub(crate) use foundation_proto::registry::{
    sync, Delta, RegistryMsg, RegistryState, KINDS, KIND_MSG,
};
pub use foundation_proto::registry::{
    Entry, EntryKey, EntryKind, RegisterError, ServiceAddr, MAX_NAME_LEN, MAX_PROTOCOL_LEN,
};

pub(crate) use runtime::SyncTask;
pub(crate) use shared::RegistryShared;
