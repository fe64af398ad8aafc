//! The tokio shell around [`MembershipCore`]: UDP socket, sealing, timers.

use crate::locks::RwLocked as _;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::canary::Canaries;
use super::core::{CoreTimer, MembershipCore, Output, SYNC_INTERVAL};
use super::freshness::{Freshness, Refused};
use super::seal::{OpenError, Sealer};
use super::socket::MembershipSocket;
use super::{Member, MemberEvent, MemberId, MemberState};
use crate::id::NodeId;
use crate::shell_time::{now, sleep_until, wall_ms};
use crate::telemetry::{DropReason, MemberEventKind, RateMeter, Stats, RATE_WINDOW};

/// Events buffered per subscriber; a subscriber that falls further behind
/// skips the oldest and is told how many it missed.
pub(crate) const EVENT_BUFFER: usize = 1024;

/// Period of canary nudges (crash detection between probes).
const NUDGE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Members nudged per period, in turn.
const NUDGE_PEERS: usize = 8;

/// Commands queued to the membership task.
const COMMAND_BUFFER: usize = 256;

type Inspect = Box<dyn FnOnce(&MembershipCore) + Send>;

enum Command {
    Hello(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
    Inspect(Inspect),
}

/// A member in the published view, with when its state last changed.
#[derive(Debug)]
struct Known {
    member: Member,
    since: std::time::Instant,
}

/// Handle to the running membership protocol (clone it freely).
#[derive(Clone)]
pub struct Membership {
    local: MemberId,
    commands: mpsc::Sender<Command>,
    view: Arc<RwLock<HashMap<NodeId, Known>>>,
    events: broadcast::Sender<MemberEvent>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("local", &self.local)
            .finish()
    }
}

impl Membership {
    /// Starts the protocol on `socket`. Crash detection through "port
    /// unreachable" (canary sockets) runs only on a kernel socket, and only
    /// with `config.port_unreachable`; leaving waits one `config.probe_rtt`
    /// for the announcement to go out.
    pub(crate) fn start(
        socket: MembershipSocket,
        core: MembershipCore,
        sealer: Sealer,
        stats: Arc<Stats>,
        config: &crate::config::MembershipConfig,
        faults: crate::faults::Faults,
        tasks: crate::tasks::Tasks,
    ) -> (Membership, JoinHandle<()>) {
        let (commands, rx) = mpsc::channel(COMMAND_BUFFER);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let handle = Membership {
            local: core.local().clone(),
            commands,
            view: Arc::new(RwLock::new(HashMap::new())),
            events: events.clone(),
            cancel: CancellationToken::new(),
        };
        let (canaries, unreachable) = if socket.is_kernel() && config.port_unreachable {
            let bind = socket
                .local_addr()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
            let (canaries, rx) = Canaries::new(bind, handle.cancel.clone(), tasks.clone());
            (Some(canaries), rx)
        } else {
            // No canaries: the sender is dropped, the branch stays idle.
            (None, mpsc::channel(1).1)
        };
        let shell = Shell {
            canaries,
            unreachable,
            active: HashSet::new(),
            nudge_round: 0,
            socket,
            core,
            sealer,
            freshness: Freshness::new(config.replay_window),
            skew_warnings: crate::throttle::Throttle::new(std::time::Duration::from_secs(10)),
            stats,
            rx,
            view: handle.view.clone(),
            events,
            cancel: handle.cancel.clone(),
            timers: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            leave_grace: config.probe_rtt,
            faults,
        };
        let task = tokio::spawn(shell.run().instrument(tasks.span().clone()));
        (handle, task)
    }

    /// This node's identity (with its metadata).
    pub fn local(&self) -> &MemberId {
        &self.local
    }

    /// Other members as this node sees them (alive, suspect, recently down
    /// or left).
    pub fn members(&self) -> Vec<Member> {
        let view = self.view.read_locked();
        view.values().map(|k| k.member.clone()).collect()
    }

    /// Other members, each with when its state last changed as this node
    /// saw it (the dashboard's "since").
    pub fn members_since(&self) -> Vec<(Member, std::time::Instant)> {
        let view = self.view.read_locked();
        view.values().map(|k| (k.member.clone(), k.since)).collect()
    }

    /// One member by id, if this node knows it.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        let view = self.view.read_locked();
        view.get(&id).map(|k| k.member.clone())
    }

    /// Whether `id` is an active member (alive or suspect) as this node
    /// sees it.
    pub fn is_active(&self, id: NodeId) -> bool {
        let view = self.view.read_locked();
        view.get(&id).is_some_and(|k| k.member.state.is_active())
    }

    /// The state of member `id` as this node sees it, if it knows it.
    pub fn state_of(&self, id: NodeId) -> Option<MemberState> {
        let view = self.view.read_locked();
        view.get(&id).map(|k| k.member.state)
    }

    /// Runs `f` on the state of every member under one read of the view
    /// (for a caller that asks about several).
    pub(crate) fn with_states<R>(
        &self,
        f: impl FnOnce(&dyn Fn(NodeId) -> Option<MemberState>) -> R,
    ) -> R {
        let view = self.view.read_locked();
        f(&|id| view.get(&id).map(|k| k.member.state))
    }

    /// A receiver of membership events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    /// Asks the nodes at these membership addresses to let us join.
    pub fn hello(&self, addrs: Vec<SocketAddr>) {
        if self.commands.try_send(Command::Hello(addrs)).is_err() {
            tracing::debug!("membership busy; hello skipped (the next round retries)");
        }
    }

    /// Runs `f` on the sans-IO core (and foca through
    /// [`MembershipCore::foca`]) inside the membership task.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&MembershipCore) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Inspect = Box::new(move |core| {
            let _ = tx.send(f(core));
        });
        self.commands.send(Command::Inspect(job)).await.ok()?;
        rx.await.ok()
    }

    /// Leaves gracefully and stops the task.
    pub(crate) async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.cancel.cancel();
    }

    /// Whether the membership task has been stopped.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Stops without leaving (a crash, as the others see it).
    pub(crate) fn abort(&self) {
        self.cancel.cancel();
    }
}

struct Shell {
    socket: MembershipSocket,
    core: MembershipCore,
    sealer: Sealer,
    /// Replay window and cache of the datagrams received.
    freshness: Freshness,
    /// Datagrams refused for their age: warned at most once per 10 s.
    skew_warnings: crate::throttle::Throttle,
    stats: Arc<Stats>,
    rx: mpsc::Receiver<Command>,
    view: Arc<RwLock<HashMap<NodeId, Known>>>,
    events: broadcast::Sender<MemberEvent>,
    cancel: CancellationToken,
    timers: BinaryHeap<Reverse<(tokio::time::Instant, u64)>>,
    pending: HashMap<u64, CoreTimer>,
    seq: u64,
    leave_grace: std::time::Duration,
    faults: crate::faults::Faults,
    /// Canary sockets (kernel sockets only).
    canaries: Option<Canaries>,
    unreachable: mpsc::Receiver<SocketAddr>,
    /// Membership addresses of active members (datagrams to them go out
    /// on their canary socket).
    active: HashSet<SocketAddr>,
    nudge_round: usize,
}

impl Shell {
    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut nudge = tokio::time::interval(NUDGE_EVERY);
        nudge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync = tokio::time::interval(SYNC_INTERVAL);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = tokio::time::Instant::now() + RATE_WINDOW;
        let mut rates = tokio::time::interval_at(start, RATE_WINDOW);
        rates.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut meter = RateMeter::new(
            tokio::time::Instant::now().into_std(),
            self.stats.membership_traffic(),
        );
        loop {
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = self.socket.recv(&mut buf) => match r {
                    Ok(got) => {
                        if got.len == 0 {
                            self.stats.membership_traffic().received(0);
                        }
                        for datagram in buf[..got.len].chunks_mut(got.stride) {
                            self.stats.membership_traffic().received(datagram.len());
                            self.datagram(datagram, got.from);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "membership recv"),
                },
                _ = sleep_until(next) => self.fire_timers(),
                _ = nudge.tick() => self.nudge().await,
                _ = sync.tick() => self.core.sync_round(),
                _ = rates.tick() => {
                    meter.update(tokio::time::Instant::now().into_std(), self.stats.membership_traffic());
                }
                Some(addr) = self.unreachable.recv() => {
                    if self.core.unreachable(addr, now()) {
                        tracing::info!(peer = %addr, "member's port unreachable (its process is gone): declared down");
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Hello(addrs)) => self.core.join(&addrs),
                    Some(Command::Leave(done)) => {
                        self.core.leave(now());
                        self.flush().await;
                        tokio::time::sleep(self.leave_grace).await;
                        self.core.finish_leave(now());
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Inspect(f)) => f(&self.core),
                    None => return,
                },
            }
            self.flush().await;
        }
    }

    fn datagram(&mut self, data: &mut [u8], from: SocketAddr) {
        // Empty datagrams are canary nudges (see `nudge`): nothing to read.
        if data.is_empty() || self.faults.drops_from(from) {
            return;
        }
        let (kind, body) = match self.sealer.open_fresh(data, &mut self.freshness, wall_ms()) {
            Ok(x) => x,
            Err(e) => {
                let reason = match e {
                    OpenError::Truncated => DropReason::Truncated,
                    OpenError::Unauthenticated => DropReason::Unauthenticated,
                    OpenError::Refused(Refused::Replayed) => DropReason::Replayed,
                    OpenError::Refused(_) => DropReason::Stale,
                    _ => DropReason::Malformed,
                };
                self.stats.datagram_dropped(reason);
                if reason == DropReason::Stale {
                    // A replay, or a host whose clock is off: the operator
                    // must hear of the second, as that host cannot join.
                    if let Some(suppressed) = self.skew_warnings.admit(std::time::Instant::now()) {
                        tracing::warn!(%from, error = %e, suppressed, "membership datagram refused: replayed, or the clocks of this host and the sender differ by more than membership.replay_window_ms; check that both hosts synchronise their clocks (NTP)");
                    }
                } else {
                    tracing::debug!(%from, error = %e, "membership datagram dropped");
                }
                return;
            }
        };
        if let Err(e) = self.core.handle_datagram(kind, body, now()) {
            self.stats.datagram_dropped(DropReason::Malformed);
            tracing::debug!(%from, error = %e, "membership datagram dropped");
        }
    }

    /// Sends an empty datagram to a few active members on their canary
    /// sockets, so a crashed member's port answers "unreachable" within
    /// about [`NUDGE_EVERY`] even between SWIM probes. At most
    /// [`NUDGE_PEERS`] per round, in turn: bounded whatever the size of the
    /// cluster.
    async fn nudge(&mut self) {
        let Some(canaries) = self.canaries.as_mut() else {
            return;
        };
        if self.active.is_empty() {
            return;
        }
        let mut addrs: Vec<SocketAddr> = self.active.iter().copied().collect();
        addrs.sort();
        let n = addrs.len().min(NUDGE_PEERS);
        for k in 0..n {
            let to = addrs[(self.nudge_round + k) % addrs.len()];
            if self.faults.drops_to(to) {
                continue;
            }
            if let Some(c) = canaries.socket(to) {
                match c.send(&[]).await {
                    Ok(_) => self.stats.membership_traffic().sent(0),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        canaries.refused(to);
                    }
                    Err(_) => {}
                }
            }
        }
        self.nudge_round = self.nudge_round.wrapping_add(n);
    }

    fn fire_timers(&mut self) {
        let due = tokio::time::Instant::now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > due {
                break;
            }
            self.timers.pop();
            if let Some(timer) = self.pending.remove(&seq) {
                self.core.handle_timer(timer, now());
            }
        }
    }

    /// Sends datagrams, schedules timers, then publishes the view before
    /// the events, so a subscriber that receives an event already sees it
    /// reflected in `members()`.
    async fn flush(&mut self) {
        self.stats
            .set_membership_health(self.core.lifeguard().score());
        self.stats.set_rejoins(self.core.rejoins());
        let mut events = Vec::new();
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Send { to, .. } if self.faults.drops_to(to) => {}
                Output::Send { to, kind, body } => {
                    let sealed = self.sealer.seal(kind, &body, rand::random(), wall_ms());
                    let canary = match self.canaries.as_mut() {
                        Some(c) if self.active.contains(&to) => c.socket(to),
                        _ => None,
                    };
                    let sent = match &canary {
                        Some(c) => c.send(&sealed).await.map(|_| ()),
                        None => self.socket.send_to(&sealed, to).await,
                    };
                    match sent {
                        Err(e)
                            if canary.is_some()
                                && e.kind() == std::io::ErrorKind::ConnectionRefused =>
                        {
                            if let Some(c) = self.canaries.as_mut() {
                                c.refused(to);
                            }
                        }
                        Err(e) => tracing::debug!(%to, error = %e, "membership send"),
                        Ok(()) => self.stats.membership_traffic().sent(sealed.len()),
                    }
                }
                Output::Schedule { after, timer } => {
                    self.seq += 1;
                    self.pending.insert(self.seq, timer);
                    self.timers
                        .push(Reverse((tokio::time::Instant::now() + after, self.seq)));
                }
                Output::Event(ev) => {
                    self.stats.member_event(match &ev {
                        MemberEvent::Up(_) => MemberEventKind::Up,
                        MemberEvent::Suspect(_) => MemberEventKind::Suspect,
                        MemberEvent::Down(_) => MemberEventKind::Down,
                        MemberEvent::Left(_) => MemberEventKind::Left,
                    });
                    events.push(ev)
                }
            }
        }
        if !self.core.take_dirty() && events.is_empty() {
            return;
        }
        let snapshot: HashMap<NodeId, Known> = self
            .core
            .members_since()
            .map(|(m, since)| {
                let member = m.clone();
                (m.id, Known { member, since })
            })
            .collect();
        self.active = snapshot
            .values()
            .filter(|k| k.member.state.is_active())
            .map(|k| k.member.addr)
            .collect();
        if let Some(c) = self.canaries.as_mut() {
            c.retain(&self.active);
        }
        *self.view.write_locked() = snapshot;
        for ev in events {
            log_event(&ev);
            let _ = self.events.send(ev);
        }
    }
}

fn log_event(ev: &MemberEvent) {
    let m = ev.member();
    let state = match ev {
        MemberEvent::Up(_) => MemberState::Alive,
        MemberEvent::Suspect(_) => MemberState::Suspect,
        MemberEvent::Down(_) => MemberState::Down,
        MemberEvent::Left(_) => MemberState::Left,
    };
    match state {
        MemberState::Alive => {
            tracing::info!(node = %m.id, name = %m.name, addr = %m.addr, "member up")
        }
        MemberState::Suspect => tracing::info!(node = %m.id, name = %m.name, "member suspect"),
        MemberState::Down => tracing::warn!(node = %m.id, name = %m.name, "member down"),
        MemberState::Left => tracing::info!(node = %m.id, name = %m.name, "member left"),
    }
}
