//! Discovery across real network stacks: `foundation node` processes in
//! network namespaces joined by a bridge (foundation-testkit's `Lab`).
//!
//! Needs root and iproute2; elsewhere each test prints why it skipped. All
//! traffic stays inside namespaces the lab creates.

use std::time::{Duration, Instant};

use foundation::{Member, MemberState};
use foundation_testkit::netns::Lab;

const BIN: &str = env!("CARGO_BIN_EXE_foundation");

fn lab_or_skip(hosts: usize) -> Option<Lab> {
    match Lab::new(hosts) {
        Ok(lab) => Some(lab),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

fn members(lab: &Lab, i: usize) -> Option<Vec<Member>> {
    let out = lab.run(i, BIN, &["status", "--json"]).ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn alive(lab: &Lab, i: usize) -> usize {
    members(lab, i)
        .map(|m| m.iter().filter(|m| m.state == MemberState::Alive).count())
        .unwrap_or(0)
}

/// Waits until hosts `0..n` each see `n` alive members.
fn wait_formed(lab: &Lab, n: usize) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while Instant::now() < deadline {
        if (0..n).all(|i| alive(lab, i) == n) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let views: Vec<_> = (0..lab.len()).map(|i| members(lab, i)).collect();
    panic!("no single cluster of {n} within 30 s: {views:?}");
}

/// `/metrics` of host `i` (python3 fetches it inside the namespace).
fn metrics(lab: &Lab, i: usize) -> String {
    let script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9090/metrics').read().decode())";
    let out = lab
        .run(i, "python3", &["-c", script])
        .expect("python3 in namespace");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn three_unconfigured_nodes_form_one_cluster_over_mdns_and_another_cluster_stays_out() {
    let Some(mut lab) = lab_or_skip(4) else {
        return;
    };
    let started = Instant::now();
    for i in 0..3 {
        lab.spawn(i, BIN, &["node"], &[]);
    }
    lab.spawn(
        3,
        BIN,
        &["node"],
        &[("FOUNDATION_CLUSTER_NAME", "someone-else")],
    );
    wait_formed(&lab, 3);
    eprintln!(
        "3 unconfigured nodes formed one cluster {:?} after start (includes process start)",
        started.elapsed()
    );
    // The other cluster's node stays alone, and nobody lists it.
    std::thread::sleep(Duration::from_secs(2));
    let outsider = members(&lab, 3).expect("outsider answers");
    assert_eq!(outsider.len(), 1, "outsider joined: {outsider:?}");
    for i in 0..3 {
        let m = members(&lab, i).expect("answers");
        assert_eq!(m.len(), 3, "node {i} lists {m:?}");
        assert!(
            m.iter()
                .all(|m| m.addr.ip().to_string().starts_with("10.213.0.")),
            "{m:?}"
        );
    }
}

#[test]
fn gossip_beacons_form_a_cluster_and_a_foreign_secret_is_dropped_and_counted() {
    let Some(mut lab) = lab_or_skip(4) else {
        return;
    };
    for i in 0..3 {
        lab.spawn(i, BIN, &["node"], &[("FOUNDATION_CLUSTER", "gossip")]);
    }
    // Same cluster name, another secret: its beacons fail authentication.
    lab.spawn(
        3,
        BIN,
        &["node"],
        &[
            ("FOUNDATION_CLUSTER", "gossip"),
            ("FOUNDATION_SECRET", "not-the-cluster-secret-000"),
        ],
    );
    wait_formed(&lab, 3);
    std::thread::sleep(Duration::from_secs(2));
    let outsider = members(&lab, 3).expect("outsider answers");
    assert_eq!(outsider.len(), 1, "outsider joined: {outsider:?}");
    for i in 0..3 {
        assert_eq!(members(&lab, i).expect("answers").len(), 3);
    }
    let text = metrics(&lab, 0);
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("foundation_discovery_messages_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-beacon counter in\n{text}"));
    assert!(dropped > 0, "forged beacons must be counted");
}

#[test]
fn bench_discovery_runs_and_reports_json() {
    if Lab::new(0).is_err() {
        eprintln!("SKIPPED: the discovery bench needs root (network namespaces)");
        return;
    }
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "discovery",
            "--nodes",
            "3",
            "--runs",
            "1",
            "--json",
        ])
        .output()
        .expect("run bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["nodes"], 3);
    assert!(v["converged_ms"]["samples"] == 1, "{v}");
}
