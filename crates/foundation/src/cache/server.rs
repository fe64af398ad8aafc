//! Serves peers' cache requests and routes replies to the callers
//! waiting for them.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::route::write_as_owner;
use super::shared::Shared;
use super::wire::{Envelope, Op, Reply, Request, KIND_REPLY, KIND_REQUEST};
use crate::id::NodeId;
use crate::transport::{Inbox, Incoming};

/// Requests served at once; beyond it a request is answered `Busy`.
const CONCURRENT: usize = 1024;

/// The receive loop of cache frames.
pub(crate) async fn serve(shared: Arc<Shared>, mut inbox: Inbox, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let m = tokio::select! {
            _ = cancel.cancelled() => return,
            m = inbox.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        match m.kind {
            KIND_REPLY => match Envelope::<Reply>::decode(&m.payload) {
                Ok(env) => {
                    shared.calls.answered(env.corr, env.body);
                }
                Err(e) => refused(&m, &e),
            },
            KIND_REQUEST => match Envelope::<Request>::decode(&m.payload) {
                Ok(env) => {
                    let from = m.from;
                    let shared2 = shared.clone();
                    if let Some(reply) = at_once(&shared, from, &env.body) {
                        // Answered here, without a task of its own: only
                        // the reply's send is spawned.
                        shared.messenger.tasks.spawn(async move {
                            send_reply(&shared2, from, env.corr, reply).await;
                        });
                        continue;
                    }
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => shared.messenger.tasks.spawn(async move {
                            let reply = handle(&shared2, from, env.body).await;
                            send_reply(&shared2, from, env.corr, reply).await;
                            drop(slot);
                        }),
                        Err(_) => shared.messenger.tasks.spawn(async move {
                            send_reply(&shared2, from, env.corr, Reply::Busy).await;
                        }),
                    }
                }
                Err(e) => refused(&m, &e),
            },
            _ => {}
        }
    }
}

fn refused(m: &Incoming, e: &postcard::Error) {
    metrics::counter!("foundation_cache_bad_frames_total").increment(1);
    tracing::debug!(from = %m.from, kind = m.kind, error = %e, "cache frame does not decode; dropped");
}

async fn send_reply(shared: &Shared, to: NodeId, corr: u64, body: Reply) {
    match (Envelope { corr, body }).encode() {
        Ok(bytes) => {
            if let Err(e) = shared.messenger.send_auto(to, KIND_REPLY, bytes).await {
                tracing::debug!(%to, error = %e, "cache reply not sent");
            }
        }
        Err(e) => tracing::warn!(%to, error = %e, "cache reply does not encode"),
    }
}

/// The answer to a request that needs no waiting (a read), if it is one.
fn at_once(shared: &Shared, from: NodeId, req: &Request) -> Option<Reply> {
    let Op::Get { key, near } = &req.op else {
        return None;
    };
    let Some(s) = shared.store_for_peer(&req.cache, req.spread) else {
        return Some(Reply::Busy);
    };
    if *near {
        s.interested(key, from);
    }
    Some(Reply::Value(s.entry(key)))
}

/// Serves one request. A request naming a cache this node cannot keep
/// (the limit of caches) is answered as busy.
pub(crate) async fn handle(shared: &Shared, from: NodeId, req: Request) -> Reply {
    let Some(s) = shared.store_for_peer(&req.cache, req.spread) else {
        return Reply::Busy;
    };
    match req.op {
        Op::Get { key, near } => {
            if near {
                s.interested(&key, from);
            }
            Reply::Value(s.entry(&key))
        }
        Op::Write { key, value, ttl_ms } => {
            let (entry, copies) = write_as_owner(shared, &s, key, value, ttl_ms).await;
            Reply::Written { entry, copies }
        }
        Op::Store { entries } => {
            for (k, e) in entries {
                shared.observe(e.version);
                s.apply(k, e);
            }
            Reply::Done
        }
        Op::Clear => {
            s.table.invalidate_all();
            Reply::Done
        }
        Op::Claim { key } => Reply::Claim(shared.flight.claim(&s, &key, from).await),
        Op::Release { key } => {
            shared.flight.release(&s.name, &key, from);
            Reply::Done
        }
        Op::Invalidate { keys } => {
            if let Some(near) = shared.near_of(&s.name) {
                for (k, v) in keys {
                    near.invalidate(&k, v);
                }
            }
            Reply::Done
        }
        Op::Versions { keys } => Reply::Stale(super::near::stale(&s, from, keys)),
    }
}
