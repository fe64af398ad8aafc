//! Child specs and their replicated map: last writer wins per spec id,
//! with tombstones, so a spec outlives the node that started it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// How many instances of a spec run, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Exactly one in the cluster (per side of a partition only under the
    /// keep-all split-brain policy).
    Singleton,
    /// One on every eligible node.
    Replicated,
    /// `shards` instances, spread by key.
    Partitioned {
        /// Number of shards.
        shards: u32,
    },
}

/// What to run: a kind defined on every node, its arguments and its
/// strategy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Unique id; also the registered name of a singleton.
    pub id: String,
    /// The kind, as given to `ProcessManager::define` on every node.
    pub kind: String,
    /// The kind's arguments (postcard).
    pub args: Bytes,
    /// How many instances, where.
    pub strategy: Strategy,
    /// Only on members with this role.
    pub role: Option<String>,
    /// Each instance runs under a coordination lock (a fenced singleton):
    /// it starts only once it holds the lock, and stops when it loses it.
    #[serde(default)]
    pub fenced: bool,
}

/// Largest spec id, in bytes.
pub const MAX_ID: usize = 512;
/// Largest kind or role name, in bytes.
pub const MAX_NAME: usize = 256;
/// Largest spec arguments, in bytes.
pub const MAX_ARGS: usize = 64 * 1024;
/// Most shards a partitioned spec may have. Every node places every shard
/// on every pass, so the count bounds the work a spec causes everywhere.
pub const MAX_SHARDS: u32 = 4096;

/// Why a spec is refused: on the node that writes it, with this message,
/// and on every node that receives it from a peer (dropped and counted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The id is empty, too long, or has `#` or `@` (which name shards and
    /// replicas).
    #[error("invalid spec id {id:?}: non-empty, at most {MAX_ID} bytes, without '#' or '@'")]
    Id {
        /// The id (cut to `MAX_ID` bytes).
        id: String,
    },
    /// The kind is empty or too long.
    #[error("spec {id:?}: kind must be non-empty and at most {MAX_NAME} bytes ({len} given)")]
    Kind {
        /// The spec id.
        id: String,
        /// Its length.
        len: usize,
    },
    /// The role is empty or too long.
    #[error("spec {id:?}: role must be non-empty and at most {MAX_NAME} bytes ({len} given)")]
    Role {
        /// The spec id.
        id: String,
        /// Its length.
        len: usize,
    },
    /// The arguments are too large.
    #[error("spec {id:?}: arguments of {len} bytes, more than {MAX_ARGS}")]
    Args {
        /// The spec id.
        id: String,
        /// Their size.
        len: usize,
    },
    /// Zero shards, or more than `MAX_SHARDS`.
    #[error("spec {id:?}: {shards} shards; a partitioned spec has 1 to {MAX_SHARDS}")]
    Shards {
        /// The spec id.
        id: String,
        /// The count given.
        shards: u32,
    },
}

impl ChildSpec {
    /// Checks the spec's bounds (every node checks specs from peers too).
    pub fn check(&self) -> Result<(), SpecError> {
        check_id(&self.id)?;
        let id = || self.id.clone();
        if self.kind.is_empty() || self.kind.len() > MAX_NAME {
            return Err(SpecError::Kind {
                id: id(),
                len: self.kind.len(),
            });
        }
        if let Some(role) = &self.role {
            if role.is_empty() || role.len() > MAX_NAME {
                return Err(SpecError::Role {
                    id: id(),
                    len: role.len(),
                });
            }
        }
        if self.args.len() > MAX_ARGS {
            return Err(SpecError::Args {
                id: id(),
                len: self.args.len(),
            });
        }
        if let Strategy::Partitioned { shards } = self.strategy {
            if shards == 0 || shards > MAX_SHARDS {
                return Err(SpecError::Shards { id: id(), shards });
            }
        }
        Ok(())
    }
}

/// Checks a spec id alone.
pub fn check_id(id: &str) -> Result<(), SpecError> {
    if id.is_empty() || id.len() > MAX_ID || id.contains(['#', '@']) {
        let mut cut = id.len().min(MAX_ID);
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(SpecError::Id {
            id: id[..cut].to_owned(),
        });
    }
    Ok(())
}

/// Orders writes to one spec id: time of the write, then the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch at the writer.
    pub at: u64,
    /// The writing node.
    pub by: NodeId,
}

/// A spec or its tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpecEntry {
    /// The spec; `None` once removed.
    pub spec: Option<ChildSpec>,
    /// The write that set it.
    pub stamp: Stamp,
}

impl SpecEntry {
    /// Whether this entry may be stored under `id`: a valid id, and a spec
    /// (if any) that passes [`ChildSpec::check`] and has that id.
    pub fn check(&self, id: &str) -> Result<(), SpecError> {
        check_id(id)?;
        match &self.spec {
            Some(spec) if spec.id != id => Err(SpecError::Id {
                id: spec.id.clone(),
            }),
            Some(spec) => spec.check(),
            None => Ok(()),
        }
    }
}

/// Every spec in the cluster. Merge keeps the entry with the higher stamp
/// per id: commutative, associative, idempotent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecMap {
    entries: BTreeMap<String, SpecEntry>,
}

/// Most specs a map holds; writes beyond are refused.
pub const MAX_SPECS: usize = 10_000;

impl SpecMap {
    /// Merges one entry; whether it changed the map. An entry that fails
    /// [`SpecEntry::check`] is refused.
    pub fn merge(&mut self, id: &str, entry: SpecEntry) -> bool {
        if entry.check(id).is_err() {
            return false;
        }
        match self.entries.get(id) {
            Some(cur) if cur.stamp >= entry.stamp => false,
            None if self.entries.len() >= MAX_SPECS => false,
            _ => {
                self.entries.insert(id.to_owned(), entry);
                true
            }
        }
    }

    /// Merges another map; whether anything changed.
    pub fn merge_all(&mut self, other: impl IntoIterator<Item = (String, SpecEntry)>) -> bool {
        let mut changed = false;
        for (id, e) in other {
            changed |= self.merge(&id, e);
        }
        changed
    }

    /// The live specs.
    pub fn specs(&self) -> impl Iterator<Item = &ChildSpec> {
        self.entries.values().filter_map(|e| e.spec.as_ref())
    }

    /// The live spec `id`.
    pub fn get(&self, id: &str) -> Option<&ChildSpec> {
        self.entries.get(id).and_then(|e| e.spec.as_ref())
    }

    /// Every entry, tombstones included.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &SpecEntry)> {
        self.entries.iter()
    }

    /// A digest of the whole map: equal maps, equal digests.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (id, e) in &self.entries {
            for b in id
                .as_bytes()
                .iter()
                .chain(&e.stamp.at.to_le_bytes())
                .chain(&e.stamp.by.0.to_le_bytes())
            {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= u64::from(e.spec.is_some());
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::{ChildSpec, SpecEntry, SpecMap, Stamp, Strategy as Placing};
    use crate::NodeId;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn entry(id: &str, at: u64, by: u64, live: bool) -> SpecEntry {
        SpecEntry {
            spec: live.then(|| ChildSpec {
                id: id.to_owned(),
                kind: "k".into(),
                args: Bytes::from(vec![at as u8]),
                strategy: Placing::Singleton,
                role: None,
                fenced: false,
            }),
            stamp: Stamp { at, by: NodeId(by) },
        }
    }

    #[test]
    fn the_later_write_wins_and_a_tombstone_removes() {
        let mut m = SpecMap::default();
        assert!(m.merge("a", entry("a", 10, 1, true)));
        assert!(
            !m.merge("a", entry("a", 5, 9, false)),
            "older write ignored"
        );
        assert!(
            m.merge("a", entry("a", 10, 2, false)),
            "same time, higher writer"
        );
        assert!(m.get("a").is_none());
        assert!(m.merge("a", entry("a", 11, 1, true)));
        assert!(m.get("a").is_some());
        assert!(!m.merge("b", entry("c", 1, 1, true)), "id mismatch refused");
    }

    #[test]
    fn poison_specs_are_refused_with_what_is_wrong() {
        use super::{SpecError, MAX_ARGS, MAX_SHARDS};
        let good = entry("a", 1, 1, true).spec.expect("live");
        assert_eq!(good.check(), Ok(()));
        let with = |f: &dyn Fn(&mut ChildSpec)| {
            let mut s = good.clone();
            f(&mut s);
            s
        };
        let cases: Vec<(ChildSpec, &str)> = vec![
            (
                with(&|s| s.strategy = Placing::Partitioned { shards: u32::MAX }),
                "shards",
            ),
            (
                with(&|s| s.strategy = Placing::Partitioned { shards: 0 }),
                "shards",
            ),
            (
                with(&|s| s.args = Bytes::from(vec![0; MAX_ARGS + 1])),
                "arguments",
            ),
            (with(&|s| s.kind = String::new()), "kind"),
            (with(&|s| s.kind = "k".repeat(300)), "kind"),
            (with(&|s| s.role = Some(String::new())), "role"),
            (with(&|s| s.id = "a#1".into()), "spec id"),
            (with(&|s| s.id = "é".repeat(300)), "spec id"),
        ];
        for (spec, says) in cases {
            let e = spec.check().expect_err("refused");
            assert!(e.to_string().contains(says), "{e}");
            // A peer's copy is refused too, and leaves the map as it was.
            let mut m = SpecMap::default();
            let id = spec.id.clone();
            let entry = SpecEntry {
                spec: Some(spec),
                stamp: Stamp {
                    at: 1,
                    by: NodeId(1),
                },
            };
            assert!(entry.check(&id).is_err());
            assert!(!m.merge(&id, entry));
            assert_eq!(m.entries().count(), 0);
        }
        let most = with(&|s| s.strategy = Placing::Partitioned { shards: MAX_SHARDS });
        assert_eq!(most.check(), Ok(()));
        assert!(matches!(
            with(&|s| s.id = String::new()).check(),
            Err(SpecError::Id { .. })
        ));
    }

    fn writes() -> impl Strategy<Value = Vec<(String, SpecEntry)>> {
        // One writer never reuses a stamp, so the content is a function of
        // (id, stamp).
        prop::collection::vec((0u8..4, 0u64..5, 0u64..3), 0..20).prop_map(|v| {
            v.into_iter()
                .map(|(id, at, by)| {
                    let live = (u64::from(id) + at + by) % 3 != 0;
                    let id = format!("s{id}");
                    let e = entry(&id, at, by, live);
                    (id, e)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(a in writes(), b in writes(), c in writes()) {
            let build = |parts: &[&Vec<(String, SpecEntry)>]| {
                let mut m = SpecMap::default();
                for p in parts {
                    m.merge_all(p.iter().cloned());
                }
                m
            };
            let abc = build(&[&a, &b, &c]);
            prop_assert_eq!(&abc, &build(&[&c, &b, &a]));
            prop_assert_eq!(&abc, &build(&[&b, &a, &c]));
            let mut again = abc.clone();
            prop_assert!(!again.merge_all(a.iter().chain(&b).chain(&c).cloned()));
            prop_assert_eq!(abc.digest(), build(&[&c, &a, &b]).digest());
        }
    }
}
