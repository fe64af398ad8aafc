//! The process manager in the simulation: singletons started and stopped
//! by the rule of `process/reconcile.rs` ([`decide`]), handoffs, and the
//! stop of local losers of name conflicts.

use std::time::Duration;

use foundation::registry::EntryKind;

use super::node::{decide, Decision};
use super::world::{Ev, Sim, ALONE_AFTER};

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

    /// The process manager's reconcile for the singletons.
    pub(crate) fn reconcile(&mut self, i: usize) {
        let now = self.instant();
        let at = self.now_ms();
        let t = self.now;
        let node = &mut self.nodes[i];
        let active = node.active().clone();
        let has_quorum = node.quorum.update(&active, now);
        let ready = active.len() > 1 || t >= node.started + ALONE_AFTER;
        let names = self.singletons.clone();
        let mut deltas = Vec::new();
        let mut handoffs = Vec::new();
        for name in &names {
            let node = &mut self.nodes[i];
            match decide(node, name, &active, has_quorum, t) {
                Decision::Keep => {}
                Decision::Stop(to) => {
                    if let Some(local) = node.running.remove(name) {
                        deltas.extend(node.registry.unregister(EntryKind::Unique, name, local));
                    }
                    handoffs.extend(to.map(|to| (to, name.clone())));
                }
                Decision::Start if ready => {
                    let entry = node.entry(name, EntryKind::Unique, at);
                    let local = entry.service.local;
                    if let Ok(Some(d)) = node.registry.register(entry) {
                        node.running.insert(name.clone(), local);
                        deltas.push(d);
                    }
                }
                Decision::Start => {}
            }
        }
        for d in deltas {
            self.publish_delta(i, d);
        }
        for (to, name) in handoffs {
            let Some(j) = self.index_of_id(to) else {
                continue;
            };
            if let Some(at) = self.net.stream(i, j, self.now) {
                let inc = self.nodes[j].incarnation;
                self.push(at, Ev::Handoff { to: j, inc, name });
            }
        }
    }
}
