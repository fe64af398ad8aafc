//! Cluster configuration: typed values in the key-value store that every
//! node reads from its own replica and can watch (the design documents'
//! "configuration consensus").

use std::marker::PhantomData;

use foundation_proto::coord::{Expect, Revision};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::kv::user_name;
use super::watcher::{Watch, WatchEvent};
use super::{Coord, CoordError};

/// A typed value shared by the cluster ([`Coord::cluster_value`]).
#[derive(Debug)]
pub struct ClusterValue<T> {
    coord: Coord,
    name: String,
    key: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ClusterValue<T> {
    fn clone(&self) -> Self {
        ClusterValue {
            coord: self.coord.clone(),
            name: self.name.clone(),
            key: self.key.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ClusterValue<T> {
    fn decode(&self, bytes: &[u8]) -> Result<T, CoordError> {
        serde_json::from_slice(bytes).map_err(|e| CoordError::Decode {
            key: self.name.clone(),
            error: e.to_string(),
        })
    }

    /// The value in this node's replica (no round trip; it may lag the
    /// leader by the apply lag).
    pub fn get(&self) -> Result<Option<T>, CoordError> {
        match self.coord.get_stale(&self.key) {
            Some(e) => self.decode(&e.value).map(Some),
            None => Ok(None),
        }
    }

    /// The value, linearizably.
    pub async fn get_linearizable(&self) -> Result<Option<T>, CoordError> {
        self.coord.read_barrier().await?;
        self.get()
    }

    /// Sets the value for the whole cluster.
    pub async fn set(&self, value: &T) -> Result<Revision, CoordError> {
        let bytes = serde_json::to_vec(value).map_err(|e| CoordError::Decode {
            key: self.name.clone(),
            error: e.to_string(),
        })?;
        self.coord
            .write_key(&self.key, bytes, false, Expect::Any)
            .await
    }

    /// Changes the value with `f` atomically (compare-and-set, retried
    /// while another writer got there first).
    pub async fn update(&self, f: impl Fn(Option<T>) -> T) -> Result<T, CoordError> {
        loop {
            self.coord.read_barrier().await?;
            let current = self.coord.get_stale(&self.key);
            let expect = match &current {
                Some(e) => Expect::Revision(e.modified),
                None => Expect::Absent,
            };
            let old = match current {
                Some(e) => Some(self.decode(&e.value)?),
                None => None,
            };
            let new = f(old);
            let bytes = serde_json::to_vec(&new).map_err(|e| CoordError::Decode {
                key: self.name.clone(),
                error: e.to_string(),
            })?;
            match self.coord.write_key(&self.key, bytes, false, expect).await {
                Ok(_) => return Ok(new),
                Err(CoordError::Rejected(foundation_proto::coord::Rejected::CompareFailed {
                    ..
                })) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Every change from now on, decoded (`None` once removed).
    pub fn watch(&self) -> ClusterValueWatch<T> {
        ClusterValueWatch {
            value: self.clone(),
            inner: self.coord.watch(&self.key),
        }
    }
}

/// Changes of a [`ClusterValue`].
#[derive(Debug)]
pub struct ClusterValueWatch<T> {
    value: ClusterValue<T>,
    inner: Watch,
}

impl<T: Serialize + DeserializeOwned> ClusterValueWatch<T> {
    /// The next value (`Ok(None)`: removed), or `None` once the node stops.
    pub async fn next(&mut self) -> Option<Result<Option<T>, CoordError>> {
        loop {
            match self.inner.next().await? {
                WatchEvent::Put { key, value, .. } if key == self.value.key => {
                    return Some(self.value.decode(&value).map(Some));
                }
                WatchEvent::Deleted { key, .. } if key == self.value.key => return Some(Ok(None)),
                WatchEvent::Reset => return Some(self.value.get()),
                _ => {}
            }
        }
    }
}

impl Coord {
    /// The cluster configuration value `name`, of type `T` (stored as JSON
    /// under a reserved key).
    pub fn cluster_value<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<ClusterValue<T>, CoordError> {
        user_name(name)?;
        Ok(ClusterValue {
            coord: self.clone(),
            name: name.to_owned(),
            key: format!("@config/{name}"),
            _type: PhantomData,
        })
    }
}
