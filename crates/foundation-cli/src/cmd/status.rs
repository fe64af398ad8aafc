//! `foundation status`: the member table of a running node.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use foundation::Member;

use super::http_get;
use crate::table;

/// Print the member table of a running node.
#[derive(Debug, Args)]
pub(crate) struct StatusCmd {
    /// The node's HTTP address (host:port).
    #[arg(long, default_value_t = local_http())]
    http: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl StatusCmd {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let members = fetch_members(&self.http).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&members)?);
        } else {
            print!("{}", member_table(&members));
        }
        Ok(())
    }
}

/// The members a node reports at `/members`.
pub(crate) async fn fetch_members(http: &str) -> anyhow::Result<Vec<Member>> {
    let body = http_get::get(http, "/members", Duration::from_secs(3)).await?;
    serde_json::from_str(&body).with_context(|| format!("{http}/members is not a member list"))
}

/// node, address, status, incarnation (and id, roles).
pub(crate) fn member_table(members: &[Member]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.addr.to_string(),
                m.state.as_str().to_owned(),
                m.incarnation.to_string(),
                m.id.to_string(),
                m.roles.join(","),
            ]
        })
        .collect();
    table::render(
        &["NODE", "ADDRESS", "STATUS", "INCARNATION", "ID", "ROLES"],
        &rows,
    )
}

/// Loopback and the library's default HTTP port.
fn local_http() -> String {
    format!("127.0.0.1:{}", foundation::config::defaults::HTTP_PORT)
}
