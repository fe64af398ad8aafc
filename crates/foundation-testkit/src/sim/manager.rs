//! The process manager in the simulation: the node's own planner
//! (`foundation_proto::process::planner`) decides; this file executes its
//! commands as `process/reconcile.rs` does (register, unregister, hand
//! off), and stops local losers of name conflicts.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use foundation_proto::process::planner::{Command, Input, Running, StopCause};
use foundation_proto::process::{ChildSpec, Strategy};
use foundation_proto::readiness::ready_alone;
use foundation_proto::registry::EntryKind;

use super::node::{SimFacts, SimNode};
use super::world::{Ev, Sim};

/// How long changes gather before the manager reconciles.
const COALESCE: Duration = Duration::from_millis(5);

impl Sim {
    /// Stops local losers of unique-name conflicts (as the sync task does).
    pub(crate) fn conflicts(&mut self, i: usize) {
        for (loser, _winner) in self.nodes[i].registry.local_losers() {
            let node = &mut self.nodes[i];
            if node.running.get(&loser.name) == Some(&loser.service.local) {
                node.running.remove(&loser.name);
            }
            if let Some(d) = node
                .registry
                .unregister(loser.kind, &loser.name, loser.service.local)
            {
                self.publish_delta(i, d);
            }
        }
    }

    /// Runs [`Sim::reconcile`] on node `i` shortly, once for every change
    /// that arrives meanwhile: the manager's task wakes on a watch of the
    /// membership and registry, which coalesces changes the same way.
    /// (Reconciling on every message made a 1,000-node run cubic.)
    pub(crate) fn reconcile_soon(&mut self, i: usize) {
        if !self.nodes[i].reconcile_pending {
            self.nodes[i].reconcile_pending = true;
            let inc = self.nodes[i].incarnation;
            self.push(self.now + COALESCE, Ev::Reconcile { node: i, inc });
        }
    }

    /// The process manager's pass for the singletons: the planner's
    /// commands, executed.
    pub(crate) fn reconcile(&mut self, i: usize) {
        let now = self.instant();
        let at = self.now_ms();
        let t = self.now;
        let specs: Vec<ChildSpec> = self.singletons.iter().map(|n| singleton(n)).collect();
        // The join loop's readiness: joined, or nobody to join for a while.
        let no_candidates = !self.has_seeds_besides(i);
        let node = &mut self.nodes[i];
        let ready =
            node.view.len() > 1 || ready_alone(t.saturating_sub(node.started), no_candidates);
        let running: BTreeMap<String, Running> = node
            .running
            .iter()
            .map(|(name, local)| {
                let r = Running {
                    spec: name.clone(),
                    local: *local,
                };
                (name.clone(), r)
            })
            .collect();
        let stopping = HashSet::new();
        let SimNode {
            planner,
            members,
            registry,
            heard,
            running: locals,
            ..
        } = &mut *node;
        let facts = SimFacts {
            registry,
            heard,
            running: locals,
        };
        let input = Input {
            members,
            specs: &specs,
            running: &running,
            stopping: &stopping,
            ready,
        };
        let plan = planner.plan(now, input, &facts);
        if let Some(due) = plan.recheck_at {
            let due = t + due.saturating_duration_since(now);
            if node.recheck.is_none_or(|r| r <= t || due < r) {
                node.recheck = Some(due);
                let inc = node.incarnation;
                self.push(due, Ev::Reconcile { node: i, inc });
            }
        }
        let node = &mut self.nodes[i];
        let mut deltas = Vec::new();
        let mut handoffs = Vec::new();
        for command in plan.commands {
            match command {
                Command::Stop {
                    instance, cause, ..
                } => {
                    if let Some(local) = node.running.remove(&instance) {
                        deltas.extend(node.registry.unregister(
                            EntryKind::Unique,
                            &instance,
                            local,
                        ));
                    }
                    if let StopCause::Migrate { to } = cause {
                        handoffs.push((to, instance));
                    }
                }
                Command::Adopt {
                    instance, local, ..
                } => {
                    node.running.insert(instance, local);
                }
                Command::Start { instance, .. } => {
                    let entry = node.entry(&instance, EntryKind::Unique, at);
                    let local = entry.service.local;
                    if let Ok(Some(d)) = node.registry.register(entry) {
                        node.running.insert(instance, local);
                        deltas.push(d);
                    }
                }
            }
        }
        for d in deltas {
            self.publish_delta(i, d);
        }
        let from = self.nodes[i].id;
        for (to, name) in handoffs {
            let Some(j) = self.index_of_id(to) else {
                continue;
            };
            if let Some(at) = self.net.stream(i, j, self.now) {
                let inc = self.nodes[j].incarnation;
                self.push(
                    at,
                    Ev::Handoff {
                        to: j,
                        inc,
                        from,
                        name,
                    },
                );
            }
        }
    }
}

/// The spec of the simulation's singleton `name`.
fn singleton(name: &str) -> ChildSpec {
    ChildSpec {
        id: name.to_owned(),
        kind: "sim".into(),
        args: Bytes::new(),
        strategy: Strategy::Singleton,
        role: None,
        fenced: false,
    }
}
