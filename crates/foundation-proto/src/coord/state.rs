//! The coordination state machine: keys with revisions, session leases,
//! fenced locks and counters. Deterministic: every replica that applies
//! the same commands in the same order holds the same state (it is what a
//! Raft snapshot carries).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::command::{Claim, Command, Event, Expect, LeaseId, Rejected, Response, Revision};
use super::{MAX_KEY, MAX_LEASES, MAX_NAMES, MAX_VALUE, MAX_WAITERS};
use crate::NodeId;

/// A key's value and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub created: Revision,
    /// The revision that last wrote it.
    pub modified: Revision,
    /// The lease it goes with, if any.
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    owner: NodeId,
    ttl_ms: u64,
    expires_ms: u64,
    keys: BTreeSet<String>,
    locks: BTreeSet<String>,
    /// Its node was declared down: no renewal, no new grant.
    #[serde(default)]
    doomed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Lock {
    holder: Option<(Claim, Revision)>,
    waiting: VecDeque<Claim>,
}

/// The state every replica holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordState {
    revision: Revision,
    now_ms: u64,
    next_lease: LeaseId,
    keys: BTreeMap<String, Entry>,
    leases: BTreeMap<LeaseId, Lease>,
    locks: BTreeMap<String, Lock>,
    counters: BTreeMap<String, i64>,
}

/// What one command did: its answer and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The answer, or why the command had no effect.
    pub response: Result<Response, Rejected>,
    /// Changes, in order (a lease that ended can remove keys and pass
    /// locks on).
    pub events: Vec<Event>,
}

fn name_ok(name: &str) -> Result<(), Rejected> {
    if name.is_empty() || name.len() > MAX_KEY {
        return Err(Rejected::BadName {
            len: name.len(),
            max: MAX_KEY,
        });
    }
    Ok(())
}

impl CoordState {
    /// The revision of the last change.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The leader clock as of the last tick.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// A key's entry.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// Keys starting with `prefix`, in order.
    pub fn range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        self.keys
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.as_str(), e))
    }

    /// The claim holding lock `name`, and its fencing token.
    pub fn holder(&self, name: &str) -> Option<(Claim, Revision)> {
        self.locks.get(name).and_then(|l| l.holder)
    }

    /// A counter's value (0 if never added to).
    pub fn counter(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Whether `lease` exists, and its owner.
    pub fn lease_owner(&self, lease: LeaseId) -> Option<NodeId> {
        self.leases.get(&lease).map(|l| l.owner)
    }

    /// Every session lease and the node it belongs to.
    pub fn lease_owners(&self) -> impl Iterator<Item = (LeaseId, NodeId)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l.owner))
    }

    /// When a lease ends unless renewed (leader clock, ms), if it exists.
    pub fn lease_deadline(&self, lease: LeaseId) -> Option<u64> {
        self.leases.get(&lease).map(|l| l.expires_ms)
    }

    fn live(&self, lease: LeaseId) -> bool {
        self.leases.get(&lease).is_some_and(|l| !l.doomed)
    }

    /// Applies `command` as proposed by a leader whose clock read `now_ms`:
    /// time moves first (as [`Command::Tick`]: leases past their deadline
    /// end), then the command applies. Every proposal carries the leader's
    /// clock this way, so a lease granted before any tick still gets its
    /// whole time to live.
    pub fn apply_at(&mut self, now_ms: u64, command: Command) -> Applied {
        let mut events = Vec::new();
        // A tick cannot be refused.
        let _ = self.apply_inner(Command::Tick { now_ms }, &mut events);
        let response = self.apply_inner(command, &mut events);
        Applied { response, events }
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Applied {
        let mut events = Vec::new();
        let response = self.apply_inner(command, &mut events);
        Applied { response, events }
    }

    fn apply_inner(
        &mut self,
        command: Command,
        events: &mut Vec<Event>,
    ) -> Result<Response, Rejected> {
        match command {
            Command::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                let expired: Vec<LeaseId> = self
                    .leases
                    .iter()
                    .filter(|(_, l)| l.expires_ms <= self.now_ms)
                    .map(|(id, _)| *id)
                    .collect();
                for lease in expired {
                    self.end_lease(lease, events);
                }
                Ok(Response::Done)
            }
            Command::Grant { owner, ttl_ms } => {
                if self.leases.len() >= MAX_LEASES {
                    return Err(Rejected::Full {
                        what: "leases".into(),
                        max: MAX_LEASES,
                    });
                }
                self.next_lease += 1;
                let lease = self.next_lease;
                let expires_ms = self.now_ms.saturating_add(ttl_ms);
                self.leases.insert(
                    lease,
                    Lease {
                        owner,
                        ttl_ms,
                        expires_ms,
                        keys: BTreeSet::new(),
                        locks: BTreeSet::new(),
                        doomed: false,
                    },
                );
                Ok(Response::Lease { lease, expires_ms })
            }
            Command::KeepAlive { lease } => {
                let now = self.now_ms;
                let l = self
                    .leases
                    .get_mut(&lease)
                    .filter(|l| !l.doomed)
                    .ok_or(Rejected::NoLease(lease))?;
                l.expires_ms = now.saturating_add(l.ttl_ms);
                Ok(Response::Done)
            }
            Command::Revoke { lease } => {
                if !self.leases.contains_key(&lease) {
                    return Err(Rejected::NoLease(lease));
                }
                self.end_lease(lease, events);
                Ok(Response::Done)
            }
            Command::NodeDown { node } => {
                let mut doomed = Vec::new();
                for (id, l) in self.leases.iter_mut().filter(|(_, l)| l.owner == node) {
                    l.doomed = true;
                    doomed.push(*id);
                }
                // Out of every queue: a doomed session is granted nothing.
                let names: Vec<String> = self.locks.keys().cloned().collect();
                for name in names {
                    if let Some(lock) = self.locks.get_mut(&name) {
                        lock.waiting.retain(|w| !doomed.contains(&w.lease));
                    }
                    self.drop_idle_lock(&name);
                }
                Ok(Response::Done)
            }
            Command::Promote { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                let now = self.now_ms;
                for l in self.leases.values_mut().filter(|l| !l.doomed) {
                    l.expires_ms = l.expires_ms.max(now.saturating_add(l.ttl_ms));
                }
                Ok(Response::Done)
            }
            Command::Put {
                key,
                value,
                lease,
                expect,
            } => self.put(key, value, lease, expect, events),
            Command::Delete { key, expect } => {
                name_ok(&key)?;
                self.check(&key, expect)?;
                self.revision += 1;
                let existed = self.remove_key(&key, events);
                Ok(Response::Deleted {
                    revision: self.revision,
                    existed,
                })
            }
            Command::Lock { name, claim } => self.lock(name, claim, events),
            Command::Unlock { name, claim } => {
                name_ok(&name)?;
                let Some(lock) = self.locks.get_mut(&name) else {
                    return Ok(Response::Unlocked);
                };
                lock.waiting.retain(|c| *c != claim);
                if lock.holder.is_some_and(|(h, _)| h == claim) {
                    lock.holder = None;
                    self.pass_on(&name, events);
                }
                self.forget_lock_of(&name, claim.lease);
                self.drop_idle_lock(&name);
                Ok(Response::Unlocked)
            }
            Command::Add { name, delta } => {
                name_ok(&name)?;
                if !self.counters.contains_key(&name) && self.counters.len() >= MAX_NAMES {
                    return Err(Rejected::Full {
                        what: "counters".into(),
                        max: MAX_NAMES,
                    });
                }
                let value = self
                    .counter(&name)
                    .checked_add(delta)
                    .ok_or_else(|| Rejected::Overflow(name.clone()))?;
                self.revision += 1;
                self.counters.insert(name, value);
                Ok(Response::Counter { value })
            }
        }
    }

    fn check(&self, key: &str, expect: Expect) -> Result<(), Rejected> {
        let current = self.keys.get(key).map(|e| e.modified);
        let holds = match expect {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Revision(r) => current == Some(r),
        };
        if holds {
            Ok(())
        } else {
            Err(Rejected::CompareFailed {
                key: key.to_owned(),
                current,
            })
        }
    }

    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
        expect: Expect,
        events: &mut Vec<Event>,
    ) -> Result<Response, Rejected> {
        name_ok(&key)?;
        if value.len() > MAX_VALUE {
            return Err(Rejected::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE,
            });
        }
        if let Some(l) = lease {
            if !self.live(l) {
                return Err(Rejected::NoLease(l));
            }
        }
        self.check(&key, expect)?;
        if !self.keys.contains_key(&key) && self.keys.len() >= MAX_NAMES {
            return Err(Rejected::Full {
                what: "keys".into(),
                max: MAX_NAMES,
            });
        }
        self.revision += 1;
        let revision = self.revision;
        let before = self.keys.get(&key).and_then(|e| e.lease);
        if let Some(old) = before.filter(|old| Some(*old) != lease) {
            if let Some(l) = self.leases.get_mut(&old) {
                l.keys.remove(&key);
            }
        }
        if let Some(l) = lease.and_then(|l| self.leases.get_mut(&l)) {
            l.keys.insert(key.clone());
        }
        let created = self.keys.get(&key).map_or(revision, |e| e.created);
        events.push(Event::Put {
            key: key.clone(),
            value: value.clone(),
            revision,
        });
        self.keys.insert(
            key,
            Entry {
                value,
                created,
                modified: revision,
                lease,
            },
        );
        Ok(Response::Put { revision })
    }

    fn lock(
        &mut self,
        name: String,
        claim: Claim,
        events: &mut Vec<Event>,
    ) -> Result<Response, Rejected> {
        name_ok(&name)?;
        let lease = claim.lease;
        if !self.live(lease) {
            return Err(Rejected::NoLease(lease));
        }
        if !self.locks.contains_key(&name) && self.locks.len() >= MAX_NAMES {
            return Err(Rejected::Full {
                what: "locks".into(),
                max: MAX_NAMES,
            });
        }
        let lock = self.locks.entry(name.clone()).or_default();
        match lock.holder {
            Some((h, token)) if h == claim => Ok(Response::Locked { token }),
            Some(_) => {
                if let Some(ahead) = lock.waiting.iter().position(|c| *c == claim) {
                    return Ok(Response::Queued { ahead });
                }
                if lock.waiting.len() >= MAX_WAITERS {
                    return Err(Rejected::QueueFull {
                        name,
                        max: MAX_WAITERS,
                    });
                }
                lock.waiting.push_back(claim);
                let ahead = lock.waiting.len() - 1;
                if let Some(l) = self.leases.get_mut(&lease) {
                    l.locks.insert(name);
                }
                Ok(Response::Queued { ahead })
            }
            None => {
                self.revision += 1;
                let token = self.revision;
                lock.holder = Some((claim, token));
                if let Some(l) = self.leases.get_mut(&lease) {
                    l.locks.insert(name.clone());
                }
                events.push(Event::Granted { name, claim, token });
                Ok(Response::Locked { token })
            }
        }
    }

    /// Gives a free lock to its first waiter whose lease still exists.
    fn pass_on(&mut self, name: &str, events: &mut Vec<Event>) {
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        while let Some(next) = lock.waiting.pop_front() {
            if self.leases.get(&next.lease).is_some_and(|l| !l.doomed) {
                self.revision += 1;
                let token = self.revision;
                lock.holder = Some((next, token));
                events.push(Event::Granted {
                    name: name.to_owned(),
                    claim: next,
                    token,
                });
                return;
            }
        }
    }

    /// Drops `name` from the locks `lease` holds or waits for, unless
    /// another of its claims still does.
    fn forget_lock_of(&mut self, name: &str, lease: LeaseId) {
        let still = self.locks.get(name).is_some_and(|lock| {
            lock.holder.is_some_and(|(h, _)| h.lease == lease)
                || lock.waiting.iter().any(|c| c.lease == lease)
        });
        if !still {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.locks.remove(name);
            }
        }
    }

    fn drop_idle_lock(&mut self, name: &str) {
        if self
            .locks
            .get(name)
            .is_some_and(|l| l.holder.is_none() && l.waiting.is_empty())
        {
            self.locks.remove(name);
        }
    }

    fn remove_key(&mut self, key: &str, events: &mut Vec<Event>) -> bool {
        let Some(entry) = self.keys.remove(key) else {
            return false;
        };
        if let Some(l) = entry.lease.and_then(|l| self.leases.get_mut(&l)) {
            l.keys.remove(key);
        }
        events.push(Event::Deleted {
            key: key.to_owned(),
            revision: self.revision,
        });
        true
    }

    /// Ends `lease`: its keys go, its locks pass to their next waiters,
    /// and it leaves every queue.
    fn end_lease(&mut self, lease: LeaseId, events: &mut Vec<Event>) {
        let Some(l) = self.leases.remove(&lease) else {
            return;
        };
        self.revision += 1;
        for key in &l.keys {
            self.remove_key(key, events);
        }
        // Out of every queue first, so no lock passes to another of its
        // claims.
        for name in &l.locks {
            if let Some(lock) = self.locks.get_mut(name) {
                lock.waiting.retain(|w| w.lease != lease);
            }
        }
        for name in &l.locks {
            if let Some(lock) = self.locks.get_mut(name) {
                if lock.holder.is_some_and(|(h, _)| h.lease == lease) {
                    lock.holder = None;
                    self.pass_on(name, events);
                }
            }
            self.drop_idle_lock(name);
        }
        events.push(Event::LeaseEnded { lease });
    }
}
