//! The `etcd` strategy against a real etcd-server (Debian's package), which
//! this test starts on loopback ports with a temporary data directory. Where
//! `etcd` is not installed the test prints why it skipped; CI installs it.
#![cfg(feature = "etcd")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct EtcdServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn etcd() -> Option<EtcdServer> {
    if Command::new("etcd").arg("--version").output().is_err() {
        foundation_testkit::skip::skip(
            "etcd is not installed (apt-get install etcd-server); .ci/run installs it",
        );
        return None;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--data-dir", dir.path().to_str().expect("utf8")])
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let server = EtcdServer {
        child,
        url,
        _dir: dir,
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/health", server.url)).send().await {
            if r.status().is_success() {
                return Some(server);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not become healthy");
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// How many keys etcd holds under `prefix` (a plain range request).
async fn keys(url: &str, prefix: &str) -> usize {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let end = String::from_utf8(end).expect("ascii prefix");
    let body = format!(
        "{{\"key\":\"{}\",\"range_end\":\"{}\",\"count_only\":true}}",
        b64(prefix),
        b64(&end)
    );
    let text = reqwest::Client::new()
        .post(format!("{url}/v3/kv/range"))
        .body(body)
        .send()
        .await
        .expect("range")
        .text()
        .await
        .expect("body");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    r["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_watch_leave_and_survive_an_etcd_outage() {
    init_tracing();
    let Some(server) = etcd().await else { return };
    let prefix = "/foundation/etcd-test/";
    let node = |name: &str| {
        builder(name)
            .cluster("etcd")
            .set("etcd.endpoint", &server.url)
            .set("etcd.prefix", prefix)
            .set("etcd.ttl_s", "4")
    };
    let a = node("etcd-a").start().await.expect("a");
    let b = node("etcd-b").start().await.expect("b");
    let c = node("etcd-c").start().await.expect("c");
    for n in [&a, &b, &c] {
        n.wait_for_members(3, SETTLE)
            .await
            .expect("found through etcd");
    }
    assert_eq!(keys(&server.url, prefix).await, 3);

    // A graceful shutdown revokes the lease: the key disappears at once.
    c.shutdown().await;
    tokio::time::timeout(SETTLE, async {
        while keys(&server.url, prefix).await != 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("c's key removed");

    // etcd goes away: discovery fails, the cluster keeps its members.
    drop(server);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in [&a, &b] {
        assert_eq!(
            alive(n),
            2,
            "{} lost a member during the etcd outage",
            n.name()
        );
    }
    b.shutdown().await;
    a.shutdown().await;
}
