//! `foundation`: run nodes, a local dev cluster, status, config explain, benchmarks.

mod bench;
mod cmd;
mod load;
mod logging;
mod table;

use clap::{Parser, Subcommand};

/// Foundation: distributed Rust applications as easy as single-node ones.
#[derive(Debug, Parser)]
#[command(name = "foundation", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node (logs show members joining and leaving).
    Node(Box<cmd::node::NodeCmd>),
    /// Start a local N-node cluster as child processes, with a live member table.
    Dev(cmd::dev::DevCmd),
    /// Print the member table of a running node.
    Status(cmd::status::StatusCmd),
    /// Check ports, multicast and discovery, and say what to fix.
    Doctor(cmd::doctor::DoctorCmd),
    /// Configuration tools.
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Chaos scenarios under deterministic simulation, over a seed sweep
    /// (built with the `lab` feature).
    #[cfg(feature = "lab")]
    Sim(cmd::sim::SimCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Node(c) => c.run().await,
            Command::Dev(c) => c.run().await,
            Command::Status(c) => c.run().await,
            Command::Doctor(c) => c.run().await,
            Command::Config(c) => c.run(),
            Command::Bench(c) => c.run().await,
            #[cfg(feature = "lab")]
            Command::Sim(c) => c.run(),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
