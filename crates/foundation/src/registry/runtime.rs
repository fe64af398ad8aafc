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
use super::state::Applied;
use super::wire::{RegistryMsg, KIND_MSG};
use crate::id::NodeId;
use crate::membership::MemberEvent;
use crate::process::{Host, StopReason};
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

    fn send(&self, to: NodeId, msg: &RegistryMsg) {
        self.shared.outbox.send(to, KIND_MSG, msg.encode());
    }

    /// Tells `owner` which version of its set this node holds, if at least
    /// `min`.
    fn ack_owner(&self, owner: NodeId, min: u64) {
        let version = self.shared.state().version_of(owner);
        if version >= min {
            self.send(owner, &RegistryMsg::Ack { owner, version });
        }
    }

    /// Sends this node's digest to one peer per round, in turn.
    fn anti_entropy(&self, round: usize) {
        let mut peers = self.shared.messenger.peers();
        if peers.is_empty() {
            return;
        }
        peers.sort();
        let to = peers[round % peers.len()];
        let digest = self.shared.state().digest();
        self.send(
            to,
            &RegistryMsg::Digest {
                digest,
                reply: false,
            },
        );
    }

    fn member(&self, ev: MemberEvent, dead: &mut HashMap<NodeId, Instant>) {
        match ev {
            MemberEvent::Up(m) => {
                dead.remove(&m.id);
                let (snap, digest) = {
                    let mut st = self.shared.state();
                    st.owner_up(m.id);
                    (st.snapshot(st.local()), st.digest())
                };
                // A new member gets this node's set at once, and our digest
                // so that it sends back what we miss.
                if let Some(s) = snap {
                    self.send(m.id, &RegistryMsg::Snapshot(s));
                }
                self.send(
                    m.id,
                    &RegistryMsg::Digest {
                        digest,
                        reply: false,
                    },
                );
            }
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                dead.insert(m.id, Instant::now());
                if self.shared.state().owner_down(m.id) {
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
        match msg {
            RegistryMsg::Delta { delta, ack } => {
                let outcome = self.shared.state().apply_delta(&delta);
                let changed = outcome == Applied::Applied;
                if delta.owner == from && matches!(outcome, Applied::Applied | Applied::Duplicate) {
                    self.shared.heard_from(from);
                }
                match outcome {
                    Applied::Applied | Applied::Duplicate => {}
                    Applied::Gap { have } => {
                        tracing::debug!(owner = %delta.owner, have, base = delta.base, "registry gap: asking for a snapshot");
                        let digest = self.shared.state().digest();
                        self.send(
                            from,
                            &RegistryMsg::Digest {
                                digest,
                                reply: false,
                            },
                        );
                    }
                    Applied::Refused(why) => {
                        tracing::debug!(peer = %from, owner = %delta.owner, why, "registry delta refused");
                        metrics::counter!("foundation_registry_refused_total").increment(1);
                    }
                }
                if ack && delta.owner == from {
                    self.ack_owner(from, delta.version);
                }
                if changed {
                    self.shared.bump();
                }
                changed
            }
            RegistryMsg::Ack { owner, version } => {
                if owner == self.shared.messenger.id() {
                    self.shared.acked(from, version);
                }
                false
            }
            RegistryMsg::Digest { digest, reply } => {
                let (diff, snaps) = {
                    let st = self.shared.state();
                    let theirs = digest
                        .iter()
                        .find(|(o, _)| *o == from)
                        .map_or(0, |(_, v)| *v);
                    if st.version_of(from) >= theirs {
                        self.shared.heard_from(from);
                    }
                    let diff = st.compare(from, &digest);
                    let snaps: Vec<_> = diff.send.iter().filter_map(|o| st.snapshot(*o)).collect();
                    (diff, snaps)
                };
                for s in snaps {
                    self.send(from, &RegistryMsg::Snapshot(s));
                }
                if diff.behind && !reply {
                    let digest = self.shared.state().digest();
                    self.send(
                        from,
                        &RegistryMsg::Digest {
                            digest,
                            reply: true,
                        },
                    );
                }
                false
            }
            RegistryMsg::Snapshot(snap) => {
                // A relayed set is taken only for a current member: entries
                // of a node that died before this one knew it would
                // otherwise never be dropped (no Down event comes for it).
                if snap.owner != from
                    && !self
                        .shared
                        .messenger
                        .membership
                        .member(snap.owner)
                        .is_some_and(|m| m.state.is_active())
                {
                    tracing::debug!(owner = %snap.owner, peer = %from, "relayed set of a non-member ignored");
                    return false;
                }
                let merged = self.shared.state().merge_snapshot(&snap);
                match merged {
                    Ok(changed) => {
                        if snap.owner == from {
                            self.shared.heard_from(from);
                            self.ack_owner(from, 0);
                        }
                        if changed {
                            self.shared.bump();
                        }
                        changed
                    }
                    Err(why) => {
                        tracing::warn!(peer = %from, owner = %snap.owner, why, "registry snapshot refused");
                        metrics::counter!("foundation_registry_refused_total").increment(1);
                        false
                    }
                }
            }
        }
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
            tokio::spawn(async move {
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
