//! The HTTP endpoint: /health, /ready, /metrics, /members, /caches.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    init_tracing();
    let a = builder("h0")
        .http(true)
        .http_port(0)
        .start()
        .await
        .expect("a");
    let seed = a.membership_addr().to_string();
    let b = builder("h1")
        .http(true)
        .http_port(0)
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("b");
    a.wait_for_members(2, SETTLE).await.expect("joined");
    b.wait_for_members(2, SETTLE).await.expect("joined");
    let http = a.http_addr().expect("http on");

    let (code, body) = get(http, "/health").await;
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "healthy", "{body}");
    assert_eq!(health["node"]["name"], "h0");
    assert_eq!(health["members"].as_array().map(Vec::len), Some(2));
    assert!(health["checks"].as_array().is_some_and(|c| !c.is_empty()));

    assert_eq!(get(http, "/ready").await.0, 200);

    // A cache with one entry, one hit and one miss.
    let cache = a
        .cache::<u32, u32>("sessions", foundation::cache::CacheOptions::default())
        .expect("cache");
    cache.put(&1, &10).await.expect("put");
    assert_eq!(cache.get(&1).await.expect("get"), Some(10));
    assert_eq!(cache.get(&2).await.expect("get"), None);
    let (code, body) = get(http, "/caches").await;
    assert_eq!(code, 200);
    let caches: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(caches[0]["name"], "sessions", "{body}");
    assert_eq!(caches[0]["tier"], "partitioned", "{body}");
    assert_eq!(caches[0]["hits"], 1, "{body}");
    assert_eq!(caches[0]["hit_rate"], 0.5, "{body}");

    let (code, text) = get(http, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "foundation_cache_hits_total{cache=\"sessions\",tier=\"partitioned\"} 1",
        "foundation_cache_misses_total{cache=\"sessions\",tier=\"partitioned\"} 1",
        "foundation_cache_hit_ratio{cache=\"sessions\",tier=\"partitioned\"} 0.5",
        "# TYPE foundation_cache_entries gauge",
        "foundation_members{state=\"alive\"} 2",
        "foundation_messages_sent_total{channel=\"control\"}",
        "foundation_bytes_received_total{channel=\"data\"}",
        "foundation_frame_errors_total 0",
        "foundation_membership_datagrams_dropped_total{reason=\"unauthenticated\"}",
        "foundation_membership_datagrams_dropped_total{reason=\"replayed\"}",
        "# TYPE foundation_membership_health_score gauge\nfoundation_membership_health_score ",
        "foundation_membership_events_total{kind=\"down\"} 0",
        "foundation_membership_rejoins_total 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // h0 saw h1 come up.
    let ups = text
        .lines()
        .find_map(|l| l.strip_prefix("foundation_membership_events_total{kind=\"up\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(ups.is_some_and(|n| n >= 1), "up events: {ups:?}\n{text}");
    // Joining took membership datagrams both ways, and this process has
    // resident memory.
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.parse::<u64>().ok())
    };
    for prefix in [
        "foundation_membership_datagrams_total{direction=\"sent\"} ",
        "foundation_membership_datagrams_total{direction=\"received\"} ",
        "foundation_membership_bytes_total{direction=\"sent\"} ",
        "foundation_membership_bytes_total{direction=\"received\"} ",
    ] {
        assert!(value(prefix).is_some_and(|n| n > 0), "{prefix}\n{text}");
    }
    assert!(
        value("foundation_membership_bytes_per_second{direction=\"sent\"} ").is_some(),
        "{text}"
    );
    assert!(
        value("foundation_process_resident_memory_bytes ").is_some_and(|n| n > 1 << 20),
        "{text}"
    );

    let (code, body) = get(http, "/members").await;
    assert_eq!(code, 200);
    let members: Vec<foundation::Member> = serde_json::from_str(&body).expect("members json");
    assert_eq!(members.len(), 2);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_joined() {
    init_tracing();
    // A seed that nobody listens on: the node cannot join.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let seed = silent.local_addr().expect("addr").to_string();
    let n = builder("lonely")
        .http(true)
        .http_port(0)
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = n.http_addr().expect("http on");
    let (code, _) = get(http, "/ready").await;
    assert_eq!(code, 503);
    let (_, body) = get(http, "/health").await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "degraded", "{body}");
    n.shutdown().await;
}

/// A node on the public development secret: no secret set, static
/// discovery without seeds (so it sends nothing anywhere), HTTP on.
fn development_node(name: &str, advertise: &str) -> foundation::NodeBuilder {
    foundation::NodeBuilder::isolated()
        .cluster("static")
        .name(name)
        .bind(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .port(0)
        .set("transport.advertise", advertise)
        .http(true)
        .http_port(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_address_with_the_development_secret_refuses_to_start() {
    init_tracing();
    let e = development_node("public", "8.8.8.8")
        .start()
        .await
        .expect_err("the public secret on a public address");
    assert!(
        matches!(
            e,
            foundation::StartError::PublicDevelopmentSecret {
                key: "transport.advertise",
                ..
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("8.8.8.8") && text.contains("FOUNDATION_SECRET"),
        "{text}"
    );
    // With a secret of its own, the same node starts.
    let node = development_node("public", "8.8.8.8")
        .secret(SECRET)
        .start()
        .await
        .expect("a real secret may go anywhere");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_the_development_secret_is_in_use_beyond_loopback() {
    init_tracing();
    let check = |body: &str| -> Option<(bool, String)> {
        let health: serde_json::Value = serde_json::from_str(body).expect("json");
        health["checks"].as_array()?.iter().find_map(|c| {
            (c["name"] == "insecure_development_secret").then(|| {
                (
                    c["ok"].as_bool().unwrap_or(true),
                    c["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
        })
    };
    // On a LAN address: the node starts, and the check fails.
    let lan = development_node("lan", "10.255.255.1")
        .start()
        .await
        .expect("a private address is a LAN");
    let (_, body) = get(lan.http_addr().expect("http"), "/health").await;
    let (ok, detail) = check(&body).expect("the check is there");
    assert!(!ok && detail.contains("10.255.255.1"), "{body}");
    lan.shutdown().await;

    // On loopback only: the check passes.
    let local = development_node("local", "127.0.0.1")
        .start()
        .await
        .expect("loopback");
    let (_, body) = get(local.http_addr().expect("http"), "/health").await;
    assert_eq!(check(&body).map(|c| c.0), Some(true), "{body}");
    local.shutdown().await;

    // With another secret there is nothing to say.
    let own = builder("own")
        .http(true)
        .http_port(0)
        .start()
        .await
        .expect("own");
    let (_, body) = get(own.http_addr().expect("http"), "/health").await;
    assert_eq!(check(&body), None, "{body}");
    own.shutdown().await;
}

/// Answers with the number it is given.
struct Echo;

impl foundation::Service for Echo {
    type Request = u32;
    type Reply = u32;
    type State = ();

    async fn handle(
        &mut self,
        _: &mut foundation::process::Context,
        n: u32,
    ) -> Result<u32, foundation::process::ServiceError> {
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_lists_each_client_with_its_endpoints() {
    use foundation::mesh::{Criteria, ServiceMeta};
    init_tracing();
    let n = builder("m0")
        .http(true)
        .http_port(0)
        .start()
        .await
        .expect("node");
    let svc = n
        .services()
        .spawn(|| Echo, foundation::process::ServiceOptions::default());
    n.registry()
        .join_with("echo", &svc, ServiceMeta::new().version("1.0.0"))
        .expect("join");
    let client = n.mesh().client::<Echo>(Criteria::name("echo"));
    assert_eq!(client.call(7, SETTLE).await.expect("call"), 7);

    let (code, body) = get(n.http_addr().expect("http on"), "/mesh").await;
    assert_eq!(code, 200);
    let clients: serde_json::Value = serde_json::from_str(&body).expect("json");
    let c = &clients[0];
    assert_eq!(c["criteria"], "echo", "{body}");
    assert_eq!(c["strategy"], "P2cEwma", "{body}");
    let e = &c["endpoints"][0];
    assert_eq!(e["successes"], 1, "{body}");
    assert_eq!(e["in_flight"], 0, "{body}");
    assert_eq!(e["breaker"], "closed", "{body}");
    assert!(e["ewma_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{body}");
    drop(client);
    let (_, body) = get(n.http_addr().expect("http on"), "/mesh").await;
    assert_eq!(body, "[]", "a dropped client is no longer listed");
    n.shutdown().await;
}

/// Opens `/dashboard/events`; the stream and its status line's start.
async fn open_stream(http: std::net::SocketAddr) -> (tokio::net::TcpStream, [u8; 12]) {
    let mut s = tokio::net::TcpStream::connect(http).await.expect("connect");
    s.write_all(b"GET /dashboard/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut status = [0u8; 12];
    s.read_exact(&mut status).await.expect("status line");
    (s, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_snapshot_has_every_node_and_streams_are_bounded() {
    init_tracing();
    let a = builder("d0")
        .http(true)
        .http_port(0)
        .start()
        .await
        .expect("a");
    let seed = a.membership_addr().to_string();
    let b = builder("d1")
        .seeds([seed.as_str()])
        .start()
        .await
        .expect("b");
    a.wait_for_members(2, SETTLE).await.expect("joined");
    b.pubsub().subscribe::<String>("news").expect("subscribe");
    let http = a.http_addr().expect("http on");

    let (code, page) = get(http, "/dashboard").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("EventSource(\"dashboard/events\")"),
        "the page streams"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page fetches nothing from elsewhere"
    );

    // b has no HTTP endpoint: its report comes over the telemetry channel.
    let mut view = serde_json::Value::Null;
    for _ in 0..50 {
        let (code, body) = get(http, "/dashboard/snapshot").await;
        assert_eq!(code, 200);
        view = serde_json::from_str(&body).expect("json");
        let topics = &view["nodes"][1]["report"]["topics"];
        if topics.as_array().is_some_and(|t| !t.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["node"]["name"], "d0", "{view}");
    assert_eq!(
        view["node"]["id"],
        a.id().to_string(),
        "ids are hex strings"
    );
    let members = view["members"].as_array().expect("members");
    assert_eq!(members.len(), 2, "{view}");
    assert_eq!(members[1]["name"], "d1");
    assert_eq!(members[1]["state"], "alive");
    assert!(members[1]["clock_offset_ms"].is_f64(), "{view}");
    assert!(members[1]["since_s"].is_f64(), "{view}");
    let nodes = view["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{view}");
    assert_eq!(nodes[1]["name"], "d1");
    assert_eq!(nodes[1]["report"]["topics"][0]["name"], "news", "{view}");
    assert_eq!(
        nodes[1]["report"]["traffic"].as_array().map(Vec::len),
        Some(4)
    );

    // Sixteen streams at once; the seventeenth is refused until one closes.
    let mut open = Vec::new();
    for _ in 0..16 {
        let (s, status) = open_stream(http).await;
        assert_eq!(&status, b"HTTP/1.1 200");
        open.push(s);
    }
    let (code, body) = get(http, "/dashboard/events").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("too many dashboards"), "{body}");
    drop(open);
    let mut reopened = false;
    for _ in 0..50 {
        if &open_stream(http).await.1 == b"HTTP/1.1 200" {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a stream opens again once the others closed");
}
