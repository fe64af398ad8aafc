//! Sans-IO membership: foca plus event derivation, leave notices and joins.
//!
//! Inputs: datagrams (already opened), timer events and `now`. Outputs:
//! datagrams to seal and send, timers to schedule, [`MemberEvent`]s. No
//! sockets, no clock, a seeded RNG: the same inputs give the same outputs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use foca::{
    AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, State, Timer,
};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::accusations::Accusations;
use super::config::MembershipConfig;
use super::identity::{MemberId, SwimId};
use super::lifeguard::{Base, Lifeguard};
use super::member::{Member, MemberEvent, MemberState};
use super::seal::{DatagramKind, OVERHEAD};
use crate::NodeId;

/// How long Down and Left members stay in the view before being forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);

/// Most Down/Left members remembered at once (bounded memory under churn).
pub const MAX_REMEMBERED: usize = 4096;

type FocaT = Foca<SwimId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// A timer the core asks for: one of foca's, or the end of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreTimer {
    /// foca's own timer.
    Swim(Timer<SwimId>),
    /// This node asked a suspect whether it is alive, at the request of
    /// an accuser; no refutation by now confirms the suspicion (ADR 020).
    Check {
        /// The suspect.
        member: SwimId,
        /// Its incarnation when suspected.
        incarnation: foca::Incarnation,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Seal `body` as `kind` and send it to `to`.
    Send {
        /// Destination membership address.
        to: SocketAddr,
        /// Datagram kind.
        kind: DatagramKind,
        /// Plaintext body.
        body: Vec<u8>,
    },
    /// Call [`MembershipCore::handle_timer`] with `timer` after `after`.
    Schedule {
        /// Delay.
        after: Duration,
        /// The timer.
        timer: CoreTimer,
    },
    /// Publish an event.
    Event(MemberEvent),
}

/// A datagram the core could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("membership datagram rejected (foca): {0}")]
pub struct Rejected(pub String);

#[derive(Debug)]
struct Entry {
    member: Member,
    since: Instant,
}

/// The sans-IO membership core.
pub struct MembershipCore {
    foca: FocaT,
    rt: AccumulatingRuntime<SwimId>,
    /// This node's identity with its metadata (its generation follows
    /// foca's identity).
    local: MemberId,
    members: HashMap<NodeId, Entry>,
    /// Metadata learnt for members not (yet) in `members`, with the sync
    /// round it was learnt in (`profiles.rs`).
    profiles: HashMap<NodeId, (MemberId, usize)>,
    /// Members foca holds active whose metadata is not known yet: their
    /// `Up` waits for it, and a Who asks for it.
    pending: HashMap<NodeId, SwimId>,
    outputs: VecDeque<Output>,
    leaving: bool,
    dirty: bool,
    /// The foca settings in force ([`MembershipCore::scale`] raises
    /// `max_transmissions` with the cluster's size).
    config: foca::Config,
    /// `max_transmissions` as configured: the floor.
    min_transmissions: std::num::NonZeroU8,
    /// Join rounds so far (which candidate is pulled next).
    join_round: usize,
    /// Anti-entropy rounds so far (which member gets our digest next).
    sync_round: usize,
    /// Stale suspects asked directly (see `expire_suspects`).
    asked: std::collections::HashSet<NodeId>,
    /// Round trips and this node's health: the timers' durations.
    lifeguard: Lifeguard,
    /// The member the current probe cycle probes.
    probing: Option<NodeId>,
    /// When the next probe round and gossip round are due (their lateness
    /// measures this node's health).
    probe_due: Option<Instant>,
    gossip_due: Option<Instant>,
    /// Suspicions this node accuses or checks, with their accusers.
    accusations: Accusations,
    /// foca's current timer token (timers this core schedules for foca
    /// must carry it).
    token: Option<foca::TimerToken>,
    /// Picks the members asked to check a suspect.
    rng: SmallRng,
    /// Times this node was declared down and rejoined.
    rejoins: u64,
}

impl std::fmt::Debug for MembershipCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipCore")
            .field("local", self.foca.identity())
            .field("members", &self.members.len())
            .finish()
    }
}

/// How often a node announces itself to one random member (foca's
/// periodic announce; the answer is a packet of members).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);

/// foca settings from ours.
pub fn foca_config(c: &MembershipConfig) -> foca::Config {
    let mut f = foca::Config::new_lan(NonZeroU32::MIN.saturating_add(15));
    f.probe_period = c.probe_period;
    f.probe_rtt = c.probe_rtt;
    f.suspect_to_down_after = c.suspect_to_down;
    f.num_indirect_probes =
        NonZeroUsize::new(c.indirect_probes as usize).unwrap_or(NonZeroUsize::MIN);
    let packet = (c.max_packet_size as usize)
        .saturating_sub(OVERHEAD + 1)
        .max(256);
    f.max_packet_size = NonZeroUsize::new(packet).unwrap_or(NonZeroUsize::MIN);
    if let Some(g) = f.periodic_gossip.as_mut() {
        g.frequency = c.gossip_period;
    }
    // Announce to one random member now and then (memberlist's push-pull,
    // in foca's terms): the answer is a sample of its members, and our
    // announcement makes us known to it again. It was every 2 s, to fill
    // the tail of a mass join that gossip alone loses; the join's Pull and
    // the digest rounds of `state_sync` now do that, and each answer is a
    // packet of up to `max_packet_size` bytes: at 100 simulated nodes the
    // 2 s announce was 740 of 1,757 bytes per node per second. At 30 s,
    // the 100-node scenarios settle as fast (docs/BENCHMARKS.md,
    // "Membership traffic").
    f.periodic_announce = Some(foca::PeriodicParams {
        frequency: ANNOUNCE_EVERY,
        num_members: NonZeroUsize::MIN,
    });
    // Re-announce to members believed down every second, so both sides of
    // a healed partition find each other quickly: each side declared the
    // other down, and every node must hear of it (foca's TurnUndead answer)
    // and rejoin under a new generation. At 5 s, a healed 40|60 partition
    // of 100 simulated nodes took 13 s to settle.
    if let Some(a) = f.periodic_announce_to_down_members.as_mut() {
        a.frequency = Duration::from_secs(1);
    }
    // foca forgets down members with our view (the default is a day): the
    // announces to them stop, and memory stays bounded under churn.
    f.remove_down_after = Some(FORGET_AFTER);
    f
}

/// foca's state and incarnation for exactly this identity, if it knows it.
fn view_of(foca: &FocaT, id: &SwimId) -> Option<(State, foca::Incarnation)> {
    foca.iter_membership_state()
        .find(|m| m.id() == id)
        .map(|m| (m.state(), m.incarnation()))
}

impl MembershipCore {
    /// A core for `local`, with foca `config` and an RNG seeded by `seed`.
    pub fn new(local: MemberId, config: foca::Config, seed: u64) -> Self {
        let base = Base {
            probe_period: config.probe_period,
            probe_rtt: config.probe_rtt,
            suspect_to_down: config.suspect_to_down_after,
        };
        MembershipCore {
            min_transmissions: config.max_transmissions,
            foca: Foca::new(
                local.swim(),
                config.clone(),
                SmallRng::seed_from_u64(seed),
                PostcardCodec,
            ),
            config,
            rt: AccumulatingRuntime::new(),
            local,
            members: HashMap::new(),
            profiles: HashMap::new(),
            pending: HashMap::new(),
            outputs: VecDeque::new(),
            leaving: false,
            dirty: false,
            join_round: 0,
            sync_round: 0,
            asked: Default::default(),
            lifeguard: Lifeguard::new(base),
            probing: None,
            probe_due: None,
            gossip_due: None,
            accusations: Accusations::default(),
            token: None,
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed_c4ec),
            rejoins: 0,
        }
    }

    /// Times this node learnt it had been declared down and rejoined under
    /// a new generation.
    pub fn rejoins(&self) -> u64 {
        self.rejoins
    }

    /// Round trips and local health (leaky by design).
    pub fn lifeguard(&self) -> &Lifeguard {
        &self.lifeguard
    }

    /// How many times each update is piggybacked, for the cluster's current
    /// size: 4·log10(n + 1), as memberlist does, and never below the
    /// configured value. With a fixed count tuned for 16 nodes, a join in a
    /// 1,000-node cluster reached only part of it (the simulation showed
    /// it); the count must grow with the cluster.
    fn transmissions_for(&self, members: usize) -> std::num::NonZeroU8 {
        let n = u32::try_from(members.saturating_add(1)).unwrap_or(u32::MAX);
        let scaled =
            foca::Config::new_lan(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)).max_transmissions;
        scaled.max(self.min_transmissions)
    }

    /// Re-tunes foca to the number of members it knows.
    fn scale(&mut self) {
        let want = self.transmissions_for(self.foca.num_members());
        if want != self.config.max_transmissions {
            let mut c = self.config.clone();
            c.max_transmissions = want;
            if self.foca.set_config(c.clone()).is_ok() {
                tracing::debug!(
                    max_transmissions = want,
                    "membership dissemination re-tuned to the cluster size"
                );
                self.config = c;
            }
        }
    }

    /// This node's current identity, with its metadata.
    pub fn local(&self) -> &MemberId {
        &self.local
    }

    /// foca underneath (leaky by design).
    pub fn foca(&self) -> &FocaT {
        &self.foca
    }

    /// Known other members (alive, suspect, and recently down or left).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().map(|e| &e.member)
    }

    /// Known other members, each with when its state last changed (the
    /// `now` of that step).
    pub fn members_since(&self) -> impl Iterator<Item = (&Member, Instant)> {
        self.members.values().map(|e| (&e.member, e.since))
    }

    /// Whether the member view changed since the last call (the shell then
    /// republishes it, event or not).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A Hello asking the node at `to` to announce us into its cluster
    /// (see [`MembershipCore::join`] for a round that also pulls the
    /// member list).
    pub fn hello(&mut self, to: SocketAddr) {
        self.send_me(to, DatagramKind::Hello);
    }

    /// Handles an opened datagram.
    pub fn handle_datagram(
        &mut self,
        kind: DatagramKind,
        body: &[u8],
        now: Instant,
    ) -> Result<(), Rejected> {
        let result = match kind {
            DatagramKind::Swim => {
                let foca = &self.foca;
                self.lifeguard.received(body, now, |id| {
                    view_of(foca, id).is_some_and(|(state, _)| state == State::Alive)
                });
                self.foca
                    .handle_data(body, &mut self.rt)
                    .map_err(|e| Rejected(e.to_string()))
            }
            DatagramKind::Suspicion => self.suspicion_received(body, now),
            DatagramKind::Leave => match postcard::from_bytes::<NodeId>(body) {
                Ok(id) => {
                    self.mark_left(id, now);
                    Ok(())
                }
                Err(e) => Err(Rejected(format!("leave notice: {e}"))),
            },
            DatagramKind::Hello
            | DatagramKind::Pull
            | DatagramKind::Who
            | DatagramKind::Profile => match postcard::from_bytes::<MemberId>(body) {
                Ok(id) => self.sender_profile(kind, id, now),
                Err(e) => Err(Rejected(format!("{}: {e}", profile_label(kind)))),
            },
            DatagramKind::State => self.apply_state(body, now),
            DatagramKind::Digest => self.answer_digest(body),
        };
        self.collect(now);
        result
    }

    /// Handles a timer scheduled earlier.
    pub fn handle_timer(&mut self, timer: CoreTimer, now: Instant) {
        let timer = match timer {
            CoreTimer::Swim(t) => t,
            CoreTimer::Check {
                member,
                incarnation,
            } => {
                self.check_ended(member, incarnation, now);
                self.collect(now);
                return;
            }
        };
        if self.timer_fired(&timer, now) {
            return;
        }
        if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
            tracing::debug!(error = %e, "foca timer");
        }
        self.collect(now);
        self.expire_suspects(now);
        self.prune(now);
    }

    /// The member whose membership port is `addr` is gone: its host
    /// answered a datagram with "port unreachable" (the process died while
    /// the host lives). Declares it down at once and tells the cluster,
    /// instead of waiting for probes to time out. Returns whether an active
    /// member had that address.
    pub fn unreachable(&mut self, addr: SocketAddr, now: Instant) -> bool {
        let id = self
            .foca
            .iter_members()
            .find(|m| m.id().addr == addr)
            .map(|m| *m.id());
        let Some(id) = id else { return false };
        if let Err(e) =
            self.foca
                .apply_many(std::iter::once(foca::Member::down(id)), true, &mut self.rt)
        {
            tracing::debug!(error = %e, "foca apply down");
        }
        // Spread the news now rather than with the next probe.
        if let Err(e) = self.foca.gossip(&mut self.rt) {
            tracing::debug!(error = %e, "foca gossip");
        }
        self.collect(now);
        true
    }

    /// First step of a graceful leave: tells every active member that we
    /// are leaving, so they report `Left`. Call [`MembershipCore::finish_leave`]
    /// about one round trip later: if foca's own down notice overtook the
    /// leave notice, the others would report `Down` first.
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        let me = self.foca.identity().id;
        if let Ok(body) = postcard::to_allocvec(&me) {
            let active: Vec<SocketAddr> = self
                .members
                .values()
                .filter(|e| e.member.state.is_active())
                .map(|e| e.member.addr)
                .collect();
            for to in active {
                self.outputs.push_back(Output::Send {
                    to,
                    kind: DatagramKind::Leave,
                    body: body.clone(),
                });
            }
        }
        self.collect(now);
    }

    /// Second step of a graceful leave: foca declares us down to the cluster.
    pub fn finish_leave(&mut self, now: Instant) {
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            tracing::debug!(error = %e, "foca leave");
        }
        self.collect(now);
    }

    fn mark_left(&mut self, id: NodeId, now: Instant) {
        if let Some(e) = self.members.get_mut(&id) {
            if e.member.state != MemberState::Left {
                self.dirty = true;
                e.member.state = MemberState::Left;
                e.since = now;
                self.outputs
                    .push_back(Output::Event(MemberEvent::Left(e.member.clone())));
            }
        }
    }

    /// Drains foca's runtime into outputs and derives events.
    fn collect(&mut self, now: Instant) {
        if self.local.generation != self.foca.identity().generation {
            self.local = self.local.renamed(self.foca.identity());
        }
        while let Some((to, data)) = self.rt.to_send() {
            self.lifeguard.sent(to.addr, &data, now);
            self.outputs.push_back(Output::Send {
                to: to.addr,
                kind: DatagramKind::Swim,
                body: data.to_vec(),
            });
        }
        let mut timers = Vec::new();
        while let Some(t) = self.rt.to_schedule() {
            timers.push(t);
        }
        if let Some(Timer::SendIndirectProbe { probed_id, .. }) = timers
            .iter()
            .map(|(_, t)| t)
            .find(|t| matches!(t, Timer::SendIndirectProbe { .. }))
        {
            self.probing = Some(probed_id.id);
        }
        for (after, timer) in timers {
            let after = self.timer_set(&timer, after, now);
            self.outputs.push_back(Output::Schedule {
                after,
                timer: CoreTimer::Swim(timer),
            });
        }
        let mut notified = false;
        while let Some(n) = self.rt.to_notify() {
            self.notification(n, now);
            notified = true;
        }
        if notified {
            self.scale();
        }
        self.scan_suspects(now);
        self.close_cases();
    }

    fn notification(&mut self, n: OwnedNotification<SwimId>, now: Instant) {
        tracing::debug!(notification = ?n, "foca");
        self.dirty = true;
        match n {
            OwnedNotification::MemberUp(id) => self.member_up(id, now),
            OwnedNotification::MemberDown(id) => {
                if self
                    .pending
                    .get(&id.id)
                    .is_some_and(|p| p.generation <= id.generation)
                {
                    self.pending.remove(&id.id);
                }
                if let Some(e) = self.members.get_mut(&id.id) {
                    if e.member.generation > id.generation || !e.member.state.is_active() {
                        return;
                    }
                    e.member.state = MemberState::Down;
                    e.since = now;
                    self.outputs
                        .push_back(Output::Event(MemberEvent::Down(e.member.clone())));
                    // Whatever comes back starts with a fresh estimate.
                    self.lifeguard.forget(id.id);
                }
            }
            // Same node, renewed identity (rejoined after being declared
            // down): keep its entry, with the new generation.
            OwnedNotification::Rename(old, new) if old.id == new.id => self.renewed(new),
            // A different node took over the address (a process restarted
            // at the same address before the old one was declared down).
            // foca replaces the old identity in place and, as the address
            // was active, sends no MemberUp for the new one and no
            // MemberDown for the old: the old node is gone (Down), the new
            // one is up. Found by the simulation's rolling restart; before
            // this, the old id stayed Alive and the new one was never seen.
            //
            // The old one may already be Left here (its leave notice came
            // first) while foca still held it alive: then too no MemberUp
            // follows, so whether foca holds `new` active decides.
            OwnedNotification::Rename(old, new) => {
                if let Some(e) = self
                    .members
                    .get_mut(&old.id)
                    .filter(|e| e.member.state.is_active())
                {
                    e.member.state = MemberState::Down;
                    e.since = now;
                    self.outputs
                        .push_back(Output::Event(MemberEvent::Down(e.member.clone())));
                }
                let new_active = self
                    .foca
                    .iter_membership_state()
                    .any(|m| m.id() == &new && m.state() != State::Down);
                let known = self
                    .members
                    .get(&new.id)
                    .is_some_and(|e| e.member.state.is_active());
                if !new_active || known {
                    return; // a MemberUp for `new` follows, if it becomes active
                }
                self.member_up(new, now);
            }
            OwnedNotification::Active => tracing::debug!("membership active: joined a cluster"),
            OwnedNotification::Idle => tracing::debug!("membership idle: no active members"),
            OwnedNotification::Defunct if self.leaving => tracing::debug!("left the cluster"),
            OwnedNotification::Defunct => tracing::warn!("membership: this node was declared down"),
            OwnedNotification::Rejoin(id) => {
                self.rejoins += 1;
                tracing::info!(
                    generation = id.generation,
                    "declared down by the cluster; rejoined"
                )
            }
        }
    }

    /// foca holds `id` active: it is up, once its metadata is known (else
    /// a Who asks for it, and its arrival calls this again).
    fn member_up(&mut self, id: SwimId, now: Instant) {
        let Some(full) = self.metadata_for(&id) else {
            self.ask(id);
            return;
        };
        self.pending.remove(&id.id);
        // Not always called from a notification: a Profile's arrival
        // completes a pending member's Up too.
        self.dirty = true;
        let incarnation = self.incarnation_of(&id);
        match self.members.get_mut(&id.id) {
            // A node that left comes back only as a newer generation.
            Some(e)
                if e.member.state == MemberState::Left && id.generation <= e.member.generation => {}
            Some(e) => {
                e.member = Member::from_identity(&full, MemberState::Alive, incarnation);
                e.since = now;
                self.outputs
                    .push_back(Output::Event(MemberEvent::Up(e.member.clone())));
            }
            None => {
                let member = Member::from_identity(&full, MemberState::Alive, incarnation);
                self.outputs
                    .push_back(Output::Event(MemberEvent::Up(member.clone())));
                self.members.insert(id.id, Entry { member, since: now });
            }
        }
    }

    fn incarnation_of(&self, id: &SwimId) -> u16 {
        view_of(&self.foca, id).map_or(0, |(_, incarnation)| incarnation)
    }

    /// foca does not notify suspicion; derive Suspect (and refutation) from
    /// its member states.
    fn scan_suspects(&mut self, now: Instant) {
        for m in self.foca.iter_membership_state() {
            let Some(e) = self.members.get_mut(&m.id().id) else {
                continue;
            };
            if e.member.generation != m.id().generation {
                continue;
            }
            let before = e.member.state;
            e.member.incarnation = m.incarnation();
            let event = match (before, m.state()) {
                (MemberState::Alive, State::Suspect) => {
                    e.member.state = MemberState::Suspect;
                    MemberEvent::Suspect(e.member.clone())
                }
                (MemberState::Suspect, State::Alive) => {
                    e.member.state = MemberState::Alive;
                    MemberEvent::Up(e.member.clone())
                }
                _ => continue,
            };
            e.since = now;
            self.dirty = true;
            self.outputs.push_back(Output::Event(event));
        }
    }

    /// Settles suspicions that outlived their timeout. foca runs the
    /// suspicion timer only on the member that suspected (after a failed
    /// probe); the others wait for its Down notice or for the suspect's
    /// refutation. A node that misses both (gossip sends each update a
    /// bounded number of times) keeps the member Suspect, counted as
    /// active, until it next talks to it: up to one probe round, over half
    /// a minute in a 100-node cluster. The simulation showed it: in a
    /// 40|60 partition a minority node kept ten majority members Suspect
    /// for 8 s, counted half the base and ran a singleton next to the
    /// majority's.
    ///
    /// After twice the timeout we ask the suspect directly (an announce:
    /// its answer carries its current incarnation, so a refutation we
    /// missed lands). After four times, it has not answered or has not
    /// refuted, and the suspecter's timer has long fired: declared down,
    /// as the cluster did. memberlist runs the timer on every node that
    /// learns a suspicion; this is the same rule with the suspecter given a
    /// head start.
    fn expire_suspects(&mut self, now: Instant) {
        let mut ask = Vec::new();
        let mut stale = Vec::new();
        for (id, e) in &self.members {
            if e.member.state != MemberState::Suspect {
                continue;
            }
            let timeout = self.lifeguard.suspicion(*id);
            let age = now.saturating_duration_since(e.since);
            if age >= timeout.saturating_mul(4) {
                stale.push(*id);
            } else if age >= timeout.saturating_mul(2) && !self.asked.contains(id) {
                ask.push(*id);
            }
        }
        let members = &self.members;
        self.asked.retain(|id| {
            members
                .get(id)
                .is_some_and(|e| e.member.state == MemberState::Suspect)
        });
        if ask.is_empty() && stale.is_empty() {
            return;
        }
        let suspects: Vec<foca::Member<SwimId>> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .filter(|m| ask.contains(&m.id().id) || stale.contains(&m.id().id))
            .cloned()
            .collect();
        let mut down = Vec::new();
        for m in suspects {
            if stale.contains(&m.id().id) {
                down.push(foca::Member::new(*m.id(), m.incarnation(), State::Down));
            } else {
                self.asked.insert(m.id().id);
                self.notify_suspect(*m.id(), m.incarnation());
                if let Err(e) = self.foca.announce(*m.id(), &mut self.rt) {
                    tracing::debug!(error = %e, "foca announce to a suspect");
                }
            }
        }
        if !down.is_empty() {
            tracing::debug!(
                members = down.len(),
                "suspicions outlived their timeout: declared down"
            );
            if let Err(e) = self.foca.apply_many(down.into_iter(), true, &mut self.rt) {
                tracing::debug!(error = %e, "foca apply down");
            }
        }
        self.collect(now);
    }

    fn prune(&mut self, now: Instant) {
        let before = self.members.len();
        let lifeguard = &mut self.lifeguard;
        self.members.retain(|id, e| {
            let keep =
                e.member.state.is_active() || now.saturating_duration_since(e.since) < FORGET_AFTER;
            if !keep {
                lifeguard.forget(*id);
            }
            keep
        });
        let gone = self
            .members
            .values()
            .filter(|e| !e.member.state.is_active())
            .count();
        if gone > MAX_REMEMBERED {
            let mut old: Vec<(Instant, NodeId)> = self
                .members
                .iter()
                .filter(|(_, e)| !e.member.state.is_active())
                .map(|(id, e)| (e.since, *id))
                .collect();
            old.sort();
            for (_, id) in old.into_iter().take(gone - MAX_REMEMBERED) {
                self.members.remove(&id);
            }
        }
        self.dirty |= self.members.len() != before;
    }
}

/// How a rejected datagram that carries its sender's profile is named.
fn profile_label(kind: DatagramKind) -> &'static str {
    match kind {
        DatagramKind::Hello => "hello",
        DatagramKind::Pull => "pull",
        DatagramKind::Who => "who",
        _ => "profile",
    }
}

#[path = "state_sync.rs"]
mod state_sync;

#[path = "profiles.rs"]
mod profiles;

#[path = "suspicion.rs"]
mod suspicion;
pub use state_sync::SYNC_INTERVAL;

#[cfg(test)]
#[path = "sim_tests.rs"]
mod sim_tests;
