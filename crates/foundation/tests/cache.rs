//! The distributed cache across in-process clusters: every tier reads its
//! writes, a replica takes over from a killed owner, nodes joining one
//! after another lose no acknowledged key, and bounds and TTLs hold.

use std::collections::BTreeSet;
use std::time::Duration;

use foundation::cache::{Cache, CacheOptions, Tier};
use foundation::NodeId;
use foundation_testkit::{assert_eventually, assert_eventually_async, Cluster};

const SETTLE: Duration = Duration::from_secs(20);

/// Waits until every running node places keys over exactly the running
/// nodes.
async fn wait_placement(c: &Cluster) {
    assert_eventually(
        SETTLE,
        "every node places keys over the running nodes",
        || {
            let running: Vec<NodeId> = {
                let mut r: Vec<NodeId> = c.running().map(|n| n.id()).collect();
                r.sort();
                r
            };
            c.running().all(|n| n.caches().members() == running)
        },
    )
    .await;
}

fn open(c: &Cluster, i: usize, name: &str, options: &CacheOptions) -> Cache<String, u64> {
    c.node(i).cache(name, options.clone()).expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tier_reads_its_writes_from_every_node() {
    let c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    for (name, tier) in [
        ("partitioned", Tier::Partitioned { replicas: 1 }),
        ("unreplicated", Tier::Partitioned { replicas: 0 }),
        ("replicated", Tier::Replicated),
    ] {
        let options = CacheOptions::tier(tier);
        let caches: Vec<_> = (0..3).map(|i| open(&c, i, name, &options)).collect();
        for (i, cache) in caches.iter().enumerate() {
            for k in 0..20u64 {
                let key = format!("{i}-{k}");
                cache.put(&key, &k).await.expect("put");
                // Read your write, here and on every other node.
                for other in &caches {
                    assert_eq!(other.get(&key).await.expect("get"), Some(k), "{name} {key}");
                }
            }
        }
        // The holders agree on where a key lives.
        let holders: BTreeSet<Vec<NodeId>> = caches
            .iter()
            .map(|c| c.holders_of(&"0-0".to_owned()).expect("holders"))
            .collect();
        assert_eq!(holders.len(), 1, "{name}: {holders:?}");
        let expected = match tier {
            Tier::Partitioned { replicas } => replicas + 1,
            _ => 3,
        };
        assert_eq!(holders.first().map(Vec::len), Some(expected), "{name}");
        // Each holder has its copy the moment the put returned.
        let key = "1-7".to_owned();
        caches[2].put(&key, &700).await.expect("put");
        let encoded = bytes::Bytes::from(postcard::to_allocvec(&key).expect("encode"));
        for h in caches[0].holders_of(&key).expect("holders") {
            let i = (0..3).find(|i| c.node(*i).id() == h).expect("a node");
            let entry = caches[i]
                .local()
                .get(&encoded)
                .expect("a copy on each holder");
            assert_eq!(
                entry.value.as_deref(),
                Some(&postcard::to_allocvec(&700u64).expect("encode")[..])
            );
        }
        // A delete reaches every node; many at once.
        caches[1].delete(&key).await.expect("delete");
        for cache in &caches {
            assert_eq!(cache.get(&key).await.expect("get"), None, "{name}");
            assert!(!cache.contains(&"1-7".to_owned()).await.expect("contains"));
        }
        let keys: Vec<String> = (0..10).map(|k| format!("many-{k}")).collect();
        let values: Vec<u64> = (0..10).collect();
        caches[0]
            .put_many(keys.iter().zip(&values))
            .await
            .expect("put_many");
        let got = caches[2].get_many(&keys).await.expect("get_many");
        assert_eq!(got, values.iter().copied().map(Some).collect::<Vec<_>>());
        // Clear empties it everywhere.
        caches[2].clear().await.expect("clear");
        for cache in &caches {
            assert_eq!(cache.get(&keys[0]).await.expect("get"), None);
        }
        assert!(caches[0].stats().hits > 0 && caches[0].stats().misses > 0);
    }
    let listed = c.node(0).caches().list();
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["partitioned", "replicated", "unreplicated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_and_takes_over_when_the_owner_is_killed() {
    let mut c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    let options =
        CacheOptions::tier(Tier::Partitioned { replicas: 1 }).timeout(Duration::from_millis(500));
    let caches: Vec<_> = (0..3).map(|i| open(&c, i, "sessions", &options)).collect();
    let keys: Vec<String> = (0..300).map(|k| format!("s{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        caches[k % 3].put(key, &(k as u64)).await.expect("put");
    }
    let victim = c.node(1).id();
    let owned: Vec<&String> = keys
        .iter()
        .filter(|k| caches[0].owner_of(k).expect("owner") == victim)
        .collect();
    assert!(owned.len() > 50, "node 1 owns {} of 300 keys", owned.len());
    c.kill(1).await;
    // Before membership has declared it down, a read falls back to the
    // replica once the owner does not answer.
    assert_eq!(
        caches[0].get(owned[0]).await.expect("get"),
        Some(keys.iter().position(|k| k == owned[0]).expect("index") as u64)
    );
    // Once it is down, the replicas own its keys; nothing is lost.
    wait_placement(&c).await;
    for i in [0usize, 2] {
        for (k, key) in keys.iter().enumerate() {
            assert_eq!(
                caches[i].get(key).await.expect("get"),
                Some(k as u64),
                "node {i} key {key}"
            );
        }
    }
    // New writes to its keys have an owner again.
    caches[2].put(owned[1], &9).await.expect("put");
    assert_eq!(caches[0].get(owned[1]).await.expect("get"), Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_joining_one_after_another_lose_no_acknowledged_key() {
    let mut c = Cluster::start(1).await.expect("cluster");
    let options = CacheOptions::tier(Tier::Partitioned { replicas: 1 });
    let writer = open(&c, 0, "joins", &options);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = {
        let (writer, stop) = (writer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..100_000u64 {
                if stop.is_cancelled() {
                    break;
                }
                if writer.put(&format!("k{k}"), &k).await.is_ok() {
                    acked.push(k);
                }
                if k % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            acked
        })
    };
    for i in 1..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.restart(i).await.expect("join");
        c.node(i)
            .cache::<String, u64>("joins", options.clone())
            .expect("open");
        c.wait_for_members(i + 1, SETTLE).await.expect("joined");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let acked = task.await.expect("writer");
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    wait_placement(&c).await;
    let readers: Vec<Cache<String, u64>> = (0..5).map(|i| open(&c, i, "joins", &options)).collect();
    // Handoffs run after each view change: every acknowledged key is
    // readable from every node once they have.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut missing = Vec::new();
        for k in &acked {
            for (i, r) in readers.iter().enumerate() {
                if r.get(&format!("k{k}")).await.ok().flatten() != Some(*k) {
                    missing.push((i, *k));
                }
            }
            if missing.len() > 10 {
                break;
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "acknowledged keys not readable (node, key): {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged key ends with exactly its two copies, and no node
    // keeps a stray one: a copy a handoff left behind goes with the next
    // sweep (every 10 s). A put that returned an error may still have been
    // stored (its outcome was unknown to the writer): such a key may have
    // its two copies too, never more. One CI run counted 5,511 copies for
    // 2,755 acknowledged keys the moment the keys were readable.
    let acked: BTreeSet<String> = acked.iter().map(|k| format!("k{k}")).collect();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut copies: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &readers {
            r.local().run_pending_tasks();
            for (key, e) in r.local().iter() {
                if e.value.is_some() {
                    let key: String = postcard::from_bytes(&key).expect("a string key");
                    *copies.entry(key).or_default() += 1;
                }
            }
        }
        let wrong: Vec<(&String, usize)> = copies
            .iter()
            .filter(|(k, n)| {
                if acked.contains(*k) {
                    **n != 2
                } else {
                    **n > 2
                }
            })
            .map(|(k, n)| (k, *n))
            .chain(
                acked
                    .iter()
                    .filter(|k| !copies.contains_key(*k))
                    .map(|k| (k, 0)),
            )
            .take(10)
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys without exactly two copies (key, copies): {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_and_ttls_hold_on_each_node() {
    let c = Cluster::start(1).await.expect("cluster");
    // The development profile's default tier is local.
    let defaults = c.node(0).caches().defaults();
    assert_eq!(defaults.tier, Tier::Local);
    assert_eq!(defaults.max_entries, 100_000);
    let small = c
        .node(0)
        .cache::<u64, u64>("small", CacheOptions::tier(Tier::Local).max_entries(100))
        .expect("open");
    for k in 0..2_000u64 {
        small.put(&k, &k).await.expect("put");
    }
    small.local().run_pending_tasks();
    assert!(
        small.local().entry_count() <= 100,
        "{} entries",
        small.local().entry_count()
    );
    assert!(small.stats().evictions > 0);
    let by_bytes = c
        .node(0)
        .cache::<u64, Vec<u8>>(
            "bytes",
            CacheOptions::tier(Tier::Local).max_bytes(64 * 1024),
        )
        .expect("open");
    for k in 0..200u64 {
        by_bytes.put(&k, &vec![7u8; 1024]).await.expect("put");
    }
    by_bytes.local().run_pending_tasks();
    assert!(by_bytes.local().weighted_size() <= 64 * 1024);
    let short = c
        .node(0)
        .cache::<u64, u64>(
            "short",
            CacheOptions::tier(Tier::Partitioned { replicas: 1 }),
        )
        .expect("open");
    short
        .put_with_ttl(&1, &1, Duration::from_millis(100))
        .await
        .expect("put");
    short.put(&2, &2).await.expect("put");
    assert_eventually_async(SETTLE, "the entry with a TTL expires", || async {
        short.get(&1).await.ok().flatten().is_none()
    })
    .await;
    assert_eq!(short.get(&2).await.expect("get"), Some(2));
    // Another type under the same name is a decode error, not a panic.
    let wrong = c
        .node(0)
        .cache::<u64, String>("short", CacheOptions::default())
        .expect("open");
    let err = wrong.get(&2).await.expect_err("a u64 is not a string");
    assert!(err.to_string().contains("does not decode"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_compute_runs_once_under_a_hundred_callers_on_three_nodes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    let options = CacheOptions::tier(Tier::Partitioned { replicas: 1 });
    let caches: Vec<_> = (0..3).map(|i| open(&c, i, "computed", &options)).collect();
    let runs = Arc::new(AtomicU64::new(0));
    let callers = (0..100).map(|i| {
        let (cache, runs) = (caches[i % 3].clone(), runs.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&"report".to_owned(), || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, String>(42)
                })
                .await
        })
    });
    for r in futures_util::future::join_all(callers).await {
        assert_eq!(r.expect("caller").expect("value"), 42);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "computed more than once");
    // A failed computation is its caller's error; the next caller computes.
    let failed = caches[1]
        .get_or_compute(&"flaky".to_owned(), || async {
            Err::<u64, _>("backend down")
        })
        .await
        .expect_err("the computation failed");
    assert!(failed.to_string().contains("backend down"), "{failed}");
    let ok = caches[2]
        .get_or_compute(&"flaky".to_owned(), || async { Ok::<_, String>(7) })
        .await
        .expect("value");
    assert_eq!(ok, 7);
    assert_eq!(
        caches[0].get(&"flaky".to_owned()).await.expect("get"),
        Some(7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_computes_when_the_computing_node_dies() {
    let mut c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    let options = CacheOptions::tier(Tier::Partitioned { replicas: 1 });
    let caches: Vec<_> = (0..3).map(|i| open(&c, i, "orphans", &options)).collect();
    // A key owned by node 0, so the owner outlives the computing node.
    let owner = c.node(0).id();
    let key = (0..1000)
        .map(|k| format!("job-{k}"))
        .find(|k| caches[0].owner_of(k).expect("owner") == owner)
        .expect("a key node 0 owns");
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let doomed = {
        let (cache, key) = (caches[1].clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, || async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    Ok::<_, String>(1)
                })
                .await
        })
    };
    started.await.expect("node 1 computes");
    let waiter = {
        let (cache, key) = (caches[2].clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, || async { Ok::<_, String>(2) })
                .await
        })
    };
    // Let the waiter reach the owner, then crash the computing node.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the waiter did not wait");
    c.kill(1).await;
    let got = tokio::time::timeout(SETTLE, waiter)
        .await
        .expect("the waiter was answered")
        .expect("task")
        .expect("value");
    assert_eq!(got, 2);
    assert_eq!(caches[0].get(&key).await.expect("get"), Some(2));
    doomed.abort();
}

/// A key owned by node `owner` that node `outsider` does not hold.
fn key_owned_by(c: &Cluster, cache: &Cache<String, u64>, owner: usize, outsider: usize) -> String {
    (0..10_000)
        .map(|k| format!("key-{k}"))
        .find(|k| {
            let h = cache.holders_of(k).expect("holders");
            h[0] == c.node(owner).id() && !h.contains(&c.node(outsider).id())
        })
        .expect("such a key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_tier_serves_locally_and_never_serves_a_value_older_than_an_acknowledged_put() {
    let c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    let options = CacheOptions::tier(Tier::Near { replicas: 1 });
    let caches: Vec<_> = (0..3).map(|i| open(&c, i, "profiles", &options)).collect();
    assert_eq!(caches[2].tier(), Tier::Near { replicas: 1 });
    let key = key_owned_by(&c, &caches[0], 0, 2);
    let encoded = bytes::Bytes::from(postcard::to_allocvec(&key).expect("encode"));
    caches[0].put(&key, &1).await.expect("put");
    assert_eq!(caches[2].get(&key).await.expect("get"), Some(1));
    let near = caches[2].near().expect("a near tier");
    assert!(near.contains_key(&encoded), "the fetched copy is kept near");
    // A hit is served from the near tier: no request leaves the node.
    let calls = caches[2].stats().remote_calls;
    for _ in 0..10 {
        assert_eq!(caches[2].get(&key).await.expect("get"), Some(1));
    }
    assert_eq!(caches[2].stats().remote_calls, calls);
    // A write elsewhere: once acknowledged, no near tier serves the old
    // value (the owner waited for the invalidations).
    for v in 2..20u64 {
        caches[(v % 2) as usize].put(&key, &v).await.expect("put");
        for cache in &caches {
            assert_eq!(cache.get(&key).await.expect("get"), Some(v));
        }
    }
    // A delete too.
    caches[1].delete(&key).await.expect("delete");
    for cache in &caches {
        assert_eq!(cache.get(&key).await.expect("get"), None);
    }
    let listed = c.node(2).caches().list();
    assert_eq!(listed[0].tier, "near");
    assert!(listed[0].near_entries.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_is_repaired_by_reconciliation() {
    let c = Cluster::start(3).await.expect("cluster");
    wait_placement(&c).await;
    let options = CacheOptions::tier(Tier::Near { replicas: 1 })
        .reconcile(Duration::from_millis(300))
        .timeout(Duration::from_millis(300));
    let caches: Vec<_> = (0..3).map(|i| open(&c, i, "prices", &options)).collect();
    let key = key_owned_by(&c, &caches[0], 0, 2);
    caches[0].put(&key, &1).await.expect("put");
    assert_eq!(caches[2].get(&key).await.expect("get"), Some(1));
    // The owner's frames to node 2 are lost while the key is written.
    let faults = c.node(0).raw().faults().clone();
    faults.block_to([c.node(2).transport_addr()]);
    caches[1].put(&key, &2).await.expect("put");
    // Node 2 still serves the old copy: the invalidation was lost...
    assert_eq!(caches[2].get(&key).await.expect("get"), Some(1));
    faults.heal();
    // ...until reconciliation finds it stale.
    assert_eventually_async(SETTLE, "node 2's near copy is repaired", || async {
        caches[2].get(&key).await.ok().flatten() == Some(2)
    })
    .await;
    assert_eq!(caches[0].get(&key).await.expect("get"), Some(2));
}
