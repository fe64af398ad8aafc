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
            // The member list, as before (scripts and tests parse it);
            // coordination is at the node's `/coord`.
            println!("{}", serde_json::to_string_pretty(&members)?);
        } else {
            let coord = http_get::get(&self.http, "/coord", Duration::from_secs(3))
                .await
                .ok()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
            print!("{}", member_table(&members));
            if let Some(c) = coord {
                println!("{}", coord_line(&c, &members));
            }
            println!("dashboard: http://{}/dashboard", self.http);
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

/// One line on coordination: the leader by name, the term, the voters.
fn coord_line(c: &serde_json::Value, members: &[Member]) -> String {
    let name = |id: &serde_json::Value| {
        let id = id.as_u64();
        members
            .iter()
            .find(|m| Some(m.id.0) == id)
            .map_or_else(|| format!("{id:?}"), |m| m.name.clone())
    };
    let leader = match &c["leader"] {
        serde_json::Value::Null => "none".to_owned(),
        l => name(l),
    };
    let voters: Vec<String> = c["voters"]
        .as_array()
        .map(|v| v.iter().map(name).collect())
        .unwrap_or_default();
    format!(
        "\ncoordination: leader {leader}, term {}, voters {}, applied {}",
        c["term"],
        voters.join(","),
        c["applied"]
    )
}

/// Loopback and the library's default HTTP port.
fn local_http() -> String {
    format!("127.0.0.1:{}", foundation::config::defaults::HTTP_PORT)
}
