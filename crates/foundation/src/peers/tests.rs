//! The per-peer queue's rules, with a drain that records what it is given
//! and can hold one peer back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Drain, Limits, NotQueued, PeerQueues};
use crate::id::NodeId;
use crate::tasks::Tasks;

/// Records every item by peer; sends to `held` only while the gate is open.
#[derive(Clone)]
struct Record {
    sent: Arc<Mutex<Vec<(NodeId, u32)>>>,
    held: NodeId,
    open: watch::Receiver<bool>,
}

impl Drain<NodeId, u32> for Record {
    fn admits(&self, peer: NodeId) -> bool {
        peer != STRANGER
    }

    async fn send(&self, to: NodeId, items: &[u32]) {
        if to == self.held {
            let mut open = self.open.clone();
            let _ = open.wait_for(|o| *o).await;
        }
        let mut sent = self.sent.lock().expect("record lock");
        sent.extend(items.iter().map(|i| (to, *i)));
    }
}

struct Fixture {
    queues: PeerQueues<NodeId, u32, Record>,
    sent: Arc<Mutex<Vec<(NodeId, u32)>>>,
    gate: watch::Sender<bool>,
    held: NodeId,
    cancel: CancellationToken,
}

fn fixture(limits: Limits) -> Fixture {
    let cancel = CancellationToken::new();
    let tasks = Tasks::new(tracing::Span::none(), cancel.clone());
    let (gate, open) = watch::channel(false);
    let held = NodeId::random();
    let sent = Arc::<Mutex<Vec<_>>>::default();
    let drain = Record {
        sent: sent.clone(),
        held,
        open,
    };
    Fixture {
        queues: PeerQueues::new(tasks, limits, drain, cancel.clone(), "test"),
        sent,
        gate,
        held,
        cancel,
    }
}

fn of(sent: &Mutex<Vec<(NodeId, u32)>>, peer: NodeId) -> Vec<u32> {
    let sent = sent.lock().expect("record lock");
    sent.iter()
        .filter(|(p, _)| *p == peer)
        .map(|(_, i)| *i)
        .collect()
}

async fn until(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !what() {
        assert!(Instant::now() < deadline, "condition not met within 5 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The one peer the test drain does not admit.
const STRANGER: NodeId = NodeId(7);

const ROOMY: Limits = Limits {
    items: 1024,
    bytes: 1 << 20,
};

#[tokio::test]
async fn a_held_peer_does_not_delay_the_others_and_each_queue_keeps_its_order() {
    let f = fixture(ROOMY);
    let free = NodeId::random();
    for i in 0..200 {
        f.queues.try_push(f.held, i, 10).expect("room");
        f.queues.try_push(free, i, 10).expect("room");
    }
    until(|| of(&f.sent, free).len() == 200).await;
    assert_eq!(of(&f.sent, free), (0..200).collect::<Vec<_>>());
    assert!(
        of(&f.sent, f.held).is_empty(),
        "the held peer got nothing yet"
    );
    f.gate.send(true).expect("gate");
    until(|| of(&f.sent, f.held).len() == 200).await;
    assert_eq!(of(&f.sent, f.held), (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_full_queue_refuses_by_bytes_and_by_items_and_takes_again_once_drained() {
    let f = fixture(Limits {
        items: 1000,
        bytes: 100,
    });
    // The drain takes the first item at once and holds it (and its bytes).
    f.queues.try_push(f.held, 0, 60).expect("room");
    assert_eq!(f.queues.try_push(f.held, 1, 60), Err(NotQueued::Full));
    f.queues.try_push(f.held, 2, 40).expect("room");
    // An item larger than the whole budget costs the whole budget.
    assert_eq!(f.queues.try_push(f.held, 3, 10_000), Err(NotQueued::Full));

    let g = fixture(Limits {
        items: 2,
        bytes: 1 << 20,
    });
    g.queues.try_push(g.held, 0, 1).expect("room");
    let mut refused = 0;
    for i in 1..10 {
        if g.queues.try_push(g.held, i, 1) == Err(NotQueued::Full) {
            refused += 1;
        }
    }
    // Two fit in the queue, and a third only if the drain took the first.
    assert!(refused >= 7, "at most 3 of 10 items fit: {refused} refused");

    f.gate.send(true).expect("gate");
    until(|| of(&f.sent, f.held) == vec![0, 2]).await;
    f.queues.try_push(f.held, 4, 100).expect("room");
    until(|| of(&f.sent, f.held) == vec![0, 2, 4]).await;
}

#[tokio::test]
async fn push_waits_for_room_up_to_its_patience() {
    let f = fixture(Limits {
        items: 1000,
        bytes: 100,
    });
    f.queues.try_push(f.held, 0, 100).expect("room");
    let started = Instant::now();
    let r = f
        .queues
        .push(f.held, 1, 100, Duration::from_millis(50))
        .await;
    assert_eq!(r, Err(NotQueued::Full));
    assert!(started.elapsed() >= Duration::from_millis(50));

    // Room that comes while it waits is taken.
    let gate = f.gate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        gate.send(true).expect("gate");
    });
    f.queues
        .push(f.held, 2, 100, Duration::from_secs(5))
        .await
        .expect("room within 5 s");
    until(|| of(&f.sent, f.held) == vec![0, 2]).await;
}

#[tokio::test]
async fn flush_waits_until_everything_is_sent() {
    let f = fixture(ROOMY);
    for i in 0..10 {
        f.queues.try_push(f.held, i, 10).expect("room");
    }
    let soon = Instant::now() + Duration::from_millis(30);
    assert!(!f.queues.flush(soon).await, "held items are not flushed");
    f.gate.send(true).expect("gate");
    assert!(
        f.queues
            .flush(Instant::now() + Duration::from_secs(5))
            .await
    );
    assert_eq!(
        of(&f.sent, f.held).len(),
        10,
        "flush returned before sending"
    );
}

#[tokio::test]
async fn a_stopped_node_queues_nothing() {
    let f = fixture(ROOMY);
    f.cancel.cancel();
    assert_eq!(f.queues.try_push(f.held, 0, 1), Err(NotQueued::Closed));
    let r = f.queues.push(f.held, 0, 1, Duration::from_secs(1)).await;
    assert_eq!(r, Err(NotQueued::Closed));
}

#[tokio::test]
async fn a_peer_the_drain_does_not_admit_gets_no_queue() {
    let f = fixture(ROOMY);
    assert_eq!(
        f.queues.try_push(STRANGER, 1, 10),
        Err(NotQueued::UnknownPeer)
    );
    let r = f
        .queues
        .push(STRANGER, 2, 10, Duration::from_millis(10))
        .await;
    assert_eq!(r, Err(NotQueued::UnknownPeer));
    assert_eq!(f.queues.len(), 0, "no queue, no task");
    f.queues
        .try_push(NodeId(8), 3, 10)
        .expect("a member is admitted");
    assert_eq!(f.queues.len(), 1);
}
