//! Durable coordination: a whole cluster crashes and restarts from its
//! data directories with every committed write; a lone node keeps its
//! Raft id across restarts.

use std::path::Path;
use std::time::Duration;

use foundation::{Node, NodeBuilder};
use foundation_testkit::{assert_eventually, builder};

const CALL: Duration = Duration::from_secs(10);

fn durable(name: &str, dir: &Path) -> NodeBuilder {
    builder(name).set("coord.storage", "durable").set(
        "coord.data_dir",
        dir.join(name).to_str().expect("utf-8 path"),
    )
}

async fn start(dir: &Path, seeds: &[String]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..3 {
        let mut seeds: Vec<String> = seeds.to_vec();
        seeds.extend(nodes.iter().map(|n| n.membership_addr().to_string()));
        let node = durable(&format!("d{i}"), dir)
            .seeds(seeds.iter().map(String::as_str))
            .start()
            .await
            .expect("start");
        nodes.push(node);
    }
    nodes
}

async fn wait_voters(nodes: &[Node]) {
    assert_eventually(
        Duration::from_secs(30),
        "three voters and one leader",
        || {
            nodes.iter().all(|n| {
                let s = n.coord().status();
                s.leader.is_some() && s.voters.len() == 3
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_crash_keeps_every_committed_write() {
    foundation_testkit::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = start(dir.path(), &[]).await;
    wait_voters(&nodes).await;
    let raft_ids: Vec<u64> = nodes.iter().map(|n| n.coord().status().raft_id).collect();
    let coord = nodes[1].coord().with_timeout(CALL);
    for k in 0..50u8 {
        coord.put(&format!("k/{k}"), vec![k]).await.expect("put");
    }
    let n = coord.add("n", 7).await.expect("add");
    assert_eq!(n, 7);
    // Every node crashes: no graceful shutdown, nothing flushed on exit.
    for node in &nodes {
        node.abort().await;
    }
    drop(nodes);

    let nodes = start(dir.path(), &[]).await;
    // Same Raft ids, new member ids.
    let again: Vec<u64> = nodes.iter().map(|n| n.coord().status().raft_id).collect();
    assert_eq!(again, raft_ids);
    wait_voters(&nodes).await;
    let coord = nodes[0].coord().with_timeout(CALL);
    let keys = coord.range("k/").await.expect("range after restart");
    assert_eq!(keys.len(), 50);
    assert!(keys.iter().all(|(k, e)| *k == format!("k/{}", e.value[0])));
    assert_eq!(coord.counter("n").await.expect("counter"), 7);
    // And it goes on.
    coord.put("after", "1").await.expect("put after restart");
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_in_use_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = durable("same", dir.path()).start().await.expect("first");
    let second = durable("same", dir.path()).start().await;
    let err = match second {
        Ok(_) => panic!("the second node must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("coord.redb"), "{err}");
    first.shutdown().await;
}
