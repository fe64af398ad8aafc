//! The registry's sync task: applies peers' deltas and snapshots, runs
//! anti-entropy by digests, drops the entries of members that go down or
//! leave, and stops local services whose unique name lost a conflict.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::event::RegistryEvent;
use super::shared::RegistryShared;
use super::sync;
use super::{RegistryMsg, KIND_MSG};
use crate::id::NodeId;
use crate::membership::MemberEvent;
use crate::services::{Host, StopReason};
use crate::transport::{Inbox, Incoming};

/// How long an owner that went down stays refused (relayed copies of its
/// entries are ignored), unless it comes back first.
const DEAD_MEMORY: Duration = Duration::from_secs(300);

pub(crate) struct SyncTask {
    pub(crate) shared: Arc<RegistryShared>,
    pub(crate) host: Arc<Host>,
    pub(crate) inbox: Inbox,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) interval: Duration,
    pub(crate) cancel: CancellationToken,
}

impl SyncTask {
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0usize;
        let mut dead: HashMap<NodeId, Instant> = HashMap::new();
        let mut stopping: BTreeSet<u64> = BTreeSet::new();
        let mut strays = HashMap::new();
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                m = self.inbox.recv() => match m {
                    Some(m) => {
                        if self.message(m) {
                            self.conflicts(&mut stopping);
                        }
                    }
                    None => return,
                },
                ev = self.members.recv() => match ev {
                    Ok(ev) => self.member(ev, &mut dead),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    round = round.wrapping_add(1);
                    self.anti_entropy(round);
                    self.prune_strays(&mut strays);
                    let now = Instant::now();
                    dead.retain(|id, since| {
                        let keep = now.duration_since(*since) < DEAD_MEMORY;
                        if !keep {
                            self.shared.state().forget_dead(*id);
                        }
                        keep
                    });
                    stopping.retain(|l| self.host.is_running(*l));
                }
            }
        }
    }

    fn is_member(&self, id: NodeId) -> bool {
        let membership = &self.shared.messenger.membership;
        membership.member(id).is_some_and(|m| m.state.is_active())
    }

    /// Drops the sets of owners that stayed non-members past the grace.
    fn prune_strays(&self, strays: &mut HashMap<NodeId, std::time::Instant>) {
        let now = crate::shell_time::now();
        let dropped = sync::prune_strays(
            &mut self.shared.state(),
            |id| self.is_member(id),
            strays,
            now,
        );
        if !dropped.is_empty() {
            tracing::debug!(owners = ?dropped, "dropped the sets of owners that are not members");
            self.shared.bump();
        }
    }

    fn send(&self, to: NodeId, msg: &RegistryMsg) {
        self.shared.outbox.send(to, KIND_MSG, msg.encode());
    }

    fn send_all(&self, msgs: Vec<(NodeId, RegistryMsg)>) {
        for (to, msg) in msgs {
            self.send(to, &msg);
        }
    }

    /// Sends this node's digest to one peer per round, in turn.
    fn anti_entropy(&self, round: usize) {
        let peers = self.shared.messenger.peers();
        let msg = sync::anti_entropy(&self.shared.state(), peers, round);
        if let Some((to, msg)) = msg {
            self.send(to, &msg);
        }
    }

    fn member(&self, ev: MemberEvent, dead: &mut HashMap<NodeId, Instant>) {
        match ev {
            MemberEvent::Up(m) => {
                dead.remove(&m.id);
                let send = sync::on_member_up(&mut self.shared.state(), m.id);
                self.send_all(send);
            }
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                dead.insert(m.id, Instant::now());
                if sync::on_member_gone(&mut self.shared.state(), m.id) {
                    tracing::debug!(owner = %m.id, "dropped the entries of a member that is gone");
                    self.shared.bump();
                }
                self.shared.outbox.forget(m.id);
                self.shared.forget_peer(m.id);
            }
            MemberEvent::Suspect(_) => {}
        }
    }

    /// Handles one message; whether the state changed.
    fn message(&self, m: Incoming) -> bool {
        let from = m.from;
        let msg = match RegistryMsg::decode(&m.payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "malformed registry message dropped");
                metrics::counter!("foundation_registry_malformed_total").increment(1);
                return false;
            }
        };
        let r = sync::on_message(&mut self.shared.state(), from, msg, |id| self.is_member(id));
        if let Some(peer) = r.heard_from {
            self.shared.heard_from(peer);
        }
        if let Some(version) = r.acked {
            self.shared.acked(from, version);
        }
        if r.refused.is_some() {
            metrics::counter!("foundation_registry_refused_total").increment(1);
        }
        self.send_all(r.send);
        if r.changed {
            self.shared.bump();
        }
        r.changed
    }

    /// Stops local services whose unique name lost a conflict.
    fn conflicts(&self, stopping: &mut BTreeSet<u64>) {
        let losers = self.shared.state().local_losers();
        for (loser, winner) in losers {
            if !stopping.insert(loser.service.local) {
                continue;
            }
            tracing::warn!(
                name = %loser.name, loser = %loser.service, winner = %winner.service,
                "unique name held twice (partition healed): stopping the local loser"
            );
            metrics::counter!("foundation_registry_conflicts_total").increment(1);
            let _ = self.shared.events.send(RegistryEvent::NameConflict {
                winner: winner.clone(),
                loser: loser.clone(),
            });
            let host = self.host.clone();
            let shared = self.shared.clone();
            self.shared.messenger.tasks.spawn(async move {
                let reason = StopReason::NameConflict {
                    name: loser.name.clone(),
                    winner: winner.service,
                };
                if host.is_running(loser.service.local) {
                    host.stop(loser.service.local, reason).await;
                } else {
                    // Registered without a running service: just drop it.
                    let d = shared
                        .state()
                        .unregister(loser.kind, &loser.name, loser.service.local);
                    if let Some(d) = d {
                        shared.publish(d, false);
                    }
                }
            });
        }
    }
}
