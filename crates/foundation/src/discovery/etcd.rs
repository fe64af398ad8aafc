//! The `etcd` strategy (cargo feature `etcd`): each node registers under a
//! prefix with a lease and watches the prefix, through etcd's v3 HTTP/JSON
//! gateway (the same API as gRPC, served on the client port).
//!
//! - `POST /v3/lease/grant` (TTL `etcd.ttl_s`), then `POST /v3/kv/put`
//!   `{prefix}{node id}` → membership address, attached to the lease, kept
//!   alive every TTL/3 (`/v3/lease/keepalive`).
//! - `POST /v3/kv/range` over the prefix gives the current peers and a
//!   revision; `POST /v3/watch` from the next revision streams PUT and
//!   DELETE events (a key disappears when its node leaves or its lease
//!   expires).
//! - On shutdown the lease is revoked, so the key disappears at once.
//!
//! A failure (etcd down, HTTP error, malformed answer, a broken watch)
//! keeps the last candidates; the strategy logs, counts, backs off and
//! starts over with a new lease.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::answer::{read_bounded, CONNECT_TIMEOUT, MAX_ANSWER};
use super::backoff::Backoff;
use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};

/// Longest watch line accepted.
const MAX_LINE: usize = 4 * 1024 * 1024;
/// Longest a request other than the watch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The etcd strategy.
#[derive(Debug, Clone, Default)]
pub struct Etcd {}

impl Etcd {
    /// The strategy (its settings come from the `etcd.*` keys).
    pub fn new() -> Self {
        Etcd {}
    }

    /// Whether etcd answers healthy (`foundation doctor`).
    async fn check(ctx: &DiscoveryContext) -> Result<(), String> {
        let url = format!("{}/health", ctx.etcd.endpoint.trim_end_matches('/'));
        let resp = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() && body.contains("true") {
            Ok(())
        } else {
            Err(format!("{url}: HTTP {status}: {body}"))
        }
    }
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(s: &str) -> Option<String> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for c in s.chunks(4) {
        let mut n = 0u32;
        for (i, &ch) in c.iter().enumerate() {
            n |= val(ch)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..c.len()]);
    }
    String::from_utf8(out).ok()
}

/// The end of a prefix range: the prefix with its last byte incremented.
fn range_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last = last.saturating_add(1);
    }
    String::from_utf8_lossy(&b).into_owned()
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{path}: request failed (reqwest): {e}"))?;
        let status = resp.status();
        let body = read_bounded(resp, MAX_ANSWER)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path}: malformed answer: {e}"))
    }
}

/// Applies range or watch key-values to `peers`; returns whether it changed.
fn apply(
    peers: &mut HashMap<String, SocketAddr>,
    kv: &Value,
    delete: bool,
    own: &str,
) -> Result<bool, String> {
    let key = kv["key"]
        .as_str()
        .and_then(unb64)
        .ok_or("key-value without a valid key")?;
    if key == own {
        return Ok(false);
    }
    if delete {
        return Ok(peers.remove(&key).is_some());
    }
    let value = kv["value"]
        .as_str()
        .and_then(unb64)
        .ok_or("key-value without a valid value")?;
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| format!("value `{value}` of {key} is not an address"))?;
    Ok(peers.insert(key, addr) != Some(addr))
}

/// Applies one line of the watch stream (a JSON answer with events) to
/// `peers`; whether they changed. A malformed line ends the session; a
/// malformed event in a good line is skipped.
pub(crate) fn watch_line(
    peers: &mut HashMap<String, SocketAddr>,
    line: &[u8],
    own: &str,
) -> Result<bool, String> {
    let msg: Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed watch answer: {e}"))?;
    let mut changed = false;
    for ev in msg["result"]["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let delete = ev["type"].as_str() == Some("DELETE");
        match apply(peers, &ev["kv"], delete, own) {
            Ok(c) => changed |= c,
            Err(e) => tracing::warn!(error = %e, "etcd: event rejected"),
        }
    }
    Ok(changed)
}

impl Strategy for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Etcd::check(ctx).await {
                Ok(()) => Probe::Ok("etcd answers healthy".into()),
                Err(e) => Probe::failed(
                    e,
                    "check etcd.endpoint (FOUNDATION_ETCD_ENDPOINT) and that etcd runs",
                ),
            }
        })
    }

    fn run(
        self: Box<Self>,
        ctx: DiscoveryContext,
        sink: CandidateSink,
        cancel: CancellationToken,
    ) -> StrategyTask {
        Box::pin(async move {
            // The watch is one long answer: only connecting is bounded
            // here; every other request has REQUEST_TIMEOUT, and a silent
            // etcd fails the lease keepalive within a third of the TTL.
            let http = match reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build()
            {
                Ok(http) => http,
                Err(e) => {
                    sink.fail(DiscoveryError {
                        strategy: "etcd",
                        message: format!("cannot build the HTTP client (reqwest): {e}"),
                    });
                    return;
                }
            };
            let client = Client {
                http,
                base: ctx.etcd.endpoint.trim_end_matches('/').to_owned(),
            };
            let mut backoff = Backoff::new();
            loop {
                let started = tokio::time::Instant::now();
                let result = session(&client, &ctx, &sink, &cancel).await;
                // A session that ran for a while was a success: retry fast.
                if started.elapsed() > ctx.etcd.ttl {
                    backoff.reset();
                }
                match result {
                    Ok(()) => return,
                    Err(message) => sink.fail(DiscoveryError {
                        strategy: "etcd",
                        message,
                    }),
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        })
    }
}

async fn session(
    client: &Client,
    ctx: &DiscoveryContext,
    sink: &CandidateSink,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let prefix = ctx.etcd.prefix.clone();
    let own = format!("{prefix}{}", ctx.node);
    let grant = client
        .post("/v3/lease/grant", json!({"TTL": ctx.etcd.ttl.as_secs()}))
        .await?;
    let lease = grant["ID"]
        .as_str()
        .ok_or("lease grant without an ID")?
        .to_owned();
    client
        .post(
            "/v3/kv/put",
            json!({"key": b64(&own), "value": b64(&ctx.membership.to_string()), "lease": lease}),
        )
        .await?;
    let range = client
        .post(
            "/v3/kv/range",
            json!({"key": b64(&prefix), "range_end": b64(&range_end(&prefix))}),
        )
        .await?;
    let mut peers = HashMap::new();
    for kv in range["kvs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Err(e) = apply(&mut peers, kv, false, &own) {
            tracing::warn!(error = %e, "etcd: entry rejected");
        }
    }
    sink.publish(peers.values().copied().collect::<Candidates>());
    let revision: u64 = range["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
        .filter(|r| *r < u64::MAX)
        .ok_or("range answer without a usable revision")?;
    tracing::debug!(key = %own, %lease, revision, "etcd: registered, watching the prefix");

    let watch = client
        .http
        .post(format!("{}/v3/watch", client.base))
        .body(
            json!({"create_request": {"key": b64(&prefix), "range_end": b64(&range_end(&prefix)),
                   "start_revision": (revision + 1).to_string()}})
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("/v3/watch: request failed (reqwest): {e}"))?;
    if !watch.status().is_success() {
        return Err(format!("/v3/watch: HTTP {}", watch.status()));
    }
    let mut watch = watch;
    let mut line = Vec::new();
    let mut keepalive = tokio::time::interval(ctx.etcd.ttl / 3);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Revoke: the others see this node's key disappear now.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    client.post("/v3/lease/revoke", json!({"ID": lease})),
                ).await;
                return Ok(());
            }
            _ = keepalive.tick() => {
                let r = client.post("/v3/lease/keepalive", json!({"ID": lease})).await?;
                if r["result"]["TTL"].as_str().is_none_or(|t| t == "0") {
                    return Err("lease expired; registering again".into());
                }
            }
            chunk = watch.chunk() => {
                let chunk = chunk
                    .map_err(|e| format!("watch stream broke (reqwest): {e}"))?
                    .ok_or("watch stream ended")?;
                line.extend_from_slice(&chunk);
                if line.len() > MAX_LINE {
                    return Err("watch answer too large".into());
                }
                while let Some(end) = line.iter().position(|&b| b == b'\n') {
                    let one: Vec<u8> = line.drain(..=end).collect();
                    if watch_line(&mut peers, &one, &own)? {
                        sink.publish(peers.values().copied().collect::<Candidates>());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn base64_round_trips_and_range_end_increments() {
        for s in ["", "a", "ab", "abc", "/foundation/shop/0123456789abcdef"] {
            assert_eq!(unb64(&b64(s)).as_deref(), Some(s));
        }
        assert_eq!(b64("/f/a"), "L2YvYQ==");
        assert_eq!(range_end("/f/"), "/f0");
    }

    proptest! {
        #[test]
        fn unb64_never_panics(s in ".{0,64}") {
            let _ = unb64(&s);
        }
    }
}
