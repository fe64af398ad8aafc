//! A stateful singleton that survives a rolling restart with handoff.
//!
//! Three nodes run the demo counter as a cluster singleton. Each node in
//! turn is shut down gracefully and replaced by a new one while a client
//! keeps adding to the counter. A graceful shutdown hands the counter's
//! total to its next owner before the node leaves, so no acknowledged
//! addition is lost: at the end the total equals the additions the
//! counter acknowledged.
//!
//! ```sh
//! cargo run -p foundation-examples --example rolling_singleton
//! ```

use std::time::Duration;

use foundation::Node;
use foundation_demo::{Counted, Counter};
use foundation_examples::{local_cluster, node, shutdown, JOIN_WITHIN};

const NODES: usize = 3;
const ADDS_PER_ROUND: u64 = 10;

/// Adds `n` to the counter through `via`, retrying while the singleton
/// moves; the answer, or None when the outcome is unknown (a timeout).
async fn add(via: &Node, n: u64) -> Result<Option<Counted>, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(counter) = via.processes().lookup_singleton::<Counter>("visits")? {
            match counter.call(n, Duration::from_secs(2)).await {
                Ok(counted) => return Ok(Some(counted)),
                // Not delivered: the instance stopped or its node left.
                Err(foundation::process::CallError::Stopped { .. })
                | Err(foundation::process::CallError::NodeDown { .. })
                | Err(foundation::process::CallError::Unreachable { .. }) => {}
                // Sent, no answer: it may have been counted.
                Err(_) => return Ok(None),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the counter was unreachable for 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut nodes = local_cluster("roll", NODES).await?;
    for n in &nodes {
        foundation_demo::define(n);
    }
    nodes[0]
        .processes()
        .start_singleton("visits", foundation_demo::KIND, &())?;

    let (mut acked, mut unknown) = (0u64, 0u64);
    for round in 0..NODES {
        let client = nodes.last().ok_or("no node")?.clone();
        let mut holder = None;
        for _ in 0..ADDS_PER_ROUND {
            match add(&client, 1).await? {
                Some(c) => {
                    acked += 1;
                    holder = Some(c.node);
                }
                None => unknown += 1,
            }
        }
        let holder_name = nodes
            .iter()
            .find(|n| Some(n.id()) == holder)
            .map_or("?".to_owned(), |n| n.name().to_owned());
        // Replace the oldest node: it leaves gracefully (handing off what
        // it runs), a new one joins.
        let old = nodes.remove(0);
        println!(
            "round {round}: {acked} acknowledged, counter on {holder_name}; restarting {}",
            old.name()
        );
        old.shutdown().await;
        let fresh = node(&format!("roll-{}", NODES + round), nodes.first()).await?;
        foundation_demo::define(&fresh);
        nodes.push(fresh);
        for n in &nodes {
            n.wait_for_members(NODES, JOIN_WITHIN)
                .await
                .map_err(|seen| format!("{} sees {} members", n.name(), seen.len()))?;
        }
    }
    let last = nodes.last().ok_or("no node")?.clone();
    let total = add(&last, 0).await?.ok_or("no answer")?.total;
    println!(
        "rolling singleton: every node replaced; counter total {total}, {acked} acknowledged additions, {unknown} unknown"
    );
    shutdown(nodes).await;
    if total >= acked && total <= acked + unknown {
        Ok(())
    } else {
        Err(format!(
            "total {total} outside [{acked}, {}]: state was lost",
            acked + unknown
        )
        .into())
    }
}
