//! Fencing for the process manager: a gate that lets a service instance
//! start only once it holds a coordination lock (a fenced singleton).

use std::sync::Arc;
use std::time::Duration;

use super::Coord;
use crate::services::{Fence, Gate};

/// Pause between attempts to take the lock.
const RETRY: Duration = Duration::from_millis(50);

impl Coord {
    /// A gate for instances run under lock `lock`: each waits until it
    /// holds the lock (as long as another instance does), and its context
    /// exposes the [`Fence`]. Its supervisor stops it the moment the lock
    /// is lost, and the lock goes when the instance has stopped. So two
    /// instances never run at once where a coordination majority exists.
    pub(crate) fn fence_gate(&self, lock: String) -> Gate {
        let coord = self.clone();
        Arc::new(move || {
            let (coord, lock) = (coord.clone(), lock.clone());
            Box::pin(async move {
                let guard = loop {
                    match coord.lock_raw(&lock).await {
                        Ok(g) if g.is_held() => break g,
                        Ok(_) => {}
                        Err(e) => tracing::debug!(%lock, error = %e, "fence not taken yet"),
                    }
                    tokio::time::sleep(RETRY).await;
                };
                tracing::info!(%lock, token = guard.token(), "fenced instance holds its lock");
                let fence = Fence::new(guard.token(), guard.held());
                (fence, Box::new(guard) as Box<dyn Send>)
            })
        })
    }
}
