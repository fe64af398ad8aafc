//! A periodic job that runs on exactly one node: the elected leader.
//!
//! Every node campaigns in the election `nightly-report` (Raft
//! coordination, `node.coord()`). The winner runs the job every 100 ms and
//! stamps each run with its fencing token into the linearizable key-value
//! store, refusing to write over a run stamped with a newer token (a
//! compare-and-set on the key's revision). When the leader's node dies,
//! another node wins once the dead node's session is gone, and carries on.
//! The example checks that the runs' tokens never go back and that no two
//! leaders ran at once.
//!
//! ```sh
//! cargo run -p foundation-examples --example leader_job
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::coord::{Expect, Revision};
use foundation::Node;
use foundation_examples::{local_cluster, shutdown};

const ELECTION: &str = "nightly-report";
const LAST_RUN: &str = "jobs/nightly-report/last";
const EVERY: Duration = Duration::from_millis(100);
/// Runs the first leader does before its node dies.
const RUNS_BEFORE_CRASH: usize = 15;
/// Runs in all.
const RUNS: usize = 30;

/// One run of the job: who ran it, under which token, in which order.
#[derive(Clone, Debug)]
struct Run {
    node: String,
    token: Revision,
}

/// Campaigns until this node leads, then runs the job until it loses the
/// leadership (or its node stops).
async fn campaign(node: Node, runs: Arc<Mutex<Vec<Run>>>) {
    let coord = node.coord();
    loop {
        let Ok(mut leadership) = coord.campaign(ELECTION).await else {
            if node.raw().membership().is_stopped() {
                return;
            }
            tokio::time::sleep(EVERY).await;
            continue;
        };
        let token = leadership.token();
        println!(
            "{} leads {ELECTION} with fencing token {token}",
            node.name()
        );
        loop {
            tokio::select! {
                () = leadership.lost() => break,
                () = tokio::time::sleep(EVERY) => {}
            }
            if !leadership.is_leader() || run_once(&node, token).await.is_err() {
                break;
            }
            runs.lock().expect("runs").push(Run {
                node: node.name().to_owned(),
                token,
            });
        }
        println!("{} no longer leads", node.name());
    }
}

/// The job: record this run, unless a newer leader already has.
async fn run_once(node: &Node, token: Revision) -> Result<(), String> {
    let kv = node.coord();
    let current = kv.get(LAST_RUN).await.map_err(|e| e.to_string())?;
    let expect = match &current {
        Some(entry) => {
            let stamped: Revision = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| s.split(' ').next()?.parse().ok())
                .unwrap_or(0);
            if stamped > token {
                return Err(format!("a newer leader (token {stamped}) has run"));
            }
            Expect::Revision(entry.modified)
        }
        None => Expect::Absent,
    };
    let value = format!("{token} {}", node.name());
    kv.put_if(LAST_RUN, value, expect)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = local_cluster("leader", 3).await?;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for node in &nodes {
        tasks.push(tokio::spawn(campaign(node.clone(), runs.clone())));
    }
    let count = || runs.lock().map(|r| r.len()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count() < RUNS_BEFORE_CRASH {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {} runs within 60 s", count()).into());
        }
        tokio::time::sleep(EVERY).await;
    }
    let first = runs.lock().map_err(|_| "runs")?[0].clone();
    let leader = nodes
        .iter()
        .position(|n| n.name() == first.node)
        .ok_or("the leader is one of the nodes")?;
    println!("{} dies", nodes[leader].name());
    nodes[leader].abort().await;
    while count() < RUNS {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("only {} runs within 60 s", count()).into());
        }
        tokio::time::sleep(EVERY).await;
    }
    for t in &tasks {
        t.abort();
    }
    let runs = runs.lock().map_err(|_| "runs")?.clone();
    // Tokens never go back: once a newer leader ran, an older one never
    // runs again (no two leaders at once).
    if let Some(w) = runs.windows(2).find(|w| w[1].token < w[0].token) {
        return Err(format!(
            "{} ran with token {} after {} ran with {}",
            w[1].node, w[1].token, w[0].node, w[0].token
        )
        .into());
    }
    let mut leaders: Vec<(String, Revision)> = Vec::new();
    for r in &runs {
        if leaders.last().map(|l| l.1) != Some(r.token) {
            leaders.push((r.node.clone(), r.token));
        }
    }
    if leaders.len() < 2 || leaders.iter().skip(1).any(|l| l.0 == first.node) {
        return Err(format!("the job did not move off the dead node: {leaders:?}").into());
    }
    let kv = nodes[(leader + 1) % nodes.len()].coord();
    let last = kv.get(LAST_RUN).await?.ok_or("the last run is recorded")?;
    println!(
        "leader job: {} runs by {} leaders ({}), fencing tokens never went back; last run recorded: {}",
        runs.len(),
        leaders.len(),
        leaders
            .iter()
            .map(|(n, t)| format!("{n} with token {t}"))
            .collect::<Vec<_>>()
            .join(", then "),
        String::from_utf8_lossy(&last.value)
    );
    let survivors: Vec<Node> = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n)
        .collect();
    shutdown(survivors).await;
    Ok(())
}
