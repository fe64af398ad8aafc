//! One simulated node: the real sans-IO cores (membership, registry state
//! and its sync protocol, and the process planner with its quorum,
//! placement and handoffs) plus the few rules of the tokio shells that the
//! simulation needs, written down here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use foundation::{config::MembershipConfig, NodeId};
use foundation_proto::membership::core::foca_config;
use foundation_proto::membership::{MemberId, MembershipCore};
use foundation_proto::process::planner::{self, Facts, Planner, Presence};
use foundation_proto::process::quorum::stable_window;
use foundation_proto::process::SplitBrain;
use foundation_proto::registry::{Entry, EntryKind, RegistryState, ServiceAddr};

/// A node of the simulation.
#[derive(Debug)]
pub struct SimNode {
    /// Its id (a restart gets a new one, as a new process does).
    pub id: NodeId,
    /// Its SWIM address.
    pub addr: SocketAddr,
    /// Counts restarts; events for an older incarnation are dropped.
    pub(crate) incarnation: u64,
    /// Whether the process runs (false until `Sim::start`).
    pub alive: bool,
    /// Paused (SIGSTOP): timers and messages wait until it resumes.
    pub(crate) paused: bool,
    /// The membership core.
    pub core: MembershipCore,
    /// The registry state.
    pub registry: RegistryState,
    /// Peers whose own registry set this node holds.
    pub(crate) heard: HashSet<NodeId>,
    /// The process manager's planner (the node's own).
    pub(crate) planner: Planner,
    /// Singleton instances running here, by name, with their local id.
    pub running: BTreeMap<String, u64>,
    pub(crate) next_local: u64,
    pub(crate) round: usize,
    /// Active members, itself included (see [`SimNode::active`]).
    pub(crate) view: BTreeSet<NodeId>,
    /// Every member as the planner sees it, itself included.
    pub(crate) members: Vec<planner::Member>,
    /// When the planner asked for its next pass.
    pub(crate) recheck: Option<Duration>,
    /// A reconcile is scheduled (see `Sim::reconcile_soon`).
    pub(crate) reconcile_pending: bool,
    /// Topics this node subscribes to.
    pub subscribed: BTreeSet<String>,
    /// Per (publisher, topic), the last sequence number delivered.
    pub(crate) last_seq: HashMap<(NodeId, String), u64>,
    /// Messages delivered to this node's subscriptions.
    pub delivered: u64,
    /// When the process started.
    pub(crate) started: Duration,
    /// Registry owners seen as non-members, since when.
    pub(crate) strays: HashMap<NodeId, std::time::Instant>,
}

impl SimNode {
    pub(crate) fn new(
        id: NodeId,
        addr: SocketAddr,
        generation: u64,
        membership: &MembershipConfig,
        seed: u64,
    ) -> Self {
        let local = MemberId {
            id,
            addr,
            transport: SocketAddr::new(addr.ip(), addr.port() + 1),
            name: format!("sim-{}", id.0),
            roles: vec![],
            version: "sim".into(),
            generation,
        };
        SimNode {
            id,
            addr,
            incarnation: generation,
            alive: false,
            paused: false,
            core: MembershipCore::new(local, foca_config(membership), seed),
            registry: RegistryState::new(id),
            heard: HashSet::new(),
            planner: Planner::new(
                id,
                SplitBrain::KeepMajority,
                stable_window(
                    membership.probe_period,
                    membership.suspect_to_down,
                    membership.probe_rtt,
                ),
            ),
            running: BTreeMap::new(),
            next_local: 1,
            round: 0,
            view: BTreeSet::from([id]),
            members: vec![planner::Member {
                id,
                roles: vec![],
                presence: Presence::Active,
            }],
            recheck: None,
            reconcile_pending: false,
            subscribed: BTreeSet::new(),
            last_seq: HashMap::new(),
            delivered: 0,
            started: Duration::ZERO,
            strays: HashMap::new(),
        }
    }

    /// Active members as this node sees them, itself included (as of the
    /// last event this node handled).
    pub fn active(&self) -> &BTreeSet<NodeId> {
        &self.view
    }

    /// Rebuilds the active set if the membership core changed since the
    /// last call (the shell's view watch; rebuilding it on every read made
    /// a 1,000-node run cubic).
    pub(crate) fn refresh_view(&mut self) {
        if self.core.take_dirty() {
            self.view = self
                .core
                .members()
                .filter(|m| m.state.is_active())
                .map(|m| m.id)
                .chain([self.id])
                .collect();
            let me = planner::Member {
                id: self.id,
                roles: vec![],
                presence: Presence::Active,
            };
            self.members = self
                .core
                .members()
                .map(planner::Member::from)
                .chain([me])
                .collect();
        }
    }

    /// A unique registry entry for a singleton started here.
    pub(crate) fn entry(&mut self, name: &str, kind: EntryKind, at_ms: u64) -> Entry {
        let local = if kind == EntryKind::Interest {
            0
        } else {
            self.next_local += 1;
            self.next_local
        };
        Entry {
            name: name.to_owned(),
            kind,
            service: ServiceAddr {
                node: self.id,
                local,
            },
            protocol: String::new(),
            registered_at: at_ms,
            meta: Default::default(),
        }
    }
}

/// A simulated node's registry and running singletons, as the planner
/// asks them.
pub(crate) struct SimFacts<'a> {
    pub(crate) registry: &'a RegistryState,
    pub(crate) heard: &'a HashSet<NodeId>,
    pub(crate) running: &'a BTreeMap<String, u64>,
}

impl Facts for SimFacts<'_> {
    fn holder(&self, instance: &str) -> Option<(NodeId, u64)> {
        self.registry
            .lookup(instance)
            .map(|e| (e.service.node, e.service.local))
    }
    fn heard(&self, peer: NodeId) -> bool {
        self.heard.contains(&peer)
    }
    fn is_running(&self, local: u64) -> bool {
        self.running.values().any(|l| *l == local)
    }
    fn can_run(&self, _kind: &str) -> bool {
        true
    }
}
