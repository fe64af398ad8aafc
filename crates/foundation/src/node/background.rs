//! The node's background loops: service messages, joining candidates,
//! forgetting departed members.

use std::net::SocketAddr;

use tokio::sync::broadcast;

use super::{Node, JOIN_INTERVAL, JOIN_INTERVAL_ALONE};
use crate::membership::MemberEvent;
use crate::transport::Inbox;
use foundation_proto::readiness::ready_alone;

impl Node {
    /// Delivers service messages and fails calls to members that are gone.
    pub(super) async fn host_loop(self, mut inbox: Inbox) {
        let mut events = self.inner.membership.subscribe();
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                m = inbox.recv() => match m {
                    Some(m) => self.inner.host.incoming(m),
                    None => return,
                },
                ev = events.recv() => match ev {
                    Ok(MemberEvent::Down(m) | MemberEvent::Left(m)) => self.inner.host.node_down(m.id),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Sends Hellos to candidates that are not active members yet.
    pub(super) async fn join_loop(self) {
        let mut candidates = self.inner.candidates.clone();
        let started = tokio::time::Instant::now();
        loop {
            // Nothing discovered for a while: this node is legitimately alone.
            if ready_alone(started.elapsed(), candidates.borrow().is_empty()) {
                self.inner.view.set_ready();
            }
            let alone = !self
                .members()
                .iter()
                .any(|m| m.id != self.inner.id && m.state.is_active());
            let known: Vec<SocketAddr> = self
                .inner
                .membership
                .members()
                .into_iter()
                .filter(|m| m.state.is_active())
                .map(|m| m.addr)
                .collect();
            let targets: Vec<SocketAddr> = candidates
                .borrow_and_update()
                .iter()
                .copied()
                .filter(|a| *a != self.inner.view.local().addr && !known.contains(a))
                .collect();
            if !targets.is_empty() {
                tracing::debug!(?targets, "asking candidates to let us join");
                self.inner.membership.hello(targets);
            }
            let wait = if alone {
                JOIN_INTERVAL_ALONE
            } else {
                JOIN_INTERVAL
            };
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = candidates.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Closes connections to members that went down or left, so a later
    /// node at the same address starts clean.
    pub(super) async fn forget_loop(self) {
        let mut events = self.inner.membership.subscribe();
        loop {
            let ev = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                ev = events.recv() => ev,
            };
            match ev {
                Ok(MemberEvent::Down(m) | MemberEvent::Left(m)) => {
                    self.inner.transport.forget(m.transport)
                }
                Ok(MemberEvent::Up(_)) => self.inner.view.set_ready(),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
