//! Context propagation across nodes: a trace started on node A stays one
//! trace through a call to B, B's call to C, C's publish and the delivery
//! to a subscriber on D, with the right parent of every span; baggage
//! follows; a deadline set on A cuts the calls two hops away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::context::RequestContext;
use foundation::process::{CallError, Context, Service, ServiceError, ServiceOptions};
use foundation::spans::{SpanExporter, SpanKind, SpanRecord};
use foundation::Node;
use foundation_testkit::{assert_eventually, Cluster};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(15);

/// Keeps every span a node exports.
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<SpanRecord>>);

impl SpanExporter for Collect {
    fn export(&self, span: SpanRecord) {
        self.0.lock().expect("spans").push(span);
    }
}

impl Collect {
    fn one(&self, name: &str) -> Option<SpanRecord> {
        let spans = self.0.lock().expect("spans");
        spans.iter().find(|s| s.name == name).cloned()
    }
}

/// What a handler saw of its request context, and of its own call.
#[derive(Debug)]
struct Seen {
    trace: Option<foundation::context::TraceParent>,
    remaining: Option<Duration>,
    tenant: Option<String>,
    nested: Option<Result<u64, CallError>>,
}

fn seen(nested: Option<Result<u64, CallError>>) -> Seen {
    let rc = RequestContext::current();
    Seen {
        trace: rc.as_ref().and_then(|c| c.trace()),
        remaining: rc.as_ref().and_then(|c| c.remaining()),
        tenant: rc.and_then(|c| c.baggage("tenant").map(str::to_owned)),
        nested,
    }
}

/// On C: publishes on `events`, sleeps as asked, replies.
struct Back {
    node: Node,
    seen: mpsc::Sender<Seen>,
}

impl Service for Back {
    type Request = u64;
    type Reply = u64;
    type State = ();

    async fn handle(&mut self, _: &mut Context, sleep_ms: u64) -> Result<u64, ServiceError> {
        let _ = self.seen.send(seen(None)).await;
        self.node
            .pubsub()
            .broadcast("events", "from C".to_owned())
            .await
            .map_err(|e| ServiceError::new(e.to_string()))?;
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(sleep_ms)
    }
}

/// On B: calls `back` on C with a long timeout and reports what came of it.
struct Front {
    node: Node,
    seen: mpsc::Sender<Seen>,
}

impl Service for Front {
    type Request = u64;
    type Reply = u64;
    type State = ();

    async fn handle(&mut self, _: &mut Context, sleep_ms: u64) -> Result<u64, ServiceError> {
        let back = self
            .node
            .registry()
            .lookup::<Back>("back")
            .map_err(|e| ServiceError::new(e.to_string()))?
            .ok_or_else(|| ServiceError::new("no back"))?;
        let r = back.call(sleep_ms, Duration::from_secs(10)).await;
        let out = r.clone().unwrap_or(0);
        let _ = self.seen.send(seen(Some(r))).await;
        Ok(out)
    }
}

struct Setup {
    cluster: Cluster,
    spans: Vec<Arc<Collect>>,
    front_seen: mpsc::Receiver<Seen>,
    back_seen: mpsc::Receiver<Seen>,
}

async fn setup() -> Setup {
    let cluster = Cluster::start(4).await.expect("cluster");
    let spans: Vec<Arc<Collect>> = (0..4).map(|_| Arc::new(Collect::default())).collect();
    for (i, s) in spans.iter().enumerate() {
        cluster.node(i).add_span_exporter(s.clone());
    }
    let (ftx, front_seen) = mpsc::channel(16);
    let (btx, back_seen) = mpsc::channel(16);
    let (b, c) = (cluster.node(1).clone(), cluster.node(2).clone());
    let back = c.services().spawn(
        move || Back {
            node: c.clone(),
            seen: btx.clone(),
        },
        ServiceOptions::default(),
    );
    cluster
        .node(2)
        .registry()
        .register("back", &back)
        .expect("register");
    let front = b.services().spawn(
        move || Front {
            node: b.clone(),
            seen: ftx.clone(),
        },
        ServiceOptions::default(),
    );
    cluster
        .node(1)
        .registry()
        .register("front", &front)
        .expect("register");
    let a = cluster.node(0).clone();
    let b = cluster.node(1).clone();
    assert_eventually(SETTLE, "names reach A and B", || {
        a.registry().whereis("front").is_some() && b.registry().whereis("back").is_some()
    })
    .await;
    Setup {
        cluster,
        spans,
        front_seen,
        back_seen,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_a_call_on_a_to_a_subscriber_on_d_with_every_parent_right() {
    let mut s = setup().await;
    let d = s.cluster.node(3).clone();
    let mut sub = d.pubsub().subscribe::<String>("events").expect("subscribe");
    let c = s.cluster.node(2).clone();
    let d_id = d.id();
    assert_eventually(SETTLE, "C knows D's interest", || {
        c.pubsub().interested_nodes("events").contains(&d_id)
    })
    .await;

    let a = s.cluster.node(0).clone();
    let front = a
        .registry()
        .lookup::<Front>("front")
        .expect("protocol")
        .expect("registered");
    let root = RequestContext::new_trace(true).with_baggage("tenant", "acme");
    let trace = root.trace().expect("a trace");
    let reply = root.scope(front.call(0, T)).await.expect("call");
    assert_eq!(reply, 0);

    let msg = tokio::time::timeout(SETTLE, sub.recv())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!(*msg, "from C");
    let delivered = sub
        .context()
        .expect("the message carries a context")
        .clone();
    assert_eq!(delivered.baggage("tenant"), Some("acme"));

    let front_seen = s.front_seen.recv().await.expect("B handled");
    let back_seen = s.back_seen.recv().await.expect("C handled");
    assert_eq!(back_seen.tenant.as_deref(), Some("acme"));
    assert!(front_seen.nested.as_ref().is_some_and(Result::is_ok));

    let [sa, sb, sc, sd] = [&s.spans[0], &s.spans[1], &s.spans[2], &s.spans[3]];
    assert_eventually(SETTLE, "every span exported", || {
        sa.one("call").is_some()
            && sb.one("handle").is_some()
            && sb.one("call").is_some()
            && sc.one("handle").is_some()
            && sc.one("publish").is_some()
            && sd.one("deliver").is_some()
    })
    .await;
    let get = |c: &Collect, name: &str| c.one(name).expect(name);
    let (a_call, b_handle, b_call) = (get(sa, "call"), get(sb, "handle"), get(sb, "call"));
    let (c_handle, c_publish, d_deliver) =
        (get(sc, "handle"), get(sc, "publish"), get(sd, "deliver"));
    for span in [
        &a_call, &b_handle, &b_call, &c_handle, &c_publish, &d_deliver,
    ] {
        assert_eq!(span.trace_id, trace.trace_id, "{span:?}");
    }
    // Each span's parent is the one before it, across four nodes.
    assert_eq!(a_call.parent_span_id, Some(trace.span_id));
    assert_eq!(b_handle.parent_span_id, Some(a_call.span_id));
    assert_eq!(b_call.parent_span_id, Some(b_handle.span_id));
    assert_eq!(c_handle.parent_span_id, Some(b_call.span_id));
    assert_eq!(c_publish.parent_span_id, Some(c_handle.span_id));
    assert_eq!(d_deliver.parent_span_id, Some(c_publish.span_id));
    let kinds = [
        a_call.kind,
        b_handle.kind,
        b_call.kind,
        c_handle.kind,
        c_publish.kind,
        d_deliver.kind,
    ];
    use SpanKind::*;
    assert_eq!(kinds, [Client, Server, Client, Server, Producer, Consumer]);
    // The handlers ran in their server span; the subscriber continues from
    // the delivery.
    assert_eq!(front_seen.trace.map(|t| t.span_id), Some(b_handle.span_id));
    assert_eq!(back_seen.trace.map(|t| t.span_id), Some(c_handle.span_id));
    assert_eq!(
        delivered.trace().map(|t| (t.trace_id, t.span_id)),
        Some((trace.trace_id, d_deliver.span_id))
    );
    // Node and peer ids on every span.
    let attr = |s: &SpanRecord, k: &str| {
        s.attributes
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        attr(&b_handle, "foundation.node.id"),
        Some(s.cluster.node(1).id().to_string())
    );
    assert_eq!(
        attr(&b_handle, "foundation.peer.id"),
        Some(a.id().to_string())
    );
    assert_eq!(
        attr(&d_deliver, "foundation.topic").as_deref(),
        Some("events")
    );
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_set_on_a_cuts_the_call_two_hops_away() {
    let mut s = setup().await;
    let a = s.cluster.node(0).clone();
    let front = a
        .registry()
        .lookup::<Front>("front")
        .expect("protocol")
        .expect("registered");
    // No request context at all: the call's own timeout is the deadline.
    let err = front
        .call(5_000, Duration::from_millis(50))
        .await
        .expect_err("C sleeps 5 s");
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");

    let back_seen = tokio::time::timeout(SETTLE, s.back_seen.recv())
        .await
        .expect("C handled")
        .expect("open");
    let left = back_seen.remaining.expect("C's handler has a deadline");
    assert!(left <= Duration::from_millis(50), "C had {left:?} left");
    // B asked for 10 s; its call was cut to what was left of A's 50 ms.
    let front_seen = tokio::time::timeout(SETTLE, s.front_seen.recv())
        .await
        .expect("B handled")
        .expect("open");
    match front_seen.nested {
        Some(Err(CallError::Timeout { after, .. })) => {
            assert!(after <= Duration::from_millis(50), "B waited {after:?}");
        }
        other => panic!("B's call to C should time out, got {other:?}"),
    }
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_placements_are_spans_of_the_trace_they_happen_in() {
    foundation_testkit::init_tracing();
    // Every decision made outside a trace starts one (sampled).
    let node = foundation_testkit::builder("spans")
        .set("tracing.sample_percent", "100")
        .set("process.expected_members", "1")
        .start()
        .await
        .expect("node");
    let spans = Arc::new(Collect::default());
    node.add_span_exporter(spans.clone());

    let inner = node.clone();
    let echo = node.services().spawn(
        move || Back {
            node: inner.clone(),
            seen: mpsc::channel(1).0,
        },
        ServiceOptions::default(),
    );
    let root = RequestContext::new_trace(true);
    let trace = root.trace().expect("trace");
    root.scope(async { node.registry().register("traced", &echo) })
        .await
        .expect("register");
    let register = spans.one("register").expect("a register span");
    assert_eq!(register.trace_id, trace.trace_id);
    assert_eq!(register.parent_span_id, Some(trace.span_id));
    assert_eq!(register.kind, SpanKind::Internal);
    assert!(register
        .attributes
        .contains(&("foundation.name", "traced".to_owned())));

    foundation_demo::define(&node);
    node.processes()
        .start_singleton("counted", foundation_demo::KIND, &())
        .expect("singleton");
    assert_eventually(SETTLE, "a placement span", || {
        spans.0.lock().expect("spans").iter().any(|s| {
            s.name == "place"
                && s.attributes
                    .contains(&("foundation.instance", "counted".to_owned()))
                && s.attributes
                    .contains(&("foundation.decision", "start".to_owned()))
        })
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_carries_its_trace_to_the_next_owner() {
    foundation_testkit::init_tracing();
    let mut nodes: Vec<Node> = Vec::new();
    let mut spans: Vec<Arc<Collect>> = Vec::new();
    for i in 0..2 {
        let seeds: Vec<String> = nodes
            .iter()
            .map(|n| n.membership_addr().to_string())
            .collect();
        let node = foundation_testkit::builder(&format!("h{i}"))
            .set("tracing.sample_percent", "100")
            .seeds(seeds.iter().map(String::as_str))
            .start()
            .await
            .expect("node");
        let s = Arc::new(Collect::default());
        node.add_span_exporter(s.clone());
        foundation_demo::define(&node);
        nodes.push(node);
        spans.push(s);
    }
    for n in &nodes {
        n.wait_for_members(2, SETTLE).await.expect("formed");
    }
    nodes[0]
        .processes()
        .start_singleton("handed", foundation_demo::KIND, &())
        .expect("singleton");
    let mut holder = None;
    assert_eventually(SETTLE, "the singleton runs", || {
        holder = nodes[0]
            .registry()
            .whereis("handed")
            .map(|e| e.service.node);
        holder.is_some()
    })
    .await;
    let from = nodes
        .iter()
        .position(|n| Some(n.id()) == holder)
        .expect("a holder");
    let to = 1 - from;
    nodes[from].shutdown().await;

    let sent = spans[from]
        .0
        .lock()
        .expect("spans")
        .iter()
        .find(|s| s.name == "handoff" && s.kind == SpanKind::Producer)
        .cloned()
        .expect("the leaving node records its handoff");
    let received = || {
        spans[to]
            .0
            .lock()
            .expect("spans")
            .iter()
            .find(|s| s.name == "handoff" && s.kind == SpanKind::Consumer)
            .cloned()
    };
    assert_eventually(SETTLE, "the next owner records the handoff", || {
        received().is_some()
    })
    .await;
    let received = received().expect("received");
    assert_eq!(received.trace_id, sent.trace_id);
    assert_eq!(received.parent_span_id, Some(sent.span_id));
    // The start on the next owner continues the same trace.
    let start = || {
        spans[to]
            .0
            .lock()
            .expect("spans")
            .iter()
            .find(|s| {
                s.name == "place"
                    && s.trace_id == sent.trace_id
                    && s.attributes
                        .contains(&("foundation.decision", "start".to_owned()))
            })
            .cloned()
    };
    assert_eventually(SETTLE, "the next owner starts it in the trace", || {
        start().is_some()
    })
    .await;
    assert_eq!(
        start().expect("start").parent_span_id,
        Some(received.span_id)
    );
    nodes[to].shutdown().await;
}
