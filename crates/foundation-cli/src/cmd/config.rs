//! `foundation config explain`.

use clap::Subcommand;

use super::node::NodeArgs;

/// Configuration tools.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print the resolved configuration, its tier and the source of every value.
    Explain {
        #[command(flatten)]
        args: NodeArgs,
    },
}

impl ConfigCmd {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        match self {
            ConfigCmd::Explain { args } => {
                let resolved = args.resolver()?.resolve()?;
                print!("{resolved}");
                Ok(())
            }
        }
    }
}
