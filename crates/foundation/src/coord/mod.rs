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
mod disk;
mod election;
mod error;
mod fenced;
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
pub use disk::DiskError;
pub use election::{Leader, Leadership};
pub use error::CoordError;
pub use foundation_proto::coord::{Claim, Entry, Expect, LeaseId, Rejected, Revision};
pub use lock::LockGuard;
pub use types::{GroupId, Outcome, Proposal, Raft, TypeConfig};
pub use value::{ClusterValue, ClusterValueWatch};
pub use watcher::{Watch, WatchEvent};

use foundation_proto::coord::CoordState;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{CoordConfig, CoordStorage};
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
    /// The lease clock this node stamps proposals with as leader.
    pub(crate) clock: LeaseClock,
    pub(crate) sessions: session::Sessions,
    pub(crate) tasks: Tasks,
    pub(crate) cancel: CancellationToken,
    log: log::MemLog,
    disk: Option<Arc<disk::Disk>>,
    /// Frames that did not decode.
    pub(crate) bad_frames: AtomicU64,
    /// Raft messages refused because they came from another group.
    pub(crate) foreign_group: AtomicU64,
    /// The next lock acquisition's ticket.
    pub(crate) tickets: AtomicU64,
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
    /// This node's Raft id (its first member id, kept across restarts
    /// with durable storage).
    pub raft_id: u64,
    /// The member that leads, if this node knows it.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The members that vote (those whose member id this node knows).
    pub voters: Vec<NodeId>,
    /// The members that learn (likewise).
    pub learners: Vec<NodeId>,
    /// The Raft ids of all voters, known as members or not.
    pub raft_voters: Vec<u64>,
    /// The last log index this node holds.
    pub last_log: u64,
    /// The last log index this node knows to be committed (0 before the
    /// first commit it hears of).
    pub committed: u64,
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
    /// Committed log entries this node has not applied yet.
    pub fn apply_lag(&self) -> u64 {
        self.committed.saturating_sub(self.applied)
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
            raft_id: self.shared.id,
            leader: m.current_leader.and_then(|r| self.shared.rpc.node_of(r)),
            term: m.current_term,
            voters: config
                .voter_ids()
                .filter_map(|r| self.shared.rpc.node_of(r))
                .collect(),
            learners: config
                .learner_ids()
                .filter_map(|r| self.shared.rpc.node_of(r))
                .collect(),
            raft_voters: config.voter_ids().collect(),
            last_log: m.last_log_index.unwrap_or(0),
            committed: self.shared.log.committed(),
            applied: m.last_applied.map_or(0, |l| l.index),
            log_entries: self.shared.log.len(),
            sessions: self.shared.replica.read(|s| s.lease_owners().count()),
            bad_frames: self.shared.bad_frames.load(Ordering::Relaxed),
            foreign_group: self.shared.foreign_group.load(Ordering::Relaxed),
        }
    }

    /// Graceful shutdown: ends the session (its locks pass on now) and,
    /// on the leader, hands its vote on (see [`steward::retire`]).
    pub(crate) async fn leave(&self) {
        self.shared.sessions.end(self).await;
        steward::retire(&self.shared).await;
    }

    /// Stops Raft and closes the storage.
    pub(crate) async fn stop(&self) {
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::debug!(error = %e, "openraft did not stop cleanly");
        }
        if let Some(disk) = &self.shared.disk {
            disk.close().await;
        }
    }
}

fn raft_config(c: &CoordConfig) -> Result<openraft::Config, String> {
    let election = c.election_timeout.as_millis() as u64;
    openraft::Config {
        cluster_name: "foundation".into(),
        heartbeat_interval: (election / 4).max(1),
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
    .map_err(|e| e.to_string())
}

/// The storage a node starts from: empty in memory, or what its data
/// directory holds.
struct Store {
    raft_id: u64,
    group: Option<GroupId>,
    disk: Option<Arc<disk::Disk>>,
    log: log::MemLog,
    machine: replica::StateMachine,
}

impl Store {
    fn open(config: &CoordConfig, member: u64, inline: bool) -> Result<Store, String> {
        let dir = match &config.storage {
            CoordStorage::Memory => {
                return Ok(Store {
                    raft_id: member,
                    group: None,
                    disk: None,
                    log: log::MemLog::default(),
                    machine: replica::StateMachine::default(),
                })
            }
            CoordStorage::Durable(dir) => dir,
        };
        let bad = |e: String| format!("{}: {e}", dir.display());
        let (disk, loaded) = disk::Disk::open(dir, inline).map_err(|e| e.to_string())?;
        let disk = Arc::new(disk);
        let raft_id = match loaded.meta("raft_id") {
            Some(b) => postcard::from_bytes(b).map_err(|e| bad(format!("raft id: {e}")))?,
            // A new store: this member's id is its Raft id from now on.
            None => {
                let bytes = postcard::to_allocvec(&member).map_err(|e| bad(e.to_string()))?;
                disk.write(vec![disk::Write::Meta("raft_id", bytes)], |_| {});
                member
            }
        };
        let group = match loaded.meta("group") {
            Some(b) => Some(postcard::from_bytes(b).map_err(|e| bad(format!("group: {e}")))?),
            None => None,
        };
        let log = log::MemLog::durable(disk.clone(), &loaded).map_err(bad)?;
        let machine = replica::StateMachine::durable(disk.clone(), &loaded).map_err(bad)?;
        tracing::info!(dir = %dir.display(), raft_id = %NodeId(raft_id), ?group, entries = loaded.log.len(), "coordination storage opened");
        Ok(Store {
            raft_id,
            group,
            disk: Some(disk),
            log,
            machine,
        })
    }
}

/// The clock leases are stamped with: ms since an epoch every node
/// shares. The system's wall clock unless a simulation gives its own
/// ([`Sockets::lease_clock`](crate::Sockets::lease_clock)).
pub type LeaseClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system's wall clock, ms since the Unix epoch.
pub(crate) fn system_clock() -> LeaseClock {
    Arc::new(crate::shell_time::wall_ms)
}

/// What [`start`] needs from the node.
pub(crate) struct Parts {
    pub(crate) messenger: Messenger,
    pub(crate) view: Arc<View>,
    pub(crate) config: CoordConfig,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) cancel: CancellationToken,
    pub(crate) clock: LeaseClock,
    /// Durable storage written on the caller's task (simulations).
    pub(crate) disk_inline: bool,
}

/// Starts this node's Raft and the tasks around it; why not, if it
/// cannot (storage, configuration).
pub(crate) async fn start(parts: Parts) -> Result<Coord, String> {
    let Parts {
        messenger,
        view,
        config,
        inbox,
        members,
        cancel,
        clock,
        disk_inline,
    } = parts;
    let tasks = messenger.tasks.clone();
    let store = Store::open(&config, messenger.id().0, disk_inline)?;
    let id = store.raft_id;
    let rpc = Arc::new(rpc::Rpc::new(
        messenger,
        id,
        store.group,
        store.disk.clone(),
    ));
    let replica = store.machine.replica.clone();
    let log = store.log;
    let disk = store.disk;
    let raft = Raft::new(
        id,
        Arc::new(raft_config(&config)?),
        network::Net(rpc.clone()),
        log.clone(),
        store.machine,
    )
    .await
    .map_err(|e| e.to_string())?;
    let timeout = config.timeout;
    let shared = Arc::new(Shared {
        id,
        raft,
        replica,
        rpc,
        config,
        promoted: watch::channel(0).0,
        clock,
        sessions: session::Sessions::default(),
        tasks: tasks.clone(),
        cancel: cancel.clone(),
        log,
        disk,
        bad_frames: AtomicU64::new(0),
        foreign_group: AtomicU64::new(0),
        tickets: AtomicU64::new(1),
    });
    tasks.spawn(server::serve(shared.clone(), inbox, cancel.child_token()));
    tasks.spawn(steward::Steward::new(shared.clone(), view, members, cancel.child_token()).run());
    Ok(Coord { shared, timeout })
}
