//! `foundation bench ...`: benchmarks that print figures (and assert nothing).

mod cache;
mod cache_phases;
mod coord;
mod coord_etcd;
mod detect;
#[cfg(feature = "lab")]
mod discovery;
mod failover;
#[cfg(feature = "lab")]
mod falsedowns;
mod histogram;
mod hol;
mod memory;
mod mesh;
mod mesh_node;
mod registry;
mod soak;
mod soak_node;
pub(crate) mod stats;
mod throughput;
pub(crate) mod transport;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Control round trip idle and under data load, and data throughput.
    Transport(transport::TransportBench),
    /// The distributed cache: local, remote and near reads, invalidation,
    /// rebalance (3 processes).
    Cache(cache::CacheBench),
    /// Coordination: locks, key-value, failover (3 processes), or etcd's.
    Coord(coord::CoordBench),
    /// Time from SIGKILL of a node process to Down on every survivor.
    Detect(detect::DetectBench),
    /// Time for N unconfigured nodes in network namespaces to see each other
    /// (root; built with the `lab` feature).
    #[cfg(feature = "lab")]
    Discovery(discovery::DiscoveryBench),
    /// False downs, members missing from views and pub/sub delivery with
    /// loss and delay on every host (root; built with the `lab` feature).
    #[cfg(feature = "lab")]
    Falsedowns(falsedowns::FalseDownsBench),
    /// Singleton failover after SIGKILL or SIGSTOP of its host (3 processes).
    Failover(failover::FailoverBench),
    /// Time until names registered on one node are visible on every node.
    Registry(registry::RegistryBench),
    /// Control round trips while the data channel is saturated, vs one stream.
    Hol(hol::HolBench),
    /// The mesh client's cost, routing around a slowed endpoint, and the
    /// cost of context propagation (3 processes).
    Mesh(mesh::MeshBench),
    /// A process of `bench mesh` (not for direct use).
    #[command(hide = true)]
    MeshNode(mesh_node::MeshNode),
    /// Resident memory of node processes (idle, in a cluster, per names,
    /// topics and services) and membership traffic per node.
    Memory(memory::MemoryBench),
    /// The process `bench memory` measures (not for direct use).
    #[command(hide = true)]
    MemoryLoad(memory::MemoryLoad),
    /// Processes under mixed load for a long run (one restarted every few
    /// minutes): memory, tasks and p99 latencies at the start and the end.
    Soak(soak::SoakBench),
    /// A process of `bench soak` (not for direct use).
    #[command(hide = true)]
    SoakNode(soak_node::SoakNode),
    /// Pub/sub messages per second: two nodes per channel, then fan-out.
    Throughput(throughput::ThroughputBench),
}

/// Incompressible bytes (xorshift64): payloads that measure the transport,
/// not the compressor.
pub(crate) fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Prints `report` as one JSON object, or as the bench's table.
pub(crate) fn emit<R: serde::Serialize>(
    json: bool,
    report: &R,
    table: fn(&R),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        table(report);
    }
    Ok(())
}

impl BenchCmd {
    /// Runs the bench in a task on a runtime worker, where an
    /// application's own tasks run. The `main` thread only waits in
    /// `block_on`: a loop measured there would pay one more cross-thread
    /// wake-up for every reply than a task on a worker does.
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        tokio::spawn(self.dispatch())
            .await
            .map_err(|e| anyhow::anyhow!("the bench task failed: {e}"))?
    }

    async fn dispatch(self) -> anyhow::Result<()> {
        match self {
            BenchCmd::Transport(b) => b.run().await,
            BenchCmd::Cache(b) => b.run().await,
            BenchCmd::Coord(b) => b.run().await,
            BenchCmd::Detect(b) => b.run().await,
            #[cfg(feature = "lab")]
            BenchCmd::Discovery(b) => b.run().await,
            #[cfg(feature = "lab")]
            BenchCmd::Falsedowns(b) => b.run().await,
            BenchCmd::Registry(b) => b.run().await,
            BenchCmd::Failover(b) => b.run().await,
            BenchCmd::Hol(b) => b.run().await,
            BenchCmd::Memory(b) => b.run().await,
            BenchCmd::Mesh(b) => b.run().await,
            BenchCmd::MeshNode(b) => b.run().await,
            BenchCmd::MemoryLoad(b) => b.run().await,
            BenchCmd::Soak(b) => b.run().await,
            BenchCmd::SoakNode(b) => b.run().await,
            BenchCmd::Throughput(b) => b.run().await,
        }
    }
}
