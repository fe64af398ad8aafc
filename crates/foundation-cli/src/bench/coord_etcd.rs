//! The etcd side of `foundation bench coord --etcd`: a 3-member etcd
//! cluster on loopback (the `etcd` binary on the PATH, each member in its
//! own temporary data directory, fsync as etcd always does), measured
//! through its v3 JSON gateway with the operations the Foundation side
//! runs: a lock with a lease (`/v3/lock/lock`, `/v3/lock/unlock`), put
//! (`/v3/kv/put`) and a linearizable range (`/v3/kv/range`, etcd's
//! default). The client talks to one member; after a leader is killed, to
//! a survivor. etcd has no in-memory mode (3.4 has no `--unsafe-no-fsync`),
//! so its `lock_ms` is its durable figure.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use super::coord::{ms, puts_and_gets, puts_per_second, Contention, Report};
use super::stats::{summarize, Summary};

const BASE: u16 = 24379;

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Member {
    name: String,
    client: String,
    child: Option<Child>,
    dir: std::path::PathBuf,
    peer: String,
}

fn spawn(m: &Member, cluster: &str, state: &str) -> anyhow::Result<Child> {
    Command::new("etcd")
        .args(["--name", &m.name, "--data-dir"])
        .arg(&m.dir)
        .args([
            "--listen-client-urls",
            &m.client,
            "--advertise-client-urls",
            &m.client,
        ])
        .args([
            "--listen-peer-urls",
            &m.peer,
            "--initial-advertise-peer-urls",
            &m.peer,
        ])
        .args([
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            state,
        ])
        .args(["--initial-cluster-token", "foundation-bench"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start etcd (is it installed? Debian: etcd-server)")
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.post_within(path, body, Duration::from_secs(5)).await
    }

    async fn post_within(&self, path: &str, body: Value, wait: Duration) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(wait)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    async fn lease(&self) -> anyhow::Result<String> {
        let r = self.post("/v3/lease/grant", json!({"TTL": 10})).await?;
        r["ID"].as_str().map(str::to_owned).context("no lease id")
    }

    async fn lock(&self, name: &str, lease: &str) -> anyhow::Result<String> {
        let r = self
            .post(
                "/v3/lock/lock",
                json!({"name": b64(name.as_bytes()), "lease": lease}),
            )
            .await?;
        r["key"].as_str().map(str::to_owned).context("no lock key")
    }

    async fn unlock(&self, key: &str) -> anyhow::Result<()> {
        self.post("/v3/lock/unlock", json!({"key": key}))
            .await
            .map(|_| ())
    }

    async fn put(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        let body = json!({"key": b64(key.as_bytes()), "value": b64(value)});
        self.post("/v3/kv/put", body).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> anyhow::Result<()> {
        self.post("/v3/kv/range", json!({"key": b64(key.as_bytes())}))
            .await
            .map(|_| ())
    }

    /// This member's id and the leader's, as it sees them.
    async fn status(&self) -> anyhow::Result<(String, String)> {
        let r = self.post("/v3/maintenance/status", json!({})).await?;
        let me = r["header"]["member_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let leader = r["leader"].as_str().unwrap_or_default().to_owned();
        Ok((me, leader))
    }
}

pub(crate) async fn run(ops: usize, d: Duration, trials: usize) -> anyhow::Result<Report> {
    let root = std::env::temp_dir().join(format!("foundation-bench-etcd-{}", std::process::id()));
    let mut members: Vec<Member> = (0..3u16)
        .map(|i| Member {
            name: format!("e{i}"),
            client: format!("http://127.0.0.1:{}", BASE + 2 * i),
            peer: format!("http://127.0.0.1:{}", BASE + 2 * i + 1),
            child: None,
            dir: root.join(format!("e{i}")),
        })
        .collect();
    let cluster: String = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer))
        .collect::<Vec<_>>()
        .join(",");
    for m in &mut members {
        m.child = Some(spawn(m, &cluster, "new")?);
    }
    let result = measure(&mut members, &cluster, ops, d, trials).await;
    for m in &mut members {
        if let Some(c) = m.child.as_mut() {
            let _ = c.kill().await;
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn client(m: &Member) -> Client {
    Client {
        http: reqwest::Client::new(),
        url: m.client.clone(),
    }
}

async fn ready(c: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if matches!(c.status().await, Ok((_, l)) if !l.is_empty() && l != "0")
            && c.put("bench/ready", b"1").await.is_ok()
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "etcd not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(
    members: &mut [Member],
    cluster: &str,
    ops: usize,
    d: Duration,
    trials: usize,
) -> anyhow::Result<Report> {
    let c = client(&members[1]);
    ready(&c).await?;
    let lease = c.lease().await?;

    let mut lat = Vec::new();
    for _ in 0..ops {
        let t = Instant::now();
        let key = c.lock("bench-uncontended", &lease).await?;
        c.unlock(&key).await?;
        lat.push(ms(t.elapsed()));
    }
    let lock_ms = summarize(lat);

    let (grants, wait, double) = contended(&c, d).await?;

    let (put, get) = puts_and_gets(
        ops,
        |k, v| {
            let c = c.clone();
            async move { c.put(&k, &v.to_le_bytes()).await }
        },
        |k| {
            let c = c.clone();
            async move { c.get(&k).await }
        },
    )
    .await?;
    let puts_per_s = puts_per_second(d, {
        let c = c.clone();
        move |k, v| {
            let c = c.clone();
            async move { c.put(&k, &v.to_le_bytes()).await.is_ok() }
        }
    })
    .await?;

    let failover_ms = failovers(members, cluster, trials).await?;
    Ok(Report {
        system: "etcd",
        lock_ms,
        lock_durable_ms: lock_ms,
        contended_grants_per_s: grants,
        contended_wait_ms: wait,
        put_ms: put,
        get_ms: get,
        puts_per_s,
        failover_ms,
        double_grants: double,
    })
}

async fn contended(c: &Client, d: Duration) -> anyhow::Result<(f64, Summary, usize)> {
    let start = Instant::now();
    let record = Contention::default();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, record) = (c.clone(), record.clone());
        let lease = c.lease().await?;
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < d {
                let asked = Instant::now();
                let Ok(key) = c.lock("bench-hot", &lease).await else {
                    continue;
                };
                record.granted(start, asked);
                let _ = c.unlock(&key).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(record.result(start))
}

async fn failovers(
    members: &mut [Member],
    cluster: &str,
    trials: usize,
) -> anyhow::Result<Summary> {
    let mut out = Vec::new();
    for trial in 0..trials {
        // Every member up and agreeing on a leader.
        let mut leader = String::new();
        for m in members.iter() {
            ready(&client(m)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut ids = Vec::new();
        for m in members.iter() {
            let (me, l) = client(m).status().await?;
            leader = l;
            ids.push(me);
        }
        let i = ids
            .iter()
            .position(|id| *id == leader)
            .ok_or_else(|| anyhow!("leader {leader} is not a member {ids:?}"))?;
        let survivor = client(&members[(i + 1) % members.len()]);
        let lease = survivor.lease().await?;
        let t = Instant::now();
        if let Some(c) = members[i].child.as_mut() {
            c.start_kill()?;
            c.wait().await?;
        }
        // Attempts of 250 ms each, on a fresh name each (one that times
        // out may still be granted later and must not block the next).
        let mut attempt = 0;
        let took = loop {
            attempt += 1;
            let name = b64(format!("bench-failover-{trial}-{attempt}").as_bytes());
            let body = json!({"name": name, "lease": lease});
            let r = survivor
                .post_within("/v3/lock/lock", body, Duration::from_millis(250))
                .await;
            match r {
                Ok(v) => {
                    let took = t.elapsed();
                    if let Some(key) = v["key"].as_str() {
                        let _ = survivor.unlock(key).await;
                    }
                    break took;
                }
                Err(_) if t.elapsed() < Duration::from_secs(30) => continue,
                Err(e) => return Err(anyhow!("no etcd lock within 30 s of the kill: {e}")),
            }
        };
        out.push(ms(took));
        members[i].child = Some(spawn(&members[i], cluster, "existing")?);
    }
    Ok(summarize(out))
}

#[cfg(test)]
mod tests {
    use super::b64;

    #[test]
    fn base64_as_etcd_expects() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"bench/k1"), "YmVuY2gvazE=");
    }
}
