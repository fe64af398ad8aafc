//! The near tier: a node's own moka cache in front of a partitioned
//! cache, kept fresh by invalidations the owners push and by periodic
//! reconciliation with the owners (ADR 022).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use foundation_proto::cache::near::{drops, Fetches, Ticket};
use foundation_proto::cache::Version;
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::store::{Entry, Store};
use super::table::Table;
use super::wire::{Op, Reply, MAX_BATCH};
use crate::id::NodeId;
use crate::locks::Locked;

/// One near cache on this node.
pub(crate) struct Near {
    pub(crate) table: Table,
    fetches: Mutex<Fetches>,
}

impl std::fmt::Debug for Near {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Near").field("table", &self.table).finish()
    }
}

/// A fetch in flight; abandoned if its caller drops it.
pub(crate) struct Fetch<'a> {
    near: &'a Near,
    ticket: Option<Ticket>,
}

impl Drop for Fetch<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.near.fetches.locked().abandon(t);
        }
    }
}

impl Fetch<'_> {
    /// The fetch answered `found`: keep it in the near tier if no
    /// invalidation it crossed forbids it.
    pub(crate) fn finish(mut self, key: Bytes, found: Option<&Entry>) {
        let Some(t) = self.ticket.take() else { return };
        let version = found.filter(|e| e.value.is_some()).map(|e| e.version);
        let keep = self.near.fetches.locked().finish(t, version);
        if let (true, Some(e)) = (keep, found) {
            self.near.table.insert(key, e.clone());
        }
    }
}

impl Near {
    /// A near tier keeping its copies in `table`.
    pub(crate) fn new(table: Table) -> Self {
        Near {
            table,
            fetches: Mutex::default(),
        }
    }

    /// The near copy of `key`, if held.
    pub(crate) fn get(&self, key: &Bytes) -> Option<Entry> {
        self.table.get(key).filter(|e| e.value.is_some())
    }

    /// A fetch of `key` starts.
    pub(crate) fn begin(&self, key: &[u8]) -> Fetch<'_> {
        Fetch {
            near: self,
            ticket: Some(self.fetches.locked().begin(key)),
        }
    }

    /// `key` was written at `version`: drop an older copy, and keep no
    /// older answer of a fetch in flight.
    pub(crate) fn invalidate(&self, key: &Bytes, version: Version) {
        self.fetches.locked().invalidated(key, version);
        if let Some(held) = self.table.get(key) {
            if drops(held.version, version) {
                metrics::counter!("foundation_cache_near_invalidations_total").increment(1);
                self.table.forget_if(key, held.version);
            }
        }
    }
}

/// The owner's answer to a reconciliation: which of `keys` are stale
/// (the owner holds a newer version, or none), recording `from`'s
/// interest in the others.
pub(crate) fn stale(store: &Store, from: NodeId, keys: Vec<(Bytes, Version)>) -> Vec<Bytes> {
    keys.into_iter()
        .filter_map(|(k, v)| {
            let current = store.entry(&k).filter(|e| e.value.is_some());
            if current.is_some_and(|e| e.version == v) {
                store.interested(&k, from);
                None
            } else {
                Some(k)
            }
        })
        .collect()
}

/// Checks every near copy against its owner every `every`, until the
/// node stops.
pub(crate) async fn reconcile(
    shared: Weak<Shared>,
    store: Arc<Store>,
    near: Arc<Near>,
    every: std::time::Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let repaired = reconcile_once(&shared, &store, &near).await;
        if repaired > 0 {
            tracing::debug!(cache = %store.name, repaired, "stale near copies dropped by reconciliation");
            metrics::counter!("foundation_cache_near_repaired_total", "cache" => store.name.clone())
                .increment(repaired as u64);
        }
    }
}

/// One round of reconciliation; answers how many copies were stale.
pub(crate) async fn reconcile_once(shared: &Shared, store: &Store, near: &Near) -> usize {
    let me = shared.me();
    let mut by_owner: BTreeMap<NodeId, Vec<(Bytes, Version)>> = BTreeMap::new();
    let mut held: Vec<(std::sync::Arc<Bytes>, Entry)> = near.table.moka().iter().collect();
    held.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (k, e) in held {
        if e.value.is_some() {
            let key = Bytes::clone(&k);
            let owner = shared.read_order(store.options.tier, &key)[0];
            by_owner.entry(owner).or_default().push((key, e.version));
        }
    }
    let mut repaired = 0;
    for (owner, keys) in by_owner {
        for batch in keys.chunks(MAX_BATCH) {
            let stale_keys = if owner == me {
                stale(store, me, batch.to_vec())
            } else {
                let op = Op::Versions {
                    keys: batch.to_vec(),
                };
                match shared.call(store, owner, op).await {
                    Ok(Reply::Stale(k)) => k,
                    _ => continue,
                }
            };
            for k in stale_keys {
                if let Some((_, v)) = batch.iter().find(|(b, _)| *b == k) {
                    near.table.forget_if(&k, *v);
                    repaired += 1;
                }
            }
        }
    }
    repaired
}
