//! `foundation doctor`: checks the environment and says what to fix.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use clap::Args;
use foundation::config::{Config, DiscoveryKind};
use foundation::discovery::{DiscoveryContext, Probe};

use super::node::NodeArgs;

/// Check ports, multicast and discovery; print what to fix.
#[derive(Debug, Args)]
pub(crate) struct DoctorCmd {
    #[command(flatten)]
    args: NodeArgs,
    /// A running node's HTTP address: also compare the peers' clocks.
    #[arg(long = "node-http")]
    node_http: Option<String>,
}

/// Clock offsets beyond this (plus the measurement's round trip) are flagged.
const CLOCK_TOLERANCE_MS: f64 = 500.0;

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("ok    {what}: {detail}");
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display, fix: &str) {
        self.failures += 1;
        println!("FAIL  {what}: {detail}\n      fix: {fix}");
    }
    fn note(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("note  {what}: {detail}");
    }
}

impl DoctorCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let mut r = Report { failures: 0 };
        let resolved = match self.args.resolver().and_then(|res| Ok(res.resolve()?)) {
            Ok(resolved) => resolved,
            Err(e) => {
                r.fail("configuration", e, "see `foundation config explain`");
                anyhow::bail!("1 problem found");
            }
        };
        let c = &resolved.config;
        r.ok(
            "configuration",
            format!(
                "tier {}, discovery {} ({})",
                resolved.tier,
                c.cluster.discovery,
                resolved
                    .sources
                    .get("cluster")
                    .map_or(String::new(), ToString::to_string)
            ),
        );
        ports(&mut r, c);
        multicast(&mut r, c);
        discovery(&mut r, c).await;
        match &self.node_http {
            Some(http) => clocks(&mut r, http).await,
            None => r.note(
                "clocks",
                "not compared: pass --node-http ADDR of a running node to compare its peers' clocks",
            ),
        }
        if r.failures > 0 {
            anyhow::bail!("{} problem(s) found", r.failures);
        }
        println!("\nno problem found");
        Ok(())
    }
}

fn ports(r: &mut Report, c: &Config) {
    let m = c.membership.port;
    let t = c.transport_port();
    for (what, key, port) in [
        ("membership port (UDP)", "membership.port", m),
        ("QUIC port (UDP)", "transport.port", t),
    ] {
        let addr = SocketAddr::new(c.transport.bind, port);
        match UdpSocket::bind(addr) {
            Ok(_) => r.ok(what, format!("{addr} is free")),
            Err(e) => r.fail(
                what,
                format!("{addr}: {e}"),
                &format!("stop what uses it or set `{key}` to a free port"),
            ),
        }
    }
    if c.http.enabled {
        let addr = SocketAddr::new(c.http.bind, c.http.port);
        match TcpListener::bind(addr) {
            Ok(_) => r.ok("HTTP port (TCP)", format!("{addr} is free")),
            Err(e) => r.fail(
                "HTTP port (TCP)",
                format!("{addr}: {e}"),
                "set `http.port` (FOUNDATION_HTTP_PORT) to a free port",
            ),
        }
    }
}

/// Interfaces that are up and multicast-capable, from /sys/class/net.
fn multicast_interfaces() -> Option<Vec<String>> {
    const IFF_UP: u32 = 0x1;
    const IFF_LOOPBACK: u32 = 0x8;
    const IFF_MULTICAST: u32 = 0x1000;
    let dir = std::fs::read_dir("/sys/class/net").ok()?;
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let flags = std::fs::read_to_string(entry.path().join("flags")).ok()?;
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
        if flags & IFF_UP != 0 && flags & IFF_MULTICAST != 0 && flags & IFF_LOOPBACK == 0 {
            found.push(name);
        }
    }
    found.sort();
    Some(found)
}

fn multicast(r: &mut Report, c: &Config) {
    let needs = matches!(
        c.cluster.discovery,
        DiscoveryKind::Mdns | DiscoveryKind::Gossip
    );
    match multicast_interfaces() {
        Some(ifs) if !ifs.is_empty() => r.ok("multicast", format!("interfaces up with multicast: {}", ifs.join(", "))),
        Some(_) if needs => r.fail(
            "multicast",
            "no interface is up with multicast",
            "mDNS and gossip cannot find other hosts here (containers often lack multicast): use FOUNDATION_SEEDS or FOUNDATION_DNS_QUERY",
        ),
        Some(_) => r.note("multicast", "no interface is up with multicast (not needed by this strategy)"),
        None => r.note("multicast", "cannot read /sys/class/net (not Linux?)"),
    }
}

async fn discovery(r: &mut Report, c: &Config) {
    let ctx = match DiscoveryContext::for_config(c) {
        Ok(ctx) => ctx,
        Err(e) => {
            r.fail(
                "tls",
                format!("cannot load the TLS files: {e}"),
                "check tls.ca_file, tls.cert_file and tls.key_file",
            );
            return;
        }
    };
    let Some(strategy) = foundation::discovery::built_in(c) else {
        return r.fail(
            "discovery",
            format!("{} is not built into this binary", c.cluster.discovery),
            "rebuild with its cargo feature, or pick another strategy",
        );
    };
    match strategy.probe(&ctx).await {
        Probe::Ok(what) => r.ok("discovery", what),
        Probe::Failed { why, hint } => r.fail("discovery", why, &hint),
        Probe::Note(what) => r.note("discovery", what),
        other => r.note("discovery", format!("{other:?}")),
    }
}

async fn clocks(r: &mut Report, http: &str) {
    let body = match super::http_get::get(http, "/clocks", std::time::Duration::from_secs(5)).await
    {
        Ok(b) => b,
        Err(e) => {
            return r.fail(
                "clocks",
                e,
                "pass the HTTP address of a running node (foundation node serves it)",
            )
        }
    };
    let offsets: Vec<foundation::ClockOffset> = match serde_json::from_str(&body) {
        Ok(o) => o,
        Err(e) => {
            return r.fail(
                "clocks",
                format!("malformed /clocks answer: {e}"),
                "use a node of the same version",
            )
        }
    };
    if offsets.is_empty() {
        return r.note("clocks", "the node has no peer that answered");
    }
    for o in offsets {
        let what = format!("clock of {} ({})", o.name, o.node);
        let detail = format!("offset {:+.1} ms (±{:.1} ms)", o.offset_ms, o.rtt_ms / 2.0);
        if o.offset_ms.abs() > CLOCK_TOLERANCE_MS + o.rtt_ms {
            r.fail(&what, detail, "synchronize clocks (chrony or systemd-timesyncd); lease and trace timestamps depend on them");
        } else {
            r.ok(&what, detail);
        }
    }
}
