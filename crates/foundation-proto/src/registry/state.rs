//! The registry's sans-IO state: each owner's entries with a version, the
//! merge rule, digests for anti-entropy and the conflict rule on lookup.
//!
//! Only an entry's owner changes it. Each change bumps the owner's version
//! and becomes a [`Delta`]; everyone else applies deltas in order, or a
//! whole [`Snapshot`] when it missed some. Merging snapshots keeps, per
//! owner, the one with the higher version: commutative, associative and
//! idempotent, so anti-entropy can relay snapshots in any order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::entry::{winner, Entry, EntryKey, EntryKind, ServiceAddr};
use crate::NodeId;

/// Longest registered name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest protocol (type name), in bytes.
pub const MAX_PROTOCOL_LEN: usize = 512;

/// One owner's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerSet {
    /// Bumped by the owner on every change.
    pub version: u64,
    /// The entries.
    pub entries: BTreeMap<EntryKey, Entry>,
}

/// One change to an owner's set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Add or replace an entry.
    Put(Entry),
    /// Remove an entry.
    Remove(EntryKey),
}

/// Changes taking an owner's set from version `base` to `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Whose entries.
    pub owner: NodeId,
    /// The version these changes apply to.
    pub base: u64,
    /// The version after them.
    pub version: u64,
    /// The changes, in order.
    pub ops: Vec<Op>,
}

/// An owner's whole set at a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Whose entries.
    pub owner: NodeId,
    /// Its version.
    pub version: u64,
    /// Every entry.
    pub entries: Vec<Entry>,
}

/// The version held for every owner.
pub type Digest = Vec<(NodeId, u64)>;

/// What applying a delta did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied; the set changed.
    Applied,
    /// Already had it (or newer).
    Duplicate,
    /// Changes before it are missing: fetch a snapshot.
    Gap {
        /// The version held.
        have: u64,
    },
    /// Refused: the owner is this node, is dead, or sent an invalid change.
    Refused(&'static str),
}

/// Why a local registration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The unique name is held by another service.
    #[error("the name {name:?} is already registered to {holder}")]
    Taken {
        /// The name.
        name: String,
        /// Its holder.
        holder: ServiceAddr,
    },
    /// The name is empty or too long.
    #[error("invalid name {name:?}: {why}")]
    InvalidName {
        /// The name (cut to 64 bytes).
        name: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The service metadata is too large or its version does not parse.
    #[error("registration of {name:?}: {source}")]
    InvalidMeta {
        /// The name.
        name: String,
        /// What is wrong.
        source: crate::mesh::MetaError,
    },
}

/// How two digests differ, seen from this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestDiff {
    /// Owners whose sets this node should send (the peer is behind).
    pub send: Vec<NodeId>,
    /// This node is behind on some owner: the peer should send.
    pub behind: bool,
}

/// The replicated registry as one node holds it.
#[derive(Clone, Debug)]
pub struct RegistryState {
    local: NodeId,
    owners: BTreeMap<NodeId, OwnerSet>,
    index: BTreeMap<(EntryKind, String), BTreeSet<ServiceAddr>>,
    dead: BTreeSet<NodeId>,
}

impl RegistryState {
    /// An empty registry for node `local`.
    pub fn new(local: NodeId) -> Self {
        let mut owners = BTreeMap::new();
        owners.insert(local, OwnerSet::default());
        RegistryState {
            local,
            owners,
            index: BTreeMap::new(),
            dead: BTreeSet::new(),
        }
    }

    /// The node this state belongs to.
    pub fn local(&self) -> NodeId {
        self.local
    }

    /// Registers a local service under `name`. Registering the same
    /// service under the same name again changes nothing (`Ok(None)`),
    /// unless its metadata changed: then the entry is replaced.
    pub fn register(&mut self, entry: Entry) -> Result<Option<Delta>, RegisterError> {
        check_name(&entry.name)?;
        entry
            .meta
            .validate()
            .map_err(|source| RegisterError::InvalidMeta {
                name: entry.name.chars().take(64).collect(),
                source,
            })?;
        debug_assert_eq!(entry.owner(), self.local);
        if entry.kind == EntryKind::Unique {
            if let Some(holder) = self.lookup(&entry.name) {
                if holder.service != entry.service {
                    return Err(RegisterError::Taken {
                        name: entry.name,
                        holder: holder.service,
                    });
                }
                if holder.meta == entry.meta {
                    return Ok(None);
                }
            }
        } else if self
            .local_set()
            .entries
            .get(&entry.key())
            .is_some_and(|held| held.meta == entry.meta)
        {
            return Ok(None);
        }
        Ok(Some(self.local_change(vec![Op::Put(entry)])))
    }

    /// Removes a local registration; `None` if there was none.
    pub fn unregister(&mut self, kind: EntryKind, name: &str, local: u64) -> Option<Delta> {
        let key = EntryKey {
            kind,
            name: name.to_owned(),
            local,
        };
        self.local_set()
            .entries
            .contains_key(&key)
            .then(|| self.local_change(vec![Op::Remove(key)]))
    }

    /// Removes every registration of local service `local` (it stopped).
    pub fn unregister_service(&mut self, local: u64) -> Option<Delta> {
        let ops: Vec<Op> = self
            .local_set()
            .entries
            .keys()
            .filter(|k| k.local == local)
            .cloned()
            .map(Op::Remove)
            .collect();
        (!ops.is_empty()).then(|| self.local_change(ops))
    }

    fn local_set(&self) -> &OwnerSet {
        // The local set exists from `new` on and is never removed.
        self.owners
            .get(&self.local)
            .unwrap_or_else(|| unreachable!("local owner set"))
    }

    fn local_change(&mut self, ops: Vec<Op>) -> Delta {
        let base = self.local_set().version;
        let delta = Delta {
            owner: self.local,
            base,
            version: base + 1,
            ops,
        };
        self.apply_ops(&delta);
        delta
    }

    /// Applies a delta received from its owner.
    pub fn apply_delta(&mut self, delta: &Delta) -> Applied {
        if delta.owner == self.local {
            return Applied::Refused("a delta for this node's own entries");
        }
        if self.dead.contains(&delta.owner) {
            return Applied::Refused("the owner is down");
        }
        // Checked: `base` comes from a peer and may be u64::MAX.
        if delta.base.checked_add(1) != Some(delta.version) {
            return Applied::Refused("a delta must advance the version by one");
        }
        for op in &delta.ops {
            if let Err(why) = check_op(delta.owner, op) {
                return Applied::Refused(why);
            }
        }
        let have = self.version_of(delta.owner);
        if delta.version <= have {
            return Applied::Duplicate;
        }
        if delta.base != have {
            return Applied::Gap { have };
        }
        self.apply_ops(delta);
        Applied::Applied
    }

    fn apply_ops(&mut self, delta: &Delta) {
        let set = self.owners.entry(delta.owner).or_default();
        for op in &delta.ops {
            match op {
                Op::Put(e) => {
                    if let Some(old) = set.entries.insert(e.key(), e.clone()) {
                        unindex(&mut self.index, &old);
                    }
                    self.index
                        .entry((e.kind, e.name.clone()))
                        .or_default()
                        .insert(e.service);
                }
                Op::Remove(k) => {
                    if let Some(old) = set.entries.remove(k) {
                        unindex(&mut self.index, &old);
                    }
                }
            }
        }
        set.version = delta.version;
    }

    /// Merges an owner's snapshot (from the owner or relayed): kept if
    /// newer than what this node holds. Returns whether anything changed.
    pub fn merge_snapshot(&mut self, snap: &Snapshot) -> Result<bool, &'static str> {
        for e in &snap.entries {
            check_op(snap.owner, &Op::Put(e.clone()))?;
        }
        if snap.owner == self.local || self.dead.contains(&snap.owner) {
            return Ok(false);
        }
        if snap.version <= self.version_of(snap.owner) {
            return Ok(false);
        }
        self.remove_owner(snap.owner);
        let set = OwnerSet {
            version: snap.version,
            entries: snap.entries.iter().map(|e| (e.key(), e.clone())).collect(),
        };
        for e in set.entries.values() {
            self.index
                .entry((e.kind, e.name.clone()))
                .or_default()
                .insert(e.service);
        }
        self.owners.insert(snap.owner, set);
        Ok(true)
    }

    fn remove_owner(&mut self, owner: NodeId) {
        if let Some(old) = self.owners.remove(&owner) {
            for e in old.entries.values() {
                unindex(&mut self.index, e);
            }
        }
    }

    /// The owner went down or left: drop its entries, and refuse them
    /// (relayed by nodes that have not noticed yet) until [`owner_up`].
    ///
    /// [`owner_up`]: RegistryState::owner_up
    pub fn owner_down(&mut self, owner: NodeId) -> bool {
        if owner == self.local {
            return false;
        }
        self.dead.insert(owner);
        let had = self.owners.contains_key(&owner);
        self.remove_owner(owner);
        had
    }

    /// The owner is a member again (it rejoined after a false down).
    pub fn owner_up(&mut self, owner: NodeId) {
        self.dead.remove(&owner);
    }

    /// Forgets that `owner` was down (after a while, to bound memory).
    pub fn forget_dead(&mut self, owner: NodeId) {
        self.dead.remove(&owner);
    }

    /// Owners currently refused as down.
    pub fn dead(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.dead.iter().copied()
    }

    /// The version held for `owner` (0 if none).
    pub fn version_of(&self, owner: NodeId) -> u64 {
        self.owners.get(&owner).map_or(0, |s| s.version)
    }

    /// This node's own version.
    pub fn local_version(&self) -> u64 {
        self.local_set().version
    }

    /// An owner's set as a snapshot.
    pub fn snapshot(&self, owner: NodeId) -> Option<Snapshot> {
        self.owners.get(&owner).map(|s| Snapshot {
            owner,
            version: s.version,
            entries: s.entries.values().cloned().collect(),
        })
    }

    /// Every owner's version.
    pub fn digest(&self) -> Digest {
        self.owners.iter().map(|(o, s)| (*o, s.version)).collect()
    }

    /// Compares a peer's digest with this state.
    pub fn compare(&self, peer: NodeId, theirs: &Digest) -> DigestDiff {
        let theirs: BTreeMap<NodeId, u64> = theirs.iter().copied().collect();
        let mut diff = DigestDiff::default();
        for (owner, set) in &self.owners {
            // The peer is the authority on its own set.
            if *owner == peer {
                continue;
            }
            let v = theirs.get(owner).copied().unwrap_or(0);
            if set.version > v {
                diff.send.push(*owner);
            }
        }
        diff.behind = theirs.iter().any(|(owner, v)| {
            *owner != self.local && !self.dead.contains(owner) && *v > self.version_of(*owner)
        });
        diff
    }

    /// The holder of unique name `name`: the conflict winner among every
    /// owner's entries.
    pub fn lookup(&self, name: &str) -> Option<&Entry> {
        winner(self.entries_named(EntryKind::Unique, name))
    }

    /// Every member of group `name`.
    pub fn members_of(&self, name: &str) -> Vec<&Entry> {
        self.entries_named(EntryKind::Group, name)
    }

    /// Nodes with an interest in pub/sub topic `topic`.
    pub fn interested(&self, topic: &str) -> Vec<NodeId> {
        self.index
            .get(&(EntryKind::Interest, topic.to_owned()))
            .map(|addrs| addrs.iter().map(|a| a.node).collect())
            .unwrap_or_default()
    }

    fn entries_named(&self, kind: EntryKind, name: &str) -> Vec<&Entry> {
        let Some(addrs) = self.index.get(&(kind, name.to_owned())) else {
            return Vec::new();
        };
        addrs
            .iter()
            .filter_map(|addr| {
                self.owners.get(&addr.node)?.entries.get(&EntryKey {
                    kind,
                    name: name.to_owned(),
                    local: addr.local,
                })
            })
            .collect()
    }

    /// Local unique registrations that lose a conflict to another owner's
    /// entry: their services must stop with a name conflict.
    pub fn local_losers(&self) -> Vec<(Entry, Entry)> {
        self.local_set()
            .entries
            .values()
            .filter(|e| e.kind == EntryKind::Unique)
            .filter_map(|mine| {
                let w = self.lookup(&mine.name)?;
                (w.service != mine.service).then(|| (mine.clone(), w.clone()))
            })
            .collect()
    }

    /// Every entry, by owner.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.owners.values().flat_map(|s| s.entries.values())
    }

    /// Every owner's set.
    pub fn owners(&self) -> &BTreeMap<NodeId, OwnerSet> {
        &self.owners
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.owners.values().map(|s| s.entries.len()).sum()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unindex(index: &mut BTreeMap<(EntryKind, String), BTreeSet<ServiceAddr>>, e: &Entry) {
    let k = (e.kind, e.name.clone());
    if let Some(set) = index.get_mut(&k) {
        set.remove(&e.service);
        if set.is_empty() {
            index.remove(&k);
        }
    }
}

fn check_name(name: &str) -> Result<(), RegisterError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(RegisterError::InvalidName {
        name: name.chars().take(64).collect(),
        why,
    })
}

fn check_op(owner: NodeId, op: &Op) -> Result<(), &'static str> {
    match op {
        Op::Put(e) => {
            if e.service.node != owner {
                return Err("an entry owned by another node");
            }
            if e.name.is_empty() || e.name.len() > MAX_NAME_LEN {
                return Err("an empty or too long name");
            }
            if e.protocol.len() > MAX_PROTOCOL_LEN {
                return Err("a too long protocol name");
            }
            e.meta
                .validate()
                .map_err(|_| "service metadata out of bounds or an invalid version")
        }
        Op::Remove(k) if k.name.len() > MAX_NAME_LEN => Err("a too long name"),
        Op::Remove(_) => Ok(()),
    }
}
