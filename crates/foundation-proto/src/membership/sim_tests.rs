//! Deterministic simulation of the sans-IO core: virtual time, a seeded
//! network with latency, crashes, leaves and partitions. No sockets, no
//! sleeps: a run of minutes of cluster time takes milliseconds, and the same
//! seed gives the same trace.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::membership::defaults as d;
use crate::membership::MembershipConfig;

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        kind: DatagramKind,
        body: Vec<u8>,
    },
    Timer {
        node: usize,
        timer: CoreTimer,
    },
}

/// A datagram seen on the wire: (sent at, from, to, kind, body).
type Tapped = (Duration, usize, usize, DatagramKind, Vec<u8>);

struct Sim {
    cores: Vec<MembershipCore>,
    base: Instant,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: std::collections::HashMap<u64, Ev>,
    seq: u64,
    rng: SmallRng,
    dead: HashSet<usize>,
    /// Pairs (a, b) that cannot reach each other.
    cut: HashSet<(usize, usize)>,
    log: Vec<(Duration, usize, MemberEvent)>,
    /// When set, every datagram sent is copied here: (sent at, from, to,
    /// kind, body), as an eavesdropper on the wire would keep them.
    tap: Option<Vec<Tapped>>,
    /// Datagrams of these kinds are lost on the wire.
    lose: Vec<DatagramKind>,
}

fn addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], port))
}

fn lan() -> MembershipConfig {
    MembershipConfig::default()
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        let cores = (0..n)
            .map(|i| {
                let id = MemberId {
                    id: NodeId(i as u64 + 1),
                    addr: addr(i, 7946),
                    transport: addr(i, 7947),
                    name: format!("n{i}"),
                    roles: vec![],
                    version: "test".into(),
                    generation: 1,
                };
                MembershipCore::new(id, foca_config(&lan()), seed.wrapping_add(i as u64))
            })
            .collect();
        Sim {
            cores,
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            events: Default::default(),
            seq: 0,
            rng: SmallRng::seed_from_u64(seed),
            dead: HashSet::new(),
            cut: HashSet::new(),
            log: Vec::new(),
            tap: None,
            lose: Vec::new(),
        }
    }

    fn index_of(&self, a: SocketAddr) -> Option<usize> {
        self.cores.iter().position(|c| c.local().addr == a)
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((at, self.seq)));
    }

    fn drain(&mut self, i: usize) {
        while let Some(out) = self.cores[i].poll_output() {
            match out {
                Output::Send { to, kind, body } => {
                    let Some(j) = self.index_of(to) else { continue };
                    if let Some(tap) = self.tap.as_mut() {
                        tap.push((self.now, i, j, kind, body.clone()));
                    }
                    if self.cut.contains(&(i, j)) || self.lose.contains(&kind) {
                        continue;
                    }
                    let latency = Duration::from_micros(self.rng.random_range(200..2_000));
                    self.push(self.now + latency, Ev::Deliver { to: j, kind, body });
                }
                Output::Schedule { after, timer } => {
                    self.push(self.now + after, Ev::Timer { node: i, timer })
                }
                Output::Event(ev) => self.log.push((self.now, i, ev)),
            }
        }
    }

    /// Replaces node `i` by a new process at the same address: id `id`,
    /// the next generation. Returns its identity.
    fn replace_process(&mut self, i: usize, id: u64) -> MemberId {
        let mut new = self.cores[i].local().clone();
        new.id = NodeId(id);
        new.generation += 1;
        self.cores[i] = MembershipCore::new(new.clone(), foca_config(&lan()), id);
        new
    }

    /// Node `i` leaves as the shell has it leave (notice, one probe
    /// timeout, foca's leave), then stops.
    fn leave_gracefully(&mut self, i: usize) {
        let now = self.base + self.now;
        self.cores[i].leave(now);
        self.drain(i);
        self.run_for(Duration::from_millis(d::PROBE_RTT_MS));
        let now = self.base + self.now;
        self.cores[i].finish_leave(now);
        self.drain(i);
        self.dead.insert(i);
    }

    fn join_all_via(&mut self, seed: usize) {
        let to = self.cores[seed].local().addr;
        for i in 0..self.cores.len() {
            if i != seed {
                self.cores[i].hello(to);
                self.drain(i);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            let now = self.base + self.now;
            let node = match ev {
                Ev::Deliver { to, kind, body } => {
                    if self.dead.contains(&to) {
                        continue;
                    }
                    let _ = self.cores[to].handle_datagram(kind, &body, now);
                    to
                }
                Ev::Timer { node, timer } => {
                    if self.dead.contains(&node) {
                        continue;
                    }
                    self.cores[node].handle_timer(timer, now);
                    node
                }
            };
            self.drain(node);
        }
        self.now = until;
    }

    /// [`Sim::run_for`], with every live node's digest round every
    /// [`SYNC_INTERVAL`], as the shell runs them.
    fn run_with_sync(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.run_for(SYNC_INTERVAL.min(until - self.now));
            for i in 0..self.cores.len() {
                if !self.dead.contains(&i) {
                    self.cores[i].sync_round();
                    self.drain(i);
                }
            }
        }
    }

    fn alive_view(&self, i: usize) -> usize {
        self.cores[i]
            .members()
            .filter(|m| m.state.is_active())
            .count()
    }

    fn state(&self, observer: usize, of: usize) -> Option<MemberState> {
        let id = self.cores[of].local().id;
        self.cores[observer]
            .members()
            .find(|m| m.id == id)
            .map(|m| m.state)
    }

    fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }
}

#[test]
fn cluster_forms_through_one_seed() {
    let mut sim = Sim::new(8, 7);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    for i in 0..8 {
        assert_eq!(sim.alive_view(i), 7, "node {i} sees {}", sim.alive_view(i));
    }
}

#[test]
fn crash_is_detected_by_every_survivor_within_two_seconds() {
    for seed in 0..20 {
        let mut sim = Sim::new(5, seed);
        sim.join_all_via(0);
        sim.run_for(Duration::from_secs(5));
        let crashed_at = sim.now;
        sim.dead.insert(4);
        sim.run_for(Duration::from_secs(5));
        let victim = sim.cores[4].local().id;
        for i in 0..4 {
            let t = sim
                .log
                .iter()
                .find(|(_, who, ev)| {
                    *who == i && matches!(ev, MemberEvent::Down(m) if m.id == victim)
                })
                .map(|(t, _, _)| *t - crashed_at)
                .unwrap_or_else(|| panic!("seed {seed}: node {i} never saw Down"));
            assert!(
                t <= Duration::from_secs(2),
                "seed {seed}: node {i} took {t:?}"
            );
            assert_eq!(sim.state(i, 4), Some(MemberState::Down));
        }
    }
}

#[test]
fn leave_is_seen_as_left_never_down() {
    let mut sim = Sim::new(4, 3);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    sim.leave_gracefully(3);
    sim.run_for(Duration::from_secs(5));
    let leaver = sim.cores[3].local().id;
    for i in 0..3 {
        assert_eq!(sim.state(i, 3), Some(MemberState::Left), "node {i}");
        assert!(!sim
            .log
            .iter()
            .any(|(_, who, ev)| *who == i && matches!(ev, MemberEvent::Down(m) if m.id == leaver)));
    }
}

#[test]
fn partition_heals_into_one_view() {
    let mut sim = Sim::new(5, 11);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    sim.partition(&[0, 1], &[2, 3, 4]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.state(0, 3), Some(MemberState::Down));
    assert_eq!(sim.state(3, 0), Some(MemberState::Down));
    sim.cut.clear();
    // The minority side rejoins through its seed list, as the node's join
    // loop does every few seconds.
    let mut healed = None;
    for step in 0..60 {
        if step % 10 == 0 {
            sim.join_all_via(0);
        }
        sim.run_for(Duration::from_millis(500));
        if (0..5).all(|i| sim.alive_view(i) == 4) {
            healed = Some(step);
            break;
        }
    }
    assert!(
        healed.is_some(),
        "views after heal: {:?}",
        (0..5).map(|i| sim.alive_view(i)).collect::<Vec<_>>()
    );
}

#[test]
fn same_seed_same_trace() {
    let trace = |seed| {
        let mut sim = Sim::new(6, seed);
        sim.join_all_via(0);
        sim.run_for(Duration::from_secs(3));
        sim.dead.insert(2);
        sim.run_for(Duration::from_secs(3));
        sim.log
            .iter()
            .map(|(t, i, ev)| format!("{t:?} {i} {ev:?}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(trace(42), trace(42));
    assert_ne!(trace(42), trace(43));
}

#[test]
fn garbage_datagrams_are_rejected_without_panic() {
    let mut sim = Sim::new(1, 1);
    let now = sim.base;
    for kind in [
        DatagramKind::Swim,
        DatagramKind::Suspicion,
        DatagramKind::Leave,
        DatagramKind::Hello,
        DatagramKind::Pull,
        DatagramKind::State,
        DatagramKind::Digest,
    ] {
        for body in [&b""[..], b"\\xff\\xff\\xff", &[0u8; 64]] {
            let _ = sim.cores[0].handle_datagram(kind, body, now);
        }
    }
    assert_eq!(sim.cores[0].members().count(), 0);
}

#[test]
fn a_node_restarted_at_the_same_address_before_detection_replaces_the_old_one() {
    let mut sim = Sim::new(5, 21);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    let old = sim.cores[3].local().clone();
    // A new process at the same address, at once (no Down seen yet).
    let id = sim.replace_process(3, 99);
    let seed = sim.cores[0].local().addr;
    sim.cores[3].hello(seed);
    sim.drain(3);
    sim.run_for(Duration::from_secs(10));
    for i in [0, 1, 2, 4] {
        let view: Vec<_> = sim.cores[i].members().map(|m| (m.id, m.state)).collect();
        let state = |who: NodeId| {
            sim.cores[i]
                .members()
                .find(|m| m.id == who)
                .map(|m| m.state)
        };
        assert_eq!(state(id.id), Some(MemberState::Alive), "node {i}: {view:?}");
        assert_ne!(
            state(old.id),
            Some(MemberState::Alive),
            "node {i}: {view:?}"
        );
    }
}

/// A graceful leave, then a new process at the same address before the
/// old one's foca Down: the others had marked the old id Left, while foca
/// still held it alive, so foca renamed it in place and sent no MemberUp
/// for the new id. A real 5-process rolling restart showed it: one member
/// never saw the restarted node, placed a singleton without it, and
/// handed its state to a node that was not the owner.
#[test]
fn a_node_restarted_at_the_same_address_right_after_leaving_is_seen_up() {
    let mut sim = Sim::new(5, 23);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    let now = sim.base + sim.now;
    sim.cores[3].leave(now);
    sim.drain(3);
    sim.run_for(Duration::from_millis(20));
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.state(i, 3), Some(MemberState::Left), "node {i}");
    }
    // The new process, before the old one's foca Down went out.
    sim.replace_process(3, 77);
    let seed = sim.cores[0].local().addr;
    sim.cores[3].join(&[seed]);
    sim.drain(3);
    sim.run_for(Duration::from_secs(5));
    for i in [0, 1, 2, 4] {
        let view: Vec<_> = sim.cores[i].members().map(|m| (m.id, m.state)).collect();
        assert_eq!(
            sim.state(i, 3),
            Some(MemberState::Alive),
            "node {i}: {view:?}"
        );
    }
}

/// `n` nodes that joined through node 0 and settled, and node `n` not
/// started.
fn formed_plus_one(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n + 1, seed);
    let first = sim.cores[0].local().addr;
    for i in 1..n {
        sim.cores[i].join(&[first]);
        sim.drain(i);
    }
    sim.run_with_sync(Duration::from_secs(30));
    assert!((0..n).all(|i| sim.alive_view(i) == n - 1), "cluster formed");
    sim
}

/// A node joining a formed cluster learns every member from the one it
/// pulled, within one round trip, instead of one periodic announce sample
/// (about twenty members) at a time.
#[test]
fn a_join_pulls_the_whole_member_list() {
    let n = 80;
    let mut sim = formed_plus_one(n, 5);
    let seed = sim.cores[0].local().addr;
    sim.cores[n].join(&[seed]);
    sim.drain(n);
    sim.run_for(Duration::from_millis(300));
    assert_eq!(sim.alive_view(n), n, "the joiner knows every member");
    // And gossip makes it known to every member.
    sim.run_for(Duration::from_secs(2));
    let unaware: Vec<usize> = (0..n)
        .filter(|i| sim.state(*i, n) != Some(MemberState::Alive))
        .collect();
    assert!(unaware.is_empty(), "the joiner is unknown to {unaware:?}");
}

/// The datagrams `core` wants sent, as (to, kind, body).
fn sends(core: &mut MembershipCore) -> Vec<(SocketAddr, DatagramKind, Vec<u8>)> {
    std::iter::from_fn(|| core.poll_output())
        .filter_map(|o| match o {
            Output::Send { to, kind, body } => Some((to, kind, body)),
            _ => None,
        })
        .collect()
}

/// Anti-entropy: a digest of a matching view gets no answer (one small
/// datagram per node per round in a settled cluster); a node that holds
/// fewer members asks back, and gets the whole list.
#[test]
fn digests_answer_only_views_that_differ() {
    let n = 30;
    let mut sim = formed_plus_one(n, 9);
    let now = sim.base + sim.now;

    // A settled view: the digest is answered with nothing.
    sim.cores[1].sync_round();
    let out = sends(&mut sim.cores[1]);
    let [(to, DatagramKind::Digest, body)] = out.as_slice() else {
        panic!("one digest expected, got {out:?}");
    };
    let j = (0..n)
        .find(|j| sim.cores[*j].local().addr == *to)
        .expect("a member");
    sends(&mut sim.cores[j]);
    sim.cores[j]
        .handle_datagram(DatagramKind::Digest, body, now)
        .expect("valid digest");
    assert_eq!(sends(&mut sim.cores[j]), vec![], "equal views: no answer");

    // A node that knows nobody gets node 1's digest: it asks back, and
    // node 1 answers with every member.
    let fresh = n;
    sim.cores[fresh]
        .handle_datagram(DatagramKind::Digest, body, now)
        .expect("valid digest");
    let ask = sends(&mut sim.cores[fresh]);
    let [(back, DatagramKind::Digest, reply)] = ask.as_slice() else {
        panic!("a reply digest expected, got {ask:?}");
    };
    assert_eq!(*back, sim.cores[1].local().addr);
    sim.cores[1]
        .handle_datagram(DatagramKind::Digest, reply, now)
        .expect("valid digest");
    let lists = sends(&mut sim.cores[1]);
    assert!(!lists.is_empty());
    for (to, kind, body) in lists {
        assert_eq!(
            (to, kind),
            (sim.cores[fresh].local().addr, DatagramKind::State)
        );
        sim.cores[fresh]
            .handle_datagram(kind, &body, now)
            .expect("valid list");
    }
    assert_eq!(sim.alive_view(fresh), n, "the list names every member");
}

/// A datagram captured while a member was alive, replayed after it left
/// and the others forgot it: fed to the core as it is, it brings the
/// member back as a ghost (the threat); opened by the shell's path
/// ([`Sealer::open_fresh`]) it is refused as stale.
#[test]
fn a_departed_members_captured_datagram_cannot_bring_it_back() {
    use crate::membership::freshness::{Freshness, Refused};
    use crate::membership::seal::{OpenError, Sealer};

    let mut sim = Sim::new(4, 21);
    sim.join_all_via(0);
    sim.run_for(Duration::from_secs(5));
    sim.tap = Some(Vec::new());
    sim.run_for(Duration::from_secs(1));
    let tapped = sim.tap.take().unwrap_or_default();
    let (sent_at, _, _, kind, body) = tapped
        .into_iter()
        .find(|(_, from, to, kind, _)| *from == 3 && *to == 0 && *kind == DatagramKind::Swim)
        .expect("node 3 sent node 0 a SWIM datagram within a second");

    // Node 3 leaves; the others forget it after FORGET_AFTER.
    sim.leave_gracefully(3);
    sim.run_for(FORGET_AFTER + Duration::from_secs(10));
    assert_eq!(sim.state(0, 3), None, "node 0 forgot the departed node");

    // The shell seals with the wall clock; here it is the virtual clock
    // from an arbitrary epoch.
    const EPOCH_MS: u64 = 1_800_000_000_000;
    let wall = |d: Duration| EPOCH_MS + d.as_millis() as u64;
    let sealer = Sealer::new(&[3; 32]);
    let mut captured = sealer.seal(kind, &body, [9; 12], wall(sent_at));
    let mut freshness = Freshness::new(Duration::from_millis(d::REPLAY_WINDOW_MS));
    assert!(matches!(
        sealer.open_fresh(&mut captured, &mut freshness, wall(sim.now)),
        Err(OpenError::Refused(Refused::Old { .. }))
    ));
    assert_eq!(sim.state(0, 3), None);

    // Without the check, the same bytes revive it.
    let now = sim.base + sim.now;
    let _ = sim.cores[0].handle_datagram(kind, &body, now);
    sim.drain(0);
    assert!(
        sim.state(0, 3).is_some_and(MemberState::is_active),
        "the replay would have brought back a ghost: {:?}",
        sim.state(0, 3)
    );
}

#[path = "sim_tests_lifeguard.rs"]
mod lifeguard;

#[path = "sim_tests_profiles.rs"]
mod profiles;
