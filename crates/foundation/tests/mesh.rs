//! The service mesh in in-process clusters: discovery by criteria, live
//! discovery, load-balanced calls that skip nodes that are not alive,
//! ejection, retries of idempotent calls, deadlines, `GET /mesh`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foundation::mesh::{Breaker, ClientOptions, Criteria, MeshError, ServiceMeta, Strategy};
use foundation::process::{CallError, Context, Intensity, Service, ServiceError, ServiceOptions};
use foundation::{MemberState, Node};
use foundation_testkit::{assert_eventually, Cluster};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(5);
const SETTLE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Ask {
    /// Reply with the hosting node's name.
    Who,
    /// Sleep, then reply.
    Sleep(u64),
}

/// Answers with its node's name; fails every call when `broken`.
struct Who {
    node: String,
    broken: bool,
}

impl Service for Who {
    type Request = Ask;
    type Reply = String;
    type State = ();

    async fn handle(&mut self, _: &mut Context, ask: Ask) -> Result<String, ServiceError> {
        if self.broken {
            return Err(ServiceError::new("broken on purpose"));
        }
        if let Ask::Sleep(ms) = ask {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(self.node.clone())
    }
}

fn spawn_who(node: &Node, broken: bool) -> foundation::ServiceRef<Who> {
    let name = node.name().to_owned();
    // A handler's error restarts the instance; a broken one must outlast
    // the default intensity (3 restarts in 5 s) to stay registered.
    let options = ServiceOptions {
        intensity: Intensity {
            max_restarts: 1000,
            period: Duration::from_secs(5),
        },
        ..ServiceOptions::default()
    };
    node.services().spawn(
        move || Who {
            node: name.clone(),
            broken,
        },
        options,
    )
}

/// A cluster of `n` nodes where every node but the first runs a `Who`
/// (broken where `broken` says) in group `who`, once node 0 sees them all.
async fn who_cluster(n: usize, broken: &[bool]) -> (Cluster, Node) {
    let c = Cluster::start(n).await.expect("cluster");
    let a = c.node(0).clone();
    for i in 1..n {
        let s = spawn_who(c.node(i), broken.get(i).copied().unwrap_or(false));
        c.node(i).registry().join("who", &s).expect("join");
    }
    assert_eventually(SETTLE, "every endpoint known", || {
        a.mesh().discover(&Criteria::name("who")).len() == n - 1
    })
    .await;
    (c, a)
}

fn with_roles(b: foundation::NodeBuilder, i: usize) -> foundation::NodeBuilder {
    if i == 2 {
        b.roles(["edge"])
    } else {
        b
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_filters_by_version_capability_and_role_and_follows_changes() {
    let mut c = Cluster::start_with(3, with_roles).await.expect("cluster");
    let a = c.node(0).clone();
    let mut watch = a.mesh().watch(Criteria::name("resize").capability("gpu"));
    assert!(watch.current().is_empty());

    let s1 = spawn_who(c.node(1), false);
    let s2 = spawn_who(c.node(2), false);
    c.node(1)
        .registry()
        .join_with(
            "resize",
            &s1,
            ServiceMeta::new().version("1.4.0").capability("gpu"),
        )
        .expect("join");
    c.node(2)
        .registry()
        .join_with(
            "resize",
            &s2,
            ServiceMeta::new().version("2.0.1").with("zone", "b"),
        )
        .expect("join");
    assert_eventually(SETTLE, "both registrations reach node 0", || {
        a.mesh().discover(&Criteria::name("resize")).len() == 2
    })
    .await;

    let names = |criteria: Criteria| -> Vec<String> {
        a.mesh()
            .discover(&criteria)
            .into_iter()
            .map(|e| e.node_name)
            .collect()
    };
    let v = |req: &str| Criteria::name("resize").version(req).expect("requirement");
    assert_eq!(names(v("^1.2")), ["n1"]);
    assert_eq!(names(v(">=2")), ["n2"]);
    assert!(names(v("^3")).is_empty());
    assert_eq!(names(Criteria::name("resize").capability("gpu")), ["n1"]);
    assert_eq!(names(Criteria::name("resize").role("edge")), ["n2"]);
    let found = a.mesh().discover(&Criteria::name("resize").role("edge"));
    assert_eq!(found[0].meta.get("zone"), Some("b"));
    assert_eq!(found[0].node_state, MemberState::Alive);

    // The watch saw the gpu endpoint come.
    let now = tokio::time::timeout(SETTLE, watch.changed())
        .await
        .expect("a change")
        .expect("running")
        .to_vec();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].service, s1.addr());

    // New metadata replaces the old: the gpu capability goes, and with it
    // the endpoint from the watch.
    c.node(1)
        .registry()
        .join_with("resize", &s1, ServiceMeta::new().version("1.5.0"))
        .expect("re-join");
    let gone = tokio::time::timeout(SETTLE, watch.changed())
        .await
        .expect("a change")
        .expect("running")
        .to_vec();
    assert!(gone.is_empty(), "{gone:?}");
    assert_eq!(names(v("=1.5.0")), ["n1"]);

    // Bad metadata is refused with the reason.
    let err = c
        .node(1)
        .registry()
        .join_with("resize", &s1, ServiceMeta::new().version("v1"))
        .expect_err("not semver");
    assert!(err.to_string().contains("semantic version"), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_and_skip_a_node_that_is_not_alive_before_the_next_call() {
    let (mut c, a) = who_cluster(3, &[]).await;
    let client = a.mesh().client_with::<Who>(
        Criteria::name("who"),
        ClientOptions::default().strategy(Strategy::RoundRobin),
    );
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let n = client.call(Ask::Who, T).await.expect("call");
        *got.entry(n).or_default() += 1;
    }
    assert_eq!(got.get("n1"), Some(&10), "{got:?}");
    assert_eq!(got.get("n2"), Some(&10), "{got:?}");

    // Cut node 2 off; as soon as node 0 no longer holds it alive (suspect
    // first: its registry entries are still there), no call goes to it.
    let n2 = c.node(2).id();
    c.partition(&[0, 1], &[2]);
    assert_eventually(SETTLE, "node 0 stops holding node 2 alive", || {
        a.members()
            .iter()
            .any(|m| m.id == n2 && m.state != MemberState::Alive)
    })
    .await;
    for _ in 0..20 {
        let n = client.call(Ask::Who, T).await.expect("call");
        assert_eq!(n, "n1");
    }
    c.heal();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_and_the_view_shows_it() {
    let (mut c, a) = who_cluster(3, &[false, false, true]).await;
    let bad_node = c.node(2).id();
    // A long ejection: no half-open trial within this test.
    let mut options = ClientOptions::default().strategy(Strategy::RoundRobin);
    options.balancer.ejection = Duration::from_secs(60);
    let client = a.mesh().client_with::<Who>(Criteria::name("who"), options);
    let mut failures = 0;
    for _ in 0..20 {
        match client.call(Ask::Who, T).await {
            Ok(n) => assert_eq!(n, "n1"),
            Err(MeshError::Call(CallError::Failed { .. })) => failures += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // Five failures in a row eject it; the calls after that all succeed.
    assert_eq!(failures, 5);
    let view = client.endpoints();
    let b = view
        .iter()
        .find(|v| v.addr.node == bad_node)
        .expect("bad endpoint listed");
    assert_eq!(b.breaker, Breaker::Open);
    assert_eq!(b.failures, 5);
    assert!(b.ejected_for_ms.is_some());
    // The node's list of clients shows the same.
    let clients = a.mesh().clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].criteria, "who");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_retry_elsewhere_and_others_do_not() {
    let (mut c, a) = who_cluster(3, &[]).await;
    // Node 0's frames to node 2's transport are lost; membership still
    // holds node 2 alive, so only a timeout tells.
    a.raw().faults().block_to([c.node(2).transport_addr()]);
    let options = ClientOptions::default()
        .strategy(Strategy::RoundRobin)
        .attempt_timeout(Duration::from_millis(300));
    let client = a.mesh().client_with::<Who>(Criteria::name("who"), options);
    for _ in 0..6 {
        let n = client
            .call_idempotent(Ask::Who, T)
            .await
            .expect("retried on node 1");
        assert_eq!(n, "n1");
    }
    // A plain call is never retried: the one that goes to node 2 fails
    // (a timeout, or unreachable once QUIC gives the connection up).
    let mut failed = 0;
    for _ in 0..4 {
        match client.call(Ask::Who, T).await {
            Ok(n) => assert_eq!(n, "n1"),
            Err(MeshError::Call(CallError::Failed { .. })) => panic!("the service never fails"),
            Err(MeshError::Call(_)) => failed += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(failed >= 1, "round-robin sends one of four to node 2");
    a.raw().faults().heal();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_covers_the_call_and_nothing_matching_is_a_clear_error() {
    let (mut c, a) = who_cluster(2, &[]).await;
    let client = a.mesh().client::<Who>(Criteria::name("who"));
    let err = client
        .call_idempotent(Ask::Sleep(2_000), Duration::from_millis(50))
        .await
        .expect_err("slower than the deadline");
    assert!(
        matches!(err, MeshError::DeadlineExceeded { attempts: 1, .. }),
        "{err:?}"
    );
    let none = a
        .mesh()
        .client::<Who>(Criteria::name("who").capability("gpu"));
    let err = none.call(Ask::Who, T).await.expect_err("nothing matches");
    assert!(matches!(err, MeshError::NoEndpoint { .. }), "{err:?}");
    assert!(err.to_string().contains("who +gpu"), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_a_tower_service_that_layers_wrap() {
    use tower::{ServiceBuilder, ServiceExt as _};
    let (mut c, a) = who_cluster(2, &[]).await;
    let client = a.mesh().client::<Who>(Criteria::name("who"));
    let layered = ServiceBuilder::new()
        .concurrency_limit(4)
        .timeout(T)
        .service(client.clone());
    let reply = layered.oneshot(Ask::Who).await.expect("through the layers");
    assert_eq!(reply, "n1");
    // The layer's own timeout fires before the service's reply.
    let short = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .service(client.clone());
    let err = short
        .oneshot(Ask::Sleep(2_000))
        .await
        .expect_err("slower than the layer's timeout");
    assert!(
        err.is::<tower::timeout::error::Elapsed>(),
        "the layer's error: {err}"
    );
    // The call the layer dropped is no longer counted in flight.
    let view = client.endpoints();
    assert_eq!((view[0].successes, view[0].in_flight), (1, 0));
    c.shutdown().await;
}

/// Keeps every span a node exports.
#[derive(Debug, Default)]
struct Collect(std::sync::Mutex<Vec<foundation::spans::SpanRecord>>);

impl foundation::spans::SpanExporter for Collect {
    fn export(&self, span: foundation::spans::SpanRecord) {
        self.0.lock().expect("spans").push(span);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_call_outside_any_trace_starts_one_when_sampling_is_on() {
    // Every call made outside a trace starts one (sampled), mesh calls
    // included (they run each attempt in a context carrying the deadline,
    // which must not pass for "already in a trace").
    let mut c = Cluster::start_with(2, |b, _| b.set("tracing.sample_percent", "100"))
        .await
        .expect("cluster");
    let (a, b) = (c.node(0).clone(), c.node(1).clone());
    let (on_a, on_b) = (Arc::new(Collect::default()), Arc::new(Collect::default()));
    a.add_span_exporter(on_a.clone());
    b.add_span_exporter(on_b.clone());
    let s = spawn_who(&b, false);
    b.registry().join("who", &s).expect("join");
    let client = a.mesh().client::<Who>(Criteria::name("who"));
    assert_eventually(SETTLE, "the endpoint is known", || {
        !client.endpoints().is_empty()
    })
    .await;
    assert_eq!(client.call(Ask::Who, T).await.expect("call"), "n1");
    let calls: Vec<_> = on_a
        .0
        .lock()
        .expect("spans")
        .iter()
        .filter(|s| s.name == "call" && s.kind == foundation::spans::SpanKind::Client)
        .cloned()
        .collect();
    assert_eq!(calls.len(), 1, "one client span: {calls:?}");
    let call = &calls[0];
    assert_eventually(T, "the server's span joins the trace", || {
        on_b.0.lock().expect("spans").iter().any(|s| {
            s.name == "handle"
                && s.trace_id == call.trace_id
                && s.parent_span_id == Some(call.span_id)
        })
    })
    .await;
    c.shutdown().await;
}
