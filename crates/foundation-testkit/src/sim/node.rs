//! One simulated node: the real sans-IO cores (membership, registry state
//! and its sync protocol, quorum, placement) plus the few rules of the
//! tokio shells that the simulation needs, written down here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use foundation::membership::core::foca_config;
use foundation::membership::{MemberId, MembershipCore};
use foundation::process::placement::rendezvous;
use foundation::process::quorum::Quorum;
use foundation::process::SplitBrain;
use foundation::registry::{Entry, EntryKind, RegistryState, ServiceAddr};
use foundation::{config::MembershipConfig, NodeId};

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
    pub(crate) quorum: Quorum,
    /// Singleton instances running here, by name, with their local id.
    pub running: BTreeMap<String, u64>,
    pub(crate) next_local: u64,
    pub(crate) round: usize,
    /// Active members, itself included (see [`SimNode::active`]).
    pub(crate) view: BTreeSet<NodeId>,
    /// A reconcile is scheduled (see `Sim::reconcile_soon`).
    pub(crate) reconcile_pending: bool,
    /// Topics this node subscribes to.
    pub subscribed: BTreeSet<String>,
    /// Per (publisher, topic), the last sequence number delivered.
    pub(crate) last_seq: HashMap<(NodeId, String), u64>,
    /// Messages delivered to this node's subscriptions.
    pub delivered: u64,
    /// Per singleton, the other node last seen holding it.
    pub(crate) last_holder: HashMap<String, NodeId>,
    /// Singletons this node should start, waiting for a holder's handoff
    /// since the given time.
    pub(crate) awaiting: HashMap<String, (NodeId, Duration)>,
    /// Handoffs received and not yet used.
    pub(crate) handoffs: HashSet<String>,
    /// Members that left gracefully.
    pub(crate) left: HashSet<NodeId>,
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
            quorum: Quorum::new(SplitBrain::KeepMajority, stable_after(membership)),
            running: BTreeMap::new(),
            next_local: 1,
            round: 0,
            view: BTreeSet::from([id]),
            reconcile_pending: false,
            subscribed: BTreeSet::new(),
            last_seq: HashMap::new(),
            delivered: 0,
            last_holder: HashMap::new(),
            awaiting: HashMap::new(),
            handoffs: HashSet::new(),
            left: HashSet::new(),
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
        }
    }
}

/// What the process manager does with one singleton on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    Start,
    /// Stop, and hand off to this owner if there is one.
    Stop(Option<NodeId>),
}

/// Decides for singleton `name` on `node` at `now`: the rule of
/// `process/reconcile.rs` (placement by rendezvous over the active
/// members, quorum, registry synced with every member, and a wait of up to
/// [`HANDOFF_WAIT`] for the previous holder's handoff), on the real
/// placement, quorum and registry state.
pub(crate) fn decide(
    node: &mut SimNode,
    name: &str,
    active: &BTreeSet<NodeId>,
    quorum: bool,
    now: Duration,
) -> Decision {
    let owner = rendezvous(name, active.iter().copied());
    let mine = quorum && owner == Some(node.id);
    if let Some(e) = node
        .registry
        .lookup(name)
        .filter(|e| e.service.node != node.id)
    {
        node.last_holder.insert(name.to_owned(), e.service.node);
    }
    if node.running.contains_key(name) {
        return if mine {
            Decision::Keep
        } else {
            Decision::Stop(owner.filter(|o| *o != node.id))
        };
    }
    if !mine {
        node.awaiting.remove(name);
        return Decision::Keep;
    }
    // Start only once this node holds every member's set.
    if !active
        .iter()
        .all(|p| *p == node.id || node.heard.contains(p))
    {
        return Decision::Keep;
    }
    match node.registry.lookup(name).map(|e| e.service.node) {
        Some(other) if other != node.id => {
            // The holder stops and hands off once it sees the same
            // membership; conflict resolution backs this up.
            node.awaiting.entry(name.to_owned()).or_insert((other, now));
            return Decision::Keep;
        }
        _ => {
            if let Some(prev) = node.last_holder.get(name).copied() {
                node.awaiting.entry(name.to_owned()).or_insert((prev, now));
            }
        }
    }
    if let Some((holder, since)) = node.awaiting.get(name).copied() {
        let handing_off = active.contains(&holder) || node.left.contains(&holder);
        if !node.handoffs.contains(name) && handing_off && now.saturating_sub(since) < HANDOFF_WAIT
        {
            return Decision::Keep; // its handoff is on the way
        }
    }
    node.awaiting.remove(name);
    node.last_holder.remove(name);
    node.handoffs.remove(name);
    Decision::Start
}

/// How long a new owner waits for the previous holder's handoff
/// (`process/reconcile.rs`).
pub(crate) const HANDOFF_WAIT: Duration = Duration::from_secs(2);

/// The quorum's stability window, as the node computes it.
pub(crate) fn stable_after(m: &MembershipConfig) -> Duration {
    2 * (m.probe_period + m.suspect_to_down) + m.probe_rtt
}
