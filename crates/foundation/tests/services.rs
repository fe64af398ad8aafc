//! Services: local and remote calls, supervision, panics contained.

mod common;

use std::time::Duration;

use foundation::process::{
    CallError, Context, Restart, Service, ServiceError, ServiceEvent, ServiceOptions, StopReason,
};
use foundation_testkit::Cluster;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
enum Req {
    Add(u64),
    Panic,
    Fail,
    Stop,
    Sleep(u64),
    Echo(Vec<u8>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Rep {
    Total(u64),
    Echo(Vec<u8>),
}

/// Counts; reports every stop reason it sees.
struct Counter {
    total: u64,
    stops: Option<mpsc::UnboundedSender<StopReason>>,
}

impl Counter {
    fn new() -> Self {
        Counter {
            total: 0,
            stops: None,
        }
    }
}

impl Service for Counter {
    type Request = Req;
    type Reply = Rep;
    type State = u64;

    async fn handle(&mut self, ctx: &mut Context, req: Req) -> Result<Rep, ServiceError> {
        match req {
            Req::Add(n) => self.total += n,
            Req::Panic => panic!("asked to panic"),
            Req::Fail => return Err(ServiceError::new("asked to fail")),
            Req::Stop => ctx.stop(),
            Req::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Req::Echo(b) => return Ok(Rep::Echo(b)),
        }
        Ok(Rep::Total(self.total))
    }

    async fn stopping(&mut self, _: &mut Context, reason: &StopReason) -> Option<u64> {
        if let Some(tx) = &self.stops {
            let _ = tx.send(reason.clone());
        }
        Some(self.total)
    }
}

async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
    pred: impl Fn(&ServiceEvent) -> bool,
) -> ServiceEvent {
    tokio::time::timeout(common::SETTLE, async {
        loop {
            let ev = rx.recv().await.expect("events open");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_calls_and_casts_reach_the_service_in_order() {
    common::init_tracing();
    let node = common::builder("solo").start().await.expect("start");
    let svc = node
        .services()
        .spawn(Counter::new, ServiceOptions::labelled("counter"));
    assert!(svc.is_local());
    for _ in 0..10 {
        svc.cast(Req::Add(1)).await.expect("cast");
    }
    assert_eq!(svc.call(Req::Add(5), T).await, Ok(Rep::Total(15)));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_contained_and_the_service_restarts_fresh() {
    common::init_tracing();
    let node = common::builder("solo").start().await.expect("start");
    let mut events = node.services().events();
    let svc = node
        .services()
        .spawn(Counter::new, ServiceOptions::labelled("counter"));
    assert_eq!(svc.call(Req::Add(7), T).await, Ok(Rep::Total(7)));
    let err = svc.call(Req::Panic, T).await.expect_err("panicked");
    assert!(
        matches!(err, CallError::Failed { ref message, .. } if message.contains("asked to panic")),
        "{err}"
    );
    let ev = next_event(&mut events, |e| {
        matches!(e, ServiceEvent::Restarting { .. })
    })
    .await;
    assert!(matches!(
        ev,
        ServiceEvent::Restarting {
            reason: StopReason::Panic(_),
            ..
        }
    ));
    // Same ref, new instance, fresh state.
    assert_eq!(svc.call(Req::Add(1), T).await, Ok(Rep::Total(1)));
    // An error restarts too.
    assert!(svc.call(Req::Fail, T).await.is_err());
    assert_eq!(svc.call(Req::Add(2), T).await, Ok(Rep::Total(2)));
    assert!(node.is_ready());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_decide_what_is_restarted() {
    common::init_tracing();
    let node = common::builder("solo").start().await.expect("start");
    let mut events = node.services().events();
    let s = node.services();

    // Transient: a normal stop is final.
    let t = s.spawn(
        Counter::new,
        ServiceOptions::labelled("t").restart(Restart::Transient),
    );
    t.call(Req::Stop, T).await.expect("reply before stopping");
    let ev = next_event(
        &mut events,
        |e| matches!(e, ServiceEvent::Stopped { label, .. } if label == "t"),
    )
    .await;
    assert!(matches!(
        ev,
        ServiceEvent::Stopped {
            reason: StopReason::Normal,
            ..
        }
    ));
    assert!(matches!(
        t.call(Req::Add(1), T).await,
        Err(CallError::Stopped { .. })
    ));

    // Temporary: even a failure is final.
    let tmp = s.spawn(
        Counter::new,
        ServiceOptions::labelled("tmp").restart(Restart::Temporary),
    );
    let _ = tmp.call(Req::Panic, T).await;
    let ev = next_event(
        &mut events,
        |e| matches!(e, ServiceEvent::Stopped { label, .. } if label == "tmp"),
    )
    .await;
    assert!(matches!(
        ev,
        ServiceEvent::Stopped {
            reason: StopReason::Panic(_),
            ..
        }
    ));

    // Permanent: a normal stop restarts.
    let p = s.spawn(Counter::new, ServiceOptions::labelled("p"));
    p.call(Req::Add(3), T).await.expect("call");
    p.call(Req::Stop, T).await.expect("call");
    let ev = next_event(
        &mut events,
        |e| matches!(e, ServiceEvent::Restarting { label, .. } if label == "p"),
    )
    .await;
    assert!(matches!(
        ev,
        ServiceEvent::Restarting {
            reason: StopReason::Normal,
            ..
        }
    ));
    assert_eq!(p.call(Req::Add(1), T).await, Ok(Rep::Total(1)));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_intensity_gives_up_on_a_crash_loop() {
    common::init_tracing();
    let node = common::builder("solo").start().await.expect("start");
    let mut events = node.services().events();
    let svc = node.services().spawn(
        Counter::new,
        ServiceOptions::labelled("looping").intensity(2, Duration::from_secs(30)),
    );
    for _ in 0..3 {
        let _ = svc.call(Req::Panic, T).await;
    }
    let ev = next_event(&mut events, |e| matches!(e, ServiceEvent::GaveUp { .. })).await;
    assert!(matches!(
        ev,
        ServiceEvent::GaveUp {
            reason: StopReason::Panic(_),
            ..
        }
    ));
    let after = svc.call(Req::Add(1), T).await;
    assert!(matches!(after, Err(CallError::Stopped { .. })), "{after:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_calls_cross_nodes_small_and_large_and_time_out() {
    let mut c = Cluster::start(2).await.expect("cluster");
    let local = c
        .node(0)
        .services()
        .spawn(Counter::new, ServiceOptions::labelled("counter"));
    let remote = c.node(1).services().get::<Counter>(local.addr());
    assert!(!remote.is_local());
    remote.cast(Req::Add(2)).await.expect("cast");
    assert_eq!(remote.call(Req::Add(3), T).await, Ok(Rep::Total(5)));
    // 1 MiB goes over the data channel and back.
    let big = vec![7u8; 1 << 20];
    assert_eq!(
        remote.call(Req::Echo(big.clone()), T).await,
        Ok(Rep::Echo(big))
    );
    // A slow reply times out at the caller's bound.
    let err = remote
        .call(Req::Sleep(2_000), Duration::from_millis(200))
        .await
        .expect_err("times out");
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    // A service that does not exist there.
    let mut missing = local.addr();
    missing.local += 1000;
    let err = c
        .node(1)
        .services()
        .get::<Counter>(missing)
        .call(Req::Add(1), T)
        .await
        .expect_err("no such service");
    assert!(matches!(err, CallError::Stopped { .. }), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_node_that_dies_fails_as_node_down_not_timeout() {
    let mut c = Cluster::start(2).await.expect("cluster");
    let svc = c
        .node(0)
        .services()
        .spawn(Counter::new, ServiceOptions::labelled("counter"));
    let remote = c.node(1).services().get::<Counter>(svc.addr());
    let call = tokio::spawn(async move {
        remote
            .call(Req::Sleep(60_000), Duration::from_secs(30))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.kill(0).await;
    let r = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("failed before the call's own timeout")
        .expect("join");
    assert!(matches!(r, Err(CallError::NodeDown { .. })), "{r:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_runs_stopping_hooks_with_the_shutdown_reason() {
    common::init_tracing();
    let node = common::builder("solo").start().await.expect("start");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = node.services().spawn(
        move || Counter {
            total: 0,
            stops: Some(tx.clone()),
        },
        ServiceOptions::labelled("hooked"),
    );
    svc.call(Req::Add(1), T).await.expect("call");
    node.shutdown().await;
    assert_eq!(rx.recv().await, Some(StopReason::Shutdown));
}
