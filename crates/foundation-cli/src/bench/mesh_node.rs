//! One server process of `foundation bench mesh` (`bench mesh-node`,
//! hidden): a node with one echo service in the group `bench.mesh`, whose
//! handler can be told to take longer.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use foundation::mesh::ServiceMeta;
use foundation::process::{Context, Service, ServiceError, ServiceOptions};
use foundation::NodeBuilder;
use serde::{Deserialize, Serialize};

use crate::cmd::node::{wait_for_stop, NodeArgs};

/// The group the echo services join.
pub(crate) const GROUP: &str = "bench.mesh";

/// What the bench asks of an echo service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum MeshReq {
    /// Reply with the number.
    Echo(u64),
    /// From now on, take this many more milliseconds per call.
    SetDelay(u64),
}

/// The echo service (handles one call at a time, as every service does).
pub(crate) struct MeshEcho {
    delay: Duration,
}

impl Service for MeshEcho {
    type Request = MeshReq;
    type Reply = u64;
    type State = ();

    async fn handle(&mut self, _: &mut Context, req: MeshReq) -> Result<u64, ServiceError> {
        match req {
            MeshReq::Echo(n) => {
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                Ok(n)
            }
            MeshReq::SetDelay(ms) => {
                self.delay = Duration::from_millis(ms);
                Ok(ms)
            }
        }
    }
}

/// The bench's server process.
#[derive(Debug, Args)]
pub(crate) struct MeshNode {
    #[command(flatten)]
    node: NodeArgs,
    /// Leave when standard input closes (always; accepted for the spawner).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
}

impl MeshNode {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        crate::logging::init(crate::logging::LogFormat::Text, "warn");
        let node = NodeBuilder::with_resolver(self.node.resolver()?)
            .start()
            .await
            .context("node did not start")?;
        let options = ServiceOptions {
            mailbox: 4096,
            ..ServiceOptions::default()
        };
        let echo = node.services().spawn(
            || MeshEcho {
                delay: Duration::ZERO,
            },
            options,
        );
        node.registry()
            .join_with(GROUP, &echo, ServiceMeta::new().version("1.0.0"))
            .context("cannot join the bench group")?;
        wait_for_stop(true).await;
        node.shutdown().await;
        Ok(())
    }
}
