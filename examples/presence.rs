//! Who is online in a chat room, across nodes, still right after a node
//! dies.
//!
//! Each user's session is a small service on the node the user is
//! connected to, and joins the registry group `room:lobby`. The room's
//! presence list on any node is the group's members, asked who they are.
//! Entries belong to the node that hosts them: when that node dies, the
//! others drop its entries as soon as membership declares it down, and
//! when a user leaves, their entry goes with them. No node keeps a list of
//! its own that could go stale.
//!
//! ```sh
//! cargo run -p foundation-examples --example presence
//! ```

use std::time::Duration;

use foundation::process::{Context, Service, ServiceError, ServiceOptions, ServiceRef};
use foundation::Node;
use foundation_examples::{local_cluster, shutdown};

/// The room everyone is in.
const ROOM: &str = "room:lobby";

/// Users connected to each node.
const USERS: [[&str; 3]; 3] = [
    ["alice", "bob", "carol"],
    ["dave", "erin", "frank"],
    ["grace", "heidi", "ivan"],
];

/// How long a question to a session may take.
const ASK: Duration = Duration::from_secs(2);

/// One user's session: answers with the user's name.
struct Session {
    user: String,
}

impl Service for Session {
    type Request = ();
    type Reply = String;
    type State = ();

    async fn handle(&mut self, _: &mut Context, (): ()) -> Result<String, ServiceError> {
        Ok(self.user.clone())
    }
}

/// Connects `user` to `node`: a session there, in the room.
fn connect(node: &Node, user: &str) -> Result<ServiceRef<Session>, Box<dyn std::error::Error>> {
    let name = user.to_owned();
    let session = node.processes().start_local(
        move || Session { user: name.clone() },
        ServiceOptions::default(),
    );
    node.registry().join(ROOM, &session)?;
    Ok(session)
}

/// The room's presence list as `node` sees it, sorted.
async fn online(node: &Node) -> Vec<String> {
    let mut users = Vec::new();
    for session in node.registry().members_of::<Session>(ROOM) {
        // A session whose node just died is listed until membership
        // declares the node down: it shows as unreachable until then.
        match session.call((), ASK).await {
            Ok(user) => users.push(user),
            Err(_) => users.push(format!("unreachable@{}", session.addr().node)),
        }
    }
    users.sort();
    users
}

/// Waits until every node in `nodes` lists exactly `expected`.
async fn until_all_see(nodes: &[&Node], expected: &[&str]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut agreed = true;
        for node in nodes {
            if online(node).await != expected {
                agreed = false;
            }
        }
        if agreed {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let mut seen = String::new();
            for node in nodes {
                seen.push_str(&format!("\n  {}: {:?}", node.name(), online(node).await));
            }
            return Err(format!("nodes do not list {expected:?} within 20 s:{seen}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = local_cluster("presence", 3).await?;
    let mut sessions = Vec::new();
    for (node, users) in nodes.iter().zip(USERS) {
        for user in users {
            sessions.push((node.name().to_owned(), user, connect(node, user)?));
        }
    }
    let mut everyone: Vec<&str> = USERS.iter().flatten().copied().collect();
    everyone.sort();
    until_all_see(&nodes.iter().collect::<Vec<_>>(), &everyone).await?;
    println!("online, as every node sees it: {}", everyone.join(", "));

    // The node hosting grace, heidi and ivan dies without a word.
    let dead = &nodes[2];
    dead.abort().await;
    let survivors = [&nodes[0], &nodes[1]];
    let mut left: Vec<&str> = USERS[..2].iter().flatten().copied().collect();
    left.sort();
    until_all_see(&survivors, &left).await?;
    println!("after {} died: {}", dead.name(), left.join(", "));

    // dave leaves the room on purpose.
    let (_, _, dave) = sessions
        .iter()
        .find(|(_, user, _)| *user == "dave")
        .ok_or("dave has a session")?;
    nodes[1].registry().leave(ROOM, dave);
    left.retain(|u| *u != "dave");
    until_all_see(&survivors, &left).await?;
    println!("after dave left: {}", left.join(", "));

    println!(
        "presence: {} online on every node; {} after a node died; {} after a user left",
        everyone.len(),
        USERS[..2].iter().flatten().count(),
        left.len()
    );
    let mut nodes = nodes;
    nodes.truncate(2);
    shutdown(nodes).await;
    Ok(())
}
