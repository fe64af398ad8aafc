//! The discrete-event loop: virtual time, a queue of events, and the
//! shell rules that connect the cores of each node to the network.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use foundation::config::defaults as d;
use foundation::config::MembershipConfig;
use foundation::{MemberEvent, NodeId};
use foundation_proto::membership::core::SYNC_INTERVAL;
use foundation_proto::membership::seal::{sealed_len, DatagramKind};
use foundation_proto::membership::{CoreTimer, Output};
use foundation_proto::registry::{sync, Delta, RegistryMsg};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::net::{Net, NetConfig};
use super::node::SimNode;

/// How often each node runs registry anti-entropy, its join loop and the
/// process manager's reconcile (the node's `registry.sync_interval`).
pub const TICK: Duration = Duration::from_millis(d::REGISTRY_SYNC_INTERVAL_MS);

#[derive(Debug)]
pub(crate) enum Ev {
    Datagram {
        to: usize,
        kind: DatagramKind,
        body: Vec<u8>,
    },
    Timer {
        node: usize,
        inc: u64,
        timer: CoreTimer,
    },
    Registry {
        from: NodeId,
        to: usize,
        inc: u64,
        bytes: Bytes,
    },
    Message {
        from: NodeId,
        to: usize,
        inc: u64,
        topic: String,
        seq: u64,
    },
    Tick {
        node: usize,
        inc: u64,
    },
    Handoff {
        to: usize,
        inc: u64,
        from: NodeId,
        name: String,
    },
    Reconcile {
        node: usize,
        inc: u64,
    },
}

/// An event in the queue. The heap pops the earliest first, and of events
/// due at the same time the one pushed first (so a run is deterministic).
#[derive(Debug)]
struct Queued {
    at: Duration,
    seq: u64,
    // Boxed: the heap moves entries as it sifts, and an `Ev` is large.
    ev: Box<Ev>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    // Reversed: `BinaryHeap` is a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A simulated cluster. Same seed, same calls: same trace.
#[derive(Debug)]
pub struct Sim {
    /// The nodes, by index (a restarted node keeps its index).
    pub nodes: Vec<SimNode>,
    /// The seed everything random derives from.
    pub seed: u64,
    pub(crate) membership: MembershipConfig,
    pub(crate) base: Instant,
    pub(crate) now: Duration,
    queue: BinaryHeap<Queued>,
    seq: u64,
    pub(crate) net: Net,
    pub(crate) rng: SmallRng,
    by_addr: HashMap<SocketAddr, usize>,
    by_id: HashMap<NodeId, usize>,
    next_id: u64,
    /// Indexes of the nodes others join through.
    seeds: Vec<usize>,
    /// Names of the singletons every node's process manager places.
    pub singletons: Vec<String>,
    /// Events held for paused nodes, replayed when they resume.
    held: Vec<Ev>,
    pub(crate) next_pub: HashMap<usize, u64>,
    /// Invariant violations seen while running (duplicate deliveries).
    pub violations: Vec<String>,
    /// Messages handed to the network by `publish` (one per subscriber
    /// node; local deliveries not counted).
    pub sent: u64,
    /// Deliveries `publish` should have made: for each message, the
    /// subscribers running at that moment, the publisher's own included.
    pub expected: u64,
    /// Deliveries made (each subscription at most once per message).
    pub delivered: u64,
    /// Events processed.
    pub steps: u64,
    /// Down events for members that were running and not paused at that
    /// moment: (when, observer, member), a live member declared down.
    pub false_downs: Vec<(Duration, usize, NodeId)>,
    /// Every Down event: (when, observer, member).
    pub downs: Vec<(Duration, usize, NodeId)>,
    /// Membership datagrams the nodes sent and their sealed bytes (UDP
    /// payload, as the shell would send them; canary nudges, which only
    /// the shell sends, not included), by what the datagrams carry (the
    /// datagram kind, and for SWIM packets foca's message type).
    pub membership_by_kind: BTreeMap<String, (u64, u64)>,
}

/// What a membership datagram carries: its kind, and for SWIM packets
/// foca's message type (decoded with the codec the core uses).
fn traffic_label(kind: DatagramKind, body: &[u8]) -> String {
    if kind != DatagramKind::Swim {
        return format!("{kind:?}");
    }
    match foca::Codec::<foundation_proto::membership::SwimId>::decode_header(
        &mut foca::PostcardCodec,
        body,
    ) {
        Ok(h) => {
            let message = format!("{:?}", h.message);
            let name = message
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("?");
            format!("Swim {name}")
        }
        Err(_) => "Swim (undecodable)".to_owned(),
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((
        [
            10,
            (i / 62_500) as u8,
            ((i / 250) % 250) as u8,
            (i % 250) as u8 + 1,
        ],
        7946,
    ))
}

impl Sim {
    /// `n` nodes with default settings on `net`, none started yet; node 0
    /// is the seed the others join through.
    pub fn new(n: usize, seed: u64, net: NetConfig) -> Sim {
        let mut sim = Sim {
            nodes: Vec::with_capacity(n),
            seed,
            membership: MembershipConfig::default(),
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            net: Net::new(net, seed),
            rng: SmallRng::seed_from_u64(seed),
            by_addr: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            seeds: vec![0],
            singletons: Vec::new(),
            held: Vec::new(),
            next_pub: HashMap::new(),
            violations: Vec::new(),
            sent: 0,
            membership_by_kind: BTreeMap::new(),
            expected: 0,
            delivered: 0,
            steps: 0,
            false_downs: Vec::new(),
            downs: Vec::new(),
        };
        for i in 0..n {
            let node = sim.fresh(i, 1);
            sim.by_addr.insert(node.addr, i);
            sim.nodes.push(node);
        }
        sim
    }

    fn fresh(&mut self, i: usize, generation: u64) -> SimNode {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        self.by_id.insert(id, i);
        let seed = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id.0;
        SimNode::new(id, addr(i), generation, &self.membership, seed)
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Changes the links' latency and loss from now on.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net.config = net;
    }

    /// Starts node `i` (it joins through the seeds).
    pub fn start(&mut self, i: usize) {
        self.nodes[i].alive = true;
        self.nodes[i].started = self.now;
        let phase = Duration::from_micros(self.rng.random_range(0..TICK.as_micros() as u64));
        let inc = self.nodes[i].incarnation;
        self.push(self.now + phase, Ev::Tick { node: i, inc });
        self.hello_seeds(i);
    }

    /// Starts every node at once.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILL: node `i` stops at once; what it had in flight is lost.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.net.reset(i);
    }

    /// Starts a new process in place of node `i` (new id, next
    /// generation, same address).
    pub fn restart(&mut self, i: usize) {
        self.crash(i);
        let generation = self.nodes[i].incarnation + 1;
        let node = self.fresh(i, generation);
        self.nodes[i] = node;
        self.start(i);
    }

    /// SIGSTOP: node `i` handles nothing until [`Sim::resume`].
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].paused = true;
    }

    /// SIGCONT: node `i` handles what waited for it.
    pub fn resume(&mut self, i: usize) {
        let mine = self.unhold(i);
        for ev in mine {
            self.push(self.now, ev);
        }
    }

    /// Unpauses node `i` and hands back what waited for it, in order.
    fn unhold(&mut self, i: usize) -> Vec<Ev> {
        self.nodes[i].paused = false;
        let (mine, rest): (Vec<Ev>, Vec<Ev>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|ev| target(ev) == i);
        self.held = rest;
        mine
    }

    /// Resumes node `i` as a starved process wakes up: its overdue timers
    /// fire before it reads what arrived meanwhile (so acks that came in
    /// time are seen after the timeouts they would have stopped).
    pub fn resume_timers_first(&mut self, i: usize) {
        let (timers, others): (Vec<Ev>, Vec<Ev>) = self
            .unhold(i)
            .into_iter()
            .partition(|ev| matches!(ev, Ev::Timer { .. }));
        for ev in timers.into_iter().chain(others) {
            self.push(self.now, ev);
        }
    }

    /// Cuts nodes `a` from nodes `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        self.net.cut(a, b);
    }

    /// Cuts `from → to` only.
    pub fn partition_one_way(&mut self, from: &[usize], to: &[usize]) {
        self.net.cut_one_way(from, to);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Runs the simulation for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.queue.peek().is_some_and(|q| q.at <= until) {
            let Some(Queued { at, ev, .. }) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.steps += 1;
            self.handle(*ev);
        }
        self.now = until;
    }

    pub(crate) fn now_ms(&self) -> u64 {
        // Wall-clock stamps for `registered_at`, from a fixed origin.
        1_700_000_000_000 + self.now.as_millis() as u64
    }

    pub(crate) fn instant(&self) -> Instant {
        self.base + self.now
    }

    pub(crate) fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev: Box::new(ev),
        });
    }

    /// The index of the node currently running as `id`.
    pub fn index_of_id(&self, id: NodeId) -> Option<usize> {
        self.by_id
            .get(&id)
            .copied()
            .filter(|&i| self.nodes[i].id == id)
    }

    pub(crate) fn handle(&mut self, ev: Ev) {
        let i = target(&ev);
        if !self.nodes[i].alive {
            return;
        }
        if self.nodes[i].paused {
            self.held.push(ev);
            return;
        }
        let now = self.instant();
        match ev {
            Ev::Datagram { to, kind, body } => {
                let _ = self.nodes[to].core.handle_datagram(kind, &body, now);
                self.drain(to);
            }
            Ev::Timer { node, inc, timer } => {
                if inc == self.nodes[node].incarnation {
                    self.nodes[node].core.handle_timer(timer, now);
                    self.drain(node);
                }
            }
            Ev::Registry {
                from,
                to,
                inc,
                bytes,
            } => {
                if inc == self.nodes[to].incarnation {
                    self.registry_message(to, from, &bytes);
                }
            }
            Ev::Message {
                from,
                to,
                inc,
                topic,
                seq,
            } => {
                if inc == self.nodes[to].incarnation {
                    self.deliver(to, from, &topic, seq);
                }
            }
            Ev::Handoff {
                to,
                inc,
                from,
                name,
            } => {
                if inc == self.nodes[to].incarnation {
                    let node = &mut self.nodes[to];
                    node.planner.handoff_received(&name, None, from, false, now);
                    self.reconcile_soon(to);
                }
            }
            Ev::Reconcile { node, inc } => {
                if inc == self.nodes[node].incarnation {
                    self.nodes[node].reconcile_pending = false;
                    self.reconcile(node);
                }
            }
            Ev::Tick { node, inc } => {
                if inc == self.nodes[node].incarnation {
                    self.tick(node);
                    self.push(self.now + TICK, Ev::Tick { node, inc });
                }
            }
        }
    }

    pub(crate) fn drain(&mut self, i: usize) {
        self.nodes[i].refresh_view();
        let mut changed = false;
        while let Some(out) = self.nodes[i].core.poll_output() {
            match out {
                Output::Send { to, kind, body } => {
                    let len = sealed_len(body.len()) as u64;
                    let by_kind = self
                        .membership_by_kind
                        .entry(traffic_label(kind, &body))
                        .or_default();
                    by_kind.0 += 1;
                    by_kind.1 += len;
                    let Some(&j) = self.by_addr.get(&to) else {
                        continue;
                    };
                    if let Some(at) = self.net.datagram(i, j, self.now) {
                        self.push(at, Ev::Datagram { to: j, kind, body });
                    }
                }
                Output::Schedule { after, timer } => {
                    let inc = self.nodes[i].incarnation;
                    self.push(
                        self.now + after,
                        Ev::Timer {
                            node: i,
                            inc,
                            timer,
                        },
                    );
                }
                Output::Event(ev) => {
                    self.member_event(i, ev);
                    changed = true;
                }
            }
        }
        if changed {
            self.reconcile_soon(i);
        }
    }

    pub(crate) fn member_event(&mut self, i: usize, ev: MemberEvent) {
        match ev {
            MemberEvent::Up(m) => {
                let send = sync::on_member_up(&mut self.nodes[i].registry, m.id);
                self.send_registry(i, send);
            }
            MemberEvent::Down(m) | MemberEvent::Left(m) => {
                if m.state == foundation::MemberState::Down {
                    self.downs.push((self.now, i, m.id));
                    let live = self.index_of_id(m.id).is_some_and(|j| {
                        let n = &self.nodes[j];
                        n.id == m.id && n.alive && !n.paused
                    });
                    if live {
                        self.false_downs.push((self.now, i, m.id));
                    }
                }
                let node = &mut self.nodes[i];
                sync::on_member_gone(&mut node.registry, m.id);
                node.heard.remove(&m.id);
                if m.state == foundation::MemberState::Left {
                    node.planner.member_left(m.id);
                }
            }
            MemberEvent::Suspect(_) => {}
        }
    }

    pub(crate) fn send_registry(&mut self, i: usize, msgs: Vec<(NodeId, RegistryMsg)>) {
        let from = self.nodes[i].id;
        for (to, msg) in msgs {
            let Some(j) = self.index_of_id(to) else {
                continue;
            };
            if let Some(at) = self.net.stream(i, j, self.now) {
                let inc = self.nodes[j].incarnation;
                self.push(
                    at,
                    Ev::Registry {
                        from,
                        to: j,
                        inc,
                        bytes: msg.encode(),
                    },
                );
            }
        }
    }

    /// The registry's fast path: a local change goes to every active member.
    pub(crate) fn publish_delta(&mut self, i: usize, delta: Delta) {
        let me = self.nodes[i].id;
        let msgs: Vec<_> = self.nodes[i]
            .active()
            .iter()
            .copied()
            .filter(|p| *p != me)
            .map(|p| {
                (
                    p,
                    RegistryMsg::Delta {
                        delta: delta.clone(),
                        ack: false,
                    },
                )
            })
            .collect();
        self.send_registry(i, msgs);
    }

    pub(crate) fn registry_message(&mut self, i: usize, from: NodeId, bytes: &[u8]) {
        let Ok(msg) = RegistryMsg::decode(bytes) else {
            self.violations
                .push(format!("node {i}: a registry message did not decode"));
            return;
        };
        let node = &mut self.nodes[i];
        let members = &node.view;
        let r = sync::on_message(&mut node.registry, from, msg, |id| members.contains(&id));
        if let Some(p) = r.heard_from {
            node.heard.insert(p);
        }
        let changed = r.changed || r.heard_from.is_some();
        self.send_registry(i, r.send);
        if r.changed {
            self.conflicts(i);
        }
        if changed {
            self.reconcile_soon(i);
        }
    }

    pub(crate) fn tick(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.round = node.round.wrapping_add(1);
        let round = node.round;
        let me = node.id;
        let peers: Vec<NodeId> = node.active().iter().copied().filter(|p| *p != me).collect();
        let alone = peers.is_empty();
        if let Some(m) = sync::anti_entropy(&node.registry, peers, round) {
            self.send_registry(i, vec![m]);
        }
        let now = self.instant();
        let node = &mut self.nodes[i];
        let members = &node.view;
        let dropped = sync::prune_strays(
            &mut node.registry,
            |id| members.contains(&id),
            &mut node.strays,
            now,
        );
        if !dropped.is_empty() {
            self.conflicts(i);
        }
        // The join loop: every 0.5 s while alone, every 3 s otherwise.
        if alone || round.is_multiple_of(6) {
            self.hello_seeds(i);
        }
        // The membership shell's anti-entropy round.
        let every = (SYNC_INTERVAL.as_millis() / TICK.as_millis()).max(1) as usize;
        if round.is_multiple_of(every) {
            self.nodes[i].core.sync_round();
            self.drain(i);
        }
        self.reconcile(i);
    }

    /// Whether node `i` has a seed to join other than itself (its
    /// discovery's candidates).
    pub(crate) fn has_seeds_besides(&self, i: usize) -> bool {
        self.seeds.iter().any(|s| *s != i)
    }

    pub(crate) fn hello_seeds(&mut self, i: usize) {
        let known: BTreeSet<SocketAddr> = self.nodes[i]
            .core
            .members()
            .filter(|m| m.state.is_active())
            .map(|m| m.addr)
            .collect();
        let targets: Vec<SocketAddr> = self
            .seeds
            .iter()
            .filter(|s| **s != i)
            .map(|s| self.nodes[*s].addr)
            .filter(|a| !known.contains(a))
            .collect();
        self.nodes[i].core.join(&targets);
        self.drain(i);
    }
}

fn target(ev: &Ev) -> usize {
    match ev {
        Ev::Datagram { to, .. }
        | Ev::Registry { to, .. }
        | Ev::Message { to, .. }
        | Ev::Handoff { to, .. } => *to,
        Ev::Timer { node, .. } | Ev::Tick { node, .. } | Ev::Reconcile { node, .. } => *node,
    }
}
