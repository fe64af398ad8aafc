//! Locks with fencing tokens, held by this node's session.

use std::sync::atomic::Ordering;
use std::time::Duration;

use foundation_proto::coord::{Claim, Command, Response, Revision};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Coord, CoordError};

/// A held lock. Its [`token`](LockGuard::token) only grows from one
/// holder to the next: pass it to the storage you protect and have it
/// refuse older tokens (fencing).
///
/// Dropped, it is released in the background; [`LockGuard::unlock`]
/// releases it and waits. It is also released when this node's session
/// ends ([`LockGuard::lost`] tells) or the node goes down.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    coord: Coord,
    name: String,
    claim: Claim,
    token: Revision,
    alive: watch::Receiver<bool>,
    released: bool,
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token of this grant.
    pub fn token(&self) -> Revision {
        self.token
    }

    /// Whether this node still counts the lock as held: false once its
    /// session is lost (by its own clock, before the leader can grant the
    /// lock to anyone else).
    pub fn is_held(&self) -> bool {
        *self.alive.borrow()
    }

    /// Whether the lock is held, as it changes.
    pub fn held(&self) -> watch::Receiver<bool> {
        self.alive.clone()
    }

    /// Resolves when the lock is lost with the session.
    pub async fn lost(&mut self) {
        let _ = self.alive.wait_for(|a| !*a).await;
    }

    /// Releases the lock and waits until the release is applied.
    pub async fn unlock(mut self) -> Result<(), CoordError> {
        self.released = true;
        let name = std::mem::take(&mut self.name);
        self.coord
            .propose(Command::Unlock {
                name,
                claim: self.claim,
            })
            .await
            .map(|_| ())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let coord = self.coord.clone();
        let command = Command::Unlock {
            name: std::mem::take(&mut self.name),
            claim: self.claim,
        };
        self.coord.shared.tasks.spawn(async move {
            if let Err(e) = coord.propose(command).await {
                tracing::debug!(error = %e, "a dropped lock guard was not released; it goes with the session");
            }
        });
    }
}

/// A claim proposed and not yet answered or handed to a guard: released
/// in the background if the acquisition is dropped.
struct Pending<'a> {
    coord: &'a Coord,
    name: &'a str,
    claim: Claim,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let coord = self.coord.clone();
        let command = Command::Unlock {
            name: self.name.to_owned(),
            claim: self.claim,
        };
        self.coord.shared.tasks.spawn(async move {
            let _ = coord.propose(command).await;
        });
    }
}

impl Coord {
    /// Takes lock `name`, waiting in line (first come, first served) up to
    /// this handle's timeout ([`Coord::with_timeout`]). Names starting
    /// with `@` are reserved.
    pub async fn lock(&self, name: &str) -> Result<LockGuard, CoordError> {
        super::kv::user_name(name)?;
        self.lock_raw(name).await
    }

    pub(crate) async fn lock_raw(&self, name: &str) -> Result<LockGuard, CoordError> {
        let waited = self.timeout;
        self.acquire(name, waited)
            .await?
            .ok_or(CoordError::NotGranted {
                name: name.to_owned(),
                waited,
            })
    }

    /// Takes lock `name` if it is granted within `wait` (zero: only if
    /// free now); `None` otherwise, having left the line.
    pub async fn try_lock(
        &self,
        name: &str,
        wait: Duration,
    ) -> Result<Option<LockGuard>, CoordError> {
        self.acquire(name, wait).await
    }

    pub(crate) async fn acquire(
        &self,
        name: &str,
        wait: Duration,
    ) -> Result<Option<LockGuard>, CoordError> {
        let start = Instant::now();
        let session = self.session().await?;
        let mut applied = self.shared.replica.watch();
        // This acquisition's own claim: two on one node exclude each
        // other, and a late release of an earlier one cannot free it.
        let claim = Claim {
            lease: session.lease,
            ticket: self.shared.tickets.fetch_add(1, Ordering::Relaxed),
        };
        let guard = |token| LockGuard {
            coord: self.clone(),
            name: name.to_owned(),
            claim,
            token,
            alive: session.alive.clone(),
            released: false,
        };
        // If this future is dropped before it answers (a timeout, a select
        // elsewhere), the claim must not stay queued or held by nobody.
        let mut pending = Pending {
            coord: self,
            name,
            claim,
            armed: true,
        };
        let answer = self
            .propose(Command::Lock {
                name: name.to_owned(),
                claim,
            })
            .await?;
        match answer {
            Response::Locked { token } => {
                pending.armed = false;
                return Ok(Some(guard(token)));
            }
            Response::Queued { .. } => {}
            other => return Err(CoordError::Unknown(format!("a lock answered {other:?}"))),
        }
        // Queued: the grant shows up in this node's replica.
        let mut alive = session.alive.clone();
        let deadline = start + wait;
        loop {
            let holder = self.shared.replica.read(|s| s.holder(name));
            if let Some((_, token)) = holder.filter(|(c, _)| *c == claim) {
                pending.armed = false;
                return Ok(Some(guard(token)));
            }
            if !*alive.borrow() {
                return Err(CoordError::SessionLost);
            }
            tokio::select! {
                _ = applied.changed() => {}
                _ = alive.changed() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Out of the line (and released, if granted meanwhile).
        pending.armed = false;
        self.propose(Command::Unlock {
            name: name.to_owned(),
            claim,
        })
        .await?;
        Ok(None)
    }
}
