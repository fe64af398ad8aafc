//! The program of the first-service guide (docs/guides/first-service.md):
//! a stateful service, first on one node under a registered name, then as
//! a cluster singleton that keeps its state when its node leaves.
//!
//! ```sh
//! cargo run -p foundation-examples --example first_service
//! ```

use std::time::Duration;

use foundation::process::{CallError, Context, Instance, Service, ServiceError, StopReason};
use foundation::Node;
use foundation_examples::{local_cluster, shutdown};

/// Counts visits. Its total is its state: handed to the next instance
/// when this one stops gracefully.
#[derive(Default)]
struct Visits {
    total: u64,
}

impl Service for Visits {
    type Request = u64;
    type Reply = u64;
    type State = u64;

    async fn started(&mut self, _: &mut Context, handoff: Option<u64>) -> Result<(), ServiceError> {
        // A fresh start has no handoff; a moved instance gets its
        // predecessor's total.
        self.total = handoff.unwrap_or(0);
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context, visits: u64) -> Result<u64, ServiceError> {
        self.total += visits;
        Ok(self.total)
    }

    async fn stopping(&mut self, _: &mut Context, _: &StopReason) -> Option<u64> {
        Some(self.total)
    }
}

/// Adds `n` visits through `via`, waiting while the singleton moves.
async fn visit(via: &Node, n: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(visits) = via.processes().lookup_singleton::<Visits>("visits")? {
            match visits.call(n, Duration::from_secs(2)).await {
                Ok(total) => return Ok(total),
                // Not delivered (the instance is moving): try again.
                Err(CallError::Stopped { .. } | CallError::NodeDown { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the singleton was unreachable for 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut nodes = local_cluster("shop", 3).await?;

    // 1. A service on one node, registered under a unique name.
    let local = nodes[0]
        .processes()
        .start_local(Visits::default, Default::default());
    nodes[0]
        .registry()
        .register_sync("visits-on-shop-0", &local, Duration::from_secs(5))
        .await?;
    let remote = nodes[1]
        .registry()
        .lookup::<Visits>("visits-on-shop-0")?
        .ok_or("not registered")?;
    let total = remote.call(5, Duration::from_secs(2)).await?;
    println!("shop-1 added 5 visits to the service on shop-0: total {total}");

    // 2. The same service as a cluster singleton: define the kind on
    //    every node, start it once, and the cluster places it.
    for node in &nodes {
        node.processes()
            .define("visits", |_: &(), _: &Instance| Visits::default());
    }
    nodes[0]
        .processes()
        .start_singleton("visits", "visits", &())?;
    for node in &nodes {
        visit(node, 1).await?;
    }
    let holder = nodes[0]
        .registry()
        .whereis("visits")
        .ok_or("the singleton is registered under its id")?
        .owner();
    let host = nodes
        .iter()
        .position(|n| n.id() == holder)
        .ok_or("a node of the cluster holds it")?;
    println!(
        "the singleton runs on {}; 3 visits so far",
        nodes[host].name()
    );

    // 3. Its node leaves gracefully: the total moves to the next node.
    let leaving = nodes.remove(host);
    leaving.shutdown().await;
    let total = visit(&nodes[0], 1).await?;
    let now_on = nodes[0]
        .registry()
        .whereis("visits")
        .map(|e| e.owner())
        .and_then(|id| nodes.iter().find(|n| n.id() == id))
        .map_or("?".to_owned(), |n| n.name().to_owned());
    println!(
        "first service: {} left; the singleton moved to {now_on} with its state, total {total} after 4 visits",
        leaving.name()
    );
    shutdown(nodes).await;
    if total == 4 {
        Ok(())
    } else {
        Err(format!("expected 4 visits, the singleton counted {total}").into())
    }
}
