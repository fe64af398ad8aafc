//! Child `foundation node` processes on loopback (for `dev` and benches).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};

/// A running child node.
#[derive(Debug)]
pub(crate) struct NodeProcess {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) http: SocketAddr,
    pub(crate) child: Child,
}

/// What a local cluster hands its nodes: free loopback ports, and one
/// secret made fresh for this run (never the public development secret,
/// so nobody else's node can join it).
#[derive(Debug)]
pub(crate) struct Ports {
    next_udp: u16,
    next_tcp: u16,
    pub(crate) secret: foundation::config::Secret,
}

impl Ports {
    pub(crate) fn new(udp: u16, tcp: u16) -> Self {
        Ports {
            next_udp: udp,
            next_tcp: tcp,
            secret: foundation::config::Secret::generate(),
        }
    }

    /// A membership port p such that UDP p and the QUIC port a node with
    /// `--port p` derives from it (`Config::transport_port`) are free.
    pub(crate) fn udp_pair(&mut self) -> anyhow::Result<u16> {
        while self.next_udp < u16::MAX - 1 {
            let p = self.next_udp;
            let mut config = foundation::Config::default();
            config.membership.port = p;
            let quic = config.transport_port();
            self.next_udp = self.next_udp.max(quic).saturating_add(1);
            let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, p));
            let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, quic));
            if a.is_ok() && b.is_ok() {
                return Ok(p);
            }
        }
        bail!("no free UDP port pair found; pass --base-port")
    }

    /// A free TCP port.
    pub(crate) fn tcp(&mut self) -> anyhow::Result<u16> {
        while self.next_tcp < u16::MAX {
            let p = self.next_tcp;
            self.next_tcp += 1;
            if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
                return Ok(p);
            }
        }
        bail!("no free TCP port found; pass --base-http-port")
    }
}

/// Starts `foundation node` on loopback; it leaves when its stdin closes.
pub(crate) fn spawn_node(
    name: &str,
    ports: &mut Ports,
    seed: Option<SocketAddr>,
    log_dir: &Path,
) -> anyhow::Result<NodeProcess> {
    spawn_node_with(name, ports, seed, log_dir, &[])
}

/// [`spawn_node`] with extra `foundation node` flags.
pub(crate) fn spawn_node_with(
    name: &str,
    ports: &mut Ports,
    seed: Option<SocketAddr>,
    log_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<NodeProcess> {
    spawn_node_env(name, ports, seed, log_dir, extra, &[])
}

/// [`spawn_node_with`] with extra environment variables.
pub(crate) fn spawn_node_env(
    name: &str,
    ports: &mut Ports,
    seed: Option<SocketAddr>,
    log_dir: &Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<NodeProcess> {
    spawn_command(&["node"], name, ports, seed, log_dir, extra, env)
}

/// Starts this binary's `command` (`node`, or a bench's node process that
/// takes the same flags) on loopback; it leaves when its stdin closes.
pub(crate) fn spawn_command(
    command: &[&str],
    name: &str,
    ports: &mut Ports,
    seed: Option<SocketAddr>,
    log_dir: &Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<NodeProcess> {
    let exe = std::env::current_exe().context("cannot find the foundation binary")?;
    let port = ports.udp_pair()?;
    let http_port = ports.tcp()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(format!("{name}.log")))
        .with_context(|| format!("cannot create a log file in {}", log_dir.display()))?;
    let mut cmd = Command::new(exe);
    // Seeded by the first node, `static`: two local clusters on one machine
    // (two `dev` runs, a bench beside a dev cluster) stay apart.
    cmd.args(command)
        .args(["--cluster", "static", "--name", name, "--bind", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "--http-port",
            &http_port.to_string(),
        ])
        .arg("--stop-on-stdin-eof")
        .args(extra)
        .env(
            "FOUNDATION_SECRET",
            String::from_utf8_lossy(ports.secret.expose()).as_ref(),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    if let Some(seed) = seed {
        cmd.args(["--seeds", &seed.to_string()]);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(NodeProcess {
        name: name.to_owned(),
        port,
        http: SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
        child,
    })
}

/// Starts `n` nodes, the first being everyone's seed.
pub(crate) fn spawn_cluster(
    n: usize,
    prefix: &str,
    ports: &mut Ports,
    log_dir: &Path,
) -> anyhow::Result<Vec<NodeProcess>> {
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 1..=n {
        let seed = nodes
            .first()
            .map(|f| SocketAddr::from((Ipv4Addr::LOCALHOST, f.port)));
        nodes.push(spawn_node(&format!("{prefix}-{i}"), ports, seed, log_dir)?);
    }
    Ok(nodes)
}

/// Closes each child's stdin (it leaves gracefully), then waits; a child
/// still running after 5 s is killed.
pub(crate) async fn stop_all(nodes: Vec<NodeProcess>, verbose: bool) {
    let mut waiting = Vec::new();
    for mut n in nodes {
        drop(n.child.stdin.take());
        waiting.push(n);
    }
    for mut n in waiting {
        match tokio::time::timeout(Duration::from_secs(5), n.child.wait()).await {
            Ok(Ok(status)) if verbose => println!("{} stopped ({status})", n.name),
            Ok(_) => {}
            Err(_) => {
                let _ = n.child.kill().await;
                if verbose {
                    println!("{} killed after 5 s", n.name);
                }
            }
        }
    }
}

/// A fresh directory for children's logs.
pub(crate) fn log_dir(given: Option<&Path>, what: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => std::env::temp_dir().join(format!("foundation-{what}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
