//! Fenced singletons: the instance starts once it holds its coordination
//! lock, its context carries the fencing token, and a successor starts
//! only after the predecessor stopped, on a graceful move and when the
//! predecessor's node is cut off from the majority.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::process::{Context, Instance, Service, ServiceError, StopReason};
use foundation::{Node, NodeId};
use foundation_testkit::{assert_eventually, Cluster};

/// What every instance of the probe reports, across the nodes.
#[derive(Default)]
struct Seen {
    /// Instances running now, and the most at once.
    running: AtomicI64,
    most: AtomicI64,
    /// Fencing tokens in start order, with the node.
    tokens: Mutex<Vec<(NodeId, u64)>>,
    /// Starts without a fence (must stay 0).
    unfenced: AtomicU64,
}

struct Probe {
    seen: Arc<Seen>,
}

impl Service for Probe {
    type Request = ();
    type Reply = u64;
    type State = ();

    async fn started(&mut self, ctx: &mut Context, _: Option<()>) -> Result<(), ServiceError> {
        let Some(fence) = ctx.fence() else {
            self.seen.unfenced.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        let now = self.seen.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.most.fetch_max(now, Ordering::SeqCst);
        let token = fence.token();
        self.seen
            .tokens
            .lock()
            .expect("lock")
            .push((ctx.node_id(), token));
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context, _: ()) -> Result<u64, ServiceError> {
        Ok(ctx.fence().map_or(0, |f| f.token()))
    }

    async fn stopping(&mut self, ctx: &mut Context, _: &StopReason) -> Option<()> {
        if ctx.fence().is_some() {
            self.seen.running.fetch_sub(1, Ordering::SeqCst);
        }
        None
    }
}

fn define(node: &Node, seen: &Arc<Seen>) {
    let seen = seen.clone();
    node.processes()
        .define("probe", move |_: &(), _: &Instance| Probe {
            seen: seen.clone(),
        });
}

/// The node running the singleton, once every node resolves it.
async fn holder(c: &Cluster) -> NodeId {
    let mut found = None;
    assert_eventually(
        Duration::from_secs(30),
        "one holder, named by every node",
        || {
            let seen: Vec<Option<NodeId>> = c
                .running()
                .map(|n| n.registry().whereis("single").map(|e| e.service.node))
                .collect();
            let first = seen[0];
            let ok = first.is_some() && seen.iter().all(|s| *s == first);
            if ok {
                found = first;
            }
            ok
        },
    )
    .await;
    found.expect("holder")
}

fn tokens(seen: &Seen) -> Vec<(NodeId, u64)> {
    seen.tokens.lock().expect("lock").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_singleton_moves_with_a_larger_token_and_never_runs_twice() {
    let seen = Arc::new(Seen::default());
    let mut c = Cluster::start(3).await.expect("cluster");
    for n in c.running() {
        define(n, &seen);
    }
    // The group has its three voters (a group of one voter would lose its
    // state with that voter).
    assert_eventually(Duration::from_secs(30), "three voters", || {
        c.running().all(|n| n.coord().status().voters.len() == 3)
    })
    .await;
    c.node(0)
        .processes()
        .start_singleton_fenced("single", "probe", &())
        .expect("start");
    let first = holder(&c).await;
    assert_eventually(
        Duration::from_secs(30),
        "the instance holds its fence",
        || tokens(&seen).len() == 1,
    )
    .await;
    let h = (0..3).find(|i| c.node(*i).id() == first).expect("a node");

    // A graceful stop of its node: the instance moves.
    c.stop(h).await;
    assert_eventually(
        Duration::from_secs(30),
        "a successor holds the fence",
        || tokens(&seen).len() == 2,
    )
    .await;
    let t = tokens(&seen);
    assert_ne!(t[1].0, first);
    assert!(t[1].1 > t[0].1, "tokens {t:?}");

    // Three nodes and three voters again.
    c.restart(h).await.expect("restart");
    define(c.node(h), &seen);
    assert_eventually(Duration::from_secs(30), "three voters again", || {
        c.running().all(|n| {
            let s = n.coord().status();
            s.voters.len() == 3 && s.leader.is_some()
        })
    })
    .await;

    // Its node cut off from the other two: the old instance loses its
    // fence and stops before a new one starts on the majority side.
    let second = t[1].0;
    let h2 = c
        .running_indexes()
        .into_iter()
        .find(|i| c.node(*i).id() == second)
        .expect("running");
    let others: Vec<usize> = c
        .running_indexes()
        .into_iter()
        .filter(|i| *i != h2)
        .collect();
    c.partition(&[h2], &others);
    assert_eventually(
        Duration::from_secs(30),
        "a third instance on the majority side",
        || tokens(&seen).len() == 3,
    )
    .await;
    let t = tokens(&seen);
    assert_ne!(t[2].0, second);
    assert!(t[2].1 > t[1].1, "tokens {t:?}");
    assert_eq!(
        seen.most.load(Ordering::SeqCst),
        1,
        "two instances ran at once: {t:?}"
    );
    assert_eq!(seen.unfenced.load(Ordering::SeqCst), 0);
    c.heal();
    c.shutdown().await;
}
