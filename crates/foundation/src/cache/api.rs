//! The typed handle: `node.cache::<K, V>(name, options)`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::CacheError;
use super::near::Near;
use super::options::Tier;
use super::route;
use super::shared::Shared;
use super::store::{CacheStats, Entry, Store};
use super::wire::Claim;
use crate::id::NodeId;

/// A cache of `V` by `K`, spread over the cluster by its [`Tier`]. Keys
/// and values travel serialized (postcard), so any serde type works.
/// Clone it freely.
pub struct Cache<K, V> {
    shared: Arc<Shared>,
    store: Arc<Store>,
    near: Option<Arc<Near>>,
    _types: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            shared: self.shared.clone(),
            store: self.store.clone(),
            near: self.near.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("store", &self.store).finish()
    }
}

impl<K: Serialize, V: Serialize + DeserializeOwned> Cache<K, V> {
    pub(crate) fn new(shared: Arc<Shared>, store: Arc<Store>, near: Option<Arc<Near>>) -> Self {
        Cache {
            shared,
            store,
            near,
            _types: PhantomData,
        }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.store.name
    }

    /// Where the cache keeps its keys.
    pub fn tier(&self) -> Tier {
        match (&self.near, self.store.options.tier) {
            (Some(_), Tier::Partitioned { replicas }) => Tier::Near { replicas },
            (_, tier) => tier,
        }
    }

    fn key(&self, key: &K) -> Result<Bytes, CacheError> {
        postcard::to_allocvec(key)
            .map(Bytes::from)
            .map_err(|e| self.encode_error(&e))
    }

    fn encode_error(&self, e: &postcard::Error) -> CacheError {
        CacheError::Encode {
            cache: self.store.name.clone(),
            detail: e.to_string(),
        }
    }

    fn value(&self, entry: Entry) -> Result<Option<V>, CacheError> {
        let Some(bytes) = entry.value else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| CacheError::Decode {
                cache: self.store.name.clone(),
                detail: e.to_string(),
            })
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &K) -> Result<Option<V>, CacheError> {
        let key = self.key(key)?;
        match route::get(&self.shared, &self.store, self.near.as_deref(), &key).await? {
            Some(e) => self.value(e),
            None => Ok(None),
        }
    }

    /// Whether a value is stored under `key`.
    pub async fn contains(&self, key: &K) -> Result<bool, CacheError> {
        let key = self.key(key)?;
        Ok(
            route::get(&self.shared, &self.store, self.near.as_deref(), &key)
                .await?
                .is_some(),
        )
    }

    /// Stores `value` under `key` with the cache's default TTL. Returns
    /// once the key's owner has stored it and its replicas have taken the
    /// copy or failed to answer within the timeout.
    pub async fn put(&self, key: &K, value: &V) -> Result<(), CacheError> {
        self.put_ttl(key, value, self.store.options.ttl).await
    }

    /// [`Cache::put`] with its own time to live.
    pub async fn put_with_ttl(&self, key: &K, value: &V, ttl: Duration) -> Result<(), CacheError> {
        self.put_ttl(key, value, Some(ttl)).await
    }

    async fn put_ttl(&self, key: &K, value: &V, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.key(key)?;
        let value = postcard::to_allocvec(value)
            .map(Bytes::from)
            .map_err(|e| self.encode_error(&e))?;
        let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        self.written(
            key.clone(),
            route::write(&self.shared, &self.store, key, Some(value), ttl_ms).await,
        )
    }

    /// After a write from here, this node's near copy is no older than it.
    fn written(
        &self,
        key: Bytes,
        r: Result<crate::cache::Version, CacheError>,
    ) -> Result<(), CacheError> {
        let version = r?;
        if let Some(near) = &self.near {
            near.invalidate(&key, version);
        }
        Ok(())
    }

    /// Deletes `key` on every holder.
    pub async fn delete(&self, key: &K) -> Result<(), CacheError> {
        let key = self.key(key)?;
        self.written(
            key.clone(),
            route::write(&self.shared, &self.store, key, None, None).await,
        )
    }

    /// The values under `keys`, in order, asked concurrently.
    pub async fn get_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k K>,
    ) -> Result<Vec<Option<V>>, CacheError>
    where
        K: 'k,
    {
        join_all(keys.into_iter().map(|k| self.get(k)))
            .await
            .into_iter()
            .collect()
    }

    /// Stores every pair, concurrently; the first error is returned once
    /// all have finished.
    pub async fn put_many<'e>(
        &self,
        entries: impl IntoIterator<Item = (&'e K, &'e V)>,
    ) -> Result<(), CacheError>
    where
        K: 'e,
        V: 'e,
    {
        join_all(entries.into_iter().map(|(k, v)| self.put(k, v)))
            .await
            .into_iter()
            .collect()
    }

    /// The value under `key`, or the value `compute` gives, stored.
    ///
    /// On a miss, one caller at a time across the cluster computes a key:
    /// the key's owner grants the claim to the first caller and holds the
    /// others until the value is stored, then they read it. If the
    /// computing node dies, fails (`compute` returns an error) or holds
    /// the claim past `compute_timeout`, the next waiting caller computes
    /// instead; a failed computation is [`CacheError::Compute`] for its
    /// own caller only. A caller that waits longer than `compute_timeout`
    /// plus `timeout` gets [`CacheError::ComputeTimedOut`].
    ///
    /// One at a time holds while the members hold still: if the owner
    /// changes during a computation, the new owner knows no claim and a
    /// second caller may compute.
    pub async fn get_or_compute<F, Fut, E>(&self, key: &K, compute: F) -> Result<V, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
        E: std::fmt::Display,
    {
        let k = self.key(key)?;
        let options = &self.store.options;
        let waited = options.compute_timeout + options.timeout;
        let deadline = tokio::time::Instant::now() + waited;
        if let Some(near) = &self.near {
            if let Some(e) = near.get(&k) {
                self.store.count(true);
                return self.present(e);
            }
        }
        if matches!(options.tier, Tier::Local | Tier::Replicated) {
            if let Some(e) = self.store.entry(&k).filter(|e| e.value.is_some()) {
                self.store.count(true);
                return self.present(e);
            }
        }
        let mut compute = Some(compute);
        loop {
            match route::claim(&self.shared, &self.store, &k).await? {
                Claim::Value(Some(e)) if e.value.is_some() => {
                    self.store.count(true);
                    return self.present(e);
                }
                Claim::Granted => {
                    self.store.count(false);
                    let Some(f) = compute.take() else {
                        // Granted twice: the value stored for the first
                        // grant was gone at once. Claim no more.
                        route::release(&self.shared, &self.store, &k).await;
                        break;
                    };
                    return match f().await {
                        Ok(v) => {
                            if let Err(e) = self.put(key, &v).await {
                                tracing::debug!(cache = %self.store.name, error = %e, "computed value not stored");
                                route::release(&self.shared, &self.store, &k).await;
                            }
                            Ok(v)
                        }
                        Err(e) => {
                            route::release(&self.shared, &self.store, &k).await;
                            Err(CacheError::Compute {
                                cache: self.store.name.clone(),
                                detail: e.to_string(),
                            })
                        }
                    };
                }
                Claim::Full => {
                    return Err(CacheError::Unavailable {
                        cache: self.store.name.clone(),
                        tried: vec![(
                            self.owner_of(key)?,
                            "too many keys are being computed".into(),
                        )],
                        outcome_known: true,
                    })
                }
                // Deleted or gone the moment it was stored, or the
                // owner's wait ran out: claim again, gently.
                Claim::Value(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(CacheError::ComputeTimedOut {
            cache: self.store.name.clone(),
            waited,
        })
    }

    fn present(&self, e: Entry) -> Result<V, CacheError> {
        self.value(e)?.ok_or_else(|| CacheError::Decode {
            cache: self.store.name.clone(),
            detail: "a value without bytes".into(),
        })
    }

    /// Drops this node's own copy of `key`: the near tier's copy, or for
    /// the other tiers this node's entry (the local tier's, or a holder's
    /// copy), leaving the other holders' copies. To remove a key
    /// everywhere, use [`Cache::delete`].
    pub fn invalidate(&self, key: &K) -> Result<(), CacheError> {
        let key = self.key(key)?;
        match &self.near {
            Some(near) => near.table.invalidate(&key),
            None => self.store.forget(&key),
        }
        Ok(())
    }

    /// Drops every entry of the cache on every active member.
    pub async fn clear(&self) -> Result<(), CacheError> {
        route::clear(&self.shared, &self.store).await
    }

    /// This node's counters for the cache.
    pub fn stats(&self) -> CacheStats {
        self.store.stats()
    }

    /// The node that owns `key` now, as this node places it.
    pub fn owner_of(&self, key: &K) -> Result<NodeId, CacheError> {
        Ok(self.holders_of(key)?[0])
    }

    /// Every holder of `key`, owner first.
    pub fn holders_of(&self, key: &K) -> Result<Vec<NodeId>, CacheError> {
        let key = self.key(key)?;
        match self.store.options.tier {
            Tier::Local => Ok(vec![self.shared.me()]),
            tier => Ok(self.shared.holders(tier, &key)),
        }
    }

    /// The moka cache holding this node's entries as a holder
    /// (reach-through, ADR 001): keys are the postcard encoding of `K`,
    /// entries carry the encoded value (none for a delete's tombstone)
    /// and its version.
    pub fn local(&self) -> &moka::sync::Cache<Bytes, Entry> {
        self.store.table.moka()
    }

    /// The near tier's moka cache, for a cache opened as [`Tier::Near`].
    pub fn near(&self) -> Option<&moka::sync::Cache<Bytes, Entry>> {
        self.near.as_ref().map(|n| n.table.moka())
    }
}
