//! Single flight for `get_or_compute`: the key's owner lets one caller at
//! a time compute a missing value; the others wait for its result.
//!
//! A claim lasts a lease. When the computing node gives up, dies, or its
//! lease runs out, the first waiter is granted the claim in its place, so
//! no caller waits on a computation nobody is running. When the value is
//! stored, every waiter is told to read it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::NodeId;

/// What a claim request gets at once.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// Compute the value, then store it (or release the claim).
    Granted,
    /// Someone else computes; the waiter is told later.
    Wait,
    /// Too many keys are being computed at once.
    Full,
}

/// What a waiter is told later.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The value was stored: read it.
    Stored,
    /// The claim passed to this waiter: compute.
    Granted,
}

#[derive(Debug)]
struct Claim<W> {
    holder: NodeId,
    lease: Duration,
    expires: Instant,
    waiting: VecDeque<(NodeId, W)>,
}

/// The claims an owner holds, each waiter known by a token `W` (the shell
/// keeps its reply channel there).
#[derive(Debug)]
pub struct Claims<W> {
    by_key: HashMap<Vec<u8>, Claim<W>>,
    limit: usize,
}

impl<W> Claims<W> {
    /// At most `limit` keys claimed at once.
    pub fn new(limit: usize) -> Self {
        Claims {
            by_key: HashMap::new(),
            limit,
        }
    }

    /// Keys being computed now.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is being computed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// `node` asks to compute `key`, for at most `lease` (each holder the
    /// claim passes to gets the same). If another node computes it,
    /// `waiter` is kept and answered later by [`Claims::stored`],
    /// [`Claims::release`], [`Claims::expire`] or [`Claims::node_down`].
    pub fn claim(
        &mut self,
        key: &[u8],
        node: NodeId,
        waiter: W,
        now: Instant,
        lease: Duration,
    ) -> Claimed {
        if let Some(c) = self.by_key.get_mut(key) {
            c.waiting.push_back((node, waiter));
            return Claimed::Wait;
        }
        if self.by_key.len() >= self.limit {
            return Claimed::Full;
        }
        self.by_key.insert(
            key.to_vec(),
            Claim {
                holder: node,
                lease,
                expires: now + lease,
                waiting: VecDeque::new(),
            },
        );
        Claimed::Granted
    }

    /// The value of `key` was stored: the claim ends and every waiter is
    /// told to read it.
    pub fn stored(&mut self, key: &[u8]) -> Vec<(W, Outcome)> {
        self.by_key
            .remove(key)
            .map(|c| {
                c.waiting
                    .into_iter()
                    .map(|(_, w)| (w, Outcome::Stored))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `node` gave up computing `key`: the first waiter, if any, computes
    /// instead. A release by a node that does not hold the claim is
    /// ignored.
    pub fn release(&mut self, key: &[u8], node: NodeId, now: Instant) -> Vec<(W, Outcome)> {
        match self.by_key.get(key) {
            Some(c) if c.holder == node => self.pass_on(key.to_vec(), now),
            _ => Vec::new(),
        }
    }

    /// Claims whose lease ran out pass to their first waiter.
    pub fn expire(&mut self, now: Instant) -> Vec<(W, Outcome)> {
        let due: Vec<Vec<u8>> = self
            .by_key
            .iter()
            .filter(|(_, c)| c.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter().flat_map(|k| self.pass_on(k, now)).collect()
    }

    /// `node` is gone: its claims pass on and its waiters are dropped (no
    /// one would read their answer).
    pub fn node_down(&mut self, node: NodeId, now: Instant) -> Vec<(W, Outcome)> {
        for c in self.by_key.values_mut() {
            c.waiting.retain(|(n, _)| *n != node);
        }
        let held: Vec<Vec<u8>> = self
            .by_key
            .iter()
            .filter(|(_, c)| c.holder == node)
            .map(|(k, _)| k.clone())
            .collect();
        held.into_iter()
            .flat_map(|k| self.pass_on(k, now))
            .collect()
    }

    /// The earliest lease end, if any claim is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_key.values().map(|c| c.expires).min()
    }

    fn pass_on(&mut self, key: Vec<u8>, now: Instant) -> Vec<(W, Outcome)> {
        let Some(mut c) = self.by_key.remove(&key) else {
            return Vec::new();
        };
        let Some((next, w)) = c.waiting.pop_front() else {
            return Vec::new();
        };
        c.holder = next;
        c.expires = now + c.lease;
        self.by_key.insert(key, c);
        vec![(w, Outcome::Granted)]
    }
}
