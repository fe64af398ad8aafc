//! The registry state shared by the API, the sync task and the service
//! host, with the push of local changes and the acks of sync registration.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};

use super::event::RegistryEvent;
use super::{Delta, RegisterError, RegistryState};
use super::{Entry, EntryKind, ServiceAddr};
use super::{RegistryMsg, KIND_MSG};
use crate::id::NodeId;
use crate::messenger::Messenger;
use crate::peers::Outbox;

#[derive(Debug)]
pub(crate) struct RegistryShared {
    state: Mutex<RegistryState>,
    pub(crate) outbox: Outbox,
    pub(crate) messenger: Messenger,
    /// Per peer, the highest version of this node's set it acknowledged.
    acks: Mutex<HashMap<NodeId, u64>>,
    acked: Notify,
    /// Members whose own set this node has received (a snapshot or a
    /// delta from them, or a digest showing we are up to date): until
    /// then, a lookup may miss their entries.
    heard: Mutex<std::collections::HashSet<NodeId>>,
    /// Bumped on every change to the state.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
}

impl RegistryShared {
    pub(crate) fn new(messenger: Messenger, outbox: Outbox) -> Self {
        RegistryShared {
            state: Mutex::new(RegistryState::new(messenger.id())),
            outbox,
            messenger,
            acks: Mutex::default(),
            acked: Notify::new(),
            heard: Mutex::default(),
            changed: watch::channel(0).0,
            events: broadcast::channel(256).0,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.locked()
    }

    /// Marks the state changed (wakes waiters on `changed`).
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Pushes a local change to every active member (the fast path;
    /// anti-entropy repairs what a full queue dropped). Returns the peers
    /// it went to.
    pub(crate) fn publish(&self, delta: Delta, ack: bool) -> Vec<NodeId> {
        self.bump();
        let peers = self.messenger.peers();
        let bytes = RegistryMsg::Delta { delta, ack }.encode();
        for p in &peers {
            self.outbox.send(*p, KIND_MSG, bytes.clone());
        }
        metrics::counter!("foundation_registry_deltas_sent_total").increment(peers.len() as u64);
        peers
    }

    /// Removes every entry of a local service that ended.
    /// Removes a local entry and pushes the change; whether there was one.
    pub(crate) fn remove(&self, kind: EntryKind, name: &str, local: u64) -> bool {
        let delta = self.state().unregister(kind, name, local);
        delta.map(|d| self.publish(d, false)).is_some()
    }

    /// Declares this node's interest in pub/sub topic `topic` (replicated
    /// like any entry; removed when the node leaves or goes down).
    pub(crate) fn declare_interest(&self, topic: &str) -> Result<(), RegisterError> {
        let me = self.messenger.id();
        let entry = Entry {
            name: topic.to_owned(),
            kind: EntryKind::Interest,
            service: ServiceAddr { node: me, local: 0 },
            protocol: String::new(),
            registered_at: super::api::now_ms(),
            meta: Default::default(),
        };
        let delta = self.state().register(entry)?;
        if let Some(d) = delta {
            self.publish(d, false);
        }
        Ok(())
    }

    /// Withdraws this node's interest in `topic`.
    pub(crate) fn withdraw_interest(&self, topic: &str) {
        self.remove(EntryKind::Interest, topic, 0);
    }

    /// A peer holds this node's set at `version` or newer.
    pub(crate) fn acked(&self, peer: NodeId, version: u64) {
        let mut acks = self.acks.locked();
        let v = acks.entry(peer).or_default();
        *v = (*v).max(version);
        drop(acks);
        self.acked.notify_waiters();
    }

    /// This node holds `peer`'s own set.
    pub(crate) fn heard_from(&self, peer: NodeId) {
        let new = self.heard.locked().insert(peer);
        if new {
            self.bump();
        }
    }

    /// Whether this node holds the sets of all `peers`.
    pub(crate) fn has_heard_all(&self, peers: &[NodeId]) -> bool {
        let heard = self.heard.locked();
        peers.iter().all(|p| heard.contains(p))
    }

    pub(crate) fn forget_peer(&self, peer: NodeId) {
        self.heard.locked().remove(&peer);
        self.acks.locked().remove(&peer);
        self.acked.notify_waiters();
    }

    /// Waits until each of `peers` still active acknowledged `version`.
    /// On timeout, the peers that did not.
    pub(crate) async fn wait_acks(
        &self,
        version: u64,
        peers: &[NodeId],
        timeout: Duration,
    ) -> Result<(), Vec<NodeId>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.acked.notified();
            let active = self.messenger.peers();
            let missing: Vec<NodeId> = {
                let acks = self.acks.locked();
                peers
                    .iter()
                    .copied()
                    .filter(|p| active.contains(p))
                    .filter(|p| acks.get(p).copied().unwrap_or(0) < version)
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            // A member that goes down wakes us through `forget_peer`; the
            // short sleep also covers a change we were not told about.
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(missing),
            }
        }
    }
}

impl crate::services::Withdraw for RegistryShared {
    fn service_ended(&self, local: u64) {
        let delta = self.state().unregister_service(local);
        if let Some(d) = delta {
            self.publish(d, false);
        }
    }
}
