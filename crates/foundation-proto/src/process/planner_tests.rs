//! Table-driven tests of the planner: the cases the lost-state fixes were
//! about (first start with a partial view, a stale handoff after a
//! migration gap, a leave notice overtaking a handoff) and quorum loss.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::placement::rendezvous;
use super::planner::{
    Command, Facts, HeldBack, Input, Member, Plan, Planner, Presence, Running, StopCause,
    FIRST_START_SETTLE, HANDOFF_WAIT,
};
use super::quorum::SplitBrain;
use super::spec::{ChildSpec, Strategy};
use crate::NodeId;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const C: NodeId = NodeId(3);
const D: NodeId = NodeId(4);
const E: NodeId = NodeId(5);
const WINDOW: Duration = Duration::from_secs(3);

/// A singleton name that `owner` gets among `among`.
fn name_owned_by(owner: NodeId, among: &[NodeId]) -> String {
    (0..1000)
        .map(|i| format!("leader-{i}"))
        .find(|n| rendezvous(n, among.iter().copied()) == Some(owner))
        .expect("some name is owned by each node")
}

fn singleton(id: &str) -> ChildSpec {
    ChildSpec {
        id: id.to_owned(),
        kind: "counter".into(),
        args: Bytes::new(),
        strategy: Strategy::Singleton,
        role: None,
        fenced: false,
    }
}

fn members(list: &[(NodeId, Presence)]) -> Vec<Member> {
    list.iter()
        .map(|(id, presence)| Member {
            id: *id,
            roles: vec![],
            presence: *presence,
        })
        .collect()
}

fn active(ids: &[NodeId]) -> Vec<Member> {
    members(
        &ids.iter()
            .map(|id| (*id, Presence::Active))
            .collect::<Vec<_>>(),
    )
}

/// The registry and host as one node sees them.
#[derive(Default)]
struct World {
    holders: HashMap<String, (NodeId, u64)>,
    unheard: HashSet<NodeId>,
    running_locals: HashSet<u64>,
    missing_kinds: HashSet<String>,
}

impl Facts for World {
    fn holder(&self, instance: &str) -> Option<(NodeId, u64)> {
        self.holders.get(instance).copied()
    }
    fn heard(&self, peer: NodeId) -> bool {
        !self.unheard.contains(&peer)
    }
    fn is_running(&self, local: u64) -> bool {
        self.running_locals.contains(&local)
    }
    fn can_run(&self, kind: &str) -> bool {
        !self.missing_kinds.contains(kind)
    }
}

/// One node's planner with what runs on it.
struct Node {
    planner: Planner,
    specs: Vec<ChildSpec>,
    running: BTreeMap<String, Running>,
    world: World,
    t0: Instant,
}

impl Node {
    fn new(me: NodeId, policy: SplitBrain, specs: Vec<ChildSpec>) -> Self {
        Node {
            planner: Planner::new(me, policy, WINDOW),
            specs,
            running: BTreeMap::new(),
            world: World::default(),
            t0: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// A pass at `ms` with `members`; applies starts and stops to
    /// `running` as the shell would.
    fn plan(&mut self, ms: u64, members: &[Member]) -> Plan {
        let stopping = HashSet::new();
        let input = Input {
            members,
            specs: &self.specs,
            running: &self.running,
            stopping: &stopping,
            ready: true,
        };
        let plan = self.planner.plan(self.at(ms), input, &self.world);
        for c in &plan.commands {
            match c {
                Command::Start { instance, spec, .. } => {
                    self.running.insert(
                        instance.clone(),
                        Running {
                            spec: spec.id.clone(),
                            local: 7,
                        },
                    );
                }
                Command::Stop { instance, .. } => {
                    self.running.remove(instance);
                }
                Command::Adopt { .. } => {}
            }
        }
        plan
    }
}

fn started(plan: &Plan) -> Vec<(String, Option<Bytes>)> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            Command::Start {
                instance, handoff, ..
            } => Some((instance.clone(), handoff.clone())),
            _ => None,
        })
        .collect()
}

fn stopped(plan: &Plan) -> Vec<(String, StopCause)> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            Command::Stop {
                instance, cause, ..
            } => Some((instance.clone(), cause.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_first_start_waits_until_the_view_holds_still() {
    // A and B boot together. For 100 ms A sees only itself, and owns the
    // singleton in that view; in the full view B owns it.
    let name = name_owned_by(B, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    let mut b = Node::new(B, SplitBrain::KeepAll, vec![singleton(&name)]);
    b.t0 = a.t0;
    // (view at A, view at B, ms, A starts, B starts)
    type Row<'a> = (&'a [NodeId], &'a [NodeId], u64, bool, bool);
    let table: &[Row] = &[
        (&[A], &[B], 0, false, false),
        (&[A], &[A, B], 100, false, false),
        (&[A], &[A, B], 499, false, false),
        (&[A, B], &[A, B], 500, false, false), // A alone for 500 ms: A's view changes now
        (&[A, B], &[A, B], 600, false, true),  // B's view held still 500 ms
        (&[A, B], &[A, B], 1200, false, false),
    ];
    for (view_a, view_b, ms, a_starts, b_starts) in table {
        let pa = a.plan(*ms, &active(view_a));
        let pb = b.plan(*ms, &active(view_b));
        assert_eq!(!started(&pa).is_empty(), *a_starts, "A at {ms} ms: {pa:?}");
        assert_eq!(!started(&pb).is_empty(), *b_starts, "B at {ms} ms: {pb:?}");
    }
    assert!(a.running.is_empty() && b.running.contains_key(&name));
}

#[test]
fn a_held_back_first_start_asks_for_a_recheck_when_the_settle_ends() {
    let name = name_owned_by(A, &[A]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    let plan = a.plan(0, &active(&[A]));
    assert_eq!(plan.recheck_at, Some(a.at(0) + FIRST_START_SETTLE));
    let plan = a.plan(500, &active(&[A]));
    assert_eq!(started(&plan), vec![(name, None)]);
}

#[test]
fn failover_from_a_crashed_holder_does_not_wait() {
    // B held the singleton and crashed: A, the next owner, starts at once
    // (no settle, no handoff wait), without state.
    let name = name_owned_by(B, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    a.world.holders.insert(name.clone(), (B, 9));
    assert!(started(&a.plan(0, &active(&[A, B]))).is_empty());
    a.plan(1000, &active(&[A, B]));
    a.world.holders.clear(); // B's entries go with B
    let plan = a.plan(
        1001,
        &members(&[(A, Presence::Active), (B, Presence::Down)]),
    );
    assert_eq!(started(&plan), vec![(name, None)]);
}

#[test]
fn a_leave_notice_that_overtakes_the_handoff_still_waits_for_it() {
    // B holds the singleton and shuts down: A sees B Left (and B's
    // registration gone) before B's handoff arrives. A waits for it up to
    // HANDOFF_WAIT and starts from it.
    let name = name_owned_by(B, &[A, B]);
    // (presence of B, handoff arrives, ms, A starts with)
    for (b_gone_as, handoff_at, start_at, state) in [
        (
            Presence::Left,
            Some(300),
            300,
            Some(Bytes::from_static(b"42")),
        ),
        (
            Presence::Left,
            None,
            1000 + HANDOFF_WAIT.as_millis() as u64,
            None,
        ),
        (Presence::Down, None, 1000, None),
    ] {
        let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
        a.world.holders.insert(name.clone(), (B, 9));
        a.plan(0, &active(&[A, B]));
        a.world.holders.clear();
        let view = members(&[(A, Presence::Active), (B, b_gone_as)]);
        let mut got = None;
        for ms in (1000..1000 + 3000).step_by(50) {
            if Some(ms - 1000) == handoff_at {
                assert!(a.planner.handoff_received(
                    &name,
                    Some(Bytes::from_static(b"42")),
                    B,
                    true,
                    a.at(ms)
                ));
            }
            let plan = a.plan(ms, &view);
            if let Some(s) = started(&plan).pop() {
                got = Some((ms, s.1));
                break;
            }
        }
        let want_ms = if handoff_at.is_some() {
            1000 + start_at
        } else {
            start_at
        };
        assert_eq!(
            got,
            Some((want_ms, state)),
            "B {b_gone_as:?}, handoff at {handoff_at:?}"
        );
    }
}

#[test]
fn a_stale_handoff_after_a_migration_gap_is_never_used() {
    // A got a handoff from B (state "old") but its view placed the
    // singleton on C, which ran it. Much later A becomes the owner while
    // C still holds it: A waits for C's handoff ("new"); if C crashes
    // instead, A starts empty — never from "old".
    let name = name_owned_by(C, &[A, C]);
    for c_hands_off in [true, false] {
        let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
        assert!(a.planner.handoff_received(
            &name,
            Some(Bytes::from_static(b"old")),
            B,
            false,
            a.at(0)
        ));
        a.world.holders.insert(name.clone(), (C, 3));
        let plan = a.plan(1000, &active(&[A, C]));
        assert_eq!(
            plan.dropped_handoffs,
            vec![name.clone()],
            "C holds it: B's state is old"
        );
        assert!(!a.planner.has_handoff(&name));
        // C goes away; A is the owner now.
        a.world.holders.clear();
        let view = if c_hands_off {
            assert!(a.planner.handoff_received(
                &name,
                Some(Bytes::from_static(b"new")),
                C,
                true,
                a.at(2000)
            ));
            members(&[(A, Presence::Active), (C, Presence::Left)])
        } else {
            members(&[(A, Presence::Active), (C, Presence::Down)])
        };
        let plan = a.plan(2000, &view);
        let want = c_hands_off.then(|| Bytes::from_static(b"new"));
        assert_eq!(started(&plan), vec![(name.clone(), want)]);
    }
}

#[test]
fn quorum_loss_stops_singletons_but_not_replicated_instances() {
    let name = name_owned_by(A, &[A, B]);
    let replicated = ChildSpec {
        strategy: Strategy::Replicated,
        ..singleton("everywhere")
    };
    let mut a = Node::new(
        A,
        SplitBrain::KeepMajority,
        vec![singleton(&name), replicated],
    );
    let five = active(&[A, B, C, D, E]);
    // A stable view of five confirms the base; A runs both (if it owns
    // the singleton among five: pick the view so it does).
    let owner5 = rendezvous(&name, [A, B, C, D, E]).expect("an owner");
    for ms in (0..=4000).step_by(500) {
        a.plan(ms, &five);
    }
    assert!(a.planner.has_quorum());
    assert!(a.running.contains_key(&format!("everywhere@{A}")));
    assert_eq!(a.running.contains_key(&name), owner5 == A);
    // Three members go down: two of five is no majority.
    let two = members(&[
        (A, Presence::Active),
        (B, Presence::Active),
        (C, Presence::Down),
        (D, Presence::Down),
        (E, Presence::Down),
    ]);
    let mut lost = None;
    for ms in (4500..=12_000).step_by(500) {
        let plan = a.plan(ms, &two);
        if plan.quorum_changed {
            lost = Some(plan);
            break;
        }
    }
    let plan = lost.expect("quorum lost");
    assert!(!plan.has_quorum);
    assert!(started(&plan).is_empty());
    assert!(
        !a.running.contains_key(&name),
        "no singleton without quorum"
    );
    assert!(
        a.running.contains_key(&format!("everywhere@{A}")),
        "replicated keeps running"
    );
    if owner5 == A {
        assert_eq!(stopped(&plan), vec![(name, StopCause::QuorumLost)]);
    }
}

#[test]
fn a_new_owner_migrates_a_running_instance_with_its_state() {
    let name = name_owned_by(B, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    a.plan(0, &active(&[A]));
    a.plan(600, &active(&[A]));
    assert!(a.running.contains_key(&name));
    let plan = a.plan(700, &active(&[A, B]));
    assert_eq!(stopped(&plan), vec![(name, StopCause::Migrate { to: B })]);
}

#[test]
fn nothing_starts_before_the_node_is_ready_and_holds_every_members_registrations() {
    let name = name_owned_by(A, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    a.world.unheard.insert(B);
    let view = active(&[A, B]);
    let plan = a.plan(1000, &view);
    assert_eq!(plan.held_back, Some(HeldBack::NotSynced));
    a.world.unheard.clear();
    let (running, stopping) = (BTreeMap::new(), HashSet::new());
    let not_ready = Input {
        members: &view,
        specs: &a.specs,
        running: &running,
        stopping: &stopping,
        ready: false,
    };
    let plan = a.planner.plan(a.at(2000), not_ready, &a.world);
    assert_eq!(plan.held_back, Some(HeldBack::NotReady));
    assert!(plan.commands.is_empty());
    assert_eq!(started(&a.plan(2000, &view)), vec![(name, None)]);
}

#[test]
fn a_departing_member_is_out_of_placement_and_a_removed_spec_stops() {
    let name = name_owned_by(B, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    a.world.holders.insert(name.clone(), (B, 9));
    assert!(started(&a.plan(0, &active(&[A, B]))).is_empty());
    // B announced its shutdown (a handoff marked leaving) and withdrew its
    // registration once A acknowledged: A places as if B were gone, and
    // starts from the handoff at once although B is still a member.
    assert!(a
        .planner
        .handoff_received(&name, Some(Bytes::from_static(b"5")), B, true, a.at(100)));
    a.world.holders.clear();
    let plan = a.plan(100, &active(&[A, B]));
    assert_eq!(
        started(&plan),
        vec![(name.clone(), Some(Bytes::from_static(b"5")))]
    );
    a.specs.clear();
    let plan = a.plan(700, &active(&[A, B]));
    assert_eq!(stopped(&plan), vec![(name, StopCause::SpecRemoved)]);
}

#[test]
fn an_undefined_kind_is_reported_once_and_a_registered_live_instance_is_adopted() {
    let name = name_owned_by(A, &[A]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    a.world.missing_kinds.insert("counter".into());
    a.plan(0, &active(&[A]));
    let plan = a.plan(600, &active(&[A]));
    assert_eq!(plan.unrunnable, vec![("counter".to_owned(), name.clone())]);
    assert!(a.plan(700, &active(&[A])).unrunnable.is_empty(), "once");
    a.world.missing_kinds.clear();
    a.world.holders.insert(name.clone(), (A, 11));
    a.world.running_locals.insert(11);
    let plan = a.plan(800, &active(&[A]));
    assert_eq!(
        plan.commands,
        vec![Command::Adopt {
            instance: name,
            spec: a.specs[0].id.clone(),
            local: 11
        }]
    );
}

#[test]
fn a_handoff_in_hand_is_not_a_first_start_and_does_not_wait_for_the_settle() {
    // The view just changed, this node never saw a holder registered (the
    // registration had not reached it), but the holder handed the state
    // over: start from it at once.
    let name = name_owned_by(A, &[A, B]);
    let mut a = Node::new(A, SplitBrain::KeepAll, vec![singleton(&name)]);
    assert!(a
        .planner
        .handoff_received(&name, Some(Bytes::from_static(b"9")), B, false, a.at(0)));
    let plan = a.plan(0, &active(&[A, B]));
    assert_eq!(started(&plan), vec![(name, Some(Bytes::from_static(b"9")))]);
    assert_eq!(plan.recheck_at, None);
}
