//! Lifeguard's side of the core (ADRs 019 and 020): the durations of
//! foca's timers as they go out and their lateness as they come back; the
//! "you are suspected" notice and its answer; accusations, checks and the
//! suspicion timeout they shrink.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Incarnation, State, Timer};
use rand::seq::SliceRandom;

use super::{view_of, CoreTimer, MembershipCore, Output, Rejected};
use crate::membership::accusations::{shrink, CHECKERS, CONFIRMATIONS};
use crate::membership::identity::SwimId;
use crate::membership::lifeguard::LATE;
use crate::membership::seal::DatagramKind;
use crate::NodeId;

/// A timer that fires this much before its due time was scheduled for an
/// earlier due time that moved later (a re-armed one): ignored.
const EARLY: Duration = Duration::from_millis(1);

impl MembershipCore {
    /// The duration of a timer foca asks for, as Lifeguard sets it; notes
    /// when it is due. A suspicion timer means this node's probe failed:
    /// it accuses the member.
    pub(super) fn timer_set(
        &mut self,
        timer: &Timer<SwimId>,
        after: Duration,
        now: Instant,
    ) -> Duration {
        let lg = &self.lifeguard;
        match timer {
            Timer::SendIndirectProbe { probed_id, .. } => lg.probe_timeout(probed_id.id),
            Timer::ProbeRandomMember(token) => {
                let after = lg.probe_period(self.probing);
                self.token = Some(*token);
                self.probe_due = Some(now + after);
                after
            }
            Timer::PeriodicGossip(token) => {
                self.token = Some(*token);
                self.gossip_due = Some(now + after);
                after
            }
            Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                token,
            } => {
                self.token = Some(*token);
                let due = self.accuse(member_id, *incarnation, true, now);
                due.saturating_duration_since(now)
            }
            _ => after,
        }
    }

    /// Notes how late a timer fired. Returns true when the core handled it
    /// itself: a suspicion timer that fired late is armed once more (this
    /// node was not there to hear a refutation), and one due later than
    /// it fired (re-armed since) waits for its later copy.
    pub(super) fn timer_fired(&mut self, timer: &Timer<SwimId>, now: Instant) -> bool {
        let late = |due: Option<Instant>| due.map(|d| now.saturating_duration_since(d));
        match timer {
            Timer::ProbeRandomMember(_) => {
                if let Some(l) = late(self.probe_due.take()) {
                    self.lifeguard.timer_late(l);
                }
            }
            Timer::PeriodicGossip(_) => {
                if let Some(l) = late(self.gossip_due.take()) {
                    self.lifeguard.timer_late(l);
                }
            }
            Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                ..
            } => {
                // foca 2.0.0 sends the member a TurnUndead when this timer
                // fires even if the suspicion was refuted since (it checks
                // the incarnation before declaring it down, not before
                // that courtesy message): the live member then believes
                // it was declared down and rejoins under a new
                // generation. Under 10% loss the simulation showed every
                // node rejoining up to ten times in ten minutes, with
                // members missing from views meanwhile. A timer whose
                // suspicion is over does not reach foca.
                if view_of(&self.foca, member_id) != Some((State::Suspect, *incarnation)) {
                    return true;
                }
                let long = self.lifeguard.suspicion(member_id.id);
                let Some(case) = self.accusations.get_mut(member_id.id, *incarnation) else {
                    return false;
                };
                let Some(due) = case.due else { return false };
                if now + EARLY < due {
                    return true;
                }
                let lateness = now.saturating_duration_since(due);
                if lateness >= LATE && !case.rearmed {
                    case.rearmed = true;
                    case.due = Some(now + long);
                    self.lifeguard.timer_late(lateness);
                    self.outputs.push_back(Output::Schedule {
                        after: long,
                        timer: CoreTimer::Swim(timer.clone()),
                    });
                    return true;
                }
                case.due = None;
            }
            _ => {}
        }
        false
    }

    /// This node suspects `suspect` at `incarnation` itself (its probe or
    /// its check failed): it joins the case as an accuser, and the first
    /// time, tells the suspect and the accusers it knows; with `recruit`
    /// (its own probe failed), it also asks [`CHECKERS`] random members to
    /// check. Returns when it declares the member down.
    fn accuse(
        &mut self,
        suspect: &SwimId,
        incarnation: Incarnation,
        recruit: bool,
        now: Instant,
    ) -> Instant {
        let me = self.foca.identity().id;
        let timeout = self.suspicion_timeout(suspect.id);
        let case = self.accusations.open(suspect.id, incarnation, now);
        let first = !case.accuses(me);
        case.accuse(me);
        let due = case.since + timeout(case.confirmations());
        let due = case.due.map_or(due, |d| d.min(due));
        case.due = Some(due);
        let mut told: Vec<NodeId> = case.accusers().to_vec();
        tracing::debug!(node = %me, member = %suspect.id, incarnation, confirmations = case.confirmations(), in_ms = due.saturating_duration_since(now).as_millis() as u64, score = self.lifeguard.score(), rtt = ?self.lifeguard.rtt(suspect.id), "accused");
        if first {
            self.notify_suspect(*suspect, incarnation);
            if recruit {
                let mut others: Vec<NodeId> = self
                    .members
                    .values()
                    .filter(|e| e.member.state.is_active())
                    .map(|e| e.member.id)
                    .filter(|id| *id != suspect.id && !told.contains(id))
                    .collect();
                others.sort_unstable();
                others.shuffle(&mut self.rng);
                told.extend(others.into_iter().take(CHECKERS));
            }
            let to: Vec<SocketAddr> = told
                .iter()
                .filter(|id| **id != me)
                .filter_map(|id| self.members.get(id).map(|e| e.member.addr))
                .collect();
            for to in to {
                self.send_suspicion(to, *suspect, incarnation, 1);
            }
        }
        due
    }

    /// The suspicion timeout of `id` after some confirmations: from
    /// Lifeguard's long one to its short one, as many confirmations as
    /// the cluster can give ([`CONFIRMATIONS`] at most) are expected.
    fn suspicion_timeout(&self, id: NodeId) -> impl Fn(u32) -> Duration {
        let (short, long) = (
            self.lifeguard.suspicion_short(id),
            self.lifeguard.suspicion(id),
        );
        // Members able to confirm: every active one but the suspect.
        let others = u32::try_from(self.foca.num_members().saturating_sub(1)).unwrap_or(u32::MAX);
        let expected = others.min(CONFIRMATIONS);
        move |confirmations| shrink(short, long, confirmations, expected)
    }

    /// Tells `suspect` that this node suspects it (twice: one datagram may
    /// be lost), so it refutes at once instead of waiting for gossip.
    pub(super) fn notify_suspect(&mut self, suspect: SwimId, incarnation: Incarnation) {
        let to = suspect.addr;
        self.send_suspicion(to, suspect, incarnation, 2);
    }

    /// One `Suspicion` datagram: `suspect` is suspected, by this node.
    fn send_suspicion(
        &mut self,
        to: SocketAddr,
        suspect: SwimId,
        incarnation: Incarnation,
        copies: usize,
    ) {
        let notice = (
            foca::Member::new(suspect, incarnation, State::Suspect),
            *self.foca.identity(),
        );
        if let Ok(body) = postcard::to_allocvec(&notice) {
            for _ in 0..copies {
                self.outputs.push_back(Output::Send {
                    to,
                    kind: DatagramKind::Suspicion,
                    body: body.clone(),
                });
            }
        }
    }

    /// A `Suspicion` datagram: about this node, refute; about another
    /// member, an accusation.
    pub(super) fn suspicion_received(&mut self, body: &[u8], now: Instant) -> Result<(), Rejected> {
        let (suspicion, from): (foca::Member<SwimId>, SwimId) =
            postcard::from_bytes(body).map_err(|e| Rejected(format!("suspicion: {e}")))?;
        let me = self.foca.identity();
        if suspicion.state() != State::Suspect || from.id == me.id {
            return Ok(());
        }
        if suspicion.id().id == me.id {
            return self.refute(suspicion, from);
        }
        self.accused_by(suspicion, from.id, now)
    }

    /// "You are suspected": refute (foca raises our incarnation) and answer
    /// the sender, whose foca then sees the new incarnation at once. A
    /// notice about an earlier identity of ours is ignored.
    fn refute(&mut self, suspicion: foca::Member<SwimId>, from: SwimId) -> Result<(), Rejected> {
        if suspicion.id() != self.foca.identity() {
            return Ok(());
        }
        self.foca
            .apply_many(std::iter::once(suspicion), true, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))?;
        self.foca
            .announce(from, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))
    }

    /// `by` accuses a member. Counted if this node's view has it at that
    /// incarnation or older; an accuser's suspicion timeout shrinks, and
    /// a node that neither accuses nor checked yet checks: it tells the
    /// suspect, which refutes if it can, and waits one probe timeout.
    fn accused_by(
        &mut self,
        suspicion: foca::Member<SwimId>,
        by: NodeId,
        now: Instant,
    ) -> Result<(), Rejected> {
        let (suspect, incarnation) = (*suspicion.id(), suspicion.incarnation());
        let Some(current) = view_of(&self.foca, &suspect) else {
            return Ok(());
        };
        if current.0 == State::Down || current.1 > incarnation {
            return Ok(()); // refuted since, or settled
        }
        if current != (State::Suspect, incarnation) {
            self.foca
                .apply_many(std::iter::once(suspicion), true, &mut self.rt)
                .map_err(|e| Rejected(e.to_string()))?;
        }
        let timeout = self.suspicion_timeout(suspect.id);
        let case = self.accusations.open(suspect.id, incarnation, now);
        let new = case.accuse(by);
        match case.due {
            Some(due) if new => {
                let sooner = case.since + timeout(case.confirmations());
                if sooner + EARLY < due {
                    case.due = Some(sooner);
                    tracing::debug!(member = %suspect.id, incarnation, confirmations = case.confirmations(), "suspicion confirmed");
                    self.schedule_down(suspect, incarnation, sooner, now);
                }
            }
            Some(_) => {}
            None if !case.checked => {
                case.checked = true;
                let wait = self.lifeguard.probe_timeout(suspect.id);
                self.notify_suspect(suspect, incarnation);
                self.outputs.push_back(Output::Schedule {
                    after: wait,
                    timer: CoreTimer::Check {
                        member: suspect,
                        incarnation,
                    },
                });
            }
            None => {}
        }
        Ok(())
    }

    /// The end of a check: a suspect still suspected at the incarnation it
    /// was checked at did not refute, and this node accuses it too. A
    /// check that ended late proves nothing (this node may not have read
    /// the refutation yet).
    pub(super) fn check_ended(&mut self, suspect: SwimId, incarnation: Incarnation, now: Instant) {
        let wait = self.lifeguard.probe_timeout(suspect.id);
        let Some(case) = self.accusations.get(suspect.id, incarnation) else {
            return;
        };
        let late = now.saturating_duration_since(case.since + wait) >= LATE;
        let silent = view_of(&self.foca, &suspect) == Some((State::Suspect, incarnation));
        if late || !silent || case.due.is_some() {
            return;
        }
        let due = self.accuse(&suspect, incarnation, false, now);
        self.schedule_down(suspect, incarnation, due, now);
    }

    /// Schedules foca's own suspicion timer for `suspect` at `due` (foca
    /// declares it down then if it is still suspected at `incarnation`).
    fn schedule_down(
        &mut self,
        suspect: SwimId,
        incarnation: Incarnation,
        due: Instant,
        now: Instant,
    ) {
        let Some(token) = self.token else { return };
        self.outputs.push_back(Output::Schedule {
            after: due.saturating_duration_since(now),
            timer: CoreTimer::Swim(Timer::ChangeSuspectToDown {
                member_id: suspect,
                incarnation,
                token,
            }),
        });
    }

    /// Closes the cases of members no longer suspected at their
    /// incarnation (refuted, declared down, gone).
    pub(super) fn close_cases(&mut self) {
        if self.accusations.is_empty() {
            return;
        }
        let suspected: Vec<(NodeId, Incarnation)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| (m.id().id, m.incarnation()))
            .collect();
        self.accusations
            .retain(|id, inc| suspected.contains(&(id, inc)));
    }
}
