//! The distributed cache's rules: which nodes hold a key, how writes are
//! ordered, and what moves when the member set changes.
//!
//! - [`holders`]: a key's owner and replicas by rendezvous hashing, the
//!   same hash the process manager places instances with.
//! - [`Version`] and [`Clock`]: every write is stamped by the key's owner
//!   with a hybrid logical clock, so copies of one key on different nodes
//!   agree on which write is the latest, across owner changes and
//!   restarts.
//! - [`Claims`]: single flight for `get_or_compute`: one computation of
//!   a missing key at a time, the other callers waiting for its result.
//! - [`near`]: when the near tier keeps a fetched copy and when an
//!   invalidation drops one.
//! - [`handoff`]: when the member set changes, which new holders a node
//!   sends a key it holds to, and whether it keeps its own copy.

mod claims;
pub mod near;
mod placement;
mod version;

pub use claims::{Claimed, Claims, Outcome};
pub use placement::{handoff, holders, Handoff};
pub use version::{Clock, Version};

#[cfg(test)]
mod tests;
