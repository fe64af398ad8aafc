//! The `static` strategy: a fixed list of seeds, re-resolved periodically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};
use crate::config::SeedAddr;

/// How often seed host names are resolved again.
pub(crate) const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);

/// Seeds from `FOUNDATION_SEEDS` / `seeds`.
#[derive(Debug, Clone)]
pub struct StaticSeeds {
    seeds: Vec<SeedAddr>,
    interval: Duration,
}

impl StaticSeeds {
    /// The strategy for these seeds.
    pub fn new(seeds: Vec<SeedAddr>) -> Self {
        StaticSeeds {
            seeds,
            interval: RESOLVE_INTERVAL,
        }
    }
}

impl Strategy for StaticSeeds {
    fn name(&self) -> &'static str {
        "static"
    }

    fn probe<'a>(&'a self, _ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            if self.seeds.is_empty() {
                return Probe::Note("static with no seeds: this node starts alone".into());
            }
            for seed in &self.seeds {
                if let Err(e) = resolve(seed).await {
                    return Probe::failed(
                        format!("seed {seed} does not resolve: {e}"),
                        "check the name, or use an IP address",
                    );
                }
            }
            Probe::Ok(format!("{} seed(s) resolve", self.seeds.len()))
        })
    }

    fn run(
        self: Box<Self>,
        _ctx: DiscoveryContext,
        sink: CandidateSink,
        cancel: CancellationToken,
    ) -> StrategyTask {
        Box::pin(async move {
            // Last addresses each seed resolved to: a seed whose name fails
            // to resolve keeps its previous addresses.
            let mut known: HashMap<SeedAddr, Vec<SocketAddr>> = HashMap::new();
            loop {
                let mut failures = Vec::new();
                for seed in &self.seeds {
                    match resolve(seed).await {
                        Ok(addrs) => {
                            known.insert(seed.clone(), addrs);
                        }
                        Err(e) => failures.push(format!("{seed}: {e}")),
                    }
                }
                let set: Candidates = known.values().flatten().copied().collect();
                if failures.is_empty() || !set.is_empty() {
                    sink.publish(set);
                }
                if !failures.is_empty() {
                    sink.fail(DiscoveryError {
                        strategy: "static",
                        message: format!("cannot resolve {}", failures.join("; ")),
                    });
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(self.interval) => {}
                }
            }
        })
    }
}

async fn resolve(seed: &SeedAddr) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = seed.host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, seed.port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((seed.host.as_str(), seed.port))
        .await?
        .collect();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_ips_and_keeps_going_when_a_name_fails() {
        let seeds = vec![
            "127.0.0.1:7000".parse().expect("seed"),
            "localhost:7001".parse().expect("seed"),
            "no-such-host.invalid:7002".parse().expect("seed"),
        ];
        let (sink, mut rx) = CandidateSink::new();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Box::new(StaticSeeds::new(seeds)).run(
            DiscoveryContext::for_tests(),
            sink.clone(),
            cancel.clone(),
        ));
        rx.changed().await.expect("published");
        let set = rx.borrow().clone();
        assert!(set.contains(&"127.0.0.1:7000".parse().expect("addr")));
        assert!(set.iter().any(|a| a.port() == 7001));
        assert!(!set.iter().any(|a| a.port() == 7002));
        // The unresolvable name is reported as an error, not as "no peers".
        tokio::time::timeout(Duration::from_secs(10), async {
            while sink.errors() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("error counted");
        cancel.cancel();
        task.await.expect("task ends");
    }
}
