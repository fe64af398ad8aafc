//! The `consul` strategy (cargo feature `consul`): passing instances of a
//! service from Consul's health API, followed with blocking queries.
//!
//! `GET {addr}/v1/health/service/{service}?passing=true&index=N&wait=Ws`
//! returns when the result changes (or after `wait`); `X-Consul-Index` gives
//! the next index. Each entry's `Service.Address` (or `Node.Address` when
//! empty) and `Service.Port` (the membership port) become a candidate.
//!
//! An HTTP error, a timeout, a malformed answer or an empty list keeps the
//! last candidates; the strategy logs, counts, backs off and retries.
//! Plain HTTP only (the local agent, as Consul is usually deployed); HTTPS
//! to Consul is not supported yet.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::answer::{read_bounded, CONNECT_TIMEOUT, MAX_ANSWER};
use super::backoff::Backoff;
use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};

/// The Consul strategy.
#[derive(Debug, Clone, Default)]
pub struct Consul {}

impl Consul {
    /// The strategy (its settings come from the `consul.*` keys).
    pub fn new() -> Self {
        Consul {}
    }

    /// Whether the agent answers (`foundation doctor`): the cluster leader.
    async fn check(ctx: &DiscoveryContext) -> Result<String, String> {
        let url = format!("{}/v1/status/leader", ctx.consul.addr.trim_end_matches('/'));
        let resp = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        resp.text().await.map_err(|e| format!("{url}: {e}"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    node: NodeInfo,
    service: ServiceInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeInfo {
    #[serde(default)]
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceInfo {
    #[serde(default)]
    address: String,
    port: u16,
}

/// Candidates from a `/v1/health/service` answer.
pub(crate) fn parse(body: &[u8]) -> Result<Candidates, String> {
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("malformed answer: {e}"))?;
    let mut set = Candidates::new();
    for e in entries {
        let host = if e.service.address.is_empty() {
            &e.node.address
        } else {
            &e.service.address
        };
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("instance address `{host}` is not an IP address"))?;
        if e.service.port == 0 {
            return Err(format!("instance {host} has port 0"));
        }
        set.insert(SocketAddr::new(ip, e.service.port));
    }
    Ok(set)
}

impl Strategy for Consul {
    fn name(&self) -> &'static str {
        "consul"
    }

    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Consul::check(ctx).await {
                Ok(leader) => Probe::Ok(format!("Consul agent answers (leader {})", leader.trim())),
                Err(e) => Probe::failed(
                    e,
                    "check consul.addr / CONSUL_HTTP_ADDR and that the agent runs",
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
            let c = ctx.consul.clone();
            let client = match reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(c.wait + Duration::from_secs(5))
                .build()
            {
                Ok(client) => client,
                Err(e) => {
                    sink.fail(DiscoveryError {
                        strategy: "consul",
                        message: format!("cannot build the HTTP client (reqwest): {e}"),
                    });
                    return;
                }
            };
            let service = c.service.clone().unwrap_or_else(|| ctx.cluster.clone());
            let base = c.addr.trim_end_matches('/').to_owned();
            let mut index: u64 = 0;
            let mut backoff = Backoff::new();
            loop {
                let url = format!(
                    "{base}/v1/health/service/{service}?passing=true&index={index}&wait={}ms",
                    c.wait.as_millis()
                );
                let mut req = client.get(&url);
                if let Some(token) = &c.token {
                    req = req.header("X-Consul-Token", token);
                }
                let answer = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = fetch(req) => r,
                };
                match answer {
                    Ok((next, body)) => {
                        // Consul: an index that goes backwards resets it.
                        index = if next < index { 0 } else { next };
                        match parse(&body) {
                            Ok(set) if !set.is_empty() => {
                                backoff.reset();
                                sink.publish(set);
                                continue;
                            }
                            Ok(_) => sink.fail(DiscoveryError {
                                strategy: "consul",
                                message: format!("no passing instance of `{service}`; keeping the last known peers"),
                            }),
                            Err(message) => sink.fail(DiscoveryError {
                                strategy: "consul",
                                message,
                            }),
                        }
                    }
                    Err(message) => {
                        index = 0;
                        sink.fail(DiscoveryError {
                            strategy: "consul",
                            message: format!("{url}: {message}"),
                        });
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        })
    }
}

/// One request: the `X-Consul-Index` and the body of a 200 answer.
async fn fetch(req: reqwest::RequestBuilder) -> Result<(u64, Vec<u8>), String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("request failed (reqwest): {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let index = resp
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("answer without a valid X-Consul-Index header")?;
    let body = read_bounded(resp, MAX_ANSWER).await?;
    Ok((index, body))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_health_api_format() {
        let body = br#"[
          {"Node": {"ID": "40e4a748", "Node": "foobar", "Address": "10.1.10.12", "Datacenter": "dc1"},
           "Service": {"ID": "app-1", "Service": "app", "Tags": [], "Address": "10.1.10.20", "Port": 7946, "Meta": {}},
           "Checks": [{"Node": "foobar", "CheckID": "serfHealth", "Status": "passing"}]},
          {"Node": {"Address": "10.1.10.13"},
           "Service": {"Service": "app", "Address": "", "Port": 7950},
           "Checks": []}
        ]"#;
        let set = parse(body).expect("valid");
        assert!(set.contains(&"10.1.10.20:7946".parse().expect("addr")));
        assert!(set.contains(&"10.1.10.13:7950".parse().expect("addr")));
        assert!(parse(b"{not json").is_err());
        assert!(
            parse(br#"[{"Node": {"Address": "x"}, "Service": {"Address": "", "Port": 1}}]"#)
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&data);
        }
    }
}
