//! Durable storage of coordination (`coord.storage = "durable"`): the Raft
//! log, vote, commit index, snapshot, group id and this node's Raft id in
//! one redb file under `coord.data_dir`.
//!
//! One writer thread applies writes in order; it groups the writes that
//! queue up while a commit is in flight into the next commit, so one fsync
//! serves many. Reads happen once, at start: the log stays in memory too
//! (compaction bounds it).
//!
//! A simulation writes inline instead ([`Sockets::coord_disk_inline`]): on
//! the caller's task, so no thread outside the simulation decides when a
//! write is done, and the file closes the moment a crashed host drops it.
//!
//! [`Sockets::coord_disk_inline`]: crate::Sockets::coord_disk_inline

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread;

use crate::locks::Locked;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Writes queued beyond this wait for room (back-pressure on openraft).
const QUEUE: usize = 1024;

/// Why durable storage failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("coordination storage at {path}: {message}")]
pub struct DiskError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// One write, in the order openraft asked for it.
pub(crate) enum Write {
    /// Log entries, encoded, by index.
    Append(Vec<(u64, Vec<u8>)>),
    /// Removes entries from this index on.
    Truncate(u64),
    /// Removes entries up to and including this index.
    Purge(u64),
    /// Sets a meta record.
    Meta(&'static str, Vec<u8>),
}

struct Job {
    writes: Vec<Write>,
    done: Box<dyn FnOnce(Result<(), DiskError>) + Send>,
}

/// What the writer thread is asked.
enum Msg {
    Job(Job),
    /// Close the file (after the jobs before), then say so.
    Close(oneshot::Sender<()>),
}

/// What was on disk at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) log: Vec<(u64, Vec<u8>)>,
    pub(crate) meta: Vec<(String, Vec<u8>)>,
}

impl Loaded {
    pub(crate) fn meta(&self, key: &str) -> Option<&[u8]> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// The open file and its writer thread.
#[derive(Debug)]
pub(crate) struct Disk {
    path: PathBuf,
    writer: Writer,
}

#[derive(Debug)]
enum Writer {
    /// The writer thread's queue.
    Thread(mpsc::SyncSender<Msg>),
    /// The file itself, written on the caller's task; `None` once closed.
    Inline(Mutex<Option<Database>>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} writes)", self.writes.len())
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> DiskError {
    DiskError {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl Disk {
    /// Opens (or creates) the store in `dir` and reads it; `inline`
    /// writes on the caller's task instead of a writer thread.
    pub(crate) fn open(dir: &Path, inline: bool) -> Result<(Disk, Loaded), DiskError> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        let path = dir.join("coord.redb");
        let db = Database::create(&path).map_err(|e| err(&path, e))?;
        let loaded = load(&db).map_err(|e| err(&path, e))?;
        if inline {
            let writer = Writer::Inline(Mutex::new(Some(db)));
            return Ok((Disk { path, writer }, loaded));
        }
        let (jobs, rx) = mpsc::sync_channel(QUEUE);
        let thread_path = path.clone();
        thread::Builder::new()
            .name("foundation-coord-disk".into())
            .spawn(move || writer(db, rx, thread_path))
            .map_err(|e| err(&path, e))?;
        let writer = Writer::Thread(jobs);
        Ok((Disk { path, writer }, loaded))
    }

    /// Queues `writes`; `done` runs once they are on disk (or failed).
    /// Blocks while the queue is full (on a multi-thread runtime, in
    /// [`tokio::task::block_in_place`]).
    pub(crate) fn write(
        &self,
        writes: Vec<Write>,
        done: impl FnOnce(Result<(), DiskError>) + Send + 'static,
    ) {
        let job = Job {
            writes,
            done: Box::new(done),
        };
        let closed = || err(&self.path, "the storage is closed");
        match &self.writer {
            Writer::Thread(jobs) => {
                let refused = match jobs.try_send(Msg::Job(job)) {
                    Ok(()) => None,
                    Err(mpsc::TrySendError::Disconnected(msg)) => Some(msg),
                    // The queue is full: wait for room. On a multi-thread
                    // runtime the worker first hands its other tasks on,
                    // so the node's other work goes on meanwhile.
                    Err(mpsc::TrySendError::Full(msg)) => {
                        let send = || jobs.send(msg).err().map(|mpsc::SendError(m)| m);
                        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                                tokio::task::block_in_place(send)
                            }
                            _ => send(),
                        }
                    }
                };
                if let Some(Msg::Job(job)) = refused {
                    (job.done)(Err(closed()));
                }
            }
            Writer::Inline(db) => {
                let result = match &*db.locked() {
                    Some(db) => {
                        commit(db, std::slice::from_ref(&job)).map_err(|e| err(&self.path, e))
                    }
                    None => Err(closed()),
                };
                (job.done)(result);
            }
        }
    }

    /// Writes what is queued, then closes the file (so another process,
    /// or a restarted node in this one, can open it at once).
    pub(crate) async fn close(&self) {
        match &self.writer {
            Writer::Thread(jobs) => {
                let (tx, rx) = oneshot::channel();
                if jobs.send(Msg::Close(tx)).is_ok() {
                    let _ = rx.await;
                }
            }
            Writer::Inline(db) => drop(db.locked().take()),
        }
    }

    /// Writes and waits until they are on disk.
    pub(crate) async fn write_now(&self, writes: Vec<Write>) -> Result<(), DiskError> {
        let (tx, rx) = oneshot::channel();
        self.write(writes, move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err(err(&self.path, "the writer thread has stopped")))
    }
}

fn load(db: &Database) -> Result<Loaded, redb::Error> {
    // Create the tables on a fresh file, so reads find them.
    let tx = db.begin_write()?;
    tx.open_table(LOG)?;
    tx.open_table(META)?;
    tx.commit()?;
    let tx = db.begin_read()?;
    let mut loaded = Loaded::default();
    for row in tx.open_table(LOG)?.iter()? {
        let (k, v) = row?;
        loaded.log.push((k.value(), v.value().to_vec()));
    }
    for row in tx.open_table(META)?.iter()? {
        let (k, v) = row?;
        loaded.meta.push((k.value().to_owned(), v.value().to_vec()));
    }
    Ok(loaded)
}

fn writer(db: Database, jobs: mpsc::Receiver<Msg>, path: PathBuf) {
    let mut closing = None;
    while let Ok(first) = jobs.recv() {
        // Group what queued up meanwhile into this commit.
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(j) => batch.push(j),
                Msg::Close(tx) => {
                    closing = Some(tx);
                    break;
                }
            }
            if batch.len() < 256 {
                next = jobs.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let result = commit(&db, &batch).map_err(|e| err(&path, e));
            if let Err(e) = &result {
                tracing::error!(error = %e, "coordination storage write failed");
            }
            for job in batch {
                (job.done)(result.clone());
            }
        }
        if closing.is_some() {
            break;
        }
    }
    drop(db);
    if let Some(tx) = closing {
        let _ = tx.send(());
    }
}

fn commit(db: &Database, batch: &[Job]) -> Result<(), redb::Error> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    {
        let mut log = tx.open_table(LOG)?;
        let mut meta = tx.open_table(META)?;
        for w in batch.iter().flat_map(|j| &j.writes) {
            match w {
                Write::Append(entries) => {
                    for (i, e) in entries {
                        log.insert(*i, e.as_slice())?;
                    }
                }
                Write::Truncate(from) => {
                    log.retain_in(*from.., |_, _| false)?;
                }
                Write::Purge(upto) => {
                    log.retain_in(..=*upto, |_, _| false)?;
                }
                Write::Meta(key, value) => {
                    meta.insert(*key, value.as_slice())?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_survive_a_reopen_in_order() {
        for inline in [false, true] {
            writes_survive_a_reopen(inline).await;
        }
    }

    async fn writes_survive_a_reopen(inline: bool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (disk, loaded) = Disk::open(dir.path(), inline).expect("open");
        assert!(loaded.log.is_empty() && loaded.meta.is_empty());
        let entries = (1..=10u64).map(|i| (i, vec![i as u8])).collect();
        disk.write(vec![Write::Append(entries)], |_| {});
        disk.write(vec![Write::Truncate(8)], |_| {});
        disk.write(vec![Write::Purge(3)], |_| {});
        disk.write_now(vec![Write::Meta("vote", vec![1, 2, 3])])
            .await
            .expect("written");
        disk.close().await;
        // Writes after the close are refused, not lost silently.
        assert!(disk.write_now(vec![Write::Purge(4)]).await.is_err());

        let (disk, loaded) = Disk::open(dir.path(), inline).expect("reopen");
        let indexes: Vec<u64> = loaded.log.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [4, 5, 6, 7], "inline: {inline}");
        assert_eq!(loaded.meta("vote"), Some(&[1u8, 2, 3][..]));
        drop(disk);
        // Dropped without a close: an inline store's file is free at once.
        if inline {
            let (disk, loaded) = Disk::open(dir.path(), inline).expect("reopen after a drop");
            assert_eq!(loaded.log.len(), 4);
            disk.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_writes_than_the_queue_holds_all_land_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (disk, _) = Disk::open(dir.path(), false).expect("open");
        let n = QUEUE as u64 * 3;
        let (tx, mut rx) = tokio::sync::mpsc::channel(n as usize);
        for i in 1..=n {
            let tx = tx.clone();
            disk.write(vec![Write::Append(vec![(i, vec![1])])], move |r| {
                let _ = tx.try_send(r.is_ok());
            });
        }
        for _ in 1..=n {
            assert_eq!(rx.recv().await, Some(true));
        }
        disk.close().await;
        let (disk, loaded) = Disk::open(dir.path(), false).expect("reopen");
        let indexes: Vec<u64> = loaded.log.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, (1..=n).collect::<Vec<_>>());
        disk.close().await;
    }

    #[tokio::test]
    async fn an_open_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (disk, _) = Disk::open(dir.path(), false).expect("open");
        let again = Disk::open(dir.path(), false).expect_err("in use");
        assert!(again.to_string().contains("coord.redb"), "{again}");
        disk.close().await;
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_store_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("coord.redb"), b"not a database").expect("write");
        let e = Disk::open(dir.path(), false).expect_err("garbage");
        assert!(e.to_string().contains("coord.redb"), "{e}");
    }
}
