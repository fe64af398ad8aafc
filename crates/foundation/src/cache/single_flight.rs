//! The owner's side of `get_or_compute`: the claims table of
//! [`foundation_proto::cache::Claims`], with each waiter's reply channel
//! as its token, and the task that ends claims whose node died or whose
//! lease ran out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foundation_proto::cache::{Claimed, Claims, Outcome};
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use super::store::Store;
use super::wire::Claim;
use crate::id::NodeId;
use crate::locks::Locked;
use crate::membership::MemberEvent;

/// Most keys being computed at once on one owner.
const MAX_CLAIMS: usize = 64 * 1024;
/// How often leases are checked when none is due sooner.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A waiting caller: where its answer goes, and what to release if the
/// claim passes to it after it stopped waiting.
#[derive(Debug)]
pub(crate) struct Waiter {
    id: Vec<u8>,
    node: NodeId,
    tx: oneshot::Sender<Outcome>,
}

/// One node's claims, over every cache.
#[derive(Debug)]
pub(crate) struct SingleFlight {
    claims: Mutex<Claims<Waiter>>,
}

/// A claim's key: the cache's name and the key, unambiguous.
fn claim_id(cache: &str, key: &[u8]) -> Vec<u8> {
    let mut id = Vec::with_capacity(4 + cache.len() + key.len());
    id.extend_from_slice(&u32::try_from(cache.len()).unwrap_or(u32::MAX).to_le_bytes());
    id.extend_from_slice(cache.as_bytes());
    id.extend_from_slice(key);
    id
}

impl Default for SingleFlight {
    fn default() -> Self {
        SingleFlight {
            claims: Mutex::new(Claims::new(MAX_CLAIMS)),
        }
    }
}

impl SingleFlight {
    /// Hands out answers; a grant to a waiter that stopped waiting passes
    /// the claim on again.
    fn deliver(&self, mut answers: Vec<(Waiter, Outcome)>) {
        while let Some((w, outcome)) = answers.pop() {
            let granted = outcome == Outcome::Granted;
            if w.tx.send(outcome).is_err() && granted {
                let more = self
                    .claims
                    .locked()
                    .release(&w.id, w.node, crate::shell_time::now());
                answers.extend(more);
            }
        }
    }

    /// `node` claims `key` of `store` on this node, its owner: answers the
    /// value if held, the grant, or waits (up to the cache's compute
    /// timeout and timeout) for the computation of whoever holds it.
    pub(crate) async fn claim(&self, store: &Store, key: &Bytes, node: NodeId) -> Claim {
        if let Some(e) = store.entry(key).filter(|e| e.value.is_some()) {
            return Claim::Value(Some(e));
        }
        let id = claim_id(&store.name, key);
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            id: id.clone(),
            node,
            tx,
        };
        let claimed = {
            let mut claims = self.claims.locked();
            // A value stored between the check above and this lock has
            // resolved its claim already: look again under the lock.
            if let Some(e) = store.entry(key).filter(|e| e.value.is_some()) {
                return Claim::Value(Some(e));
            }
            let lease = store.options.compute_timeout;
            claims.claim(&id, node, waiter, crate::shell_time::now(), lease)
        };
        match claimed {
            Claimed::Granted => Claim::Granted,
            Claimed::Full => Claim::Full,
            Claimed::Wait => {
                let wait = store.options.compute_timeout + store.options.timeout;
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(Outcome::Granted)) => Claim::Granted,
                    Ok(Ok(Outcome::Stored)) => Claim::Value(store.entry(key)),
                    // Dropped with its node, or not answered in time.
                    Ok(Err(_)) | Err(_) => Claim::Value(None),
                }
            }
        }
    }

    /// A value of `key` was stored: its waiters read it.
    pub(crate) fn stored(&self, cache: &str, key: &[u8]) {
        let answers = {
            let mut claims = self.claims.locked();
            if claims.is_empty() {
                return;
            }
            claims.stored(&claim_id(cache, key))
        };
        self.deliver(answers);
    }

    /// `node` gave up computing `key`.
    pub(crate) fn release(&self, cache: &str, key: &[u8], node: NodeId) {
        let answers =
            self.claims
                .locked()
                .release(&claim_id(cache, key), node, crate::shell_time::now());
        self.deliver(answers);
    }

    fn node_down(&self, node: NodeId) {
        let answers = self
            .claims
            .locked()
            .node_down(node, crate::shell_time::now());
        self.deliver(answers);
    }

    fn expire(&self) -> Option<Instant> {
        let (answers, next) = {
            let mut claims = self.claims.locked();
            let answers = claims.expire(crate::shell_time::now());
            (answers, claims.next_expiry())
        };
        self.deliver(answers);
        next
    }
}

/// Ends the claims of nodes that go down or leave, and of leases that
/// run out.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<MemberEvent>,
    cancel: CancellationToken,
) {
    let flight = &shared.flight;
    loop {
        let next = flight.expire();
        let sleep = next.map_or(IDLE_CHECK, |t| {
            t.saturating_duration_since(crate::shell_time::now())
                .min(IDLE_CHECK)
        });
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
            ev = events.recv() => match ev {
                Ok(MemberEvent::Down(m) | MemberEvent::Left(m)) => flight.node_down(m.id),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
