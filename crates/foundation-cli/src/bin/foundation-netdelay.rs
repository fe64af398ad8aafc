//! `foundation-netdelay`: delays (with optional jitter) and optionally
//! loses the packets an iptables NFQUEUE rule hands it, as `tc netem
//! delay/loss` would, for
//! kernels without the netem qdisc. The network-namespace tests run it in
//! each lab host (`foundation_testkit::netns::Lab::delayed`); it runs as
//! root in the namespace whose rule feeds the queue.

use std::time::Duration;

use clap::Parser;

/// Delays the packets of a netfilter queue.
#[derive(Parser, Debug)]
#[command(name = "foundation-netdelay", version)]
struct Args {
    /// Netfilter queue number (the rule's `--queue-num`).
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// Delay added to each packet, in milliseconds.
    #[arg(long)]
    delay_ms: u64,
    /// Random extra delay, uniform between 0 and this, in milliseconds
    /// (packets then overtake each other).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Probability (0.0 to 1.0) that a packet is dropped instead.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the loss draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    foundation_testkit::netdelay::run_nfqueue(
        a.queue,
        Duration::from_millis(a.delay_ms),
        Duration::from_millis(a.jitter_ms),
        a.loss,
        a.seed,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "netfilter queue {}: {e} (run as root, in the namespace of the NFQUEUE rule)",
            a.queue
        )
    })
}

#[cfg(not(target_os = "linux"))]
fn main() -> anyhow::Result<()> {
    let _ = (Args::parse(), Duration::ZERO);
    anyhow::bail!("foundation-netdelay needs Linux (netfilter queues)")
}
