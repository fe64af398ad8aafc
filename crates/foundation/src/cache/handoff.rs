//! Moves keys when the members change: each holder of a key sends it to
//! the key's new holders, and a node that is no longer a holder drops its
//! copy only after every new holder has taken it. A periodic sweep sends
//! copies a node holds without being a holder (it received them under an
//! older view, or a handoff to it failed) to the holders, then drops them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foundation_proto::cache::{handoff, holders};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::options::Tier;
use super::route::copy_to;
use super::shared::{Placement, Shared};
use super::store::{Entry, Store};
use crate::id::NodeId;
use crate::locks::RwLocked;
use crate::membership::{MemberEvent, MemberState};

/// Events arriving within this window are handled as one change.
const SETTLE: Duration = Duration::from_millis(20);
/// How often stray copies are looked for.
const SWEEP: Duration = Duration::from_secs(10);

/// Watches membership and hands keys off.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<MemberEvent>,
    cancel: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first change is applied at once: the view starts as this node
    // alone.
    changed(&shared).await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.recv() => match ev {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                    changed(&shared).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = sweep.tick() => {
                let now = shared.placement.read_locked().clone();
                move_keys(&shared, &now, &now).await;
            }
        }
    }
}

/// The placement membership gives now.
fn current(shared: &Shared) -> Placement {
    let me = shared.me();
    let all = shared.messenger.membership.members();
    let mut members: Vec<NodeId> = all
        .iter()
        .filter(|m| m.state.is_active() && m.id != me)
        .map(|m| m.id)
        .chain([me])
        .collect();
    members.sort_unstable();
    members.dedup();
    let mut suspect: Vec<NodeId> = all
        .iter()
        .filter(|m| m.state == MemberState::Suspect)
        .map(|m| m.id)
        .collect();
    suspect.sort_unstable();
    Placement { members, suspect }
}

/// Applies the current placement; moves keys if the members changed.
async fn changed(shared: &Shared) {
    let now = current(shared);
    let before = {
        let mut p = shared.placement.write_locked();
        if *p == now {
            return;
        }
        std::mem::replace(&mut *p, now.clone())
    };
    if before.members != now.members {
        metrics::counter!("foundation_cache_rebalances_total").increment(1);
        move_keys(shared, &before, &now).await;
    }
}

/// Hands off every cache's keys from placement `before` to `after`.
pub(crate) async fn move_keys(shared: &Shared, before: &Placement, after: &Placement) {
    for store in shared.stores() {
        if store.options.tier != Tier::Local {
            move_store(shared, &store, before, after).await;
        }
    }
}

async fn move_store(shared: &Shared, store: &Store, before: &Placement, after: &Placement) {
    let me = shared.me();
    let r_before = store.options.tier.replicas(before.members.len());
    let r_after = store.options.tier.replicas(after.members.len());
    // Per destination, the entries it gets; per key, whether it stays.
    let mut out: BTreeMap<NodeId, Vec<(Bytes, Entry)>> = BTreeMap::new();
    let mut leaving: Vec<(Bytes, Entry, Vec<NodeId>)> = Vec::new();
    // In key order: moka's own order follows its hasher's random state,
    // and a simulation must replay the same sends.
    let mut entries: Vec<(Bytes, Entry)> = store
        .table
        .moka()
        .iter()
        .map(|(k, e)| (Bytes::clone(&k), e))
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, entry) in entries {
        let old = holders(&key, &before.members, r_before);
        let new = holders(&key, &after.members, r_after);
        let h = handoff(me, &old, &new);
        for n in &h.send_to {
            out.entry(*n)
                .or_default()
                .push((key.clone(), entry.clone()));
        }
        if !h.keep {
            leaving.push((key, entry, h.send_to));
        }
    }
    if out.is_empty() && leaving.is_empty() {
        return;
    }
    let mut failed: Vec<NodeId> = Vec::new();
    let mut moved = 0usize;
    for (node, entries) in out {
        moved += entries.len();
        if !copy_to(shared, store, &[node], entries).await[0] {
            failed.push(node);
        }
    }
    metrics::counter!("foundation_cache_handoff_keys_total", "cache" => store.name.clone())
        .increment(moved as u64);
    let mut dropped = 0usize;
    for (key, entry, to) in leaving {
        if to.iter().all(|n| !failed.contains(n)) {
            store.forget_if(&key, entry.version);
            dropped += 1;
        }
    }
    tracing::debug!(cache = %store.name, moved, dropped, failed = failed.len(), "keys handed off");
}
