//! Helpers shared by the integration tests: in-process nodes on loopback.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use std::net::SocketAddr;

use foundation::{MemberEvent, MemberState, Node, NodeBuilder};

/// Generous bound for anything that should take a second or two.
pub const SETTLE: Duration = Duration::from_secs(15);

pub const SECRET: &str = "integration-test-secret-0123456789";

/// A builder for a loopback node with ephemeral ports and no environment.
/// `static` discovery: tests running in parallel must not find each other's
/// nodes through mDNS on loopback.
pub fn builder(name: &str) -> NodeBuilder {
    NodeBuilder::isolated()
        .cluster("static")
        .name(name)
        .secret(SECRET)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
        // A strategy or TLS files that make the profile production would
        // make coordination durable under `<name>.coord` in the working
        // directory: files left behind by every run. Tests of durability
        // set a temporary directory.
        .set("coord.storage", "memory")
}

pub fn init_tracing() {
    foundation_testkit::init_tracing();
}

/// Starts `n` nodes; the first is the seed of the others.
pub async fn cluster(n: usize) -> Vec<Node> {
    init_tracing();
    let first = builder("n0").start().await.expect("seed node starts");
    let seed = first.membership_addr().to_string();
    let mut nodes = vec![first];
    for i in 1..n {
        let node = builder(&format!("n{i}"))
            .seeds([seed.as_str()])
            .start()
            .await
            .expect("node starts");
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_members(n, SETTLE)
            .await
            .unwrap_or_else(|m| panic!("{} sees only {:?}", node.name(), m));
    }
    nodes
}

/// Waits for an event about `who` that satisfies `pred`.
pub async fn wait_event(
    events: &mut foundation::Events,
    who: foundation::NodeId,
    pred: impl Fn(&MemberEvent) -> bool,
) -> MemberEvent {
    tokio::time::timeout(SETTLE, async {
        loop {
            let ev = events.recv().await.expect("events open");
            if ev.member().id == who && pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("event in time")
}

/// The state `observer` has for `who`.
pub fn state_of(observer: &Node, who: foundation::NodeId) -> Option<MemberState> {
    observer
        .members()
        .into_iter()
        .find(|m| m.id == who)
        .map(|m| m.state)
}

/// Alive members `node` counts (itself included).
pub fn alive(node: &Node) -> usize {
    node.members()
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count()
}

/// Serves `app` on an ephemeral loopback port (stand-in servers).
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}
