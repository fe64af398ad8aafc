//! A job queue over partitioned services.
//!
//! A partitioned child spec runs 6 worker shards spread over 3 nodes by
//! rendezvous hashing. A client on one node sends 60 jobs, each to the
//! shard that owns its key (`lookup_shard`), and every worker answers
//! which node and shard did the work. Every job is done exactly once.
//!
//! ```sh
//! cargo run -p foundation-examples --example job_queue
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foundation::process::{Context, Instance, Service, ServiceError};
use foundation::NodeId;
use foundation_examples::{local_cluster, shutdown};
use serde::{Deserialize, Serialize};

/// A unit of work.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u64,
    key: String,
}

/// Who did it.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    id: u64,
    node: NodeId,
    shard: u32,
}

/// One shard's worker.
struct Worker {
    shard: u32,
    done: u64,
}

impl Service for Worker {
    type Request = Job;
    type Reply = Done;
    type State = u64;

    async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
        self.done = handoff.unwrap_or(0);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context, job: Job) -> Result<Done, ServiceError> {
        self.done += 1;
        Ok(Done {
            id: job.id,
            node: ctx.node_id(),
            shard: self.shard,
        })
    }

    async fn stopping(
        &mut self,
        _: &mut Context,
        _: &foundation::process::StopReason,
    ) -> Option<u64> {
        Some(self.done)
    }
}

const NODES: usize = 3;
const SHARDS: u32 = 6;
const JOBS: u64 = 60;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = local_cluster("jobs", NODES).await?;
    for node in &nodes {
        node.processes()
            .define("worker", |_: &(), inst: &Instance| Worker {
                shard: inst.shard.unwrap_or(0),
                done: 0,
            });
    }
    nodes[0]
        .processes()
        .start_partitioned("jobs", "worker", &(), SHARDS)?;

    let client = &nodes[1];
    let names: BTreeMap<NodeId, String> = nodes
        .iter()
        .map(|n| (n.id(), n.name().to_owned()))
        .collect();
    let mut done_by: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for id in 0..JOBS {
        let key = format!("customer-{}", id * 7919 % 1000);
        // The shard's instance may still be starting: wait for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let worker = loop {
            if let Some(w) = client.processes().lookup_shard::<Worker>("jobs", &key)? {
                break w;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("no worker for {key} within 20 s").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let done = worker.call(Job { id, key }, Duration::from_secs(5)).await?;
        if !ids.insert(done.id) {
            return Err(format!("job {} done twice", done.id).into());
        }
        let name = names
            .get(&done.node)
            .cloned()
            .unwrap_or_else(|| done.node.to_string());
        done_by.entry(name).or_default().insert(done.shard);
    }
    for (node, shards) in &done_by {
        println!("{node}: shards {shards:?}");
    }
    println!(
        "job queue: {} of {JOBS} jobs done exactly once by {SHARDS} shards on {} nodes",
        ids.len(),
        done_by.len()
    );
    shutdown(nodes).await;
    if ids.len() as u64 == JOBS {
        Ok(())
    } else {
        Err("jobs were lost".into())
    }
}
