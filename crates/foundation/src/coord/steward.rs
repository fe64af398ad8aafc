//! Keeps the Raft group running by itself: founds it once, adds every
//! member as a learner, keeps the configured number of voters (replacing
//! those down past `coord.replace_after`), and, on the leader, moves the
//! lease clock (Promote, Tick) and dooms the sessions of nodes SWIM
//! declares down.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use foundation_proto::coord::Command;
use openraft::{ChangeMembers, EmptyNode, ServerState};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::server::status_of;
use super::types::GroupId;
use super::Shared;
use crate::id::NodeId;
use crate::membership::{Member, MemberEvent};

/// How long the smallest member must stay the smallest before it founds
/// the group (so members that start together found one group, not two).
const SETTLE: Duration = Duration::from_secs(1);

/// How far behind the leader's log a learner may be and still be promoted.
const CAUGHT_UP: u64 = 64;

pub(crate) struct Steward {
    pub(crate) shared: Arc<Shared>,
    pub(crate) view: Arc<crate::membership::View>,
    pub(crate) members: broadcast::Receiver<MemberEvent>,
    pub(crate) cancel: CancellationToken,
    /// Since when this node has been the smallest eligible member.
    smallest_since: Option<Instant>,
    /// Members SWIM declared down or that left, and since when.
    gone: HashMap<u64, (Instant, bool)>,
    /// Whether this node may start elections (see [`Steward::gate_elections`]).
    may_elect: bool,
}

/// How many voters a group with `eligible` members keeps: the configured
/// count, at most the eligible members, and odd.
pub(crate) fn voters_for(configured: usize, eligible: usize) -> usize {
    let n = configured.min(eligible).max(1);
    if n.is_multiple_of(2) {
        n - 1
    } else {
        n
    }
}

impl Steward {
    pub(crate) fn new(
        shared: Arc<Shared>,
        view: Arc<crate::membership::View>,
        members: broadcast::Receiver<MemberEvent>,
        cancel: CancellationToken,
    ) -> Self {
        Steward {
            shared,
            view,
            members,
            cancel,
            smallest_since: None,
            gone: HashMap::new(),
            may_elect: true,
        }
    }

    pub(crate) async fn run(mut self) {
        let period = (self.shared.config.session_ttl / 10).max(Duration::from_millis(20));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metrics = self.shared.raft.metrics();
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                ev = self.members.recv() => match ev {
                    Ok(ev) => self.member(ev).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // Leadership changes: promote at once (failover time).
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.promote().await;
                }
                _ = tick.tick() => self.round().await,
            }
        }
    }

    fn is_leader(&self) -> bool {
        let m = self.shared.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.shared.id)
    }

    async fn member(&mut self, ev: MemberEvent) {
        let left = matches!(ev, MemberEvent::Left(_));
        // The round re-checks within its period; a Down or an Up here
        // changes who is reachable now.
        let gate = matches!(
            ev,
            MemberEvent::Up(_) | MemberEvent::Down(_) | MemberEvent::Left(_)
        );
        match ev {
            MemberEvent::Up(m) => {
                if let Some(raft) = self.shared.rpc.raft_of(m.id) {
                    self.gone.remove(&raft);
                }
            }
            MemberEvent::Suspect(_) => {}
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                if let Some(raft) = self.shared.rpc.raft_of(m.id) {
                    // A restarted durable node is back under another
                    // member id: only mark it gone if none holds it now.
                    let back = self
                        .active()
                        .iter()
                        .any(|a| a.id != m.id && self.shared.rpc.raft_of(a.id) == Some(raft));
                    if !back {
                        self.gone.insert(raft, (Instant::now(), left));
                    }
                }
                if self.is_leader() {
                    self.doom(m.id).await;
                }
            }
        }
        if gate {
            self.gate_elections();
        }
    }

    async fn doom(&self, node: NodeId) {
        let wait = self.shared.config.timeout;
        if let Err(e) = self.shared.write(Command::NodeDown { node }, wait).await {
            tracing::debug!(%node, error = ?e, "could not doom the sessions of a node that went down");
        }
    }

    /// On a new leader: extend the sessions, then doom those of nodes
    /// that are not members any more.
    async fn promote(&mut self) {
        let term = {
            let m = self.shared.raft.metrics();
            let m = m.borrow();
            m.current_term
        };
        if !self.is_leader() || *self.shared.promoted.borrow() >= term {
            return;
        }
        let wait = self.shared.config.timeout;
        let now_ms = self.shared.now_ms();
        match self.shared.write(Command::Promote { now_ms }, wait).await {
            Ok(_) => {
                self.shared.promoted.send_replace(term);
                tracing::info!(term, "coordination leader");
            }
            Err(e) => {
                tracing::debug!(error = ?e, "promote not applied");
                return;
            }
        }
        let active: BTreeSet<NodeId> = self.active().iter().map(|m| m.id).collect();
        let owners: BTreeSet<NodeId> = self
            .shared
            .replica
            .read(|s| s.lease_owners().map(|(_, o)| o).collect());
        for node in owners.difference(&active) {
            self.doom(*node).await;
        }
    }

    /// Active members, this node included.
    fn active(&self) -> Vec<Member> {
        self.view
            .members()
            .into_iter()
            .filter(|m| m.state.is_active())
            .collect()
    }

    fn eligible(&self, m: &Member) -> bool {
        match &self.shared.config.role {
            Some(role) => m.roles.iter().any(|r| r == role),
            None => true,
        }
    }

    /// Learns the Raft ids of active members not known yet, and forgets
    /// those of members gone and out of the group.
    async fn discover(&mut self) {
        let rpc = &self.shared.rpc;
        let active = self.active();
        let unknown: Vec<NodeId> = active
            .iter()
            .map(|m| m.id)
            .filter(|id| rpc.raft_of(*id).is_none())
            .take(16)
            .collect();
        let asks = unknown.iter().map(|id| status_of(&self.shared, *id));
        futures_util::future::join_all(asks).await;
        for m in &active {
            if let Some(raft) = rpc.raft_of(m.id) {
                self.gone.remove(&raft);
            }
        }
        let in_group: BTreeSet<u64> = {
            let metrics = self.shared.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        };
        let membership = &rpc.messenger.membership;
        rpc.prune(|raft, node| {
            in_group.contains(&raft)
                || node == rpc.messenger.id()
                || membership.member(node).is_some()
        });
    }

    /// Lets this node start elections only while it sees a majority of the
    /// voters (itself included) as active members. A voter that cannot
    /// reach a majority cannot win; left to its election timer it raises
    /// its term every timeout, and once it reaches the others its term
    /// unseats a working leader. That happened after a whole-cluster
    /// restart: the first node back, alone, reached term 12 to 27 while
    /// the others came up, and the leader they had elected stepped down
    /// (the durable-restart test's put then found no leader for 10 s in one
    /// CI run). Raft's pre-vote solves the same; openraft 0.9 has none.
    fn gate_elections(&mut self) {
        let voters: BTreeSet<u64> = {
            let metrics = self.shared.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().voter_ids().collect()
        };
        if voters.is_empty() {
            return;
        }
        let rpc = &self.shared.rpc;
        let mut reachable: BTreeSet<u64> = self
            .active()
            .iter()
            .filter_map(|m| rpc.raft_of(m.id))
            .filter(|r| voters.contains(r))
            .collect();
        if voters.contains(&self.shared.id) {
            reachable.insert(self.shared.id);
        }
        let may = reachable.len() * 2 > voters.len();
        if may != self.may_elect {
            self.may_elect = may;
            self.shared.raft.runtime_config().elect(may);
            tracing::debug!(
                may_elect = may,
                reachable = reachable.len(),
                voters = voters.len(),
                "coordination elections gated on reachable voters"
            );
        }
    }

    async fn round(&mut self) {
        self.discover().await;
        self.gate_elections();
        if self.shared.rpc.group().is_none() {
            self.found().await;
            return;
        }
        if !self.is_leader() {
            return;
        }
        self.promote().await;
        let has_leases = self
            .shared
            .replica
            .read(|s| s.lease_owners().next().is_some());
        if has_leases {
            let wait = self.shared.config.timeout;
            let _ = self
                .shared
                .write(
                    Command::Tick {
                        now_ms: self.shared.now_ms(),
                    },
                    wait,
                )
                .await;
        }
        self.reconcile().await;
    }

    /// Founds the group if this node is the smallest eligible member, has
    /// been for [`SETTLE`], and no peer is in a group already.
    async fn found(&mut self) {
        let me = self.shared.rpc.messenger.id();
        let active = self.active();
        let smallest = active
            .iter()
            .filter(|m| self.eligible(m))
            .map(|m| m.id)
            .min();
        if !self.view.is_ready() || smallest != Some(me) {
            self.smallest_since = None;
            return;
        }
        let since = *self.smallest_since.get_or_insert_with(Instant::now);
        if since.elapsed() < SETTLE {
            return;
        }
        for m in active.iter().filter(|m| m.id != me) {
            match status_of(&self.shared, m.id).await {
                Some(s) if s.group.is_none() => {}
                Some(_) => return, // it will add us
                None => return,    // no answer: ask again next round
            }
        }
        let raft_id = self.shared.id;
        let group = GroupId {
            founder: raft_id,
            at_ms: crate::shell_time::wall_ms(),
        };
        if self.shared.rpc.adopt(group) != group {
            return; // a peer's Raft message made us join its group meanwhile
        }
        match self.shared.raft.initialize(BTreeSet::from([raft_id])).await {
            Ok(()) => tracing::info!(%group, "founded the coordination group"),
            Err(e) => tracing::warn!(error = %e, "could not found the coordination group"),
        }
    }

    fn gone_for(&self, id: u64, grace: Duration) -> bool {
        self.gone
            .get(&id)
            .is_some_and(|(since, left)| *left || since.elapsed() >= grace)
    }

    /// Adds members as learners, keeps the voters, drops those gone.
    async fn reconcile(&mut self) {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let stored = metrics.membership_config.clone();
        let config = stored.membership();
        if config.get_joint_config().len() > 1 {
            return; // a change is under way
        }
        let voters: BTreeSet<u64> = config.voter_ids().collect();
        let nodes: BTreeSet<u64> = config.nodes().map(|(id, _)| *id).collect();
        let rpc = &self.shared.rpc;
        // Active members whose Raft id is known (the others are asked
        // each round).
        let members = self.active();
        let active: Vec<(u64, &Member)> = members
            .iter()
            .filter_map(|m| rpc.raft_of(m.id).map(|r| (r, m)))
            .collect();
        let wait = self.shared.config.timeout;
        let raft = &self.shared.raft;

        for (id, m) in active.iter().filter(|(id, _)| !nodes.contains(id)) {
            if let Err(e) = raft.add_learner(*id, EmptyNode {}, false).await {
                tracing::debug!(node = %m.id, error = %e, "could not add a learner");
                return;
            }
        }

        let grace = self.shared.config.replace_after;
        let active_ids: BTreeSet<u64> = active.iter().map(|(id, _)| *id).collect();
        let eligible: Vec<u64> = active
            .iter()
            .filter(|(_, m)| self.eligible(m))
            .map(|(id, _)| *id)
            .collect();
        let desired = voters_for(self.shared.config.voters, eligible.len());
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = |id: u64| {
            metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map_or(0, |l| l.index)
        };
        let mut next: BTreeSet<u64> = voters
            .iter()
            .copied()
            .filter(|v| !self.gone_for(*v, grace))
            .collect();
        for id in &eligible {
            if next.len() >= desired {
                break;
            }
            if !next.contains(id) && matched(*id) + CAUGHT_UP >= last {
                next.insert(*id);
            }
        }
        // Too many (the configured count went down): drop the inactive,
        // then the largest ids, never this node.
        while next.len() > desired {
            let drop = next
                .iter()
                .copied()
                .filter(|v| *v != self.shared.id)
                .max_by_key(|v| (!active_ids.contains(v), *v));
            match drop {
                Some(v) => next.remove(&v),
                None => break,
            };
        }
        if next != voters && !next.is_empty() {
            tracing::info!(?voters, ?next, "changing the coordination voters");
            let change = raft.change_membership(next.clone(), true);
            match tokio::time::timeout(wait, change).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "voter change not applied");
                    return;
                }
                Err(_) => {
                    tracing::debug!("voter change timed out");
                    return;
                }
            }
        }
        let remove: BTreeSet<u64> = nodes
            .iter()
            .copied()
            .filter(|n| !next.contains(n) && self.gone_for(*n, grace))
            .collect();
        if !remove.is_empty() {
            let change = raft.change_membership(ChangeMembers::RemoveNodes(remove.clone()), false);
            match tokio::time::timeout(wait, change).await {
                Ok(Ok(_)) => {
                    tracing::info!(
                        ?remove,
                        "removed departed nodes from the coordination group"
                    );
                    for n in remove {
                        self.gone.remove(&n);
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "could not remove departed nodes"),
                Err(_) => tracing::debug!("removing departed nodes timed out"),
            }
        }
    }
}

/// On a leader that leaves gracefully: takes itself out of the voters,
/// replaced by the most caught-up learner if it was the only one, so the
/// group neither waits for a vote that will never come nor loses its
/// state with its only voter. Others' departures are the leader's
/// steward's to handle (SWIM tells it they left).
pub(crate) async fn retire(shared: &Shared) {
    let metrics = shared.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(shared.id) || metrics.state != ServerState::Leader {
        return;
    }
    let config = metrics.membership_config.membership();
    let mut next: BTreeSet<u64> = config.voter_ids().filter(|v| *v != shared.id).collect();
    if next.is_empty() {
        let best = metrics.replication.as_ref().and_then(|r| {
            r.iter()
                .filter(|(id, _)| **id != shared.id)
                .max_by_key(|(_, m)| m.map(|l| l.index))
                .map(|(id, _)| *id)
        });
        match best {
            Some(id) => {
                next.insert(id);
            }
            None => return, // alone: nothing to hand on
        }
    }
    let change = shared.raft.change_membership(next.clone(), false);
    match tokio::time::timeout(Duration::from_secs(2), change).await {
        Ok(Ok(_)) => tracing::info!(?next, "handed the coordination vote on before leaving"),
        Ok(Err(e)) => tracing::debug!(error = %e, "could not hand the vote on"),
        Err(_) => tracing::debug!("handing the vote on timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::voters_for;

    #[test]
    fn voters_are_odd_and_capped_by_the_eligible() {
        assert_eq!(voters_for(3, 1), 1);
        assert_eq!(voters_for(3, 2), 1);
        assert_eq!(voters_for(3, 3), 3);
        assert_eq!(voters_for(3, 10), 3);
        assert_eq!(voters_for(5, 4), 3);
        assert_eq!(voters_for(5, 9), 5);
        assert_eq!(voters_for(4, 9), 3);
        assert_eq!(voters_for(1, 0), 1);
    }
}
