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

/// One line of a coordination journal (`foundation node --coord-journal`).
#[derive(Debug, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
enum Event {
    Invoke {
        id: u64,
        call: String,
        at: u64,
    },
    Return {
        id: u64,
        outcome: String,
        value: Option<i64>,
        at: u64,
    },
    Held {
        id: u64,
        token: u64,
        at: u64,
    },
    Released {
        id: u64,
        at: u64,
    },
    End {
        at: u64,
    },
}

/// One counter operation as a process journaled it.
#[derive(Debug, Clone)]
struct CounterOp {
    add: bool,
    invoked: u64,
    /// When it came back, and how: `ok`, `failed` or `unknown`.
    returned: Option<(u64, String)>,
    value: Option<i64>,
}

impl CounterOp {
    fn ok(&self) -> bool {
        matches!(&self.returned, Some((_, o)) if o == "ok")
    }
}

/// What one process (one life: a restart is another) journaled.
#[derive(Debug, Default)]
struct Life {
    ops: Vec<CounterOp>,
    /// Token, from, to (`None`: still held when the journal ends).
    holdings: Vec<(u64, u64, Option<u64>)>,
    end: Option<u64>,
}

/// Reads a journal; a missing or empty one is an empty life.
fn read_journal(path: &Path) -> Life {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut life = Life::default();
    let mut ops = std::collections::BTreeMap::new();
    let mut held = std::collections::BTreeMap::new();
    for line in text.lines() {
        let ev: Event = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: bad journal line {line:?}: {e}", path.display()));
        match ev {
            Event::Invoke { id, call, at } => {
                ops.insert(
                    id,
                    CounterOp {
                        add: call == "add",
                        invoked: at,
                        returned: None,
                        value: None,
                    },
                );
            }
            Event::Return {
                id,
                outcome,
                value,
                at,
            } => {
                if let Some(op) = ops.get_mut(&id) {
                    op.returned = Some((at, outcome));
                    op.value = value;
                }
            }
            Event::Held { id, token, at } => {
                held.insert(id, (token, at, None));
            }
            Event::Released { id, at } => {
                if let Some(h) = held.get_mut(&id) {
                    h.2 = Some(at);
                }
            }
            Event::End { at } => life.end = Some(at),
        }
    }
    life.ops = ops.into_values().collect();
    life.holdings = held.into_values().collect();
    life
}

fn acked(path: &Path, after_us: u64) -> usize {
    read_journal(path)
        .ops
        .iter()
        .filter(|o| o.ok() && o.invoked > after_us)
        .count()
}

/// The counter operations of every life as one history for the checker:
/// failed operations changed nothing and are left out; those of unknown
/// outcome, or cut short by a kill, may have taken effect at any point
/// after their invocation.
fn history(lives: &[Life]) -> Vec<Op<CounterCall, i64>> {
    let mut ops = Vec::new();
    for o in lives.iter().flat_map(|l| &l.ops) {
        if matches!(&o.returned, Some((_, out)) if out == "failed") {
            continue;
        }
        ops.push(Op {
            invoked: o.invoked,
            returned: o.returned.as_ref().filter(|_| o.ok()).map(|(at, _)| *at),
            call: if o.add {
                CounterCall::Add(1)
            } else {
                CounterCall::Read
            },
            answer: o.value.unwrap_or(0),
        });
    }
    ops
}

/// Checks that no two lives held the lock at once. A holding still open
/// when a life ended lasted to its end: `died[i]`, when the test killed
/// it, or the journal's own end.
fn check_exclusive(lives: &[Life], died: &[Option<u64>]) -> usize {
    let mut holdings = Vec::new();
    for (i, life) in lives.iter().enumerate() {
        let end = died[i].or(life.end);
        for &(token, from, to) in &life.holdings {
            let to = to
                .or(end)
                .unwrap_or_else(|| panic!("life {i}: a holding with no end: {life:?}"));
            holdings.push(Holding {
                holder: i,
                token,
                from,
                to: to.max(from),
            });
        }
    }
    let n = holdings.len();
    if let Err(e) = exclusion::check(&mut holdings) {
        panic!("the lock was not exclusive: {e}");
    }
    n
}

fn linearizable(lives: &[Life]) -> usize {
    let ops = history(lives);
    if let Err(e) = check(&Counter(0), &ops) {
        panic!("the counter's history over every process is not linearizable: {e}\n{ops:?}");
    }
    ops.len()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A directory for this test's journals and data, emptied first.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("foundation-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Starts a node in host `i` whose clients add to and read counter `ctr`
/// and take lock `lk`, journaling to `journal`.
fn spawn_coord(lab: &mut Lab, i: usize, journal: &Path, env: &[(&str, &str)]) {
    let seeds = format!("{}:7946,{}:7946", Lab::addr(0), Lab::addr(1));
    let journal = journal.display().to_string();
    let args = [
        "node",
        "--cluster",
        "static",
        "--seeds",
        &seeds,
        "--coord-counter",
        "ctr",
        "--coord-lock",
        "lk",
        "--coord-journal",
        &journal,
        "--stop-on-stdin-eof",
    ];
    lab.spawn(i, BIN, &args, env);
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

/// Waits for one leader all of `hosts` agree on; its host.
fn leader_host(lab: &Lab, hosts: &[usize]) -> usize {
    let mut leader = None;
    wait_until(
        "one coordination leader, three voters, seen by all",
        Duration::from_secs(30),
        || {
            leader = agreed_leader(lab, hosts);
            leader.is_some()
        },
    );
    let ids: Vec<Option<NodeId>> = hosts.iter().map(|&i| own_id(lab, i)).collect();
    let at = ids
        .iter()
        .position(|id| *id == leader)
        .expect("the leader is a host");
    hosts[at]
}

#[test]
fn a_leader_cut_off_from_the_majority_is_replaced_and_its_clients_get_errors_not_stale_answers() {
    const HOSTS: usize = 5;
    let Some(mut lab) = lab_or_skip(HOSTS) else {
        return;
    };
    let dir = scratch("coord-cut");
    let paths: Vec<PathBuf> = (0..HOSTS)
        .map(|i| dir.join(format!("host{i}.jsonl")))
        .collect();
    for (i, path) in paths.iter().enumerate() {
        spawn_coord(&mut lab, i, path, &[]);
    }
    wait_formed(&lab, HOSTS);
    let ids: Vec<NodeId> = (0..HOSTS).map(|i| own_id(&lab, i).expect("id")).collect();
    let all: Vec<usize> = (0..HOSTS).collect();
    let old = leader_host(&lab, &all);
    wait_until("every client acknowledged", Duration::from_secs(30), || {
        paths.iter().all(|p| acked(p, 0) >= 5)
    });
    std::thread::sleep(Duration::from_secs(2));

    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    lab.partition(&[old], &rest).expect("partition");
    let cut_us = now_us();
    let cut = Instant::now();
    let took = wait_until(
        "a new leader on the majority side",
        Duration::from_secs(20),
        || {
            coord_view(&lab, rest[0])
                .and_then(|(l, _)| l)
                .is_some_and(|l| rest.iter().any(|&i| ids[i] == l))
        },
    );
    eprintln!("the majority side has a new leader {took:?} after the cut (polled every 100 ms)");
    // Longer than a session's time to live (3 s): a lock the old side held
    // is granted again on the majority side.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(cut.elapsed()));
    // Before healing: the routes come back one host at a time.
    let heal_us = now_us();
    lab.heal();
    wait_until(
        "the old leader's clients acknowledged again",
        Duration::from_secs(40),
        || acked(&paths[old], heal_us) >= 3,
    );
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..HOSTS {
        lab.stop(i);
    }
    let lives: Vec<Life> = paths.iter().map(|p| read_journal(p)).collect();

    // The old leader's side: errors only while cut off. An operation sent
    // just before the heal may be acknowledged just after it.
    let cut_off = &lives[old];
    let tried: Vec<&CounterOp> = cut_off
        .ops
        .iter()
        .filter(|o| o.invoked > cut_us && o.invoked < heal_us)
        .collect();
    assert!(!tried.is_empty(), "the cut-off client tried nothing");
    let stale: Vec<&&CounterOp> = tried
        .iter()
        .filter(|o| o.add && o.ok())
        .filter(|o| o.returned.as_ref().is_some_and(|(at, _)| *at < heal_us))
        .collect();
    assert!(
        stale.is_empty(),
        "adds acknowledged on the cut-off side: {stale:?}"
    );
    // A grant that committed just before the cut may return just after.
    let granted: Vec<_> = cut_off
        .holdings
        .iter()
        .filter(|h| h.1 > cut_us + 500_000 && h.1 < heal_us)
        .collect();
    assert!(
        granted.is_empty(),
        "locks granted on the cut-off side: {granted:?}"
    );

    // The majority side went on.
    let progress: usize = rest
        .iter()
        .flat_map(|&i| &lives[i].ops)
        .filter(|o| o.ok() && o.invoked > cut_us && o.invoked < heal_us)
        .count();
    assert!(
        progress > 10,
        "the majority side acknowledged only {progress} operations while cut"
    );

    let ops = linearizable(&lives);
    let held = check_exclusive(&lives, &[None; HOSTS]);
    assert!(held > 10, "only {held} lock holdings");
    eprintln!(
        "{ops} counter operations linearizable, {held} lock holdings exclusive; \
         the cut-off client failed {} operations",
        tried.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the processes of `hosts` at once (SIGKILL); when they died.
fn kill(lab: &mut Lab, hosts: &[usize]) -> u64 {
    for &i in hosts {
        lab.signal(i, "KILL").expect("kill");
    }
    let dead = now_us();
    for &i in hosts {
        lab.stop(i);
    }
    dead
}

#[test]
fn processes_killed_and_restarted_on_durable_storage_lose_no_acknowledged_write() {
    const HOSTS: usize = 3;
    let Some(mut lab) = lab_or_skip(HOSTS) else {
        return;
    };
    let dir = scratch("coord-durable");
    let data: Vec<String> = (0..HOSTS)
        .map(|i| dir.join(format!("host{i}.coord")).display().to_string())
        .collect();
    // Every process life: its host, its journal, when the test killed it.
    let mut lives: Vec<(usize, PathBuf, Option<u64>)> = Vec::new();
    let start = |lab: &mut Lab, lives: &mut Vec<(usize, PathBuf, Option<u64>)>, i: usize| {
        let path = dir.join(format!("life{}-host{i}.jsonl", lives.len()));
        let env = [
            ("FOUNDATION_COORD_STORAGE", "durable"),
            ("FOUNDATION_COORD_DATA_DIR", data[i].as_str()),
        ];
        spawn_coord(lab, i, &path, &env);
        lives.push((i, path, None));
        lives.len() - 1
    };
    let all: Vec<usize> = (0..HOSTS).collect();
    let first: Vec<usize> = all
        .iter()
        .map(|&i| start(&mut lab, &mut lives, i))
        .collect();
    wait_formed(&lab, HOSTS);
    let leader = leader_host(&lab, &all);
    wait_until("every client acknowledged", Duration::from_secs(30), || {
        first.iter().all(|&l| acked(&lives[l].1, 0) >= 10)
    });

    // The leader dies; it comes back on its files two seconds later.
    lives[first[leader]].2 = Some(kill(&mut lab, &[leader]));
    std::thread::sleep(Duration::from_secs(2));
    let back = start(&mut lab, &mut lives, leader);
    wait_until(
        "the restarted leader's clients acknowledged",
        Duration::from_secs(40),
        || acked(&lives[back].1, 0) >= 5,
    );

    // Everything dies at once, and comes back.
    let dead = kill(&mut lab, &all);
    for life in lives.iter_mut().filter(|l| l.2.is_none()) {
        life.2 = Some(dead);
    }
    let before: i64 = lives
        .iter()
        .flat_map(|l| read_journal(&l.1).ops)
        .filter(|o| o.add && o.ok())
        .filter_map(|o| o.value)
        .max()
        .expect("acknowledged adds");
    let last: Vec<usize> = all
        .iter()
        .map(|&i| start(&mut lab, &mut lives, i))
        .collect();
    wait_formed(&lab, HOSTS);
    wait_until(
        "every restarted client acknowledged",
        Duration::from_secs(60),
        || last.iter().all(|&l| acked(&lives[l].1, 0) >= 5),
    );
    for i in 0..HOSTS {
        lab.stop(i);
    }

    let journals: Vec<Life> = lives.iter().map(|l| read_journal(&l.1)).collect();
    let lowest = last
        .iter()
        .flat_map(|&l| &journals[l].ops)
        .filter(|o| o.ok())
        .filter_map(|o| o.value)
        .min()
        .expect("acknowledged operations after the restart");
    assert!(
        lowest >= before,
        "an add was acknowledged with {before} before every process was killed, \
         but the counter read {lowest} after the restart: acknowledged adds were lost"
    );
    let ops = linearizable(&journals);
    let died: Vec<Option<u64>> = lives.iter().map(|l| l.2).collect();
    let held = check_exclusive(&journals, &died);
    assert!(held > 5, "only {held} lock holdings");
    eprintln!(
        "{} process lives; {ops} counter operations linearizable, {held} lock holdings \
         exclusive; the counter stood at {before} (at least) when every process was killed, \
         and read {lowest} at the lowest after",
        lives.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
