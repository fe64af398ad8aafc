//! tracing setup for the CLI.

use clap::ValueEnum;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What the default level leaves out: openraft's own narration. At info it
/// prints its state at start-up and every vote; at warn, messages it
/// ignores while a group forms (six lines from three nodes on a normal
/// start, measured) and a failed append to a peer that is away, two or three a second
/// until the peer is replaced; its replication task logs an error twice a
/// second for that peer. The node reports the peer down, and voters
/// replaced, once in its own words. `RUST_LOG=info` shows them all.
const QUIET: &str = "openraft=error,openraft::replication=off";

/// Installs the subscriber. `RUST_LOG` overrides the default level.
pub(crate) fn init(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},{QUIET}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
