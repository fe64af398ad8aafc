//! The `dns` strategy against a DNS server this test runs (UDP, built on
//! hickory-proto messages): A and SRV records, a record that disappears, a
//! server that stops answering, and a cluster formed through DNS.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use foundation::config::{
    ConsulConfig, DnsConfig, DnsRecord, EtcdConfig, GossipConfig, KubernetesConfig,
};
use foundation::discovery::{CandidateSink, Candidates, DiscoveryContext, Dns, Strategy};
use foundation::telemetry::Stats;
use foundation::NodeId;
use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio_util::sync::CancellationToken;

type Table = Arc<Mutex<HashMap<(String, RecordType), Vec<RData>>>>;

/// A tiny authoritative DNS server on 127.0.0.1 (UDP).
struct DnsServer {
    addr: SocketAddr,
    records: Table,
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    async fn start() -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let records: Table = Arc::default();
        let silent = Arc::new(AtomicBool::new(false));
        let (table, quiet) = (records.clone(), silent.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if quiet.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::response(query.metadata.id, OpCode::Query);
                reply.metadata.authoritative = true;
                let mut found = false;
                for q in &query.queries {
                    reply.add_query(q.clone());
                    let key = (q.name().to_ascii().to_lowercase(), q.query_type());
                    if let Some(rdatas) = table.lock().expect("table").get(&key) {
                        for rdata in rdatas {
                            found = true;
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                0,
                                rdata.clone(),
                            ));
                        }
                    }
                }
                if !found {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        DnsServer {
            addr,
            records,
            silent,
            task,
        }
    }

    fn set(&self, name: &str, rtype: RecordType, rdatas: Vec<RData>) {
        self.records
            .lock()
            .expect("table")
            .insert((name.to_owned(), rtype), rdatas);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

fn context(server: SocketAddr, query: &str, record: DnsRecord, port: u16) -> DiscoveryContext {
    DiscoveryContext {
        node: NodeId(1),
        name: "t".into(),
        cluster: "t".into(),
        membership: SocketAddr::from(([127, 0, 0, 1], port)),
        transport: SocketAddr::from(([127, 0, 0, 1], port + 1)),
        bind: IpAddr::from([127, 0, 0, 1]),
        key: [0; 32],
        replay_window: Duration::from_secs(60),
        gossip: GossipConfig {
            group: Ipv4Addr::new(239, 255, 70, 77),
            port: 7945,
            ttl: 1,
            interval: Duration::from_secs(1),
            with_mdns: true,
        },
        dns: DnsConfig {
            query: Some(query.into()),
            record,
            port: Some(port),
            server: Some(server),
            interval: Duration::from_millis(100),
        },
        consul: ConsulConfig {
            addr: "http://127.0.0.1:1".into(),
            service: None,
            token: None,
            wait: Duration::from_secs(1),
        },
        etcd: EtcdConfig {
            endpoint: "http://127.0.0.1:1".into(),
            prefix: "/foundation/t/".into(),
            ttl: Duration::from_secs(10),
        },
        kubernetes: KubernetesConfig {
            selector: "app=t".into(),
            namespace: "default".into(),
            port: None,
            api: None,
        },
        stats: Arc::new(Stats::default()),
    }
}

fn set(addrs: &[&str]) -> Candidates {
    addrs.iter().map(|a| a.parse().expect("addr")).collect()
}

async fn wait_for(rx: &mut tokio::sync::watch::Receiver<Candidates>, want: &Candidates) {
    tokio::time::timeout(SETTLE, async {
        while *rx.borrow_and_update() != *want {
            rx.changed().await.expect("sink open");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("candidates never became {want:?}, last {:?}", *rx.borrow()));
}

async fn wait_errors(sink: &CandidateSink, more_than: u64) {
    tokio::time::timeout(SETTLE, async {
        while sink.errors() <= more_than {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("error counted");
}

#[tokio::test]
async fn a_records_follow_changes_and_failures_keep_the_last_set() {
    let server = DnsServer::start().await;
    server.set(
        "app.test.",
        RecordType::A,
        vec![a([10, 0, 0, 1]), a([10, 0, 0, 2])],
    );
    let (sink, mut rx) = CandidateSink::new();
    let cancel = CancellationToken::new();
    let ctx = context(server.addr, "app.test.", DnsRecord::A, 7946);
    let task = tokio::spawn(Box::new(Dns::new()).run(ctx, sink.clone(), cancel.clone()));
    wait_for(&mut rx, &set(&["10.0.0.1:7946", "10.0.0.2:7946"])).await;

    // One record disappears: the set follows.
    server.set("app.test.", RecordType::A, vec![a([10, 0, 0, 2])]);
    wait_for(&mut rx, &set(&["10.0.0.2:7946"])).await;

    // Every record disappears: an error, and the last set stays.
    let errors = sink.errors();
    server.set("app.test.", RecordType::A, vec![]);
    wait_errors(&sink, errors).await;
    assert_eq!(*rx.borrow(), set(&["10.0.0.2:7946"]));

    // The server stops answering: errors, and the last set stays.
    server.set("app.test.", RecordType::A, vec![a([10, 0, 0, 3])]);
    wait_for(&mut rx, &set(&["10.0.0.3:7946"])).await;
    server.silent.store(true, Ordering::Relaxed);
    let errors = sink.errors();
    wait_errors(&sink, errors).await;
    assert_eq!(*rx.borrow(), set(&["10.0.0.3:7946"]));

    // It answers again: the strategy heals by itself.
    server.set("app.test.", RecordType::A, vec![a([10, 0, 0, 4])]);
    server.silent.store(false, Ordering::Relaxed);
    wait_for(&mut rx, &set(&["10.0.0.4:7946"])).await;
    cancel.cancel();
    task.await.expect("stops");
}

#[tokio::test]
async fn srv_records_give_targets_and_ports() {
    let server = DnsServer::start().await;
    let target = Name::from_ascii("node-1.test.").expect("name");
    server.set(
        "_foundation._udp.app.test.",
        RecordType::SRV,
        vec![RData::SRV(SRV::new(0, 0, 7000, target))],
    );
    server.set("node-1.test.", RecordType::A, vec![a([10, 0, 0, 9])]);
    let (sink, mut rx) = CandidateSink::new();
    let cancel = CancellationToken::new();
    let ctx = context(
        server.addr,
        "_foundation._udp.app.test.",
        DnsRecord::Srv,
        7946,
    );
    let task = tokio::spawn(Box::new(Dns::new()).run(ctx, sink, cancel.clone()));
    wait_for(&mut rx, &set(&["10.0.0.9:7000"])).await;
    cancel.cancel();
    task.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_form_a_cluster_through_dns() {
    init_tracing();
    let server = DnsServer::start().await;
    server.set("nodes.test.", RecordType::A, vec![a([127, 0, 0, 1])]);
    let a = builder("dns-a").start().await.expect("a");
    let port = a.membership_addr().port().to_string();
    let dns = server.addr.to_string();
    let b = builder("dns-b")
        .cluster("dns")
        .set("dns.query", "nodes.test.")
        .set("dns.server", &dns)
        .set("dns.port", &port)
        .set("dns.interval_ms", "200")
        .start()
        .await
        .expect("b");
    b.wait_for_members(2, SETTLE)
        .await
        .expect("b joined a through DNS");
    a.wait_for_members(2, SETTLE).await.expect("a sees b");
    b.shutdown().await;
    a.shutdown().await;
}
