//! Checks that resolved values make sense together.

use std::collections::BTreeMap;
use std::time::Duration;

use super::defaults as d;
use super::error::{ConfigError, Contradiction, InvalidValue};
use super::resolve::Source;
use super::types::{Config, Profile};

/// Shortest secret the production profile accepts.
pub(crate) const MIN_PRODUCTION_SECRET: usize = 16;
/// Least [`Secret::estimated_bits`](super::Secret::estimated_bits) the
/// production profile accepts (16 random hex characters make 64).
pub(crate) const MIN_PRODUCTION_BITS: f64 = 64.0;

pub(super) fn validate(
    c: &Config,
    sources: &BTreeMap<&'static str, Source>,
) -> Result<(), ConfigError> {
    let origin = |key: &str| {
        sources
            .get(key)
            .map_or_else(|| "defaults".to_owned(), ToString::to_string)
    };
    if !c.cluster.discovery.is_built_in() {
        return Err(ConfigError::NotBuiltIn {
            strategy: c.cluster.discovery.to_string(),
            origin: origin("cluster"),
        });
    }
    let tls_set = [&c.tls.ca_file, &c.tls.cert_file, &c.tls.key_file]
        .iter()
        .filter(|f| f.is_some())
        .count();
    if tls_set > 0 && tls_set < 3 {
        let missing = [
            ("tls.ca_file", &c.tls.ca_file),
            ("tls.cert_file", &c.tls.cert_file),
            ("tls.key_file", &c.tls.key_file),
        ]
        .into_iter()
        .find(|(_, f)| f.is_none())
        .map_or("tls.ca_file", |(k, _)| k);
        return Err(ConfigError::Contradiction(Box::new(Contradiction {
            key: "tls".into(),
            value: format!("{tls_set} of 3 files"),
            other: missing.into(),
            other_value: "unset".into(),
            why: "TLS files are used only all together".into(),
            fix: format!(
                "set `{missing}` too, or remove the other tls.* files to use the cluster secret"
            ),
        })));
    }
    if tls_set == 3 && c.cluster.certificate_name().is_none() {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "cluster_name".into(),
            value: c.cluster.name.clone(),
            origin: origin("cluster_name"),
            expected: "with TLS files, a DNS label (letters, digits, inner hyphens, at most 63): node certificates name their cluster as <cluster_name>.cluster.foundation".into(),
            fix: "choose a cluster_name such as `shop` or `billing-eu`".into(),
        })));
    }
    if c.profile == Profile::Production {
        match &c.cluster.secret {
            // Also with TLS files: the secret keys membership and
            // discovery, and the CA certificate alone is public.
            None => return Err(ConfigError::MissingSecret),
            Some(s) if s.is_development() => return Err(ConfigError::MissingSecret),
            Some(s) if s.expose().len() < MIN_PRODUCTION_SECRET => {
                return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
                    key: "secret".into(),
                    value: format!("<{} characters>", s.expose().len()),
                    origin: origin("secret"),
                    expected: format!("at least {MIN_PRODUCTION_SECRET} characters in production"),
                    fix: "use a long random secret, e.g. `openssl rand -hex 32`".into(),
                })))
            }
            Some(s) if s.estimated_bits() < MIN_PRODUCTION_BITS => {
                return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
                    key: "secret".into(),
                    value: format!(
                        "<{} characters, about {:.0} bits>",
                        s.expose().len(),
                        s.estimated_bits()
                    ),
                    origin: origin("secret"),
                    expected: format!(
                        "a random secret of at least {MIN_PRODUCTION_BITS:.0} bits in production (it repeats too few characters to be guessed slowly)"
                    ),
                    fix: "make one with `openssl rand -hex 32`".into(),
                })))
            }
            _ => {}
        }
    }
    if c.cluster.discovery == super::types::DiscoveryKind::Dns && c.dns.query.is_none() {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "dns.query".into(),
            value: "(unset)".into(),
            origin: origin("cluster"),
            expected: "a DNS name when the dns strategy is chosen".into(),
            fix: "set FOUNDATION_DNS_QUERY (or dns.query), e.g. my-app-headless.default.svc.cluster.local".into(),
        })));
    }
    if c.cluster.discovery == super::types::DiscoveryKind::Consul
        && !c.consul.addr.starts_with("http://")
    {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "consul.addr".into(),
            value: c.consul.addr.clone(),
            origin: origin("consul.addr"),
            expected: "an http:// address of the Consul agent".into(),
            fix: "point consul.addr (or CONSUL_HTTP_ADDR) at the local agent over HTTP; HTTPS to Consul is not supported yet".into(),
        })));
    }
    if c.cluster.discovery == super::types::DiscoveryKind::Etcd
        && !c.etcd.endpoint.starts_with("http://")
    {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "etcd.endpoint".into(),
            value: c.etcd.endpoint.clone(),
            origin: origin("etcd.endpoint"),
            expected: "an http:// client URL".into(),
            fix: "set etcd.endpoint (FOUNDATION_ETCD_ENDPOINT) to http://host:2379; TLS to etcd is not supported yet".into(),
        })));
    }
    if c.cluster.discovery == super::types::DiscoveryKind::Kubernetes
        && c.kubernetes.selector.is_empty()
    {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "kubernetes.selector".into(),
            value: "(unset)".into(),
            origin: origin("cluster"),
            expected: "a label selector of the cluster's pods".into(),
            fix: "set FOUNDATION_K8S_SELECTOR (or kubernetes.selector), e.g. app=shop".into(),
        })));
    }
    if matches!(
        c.process.split_brain,
        foundation_proto::process::SplitBrain::StaticQuorum(_)
    ) && matches!(sources.get("process.quorum"), None | Some(Source::Default))
    {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "process.quorum".into(),
            value: "(unset)".into(),
            origin: origin("process.split_brain"),
            expected: "the number of active members needed to run singletons".into(),
            fix: "set process.quorum, e.g. 2 for a 3-node cluster, or choose keep-majority".into(),
        })));
    }
    if !c.gossip.group.is_multicast() {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "gossip.group".into(),
            value: c.gossip.group.to_string(),
            origin: origin("gossip.group"),
            expected: "an IPv4 multicast address (224.0.0.0/4)".into(),
            fix: "use an address in 239.255.0.0/16, e.g. 239.255.70.77".into(),
        })));
    }
    let m = &c.membership;
    let window = u64::try_from(m.replay_window.as_millis()).unwrap_or(u64::MAX);
    if !(d::MIN_REPLAY_WINDOW_MS..=d::MAX_REPLAY_WINDOW_MS).contains(&window) {
        return Err(ConfigError::InvalidValue(Box::new(InvalidValue {
            key: "membership.replay_window_ms".into(),
            value: window.to_string(),
            origin: origin("membership.replay_window_ms"),
            expected: format!(
                "{} to {} ms: above the clock skew between hosts, below the {} s a departed member is remembered",
                d::MIN_REPLAY_WINDOW_MS,
                d::MAX_REPLAY_WINDOW_MS,
                foundation_proto::membership::core::FORGET_AFTER.as_secs()
            ),
            fix: format!("leave it unset (default {}) or synchronise the hosts' clocks", d::REPLAY_WINDOW_MS),
        })));
    }
    before(
        ("membership.probe_rtt_ms", m.probe_rtt),
        ("membership.probe_period_ms", m.probe_period),
        "a direct probe must time out within the probe period",
    )?;
    not_before(
        ("membership.suspect_to_down_ms", m.suspect_to_down),
        ("membership.probe_period_ms", m.probe_period),
        "a suspect needs at least one probe period to refute the suspicion",
    )?;
    let t = &c.transport;
    before(
        ("transport.keep_alive_ms", t.keep_alive),
        ("transport.idle_timeout_ms", t.idle_timeout),
        "keep-alives must be sent before the idle timeout closes the connection",
    )?;
    not_before(
        ("transport.reconnect_max_ms", t.reconnect_max),
        ("transport.reconnect_min_ms", t.reconnect_min),
        "the backoff ceiling cannot be below its first step",
    )?;
    // The default would be membership.port + 1, which does not exist.
    if t.port.is_none() && m.port == u16::MAX {
        return Err(ConfigError::Contradiction(Box::new(Contradiction {
            key: "transport.port".into(),
            value: "membership.port + 1 = 65536".into(),
            other: "membership.port".into(),
            other_value: m.port.to_string(),
            why: "the default QUIC port is the membership port + 1".into(),
            fix: "set transport.port explicitly or use a lower membership.port".into(),
        })));
    }
    let transport_port = c.transport_port();
    if m.port != 0 && transport_port == m.port {
        return Err(ConfigError::Contradiction(Box::new(Contradiction {
            key: "transport.port".into(),
            value: transport_port.to_string(),
            other: "membership.port".into(),
            other_value: m.port.to_string(),
            why: "QUIC and membership each need their own UDP port".into(),
            fix: "give transport.port another value (default: membership.port + 1)".into(),
        })));
    }
    Ok(())
}

/// `a` must be strictly shorter than `b`.
fn before(a: (&str, Duration), b: (&str, Duration), why: &str) -> Result<(), ConfigError> {
    if a.1 < b.1 {
        return Ok(());
    }
    Err(contradiction(
        a,
        b,
        why,
        format!("make `{}` smaller than `{}`", a.0, b.0),
    ))
}

/// `a` must not be shorter than `b`.
fn not_before(a: (&str, Duration), b: (&str, Duration), why: &str) -> Result<(), ConfigError> {
    if a.1 >= b.1 {
        return Ok(());
    }
    Err(contradiction(
        a,
        b,
        why,
        format!("make `{}` at least `{}`", a.0, b.0),
    ))
}

fn contradiction(a: (&str, Duration), b: (&str, Duration), why: &str, fix: String) -> ConfigError {
    ConfigError::Contradiction(Box::new(Contradiction {
        key: a.0.into(),
        value: a.1.as_millis().to_string(),
        other: b.0.into(),
        other_value: b.1.as_millis().to_string(),
        why: why.into(),
        fix,
    }))
}
