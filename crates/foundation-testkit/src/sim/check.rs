//! Invariant checkers over a simulated cluster. Each returns `Err` with a
//! description a human can act on; [`settled`] runs the ones that must hold
//! once the cluster is stable.

use std::collections::{BTreeMap, BTreeSet};

use foundation::NodeId;
use foundation_proto::registry::EntryKind;

use super::world::Sim;

/// The ids of the nodes whose processes run and are not paused.
pub fn running_ids(sim: &Sim) -> BTreeSet<NodeId> {
    sim.nodes
        .iter()
        .filter(|n| n.alive && !n.paused)
        .map(|n| n.id)
        .collect()
}

/// Every running node sees exactly the running nodes as active members.
pub fn same_members(sim: &Sim) -> Result<(), String> {
    let want = running_ids(sim);
    for (i, n) in sim.nodes.iter().enumerate() {
        if !n.alive || n.paused {
            continue;
        }
        let seen = n.active();
        if *seen != want {
            let missing: Vec<_> = want.difference(seen).take(5).collect();
            let extra: Vec<_> = seen.difference(&want).take(5).collect();
            return Err(format!(
                "node {i} sees {} active members, {} run (missing e.g. {missing:?}, extra e.g. {extra:?})",
                seen.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

/// Pairs (observer, member) of running nodes where the observer does not
/// count the member as active: what a poll of every node's member list
/// would see missing at this moment.
pub fn missing_members(sim: &Sim) -> usize {
    let want = running_ids(sim);
    sim.nodes
        .iter()
        .filter(|n| n.alive && !n.paused)
        .map(|n| want.difference(n.active()).count())
        .sum()
}

/// How many times running nodes rejoined under a new generation (each was
/// told it had been declared down) since they were started at `generation`.
pub fn rejoins(sim: &Sim, generation: u64) -> u64 {
    sim.nodes
        .iter()
        .filter(|n| n.alive)
        .map(|n| n.core.local().generation.saturating_sub(generation))
        .sum()
}

/// At most one executing node runs each singleton (a paused process's copy
/// does nothing until it resumes, and is counted from then on).
pub fn at_most_one_owner(sim: &Sim) -> Result<(), String> {
    for name in &sim.singletons {
        let holders: Vec<usize> = sim
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.alive && !n.paused && n.running.contains_key(name))
            .map(|(i, _)| i)
            .collect();
        if holders.len() > 1 {
            return Err(format!("singleton {name:?} runs on nodes {holders:?}"));
        }
    }
    Ok(())
}

/// Each singleton runs somewhere, and every running node's registry names
/// that holder.
pub fn one_owner_everywhere(sim: &Sim) -> Result<(), String> {
    at_most_one_owner(sim)?;
    for name in &sim.singletons {
        let Some(holder) = sim
            .nodes
            .iter()
            .find(|n| n.alive && !n.paused && n.running.contains_key(name))
        else {
            return Err(format!("singleton {name:?} runs nowhere"));
        };
        for (i, n) in sim.nodes.iter().enumerate() {
            if !n.alive || n.paused {
                continue;
            }
            let seen = n.registry.lookup(name).map(|e| e.service.node);
            if seen != Some(holder.id) {
                return Err(format!(
                    "node {i} names {seen:?} for {name:?}, it runs on {}",
                    holder.id
                ));
            }
        }
    }
    Ok(())
}

/// Every running node's registry holds exactly the entries the running
/// owners hold themselves: no lost registration of a live owner, and
/// nothing left of an owner that is gone.
pub fn registries_agree(sim: &Sim) -> Result<(), String> {
    let live = running_ids(sim);
    let truth: BTreeMap<NodeId, BTreeSet<(EntryKind, String, u64)>> = sim
        .nodes
        .iter()
        .filter(|n| live.contains(&n.id))
        .map(|n| {
            let own = n
                .registry
                .entries()
                .filter(|e| e.owner() == n.id)
                .map(|e| (e.kind, e.name.clone(), e.service.local))
                .collect();
            (n.id, own)
        })
        .collect();
    for (i, n) in sim.nodes.iter().enumerate() {
        if !live.contains(&n.id) {
            continue;
        }
        let mut held: BTreeMap<NodeId, BTreeSet<(EntryKind, String, u64)>> = BTreeMap::new();
        for e in n.registry.entries() {
            held.entry(e.owner())
                .or_default()
                .insert((e.kind, e.name.clone(), e.service.local));
        }
        for (owner, entries) in &truth {
            let have = held.remove(owner).unwrap_or_default();
            if &have != entries {
                let lost = entries.difference(&have).count();
                let stale = have.difference(entries).count();
                return Err(format!(
                    "node {i} holds {} entries of {owner} which holds {} ({lost} missing, {stale} stale)",
                    have.len(),
                    entries.len()
                ));
            }
        }
        if let Some((gone, entries)) = held.into_iter().find(|(_, e)| !e.is_empty()) {
            return Err(format!(
                "node {i} still holds {} entries of {gone}, which is not running",
                entries.len()
            ));
        }
    }
    Ok(())
}

/// No subscription got a message twice (checked as messages arrive).
pub fn no_duplicate_delivery(sim: &Sim) -> Result<(), String> {
    match sim.violations.first() {
        None => Ok(()),
        Some(v) => Err(format!(
            "{} violations, the first: {v}",
            sim.violations.len()
        )),
    }
}

/// Everything that must hold once the cluster is stable.
pub fn settled(sim: &Sim) -> Result<(), String> {
    no_duplicate_delivery(sim)?;
    same_members(sim)?;
    registries_agree(sim)?;
    one_owner_everywhere(sim)
}
