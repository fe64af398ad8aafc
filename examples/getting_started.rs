//! The program of the getting-started guide (docs/guides/getting-started.md):
//! three nodes, a service registered by name and called from another node,
//! and a topic every node hears.
//!
//! ```sh
//! cargo run -p foundation-examples --example getting_started
//! ```

use std::time::Duration;

use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation_examples::{local_cluster, shutdown};

/// A service: answers a name with a greeting from the node it runs on.
struct Greeter;

impl Service for Greeter {
    type Request = String;
    type Reply = String;
    type State = ();

    async fn handle(&mut self, ctx: &mut Context, name: String) -> Result<String, ServiceError> {
        Ok(format!("hello {name}, from node {}", ctx.node_id()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three nodes in this process (on three machines, each would call
    // `foundation::start()`).
    let nodes = local_cluster("app", 3).await?;

    // Run the greeter on the first node and register it under a name;
    // `register_sync` returns once every node knows the name.
    let greeter = nodes[0]
        .processes()
        .start_local(|| Greeter, ServiceOptions::default());
    nodes[0]
        .registry()
        .register_sync("greeter", &greeter, Duration::from_secs(5))
        .await?;

    // Any node finds it by name and calls it; the call crosses the cluster.
    let found = nodes[2]
        .registry()
        .lookup::<Greeter>("greeter")?
        .ok_or("nobody holds `greeter`")?;
    let reply = found.call("ada".to_owned(), Duration::from_secs(2)).await?;
    println!("{} asked the greeter: {reply}", nodes[2].name());

    // A topic: every node subscribes, one node publishes.
    let mut subscriptions = Vec::new();
    for node in &nodes {
        subscriptions.push(node.pubsub().subscribe::<String>("news")?);
    }
    // Interest reaches the other nodes within a round trip.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|n| n.pubsub().interested_nodes("news").len() < nodes.len() - 1)
    {
        if tokio::time::Instant::now() > deadline {
            return Err("interest in `news` did not spread within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[1]
        .pubsub()
        .broadcast("news", "the cluster is up".to_owned())
        .await?;
    let mut heard = 0;
    for (node, subscription) in nodes.iter().zip(&mut subscriptions) {
        let news = tokio::time::timeout(Duration::from_secs(5), subscription.recv())
            .await?
            .ok_or("the subscription closed")?;
        println!("{} heard: {news}", node.name());
        heard += 1;
    }

    println!(
        "getting started: 3 nodes; the greeter on {} answered {}; {heard} of 3 nodes heard the news",
        nodes[0].name(),
        nodes[2].name()
    );
    shutdown(nodes).await;
    Ok(())
}
