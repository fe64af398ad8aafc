//! This node's session: one lease, granted on first need and kept alive
//! in the background. Its locks and ephemeral keys live as long as it.
//!
//! The node counts its session lost at the last successful keep-alive's
//! *send* time plus the time to live minus a margin (a quarter of it):
//! the leader's deadline is never earlier than that unless the clocks of
//! two successive leaders disagree by more than the margin less one tick.
//! So a holder stops before anyone else can be granted its lock.

use std::time::Duration;

use foundation_proto::coord::{Command, LeaseId, Rejected, Response};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Coord, CoordError};

/// A live session, as the API holds it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) lease: LeaseId,
    pub(crate) alive: watch::Receiver<bool>,
    stop: CancellationToken,
}

/// The session slot of a node.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    current: tokio::sync::Mutex<Option<Session>>,
}

impl Sessions {
    /// Ends the session (graceful shutdown): its locks pass on now.
    pub(crate) async fn end(&self, coord: &Coord) {
        let session = self.current.lock().await.take();
        if let Some(s) = session {
            s.stop.cancel();
            let _ = coord
                .with_timeout(Duration::from_millis(500))
                .propose(Command::Revoke { lease: s.lease })
                .await;
        }
    }
}

impl Coord {
    /// This node's session, granted now if it has none alive.
    pub(crate) async fn session(&self) -> Result<Session, CoordError> {
        let sessions = &self.shared.sessions;
        let mut current = sessions.current.lock().await;
        if let Some(s) = current.as_ref().filter(|s| *s.alive.borrow()) {
            return Ok(s.clone());
        }
        let ttl = self.shared.config.session_ttl;
        let sent = Instant::now();
        let granted = self
            .propose(Command::Grant {
                owner: self.shared.rpc.messenger.id(),
                ttl_ms: ttl.as_millis() as u64,
            })
            .await?;
        let Response::Lease { lease, .. } = granted else {
            return Err(CoordError::Unknown(format!("a grant answered {granted:?}")));
        };
        let (tx, rx) = watch::channel(true);
        let session = Session {
            lease,
            alive: rx,
            stop: self.shared.cancel.child_token(),
        };
        self.shared.tasks.spawn(keep_alive(
            self.clone(),
            lease,
            sent,
            tx,
            session.stop.clone(),
        ));
        tracing::debug!(lease, "coordination session granted");
        *current = Some(session.clone());
        Ok(session)
    }
}

async fn keep_alive(
    coord: Coord,
    lease: LeaseId,
    mut last_ok: Instant,
    alive: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let ttl = coord.shared.config.session_ttl;
    let every = ttl / 4;
    let deadline = |last: Instant| last + ttl - ttl / 4;
    let renew = coord.with_timeout(every);
    loop {
        let attempt = async {
            tokio::time::sleep(every).await;
            let sent = Instant::now();
            (sent, renew.propose(Command::KeepAlive { lease }).await)
        };
        tokio::select! {
            _ = stop.cancelled() => {
                alive.send_replace(false);
                return;
            }
            _ = tokio::time::sleep_until(deadline(last_ok)) => {
                alive.send_replace(false);
                tracing::warn!(lease, ?ttl, "coordination session lost: no keep-alive succeeded in time; its locks are released");
                return;
            }
            (sent, r) = attempt => match r {
                Ok(_) => last_ok = sent,
                Err(CoordError::Rejected(Rejected::NoLease(_))) => {
                    alive.send_replace(false);
                    tracing::warn!(lease, "coordination session ended at the leader; its locks are released");
                    return;
                }
                Err(e) => tracing::debug!(lease, error = %e, "keep-alive failed; retrying"),
            },
        }
    }
}
