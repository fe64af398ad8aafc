//! What the coordination log carries, and what applying it answers.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// A revision of the store: raised by every change, so it orders them all
/// (and serves as the fencing token of a lock grant).
pub type Revision = u64;

/// A session lease, granted to a node (as etcd's leases).
pub type LeaseId = u64;

/// One acquisition of a lock: by a session, with a ticket the client
/// chose. Two acquisitions by one session are two claims: they exclude
/// each other like any two, and releasing one never releases the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// The session.
    pub lease: LeaseId,
    /// Unique among the session's acquisitions.
    pub ticket: u64,
}

/// A condition on a key's last modification, checked when a command is
/// applied (compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// No condition.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist and have been last modified at this revision.
    Revision(Revision),
}

/// One entry of the replicated log. Applying the same commands in the same
/// order gives the same state on every replica: no command reads a clock;
/// time enters only through [`Command::Tick`], which the leader proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The leader's clock, in milliseconds since an epoch it chose. Leases
    /// whose deadline it passed expire. A tick earlier than the last is
    /// ignored (time never goes back).
    Tick {
        /// Milliseconds.
        now_ms: u64,
    },
    /// A session lease for `owner`, lasting `ttl_ms` from the last tick
    /// unless kept alive.
    Grant {
        /// The node the session belongs to.
        owner: NodeId,
        /// Time to live.
        ttl_ms: u64,
    },
    /// Renews a lease for another `ttl_ms` from the last tick.
    KeepAlive {
        /// The lease.
        lease: LeaseId,
    },
    /// Ends a lease now.
    Revoke {
        /// The lease.
        lease: LeaseId,
    },
    /// Membership declared `node` down: its leases are no longer renewed,
    /// and end at their deadline. Not sooner: a node declared down may
    /// still run, and its locks must not pass on before its own clock says
    /// it lost them. While it waits, nothing new is granted to it.
    NodeDown {
        /// The node.
        node: NodeId,
    },
    /// A new leader took over at `now_ms` (its clock): every lease still
    /// renewed gets at least its time to live from now, since keep-alives
    /// could not be committed during the election (as etcd does).
    Promote {
        /// Milliseconds, the new leader's clock.
        now_ms: u64,
    },
    /// Sets `key` if `expect` holds; with a lease, the key goes with it.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease the key is attached to, if any.
        lease: Option<LeaseId>,
        /// The condition.
        expect: Expect,
    },
    /// Removes `key` if `expect` holds.
    Delete {
        /// The key.
        key: String,
        /// The condition.
        expect: Expect,
    },
    /// Asks for lock `name` for `claim`: granted now, or queued (first
    /// come, first served) and granted when the claims before it go.
    /// Asking again with the same claim answers where it stands.
    Lock {
        /// The lock.
        name: String,
        /// The acquisition asking.
        claim: Claim,
    },
    /// Releases lock `name` if `claim` holds it, or takes `claim` out of
    /// its queue.
    Unlock {
        /// The lock.
        name: String,
        /// The acquisition.
        claim: Claim,
    },
    /// Adds `delta` to counter `name` (missing counters are 0).
    Add {
        /// The counter.
        name: String,
        /// What to add.
        delta: i64,
    },
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A tick, a keep-alive, a revoke or a node-down applied.
    Done,
    /// A lease granted.
    Lease {
        /// Its id.
        lease: LeaseId,
        /// When it expires unless kept alive (leader clock, ms).
        expires_ms: u64,
    },
    /// A key written, at this revision.
    Put {
        /// The revision.
        revision: Revision,
    },
    /// A delete applied, at this revision; whether the key existed.
    Deleted {
        /// The revision.
        revision: Revision,
        /// Whether the key existed.
        existed: bool,
    },
    /// The lock is held by the asking lease, with this fencing token.
    Locked {
        /// The fencing token (a revision: it only grows).
        token: Revision,
    },
    /// The lock is held by another lease; this many wait before the asker.
    Queued {
        /// Waiters ahead.
        ahead: usize,
    },
    /// The claim no longer holds nor waits for the lock.
    Unlocked,
    /// A counter's value after the addition.
    Counter {
        /// The value.
        value: i64,
    },
}

/// A command applied without effect, and why. The outcome is known: the
/// state did not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejected {
    /// A compare-and-set condition did not hold.
    #[error("condition failed on {key}: its last revision is {current:?}")]
    CompareFailed {
        /// The key.
        key: String,
        /// Its last modification, or none if absent.
        current: Option<Revision>,
    },
    /// The lease does not exist (never granted, expired or revoked).
    #[error("lease {0} does not exist (expired or revoked)")]
    NoLease(LeaseId),
    /// A key or lock name is empty or longer than [`super::MAX_KEY`].
    #[error("name of {len} bytes: must be 1 to {max}")]
    BadName {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value is larger than [`super::MAX_VALUE`].
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A lock's queue is full ([`super::MAX_WAITERS`]).
    #[error("lock {name} has {max} waiters already")]
    QueueFull {
        /// The lock.
        name: String,
        /// The limit.
        max: usize,
    },
    /// A limit on the number of keys, leases or counters was reached.
    #[error("the store holds {max} {what} already")]
    Full {
        /// What is full.
        what: String,
        /// The limit.
        max: usize,
    },
    /// A counter would overflow.
    #[error("counter {0} would overflow")]
    Overflow(String),
}

/// What changed, for the shell to tell watchers and waiting clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A key was written.
    Put {
        /// The key.
        key: String,
        /// What it holds now.
        value: Vec<u8>,
        /// Its new revision.
        revision: Revision,
    },
    /// A key was removed (deleted, or its lease ended).
    Deleted {
        /// The key.
        key: String,
        /// The revision of the removal.
        revision: Revision,
    },
    /// A lock went to a claim, with a new fencing token.
    Granted {
        /// The lock.
        name: String,
        /// The new holder.
        claim: Claim,
        /// Its fencing token.
        token: Revision,
    },
    /// A lease ended (expired, revoked, or its node went down); its locks
    /// and keys went with it.
    LeaseEnded {
        /// The lease.
        lease: LeaseId,
    },
}
