//! `foundation bench ...`: benchmarks that print figures (and assert nothing).

mod stats;
mod transport;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Control round trip idle and under data load, and data throughput.
    Transport(transport::TransportBench),
}

impl BenchCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self {
            BenchCmd::Transport(b) => b.run().await,
        }
    }
}
