//! What the dashboard page shows: one JSON document, the cluster as this
//! node sees it plus every peer's own report (asked over the telemetry
//! channel). Node ids are hex strings: JavaScript numbers cannot hold a
//! `u64`.

use std::collections::HashMap;
use std::time::Duration;

use foundation_proto::process::{SplitBrain, Strategy};
use foundation_proto::registry::EntryKind;
use foundation_proto::telemetry::Report;
use serde::Serialize;

use crate::node::{Node, PeerReport};
use crate::NodeId;

/// Most registry entries and child specs the page lists (it says how many
/// there are in all).
pub(crate) const MAX_LISTED: usize = 200;

/// How long a snapshot waits for peers' reports.
pub(crate) const REPORT_TIMEOUT: Duration = Duration::from_millis(700);

/// The whole page's data.
#[derive(Debug, Serialize)]
pub(crate) struct DashboardView {
    /// This node's wall clock, ms since the Unix epoch.
    at_ms: u64,
    /// The node serving the page.
    node: NodeRef,
    members: Vec<MemberView>,
    quorum: QuorumView,
    registry: Listed<EntryView>,
    children: Listed<ChildView>,
    /// Each node's own report (this node's, and every peer that answered).
    nodes: Vec<NodeView>,
    coord: CoordView,
}

#[derive(Debug, Serialize)]
struct NodeRef {
    id: String,
    name: String,
}

#[derive(Debug, Serialize)]
struct MemberView {
    id: String,
    name: String,
    state: &'static str,
    roles: Vec<String>,
    version: String,
    addr: String,
    transport: String,
    incarnation: u16,
    generation: u64,
    /// Seconds since its state last changed, as this node saw it (None
    /// for this node).
    since_s: Option<f64>,
    /// Its clock minus ours, from the report exchange (None: no answer).
    clock_offset_ms: Option<f64>,
    rtt_ms: Option<f64>,
    this: bool,
}

#[derive(Debug, Serialize)]
struct QuorumView {
    policy: String,
    has_quorum: bool,
    base: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Listed<T> {
    total: usize,
    items: Vec<T>,
}

#[derive(Debug, Serialize)]
struct EntryView {
    name: String,
    kind: &'static str,
    owner: String,
    owner_name: String,
    protocol: String,
}

#[derive(Debug, Serialize)]
struct ChildView {
    id: String,
    kind: String,
    strategy: String,
    role: Option<String>,
    fenced: bool,
}

#[derive(Debug, Serialize)]
struct NodeView {
    id: String,
    name: String,
    this: bool,
    report: Report,
}

#[derive(Debug, Serialize)]
struct CoordView {
    group: Option<String>,
    leader: Option<String>,
    leader_name: Option<String>,
    term: u64,
    voters: Vec<String>,
    learners: Vec<String>,
    committed: u64,
    applied: u64,
}

fn hex(id: NodeId) -> String {
    id.to_string()
}

fn strategy(s: Strategy) -> String {
    match s {
        Strategy::Singleton => "singleton".into(),
        Strategy::Replicated => "replicated".into(),
        Strategy::Partitioned { shards } => format!("partitioned ({shards} shards)"),
    }
}

fn policy(p: SplitBrain) -> String {
    match p {
        SplitBrain::KeepMajority => "keep majority".into(),
        SplitBrain::StaticQuorum(n) => format!("static quorum of {n}"),
        SplitBrain::KeepAll => "keep all".into(),
    }
}

fn kind(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Unique => "unique",
        EntryKind::Group => "group",
        EntryKind::Interest => "topic interest",
    }
}

fn listed<T>(all: impl ExactSizeIterator<Item = T>) -> Listed<T> {
    Listed {
        total: all.len(),
        items: all.take(MAX_LISTED).collect(),
    }
}

impl DashboardView {
    /// The view now: this node's state, and its peers' reports (asked;
    /// waits at most [`REPORT_TIMEOUT`]).
    pub(crate) async fn of(node: &Node) -> DashboardView {
        let peers = node.peer_reports(REPORT_TIMEOUT).await;
        DashboardView::from_parts(node, peers)
    }

    fn from_parts(node: &Node, peers: Vec<PeerReport>) -> DashboardView {
        let me = node.id();
        let now = crate::shell_time::now();
        let since: HashMap<NodeId, std::time::Instant> = node
            .raw()
            .membership()
            .members_since()
            .into_iter()
            .map(|(m, at)| (m.id, at))
            .collect();
        let clocks: HashMap<NodeId, (f64, f64)> = peers
            .iter()
            .map(|p| (p.clock.node, (p.clock.offset_ms, p.clock.rtt_ms)))
            .collect();
        let all = node.members();
        let names: HashMap<NodeId, String> = all.iter().map(|m| (m.id, m.name.clone())).collect();
        let name_of = |id: NodeId| names.get(&id).cloned().unwrap_or_else(|| hex(id));
        let members = all
            .iter()
            .map(|m| MemberView {
                id: hex(m.id),
                name: m.name.clone(),
                state: m.state.as_str(),
                roles: m.roles.clone(),
                version: m.version.clone(),
                addr: m.addr.to_string(),
                transport: m.transport.to_string(),
                incarnation: m.incarnation,
                generation: m.generation,
                since_s: since
                    .get(&m.id)
                    .map(|at| now.saturating_duration_since(*at).as_secs_f64()),
                clock_offset_ms: clocks.get(&m.id).map(|c| c.0),
                rtt_ms: clocks.get(&m.id).map(|c| c.1),
                this: m.id == me,
            })
            .collect();
        let processes = node.processes();
        let quorum = QuorumView {
            policy: policy(processes.split_brain()),
            has_quorum: processes.has_quorum(),
            base: processes.quorum_base().into_iter().map(hex).collect(),
        };
        let mut entries = node.registry().snapshot().entries;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let registry = listed(entries.into_iter().map(|e| EntryView {
            kind: kind(e.kind),
            owner: hex(e.owner()),
            owner_name: name_of(e.owner()),
            name: e.name,
            protocol: e.protocol,
        }));
        let mut specs = processes.children();
        specs.sort_by(|a, b| a.id.cmp(&b.id));
        let children = listed(specs.into_iter().map(|c| ChildView {
            strategy: strategy(c.strategy),
            id: c.id,
            kind: c.kind,
            role: c.role,
            fenced: c.fenced,
        }));
        let mut nodes = vec![NodeView {
            id: hex(me),
            name: node.name().to_owned(),
            this: true,
            report: node.report(),
        }];
        nodes.extend(peers.into_iter().map(|p| NodeView {
            id: hex(p.clock.node),
            name: p.clock.name,
            this: false,
            report: p.report,
        }));
        nodes[1..].sort_by(|a, b| a.name.cmp(&b.name));
        let s = node.coord().status();
        let coord = CoordView {
            group: s.group.map(|g| g.to_string()),
            leader: s.leader.map(hex),
            leader_name: s.leader.map(name_of),
            term: s.term,
            voters: s.voters.iter().copied().map(hex).collect(),
            learners: s.learners.iter().copied().map(hex).collect(),
            committed: s.committed,
            applied: s.applied,
        };
        DashboardView {
            at_ms: crate::shell_time::wall_ms(),
            node: NodeRef {
                id: hex(me),
                name: node.name().to_owned(),
            },
            members,
            quorum,
            registry,
            children,
            nodes,
            coord,
        }
    }
}
