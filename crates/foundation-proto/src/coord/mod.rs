//! Coordination's state machine (issue 17, first part): what a Raft group
//! replicates — keys with revisions and compare-and-set, session leases,
//! locks with fencing tokens, counters — as a deterministic, sans-IO
//! value. The Raft engine (openraft, in the `foundation` crate) orders
//! [`Command`]s; every replica applies them to a [`CoordState`] and gets
//! the same answers and [`Event`]s.
//!
//! Time is a command too ([`Command::Tick`], proposed by the leader), so
//! every replica expires the same leases at the same point of the log.
//!
//! ```
//! use foundation_proto::coord::{Claim, Command, CoordState, Expect, Response};
//! use foundation_proto::NodeId;
//!
//! let mut s = CoordState::default();
//! let Ok(Response::Lease { lease: a, .. }) =
//!     s.apply(Command::Grant { owner: NodeId(1), ttl_ms: 1_000 }).response
//! else { panic!() };
//! let Ok(Response::Lease { lease: b, .. }) =
//!     s.apply(Command::Grant { owner: NodeId(2), ttl_ms: 1_000 }).response
//! else { panic!() };
//!
//! // A lock: the first session holds it, the second waits.
//! let (ca, cb) = (Claim { lease: a, ticket: 1 }, Claim { lease: b, ticket: 1 });
//! let first = s.apply(Command::Lock { name: "jobs".into(), claim: ca }).response;
//! let Ok(Response::Locked { token: t1 }) = first else { panic!() };
//! let second = s.apply(Command::Lock { name: "jobs".into(), claim: cb }).response;
//! assert_eq!(second, Ok(Response::Queued { ahead: 0 }));
//!
//! // The holder's session expires: the waiter gets the lock, with a
//! // larger fencing token. (Session b was kept alive.)
//! s.apply(Command::Tick { now_ms: 900 });
//! s.apply(Command::KeepAlive { lease: b });
//! s.apply(Command::Tick { now_ms: 1_000 });
//! let (holder, t2) = s.holder("jobs").expect("passed on");
//! assert_eq!(holder, cb);
//! assert!(t2 > t1);
//!
//! // Compare-and-set on a key's revision.
//! let put = s.apply(Command::Put {
//!     key: "config/size".into(), value: b"3".to_vec(), lease: None, expect: Expect::Absent,
//! });
//! let Ok(Response::Put { revision }) = put.response else { panic!() };
//! let stale = s.apply(Command::Put {
//!     key: "config/size".into(), value: b"5".to_vec(), lease: None,
//!     expect: Expect::Revision(revision - 1),
//! });
//! assert!(stale.response.is_err());
//! ```

mod command;
mod state;

pub use command::{Claim, Command, Event, Expect, LeaseId, Rejected, Response, Revision};
pub use state::{Applied, CoordState, Entry};

/// Longest key or lock name, in bytes.
pub const MAX_KEY: usize = 1024;

/// Largest value, in bytes (the store is for coordination, not data).
pub const MAX_VALUE: usize = 64 * 1024;

/// Most keys, and separately most locks and counters, the store holds.
pub const MAX_NAMES: usize = 100_000;

/// Most session leases at once.
pub const MAX_LEASES: usize = 10_000;

/// Most sessions waiting for one lock.
pub const MAX_WAITERS: usize = 1_024;

#[cfg(test)]
mod tests;
