//! Zero-configuration discovery across real network stacks: `foundation
//! node` processes in network namespaces joined by a bridge, with no
//! configuration at all, must form one cluster through mDNS; a node of
//! another cluster on the same bridge must not join.
//!
//! Needs root and iproute2 (`ip netns`). Elsewhere it prints why it skipped.
//! Everything lives in namespaces this test creates (the bridge too, in a hub
//! namespace): no traffic touches the host's interfaces.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use foundation::{Member, MemberState};

const BIN: &str = env!("CARGO_BIN_EXE_foundation");

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces on a bridge; removed on drop.
struct Lab {
    prefix: String,
    hub: String,
    hosts: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn new(hosts: usize) -> Result<Lab, String> {
        static LABS: AtomicUsize = AtomicUsize::new(0);
        let k = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("fd{}{k}", std::process::id() % 100_000);
        let hub = format!("{prefix}h");
        let mut lab = Lab {
            prefix: prefix.clone(),
            hub: hub.clone(),
            hosts: Vec::new(),
            children: Vec::new(),
        };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{prefix}n{i}");
            let (inner, outer) = (format!("{prefix}a{i}"), format!("{prefix}b{i}"));
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(ns.clone());
            ip(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "netns", &hub])?;
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
            let addr = format!("10.213.0.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(lab)
    }

    /// Starts `foundation node` in host `i` with these environment variables
    /// and nothing else configured.
    fn start(&mut self, i: usize, env: &[(&str, &str)]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i], BIN, "node"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.children
            .push(cmd.spawn().expect("spawn node in namespace"));
    }

    fn members(&self, i: usize) -> Option<Vec<Member>> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], BIN, "status", "--json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// `/metrics` of host `i` (python3 fetches it inside the namespace).
    fn metrics(&self, i: usize) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], "python3", "-c"])
            .arg("import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9090/metrics').read().decode())")
            .output()
            .expect("python3 in namespace");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until hosts `0..n` each see `n` alive members.
    fn wait_formed(&self, n: usize) -> Duration {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        while Instant::now() < deadline {
            if (0..n).all(|i| self.alive(i) == n) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let views: Vec<_> = (0..self.hosts.len()).map(|i| self.members(i)).collect();
        panic!("no single cluster of {n} within 30 s: {views:?}");
    }

    fn alive(&self, i: usize) -> usize {
        self.members(i)
            .map(|m| m.iter().filter(|m| m.state == MemberState::Alive).count())
            .unwrap_or(0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.hosts.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "delete", ns]);
        }
        let _ = &self.prefix;
    }
}

fn lab_or_skip(hosts: usize) -> Option<Lab> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        eprintln!("SKIPPED: network-namespace test needs root (ip netns); run as root or in CI");
        return None;
    }
    match Lab::new(hosts) {
        Ok(lab) => Some(lab),
        Err(e) => {
            eprintln!("SKIPPED: cannot build network namespaces here: {e}");
            None
        }
    }
}

#[test]
fn three_unconfigured_nodes_form_one_cluster_over_mdns_and_another_cluster_stays_out() {
    let Some(mut lab) = lab_or_skip(4) else {
        return;
    };
    let started = Instant::now();
    for i in 0..3 {
        lab.start(i, &[]);
    }
    lab.start(3, &[("FOUNDATION_CLUSTER_NAME", "someone-else")]);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut formed = None;
    while Instant::now() < deadline {
        if (0..3).all(|i| lab.alive(i) == 3) {
            formed = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let views: Vec<_> = (0..4).map(|i| lab.members(i)).collect();
    let formed = formed.unwrap_or_else(|| panic!("no single cluster of 3 within 30 s: {views:?}"));
    eprintln!(
        "3 unconfigured nodes formed one cluster {formed:?} after start (includes process start)"
    );

    // The other cluster's node stays alone, and nobody lists it.
    std::thread::sleep(Duration::from_secs(2));
    let outsider = lab.members(3).expect("outsider answers");
    assert_eq!(outsider.len(), 1, "outsider joined: {outsider:?}");
    for i in 0..3 {
        let m = lab.members(i).expect("answers");
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
        lab.start(i, &[("FOUNDATION_CLUSTER", "gossip")]);
    }
    // Same cluster name, another secret: its beacons fail authentication.
    lab.start(
        3,
        &[
            ("FOUNDATION_CLUSTER", "gossip"),
            ("FOUNDATION_SECRET", "not-the-cluster-secret-000"),
        ],
    );
    let formed = lab.wait_formed(3);
    eprintln!("3 gossip nodes formed one cluster {formed:?} after they answered");
    std::thread::sleep(Duration::from_secs(2));
    let outsider = lab.members(3).expect("outsider answers");
    assert_eq!(outsider.len(), 1, "outsider joined: {outsider:?}");
    for i in 0..3 {
        assert_eq!(lab.members(i).expect("answers").len(), 3);
    }
    let metrics = lab.metrics(0);
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("foundation_discovery_messages_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-beacon counter in\n{metrics}"));
    assert!(dropped > 0, "forged beacons must be counted");
}
