//! Discovery and chaos across real network stacks: `foundation node`
//! processes in network namespaces joined by a bridge (foundation-testkit's
//! `Lab`): blackhole-route partitions, SIGSTOP/SIGCONT, random loss with
//! nftables, and a wrong-secret node trying to join throughout.
//!
//! Needs root and iproute2 (and nftables for the loss test); elsewhere each
//! test prints why it skipped. All traffic stays inside namespaces the lab
//! creates.

use std::time::{Duration, Instant};

use foundation_testkit::netns::Lab;
use foundation_testkit::skip::skip;
use lab::{active, alive, http_body, lab_or_skip, members, own_id, wait_formed, wait_until, BIN};

mod lab;

/// The delay line standing in for `tc netem delay` (no netem here).
const NETDELAY: &str = env!("CARGO_BIN_EXE_foundation-netdelay");

/// Whether the tools for loss and latency are installed; says what is
/// missing otherwise.
fn loss_and_latency_tools() -> bool {
    for (tool, arg) in [("nft", "--version"), ("iptables-legacy", "--version")] {
        if std::process::Command::new(tool).arg(arg).output().is_err() {
            skip(&format!("{tool} is not installed; .ci/run installs it"));
            return false;
        }
    }
    true
}

/// `/metrics` of host `i` (python3 fetches it inside the namespace).
fn metrics(lab: &Lab, i: usize) -> String {
    let script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9090/metrics').read().decode())";
    let out = lab
        .run(i, "python3", &["-c", script])
        .expect("python3 in namespace");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// mDNS alone: what proves the mDNS strategy itself works.
#[test]
fn three_unconfigured_nodes_form_one_cluster_over_mdns_and_another_cluster_stays_out() {
    unconfigured_nodes_form_and_another_cluster_stays_out(&[(
        "FOUNDATION_GOSSIP_WITH_MDNS",
        "false",
    )]);
}

/// The default: mDNS and gossip beacons at once.
#[test]
fn three_unconfigured_nodes_form_over_mdns_with_beacons_and_another_cluster_stays_out() {
    unconfigured_nodes_form_and_another_cluster_stays_out(&[]);
}

fn unconfigured_nodes_form_and_another_cluster_stays_out(env: &[(&str, &str)]) {
    let Some(mut lab) = lab_or_skip(4) else {
        return;
    };
    let started = Instant::now();
    for i in 0..3 {
        lab.spawn(i, BIN, &["node"], env);
    }
    let mut outsider = env.to_vec();
    outsider.push(("FOUNDATION_CLUSTER_NAME", "someone-else"));
    lab.spawn(3, BIN, &["node"], &outsider);
    wait_formed(&lab, 3);
    eprintln!(
        "3 unconfigured nodes ({env:?}) formed one cluster {:?} after start (includes process start)",
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
        skip("the discovery bench needs root (network namespaces)");
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

/// The node id holding `name` in host `i`'s registry view.
fn holder(lab: &Lab, i: usize, name: &str) -> Option<foundation::NodeId> {
    let body = http_body(lab, i, "/registry")?;
    let snap: foundation::registry::RegistrySnapshot = serde_json::from_str(&body).ok()?;
    snap.entries
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.service.node)
}

#[test]
fn a_two_three_partition_heals_into_one_cluster_with_one_singleton() {
    let Some(mut lab) = lab_or_skip(6) else {
        return;
    };
    // Static seeds, one on each side of the coming partition, and a
    // wrong-secret node trying to join throughout.
    let ids = chaos_cluster(&mut lab, 5);

    lab.partition(&[0, 1], &[2, 3, 4]).expect("partition");
    let split = Instant::now();
    wait_until(
        "each side sees only itself",
        Duration::from_secs(20),
        || alive(&lab, 0) == 2 && alive(&lab, 2) == 3,
    );
    // The majority runs exactly one; the minority runs none.
    wait_until(
        "the singleton on the majority side only",
        Duration::from_secs(20),
        || {
            let majority: Vec<_> = (2..5).map(|i| holder(&lab, i, "chaos")).collect();
            let minority: Vec<_> = (0..2).map(|i| holder(&lab, i, "chaos")).collect();
            majority[0].is_some_and(|h| ids[2..].contains(&h))
                && majority.iter().all(|x| *x == majority[0])
                && minority.iter().all(|x| x.is_none())
        },
    );
    let rest = Duration::from_secs(10).saturating_sub(split.elapsed());
    std::thread::sleep(rest);

    lab.heal();
    let reconverged = wait_until(
        "one cluster and one holder after the heal",
        Duration::from_secs(30),
        || {
            (0..5).all(|i| alive(&lab, i) == 5) && {
                let h: Vec<_> = (0..5).map(|i| holder(&lab, i, "chaos")).collect();
                h[0].is_some() && h.iter().all(|x| *x == h[0])
            }
        },
    );
    outsider_kept_out(&lab, 5, 5);
    eprintln!("2|3 partition for 10 s healed: one membership view and one singleton holder {reconverged:?} after the heal (polled every 100 ms, includes the status calls)");
}

/// Starts `n` nodes with static seeds (hosts 0 and 2) running singleton
/// `chaos`, plus, in host `n`, a node with the same cluster name and seeds
/// but another secret; waits for one cluster with one holder and a view
/// stable long enough for keep-majority to count everyone.
/// Starts a chaos-cluster member in host `i` with `extra` flags (closing
/// its standard input makes it leave gracefully).
fn spawn_member(lab: &mut Lab, i: usize, extra: &[String], env: &[(&str, &str)]) {
    let seeds = format!("{}:7946,{}:7946", Lab::addr(0), Lab::addr(2));
    let mut args: Vec<&str> = vec![
        "node",
        "--cluster",
        "static",
        "--seeds",
        &seeds,
        "--singleton",
        "chaos",
        "--stop-on-stdin-eof",
    ];
    args.extend(extra.iter().map(String::as_str));
    lab.spawn(i, BIN, &args, env);
}

fn chaos_cluster(lab: &mut Lab, n: usize) -> Vec<foundation::NodeId> {
    chaos_cluster_with(lab, n, |_| Vec::new())
}

/// [`chaos_cluster`], host `i` started with the flags `extra(i)`.
fn chaos_cluster_with(
    lab: &mut Lab,
    n: usize,
    extra: impl Fn(usize) -> Vec<String>,
) -> Vec<foundation::NodeId> {
    for i in 0..n {
        spawn_member(lab, i, &extra(i), &[]);
    }
    spawn_member(
        lab,
        n,
        &[],
        &[("FOUNDATION_SECRET", "not-the-cluster-secret-000")],
    );
    wait_formed(lab, n);
    let ids: Vec<_> = (0..n).map(|i| own_id(lab, i).expect("id")).collect();
    wait_until("one holder everywhere", Duration::from_secs(30), || {
        one_holder(lab, 0..n).is_some()
    });
    std::thread::sleep(Duration::from_secs(4));
    ids
}

/// The holder of `chaos` if every host in `hosts` names the same one.
fn one_holder(lab: &Lab, hosts: std::ops::Range<usize>) -> Option<foundation::NodeId> {
    let h: Vec<_> = hosts.map(|i| holder(lab, i, "chaos")).collect();
    h[0].filter(|first| h.iter().all(|x| x == &Some(*first)))
}

/// The wrong-secret node in host `outsider` is in nobody's view, and sees
/// nobody.
fn outsider_kept_out(lab: &Lab, n: usize, outsider: usize) {
    let alone = members(lab, outsider).expect("outsider answers");
    assert_eq!(alone.len(), 1, "the outsider sees {alone:?}");
    let its_id = alone[0].id;
    for i in 0..n {
        if let Some(view) = members(lab, i) {
            assert!(
                view.iter().all(|m| m.id != its_id),
                "host {i} admitted the wrong-secret node: {view:?}"
            );
        }
    }
}

#[test]
fn a_singleton_host_stopped_5_s_then_continued_leaves_one_holder_and_no_outsider() {
    let Some(mut lab) = lab_or_skip(6) else {
        return;
    };
    let n = 5;
    let ids = chaos_cluster(&mut lab, n);
    let first = one_holder(&lab, 0..n).expect("holder");
    let h = ids
        .iter()
        .position(|id| *id == first)
        .expect("holder is a host");
    let others: Vec<usize> = (0..n).filter(|i| *i != h).collect();

    lab.signal(h, "STOP").expect("SIGSTOP");
    let stopped = Instant::now();
    let failover = wait_until(
        "the four others agree on a new holder",
        Duration::from_secs(20),
        || {
            let hs: Vec<_> = others.iter().map(|i| holder(&lab, *i, "chaos")).collect();
            hs[0].is_some_and(|x| x != first) && hs.iter().all(|x| *x == hs[0])
        },
    );
    outsider_kept_out(&lab, n, n);
    std::thread::sleep(Duration::from_secs(5).saturating_sub(stopped.elapsed()));

    lab.signal(h, "CONT").expect("SIGCONT");
    let settled = wait_until(
        "one view of five and one holder after SIGCONT",
        Duration::from_secs(30),
        || (0..n).all(|i| alive(&lab, i) == n) && one_holder(&lab, 0..n).is_some(),
    );
    // Placement is by node id, so the singleton may move back to the
    // resumed node (with a handoff); what must hold is one holder, the same
    // in all five views, and still the same a few seconds later.
    let settled_on = one_holder(&lab, 0..n).expect("holder");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        one_holder(&lab, 0..n),
        Some(settled_on),
        "the holder changed or split after settling"
    );
    outsider_kept_out(&lab, n, n);
    eprintln!("SIGSTOP of the singleton's host: new holder agreed by the others {failover:?} after the stop; after SIGCONT one view and one holder within {settled:?} (polled every 100 ms, includes the status calls)");
}

#[test]
fn ten_percent_loss_and_50_ms_latency_for_30_s_under_pubsub_keeps_order_one_holder_and_reconverges()
{
    let Some(mut lab) = lab_or_skip(6) else {
        return;
    };
    if !loss_and_latency_tools() {
        return;
    }
    let n = 5;
    // Host 1 publishes every 10 ms; every host counts what arrives.
    let dir = tempfile::tempdir().expect("report dir");
    let report = |i: usize| dir.path().join(format!("host{i}.json"));
    chaos_cluster_with(&mut lab, n, |i| {
        let mut flags = vec![
            "--subscribe".to_owned(),
            "chaos-events".to_owned(),
            "--report".to_owned(),
            report(i).display().to_string(),
        ];
        if i == 1 {
            flags.extend(["--publish".to_owned(), "chaos-events".to_owned()]);
        }
        flags
    });
    let before_loss = published(&report(1));
    for i in 0..n {
        lab.lossy(i, 10).expect("nftables loss rule");
        lab.delayed(i, NETDELAY, Duration::from_millis(50), Duration::ZERO)
            .expect("delay line");
    }
    let started = Instant::now();
    let (mut polls, mut missing, mut suspected, mut two_holders) = (0u32, 0u32, 0u32, 0u32);
    while started.elapsed() < Duration::from_secs(30) {
        polls += 1;
        if !(0..n).all(|i| active(&lab, i) == n) {
            missing += 1;
        }
        if !(0..n).all(|i| alive(&lab, i) == n) {
            suspected += 1;
        }
        let named: std::collections::BTreeSet<_> =
            (0..n).filter_map(|i| holder(&lab, i, "chaos")).collect();
        if named.len() > 1 {
            two_holders += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 0..n {
        lab.clear_loss(i);
        lab.clear_delay(i);
    }
    let settled = wait_until(
        "one view and one holder once the loss ends",
        Duration::from_secs(30),
        || (0..n).all(|i| alive(&lab, i) == n) && one_holder(&lab, 0..n).is_some(),
    );
    outsider_kept_out(&lab, n, n);
    let after_loss = published(&report(1));
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..n {
        lab.stop(i);
    }
    // Pub/sub is at most once and in order: nothing twice, nothing out of
    // order; what was lost is the delivery ratio (messages for a host
    // while some node counted it down).
    let publisher = read_report(&report(1))["node"]
        .as_str()
        .expect("publisher id")
        .to_owned();
    let (mut got, mut due) = (0u64, 0u64);
    for i in (0..n).filter(|i| *i != 1) {
        let r = &read_report(&report(i))["received"][&publisher];
        let (count, first, last) = (field(r, "count"), field(r, "first"), field(r, "last"));
        assert_eq!(field(r, "out_of_order"), 0, "host {i}: {r}");
        assert!(
            first <= before_loss,
            "host {i} got nothing before the loss: {r}"
        );
        assert!(
            last > after_loss,
            "host {i} got nothing after the loss ended: {r}"
        );
        got += count;
        due += last - first + 1;
    }
    eprintln!("10% loss and 50 ms latency on every host for 30 s: {missing}/{polls} polls saw a host missing a member, {suspected}/{polls} a host without all five alive (suspect counted), {two_holders}/{polls} two holders named; one view and one holder {settled:?} after the loss ended; pub/sub (host 1 every 10 ms to 4 other hosts): {got}/{due} delivered = {:.4}, 0 out of order or twice", got as f64 / due as f64);
    // With the default timings (issue 22): no host ever dropped a member.
    assert_eq!(
        missing, 0,
        "{missing}/{polls} polls saw a host missing a member"
    );
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report {}: {e}", path.display()))
}

fn field(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// How many messages the publisher whose report is at `path` has sent.
fn published(path: &std::path::Path) -> u64 {
    wait_until("a publisher report", Duration::from_secs(10), || {
        path.exists()
    });
    field(&read_report(path), "published")
}

/// Every process restarted in turn (graceful stop, then a new process in
/// the same host) while each adds 1 to the `chaos` counter singleton every
/// 20 ms: the counter's total at the end is at least the sum of the calls
/// acknowledged over every process's life (no handoff lost state) and at
/// most the sum attempted (nothing applied twice).
#[test]
fn a_rolling_restart_of_every_process_loses_no_singleton_state() {
    let Some(mut lab) = lab_or_skip(6) else {
        return;
    };
    let n = 5;
    let dir = tempfile::tempdir().expect("report dir");
    // The gate opens once the cluster has formed with one holder: while
    // five processes that started at once still have partial views, each
    // may run the singleton for a moment (conflict resolution then stops
    // all but one, and what the others acknowledged is gone). That is the
    // split-brain of a formation, not a restart.
    let go = dir.path().join("go");
    let load = |report: std::path::PathBuf| {
        vec![
            "--call-singleton".to_owned(),
            "chaos".to_owned(),
            "--call-while".to_owned(),
            go.display().to_string(),
            "--report".to_owned(),
            report.display().to_string(),
        ]
    };
    let report = |i: usize, life: usize| dir.path().join(format!("host{i}-{life}.json"));
    chaos_cluster_with(&mut lab, n, |i| load(report(i, 0)));
    std::fs::write(&go, b"").expect("gate file");
    let mut back = Vec::new();
    for i in 0..n {
        lab.stop(i);
        spawn_member(&mut lab, i, &load(report(i, 1)), &[]);
        let t = wait_until(
            "the restarted process in every view, one holder",
            Duration::from_secs(30),
            || (0..n).all(|j| alive(&lab, j) == n) && one_holder(&lab, 0..n).is_some(),
        );
        back.push(t.as_millis());
        std::thread::sleep(Duration::from_secs(2));
    }
    outsider_kept_out(&lab, n, n);
    // Stop calling, let the last calls finish, then read every life's report.
    std::fs::remove_file(&go).expect("close the gate");
    std::thread::sleep(Duration::from_secs(3));
    let reports: Vec<serde_json::Value> = (0..n)
        .flat_map(|i| [report(i, 0), report(i, 1)])
        .map(|p| read_report(&p))
        .collect();
    let sum = |key: &str| -> u64 { reports.iter().map(|r| field(&r["calls"], key)).sum() };
    let (acked, attempted, failed) = (sum("acked"), sum("attempted"), sum("failed"));
    let total = reports
        .iter()
        .map(|r| field(&r["calls"], "last_total"))
        .max()
        .unwrap_or(0);
    for i in 0..n {
        lab.stop(i);
    }
    assert!(acked > 1000, "the load ran: {acked} calls acknowledged");
    assert!(
        total >= acked,
        "state lost: the counter ended at {total}, {acked} additions were acknowledged"
    );
    assert!(
        total <= attempted,
        "additions applied twice: the counter ended at {total}, {attempted} were attempted"
    );
    eprintln!("rolling restart of 5 processes: back in every view with one holder after {back:?} ms; counter {total}, acknowledged {acked}, attempted {attempted}, failed {failed}");
}

/// The delay line adds what it is told to: a UDP round trip between two
/// hosts that both delay by 50 ms takes at least 100 ms (a lower bound:
/// nothing can arrive early), and the rule's removal takes it away.
#[test]
fn the_delay_line_delays_every_packet_a_host_sends() {
    let Some(mut lab) = lab_or_skip(2) else {
        return;
    };
    if !loss_and_latency_tools() {
        return;
    }
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',9999))\nwhile True:\n d,a=s.recvfrom(64)\n s.sendto(d,a)";
    lab.spawn(0, "python3", &["-c", echo], &[]);
    let probe = format!(
        "import socket,time\nc=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nc.settimeout(2)\nr=[]\nfor i in range(10):\n t=time.monotonic()\n c.sendto(b'x',('{}',9999))\n c.recvfrom(64)\n r.append((time.monotonic()-t)*1000)\nprint(min(r),sorted(r)[5])",
        Lab::addr(0)
    );
    let rtt = |lab: &Lab| two_numbers(lab, 1, &probe);
    let before = rtt(&lab);
    for i in 0..2 {
        lab.delayed(i, NETDELAY, Duration::from_millis(50), Duration::ZERO)
            .expect("delay line");
    }
    // The rule passes packets undelayed until the program has bound the
    // queue: wait until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut during = rtt(&lab);
    while during.0 < 100.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        during = rtt(&lab);
    }
    assert!(
        during.0 >= 100.0,
        "round trip with 50 ms each way: {during:?} ms"
    );
    for i in 0..2 {
        lab.clear_delay(i);
    }
    let after = rtt(&lab);
    // Jitter reorders: host 1 sends 200 numbered datagrams at once with
    // 1 ms + up to 20 ms of delay; the echoes come back in another order,
    // all of them.
    lab.delayed(
        1,
        NETDELAY,
        Duration::from_millis(1),
        Duration::from_millis(20),
    )
    .expect("delay line");
    let burst = format!(
        "import socket\nc=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nc.settimeout(3)\nfor i in range(200):\n c.sendto(str(i).encode(),('{}',9999))\ng=[]\ntry:\n while len(g)<200:\n  d,_=c.recvfrom(64)\n  g.append(int(d))\nexcept socket.timeout:\n pass\nprint(len(g),sum(1 for a,b in zip(g,g[1:]) if a>b))",
        Lab::addr(0)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (got, inversions) = loop {
        let (got, inversions) = two_numbers(&lab, 1, &burst);
        if inversions > 0.0 || Instant::now() >= deadline {
            break (got as u64, inversions as u64);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(got, 200, "jitter loses nothing");
    assert!(
        inversions > 0,
        "200 datagrams with 20 ms of jitter kept their order"
    );
    eprintln!("UDP round trip between two hosts (min, median of 10): {before:?} ms; with 50 ms delay on both: {during:?} ms; after removing it: {after:?} ms; 200 datagrams with 1 ms + 0-20 ms jitter: {got} back, {inversions} adjacent pairs out of order");
}

/// Runs the Python `script` in host `i` until it prints two numbers (the
/// delay line may not serve its queue yet, an echo may be lost); panics
/// after 10 s.
fn two_numbers(lab: &Lab, i: usize, script: &str) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = lab.run(i, "python3", &["-c", script]).expect("python3");
        let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [a, b] = v[..] {
            return (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "no result from the probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
