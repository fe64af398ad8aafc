//! Serves peers' requests: Raft's messages go to openraft, proposals and
//! read barriers are run if this node leads, and replies go back to the
//! callers waiting in [`Rpc`](super::rpc::Rpc).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::types::GroupId;
use super::wire::{Envelope, Reply, Request, Status, KIND_REPLY, KIND_REQUEST};
use super::Shared;
use crate::id::NodeId;
use crate::transport::{Inbox, Incoming};

/// Requests served at once; beyond it a request is answered `Busy`.
const CONCURRENT: usize = 256;

/// The receive loop of coordination frames.
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
                    shared.rpc.learn(env.from, m.from);
                    shared.rpc.answered(env.corr, env.body)
                }
                Err(e) => refused(&shared, &m, &e),
            },
            KIND_REQUEST => match Envelope::<Request>::decode(&m.payload) {
                Ok(env) => {
                    let from = m.from;
                    shared.rpc.learn(env.from, from);
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        let rpc = shared.rpc.clone();
                        shared
                            .tasks
                            .spawn(async move { rpc.reply(from, env.corr, Reply::Busy).await });
                        continue;
                    };
                    let shared2 = shared.clone();
                    shared.tasks.spawn(async move {
                        let corr = env.corr;
                        let reply = handle(&shared2, env).await;
                        shared2.rpc.reply(from, corr, reply).await;
                        drop(slot);
                    });
                }
                Err(e) => refused(&shared, &m, &e),
            },
            _ => {}
        }
    }
}

fn refused(shared: &Shared, m: &Incoming, e: &postcard::Error) {
    shared.bad_frames.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("foundation_coord_bad_frames_total").increment(1);
    tracing::debug!(from = %m.from, kind = m.kind, error = %e, "coordination frame does not decode; dropped");
}

/// Whether a Raft message from `theirs` may be served by a node in `ours`:
/// a node with no group joins the sender's.
fn same_group(shared: &Shared, theirs: Option<GroupId>) -> Result<(), Option<GroupId>> {
    let Some(theirs) = theirs else {
        return Err(shared.rpc.group());
    };
    let ours = shared.rpc.adopt(theirs);
    if ours == theirs {
        Ok(())
    } else {
        shared.foreign_group.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("foundation_coord_foreign_group_total").increment(1);
        tracing::warn!(%ours, %theirs, "a Raft message from another coordination group was refused (two groups formed apart; see the coordination guide)");
        Err(Some(ours))
    }
}

/// A client request from a member of another group (a node in no group
/// yet may ask): refused, naming ours.
fn from_elsewhere(shared: &Shared, theirs: Option<GroupId>) -> Option<Reply> {
    let ours = shared.rpc.group();
    (theirs.is_some() && theirs != ours).then_some(Reply::WrongGroup { ours })
}

async fn handle(shared: &Shared, env: Envelope<Request>) -> Reply {
    let raft = &shared.raft;
    let wait = shared.config.timeout;
    match env.body {
        Request::Append(rpc) => match same_group(shared, env.group) {
            Ok(()) => Reply::Append(raft.append_entries(rpc).await),
            Err(ours) => Reply::WrongGroup { ours },
        },
        Request::Vote(rpc) => match same_group(shared, env.group) {
            Ok(()) => Reply::Vote(raft.vote(rpc).await),
            Err(ours) => Reply::WrongGroup { ours },
        },
        Request::Snapshot(rpc) => match same_group(shared, env.group) {
            Ok(()) => Reply::Snapshot(raft.install_snapshot(rpc).await),
            Err(ours) => Reply::WrongGroup { ours },
        },
        Request::Propose(command) => {
            if let Some(refused) = from_elsewhere(shared, env.group) {
                return refused;
            }
            Reply::Propose(shared.propose_here(command, wait).await)
        }
        Request::ReadIndex => {
            if let Some(refused) = from_elsewhere(shared, env.group) {
                return refused;
            }
            let r = tokio::time::timeout(wait, shared.read_index_here()).await;
            Reply::ReadIndex(r.unwrap_or(Err(super::wire::Refused::NotLeader { leader: None })))
        }
        Request::Status => Reply::Status(Status {
            raft: shared.id,
            group: shared.rpc.group(),
            leader: shared.leader(),
        }),
    }
}

/// How long a status request waits for each peer.
pub(crate) const STATUS_WAIT: Duration = Duration::from_millis(1000);

/// Asks member `peer` its Raft id and which group it is in (addressed by
/// member id: its Raft id is what this asks).
pub(crate) async fn status_of(shared: &Shared, peer: NodeId) -> Option<Status> {
    let rpc = &shared.rpc;
    match rpc.call_member(peer, Request::Status, STATUS_WAIT).await {
        Ok(Reply::Status(s)) => {
            rpc.learn(s.raft, peer);
            Some(s)
        }
        _ => None,
    }
}
