//! What the environment says when the configuration does not: the
//! discovery strategy of the platform the node runs on, the address other
//! hosts reach it at, and which `FOUNDATION_*` variables are Kubernetes'
//! service links rather than settings.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use super::types::DiscoveryKind;

/// Whether `name=value` is a variable Kubernetes injects for a Service
/// (named after it, so a Service called `foundation*` makes `FOUNDATION_*`
/// ones): `X_SERVICE_HOST`, `X_SERVICE_PORT[_NAME]`, `X_PORT=tcp://ip:port`
/// and `X_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`.
pub(crate) fn is_service_link(name: &str, value: &str) -> bool {
    if !name.starts_with("FOUNDATION_") {
        return false;
    }
    if name.ends_with("_SERVICE_HOST") || name.contains("_SERVICE_PORT") {
        return true;
    }
    if name.ends_with("_PORT")
        && ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|p| value.starts_with(p))
    {
        return true;
    }
    name.match_indices("_PORT_").any(|(i, _)| {
        let mut parts = name[i + 6..].split('_');
        let port = parts.next().unwrap_or_default();
        let proto = parts.next().unwrap_or_default();
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(proto, "TCP" | "UDP" | "SCTP")
    })
}

/// Mortal mode: which strategy, and why. Seeds are explicit configuration
/// and win; environments whose strategy is not built yet say so and use mDNS.
pub(super) fn detect_strategy(
    env: &BTreeMap<String, String>,
    no_seeds: bool,
    dns_query: bool,
) -> (&'static str, String) {
    if !no_seeds {
        return ("static", "seeds are set".into());
    }
    if dns_query {
        return ("dns", "dns.query (FOUNDATION_DNS_QUERY) is set".into());
    }
    if env.contains_key("KUBERNETES_SERVICE_HOST") && DiscoveryKind::Kubernetes.is_built_in() {
        return ("kubernetes", "KUBERNETES_SERVICE_HOST is set".into());
    }
    if env.contains_key("CONSUL_HTTP_ADDR") && DiscoveryKind::Consul.is_built_in() {
        return ("consul", "CONSUL_HTTP_ADDR is set".into());
    }
    for (var, strategy) in [
        ("KUBERNETES_SERVICE_HOST", "kubernetes"),
        ("CONSUL_HTTP_ADDR", "consul"),
    ] {
        if env.contains_key(var) {
            return (
                "mdns",
                format!("{var} is set, but the {strategy} strategy is not built yet; mDNS on the local network"),
            );
        }
    }
    (
        "mdns",
        "no strategy or seeds set; mDNS finds nodes on the local network".into(),
    )
}

/// The address other hosts can reach us at when bound to a wildcard: the
/// host name's first non-loopback address (what Kubernetes and most hosts
/// set up), else the first non-loopback IPv4 interface address, else
/// loopback (a single-host cluster).
pub(super) fn detect_advertise(hostname: &str) -> (IpAddr, String) {
    let by_name = (hostname, 0)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .map(|a| a.ip())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if let Some(ip) = by_name {
        return (ip, format!("address of host name {hostname}"));
    }
    let by_interface = if_addrs::get_if_addrs()
        .ok()
        .into_iter()
        .flatten()
        .find(|i| !i.is_loopback() && i.ip().is_ipv4() && !i.ip().is_unspecified());
    if let Some(i) = by_interface {
        return (i.ip(), format!("address of interface {}", i.name));
    }
    (
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "no non-loopback address found; single-host cluster".into(),
    )
}
