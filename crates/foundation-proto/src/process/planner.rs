//! The process planner: what this node should start, stop and adopt, as
//! commands. Sans-IO: it is told `now`, the membership, the specs, what
//! runs here and what the registry says, and returns a [`Plan`]; the
//! node's process manager task executes it, and the simulator drives the
//! same planner for hundreds of nodes.
//!
//! The rules, in the order a pass applies them:
//!
//! 1. Placement: every spec is placed by rendezvous hashing over the
//!    active members, less those that announced their departure (a
//!    handoff marked `leaving`) within [`DEPARTING_FOR`]. Without quorum
//!    (the split-brain policy, [`Quorum`]) only replicated specs run.
//! 2. What runs here and is no longer placed here stops: migrating to its
//!    new owner (with a handoff), or unplaced (quorum lost, no eligible
//!    member, spec removed).
//! 3. Nothing starts before the node is ready (joined, or alone by
//!    configuration) and holds every active member's registrations: a
//!    node that just joined must see the current holder first.
//! 4. Handoffs made stale by another holder are dropped ([`Handoffs`]).
//! 5. An instance placed here starts unless someone else holds it (that
//!    holder stops and hands off once it sees the same membership), or a
//!    holder seen a moment ago is still a member or left gracefully and
//!    its handoff may be on the way (up to [`HANDOFF_WAIT`]), or nobody
//!    was ever seen holding it, no handoff is in hand, and the member set
//!    has not held still for [`FIRST_START_SETTLE`] (nodes that boot
//!    together have partial views for a moment, and each would start its
//!    own instance).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handoffs::Handoffs;
use super::placement::{place, Candidate};
use super::quorum::{Quorum, SplitBrain};
use super::spec::{ChildSpec, Strategy, MAX_SPECS};
use crate::NodeId;

/// How long a new owner waits for the handoff of an instance whose
/// previous holder is still a member, before starting without it.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(2);
/// How long the member set must hold still before this node starts an
/// instance nobody was seen holding (a first start). Nodes that boot
/// together have partial views for a moment (about 100 ms on a LAN), and
/// each would otherwise start its own instance; conflict resolution then
/// stops all but one, and what the others acknowledged is lost. Failover
/// (a holder was seen) does not wait.
pub const FIRST_START_SETTLE: Duration = Duration::from_millis(500);
/// How long a node that announced its shutdown stays out of placement.
pub const DEPARTING_FOR: Duration = Duration::from_secs(30);

/// A member as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Its roles (placement may require one).
    pub roles: Vec<String>,
    /// Whether it is active, left gracefully, or neither (down).
    pub presence: Presence,
}

/// A member's presence, as membership reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Alive or suspect: placement counts it.
    Active,
    /// Left gracefully: it hands off what it ran before it goes.
    Left,
    /// Down (crashed or unreachable): it hands off nothing.
    Down,
}

/// A managed instance running on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    /// The spec it is an instance of.
    pub spec: String,
    /// Its local service id.
    pub local: u64,
}

/// What the planner asks of the node's registry and service host.
pub trait Facts {
    /// The registered holder of `instance`: its node and local id.
    fn holder(&self, instance: &str) -> Option<(NodeId, u64)>;
    /// Whether this node holds `peer`'s registrations.
    fn heard(&self, peer: NodeId) -> bool;
    /// Whether the local service `local` still runs here.
    fn is_running(&self, local: u64) -> bool;
    /// Whether this node can make instances of `kind`.
    fn can_run(&self, kind: &str) -> bool;
}

/// The state of one pass.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Every member membership reports, this node included.
    pub members: &'a [Member],
    /// The live specs.
    pub specs: &'a [ChildSpec],
    /// Managed instances running here, by instance name.
    pub running: &'a BTreeMap<String, Running>,
    /// Instances the node is stopping (a stop command not finished yet).
    pub stopping: &'a HashSet<String>,
    /// Whether the node has joined a cluster (or runs alone by
    /// configuration or after finding nobody).
    pub ready: bool,
}

/// Why an instance stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Its owner is now another node; hand the state off to it.
    Migrate {
        /// The new owner.
        to: NodeId,
    },
    /// It is placed here, but this side of a partition has no quorum.
    QuorumLost,
    /// No member is eligible for it (its role).
    NoEligibleMember,
    /// Its spec was removed.
    SpecRemoved,
}

/// One thing for the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop the running instance (handing off on [`StopCause::Migrate`]).
    Stop {
        /// The instance's name.
        instance: String,
        /// Its local service id.
        local: u64,
        /// Why.
        cause: StopCause,
    },
    /// The registry names this node as holder and the service runs:
    /// count it as running (the manager lost track, e.g. after a restart
    /// of its task).
    Adopt {
        /// The instance's name.
        instance: String,
        /// Its spec.
        spec: String,
        /// Its local service id.
        local: u64,
    },
    /// Start an instance, from the handed-off state if there is one.
    Start {
        /// The instance's name.
        instance: String,
        /// Its spec.
        spec: ChildSpec,
        /// The shard, for partitioned specs.
        shard: Option<u32>,
        /// The state its previous holder handed off.
        handoff: Option<Bytes>,
    },
}

/// Why a pass started nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldBack {
    /// The node has not joined yet.
    NotReady,
    /// The node does not hold every member's registrations yet.
    NotSynced,
}

/// What one pass decided.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// What to do, stops first.
    pub commands: Vec<Command>,
    /// Plan again at this time at the latest (a first start held back).
    pub recheck_at: Option<Instant>,
    /// Whether this side has quorum.
    pub has_quorum: bool,
    /// Whether quorum changed in this pass.
    pub quorum_changed: bool,
    /// Why nothing was started, if so.
    pub held_back: Option<HeldBack>,
    /// Handoffs dropped as stale.
    pub dropped_handoffs: Vec<String>,
    /// Kinds placed here that this node cannot make, each reported once:
    /// (kind, spec).
    pub unrunnable: Vec<(String, String)>,
}

/// The planner of one node. See the module docs for its rules.
#[derive(Debug)]
pub struct Planner {
    me: NodeId,
    quorum: Quorum,
    has_quorum: bool,
    handoffs: Handoffs,
    /// Nodes that announced their shutdown, since when.
    departing: HashMap<NodeId, Instant>,
    /// Instances placed here waiting for a holder's handoff: the holder,
    /// since when.
    awaiting: HashMap<String, (NodeId, Instant)>,
    /// The last other node seen holding each placed instance.
    last_holder: HashMap<String, NodeId>,
    /// Kinds reported as not defined here.
    warned: HashSet<String>,
    /// The active members at the last pass, and since when.
    view: BTreeSet<NodeId>,
    view_since: Option<Instant>,
}

impl Planner {
    /// The planner of node `me` under split-brain `policy`; `stable_window`
    /// is the quorum's (see [`stable_window`](super::quorum::stable_window)).
    pub fn new(me: NodeId, policy: SplitBrain, stable_window: Duration) -> Self {
        Planner {
            me,
            quorum: Quorum::new(policy, stable_window),
            has_quorum: true,
            handoffs: Handoffs::new(MAX_SPECS),
            departing: HashMap::new(),
            awaiting: HashMap::new(),
            last_holder: HashMap::new(),
            warned: HashSet::new(),
            view: BTreeSet::new(),
            view_since: None,
        }
    }

    /// What keep-majority may assume at boot ([`Boot`](super::quorum::Boot)).
    pub fn with_boot(mut self, boot: super::quorum::Boot) -> Self {
        self.quorum = self.quorum.with_boot(boot);
        self
    }

    /// The quorum tracker (its base, its policy).
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// Whether this side had quorum at the last pass.
    pub fn has_quorum(&self) -> bool {
        self.has_quorum
    }

    /// A member left gracefully: it leaves the quorum base at once.
    pub fn member_left(&mut self, id: NodeId) {
        self.quorum.left(id);
    }

    /// A handoff arrived from `from`. Kept even for a spec not known yet
    /// (the spec may arrive right behind it). With `leaving`, the sender
    /// is shutting down and stays out of placement for [`DEPARTING_FOR`].
    /// False when too many handoffs are pending (nothing kept).
    pub fn handoff_received(
        &mut self,
        instance: &str,
        state: Option<Bytes>,
        from: NodeId,
        leaving: bool,
        now: Instant,
    ) -> bool {
        if leaving {
            self.departing.insert(from, now);
        }
        self.handoffs.receive(instance, state, from, now)
    }

    /// Whether a handoff for `instance` is pending.
    pub fn has_handoff(&self, instance: &str) -> bool {
        self.handoffs.has(instance)
    }

    /// Periodic housekeeping: departures older than [`DEPARTING_FOR`] end.
    pub fn tick(&mut self, now: Instant) {
        self.departing
            .retain(|_, since| now.saturating_duration_since(*since) < DEPARTING_FOR);
    }

    /// One pass: what to stop, adopt and start now.
    pub fn plan(&mut self, now: Instant, input: Input<'_>, facts: &dyn Facts) -> Plan {
        let me = self.me;
        let mut plan = Plan::default();
        let active: BTreeSet<NodeId> = ids(input.members, Presence::Active).collect();
        if active != self.view || self.view_since.is_none() {
            self.view = active.clone();
            self.view_since = Some(now);
        }
        let view_since = self.view_since.unwrap_or(now);
        let has_quorum = self.quorum.update(&active, now);
        plan.quorum_changed = has_quorum != self.has_quorum;
        self.has_quorum = has_quorum;
        plan.has_quorum = has_quorum;

        // 1. Placement.
        let candidates = candidates(input.members, |id| {
            id == me || !self.departing.contains_key(&id)
        });
        let mut desired: BTreeMap<String, (&ChildSpec, Option<u32>)> = BTreeMap::new();
        let mut owner_of: HashMap<String, NodeId> = HashMap::new();
        for spec in input.specs {
            for p in place(spec, &candidates) {
                let allowed = has_quorum || spec.strategy == Strategy::Replicated;
                if p.owner == me && allowed {
                    desired.insert(p.instance.clone(), (spec, p.shard));
                }
                owner_of.insert(p.instance, p.owner);
            }
        }
        for inst in owner_of.keys() {
            if let Some((holder, _)) = facts.holder(inst).filter(|(n, _)| *n != me) {
                self.last_holder.insert(inst.clone(), holder);
            }
        }
        self.last_holder
            .retain(|inst, _| owner_of.contains_key(inst));

        // 2. Stop what should not run here.
        for (inst, r) in input.running {
            if desired.contains_key(inst) || input.stopping.contains(inst) {
                continue;
            }
            let cause = match owner_of.get(inst) {
                Some(o) if *o != me => StopCause::Migrate { to: *o },
                Some(_) => StopCause::QuorumLost,
                None if input.specs.iter().any(|s| s.id == r.spec) => StopCause::NoEligibleMember,
                None => StopCause::SpecRemoved,
            };
            plan.commands.push(Command::Stop {
                instance: inst.clone(),
                local: r.local,
                cause,
            });
        }

        // 3. Start nothing before the node is ready and synced.
        if !input.ready {
            plan.held_back = Some(HeldBack::NotReady);
            return plan;
        }
        if !active.iter().all(|p| *p == me || facts.heard(*p)) {
            plan.held_back = Some(HeldBack::NotSynced);
            self.awaiting.retain(|inst, _| desired.contains_key(inst));
            return plan;
        }

        // 4. Drop handoffs another holder made stale, and old ones this
        //    node does not place.
        plan.dropped_handoffs = self.handoffs.prune(
            me,
            now,
            |inst| facts.holder(inst).map(|(n, _)| n),
            |inst| owner_of.get(inst).copied(),
        );

        // 5. Start what should run here.
        let left: HashSet<NodeId> = ids(input.members, Presence::Left).collect();
        for (inst, (spec, shard)) in &desired {
            if input.running.contains_key(inst) || input.stopping.contains(inst) {
                continue;
            }
            match facts.holder(inst) {
                Some((holder, _)) if holder != me => {
                    // The holder stops and hands off once it sees the same
                    // membership; conflict resolution backs this up.
                    self.awaiting.entry(inst.clone()).or_insert((holder, now));
                    continue;
                }
                Some((_, local)) if facts.is_running(local) => {
                    plan.commands.push(Command::Adopt {
                        instance: inst.clone(),
                        spec: spec.id.clone(),
                        local,
                    });
                    continue;
                }
                _ => {
                    // Nobody holds it now. If someone did a moment ago and
                    // did not crash, its handoff is coming. A handoff in
                    // hand also says someone held it: not a first start.
                    if let Some(prev) = self.last_holder.get(inst) {
                        self.awaiting.entry(inst.clone()).or_insert((*prev, now));
                    } else if !self.handoffs.has(inst)
                        && now.saturating_duration_since(view_since) < FIRST_START_SETTLE
                    {
                        // A first start: wait until the view holds still.
                        let due = view_since + FIRST_START_SETTLE;
                        plan.recheck_at = Some(plan.recheck_at.map_or(due, |r| r.min(due)));
                        continue;
                    }
                }
            }
            if let Some((holder, since)) = self.awaiting.get(inst) {
                // A holder that is still a member, or that left gracefully,
                // sends a handoff (its leave notice may overtake it); one
                // that crashed sends nothing.
                let handing_off = active.contains(holder) || left.contains(holder);
                let waited = now.saturating_duration_since(*since);
                if !self.handoffs.has(inst) && handing_off && waited < HANDOFF_WAIT {
                    continue; // its handoff is on the way
                }
            }
            self.awaiting.remove(inst);
            self.last_holder.remove(inst);
            if !facts.can_run(&spec.kind) {
                if self.warned.insert(spec.kind.clone()) {
                    plan.unrunnable.push((spec.kind.clone(), spec.id.clone()));
                }
                continue;
            }
            plan.commands.push(Command::Start {
                instance: inst.clone(),
                spec: (*spec).clone(),
                shard: *shard,
                handoff: self.handoffs.take(inst),
            });
        }
        self.awaiting.retain(|inst, _| desired.contains_key(inst));
        plan
    }
}

/// Where `instance` of `spec` goes when this node (`me`) shuts down: its
/// owner among the other active members.
pub fn successor(
    spec: &ChildSpec,
    instance: &str,
    members: &[Member],
    me: NodeId,
) -> Option<NodeId> {
    place(spec, &candidates(members, |id| id != me))
        .into_iter()
        .find(|p| p.instance == instance)
        .map(|p| p.owner)
}

/// The active members placement may use: those `keep` accepts.
fn candidates(members: &[Member], keep: impl Fn(NodeId) -> bool) -> Vec<Candidate> {
    members
        .iter()
        .filter(|m| m.presence == Presence::Active && keep(m.id))
        .map(|m| Candidate {
            id: m.id,
            roles: m.roles.clone(),
        })
        .collect()
}

/// The ids of the members with `presence`.
fn ids(members: &[Member], presence: Presence) -> impl Iterator<Item = NodeId> + '_ {
    members
        .iter()
        .filter(move |m| m.presence == presence)
        .map(|m| m.id)
}
