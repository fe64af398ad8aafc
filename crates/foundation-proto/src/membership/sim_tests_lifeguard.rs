//! Lifeguard in the simulation (ADRs 019 and 020): confirmations shorten
//! a suspicion, checks spare a live suspect.

use std::time::Duration;

use foca::State;

use super::{DatagramKind, MemberEvent, MemberState, Sim};
use crate::membership::defaults as d;

/// Every survivor of a 5-node cluster probes the crashed member when one
/// accuses it, so the accuser's suspicion shrinks from the long timeout
/// (ADR 020): the first Down comes sooner after the first Suspect than the
/// configured suspicion timeout.
#[test]
fn confirmations_shorten_the_suspicion_of_a_crashed_member() {
    let long = Duration::from_millis(d::SUSPECT_TO_DOWN_MS);
    for seed in 0..10 {
        let mut sim = Sim::new(5, seed);
        sim.join_all_via(0);
        sim.run_for(Duration::from_secs(5));
        sim.dead.insert(4);
        sim.run_for(Duration::from_secs(5));
        let victim = sim.cores[4].local().id;
        let first = |f: &dyn Fn(&MemberEvent) -> bool| {
            sim.log.iter().find(|(_, _, ev)| f(ev)).map(|(t, _, _)| *t)
        };
        let suspected = first(&|ev| matches!(ev, MemberEvent::Suspect(m) if m.id == victim));
        let down = first(&|ev| matches!(ev, MemberEvent::Down(m) if m.id == victim));
        let (Some(s), Some(d)) = (suspected, down) else {
            panic!("seed {seed}: suspected {suspected:?}, down {down:?}");
        };
        assert!(d - s < long, "seed {seed}: down {:?} after suspect", d - s);
    }
}

/// An accusation asks its receiver to check the suspect: a live suspect
/// refutes and is not accused again (nor declared down, nor told it was:
/// foca's TurnUndead after a refuted suspicion made such a member rejoin
/// under a new generation); a dead one stays silent, and the checker
/// accuses it in turn and declares it down.
#[test]
fn a_checked_suspect_refutes_if_alive_and_is_confirmed_if_not() {
    for dead in [false, true] {
        let mut sim = Sim::new(3, 5);
        sim.join_all_via(0);
        sim.run_for(Duration::from_secs(5));
        let (accuser, suspect) = (sim.cores[0].local().swim(), sim.cores[2].local().swim());
        let incarnation = sim.cores[1]
            .foca()
            .iter_membership_state()
            .find(|m| m.id() == &suspect)
            .map(|m| m.incarnation())
            .expect("known");
        if dead {
            sim.dead.insert(2);
        }
        let accusation = (
            foca::Member::new(suspect, incarnation, State::Suspect),
            accuser,
        );
        let body = postcard::to_allocvec(&accusation).expect("encode");
        let now = sim.base + sim.now;
        let at = sim.now;
        sim.cores[1]
            .handle_datagram(DatagramKind::Suspicion, &body, now)
            .expect("accusation taken");
        sim.drain(1);
        sim.run_for(Duration::from_secs(3));
        let down_at = sim.log.iter().find(|(_, who, ev)| {
            *who == 1 && matches!(ev, MemberEvent::Down(m) if m.id == suspect.id)
        });
        if dead {
            let (t, _, _) = down_at.expect("the checker declares the silent suspect down");
            assert!(
                *t - at <= Duration::from_millis(d::SUSPECT_TO_DOWN_MS),
                "{:?}",
                *t - at
            );
        } else {
            assert!(down_at.is_none(), "a live suspect was declared down");
            assert_eq!(sim.state(1, 2), Some(MemberState::Alive));
            assert_eq!(sim.cores[2].local().generation, suspect.generation);
            let now_at = sim.cores[1]
                .foca()
                .iter_membership_state()
                .find(|m| m.id() == &suspect)
                .map(|m| m.incarnation());
            assert!(now_at > Some(incarnation), "the check made it refute");
        }
    }
}
