//! The `kubernetes` strategy (cargo feature `kubernetes`): ready pods
//! matching a label selector, through the Kubernetes API (kube crate).
//!
//! kube-runtime's watcher lists the pods, then watches them, and lists
//! again (with backoff) when the watch breaks. A pod is a candidate while
//! its `Ready` condition is `True` and it has a pod IP. Its port is the
//! container port named `foundation`, else `kubernetes.port`, else this
//! node's membership port. A watch error keeps the last candidates (logged
//! and counted). Configuration: in-cluster (service-account token,
//! `KUBERNETES_SERVICE_HOST`) or kubeconfig, or `kubernetes.api` for an
//! explicit API URL.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::{Api, Client, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use super::sink::{CandidateSink, Candidates, DiscoveryError};
use super::{DiscoveryContext, Probe, ProbeTask, Strategy, StrategyTask};

/// The container port name that gives a pod's membership port.
pub const PORT_NAME: &str = "foundation";

/// The Kubernetes strategy.
#[derive(Debug, Clone, Default)]
pub struct Kubernetes {}

impl Kubernetes {
    /// The strategy (its settings come from the `kubernetes.*` keys).
    pub fn new() -> Self {
        Kubernetes {}
    }

    /// Lists the matching pods once (`foundation doctor`): (pods, ready).
    async fn check(ctx: &DiscoveryContext) -> Result<(usize, usize), String> {
        let k = &ctx.kubernetes;
        let api: Api<Pod> = Api::namespaced(client(ctx).await?, &k.namespace);
        let pods = api
            .list(&kube::api::ListParams::default().labels(&k.selector))
            .await
            .map_err(|e| {
                format!(
                    "listing pods `{}` in `{}` (kube): {e}",
                    k.selector, k.namespace
                )
            })?;
        let ready = pods
            .items
            .iter()
            .filter(|p| candidate(p, 1).is_some())
            .count();
        Ok((pods.items.len(), ready))
    }
}

/// A ready pod's membership address, if it has one.
pub(crate) fn candidate(pod: &Pod, default_port: u16) -> Option<SocketAddr> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_ref()?.parse().ok()?;
    let port = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers.iter().find_map(|c| {
                c.ports.as_ref()?.iter().find_map(|p| {
                    (p.name.as_deref() == Some(PORT_NAME)).then_some(p.container_port)
                })
            })
        })
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    Some(SocketAddr::new(ip, port))
}

async fn client(ctx: &DiscoveryContext) -> Result<Client, String> {
    let config = match &ctx.kubernetes.api {
        Some(url) => {
            let uri = url
                .parse()
                .map_err(|e| format!("kubernetes.api `{url}` is not a URL: {e}"))?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration (kube): {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client (kube): {e}"))
}

impl Strategy for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn probe<'a>(&'a self, ctx: &'a DiscoveryContext) -> ProbeTask<'a> {
        Box::pin(async move {
            match Kubernetes::check(ctx).await {
                Ok((pods, ready)) => Probe::Ok(format!(
                    "Kubernetes API answers: {pods} pod(s) match, {ready} ready"
                )),
                Err(e) => Probe::failed(e, "check kubernetes.selector, the namespace, and that the service account may list and watch pods"),
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
                    strategy: "kubernetes",
                    message,
                })
            };
            let client = loop {
                match client(&ctx).await {
                    Ok(c) => break c,
                    Err(e) => fail(e),
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            };
            let k = &ctx.kubernetes;
            let namespace = k.namespace.clone();
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let config = watcher::Config::default().labels(&k.selector);
            let port = k.port.unwrap_or(ctx.membership.port());
            let mut events = watcher::watcher(api, config).default_backoff().boxed();
            let mut peers: HashMap<String, SocketAddr> = HashMap::new();
            let mut listing: HashMap<String, SocketAddr> = HashMap::new();
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    ev = events.next() => match ev {
                        Some(ev) => ev,
                        None => return,
                    },
                };
                let changed = match event {
                    Ok(Event::Init) => {
                        listing.clear();
                        false
                    }
                    Ok(Event::InitApply(pod)) => {
                        if let Some(addr) = candidate(&pod, port) {
                            listing.insert(pod.name_any(), addr);
                        }
                        false
                    }
                    Ok(Event::InitDone) => {
                        let changed = peers != listing;
                        peers = std::mem::take(&mut listing);
                        changed || peers.is_empty()
                    }
                    Ok(Event::Apply(pod)) => match candidate(&pod, port) {
                        Some(addr) => peers.insert(pod.name_any(), addr) != Some(addr),
                        None => peers.remove(&pod.name_any()).is_some(),
                    },
                    Ok(Event::Delete(pod)) => peers.remove(&pod.name_any()).is_some(),
                    Err(e) => {
                        fail(format!(
                            "watching pods `{}` in `{namespace}` failed (kube): {e}; keeping the last known peers",
                            k.selector
                        ));
                        false
                    }
                };
                if changed {
                    sink.publish(peers.values().copied().collect::<Candidates>());
                }
            }
        })
    }
}
