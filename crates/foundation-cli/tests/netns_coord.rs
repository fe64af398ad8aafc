//! Coordination across real processes in network namespaces: `foundation
//! node` processes run counter and lock clients (`--coord-counter`,
//! `--coord-lock`) and write their histories to report files; the tests cut
//! the network or kill every process, and check what the clients saw.
//!
//! - A leader cut off from the majority: a new leader is elected on the
//!   majority side; the old leader's clients get errors, never an
//!   acknowledged write or a lock; after healing, every history together is
//!   linearizable and no two processes held the lock at once.
//! - Every process killed at once and restarted on durable storage: no
//!   acknowledged add is lost.
//!
//! The processes share this machine's clock, so their histories merge.
//! Needs root and iproute2; elsewhere each test prints why it skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foundation::NodeId;
use foundation_testkit::exclusion::{self, Holding};
use foundation_testkit::linearizability::{check, Counter, CounterCall, Op};
use foundation_testkit::netns::Lab;
use lab::{http_body, lab_or_skip, own_id, wait_formed, wait_until, BIN};
use serde::Deserialize;

mod lab;

#[derive(Debug, Deserialize)]
struct Report {
    coord: CoordReport,
}

#[derive(Debug, Deserialize)]
struct CoordReport {
    ops: Vec<CounterOp>,
    holdings: Vec<Held>,
}

#[derive(Debug, Clone, Deserialize)]
struct CounterOp {
    call: String,
    invoked_us: u64,
    returned_us: Option<u64>,
    outcome: String,
    value: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Held {
    token: u64,
    from_us: u64,
    to_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A directory for this test's reports and data, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("foundation-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn spawn_coord(lab: &mut Lab, i: usize, report: &Path, lock: bool, env: &[(&str, &str)]) {
    let seeds = format!("{}:7946,{}:7946", Lab::addr(0), Lab::addr(1));
    let report = report.display().to_string();
    let mut args = vec![
        "node",
        "--cluster",
        "static",
        "--seeds",
        &seeds,
        "--coord-counter",
        "ctr",
        "--report",
        &report,
        "--stop-on-stdin-eof",
    ];
    if lock {
        args.extend(["--coord-lock", "lk"]);
    }
    lab.spawn(i, BIN, &args, env);
}

fn read_report(path: &Path) -> Option<Report> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Host `i`'s view of coordination: the leader and how many vote.
fn coord_view(lab: &Lab, i: usize) -> Option<(Option<NodeId>, usize)> {
    let v: serde_json::Value = serde_json::from_str(&http_body(lab, i, "/coord")?).ok()?;
    let leader = serde_json::from_value(v["leader"].clone()).ok()?;
    Some((leader, v["voters"].as_array()?.len()))
}

/// The leader hosts `hosts` agree on, with three voters.
fn agreed_leader(lab: &Lab, hosts: &[usize]) -> Option<NodeId> {
    let views: Vec<_> = hosts.iter().map(|&i| coord_view(lab, i)).collect();
    match views[0] {
        Some((Some(l), 3)) if views.iter().all(|v| *v == views[0]) => Some(l),
        _ => None,
    }
}

fn acked(report: &Report, after_us: u64) -> usize {
    report
        .coord
        .ops
        .iter()
        .filter(|o| o.outcome == "ok" && o.invoked_us > after_us)
        .count()
}

/// The counter operations of every report as one history for the checker:
/// failed operations changed nothing and are left out; those of unknown
/// outcome may have taken effect at any point after their invocation.
fn history(reports: &[Report]) -> Vec<Op<CounterCall, i64>> {
    let mut ops = Vec::new();
    for r in reports {
        for o in &r.coord.ops {
            if o.outcome == "failed" {
                continue;
            }
            let call = if o.call == "add" {
                CounterCall::Add(1)
            } else {
                CounterCall::Read
            };
            ops.push(Op {
                invoked: o.invoked_us,
                returned: o.returned_us.filter(|_| o.outcome == "ok"),
                call,
                answer: o.value.unwrap_or(0),
            });
        }
    }
    ops
}

#[test]
fn a_leader_cut_off_from_the_majority_is_replaced_and_its_clients_get_errors_not_stale_answers() {
    const HOSTS: usize = 5;
    let Some(mut lab) = lab_or_skip(HOSTS) else {
        return;
    };
    let dir = scratch("coord-cut");
    let paths: Vec<PathBuf> = (0..HOSTS)
        .map(|i| dir.join(format!("host{i}.json")))
        .collect();
    for (i, path) in paths.iter().enumerate() {
        spawn_coord(&mut lab, i, path, true, &[]);
    }
    wait_formed(&lab, HOSTS);
    let ids: Vec<NodeId> = (0..HOSTS).map(|i| own_id(&lab, i).expect("id")).collect();
    let all: Vec<usize> = (0..HOSTS).collect();
    let mut leader = None;
    wait_until(
        "one coordination leader, three voters, seen by all",
        Duration::from_secs(30),
        || {
            leader = agreed_leader(&lab, &all);
            leader.is_some()
        },
    );
    wait_until("every client acknowledged", Duration::from_secs(30), || {
        paths
            .iter()
            .all(|p| read_report(p).is_some_and(|r| acked(&r, 0) >= 5))
    });
    std::thread::sleep(Duration::from_secs(2));

    let old = ids
        .iter()
        .position(|id| Some(*id) == leader)
        .expect("the leader is a host");
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    lab.partition(&[old], &rest).expect("partition");
    let cut_us = now_us();
    let cut = Instant::now();
    let mut new_leader = None;
    let took = wait_until(
        "a new leader on the majority side",
        Duration::from_secs(20),
        || {
            new_leader = coord_view(&lab, rest[0])
                .and_then(|(l, _)| l)
                .filter(|l| rest.iter().any(|&i| ids[i] == *l));
            new_leader.is_some()
        },
    );
    eprintln!("the majority side has a new leader {took:?} after the cut");
    // Longer than a session's time to live (3 s): a lock the old side held
    // is granted again on the majority side.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(cut.elapsed()));
    // Before healing: the routes come back one host at a time.
    let heal_us = now_us();
    lab.heal();
    wait_until(
        "the old leader's clients acknowledged again",
        Duration::from_secs(40),
        || read_report(&paths[old]).is_some_and(|r| acked(&r, heal_us) >= 3),
    );
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..HOSTS {
        lab.stop(i);
    }
    let reports: Vec<Report> = paths
        .iter()
        .map(|p| read_report(p).expect("final report"))
        .collect();

    // The old leader's side: errors only while cut off.
    let cut_off = &reports[old].coord;
    let tried: Vec<&CounterOp> = cut_off
        .ops
        .iter()
        .filter(|o| o.invoked_us > cut_us && o.invoked_us < heal_us)
        .collect();
    assert!(!tried.is_empty(), "the cut-off client tried nothing");
    let stale: Vec<&&CounterOp> = tried
        .iter()
        .filter(|o| o.call == "add" && o.outcome == "ok")
        .collect();
    assert!(
        stale.is_empty(),
        "adds acknowledged on the cut-off side: {stale:?}"
    );
    // A grant that committed just before the cut may return just after.
    let granted: Vec<&Held> = cut_off
        .holdings
        .iter()
        .filter(|h| h.from_us > cut_us + 500_000 && h.from_us < heal_us)
        .collect();
    assert!(
        granted.is_empty(),
        "locks granted on the cut-off side: {granted:?}"
    );

    // The majority side went on.
    let later = |r: &Report| {
        r.coord
            .ops
            .iter()
            .filter(|o| o.outcome == "ok" && o.invoked_us > cut_us && o.invoked_us < heal_us)
            .count()
    };
    let progress: usize = rest.iter().map(|&i| later(&reports[i])).sum();
    assert!(
        progress > 10,
        "the majority side acknowledged only {progress} operations while cut"
    );

    let ops = history(&reports);
    if let Err(e) = check(&Counter(0), &ops) {
        panic!("the counter's history over every process is not linearizable: {e}\n{ops:?}");
    }
    let mut holdings: Vec<Holding> = reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.coord.holdings.iter().map(move |h| Holding {
                holder: i,
                token: h.token,
                from: h.from_us,
                to: h.to_us,
            })
        })
        .collect();
    let held = holdings.len();
    if let Err(e) = exclusion::check(&mut holdings) {
        panic!("the lock was not exclusive: {e}");
    }
    assert!(held > 10, "only {held} lock holdings");
    eprintln!(
        "{} counter operations linearizable, {held} lock holdings exclusive; \
         the cut-off client failed {} operations",
        ops.len(),
        tried.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_process_killed_and_restarted_on_durable_storage_loses_no_acknowledged_add() {
    const HOSTS: usize = 3;
    let Some(mut lab) = lab_or_skip(HOSTS) else {
        return;
    };
    let dir = scratch("coord-durable");
    let data: Vec<String> = (0..HOSTS)
        .map(|i| dir.join(format!("host{i}.coord")).display().to_string())
        .collect();
    let run = |lab: &mut Lab, round: usize| -> Vec<PathBuf> {
        let paths: Vec<PathBuf> = (0..HOSTS)
            .map(|i| dir.join(format!("round{round}-host{i}.json")))
            .collect();
        for (i, path) in paths.iter().enumerate() {
            let env = [
                ("FOUNDATION_COORD_STORAGE", "durable"),
                ("FOUNDATION_COORD_DATA_DIR", data[i].as_str()),
            ];
            spawn_coord(lab, i, path, false, &env);
        }
        paths
    };

    let first = run(&mut lab, 0);
    wait_formed(&lab, HOSTS);
    wait_until("30 adds acknowledged", Duration::from_secs(60), || {
        let adds: usize = first
            .iter()
            .filter_map(|p| read_report(p))
            .map(|r| {
                r.coord
                    .ops
                    .iter()
                    .filter(|o| o.call == "add" && o.outcome == "ok")
                    .count()
            })
            .sum();
        adds >= 30
    });
    for i in 0..HOSTS {
        lab.signal(i, "KILL").expect("kill");
    }
    for i in 0..HOSTS {
        lab.stop(i);
    }
    // What the reports (rewritten every 250 ms) show was acknowledged: a
    // lower bound of what was.
    let before = first
        .iter()
        .filter_map(|p| read_report(p))
        .flat_map(|r| r.coord.ops)
        .filter(|o| o.outcome == "ok")
        .filter_map(|o| o.value)
        .max()
        .expect("acknowledged operations before the kill");

    let second = run(&mut lab, 1);
    wait_formed(&lab, HOSTS);
    wait_until(
        "every restarted client acknowledged",
        Duration::from_secs(60),
        || {
            second
                .iter()
                .all(|p| read_report(p).is_some_and(|r| acked(&r, 0) >= 2))
        },
    );
    for i in 0..HOSTS {
        lab.stop(i);
    }
    let after: Vec<CounterOp> = second
        .iter()
        .filter_map(|p| read_report(p))
        .flat_map(|r| r.coord.ops)
        .filter(|o| o.outcome == "ok")
        .collect();
    let lowest = after
        .iter()
        .filter_map(|o| o.value)
        .min()
        .expect("acknowledged operations after the restart");
    assert!(
        lowest >= before,
        "the counter reached {before} before every process was killed, \
         but read {lowest} after the restart: acknowledged adds were lost"
    );
    let stale: Vec<&CounterOp> = after
        .iter()
        .filter(|o| o.call == "add" && o.value.is_some_and(|v| v <= before))
        .collect();
    assert!(
        stale.is_empty(),
        "adds after the restart answered values already given: {stale:?}"
    );
    eprintln!(
        "the counter stood at {before} (at least) when every process was killed; \
         the lowest value seen after the restart was {lowest}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
