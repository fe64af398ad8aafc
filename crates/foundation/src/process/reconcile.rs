//! The process manager's task: replicates specs, and on every change of
//! specs, membership or registry, asks the planner what to start, stop
//! and adopt, and does it. The decisions are the planner's
//! (`foundation_proto::process::planner`); this file only executes them.

use crate::locks::Locked as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::manager::{Instance, ManagerShared, Running};
use super::manager_wire::{ManagerMsg, KIND_MSG};
use super::planner::{self, Command, Facts, Input, Planner, Presence, StopCause};
use super::quorum_log::{Change, QuorumLog};
use super::scope::Scope;
use super::spec::{ChildSpec, MAX_SPECS};
use crate::context::RequestContext;
use crate::id::NodeId;
use crate::membership::MemberEvent;
use crate::services::StopReason;
use crate::shell_time::{now, sleep_until};
use crate::spans::SpanKind;
use crate::transport::{Inbox, Incoming};

pub(crate) struct ManagerTask {
    pub(crate) scope: Scope,
    pub(crate) shared: Arc<ManagerShared>,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) changes: watch::Receiver<u64>,
    pub(crate) interval: Duration,
    pub(crate) cancel: CancellationToken,
    pub(crate) planner: Planner,
    /// What has been said about quorum.
    pub(crate) quorum_log: QuorumLog,
    /// The request context each received handoff came in, for the start
    /// of its instance (bounded by [`MAX_HANDOFF_CONTEXTS`]).
    pub(crate) handoff_contexts: HashMap<String, RequestContext>,
}

/// Most handoff contexts held for instances not started yet.
const MAX_HANDOFF_CONTEXTS: usize = 1024;

impl ManagerTask {
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0usize;
        let stopping: Arc<Mutex<HashSet<String>>> = Arc::default();
        // When a first start held back by the planner is due.
        let mut recheck: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                m = self.inbox.recv() => match m {
                    Some(m) => self.message(m),
                    None => return,
                },
                ev = self.members.recv() => match ev {
                    Ok(MemberEvent::Left(m)) => self.planner.member_left(m.id),
                    Ok(MemberEvent::Up(m)) => self.send_specs(m.id),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                r = self.changes.changed() => if r.is_err() { return },
                _ = self.shared.wake.notified() => {}
                _ = sleep_until(recheck) => recheck = None,
                _ = tick.tick() => {
                    round = round.wrapping_add(1);
                    self.anti_entropy(round);
                    self.planner.tick(now());
                }
            }
            // Messages already here (a handoff right behind the registry
            // change that woke us) count before deciding.
            while let Some(m) = self.inbox.try_recv() {
                self.message(m);
            }
            if !self.shared.shutting_down.load(Ordering::Acquire) {
                if let Some(at) = self.reconcile(&stopping) {
                    let at = tokio::time::Instant::from_std(at);
                    recheck = Some(recheck.map_or(at, |r| r.min(at)));
                }
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

    fn message(&mut self, mut m: Incoming) {
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
                if entries.len() > MAX_SPECS {
                    tracing::warn!(peer = %from, entries = entries.len(), "spec message larger than {MAX_SPECS} entries dropped");
                    metrics::counter!("foundation_process_specs_refused_total")
                        .increment(entries.len() as u64);
                    return;
                }
                let (good, bad): (Vec<_>, Vec<_>) =
                    entries.into_iter().partition(|(id, e)| e.check(id).is_ok());
                if let Some((id, e)) = bad.first() {
                    if let Err(why) = e.check(id) {
                        tracing::warn!(peer = %from, refused = bad.len(), first = %why, "invalid specs from a peer refused");
                    }
                    metrics::counter!("foundation_process_specs_refused_total")
                        .increment(bad.len() as u64);
                }
                self.shared.merge(good);
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
                if let Some(tx) = self.shared.handoff_acks.locked().remove(&instance) {
                    let _ = tx.send(());
                }
            }
            ManagerMsg::Handoff {
                instance,
                state,
                leaving,
            } => {
                let bytes = state.as_ref().map_or(0, |s| s.len());
                if self
                    .planner
                    .handoff_received(&instance, state, from, leaving, now())
                {
                    tracing::debug!(%instance, peer = %from, bytes, leaving, "handoff received");
                    let rc = RequestContext::from_frame(m.context.take(), &m.headers);
                    self.keep_handoff_context(&instance, from, rc);
                    // Acknowledged only once held: the sender's wait then
                    // tells the truth (a dropped handoff times out there
                    // and is logged on both sides).
                    self.send(from, &ManagerMsg::HandoffAck { instance });
                } else {
                    metrics::counter!("foundation_process_handoffs_dropped_total").increment(1);
                    tracing::warn!(%instance, peer = %from, "too many pending handoffs: dropped, not acknowledged");
                }
                self.shared.wake.notify_one();
            }
        }
    }

    /// One planner pass, executed; when the planner wants another pass.
    fn reconcile(&mut self, stopping: &Arc<Mutex<HashSet<String>>>) -> Option<std::time::Instant> {
        let scope = self.scope.clone();
        let me = scope.id();
        let members = planner_members(&scope);
        let specs: Vec<ChildSpec> = self.shared.specs().specs().cloned().collect();
        let host = scope.host.clone();
        self.shared
            .running
            .locked()
            .retain(|_, r| host.is_running(r.local));
        let running: BTreeMap<String, Running> = self.shared.running.locked().clone();
        let stopping_now = stopping.locked().clone();
        let input = Input {
            members: &members,
            specs: &specs,
            running: &running,
            stopping: &stopping_now,
            ready: scope.view.is_ready(),
        };
        let plan = self.planner.plan(
            now(),
            input,
            &NodeFacts {
                scope: &scope,
                shared: &self.shared,
            },
        );
        self.shared.quorum.store(plan.has_quorum, Ordering::Relaxed);
        let quorum = self.planner.quorum();
        *self.shared.quorum_base.locked() = if quorum.is_confirmed() {
            quorum.base().iter().copied().collect()
        } else {
            Vec::new()
        };
        if let Some(change) = self
            .quorum_log
            .changed(plan.quorum_changed, plan.has_quorum)
        {
            let active = members
                .iter()
                .filter(|m| m.presence == Presence::Active)
                .count();
            let (policy, base) = (quorum.policy(), quorum.base().len());
            match change {
                Change::Reached => {
                    tracing::info!(node = %me, ?policy, active, base, "quorum reached")
                }
                Change::Lost => {
                    tracing::warn!(node = %me, ?policy, active, base, "quorum lost: singletons and shards on this side stop")
                }
            }
        }
        if self
            .quorum_log
            .still_waiting(now(), quorum.waiting_for_peers())
        {
            tracing::warn!(policy = ?quorum.policy(), "no quorum yet: this node has not seen enough peers to know it is not one of several isolated nodes, so singletons and shards wait (set process.expected_members, or 1 to run a cluster of one)");
        }
        if let Some(why) = plan.held_back {
            tracing::debug!(?why, "not starting instances yet");
        }
        if !plan.dropped_handoffs.is_empty() {
            tracing::debug!(instances = ?plan.dropped_handoffs, "dropped stale handoffs");
        }
        for (kind, spec) in &plan.unrunnable {
            tracing::warn!(%kind, %spec, "kind not defined on this node: cannot run its instances here");
        }
        for command in plan.commands {
            let (decision, instance) = match &command {
                Command::Stop { instance, .. } => ("stop", instance),
                Command::Adopt { instance, .. } => ("adopt", instance),
                Command::Start { instance, .. } => ("start", instance),
            };
            // A start continues the trace of the handoff it starts from.
            let received = self.handoff_contexts.remove(instance);
            let place = || {
                scope.host.spans().decision("place", || {
                    vec![
                        ("foundation.instance", instance.clone()),
                        ("foundation.decision", decision.to_owned()),
                    ]
                })
            };
            let placed = match received {
                Some(rc) => rc.sync_scope(place),
                None => place(),
            };
            match command {
                Command::Stop {
                    instance,
                    local,
                    cause,
                } => {
                    self.stop(instance, local, cause, stopping, placed);
                }
                Command::Adopt {
                    instance,
                    spec,
                    local,
                } => {
                    self.shared
                        .running
                        .locked()
                        .insert(instance, Running { spec, local });
                }
                Command::Start {
                    instance,
                    spec,
                    shard,
                    handoff,
                } => {
                    let Some(starter) = self.shared.starter(&spec.kind) else {
                        continue; // undefined since the pass began
                    };
                    let inst = Instance {
                        spec: spec.id.clone(),
                        name: instance.clone(),
                        shard,
                    };
                    tracing::debug!(%instance, handoff = handoff.is_some(), "starting a managed instance");
                    match starter(&scope, &spec, &inst, handoff, placed) {
                        Ok(local) => {
                            self.shared.running.locked().insert(
                                instance,
                                Running {
                                    spec: spec.id,
                                    local,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(%instance, error = %e, "managed instance not started")
                        }
                    }
                }
            }
        }
        plan.recheck_at
    }

    /// Stops `instance` in a task of its own: it waits for the service to
    /// stop, hands its state to the new owner on a migration, and only
    /// then withdraws the registration.
    fn stop(
        &self,
        instance: String,
        local: u64,
        cause: StopCause,
        stopping: &Arc<Mutex<HashSet<String>>>,
        context: Option<RequestContext>,
    ) {
        let (reason, to) = match cause {
            StopCause::Migrate { to } => (StopReason::Migrate { to }, Some(to)),
            StopCause::QuorumLost => (StopReason::Unplaced("quorum lost".into()), None),
            StopCause::NoEligibleMember => {
                (StopReason::Unplaced("no eligible member".into()), None)
            }
            StopCause::SpecRemoved => (StopReason::Normal, None),
        };
        tracing::debug!(%instance, %reason, "stopping a managed instance");
        stopping.locked().insert(instance.clone());
        let (shared, host, stopping) = (
            self.shared.clone(),
            self.scope.host.clone(),
            stopping.clone(),
        );
        let work = async move {
            let state = host.stop_for_handoff(local, reason).await;
            shared.running.locked().remove(&instance);
            if let Some(to) = to {
                hand_off(&shared, to, &instance, state, false).await;
            }
            host.withdraw(local);
            stopping.locked().remove(&instance);
            shared.wake.notify_one();
        };
        // The handoff goes out in the trace of the decision to stop.
        match context {
            Some(rc) => self.shared.messenger.tasks.spawn(rc.scope(work)),
            None => self.shared.messenger.tasks.spawn(work),
        }
    }

    /// Keeps the context a handoff came in (its `handoff` span's), for the
    /// start of its instance.
    fn keep_handoff_context(&mut self, instance: &str, from: NodeId, rc: RequestContext) {
        if rc.trace().is_none() || self.handoff_contexts.len() >= MAX_HANDOFF_CONTEXTS {
            return;
        }
        let spans = &self.shared.messenger.spans;
        let attrs = || {
            vec![
                ("foundation.instance", instance.to_owned()),
                ("foundation.peer.id", from.to_string()),
            ]
        };
        let next = spans.mark("handoff", SpanKind::Consumer, &rc, attrs);
        self.handoff_contexts.insert(instance.to_owned(), next);
    }
}

/// The node's registry and service host, as the planner asks them.
struct NodeFacts<'a> {
    scope: &'a Scope,
    shared: &'a ManagerShared,
}

impl Facts for NodeFacts<'_> {
    fn holder(&self, instance: &str) -> Option<(NodeId, u64)> {
        self.scope
            .registry
            .whereis(instance)
            .map(|e| (e.service.node, e.service.local))
    }
    fn heard(&self, peer: NodeId) -> bool {
        self.scope.registry.shared.has_heard_all(&[peer])
    }
    fn is_running(&self, local: u64) -> bool {
        self.scope.host.is_running(local)
    }
    fn can_run(&self, kind: &str) -> bool {
        self.shared.starter(kind).is_some()
    }
}

/// Membership as the planner sees it.
fn planner_members(scope: &Scope) -> Vec<planner::Member> {
    scope.members().iter().map(planner::Member::from).collect()
}

/// Node shutdown: stops every managed instance and hands its state to the
/// instance's next owner (placement without this node), before leaving.
pub(crate) async fn hand_off_all(scope: &Scope, shared: &ManagerShared) {
    shared.shutting_down.store(true, Ordering::Release);
    let me = scope.id();
    let members = planner_members(scope);
    let running: Vec<(String, Running)> = shared
        .running
        .locked()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // All at once: each handoff may wait for its acknowledgement, and the
    // shutdown's budget (`process.shutdown_timeout_ms`) is for all of them.
    let handoffs = running.into_iter().map(|(inst, r)| {
        let target = shared
            .specs()
            .get(&r.spec)
            .and_then(|spec| planner::successor(spec, &inst, &members, me));
        async move {
            let state = scope
                .host
                .stop_for_handoff(r.local, StopReason::Shutdown)
                .await;
            shared.running.locked().remove(&inst);
            if let Some(to) = target {
                hand_off(shared, to, &inst, state, true).await;
            }
            scope.host.withdraw(r.local);
        }
    });
    futures_util::future::join_all(handoffs).await;
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
    shared.handoff_acks.locked().insert(instance.to_owned(), tx);
    let msg = ManagerMsg::Handoff {
        instance: instance.to_owned(),
        state,
        leaving,
    };
    // In a trace, the handoff is a span whose context goes with it.
    let spans = &shared.messenger.spans;
    let (span, context) = match spans.current_or_root() {
        Some(rc) => {
            let attrs = || {
                vec![
                    ("foundation.instance", instance.to_owned()),
                    ("foundation.peer.id", to.to_string()),
                ]
            };
            let (span, passed) = spans.enter("handoff", SpanKind::Producer, &rc, attrs);
            let context = span.as_ref().map(|_| passed.to_wire());
            (span, context)
        }
        None => (None, None),
    };
    // Sent directly: during shutdown the outbox stops with the node.
    let sent = shared
        .messenger
        .send_auto_with(to, KIND_MSG, context, msg.encode())
        .await;
    spans.end(span, || sent.as_ref().err().map(ToString::to_string));
    match sent {
        Ok(()) => match tokio::time::timeout(HANDOFF_ACK_WAIT, rx).await {
            Ok(Ok(())) => tracing::debug!(%instance, peer = %to, "handed off"),
            _ => tracing::warn!(%instance, peer = %to, "handoff not acknowledged within 2 s"),
        },
        Err(e) => {
            tracing::warn!(%instance, peer = %to, error = %e, "handoff not sent: the next owner starts without state")
        }
    }
    shared.handoff_acks.locked().remove(instance);
}
