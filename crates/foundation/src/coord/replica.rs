//! This node's replica of the coordination state: openraft applies the
//! committed log to it; the API reads it (after a read barrier, or stale)
//! and waits on it for lock grants.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use crate::locks::Locked;
use std::time::Duration;

use foundation_proto::coord::{CoordState, Event, Response};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use openraft::{EmptyNode, Entry};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::disk::{Disk, Loaded, Write};
use super::types::{Outcome, TypeConfig};

/// How many applied changes a slow watcher may fall behind before it is
/// told it lagged (it then rereads the state).
const EVENTS: usize = 4096;

/// What watchers are told.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A change, in log order.
    Applied(Event),
    /// The state was replaced by a snapshot: watchers reread.
    Reset,
}

#[derive(Debug, Clone)]
struct Stored {
    meta: SnapshotMeta<u64, EmptyNode>,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    state: CoordState,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, EmptyNode>,
    snapshot: Option<Stored>,
    builds: u64,
}

/// The state and what waits on it.
#[derive(Debug)]
pub(crate) struct Replica {
    inner: Mutex<Inner>,
    applied: watch::Sender<u64>,
    events: broadcast::Sender<Change>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica {
            inner: Mutex::default(),
            applied: watch::channel(0).0,
            events: broadcast::channel(EVENTS).0,
        }
    }
}

impl Replica {
    /// Reads the state as applied so far.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&CoordState) -> R) -> R {
        f(&self.inner.locked().state)
    }

    /// A receiver that changes at every applied batch.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Changes as they are applied, in order.
    pub(crate) fn events(&self) -> broadcast::Receiver<Change> {
        self.events.subscribe()
    }

    /// Waits until index `at` is applied here, for at most `wait`.
    pub(crate) async fn wait_applied(&self, at: u64, wait: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|a| *a >= at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn publish(&self, index: u64, events: Vec<Change>) {
        for e in events {
            let _ = self.events.send(e);
        }
        self.applied.send_replace(index);
    }
}

/// What openraft drives: applies entries, builds and installs snapshots
/// (written to `disk` before openraft may purge the log they cover).
#[derive(Debug, Clone, Default)]
pub(crate) struct StateMachine {
    pub(crate) replica: Arc<Replica>,
    pub(crate) disk: Option<Arc<Disk>>,
}

/// The snapshot record on disk.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    meta: SnapshotMeta<u64, EmptyNode>,
    data: Vec<u8>,
}

impl StateMachine {
    /// Restores the snapshot `disk` held at start, if any.
    pub(crate) fn durable(disk: Arc<Disk>, loaded: &Loaded) -> Result<StateMachine, String> {
        let replica = Arc::new(Replica::default());
        if let Some(bytes) = loaded.meta("snapshot") {
            let s: OnDisk = postcard::from_bytes(bytes).map_err(|e| format!("snapshot: {e}"))?;
            let state: CoordState =
                postcard::from_bytes(&s.data).map_err(|e| format!("snapshot state: {e}"))?;
            let index = s.meta.last_log_id.map_or(0, |l| l.index);
            {
                let mut g = replica.inner.locked();
                g.state = state;
                g.last_applied = s.meta.last_log_id;
                g.membership = s.meta.last_membership.clone();
                g.snapshot = Some(Stored {
                    meta: s.meta,
                    data: s.data,
                });
            }
            replica.applied.send_replace(index);
        }
        Ok(StateMachine {
            replica,
            disk: Some(disk),
        })
    }

    async fn persist(&self, stored: &Stored) -> Result<(), StorageError<u64>> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let record = OnDisk {
            meta: stored.meta.clone(),
            data: stored.data.clone(),
        };
        let bytes = postcard::to_allocvec(&record).map_err(|e| snapshot_error(&e))?;
        disk.write_now(vec![Write::Meta("snapshot", bytes)])
            .await
            .map_err(|e| {
                StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
            })
    }
}

fn snapshot_error(e: &dyn std::error::Error) -> StorageError<u64> {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let stored = {
            let mut g = self.replica.inner.locked();
            let data = postcard::to_allocvec(&g.state).map_err(|e| snapshot_error(&e))?;
            g.builds += 1;
            let index = g.last_applied.map_or(0, |l| l.index);
            let meta = SnapshotMeta {
                last_log_id: g.last_applied,
                last_membership: g.membership.clone(),
                snapshot_id: format!("{index}-{}", g.builds),
            };
            let stored = Stored { meta, data };
            g.snapshot = Some(stored.clone());
            stored
        };
        self.persist(&stored).await?;
        let Stored { meta, data } = stored;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, EmptyNode>), StorageError<u64>> {
        let g = self.replica.inner.locked();
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let index = {
            let mut g = self.replica.inner.locked();
            for e in entries {
                g.last_applied = Some(e.log_id);
                let outcome = match e.payload {
                    EntryPayload::Blank => Ok(Response::Done),
                    EntryPayload::Normal(p) => {
                        let applied = g.state.apply_at(p.now_ms, p.command);
                        events.extend(applied.events.into_iter().map(Change::Applied));
                        applied.response
                    }
                    EntryPayload::Membership(m) => {
                        g.membership = StoredMembership::new(Some(e.log_id), m);
                        Ok(Response::Done)
                    }
                };
                out.push(Outcome(outcome));
            }
            g.last_applied.map_or(0, |l| l.index)
        };
        self.replica.publish(index, events);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, EmptyNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        // A snapshot that does not decode changes nothing.
        let state: CoordState = postcard::from_bytes(&data).map_err(|e| snapshot_error(&e))?;
        let stored = Stored {
            meta: meta.clone(),
            data,
        };
        // On disk first: a crash then restarts from it.
        self.persist(&stored).await?;
        let index = {
            let mut g = self.replica.inner.locked();
            g.state = state;
            g.last_applied = meta.last_log_id;
            g.membership = meta.last_membership.clone();
            g.snapshot = Some(stored);
            g.last_applied.map_or(0, |l| l.index)
        };
        // Watchers cannot be told what changed: they reread.
        self.replica.publish(index, vec![Change::Reset]);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .replica
            .inner
            .locked()
            .snapshot
            .clone()
            .map(|s| Snapshot {
                meta: s.meta,
                snapshot: Box::new(Cursor::new(s.data)),
            }))
    }
}
