//! The key-value store and counters: writes through the log, reads
//! linearizable (after a read barrier) or stale (this node's replica).

use foundation_proto::coord::{Command, Entry, Expect, Response, Revision};

use super::{Coord, CoordError};

/// Refuses names Foundation keeps for itself.
pub(crate) fn user_name(name: &str) -> Result<(), CoordError> {
    if name.starts_with('@') {
        Err(CoordError::Reserved(name.to_owned()))
    } else {
        Ok(())
    }
}

fn unexpected(what: &str, r: Response) -> CoordError {
    CoordError::Unknown(format!("{what} answered {r:?}"))
}

impl Coord {
    /// Sets `key` to `value`; answers the revision of the write.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<Revision, CoordError> {
        self.put_if(key, value, Expect::Any).await
    }

    /// Sets `key` if `expect` holds (compare-and-set); a failed condition
    /// is [`Rejected::CompareFailed`](foundation_proto::coord::Rejected::CompareFailed)
    /// with the key's current revision.
    pub async fn put_if(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> Result<Revision, CoordError> {
        user_name(key)?;
        self.write_key(key, value.into(), false, expect).await
    }

    /// Sets `key` for as long as this node's session lives (an ephemeral
    /// key: it goes when the node leaves, goes down, or loses its session).
    pub async fn put_ephemeral(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<Revision, CoordError> {
        user_name(key)?;
        self.write_key(key, value.into(), true, Expect::Any).await
    }

    pub(crate) async fn write_key(
        &self,
        key: &str,
        value: Vec<u8>,
        ephemeral: bool,
        expect: Expect,
    ) -> Result<Revision, CoordError> {
        let lease = match ephemeral {
            true => Some(self.session().await?.lease),
            false => None,
        };
        let command = Command::Put {
            key: key.to_owned(),
            value,
            lease,
            expect,
        };
        match self.propose(command).await? {
            Response::Put { revision } => Ok(revision),
            other => Err(unexpected("a put", other)),
        }
    }

    /// Removes `key` if `expect` holds; answers whether it existed.
    pub async fn delete_if(&self, key: &str, expect: Expect) -> Result<bool, CoordError> {
        user_name(key)?;
        let command = Command::Delete {
            key: key.to_owned(),
            expect,
        };
        match self.propose(command).await? {
            Response::Deleted { existed, .. } => Ok(existed),
            other => Err(unexpected("a delete", other)),
        }
    }

    /// Removes `key`; answers whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, CoordError> {
        self.delete_if(key, Expect::Any).await
    }

    /// Reads `key`, linearizably: every write that completed before the
    /// call is seen.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, CoordError> {
        self.read_barrier().await?;
        Ok(self.get_stale(key))
    }

    /// Reads `key` from this node's replica, without asking the leader: it
    /// may miss recent writes (how far behind: `/metrics`' apply lag).
    pub fn get_stale(&self, key: &str) -> Option<Entry> {
        self.shared.replica.read(|s| s.get(key).cloned())
    }

    /// Keys starting with `prefix`, in order, linearizably.
    pub async fn range(&self, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        self.read_barrier().await?;
        Ok(self.shared.replica.read(|s| {
            s.range(prefix)
                .map(|(k, e)| (k.to_owned(), e.clone()))
                .collect()
        }))
    }

    /// Adds `delta` to counter `name` atomically; answers the new value.
    pub async fn add(&self, name: &str, delta: i64) -> Result<i64, CoordError> {
        user_name(name)?;
        self.add_raw(name, delta).await
    }

    pub(crate) async fn add_raw(&self, name: &str, delta: i64) -> Result<i64, CoordError> {
        let command = Command::Add {
            name: name.to_owned(),
            delta,
        };
        match self.propose(command).await? {
            Response::Counter { value } => Ok(value),
            other => Err(unexpected("an add", other)),
        }
    }

    /// Counter `name`'s value, linearizably (0 if never added to).
    pub async fn counter(&self, name: &str) -> Result<i64, CoordError> {
        self.read_barrier().await?;
        Ok(self.shared.replica.read(|s| s.counter(name)))
    }
}
