//! Lifeguard's side of the core (ADR 019): the durations of foca's timers
//! as they go out, their lateness as they come back, and the direct
//! "you are suspected" notice and its answer.

use std::time::{Duration, Instant};

use foca::{State, Timer};

use super::{MembershipCore, Output, Rejected};
use crate::membership::identity::MemberId;
use crate::membership::lifeguard::LATE;
use crate::membership::seal::DatagramKind;

impl MembershipCore {
    /// The duration of a timer foca asks for, as Lifeguard sets it; notes
    /// when it is due, and tells a member this node starts to suspect.
    pub(super) fn timer_set(
        &mut self,
        timer: &Timer<MemberId>,
        after: Duration,
        now: Instant,
    ) -> Duration {
        let lg = &self.lifeguard;
        match timer {
            Timer::SendIndirectProbe { probed_id, .. } => lg.probe_timeout(probed_id.id),
            Timer::ProbeRandomMember(_) => {
                let after = lg.probe_period(self.probing);
                self.probe_due = Some(now + after);
                after
            }
            Timer::PeriodicGossip(_) => {
                self.gossip_due = Some(now + after);
                after
            }
            Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                ..
            } => {
                let after = lg.suspicion(member_id.id);
                let (id, inc) = (member_id.id, *incarnation);
                self.suspicions.retain(|s| (s.0, s.1) != (id, inc));
                self.suspicions.push((id, inc, now + after, false));
                tracing::debug!(member = %id, incarnation = inc, ?after, score = lg.score(), rtt = ?lg.rtt(id), network = ?lg.network(), "suspicion timer set");
                self.notify_suspect(member_id.clone(), inc);
                after
            }
            _ => after,
        }
    }

    /// Notes how late a timer fired. Returns true when the core handled it
    /// itself: a suspicion timer that fired late is armed once more (this
    /// node was not there to hear a refutation).
    pub(super) fn timer_fired(&mut self, timer: &Timer<MemberId>, now: Instant) -> bool {
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
                let key = (member_id.id, *incarnation);
                let Some(k) = self.suspicions.iter().position(|s| (s.0, s.1) == key) else {
                    return false;
                };
                let (_, _, due, rearmed) = self.suspicions.swap_remove(k);
                let lateness = now.saturating_duration_since(due);
                if lateness >= LATE && !rearmed {
                    self.lifeguard.timer_late(lateness);
                    let after = self.lifeguard.suspicion(member_id.id);
                    self.suspicions.push((key.0, key.1, now + after, true));
                    self.outputs.push_back(Output::Schedule {
                        after,
                        timer: timer.clone(),
                    });
                    return true;
                }
            }
            _ => {}
        }
        false
    }

    /// Tells `suspect` that this node suspects it (twice: one datagram may
    /// be lost), so it refutes at once instead of waiting for gossip.
    pub(super) fn notify_suspect(&mut self, suspect: MemberId, incarnation: foca::Incarnation) {
        let to = suspect.addr;
        let notice = (
            foca::Member::new(suspect, incarnation, State::Suspect),
            self.foca.identity().clone(),
        );
        if let Ok(body) = postcard::to_allocvec(&notice) {
            for _ in 0..2 {
                self.outputs.push_back(Output::Send {
                    to,
                    kind: DatagramKind::Suspicion,
                    body: body.clone(),
                });
            }
        }
    }

    /// "You are suspected": refute (foca raises our incarnation) and answer
    /// the sender, whose foca then sees the new incarnation at once. A
    /// notice about anyone else (an earlier identity of ours) is ignored.
    pub(super) fn answer_suspicion(&mut self, body: &[u8]) -> Result<(), Rejected> {
        let (suspicion, from): (foca::Member<MemberId>, MemberId) =
            postcard::from_bytes(body).map_err(|e| Rejected(format!("suspicion: {e}")))?;
        if suspicion.id() != self.foca.identity() || suspicion.state() != State::Suspect {
            return Ok(());
        }
        self.foca
            .apply_many(std::iter::once(suspicion), true, &mut self.rt)
            .map_err(|e| Rejected(e.to_string()))?;
        if from.id != self.foca.identity().id {
            self.foca
                .announce(from, &mut self.rt)
                .map_err(|e| Rejected(e.to_string()))?;
        }
        Ok(())
    }
}
