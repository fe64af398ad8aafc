//! The phases of `foundation bench cache` (see [`super::cache`]).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use foundation::cache::{Cache, CacheOptions, Tier};
use foundation::{Node, NodeId};
use futures_util::future::join_all;

use super::cache::Cluster;
use super::noise;
use super::stats::{summarize, Summary};
use crate::cmd::http_get;

/// Bytes of every value.
const VALUE: usize = 100;
/// Keys the latency phases read in turn.
const KEYS: u64 = 1_000;

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

type Bench = Cache<u64, Vec<u8>>;

/// Local tier: each get's latency, then gets per second in one loop on
/// one task (one core); and moka's own `get` on the same entries, for
/// what the cache adds (encoding the key, decoding the value).
pub(crate) async fn local(node: &Node, ops: usize) -> anyhow::Result<(Summary, f64, Summary)> {
    let cache: Bench = node.cache("bench-local", CacheOptions::tier(Tier::Local))?;
    let value = noise(VALUE);
    for k in 0..KEYS {
        cache.put(&k, &value).await?;
    }
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        let v = cache.get(&(i as u64 % KEYS)).await?;
        lat.push(ns(t.elapsed()));
        black_box(v);
    }
    let n = ops * 10;
    let t = Instant::now();
    for i in 0..n {
        black_box(cache.get(&(i as u64 % KEYS)).await?);
    }
    let per_s = n as f64 / t.elapsed().as_secs_f64();
    let encoded: Vec<bytes::Bytes> = (0..KEYS)
        .map(|k| postcard::to_allocvec(&k).map(bytes::Bytes::from))
        .collect::<Result<_, _>>()?;
    let mut raw = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        let v = cache.local().get(&encoded[i % encoded.len()]);
        raw.push(ns(t.elapsed()));
        black_box(v);
    }
    Ok((summarize(lat), per_s, summarize(raw)))
}

/// Keys of the hit-rate phase.
const ZIPF_KEYS: usize = 100_000;
/// The bound, in entries, of the hit-rate phase's caches.
const ZIPF_BOUND: u64 = 1_000;

/// `n` keys drawn from a Zipf distribution (exponent 1) over
/// [`ZIPF_KEYS`] keys, the same for the same `seed`.
fn zipf_keys(n: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(ZIPF_KEYS);
    let mut sum = 0.0;
    for rank in 1..=ZIPF_KEYS {
        sum += 1.0 / rank as f64;
        cdf.push(sum);
    }
    let mut state = seed;
    (0..n)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64 * sum;
            cdf.partition_point(|c| *c < u) as u64
        })
        .collect()
}

/// The hit rate of a local-tier cache bounded to [`ZIPF_BOUND`]
/// entries under `keys`, each a get and on a miss a put, from a task
/// that yields every `yield_every` gets (0: never).
async fn hit_rate(
    node: &Node,
    name: &str,
    keys: &[u64],
    yield_every: usize,
) -> anyhow::Result<f64> {
    let value = noise(VALUE);
    let options = CacheOptions::tier(Tier::Local).max_entries(ZIPF_BOUND);
    let cache: Bench = node.cache(name, options)?;
    for (i, k) in keys.iter().enumerate() {
        if yield_every > 0 && i % yield_every == 0 {
            tokio::task::yield_now().await;
        }
        if cache.get(k).await?.is_none() {
            cache.put(k, &value).await?;
        }
    }
    let s = cache.stats();
    Ok(s.hits as f64 / (s.hits + s.misses).max(1) as f64)
}

/// Hit rates of caches bounded to [`ZIPF_BOUND`] entries under `ops`
/// Zipf-distributed keys, each a get and on a miss a put. The local
/// tier's eviction sees the reads its front served as a replay (ADR 029):
/// measured from a task that yields every 64 gets, as one that awaits
/// I/O does, and from one that never yields (the replay waits for it);
/// beside them moka alone, which sees every read as it happens.
pub(crate) async fn hit_rates(node: &Node, ops: usize) -> anyhow::Result<(f64, f64, f64)> {
    let keys = zipf_keys(ops, 7);
    let yielding = hit_rate(node, "bench-hits", &keys, 64).await?;
    let tight = hit_rate(node, "bench-hits-tight", &keys, 0).await?;
    let value = noise(VALUE);
    let moka = foundation::cache::moka::sync::Cache::<u64, Vec<u8>>::new(ZIPF_BOUND);
    let mut hits = 0usize;
    for k in &keys {
        if moka.get(k).is_some() {
            hits += 1;
        } else {
            moka.insert(*k, value.clone());
        }
    }
    Ok((yielding, tight, hits as f64 / keys.len().max(1) as f64))
}

/// `n` keys none of whose holders is `me`.
fn keys_elsewhere(cache: &Bench, me: NodeId, n: usize) -> anyhow::Result<Vec<u64>> {
    let mut keys = Vec::with_capacity(n);
    for k in 0u64.. {
        if keys.len() == n {
            break;
        }
        if !cache.holders_of(&k)?.contains(&me) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// Partitioned gets from a node that holds none of the keys: each one's
/// latency, then gets per second with 64 concurrent callers for `d`.
pub(crate) async fn remote(c: &Cluster, ops: usize, d: Duration) -> anyhow::Result<(Summary, f64)> {
    let options = CacheOptions::tier(Tier::Partitioned { replicas: 1 });
    let cache: Bench = c.a.cache("bench-remote", options)?;
    let keys = keys_elsewhere(&cache, c.a.id(), KEYS as usize)?;
    let value = noise(VALUE);
    for k in &keys {
        cache.put(k, &value).await?;
    }
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        let v = cache.get(&keys[i % keys.len()]).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if v.is_none() {
            return Err(anyhow!("key {} missing", keys[i % keys.len()]));
        }
    }
    let start = Instant::now();
    let tasks = (0..64).map(|t| {
        let (cache, keys) = (cache.clone(), keys.clone());
        tokio::spawn(async move {
            let mut done = 0u64;
            let mut i = t;
            while start.elapsed() < d {
                if matches!(cache.get(&keys[i % keys.len()]).await, Ok(Some(_))) {
                    done += 1;
                }
                i += 64;
            }
            done
        })
    });
    let mut total = 0;
    for r in join_all(tasks).await {
        total += r?;
    }
    Ok((summarize(lat), total as f64 / start.elapsed().as_secs_f64()))
}

/// Near tier hits on client a.
pub(crate) async fn near_hits(c: &Cluster, ops: usize) -> anyhow::Result<Summary> {
    let cache: Bench =
        c.a.cache("bench-near", CacheOptions::tier(Tier::Near { replicas: 1 }))?;
    let keys = keys_elsewhere(&cache, c.a.id(), KEYS as usize)?;
    let value = noise(VALUE);
    for k in &keys {
        cache.put(k, &value).await?;
        cache.get(k).await?;
    }
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        let v = cache.get(&keys[i % keys.len()]).await?;
        lat.push(ns(t.elapsed()));
        black_box(v);
    }
    Ok(summarize(lat))
}

/// From a put on client a until client b's near tier no longer holds the
/// value it fetched before: `trials` times, in ms. Client b's near tier is
/// watched from an OS thread spinning on it.
pub(crate) async fn invalidations(c: &Cluster, trials: usize) -> anyhow::Result<Summary> {
    let options = CacheOptions::tier(Tier::Near { replicas: 1 });
    let a: Bench = c.a.cache("bench-inv", options.clone())?;
    let b: Bench = c.b.cache("bench-inv", options)?;
    let key = (0u64..)
        .find(|k| {
            a.holders_of(k)
                .is_ok_and(|h| !h.contains(&c.a.id()) && !h.contains(&c.b.id()))
        })
        .context("no key held by the processes only")?;
    let encoded = bytes::Bytes::from(postcard::to_allocvec(&key)?);
    let near = b.near().context("b has no near tier")?.clone();
    let mut value = noise(VALUE);
    a.put(&key, &value).await?;
    let mut out = Vec::with_capacity(trials);
    for trial in 0..trials {
        b.get(&key).await?.context("the key is missing")?;
        let old = near
            .get(&encoded)
            .map(|e| e.version)
            .context("b did not keep its fetched copy")?;
        let watched = near.clone();
        let key_bytes = encoded.clone();
        let watcher = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if watched.get(&key_bytes).map(|e| e.version) != Some(old) {
                    return Some(Instant::now());
                }
                std::thread::yield_now();
            }
            None
        });
        value[0] = trial as u8;
        let t = Instant::now();
        a.put(&key, &value).await?;
        let seen = tokio::task::spawn_blocking(move || watcher.join())
            .await?
            .map_err(|_| anyhow!("the watcher panicked"))?
            .context("b's near tier kept the old value for 5 s")?;
        out.push(seen.saturating_duration_since(t).as_secs_f64() * 1e3);
    }
    Ok(summarize(out))
}

/// Writes `n` keys, starts a fourth process, and times from the moment
/// client a places keys over it until the process holds every key it
/// should; then counts the keys client a can no longer read.
pub(crate) async fn rebalance(c: &mut Cluster, n: usize) -> anyhow::Result<(f64, u64)> {
    let options = CacheOptions::tier(Tier::Partitioned { replicas: 1 }).max_entries(4 * n as u64);
    let cache: Bench = c.a.cache("bench-rebalance", options)?;
    let value = noise(VALUE);
    let keys: Vec<u64> = (0..n as u64).collect();
    for chunk in keys.chunks(256) {
        for r in join_all(chunk.iter().map(|k| cache.put(k, &value))).await {
            r?;
        }
    }
    let before = c.a.caches().members();
    let http = c.spawn()?.http.to_string();
    c.settle(before.len() + 1).await?;
    let t = Instant::now();
    let newcomer =
        c.a.caches()
            .members()
            .into_iter()
            .find(|m| !before.contains(m))
            .context("no new member")?;
    let mut expected = 0usize;
    for k in &keys {
        if cache.holders_of(k)?.contains(&newcomer) {
            expected += 1;
        }
    }
    let took = loop {
        let held = held_by(&http, "bench-rebalance").await.unwrap_or(0);
        if held >= expected as u64 {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(120) {
            return Err(anyhow!(
                "the new node holds {held} of {expected} keys after 120 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut lost = 0u64;
    for chunk in keys.chunks(256) {
        for r in join_all(chunk.iter().map(|k| cache.get(k))).await {
            if !matches!(r, Ok(Some(_))) {
                lost += 1;
            }
        }
    }
    Ok((took.as_secs_f64() * 1e3, lost))
}

/// Entries a node process holds for `cache`, from its `/caches`.
async fn held_by(http: &str, cache: &str) -> anyhow::Result<u64> {
    let body = http_get::get(http, "/caches", Duration::from_secs(2)).await?;
    let list: serde_json::Value = serde_json::from_str(&body)?;
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == cache))
        .and_then(|c| c["entries"].as_u64())
        .context("the cache is not listed")
}
