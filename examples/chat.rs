//! A chat room over pub/sub across three nodes.
//!
//! Every node subscribes to the topic `room`, then says hello; every node
//! hears every line, its own included, and each sender's lines arrive in
//! the order they were sent.
//!
//! ```sh
//! cargo run -p foundation-examples --example chat
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use foundation_examples::{local_cluster, shutdown};
use serde::{Deserialize, Serialize};

/// One line said in the room.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    from: String,
    seq: u32,
    text: String,
}

const NODES: usize = 3;
const LINES_EACH: u32 = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = local_cluster("chat", NODES).await?;
    let mut rooms = Vec::new();
    for node in &nodes {
        rooms.push(node.pubsub().subscribe::<Line>("room")?);
    }
    // A subscription's interest reaches the other nodes within a round
    // trip; a line published before that would not reach them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|n| n.pubsub().interested_nodes("room").len() < NODES - 1)
    {
        if tokio::time::Instant::now() > deadline {
            return Err("the room's interest did not spread within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for seq in 0..LINES_EACH {
        for node in &nodes {
            let line = Line {
                from: node.name().to_owned(),
                seq,
                text: format!("hello #{seq} from {}", node.name()),
            };
            node.pubsub().broadcast("room", line).await?;
        }
    }

    let expected = NODES * LINES_EACH as usize;
    let mut delivered = 0;
    for (node, room) in nodes.iter().zip(&mut rooms) {
        let mut last_seq: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..expected {
            let line = tokio::time::timeout(Duration::from_secs(10), room.recv())
                .await
                .map_err(|_| format!("{} heard only {delivered} lines", node.name()))?
                .ok_or("the room closed")?;
            if let Some(prev) = last_seq.insert(line.from.clone(), line.seq) {
                if line.seq != prev + 1 {
                    return Err(
                        format!("{}: {}'s lines out of order", node.name(), line.from).into(),
                    );
                }
            }
            delivered += 1;
            if line.seq == 0 {
                println!("[{}] {}: {}", node.name(), line.from, line.text);
            }
        }
    }
    println!(
        "chat: {NODES} nodes, {delivered} of {} lines delivered, each sender's in order",
        NODES * expected
    );
    shutdown(nodes).await;
    if delivered == NODES * expected {
        Ok(())
    } else {
        Err("lines were lost".into())
    }
}
