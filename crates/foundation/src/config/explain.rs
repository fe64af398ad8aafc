//! Human-readable rendering of a resolved configuration with sources.

use std::fmt::{self, Write as _};

use super::resolve::{Resolved, Source};
use super::types::Config;

impl Resolved {
    /// Every key with its value as shown to humans (secrets redacted).
    pub fn entries(&self) -> Vec<(&'static str, String, Source)> {
        let c = &self.config;
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let opt = |v: Option<String>| v.unwrap_or_else(|| "(unset)".into());
        let rows: Vec<(&'static str, String)> = vec![
            ("profile", c.profile.as_str().into()),
            ("cluster", c.cluster.discovery.to_string()),
            ("cluster_name", c.cluster.name.clone()),
            (
                "secret",
                match &c.cluster.secret {
                    Some(s) if s.is_development() => "<development secret>".into(),
                    Some(_) => "<redacted>".into(),
                    None => "(unset)".into(),
                },
            ),
            (
                "seeds",
                list(
                    &c.cluster
                        .seeds
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                ),
            ),
            ("node.name", c.node.name.clone()),
            ("node.roles", list(&c.node.roles)),
            ("membership.port", c.membership.port.to_string()),
            ("membership.probe_period_ms", ms(c.membership.probe_period)),
            ("membership.probe_rtt_ms", ms(c.membership.probe_rtt)),
            (
                "membership.suspect_to_down_ms",
                ms(c.membership.suspect_to_down),
            ),
            (
                "membership.indirect_probes",
                c.membership.indirect_probes.to_string(),
            ),
            (
                "membership.max_packet_size",
                c.membership.max_packet_size.to_string(),
            ),
            (
                "membership.gossip_period_ms",
                ms(c.membership.gossip_period),
            ),
            (
                "membership.port_unreachable",
                c.membership.port_unreachable.to_string(),
            ),
            (
                "membership.replay_window_ms",
                ms(c.membership.replay_window),
            ),
            ("transport.bind", c.transport.bind.to_string()),
            ("transport.port", transport_port(c)),
            (
                "transport.advertise",
                opt(c.transport.advertise.map(|a| a.to_string())),
            ),
            (
                "transport.max_frame_size",
                c.transport.max_frame_size.to_string(),
            ),
            (
                "transport.stream_window",
                c.transport.stream_window.to_string(),
            ),
            ("transport.idle_timeout_ms", ms(c.transport.idle_timeout)),
            ("transport.keep_alive_ms", ms(c.transport.keep_alive)),
            (
                "transport.connect_timeout_ms",
                ms(c.transport.connect_timeout),
            ),
            ("transport.reconnect_min_ms", ms(c.transport.reconnect_min)),
            ("transport.reconnect_max_ms", ms(c.transport.reconnect_max)),
            (
                "tls.ca_file",
                opt(c.tls.ca_file.as_ref().map(|p| p.display().to_string())),
            ),
            (
                "tls.cert_file",
                opt(c.tls.cert_file.as_ref().map(|p| p.display().to_string())),
            ),
            (
                "tls.key_file",
                opt(c.tls.key_file.as_ref().map(|p| p.display().to_string())),
            ),
            (
                "tls.crl_file",
                opt(c.tls.crl_file.as_ref().map(|p| p.display().to_string())),
            ),
            ("tls.server_name", c.tls.server_name.clone()),
            (
                "channels.inbox_capacity",
                c.channels.inbox_capacity.to_string(),
            ),
            (
                "channels.compression",
                if c.channels.compression { "lz4" } else { "off" }.into(),
            ),
            (
                "channels.compress_above",
                c.channels.compress_above.to_string(),
            ),
            (
                "channels.data_threshold",
                c.channels.data_threshold.to_string(),
            ),
            (
                "channels.single_stream",
                c.channels.single_stream.to_string(),
            ),
            ("pubsub.buffer", c.pubsub.buffer.to_string()),
            ("pubsub.queue_bytes", c.pubsub.queue_bytes.to_string()),
            ("pubsub.publish_timeout_ms", ms(c.pubsub.publish_timeout)),
            ("pubsub.shutdown_flush_ms", ms(c.pubsub.shutdown_flush)),
            ("registry.sync_interval_ms", ms(c.registry.sync_interval)),
            (
                "process.split_brain",
                match c.process.split_brain {
                    foundation_proto::process::SplitBrain::KeepMajority => "keep-majority".into(),
                    foundation_proto::process::SplitBrain::KeepAll => "keep-all".into(),
                    foundation_proto::process::SplitBrain::StaticQuorum(_) => {
                        "static-quorum".into()
                    }
                },
            ),
            (
                "process.quorum",
                match c.process.split_brain {
                    foundation_proto::process::SplitBrain::StaticQuorum(n) => n.to_string(),
                    _ => "(unset)".into(),
                },
            ),
            (
                "process.expected_members",
                c.process.expected_members.to_string(),
            ),
            (
                "process.shutdown_timeout_ms",
                ms(c.process.shutdown_timeout),
            ),
            (
                "coord.storage",
                match &c.coord.storage {
                    super::types::CoordStorage::Memory => "memory".into(),
                    super::types::CoordStorage::Durable(_) => "durable".into(),
                },
            ),
            (
                "coord.data_dir",
                match &c.coord.storage {
                    super::types::CoordStorage::Memory => "(unset)".into(),
                    super::types::CoordStorage::Durable(p) => p.display().to_string(),
                },
            ),
            ("coord.voters", c.coord.voters.to_string()),
            ("coord.role", opt(c.coord.role.clone())),
            ("coord.replace_after_ms", ms(c.coord.replace_after)),
            ("coord.session_ttl_ms", ms(c.coord.session_ttl)),
            ("coord.timeout_ms", ms(c.coord.timeout)),
            ("coord.election_timeout_ms", ms(c.coord.election_timeout)),
            (
                "cache.tier",
                match c.cache.tier {
                    super::types::CacheTier::Local => "local".into(),
                    super::types::CacheTier::Partitioned => "partitioned".into(),
                    super::types::CacheTier::Replicated => "replicated".into(),
                    super::types::CacheTier::Near => "near".into(),
                },
            ),
            ("cache.replicas", c.cache.replicas.to_string()),
            ("cache.max_entries", c.cache.max_entries.to_string()),
            ("cache.timeout_ms", ms(c.cache.timeout)),
            ("cache.reconcile_ms", ms(c.cache.reconcile)),
            ("dns.query", opt(c.dns.query.clone())),
            (
                "dns.record",
                match c.dns.record {
                    super::types::DnsRecord::A => "a".into(),
                    super::types::DnsRecord::Srv => "srv".into(),
                },
            ),
            ("dns.port", opt(c.dns.port.map(|p| p.to_string()))),
            ("dns.server", opt(c.dns.server.map(|s| s.to_string()))),
            ("dns.interval_ms", ms(c.dns.interval)),
            ("consul.addr", c.consul.addr.clone()),
            ("consul.service", opt(c.consul.service.clone())),
            (
                "consul.token",
                if c.consul.token.is_some() {
                    "<redacted>".into()
                } else {
                    "(unset)".into()
                },
            ),
            ("consul.wait_ms", ms(c.consul.wait)),
            ("etcd.endpoint", c.etcd.endpoint.clone()),
            ("etcd.prefix", c.etcd.prefix.clone()),
            ("etcd.ttl_s", c.etcd.ttl.as_secs().to_string()),
            ("kubernetes.selector", c.kubernetes.selector.clone()),
            ("kubernetes.namespace", c.kubernetes.namespace.clone()),
            (
                "kubernetes.port",
                opt(c.kubernetes.port.map(|p| p.to_string())),
            ),
            ("kubernetes.api", opt(c.kubernetes.api.clone())),
            ("gossip.group", c.gossip.group.to_string()),
            ("gossip.port", c.gossip.port.to_string()),
            ("gossip.ttl", c.gossip.ttl.to_string()),
            ("gossip.interval_ms", ms(c.gossip.interval)),
            ("gossip.with_mdns", c.gossip.with_mdns.to_string()),
            ("http.enabled", c.http.enabled.to_string()),
            ("http.bind", c.http.bind.to_string()),
            ("http.port", c.http.port.to_string()),
            (
                "tracing.sample_percent",
                opt(c.tracing.sample_percent.map(|p| p.to_string())),
            ),
            (
                "tracing.otlp_endpoint",
                opt(c.tracing.otlp_endpoint.clone()),
            ),
            (
                "tracing.otlp_traces_endpoint",
                opt(c.tracing.otlp_traces_endpoint.clone()),
            ),
            ("tracing.service_name", c.tracing.service_name.clone()),
        ];
        rows.into_iter()
            .map(|(k, v)| {
                let src = self.sources.get(k).cloned().unwrap_or(Source::Default);
                (k, v, src)
            })
            .collect()
    }
}

impl Resolved {
    /// Applies code's changes to the merged configuration (the Wizard
    /// tier's `NodeBuilder::config`) and records them: every key whose
    /// value they changed gets [`Source::Code`], so `config explain` tells
    /// the truth about where each value came from.
    pub(crate) fn change_in_code(&mut self, change: impl FnOnce(&mut Config)) {
        let before = self.entries();
        let secret = self.config.cluster.secret.clone();
        change(&mut self.config);
        let mut changed = false;
        for ((key, old, _), (_, new, _)) in before.into_iter().zip(self.entries()) {
            let differs = if key == "secret" {
                secret != self.config.cluster.secret
            } else {
                old != new
            };
            if differs {
                self.sources.insert(key, Source::Code);
                changed = true;
            }
        }
        if changed {
            self.tier = super::resolve::Tier::Wizard;
        }
    }
}

fn transport_port(c: &Config) -> String {
    match c.transport_port() {
        0 => "(any free port)".into(),
        p => p.to_string(),
    }
}

fn ms(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}

impl fmt::Display for Resolved {
    /// The `foundation config explain` text: tier, file, then one line per key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tier: {}", self.tier)?;
        match &self.file {
            Some(p) => writeln!(f, "file: {}", p.display())?,
            None => writeln!(f, "file: (none)")?,
        }
        writeln!(f, "precedence: builder > env > file > detection > defaults")?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        writeln!(f)?;
        let entries = self.entries();
        let kw = entries.iter().map(|e| e.0.len()).max().unwrap_or(0);
        let vw = entries.iter().map(|e| e.1.len()).max().unwrap_or(0).min(40);
        let mut out = String::new();
        for (k, v, s) in entries {
            let _ = writeln!(out, "{k:kw$}  {v:vw$}  ({s})");
        }
        f.write_str(&out)
    }
}
