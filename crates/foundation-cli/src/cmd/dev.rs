//! `foundation dev`: a local N-node cluster as child processes.

use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::procs::{self, NodeProcess, Ports};
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
    #[arg(long, default_value_t = foundation::config::defaults::MEMBERSHIP_PORT)]
    base_port: u16,
    /// First HTTP port to try.
    #[arg(long, default_value_t = foundation::config::defaults::HTTP_PORT)]
    base_http_port: u16,
    /// Where children's logs go (default: a temporary directory).
    #[arg(long)]
    log_dir: Option<std::path::PathBuf>,
}

impl DevCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > 64 {
            bail!("--nodes must be between 1 and 64 (got {})", self.nodes);
        }
        let log_dir = procs::log_dir(self.log_dir.as_deref(), "dev")?;
        let mut ports = Ports::new(self.base_port, self.base_http_port);
        let mut nodes = procs::spawn_cluster(self.nodes, "node", &mut ports, &log_dir)?;
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
            let view = render(&mut nodes).await;
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
        println!("stopping {} nodes...", nodes.len());
        procs::stop_all(nodes, true).await;
        Ok(())
    }
}

async fn render(nodes: &mut [NodeProcess]) -> String {
    let mut out = String::new();
    for n in nodes.iter_mut() {
        if let Ok(Some(status)) = n.child.try_wait() {
            out.push_str(&format!("{} exited ({status}); see its log\n", n.name));
        }
    }
    for n in nodes.iter() {
        if let Ok(members) = fetch_members(&n.http.to_string()).await {
            out.push_str(&format!(
                "members as seen by {} (http://{}):\n",
                n.name, n.http
            ));
            out.push_str(&member_table(&members));
            out.push_str(&format!("\ndashboard: http://{}/dashboard\n", n.http));
            return out;
        }
    }
    out.push_str("waiting for nodes to answer...\n");
    out
}
