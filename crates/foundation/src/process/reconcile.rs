//! The process manager's task: replicates specs, and on every change of
//! specs, membership or registry, reconciles what runs here with what
//! placement says should.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::manager::{lock, Instance, ManagerShared, Running};
use super::manager_wire::{ManagerMsg, KIND_MSG};
use super::placement::{place, Candidate};
use super::quorum::Quorum;
use super::service::StopReason;
use super::spec::{ChildSpec, Strategy, MAX_SPECS};
use crate::id::NodeId;
use crate::membership::MemberEvent;
use crate::shell_time::sleep_until;
use crate::transport::{Inbox, Incoming};
use crate::Node;

/// How long a new owner waits for the handoff of an instance whose
/// previous holder is still a member, before starting without it.
pub(crate) const HANDOFF_WAIT: Duration = Duration::from_secs(2);
/// How long the member set must hold still before this node starts an
/// instance nobody was seen holding (a first start). Nodes that boot
/// together have partial views for a moment (about 100 ms on a LAN), and
/// each would otherwise start its own instance; conflict resolution then
/// stops all but one, and what the others acknowledged is lost. Failover
/// (a holder was seen) does not wait.
pub(crate) const FIRST_START_SETTLE: Duration = Duration::from_millis(500);
/// How long a node that announced its shutdown stays out of placement.
const DEPARTING_FOR: Duration = Duration::from_secs(30);

pub(crate) struct ManagerTask {
    pub(crate) node: Node,
    pub(crate) shared: Arc<ManagerShared>,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) changes: watch::Receiver<u64>,
    pub(crate) interval: Duration,
    pub(crate) cancel: CancellationToken,
    pub(crate) quorum: Quorum,
}

struct Work {
    departing: HashMap<NodeId, Instant>,
    awaiting: HashMap<String, (NodeId, Instant)>,
    /// The last other node seen holding each instance.
    last_holder: HashMap<String, NodeId>,
    stopping: Arc<Mutex<HashSet<String>>>,
    warned: HashSet<String>,
    /// The active members at the last pass, and since when.
    view: BTreeSet<NodeId>,
    view_since: Instant,
    /// When a first start held back by [`FIRST_START_SETTLE`] is due.
    recheck: Option<Instant>,
}

impl ManagerTask {
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0usize;
        let mut w = Work {
            departing: HashMap::new(),
            awaiting: HashMap::new(),
            last_holder: HashMap::new(),
            stopping: Arc::default(),
            warned: HashSet::new(),
            view: BTreeSet::new(),
            view_since: Instant::now(),
            recheck: None,
        };
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                m = self.inbox.recv() => match m {
                    Some(m) => self.message(m, &mut w),
                    None => return,
                },
                ev = self.members.recv() => match ev {
                    Ok(MemberEvent::Left(m)) => self.quorum.left(m.id),
                    Ok(MemberEvent::Up(m)) => self.send_specs(m.id),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                r = self.changes.changed() => if r.is_err() { return },
                _ = self.shared.wake.notified() => {}
                _ = sleep_until(w.recheck) => w.recheck = None,
                _ = tick.tick() => {
                    round = round.wrapping_add(1);
                    self.anti_entropy(round);
                    let now = Instant::now();
                    w.departing.retain(|_, since| now.duration_since(*since) < DEPARTING_FOR);
                }
            }
            // Messages already here (a handoff right behind the registry
            // change that woke us) count before deciding.
            while let Some(m) = self.inbox.try_recv() {
                self.message(m, &mut w);
            }
            if !self.shared.shutting_down.load(Ordering::Acquire) {
                self.reconcile(&mut w);
            }
        }
    }

    fn send(&self, to: NodeId, msg: &ManagerMsg) {
        self.shared.outbox.send(to, KIND_MSG, msg.encode());
    }

    fn send_specs(&self, to: NodeId) {
        let entries: Vec<_> = self
            .shared
            .specs()
            .entries()
            .map(|(i, e)| (i.clone(), e.clone()))
            .collect();
        if !entries.is_empty() {
            self.send(to, &ManagerMsg::Specs(entries));
        }
    }

    fn anti_entropy(&self, round: usize) {
        let mut peers = self.shared.messenger.peers();
        if peers.is_empty() {
            return;
        }
        peers.sort();
        let digest = self.shared.specs().digest();
        self.send(
            peers[round % peers.len()],
            &ManagerMsg::Digest {
                digest,
                reply: false,
            },
        );
    }

    fn message(&self, m: Incoming, w: &mut Work) {
        let from = m.from;
        let msg = match ManagerMsg::decode(&m.payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "malformed process manager message dropped");
                metrics::counter!("foundation_process_malformed_total").increment(1);
                return;
            }
        };
        match msg {
            ManagerMsg::Specs(entries) => {
                if entries.len() <= MAX_SPECS {
                    self.shared.merge(entries);
                }
            }
            ManagerMsg::Digest { digest, reply } => {
                if digest != self.shared.specs().digest() {
                    self.send_specs(from);
                    if !reply {
                        let digest = self.shared.specs().digest();
                        self.send(
                            from,
                            &ManagerMsg::Digest {
                                digest,
                                reply: true,
                            },
                        );
                    }
                }
            }
            ManagerMsg::HandoffAck { instance } => {
                if let Some(tx) = lock(&self.shared.handoff_acks).remove(&instance) {
                    let _ = tx.send(());
                }
            }
            ManagerMsg::Handoff {
                instance,
                state,
                leaving,
            } => {
                // Kept even for a spec not known yet: the spec may arrive
                // right behind it (another task of the sender queues it).
                let bytes = state.as_ref().map_or(0, |s| s.len());
                if lock(&self.shared.handoffs).receive(&instance, state, from, Instant::now()) {
                    tracing::debug!(%instance, peer = %from, bytes, leaving, "handoff received");
                } else {
                    tracing::warn!(%instance, peer = %from, "too many pending handoffs: dropped");
                }
                self.send(from, &ManagerMsg::HandoffAck { instance });
                self.shared.wake.notify_one();
                if leaving {
                    w.departing.insert(from, Instant::now());
                }
            }
        }
    }

    fn reconcile(&mut self, w: &mut Work) {
        let node = &self.node;
        let me = node.id();
        let all_members = node.members();
        let members_left: HashSet<NodeId> = all_members
            .iter()
            .filter(|m| m.state == crate::MemberState::Left)
            .map(|m| m.id)
            .collect();
        let members: Vec<crate::Member> = all_members
            .into_iter()
            .filter(|m| m.state.is_active())
            .collect();
        let active: BTreeSet<NodeId> = members.iter().map(|m| m.id).collect();
        if active != w.view {
            w.view = active.clone();
            w.view_since = Instant::now();
        }
        let has_quorum = self.quorum.update(&active, crate::shell_time::now());
        *lock(&self.shared.quorum_base) = if self.quorum.is_confirmed() {
            self.quorum.base().iter().copied().collect()
        } else {
            Vec::new()
        };
        if self.shared.quorum.swap(has_quorum, Ordering::Relaxed) != has_quorum {
            tracing::warn!(node = %me, has_quorum, policy = ?self.quorum.policy(), active = active.len(), base = self.quorum.base().len(), "quorum changed");
        }
        let candidates = candidates(&members, |id| id == me || !w.departing.contains_key(&id));
        let specs: Vec<ChildSpec> = self.shared.specs().specs().cloned().collect();
        let mut desired: BTreeMap<String, (ChildSpec, Option<u32>)> = BTreeMap::new();
        let mut owner_of: HashMap<String, NodeId> = HashMap::new();
        for spec in &specs {
            for p in place(spec, &candidates) {
                owner_of.insert(p.instance.clone(), p.owner);
                let allowed = has_quorum || spec.strategy == Strategy::Replicated;
                if p.owner == me && allowed {
                    desired.insert(p.instance, (spec.clone(), p.shard));
                }
            }
        }
        tracing::debug!(
            members = candidates.len(),
            departing = w.departing.len(),
            has_quorum,
            specs = specs.len(),
            desired = ?desired.keys().collect::<Vec<_>>(),
            "placement"
        );
        {
            let registry = node.registry();
            for inst in owner_of.keys() {
                if let Some(e) = registry.whereis(inst).filter(|e| e.service.node != me) {
                    w.last_holder.insert(inst.clone(), e.service.node);
                }
            }
            w.last_holder.retain(|inst, _| owner_of.contains_key(inst));
        }
        let host = node.host().clone();
        lock(&self.shared.running).retain(|_, r| host.is_running(r.local));
        let running: Vec<(String, Running)> = lock(&self.shared.running)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let spec_ids: HashSet<&str> = specs.iter().map(|s| s.id.as_str()).collect();

        // Stop what should not run here.
        for (inst, r) in &running {
            if desired.contains_key(inst) || lock(&w.stopping).contains(inst) {
                continue;
            }
            let (reason, to) = match owner_of.get(inst) {
                Some(o) if *o != me => (StopReason::Migrate { to: *o }, Some(*o)),
                Some(_) => (StopReason::Unplaced("quorum lost".into()), None),
                None if spec_ids.contains(r.spec.as_str()) => {
                    (StopReason::Unplaced("no eligible member".into()), None)
                }
                None => (StopReason::Normal, None),
            };
            tracing::debug!(instance = %inst, %reason, "stopping a managed instance");
            lock(&w.stopping).insert(inst.clone());
            let (shared, host, stopping) = (self.shared.clone(), host.clone(), w.stopping.clone());
            let (inst, local) = (inst.clone(), r.local);
            tokio::spawn(async move {
                let state = host.stop_for_handoff(local, reason).await;
                lock(&shared.running).remove(&inst);
                if let Some(to) = to {
                    hand_off(&shared, to, &inst, state, false).await;
                }
                host.withdraw(local);
                lock(&stopping).remove(&inst);
                shared.wake.notify_one();
            });
        }

        // Start what should, once this node holds every member's
        // registrations: a node that just joined must see the current
        // holder before deciding that nobody runs an instance.
        let peers: Vec<NodeId> = active.iter().copied().filter(|p| *p != me).collect();
        if !node.is_ready() {
            tracing::debug!("not joined yet: not starting instances");
            return;
        }
        if !node.registry().shared.has_heard_all(&peers) {
            tracing::debug!("registry not synced with every member yet: not starting instances");
            w.awaiting.retain(|inst, _| desired.contains_key(inst));
            return;
        }
        let registry = node.registry();
        let now = Instant::now();
        // Before anything starts from a handoff: drop those that another
        // holder has made stale, and old ones this node does not place.
        let stale = lock(&self.shared.handoffs).prune(
            me,
            now,
            |inst| registry.whereis(inst).map(|e| e.service.node),
            |inst| owner_of.get(inst).copied(),
        );
        if !stale.is_empty() {
            tracing::debug!(instances = ?stale, "dropped stale handoffs");
        }
        for (inst, (spec, shard)) in &desired {
            if lock(&self.shared.running).contains_key(inst) || lock(&w.stopping).contains(inst) {
                continue;
            }
            match registry.whereis(inst) {
                Some(e) if e.service.node != me => {
                    // The holder stops and hands off once it sees the same
                    // membership; conflict resolution backs this up.
                    w.awaiting
                        .entry(inst.clone())
                        .or_insert((e.service.node, now));
                    continue;
                }
                Some(e) if host.is_running(e.service.local) => {
                    lock(&self.shared.running).insert(
                        inst.clone(),
                        Running {
                            spec: spec.id.clone(),
                            local: e.service.local,
                        },
                    );
                    continue;
                }
                _ => {
                    // Nobody holds it now. If someone did a moment ago and
                    // did not crash, its handoff is coming.
                    if let Some(prev) = w.last_holder.get(inst) {
                        w.awaiting.entry(inst.clone()).or_insert((*prev, now));
                    } else if now.duration_since(w.view_since) < FIRST_START_SETTLE {
                        // A first start: wait until the view holds still.
                        let due = w.view_since + FIRST_START_SETTLE;
                        w.recheck = Some(w.recheck.map_or(due, |r| r.min(due)));
                        continue;
                    }
                }
            }
            let have_handoff = lock(&self.shared.handoffs).has(inst);
            if let Some((holder, since)) = w.awaiting.get(inst) {
                // A holder that is still a member, or that left gracefully,
                // sends a handoff (its leave notice may overtake it); one
                // that crashed sends nothing.
                let handing_off = active.contains(holder) || members_left.contains(holder);
                if !have_handoff && handing_off && now.duration_since(*since) < HANDOFF_WAIT {
                    continue; // its handoff is on the way
                }
            }
            w.awaiting.remove(inst);
            w.last_holder.remove(inst);
            let Some(starter) = self.shared.starter(&spec.kind) else {
                if w.warned.insert(spec.kind.clone()) {
                    tracing::warn!(kind = %spec.kind, spec = %spec.id, "kind not defined on this node: cannot run its instances here");
                }
                continue;
            };
            let handoff = lock(&self.shared.handoffs).take(inst);
            let instance = Instance {
                spec: spec.id.clone(),
                name: inst.clone(),
                shard: *shard,
            };
            tracing::debug!(instance = %inst, handoff = handoff.is_some(), "starting a managed instance");
            match starter(node, spec, &instance, handoff) {
                Ok(local) => {
                    lock(&self.shared.running).insert(
                        inst.clone(),
                        Running {
                            spec: spec.id.clone(),
                            local,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(instance = %inst, error = %e, "managed instance not started")
                }
            }
        }
        w.awaiting.retain(|inst, _| desired.contains_key(inst));
    }
}

/// The members placement may use: active ones that `keep` accepts.
fn candidates(members: &[crate::Member], keep: impl Fn(NodeId) -> bool) -> Vec<Candidate> {
    members
        .iter()
        .filter(|m| keep(m.id))
        .map(|m| Candidate {
            id: m.id,
            roles: m.roles.clone(),
        })
        .collect()
}

/// Node shutdown: stops every managed instance and hands its state to the
/// instance's next owner (placement without this node), before leaving.
pub(crate) async fn hand_off_all(node: &Node, shared: &ManagerShared) {
    shared.shutting_down.store(true, Ordering::Release);
    let me = node.id();
    let candidates = candidates(&node.active_members(), |id| id != me);
    let running: Vec<(String, Running)> = lock(&shared.running)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (inst, r) in running {
        let target = shared.specs().get(&r.spec).and_then(|spec| {
            place(spec, &candidates)
                .into_iter()
                .find(|p| p.instance == inst)
                .map(|p| p.owner)
        });
        let state = node
            .host()
            .stop_for_handoff(r.local, StopReason::Shutdown)
            .await;
        lock(&shared.running).remove(&inst);
        if let Some(to) = target {
            hand_off(shared, to, &inst, state, true).await;
        }
        node.host().withdraw(r.local);
    }
}

/// How long a handoff waits for its acknowledgement before the sender
/// withdraws the registration anyway.
const HANDOFF_ACK_WAIT: Duration = Duration::from_secs(2);

/// Sends `instance`'s state to its next owner and waits (bounded) until
/// the next owner holds it. Only then does the caller withdraw the
/// registration: the next owner sees a holder until it has the state, so
/// it never starts the instance without it.
async fn hand_off(
    shared: &ManagerShared,
    to: NodeId,
    instance: &str,
    state: Option<bytes::Bytes>,
    leaving: bool,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    lock(&shared.handoff_acks).insert(instance.to_owned(), tx);
    let msg = ManagerMsg::Handoff {
        instance: instance.to_owned(),
        state,
        leaving,
    };
    // Sent directly: during shutdown the outbox stops with the node.
    match shared.messenger.send_auto(to, KIND_MSG, msg.encode()).await {
        Ok(()) => match tokio::time::timeout(HANDOFF_ACK_WAIT, rx).await {
            Ok(Ok(())) => tracing::debug!(%instance, peer = %to, "handed off"),
            _ => tracing::warn!(%instance, peer = %to, "handoff not acknowledged within 2 s"),
        },
        Err(e) => {
            tracing::warn!(%instance, peer = %to, error = %e, "handoff not sent: the next owner starts without state")
        }
    }
    lock(&shared.handoff_acks).remove(instance);
}
