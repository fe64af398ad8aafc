//! What the examples share: a local cluster of nodes in one process, on
//! loopback, joined through static seeds. On real machines each node would
//! be its own process started with `foundation::start()` (mDNS on a LAN)
//! or one line of configuration (`FOUNDATION_CLUSTER=kubernetes`).

use std::time::Duration;

use foundation::{Node, NodeBuilder, StartError};

/// The secret of the examples' clusters. Use a long random one of your own.
const SECRET: &str = "foundation-examples-secret-0123456789";

/// How long a node may take to see the others.
pub const JOIN_WITHIN: Duration = Duration::from_secs(20);

/// A node named `name` on 127.0.0.1 with an ephemeral port, joining
/// through `seed` (a member's membership address) if given.
pub async fn node(name: &str, seed: Option<&Node>) -> Result<Node, StartError> {
    let mut b = NodeBuilder::isolated()
        .cluster("static")
        .name(name)
        .secret(SECRET)
        .bind("127.0.0.1".parse().expect("an IP address"))
        .port(0);
    if let Some(seed) = seed {
        b = b.seeds([seed.membership_addr().to_string()]);
    }
    b.start().await
}

/// `n` nodes named `prefix-0`, `prefix-1`, ..., each seeing all `n`.
pub async fn local_cluster(
    prefix: &str,
    n: usize,
) -> Result<Vec<Node>, Box<dyn std::error::Error>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let node = node(&format!("{prefix}-{i}"), nodes.first()).await?;
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_members(n, JOIN_WITHIN)
            .await
            .map_err(|seen| format!("{} sees {} of {n} members", node.name(), seen.len()))?;
    }
    Ok(nodes)
}

/// Shuts every node down gracefully (each leaves; the others see Left).
pub async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown().await;
    }
}
