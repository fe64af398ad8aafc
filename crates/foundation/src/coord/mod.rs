//! Coordination on Raft (ADR 021): locks with fencing tokens, a
//! linearizable key-value store, counters and sessions, replicated by a
//! Raft group that every node takes part in and that manages itself.
//!
//! The state machine is the sans-IO [`CoordState`] of the proto crate;
//! openraft (pinned, reachable through [`Coord::raft`]) orders its
//! commands. Raft's messages travel on the control channel over the
//! existing QUIC connections.
//!
//! The group forms by itself: the smallest member founds it once it has
//! been the smallest for a second and no peer is in a group; its leader
//! then adds every member as a learner and keeps `coord.voters` voters
//! (3 by default; with `coord.role`, only members with that role vote),
//! replacing a voter down for `coord.replace_after_ms`.
//!
//! Every call waits at most the handle's timeout (`coord.timeout_ms`, or
//! [`Coord::with_timeout`]) and fails with a [`CoordError`] that says
//! whether the outcome is known. Reads are linearizable by ReadIndex: the
//! leader confirms its leadership with a quorum and this node waits until
//! its replica has applied that far; [`Coord::get_stale`] reads the
//! replica as it is.
//!
//! ```
//! use std::time::Duration;
//! use foundation::NodeBuilder;
//! use foundation::coord::Expect;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One node, alone by configuration: a group of one voter.
//! let node = NodeBuilder::isolated()
//!     .cluster("static")
//!     .name("solo")
//!     .secret("walkthrough-secret-0123456789")
//!     .bind("127.0.0.1".parse()?)
//!     .port(0)
//!     .start()
//!     .await?;
//! let coord = node.coord().with_timeout(Duration::from_secs(10));
//!
//! // A lock with a fencing token.
//! let guard = coord.lock("nightly-report").await?;
//! let token = guard.token();
//! guard.unlock().await?;
//! let again = coord.lock("nightly-report").await?;
//! assert!(again.token() > token, "tokens only grow");
//!
//! // Compare-and-set.
//! let rev = coord.put_if("config/replicas", "3", Expect::Absent).await?;
//! let lost = coord.put_if("config/replicas", "5", Expect::Revision(rev - 1)).await;
//! assert!(lost.is_err_and(|e| e.outcome_known()));
//! let entry = coord.get("config/replicas").await?.expect("written");
//! assert_eq!(entry.value, b"3");
//!
//! // Counters.
//! assert_eq!(coord.add("jobs", 2).await?, 2);
//!
//! // Leaky by design: openraft's handle.
//! assert!(coord.raft().metrics().borrow().current_leader.is_some());
//! drop(again);
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod barrier;
mod client;
mod election;
mod error;
mod kv;
mod leader;
mod lock;
mod log;
mod network;
mod replica;
mod rpc;
mod server;
mod session;
mod steward;
mod types;
mod value;
mod watcher;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use barrier::{Barrier, Permit, Semaphore};
pub use election::{Leader, Leadership};
pub use error::CoordError;
pub use foundation_proto::coord::{Entry, Expect, LeaseId, Rejected, Revision};
pub use lock::LockGuard;
pub use types::{GroupId, Outcome, Proposal, Raft, TypeConfig};
pub use value::{ClusterValue, ClusterValueWatch};
pub use watcher::{Watch, WatchEvent};

use foundation_proto::coord::CoordState;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::CoordConfig;
use crate::error::StartError;
use crate::id::NodeId;
use crate::membership::{MemberEvent, View};
use crate::messenger::Messenger;
use crate::tasks::Tasks;
use crate::transport::Inbox;

/// The frame kinds coordination uses.
pub(crate) const KINDS: std::ops::RangeInclusive<u16> = foundation_proto::kinds::COORD;

/// What the node's coordination parts share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) raft: Raft,
    pub(crate) replica: Arc<replica::Replica>,
    pub(crate) rpc: Arc<rpc::Rpc>,
    pub(crate) config: CoordConfig,
    /// The last term whose Promote this node applied as leader.
    pub(crate) promoted: watch::Sender<u64>,
    pub(crate) sessions: session::Sessions,
    pub(crate) tasks: Tasks,
    pub(crate) cancel: CancellationToken,
    log: log::MemLog,
    /// Frames that did not decode.
    pub(crate) bad_frames: AtomicU64,
    /// Raft messages refused because they came from another group.
    pub(crate) foreign_group: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &NodeId(self.id))
            .field("group", &self.rpc.group())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The coordination API of a node ([`Node::coord`](crate::Node::coord)).
/// Clones share the node's session.
#[derive(Debug, Clone)]
pub struct Coord {
    pub(crate) shared: Arc<Shared>,
    pub(crate) timeout: Duration,
}

/// The group as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordStatus {
    /// The group this node is in, if any yet.
    pub group: Option<GroupId>,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The voters.
    pub voters: Vec<NodeId>,
    /// The learners.
    pub learners: Vec<NodeId>,
    /// The last log index this node holds.
    pub last_log: u64,
    /// The last log index applied to this node's replica.
    pub applied: u64,
    /// Log entries held in memory (compacted into snapshots beyond 2,000).
    pub log_entries: usize,
    /// Session leases in the state.
    pub sessions: usize,
    /// Coordination frames that did not decode (dropped).
    pub bad_frames: u64,
    /// Raft messages refused because they came from another group.
    pub foreign_group: u64,
}

impl CoordStatus {
    /// Log entries this node holds but has not applied yet.
    pub fn apply_lag(&self) -> u64 {
        self.last_log.saturating_sub(self.applied)
    }
}

impl Coord {
    /// The same node with another timeout for each call.
    pub fn with_timeout(&self, timeout: Duration) -> Coord {
        Coord {
            shared: self.shared.clone(),
            timeout,
        }
    }

    /// The openraft handle underneath (metrics, membership, triggers).
    pub fn raft(&self) -> &Raft {
        &self.shared.raft
    }

    /// Reads this node's replica of the state as it is (stale).
    pub fn inspect<R>(&self, f: impl FnOnce(&CoordState) -> R) -> R {
        self.shared.replica.read(f)
    }

    /// The group, its leader and voters, as this node sees them.
    pub fn status(&self) -> CoordStatus {
        let m = self.shared.raft.metrics().borrow().clone();
        let config = m.membership_config.membership();
        CoordStatus {
            group: self.shared.rpc.group(),
            leader: m.current_leader.map(NodeId),
            term: m.current_term,
            voters: config.voter_ids().map(NodeId).collect(),
            learners: config.learner_ids().map(NodeId).collect(),
            last_log: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map_or(0, |l| l.index),
            log_entries: self.shared.log.len(),
            sessions: self.shared.replica.read(|s| s.lease_owners().count()),
            bad_frames: self.shared.bad_frames.load(Ordering::Relaxed),
            foreign_group: self.shared.foreign_group.load(Ordering::Relaxed),
        }
    }

    /// Graceful shutdown: ends the session (its locks pass on now) and
    /// stops Raft.
    pub(crate) async fn shutdown(&self) {
        self.shared.sessions.end(self).await;
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::debug!(error = %e, "openraft did not stop cleanly");
        }
    }
}

fn raft_config(c: &CoordConfig) -> Result<openraft::Config, StartError> {
    let election = c.election_timeout.as_millis() as u64;
    openraft::Config {
        cluster_name: "foundation".into(),
        heartbeat_interval: (election / 6).max(1),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        // 64 entries of at most 64 KiB each: a batch stays under 4 MiB.
        max_payload_entries: 64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(2000),
        max_in_snapshot_log_to_keep: 200,
        snapshot_max_chunk_size: 256 * 1024,
        install_snapshot_timeout: c.timeout.as_millis() as u64,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Coord(e.to_string()))
}

/// What [`start`] needs from the node.
pub(crate) struct Parts {
    pub(crate) messenger: Messenger,
    pub(crate) view: Arc<View>,
    pub(crate) config: CoordConfig,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) cancel: CancellationToken,
}

/// Starts this node's Raft and the tasks around it.
pub(crate) async fn start(parts: Parts) -> Result<Coord, StartError> {
    let Parts {
        messenger,
        view,
        config,
        inbox,
        members,
        cancel,
    } = parts;
    let id = messenger.id().0;
    let tasks = messenger.tasks.clone();
    let rpc = Arc::new(rpc::Rpc::new(messenger));
    let replica = Arc::new(replica::Replica::default());
    let log = log::MemLog::default();
    let raft = Raft::new(
        id,
        Arc::new(raft_config(&config)?),
        network::Net(rpc.clone()),
        log.clone(),
        replica::StateMachine(replica.clone()),
    )
    .await
    .map_err(|e| StartError::Coord(e.to_string()))?;
    let timeout = config.timeout;
    let shared = Arc::new(Shared {
        id,
        raft,
        replica,
        rpc,
        config,
        promoted: watch::channel(0).0,
        sessions: session::Sessions::default(),
        tasks: tasks.clone(),
        cancel: cancel.clone(),
        log,
        bad_frames: AtomicU64::new(0),
        foreign_group: AtomicU64::new(0),
    });
    tasks.spawn(server::serve(shared.clone(), inbox, cancel.child_token()));
    tasks.spawn(steward::Steward::new(shared.clone(), view, members, cancel.child_token()).run());
    Ok(Coord { shared, timeout })
}
