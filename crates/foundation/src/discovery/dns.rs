//! The `dns` strategy: A/AAAA (headless-service style) or SRV records,
//! polled at an interval through hickory-resolver.
//!
//! An answer with records replaces the candidate set. An empty answer, a
//! failure or a timeout keeps the last set, and is logged and counted: a name
//! that suddenly resolves to nothing is more often a DNS hiccup than a
//! cluster that vanished, and membership, not discovery, decides who is gone.

use std::net::SocketAddr;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use tokio_util::sync::CancellationToken;

use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};
use crate::config::DnsRecord;

/// The DNS strategy.
#[derive(Debug, Clone, Default)]
pub struct Dns {}

impl Dns {
    /// The strategy (its settings come from the `dns.*` keys).
    pub fn new() -> Self {
        Dns {}
    }

    /// One query, as `foundation doctor` runs it: the candidates, or why not.
    async fn check(ctx: &DiscoveryContext) -> Result<Candidates, String> {
        let query = ctx.dns.query.clone().ok_or("no dns.query set")?;
        let resolver = resolver(ctx)?;
        let port = ctx.dns.port.unwrap_or(ctx.membership.port());
        match ctx.dns.record {
            DnsRecord::A => lookup_a(&resolver, &query, port).await,
            DnsRecord::Srv => lookup_srv(&resolver, &query).await,
        }
    }
}

impl Strategy for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Dns::check(ctx).await {
                Ok(set) if !set.is_empty() => {
                    Probe::Ok(format!("DNS answers with {} address(es)", set.len()))
                }
                Ok(_) => Probe::failed(
                    "DNS answers with no address",
                    "check dns.query and that the service has ready endpoints",
                ),
                Err(e) => Probe::failed(e, "check dns.query, dns.server and /etc/resolv.conf"),
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
            let fail = |message: String| {
                sink.fail(DiscoveryError {
                    strategy: "dns",
                    message,
                })
            };
            let Some(query) = ctx.dns.query.clone() else {
                fail("no dns.query set".into());
                return;
            };
            let resolver = match resolver(&ctx) {
                Ok(r) => r,
                Err(e) => {
                    fail(e);
                    return;
                }
            };
            let port = ctx.dns.port.unwrap_or(ctx.membership.port());
            let mut ticker = tokio::time::interval(ctx.dns.interval);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let answer = match ctx.dns.record {
                    DnsRecord::A => lookup_a(&resolver, &query, port).await,
                    DnsRecord::Srv => lookup_srv(&resolver, &query).await,
                };
                match answer {
                    Ok(set) if !set.is_empty() => sink.publish(set),
                    Ok(_) => fail(format!(
                        "{query}: empty answer; keeping the last known peers"
                    )),
                    Err(e) => fail(format!("{query}: {e}")),
                }
            }
        })
    }
}

fn resolver(ctx: &DiscoveryContext) -> Result<TokioResolver, String> {
    let mut builder = match ctx.dns.server {
        Some(server) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = server.port();
            let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration (hickory): {e}"))?,
    };
    let opts = builder.options_mut();
    // Fresh answers every poll: a record that disappears must be noticed.
    opts.cache_size = 0;
    opts.timeout = ctx.dns.interval.min(std::time::Duration::from_secs(2));
    opts.attempts = 1;
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver (hickory): {e}"))
}

async fn lookup_a(resolver: &TokioResolver, query: &str, port: u16) -> Result<Candidates, String> {
    let ips = resolver
        .lookup_ip(query)
        .await
        .map_err(|e| format!("A/AAAA lookup failed (hickory): {e}"))?;
    Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

async fn lookup_srv(resolver: &TokioResolver, query: &str) -> Result<Candidates, String> {
    let srv = resolver
        .srv_lookup(query)
        .await
        .map_err(|e| format!("SRV lookup failed (hickory): {e}"))?;
    let mut set = Candidates::new();
    for record in srv.answers() {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        let target = srv.target.to_string();
        match resolver.lookup_ip(target.as_str()).await {
            Ok(ips) => set.extend(ips.iter().map(|ip| SocketAddr::new(ip, srv.port))),
            Err(e) => tracing::warn!(%target, error = %e, "SRV target does not resolve; skipped"),
        }
    }
    Ok(set)
}
