//! `foundation bench ...`: benchmarks that print figures (and assert nothing).

mod detect;
mod stats;
mod transport;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Control round trip idle and under data load, and data throughput.
    Transport(transport::TransportBench),
    /// Time from SIGKILL of a node process to Down on every survivor.
    Detect(detect::DetectBench),
}

impl BenchCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self {
            BenchCmd::Transport(b) => b.run().await,
            BenchCmd::Detect(b) => b.run().await,
        }
    }
}
