//! The Raft log, vote and commit index. They are held in memory and, with
//! `coord.storage = "durable"`, written through to [`Disk`] (an append is
//! reported flushed to openraft only once it is on disk). In memory only,
//! they are lost when the process exits, which is what tests and the dev
//! cluster want.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use crate::locks::Locked;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, Vote};

use super::disk::{Disk, Loaded, Write};
use super::types::TypeConfig;

#[derive(Debug, Default)]
struct Inner {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
}

/// The log; clones share it (openraft reads through a clone).
#[derive(Debug, Clone, Default)]
pub(crate) struct MemLog {
    inner: Arc<Mutex<Inner>>,
    disk: Option<Arc<Disk>>,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn write_error(e: impl std::fmt::Display) -> StorageError<u64> {
    openraft::StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

fn decode<T: serde::de::DeserializeOwned>(loaded: &Loaded, key: &str) -> Result<Option<T>, String> {
    loaded
        .meta(key)
        .map(|b| postcard::from_bytes(b).map_err(|e| format!("{key}: {e}")))
        .transpose()
}

impl MemLog {
    /// The log stored on `disk`, as it was read at start.
    pub(crate) fn durable(disk: Arc<Disk>, loaded: &Loaded) -> Result<MemLog, String> {
        let mut inner = Inner {
            vote: decode(loaded, "vote")?,
            committed: decode(loaded, "committed")?,
            purged: decode(loaded, "purged")?,
            log: BTreeMap::new(),
        };
        for (i, bytes) in &loaded.log {
            let e: Entry<TypeConfig> =
                postcard::from_bytes(bytes).map_err(|e| format!("log entry {i}: {e}"))?;
            inner.log.insert(*i, e);
        }
        Ok(MemLog {
            inner: Arc::new(Mutex::new(inner)),
            disk: Some(disk),
        })
    }

    async fn persist(&self, writes: Vec<Write>) -> Result<(), StorageError<u64>> {
        match &self.disk {
            Some(d) => d.write_now(writes).await.map_err(write_error),
            None => Ok(()),
        }
    }

    /// Entries held (not yet purged by a snapshot).
    /// The last committed log index this node knows of (0: none yet).
    pub(crate) fn committed(&self) -> u64 {
        self.inner.locked().committed.map_or(0, |c| c.index)
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.locked().log.len()
    }
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .inner
            .locked()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let g = self.inner.locked();
        let last = g.log.values().next_back().map(|e| e.log_id).or(g.purged);
        Ok(LogState {
            last_purged_log_id: g.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.inner.locked().vote = Some(*vote);
        let bytes = postcard::to_allocvec(vote).map_err(write_error)?;
        self.persist(vec![Write::Meta("vote", bytes)]).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.locked().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.inner.locked().committed = committed;
        // Not waited for: the commit index is a hint (a restart with an
        // older one applies less at once, then learns the rest).
        if let (Some(d), Some(c)) = (&self.disk, committed) {
            let bytes = postcard::to_allocvec(&c).map_err(write_error)?;
            d.write(vec![Write::Meta("committed", bytes)], |_| {});
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.inner.locked().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut g = self.inner.locked();
            for e in entries {
                if self.disk.is_some() {
                    encoded.push((
                        e.log_id.index,
                        postcard::to_allocvec(&e).map_err(write_error)?,
                    ));
                }
                g.log.insert(e.log_id.index, e);
            }
        }
        match &self.disk {
            // Flushed once on disk: only then may openraft count this
            // node's copy toward a commit.
            Some(d) => d.write(vec![Write::Append(encoded)], move |r| {
                callback.log_io_completed(r.map_err(io))
            }),
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        {
            let mut g = self.inner.locked();
            let _ = g.log.split_off(&log_id.index);
        }
        self.persist(vec![Write::Truncate(log_id.index)]).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        {
            let mut g = self.inner.locked();
            g.log = g.log.split_off(&(log_id.index + 1));
            g.purged = Some(log_id);
        }
        let purged = postcard::to_allocvec(&log_id).map_err(write_error)?;
        self.persist(vec![
            Write::Meta("purged", purged),
            Write::Purge(log_id.index),
        ])
        .await
    }
}
