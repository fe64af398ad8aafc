//! Coordination across in-process clusters: the group forms by itself,
//! locks exclude and fence, the key-value store compares and sets, and a
//! leader's loss elects another with nothing committed lost.

use std::collections::BTreeSet;
use std::time::Duration;

use foundation::coord::{CoordError, Expect, Rejected};
use foundation::NodeId;
use foundation_testkit::{assert_eventually, Cluster};

const FORM: Duration = Duration::from_secs(30);
const CALL: Duration = Duration::from_secs(10);

/// Waits until every running node sees the same leader and `voters`
/// voters, all of them running nodes.
async fn wait_group(c: &Cluster, voters: usize) -> NodeId {
    let mut leader = None;
    assert_eventually(FORM, "one leader and the voters seen by all", || {
        let running: BTreeSet<NodeId> = c.running().map(|n| n.id()).collect();
        let views: Vec<_> = c.running().map(|n| n.coord().status()).collect();
        let first = &views[0];
        let agreed = views
            .iter()
            .all(|s| s.leader.is_some() && s.leader == first.leader && s.voters == first.voters);
        let ok = agreed
            && first.voters.len() == voters
            && first.voters.iter().all(|v| running.contains(v))
            && views
                .iter()
                .all(|s| s.group == first.group && s.group.is_some());
        if ok {
            leader = first.leader;
        }
        ok
    })
    .await;
    leader.expect("a leader")
}

fn index_of(c: &Cluster, id: NodeId) -> usize {
    c.running_indexes()
        .into_iter()
        .find(|i| c.node(*i).id() == id)
        .expect("a running node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_group_forms_and_serves_every_node() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let leader = wait_group(&c, 3).await;
    let follower = (0..3).find(|i| c.node(*i).id() != leader).expect("one");
    let coord = c.node(follower).coord().with_timeout(CALL);

    // A write from a follower is read back linearizably from another node.
    let rev = coord.put("config/size", "3").await.expect("put");
    let other = (0..3)
        .find(|i| *i != follower)
        .map(|i| c.node(i).coord().with_timeout(CALL))
        .expect("one");
    let entry = other
        .get("config/size")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(entry.value, b"3");
    assert_eq!(entry.modified, rev);

    // Compare-and-set: a stale revision is refused with the current one.
    let stale = other
        .put_if("config/size", "5", Expect::Revision(rev - 1))
        .await;
    assert_eq!(
        stale,
        Err(CoordError::Rejected(Rejected::CompareFailed {
            key: "config/size".into(),
            current: Some(rev),
        }))
    );
    let cas = other
        .put_if("config/size", "5", Expect::Revision(rev))
        .await
        .expect("cas");
    assert!(cas > rev);

    // Counters from every node add up.
    for i in 0..3 {
        c.node(i)
            .coord()
            .with_timeout(CALL)
            .add("n", 1)
            .await
            .expect("add");
    }
    assert_eq!(coord.counter("n").await.expect("read"), 3);

    // Range by prefix.
    coord.put("config/zone", "a").await.expect("put");
    coord.put("other", "x").await.expect("put");
    let keys: Vec<String> = coord
        .range("config/")
        .await
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["config/size", "config/zone"]);

    // Every node knows a commit index at least as far as it applied.
    for i in 0..3 {
        let coord = c.node(i).coord().with_timeout(CALL);
        coord.counter("n").await.expect("read");
        let s = coord.status();
        assert!(s.applied > 0 && s.committed >= s.applied, "node {i}: {s:?}");
        assert_eq!(s.apply_lag(), s.committed - s.applied);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_excludes_passes_on_release_and_fences() {
    let mut c = Cluster::start(3).await.expect("cluster");
    wait_group(&c, 3).await;
    let a = c.node(0).coord().with_timeout(CALL);
    let b = c.node(1).coord().with_timeout(CALL);

    let held = a.lock("jobs").await.expect("a locks");
    // b cannot have it while a holds it.
    let none = b
        .try_lock("jobs", Duration::from_millis(300))
        .await
        .expect("try");
    assert!(none.is_none(), "granted twice");

    // b waits in line; a releases; b gets it with a larger token.
    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.lock("jobs").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = held.token();
    held.unlock().await.expect("unlock");
    let second = waiter.await.expect("task").expect("b locks");
    assert!(second.token() > first, "{} after {}", second.token(), first);
    assert!(second.is_held());

    // Two acquisitions on one node exclude each other too.
    let other = a
        .try_lock("jobs", Duration::from_millis(300))
        .await
        .expect("try");
    assert!(other.is_none(), "granted twice on one node");
    drop(other);

    // Dropping the guard releases it too.
    drop(second);
    let third = a.lock("jobs").await.expect("a again");
    assert!(third.token() > first);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_leader_is_replaced_and_committed_writes_survive() {
    let mut c = Cluster::start(3).await.expect("cluster");
    let leader = wait_group(&c, 3).await;
    let li = index_of(&c, leader);
    let coord = c.node(li).coord().with_timeout(CALL);
    for k in 0..20 {
        coord
            .put(&format!("k/{k}"), vec![k as u8])
            .await
            .expect("put");
    }
    c.kill(li).await;

    // A survivor gets a new leader and reads every committed key.
    let survivor = c.running_indexes()[0];
    let coord = c.node(survivor).coord().with_timeout(CALL);
    let keys = coord.range("k/").await.expect("range after failover");
    assert_eq!(keys.len(), 20);
    let after = coord.status().leader.expect("a leader");
    assert_ne!(after, leader);
    // Writes go on with two of three voters.
    coord.put("k/after", "1").await.expect("put after failover");

    // The dead voter is replaced once a third node joins and the grace
    // passes; the group is three voters again, all running.
    c.restart(li).await.expect("restart");
    wait_group(&c, 3).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_releases_its_locks_at_once() {
    let mut c = Cluster::start(3).await.expect("cluster");
    wait_group(&c, 3).await;
    let held = c
        .node(2)
        .coord()
        .with_timeout(CALL)
        .lock("l")
        .await
        .expect("lock");
    let token = held.token();
    std::mem::forget(held); // the node's shutdown must release it
    c.stop(2).await;
    let next = c
        .node(0)
        .coord()
        .with_timeout(CALL)
        .lock("l")
        .await
        .expect("passed on");
    assert!(next.token() > token);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_barriers_semaphores_watches_and_cluster_values() {
    let mut c = Cluster::start(3).await.expect("cluster");
    wait_group(&c, 3).await;
    let coords: Vec<_> = (0..3)
        .map(|i| c.node(i).coord().with_timeout(CALL))
        .collect();

    // An election: one leader, observed by another node; resigning hands
    // leadership to the next candidate with a larger token.
    let mut seen = coords[2].observe("scheduler");
    let first = coords[0].campaign("scheduler").await.expect("campaign");
    let second = tokio::spawn({
        let c1 = coords[1].clone();
        async move { c1.campaign("scheduler").await }
    });
    tokio::time::timeout(
        CALL,
        seen.wait_for(|l| l.is_some_and(|l| l.node == c.node(0).id())),
    )
    .await
    .expect("observed in time")
    .expect("observer alive");
    let token = first.token();
    first.resign().await.expect("resign");
    let next = second.await.expect("task").expect("second wins");
    assert!(next.token() > token);
    tokio::time::timeout(
        CALL,
        seen.wait_for(|l| l.is_some_and(|l| l.node == c.node(1).id())),
    )
    .await
    .expect("observed the new leader")
    .expect("observer alive");

    // A barrier for three: nobody passes before the third arrives.
    let early = tokio::spawn({
        let (a, b) = (coords[0].clone(), coords[1].clone());
        async move {
            let (x, y) = tokio::join!(a.barrier("start", 3).wait(), b.barrier("start", 3).wait());
            (x, y)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!early.is_finished(), "passed a barrier with two of three");
    let third = coords[2].barrier("start", 3).wait().await.expect("third");
    let (x, y) = early.await.expect("task");
    let mut order = vec![x.expect("first"), y.expect("second"), third];
    order.sort();
    assert_eq!(order, [1, 2, 3]);

    // A semaphore of two: a third permit waits for a release.
    let sem = |i: usize| coords[i].semaphore("pool", 2);
    let p0 = sem(0).acquire().await.expect("permit 0");
    let p1 = sem(1).acquire().await.expect("permit 1");
    assert_ne!(p0.slot, p1.slot);
    let short = coords[2].with_timeout(Duration::from_millis(500));
    assert!(matches!(
        short.semaphore("pool", 2).acquire().await,
        Err(CoordError::TimedOut { .. })
    ));
    let waiting = tokio::spawn({
        let c2 = coords[2].clone();
        async move { c2.semaphore("pool", 2).acquire().await.map(|p| p.slot) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let freed = p0.slot;
    drop(p0);
    assert_eq!(waiting.await.expect("task").expect("permit 2"), freed);

    // A watch sees puts and deletes under its prefix, in order.
    let mut watch = coords[1].watch("jobs/");
    coords[0].put("jobs/1", "a").await.expect("put");
    coords[0].put("other", "x").await.expect("put");
    coords[2].delete("jobs/1").await.expect("delete");
    let ev = tokio::time::timeout(CALL, watch.next())
        .await
        .expect("event");
    assert!(
        matches!(ev, Some(foundation::coord::WatchEvent::Put { ref key, ref value, .. }) if key == "jobs/1" && value == b"a"),
        "{ev:?}"
    );
    let ev = tokio::time::timeout(CALL, watch.next())
        .await
        .expect("event");
    assert!(
        matches!(ev, Some(foundation::coord::WatchEvent::Deleted { ref key, .. }) if key == "jobs/1"),
        "{ev:?}"
    );

    // A typed cluster value, read locally everywhere after a write.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Limits {
        max_jobs: u32,
    }
    let limits = coords[0].cluster_value::<Limits>("limits").expect("name");
    let mut changes = coords[2]
        .cluster_value::<Limits>("limits")
        .expect("name")
        .watch();
    limits.set(&Limits { max_jobs: 4 }).await.expect("set");
    let got = tokio::time::timeout(CALL, changes.next())
        .await
        .expect("change");
    assert_eq!(got, Some(Ok(Some(Limits { max_jobs: 4 }))));
    let doubled = coords[1]
        .cluster_value::<Limits>("limits")
        .expect("name")
        .update(|l| Limits {
            max_jobs: l.map_or(1, |l| l.max_jobs * 2),
        })
        .await
        .expect("update");
    assert_eq!(doubled.max_jobs, 8);
    assert_eq!(
        coords[1]
            .cluster_value::<Limits>("limits")
            .expect("name")
            .get_linearizable()
            .await,
        Ok(Some(Limits { max_jobs: 8 }))
    );
    // A value of another type is a clear error, not a panic.
    let wrong = coords[0].cluster_value::<String>("limits").expect("name");
    assert!(matches!(wrong.get(), Err(CoordError::Decode { .. })));

    // Foundation's own names are refused to users.
    assert_eq!(
        coords[0].put("@config/limits", "x").await,
        Err(CoordError::Reserved("@config/limits".into()))
    );
    assert!(matches!(
        coords[0].lock("@election/x").await,
        Err(CoordError::Reserved(_))
    ));
    drop(next);
    drop(p1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_voter_hands_its_vote_on_when_it_leaves() {
    // Two nodes keep one voter (an even count rounds down).
    let mut c = Cluster::start(2).await.expect("cluster");
    let leader = wait_group(&c, 1).await;
    let li = index_of(&c, leader);
    let other = 1 - li;
    let coord = c.node(li).coord().with_timeout(CALL);
    coord.put("kept", "yes").await.expect("put");
    let token = coord.lock("l").await.expect("lock").token();
    // The learner has the write before the voter goes.
    assert_eventually(FORM, "the learner applied the write", || {
        c.node(other).coord().get_stale("kept").is_some()
    })
    .await;
    c.stop(li).await;
    let coord = c.node(other).coord().with_timeout(CALL);
    let kept = coord.get("kept").await.expect("get after the voter left");
    assert_eq!(kept.map(|e| e.value), Some(b"yes".to_vec()));
    let next = coord.lock("l").await.expect("lock after");
    assert!(next.token() > token);
    c.shutdown().await;
}
