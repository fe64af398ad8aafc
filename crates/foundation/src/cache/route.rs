//! Where each operation goes: reads to the owner (or the next holder),
//! writes through the owner, which stamps them and copies them to the
//! other holders before it answers.

use bytes::Bytes;
use futures_util::future::join_all;

use foundation_proto::cache::Version;

use super::error::CacheError;
use super::near::Near;
use super::options::Tier;
use super::shared::Shared;
use super::store::{Entry, Store};
use super::wire::{Claim, Op, Reply, Spread, MAX_BATCH};
use crate::id::NodeId;
use crate::locks::RwLocked;

/// The spread a tier's requests carry.
pub(crate) fn spread(tier: Tier) -> Spread {
    match tier {
        Tier::Replicated => Spread::Everywhere,
        other => Spread::Replicas(u32::try_from(other.replicas(0)).unwrap_or(u32::MAX)),
    }
}

/// The entry under `key`: from this node for the local and replicated
/// tiers (the owner is asked on a replicated miss), from the near tier
/// when it holds it, else from the first holder that answers. Counts the
/// hit or miss.
pub(crate) async fn get(
    shared: &Shared,
    store: &Store,
    near: Option<&Near>,
    key: &Bytes,
) -> Result<Option<Entry>, CacheError> {
    let tier = store.options.tier;
    let found = match (tier, near) {
        (_, Some(near)) => match near.get(key) {
            Some(e) => Some(e),
            None => {
                let fetch = near.begin(key);
                let found = from_holders(shared, store, key, false, true).await?;
                fetch.finish(key.clone(), found.as_ref());
                found
            }
        },
        (Tier::Local, None) => store.entry(key),
        (Tier::Replicated, None) => match store.entry(key) {
            Some(e) => Some(e),
            None => from_holders(shared, store, key, true, false).await?,
        },
        (Tier::Partitioned { .. } | Tier::Near { .. }, None) => {
            from_holders(shared, store, key, false, false).await?
        }
    };
    let live = found.filter(|e| e.value.is_some());
    store.count(live.is_some());
    Ok(live)
}

async fn from_holders(
    shared: &Shared,
    store: &Store,
    key: &Bytes,
    owner_only: bool,
    near: bool,
) -> Result<Option<Entry>, CacheError> {
    let me = shared.me();
    let mut order = shared.read_order(store.options.tier, key);
    if owner_only {
        order.truncate(1);
    }
    let mut tried = Vec::new();
    for h in order {
        if h == me {
            if near {
                store.interested(key, me);
            }
            return Ok(store.entry(key));
        }
        let op = Op::Get {
            key: key.clone(),
            near,
        };
        match shared.call(store, h, op).await {
            Ok(Reply::Value(e)) => {
                if let Some(e) = &e {
                    shared.observe(e.version);
                }
                return Ok(e);
            }
            Ok(other) => tried.push((h, format!("answered {other:?}"))),
            Err(e) => tried.push((h, e.why)),
        }
    }
    Err(CacheError::Unavailable {
        cache: store.name.clone(),
        tried,
        outcome_known: true,
    })
}

/// Writes `value` (none: delete) under `key` through its owner, and
/// answers the write's version. The local tier stamps and stores here. If
/// the owner cannot be reached, the next holder takes the write as owner.
pub(crate) async fn write(
    shared: &Shared,
    store: &Store,
    key: Bytes,
    value: Option<Bytes>,
    ttl_ms: Option<u64>,
) -> Result<Version, CacheError> {
    let tier = store.options.tier;
    if tier == Tier::Local {
        let version = shared.stamp();
        let entry = Entry {
            value,
            version,
            ttl_ms,
        };
        store.apply(key.clone(), entry);
        shared.flight.stored(&store.name, &key);
        return Ok(version);
    }
    let me = shared.me();
    let mut tried = Vec::new();
    let mut outcome_known = true;
    for h in shared.read_order(tier, &key) {
        if h == me {
            let (entry, _) = write_as_owner(shared, store, key, value, ttl_ms).await;
            return Ok(entry.version);
        }
        let op = Op::Write {
            key: key.clone(),
            value: value.clone(),
            ttl_ms,
        };
        match shared.call(store, h, op).await {
            Ok(Reply::Written { entry, .. }) => {
                shared.observe(entry.version);
                return Ok(entry.version);
            }
            Ok(other) => tried.push((h, format!("answered {other:?}"))),
            Err(e) => {
                outcome_known &= e.unsent;
                tried.push((h, e.why));
            }
        }
    }
    Err(CacheError::Unavailable {
        cache: store.name.clone(),
        tried,
        outcome_known,
    })
}

/// Stamps and stores a write here, then copies it to the key's other
/// holders and waits for them (each up to the cache's timeout). Answers
/// the entry and how many holders took the copy.
pub(crate) async fn write_as_owner(
    shared: &Shared,
    store: &Store,
    key: Bytes,
    value: Option<Bytes>,
    ttl_ms: Option<u64>,
) -> (Entry, u32) {
    let me = shared.me();
    let (entry, others) = {
        // Placed and stored under one read of the placement: a handoff
        // that changes it sees this entry afterwards.
        let p = shared.placement.read_locked();
        let entry = Entry {
            value,
            version: shared.stamp(),
            ttl_ms,
        };
        store.apply(key.clone(), entry.clone());
        shared.flight.stored(&store.name, &key);
        let others: Vec<NodeId> = Shared::holders_in(&p, store.options.tier, &key)
            .into_iter()
            .filter(|n| *n != me)
            .collect();
        (entry, others)
    };
    if value_is_unreplicated(&others, store) {
        metrics::counter!("foundation_cache_unreplicated_writes_total", "cache" => store.name.clone())
            .increment(1);
    }
    let near = store.take_interest(&key);
    let pushes = invalidate(shared, store, &near, key.clone(), entry.version);
    let (copies, ()) = tokio::join!(
        copy_to(shared, store, &others, vec![(key, entry.clone())]),
        pushes
    );
    let copies = copies.iter().filter(|ok| **ok).count();
    if copies < others.len() {
        metrics::counter!("foundation_cache_copies_missed_total", "cache" => store.name.clone())
            .increment((others.len() - copies) as u64);
    }
    (entry, u32::try_from(copies).unwrap_or(u32::MAX))
}

/// Tells each node in `near` that `key` is now at `version`, and waits
/// for their acknowledgements (each up to the cache's timeout). A lost
/// one is repaired by the node's reconciliation.
async fn invalidate(shared: &Shared, store: &Store, near: &[NodeId], key: Bytes, version: Version) {
    let me = shared.me();
    let sends = near.iter().map(|n| {
        let key = key.clone();
        async move {
            if *n == me {
                if let Some(near) = shared.near_of(&store.name) {
                    near.invalidate(&key, version);
                }
                return;
            }
            let op = Op::Invalidate {
                keys: vec![(key, version)],
            };
            if let Err(e) = shared.call(store, *n, op).await {
                tracing::debug!(node = %n, cache = %store.name, why = %e.why, "invalidation not acknowledged");
            }
        }
    });
    join_all(sends).await;
}

fn value_is_unreplicated(others: &[NodeId], store: &Store) -> bool {
    others.is_empty() && store.options.tier.replicas(2) > 0
}

/// Sends `entries` to each of `to` in batches; answers, per node, whether
/// every batch was taken.
pub(crate) async fn copy_to(
    shared: &Shared,
    store: &Store,
    to: &[NodeId],
    entries: Vec<(Bytes, Entry)>,
) -> Vec<bool> {
    let batches: Vec<Vec<(Bytes, Entry)>> = entries
        .chunks(MAX_BATCH)
        .map(<[(Bytes, Entry)]>::to_vec)
        .collect();
    let sends = to.iter().map(|n| {
        let batches = batches.clone();
        async move {
            for b in batches {
                match shared.call(store, *n, Op::Store { entries: b }).await {
                    Ok(Reply::Done) => {}
                    Ok(other) => {
                        tracing::debug!(node = %n, cache = %store.name, reply = ?other, "copy refused");
                        return false;
                    }
                    Err(e) => {
                        tracing::debug!(node = %n, cache = %store.name, why = %e.why, "copy not taken");
                        return false;
                    }
                }
            }
            true
        }
    });
    join_all(sends).await
}

/// Drops every entry of the cache on every active member.
pub(crate) async fn clear(shared: &Shared, store: &Store) -> Result<(), CacheError> {
    store.table.invalidate_all();
    if store.options.tier == Tier::Local {
        return Ok(());
    }
    let me = shared.me();
    let peers: Vec<NodeId> = shared
        .placement
        .read_locked()
        .members
        .iter()
        .copied()
        .filter(|n| *n != me)
        .collect();
    let asks = peers
        .iter()
        .map(|n| async move { (*n, shared.call(store, *n, Op::Clear).await) });
    let mut tried = Vec::new();
    let mut outcome_known = true;
    for (n, r) in join_all(asks).await {
        match r {
            Ok(Reply::Done) => {}
            Ok(other) => tried.push((n, format!("answered {other:?}"))),
            Err(e) => {
                outcome_known &= e.unsent;
                tried.push((n, e.why));
            }
        }
    }
    if tried.is_empty() {
        Ok(())
    } else {
        Err(CacheError::Unavailable {
            cache: store.name.clone(),
            tried,
            outcome_known,
        })
    }
}

/// Claims `key` at its owner for `get_or_compute`: the value, the grant
/// to compute it, or (after waiting for another caller's computation)
/// nothing yet.
pub(crate) async fn claim(
    shared: &Shared,
    store: &Store,
    key: &Bytes,
) -> Result<Claim, CacheError> {
    let me = shared.me();
    let owner = owner(shared, store, key);
    if owner == me {
        return Ok(shared.flight.claim(store, key, me).await);
    }
    let wait = store.options.compute_timeout + store.options.timeout;
    let op = Op::Claim { key: key.clone() };
    match shared.call_for(store, owner, op, wait).await {
        Ok(Reply::Claim(c)) => Ok(c),
        Ok(other) => Err(CacheError::Unavailable {
            cache: store.name.clone(),
            tried: vec![(owner, format!("answered {other:?}"))],
            outcome_known: true,
        }),
        Err(e) => Err(CacheError::Unavailable {
            cache: store.name.clone(),
            tried: vec![(owner, e.why)],
            outcome_known: true,
        }),
    }
}

/// Gives up a claim on `key` (the computation failed).
pub(crate) async fn release(shared: &Shared, store: &Store, key: &Bytes) {
    let me = shared.me();
    let owner = owner(shared, store, key);
    if owner == me {
        shared.flight.release(&store.name, key, me);
    } else if let Err(e) = shared
        .call(store, owner, Op::Release { key: key.clone() })
        .await
    {
        tracing::debug!(cache = %store.name, %owner, why = %e.why, "claim not released; it ends with its lease");
    }
}

/// The node that coordinates `key`'s claims: this node for the local
/// tier, else the first holder reads would ask.
fn owner(shared: &Shared, store: &Store, key: &Bytes) -> NodeId {
    match store.options.tier {
        Tier::Local => shared.me(),
        tier => shared.read_order(tier, key)[0],
    }
}
