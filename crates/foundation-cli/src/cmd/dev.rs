//! `foundation dev`: a local N-node cluster as child processes.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::process::{Child, Command};

use super::status::{fetch_members, member_table};

/// Start a local N-node cluster as child processes.
#[derive(Debug, Args)]
pub(crate) struct DevCmd {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// First membership port to try; nodes take the next free ones.
    #[arg(long, default_value_t = 7946)]
    base_port: u16,
    /// First HTTP port to try.
    #[arg(long, default_value_t = 9090)]
    base_http_port: u16,
    /// Where children's logs go (default: a temporary directory).
    #[arg(long)]
    log_dir: Option<std::path::PathBuf>,
}

struct DevChild {
    name: String,
    http: SocketAddr,
    child: Child,
}

impl DevCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 64 {
            bail!("--nodes must be between 1 and 64 (got {})", self.nodes);
        }
        let exe = std::env::current_exe().context("cannot find the foundation binary")?;
        let log_dir = match &self.log_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("foundation-dev-{}", std::process::id())),
        };
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let mut next_port = self.base_port;
        let mut next_http = self.base_http_port;
        let mut children: Vec<DevChild> = Vec::new();
        let mut seed: Option<SocketAddr> = None;
        for i in 1..=self.nodes {
            let port = free_udp_pair(&mut next_port)?;
            let http_port = free_tcp(&mut next_http)?;
            let name = format!("node-{i}");
            let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("node")
                .args(["--name", &name, "--bind", "127.0.0.1"])
                .args([
                    "--port",
                    &port.to_string(),
                    "--http-port",
                    &http_port.to_string(),
                ])
                .arg("--stop-on-stdin-eof")
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
            seed.get_or_insert(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            children.push(DevChild {
                name,
                http: SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
                child,
            });
        }
        println!(
            "started {} nodes (logs in {}); Ctrl-C stops them",
            self.nodes,
            log_dir.display()
        );
        let deadline = self
            .duration
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let mut last = String::new();
        loop {
            let view = render(&mut children).await;
            if view != last {
                if interactive {
                    print!("\x1b[2J\x1b[H");
                }
                print!("{view}");
                last = view;
            }
            let stop = tokio::select! {
                _ = tokio::signal::ctrl_c() => true,
                _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            };
            if stop || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
        }
        stop_all(children).await;
        Ok(())
    }
}

async fn render(children: &mut [DevChild]) -> String {
    let mut out = String::new();
    for c in children.iter_mut() {
        if let Ok(Some(status)) = c.child.try_wait() {
            out.push_str(&format!("{} exited ({status}); see its log\n", c.name));
        }
    }
    for c in children.iter() {
        if let Ok(members) = fetch_members(&c.http.to_string()).await {
            out.push_str(&format!(
                "members as seen by {} (http://{}):\n",
                c.name, c.http
            ));
            out.push_str(&member_table(&members));
            return out;
        }
    }
    out.push_str("waiting for nodes to answer...\n");
    out
}

/// Closes each child's stdin (it leaves gracefully), then waits; a child
/// still running after 5 s is killed.
async fn stop_all(children: Vec<DevChild>) {
    println!("stopping {} nodes...", children.len());
    let mut waiting = Vec::new();
    for mut c in children {
        drop(c.child.stdin.take());
        waiting.push(c);
    }
    for mut c in waiting {
        match tokio::time::timeout(Duration::from_secs(5), c.child.wait()).await {
            Ok(Ok(status)) => println!("{} stopped ({status})", c.name),
            _ => {
                let _ = c.child.kill().await;
                println!("{} killed after 5 s", c.name);
            }
        }
    }
}

/// A port p such that UDP p and p+1 are free (membership and QUIC).
fn free_udp_pair(next: &mut u16) -> anyhow::Result<u16> {
    while *next < u16::MAX - 1 {
        let p = *next;
        *next += 2;
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, p));
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1));
        if a.is_ok() && b.is_ok() {
            return Ok(p);
        }
    }
    bail!("no free UDP port pair found; pass --base-port")
}

fn free_tcp(next: &mut u16) -> anyhow::Result<u16> {
    while *next < u16::MAX {
        let p = *next;
        *next += 1;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free TCP port found; pass --base-http-port")
}
