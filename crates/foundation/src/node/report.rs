//! Nodes' reports about themselves, over the telemetry channel.
//!
//! Every node answers a report ask (kind [`REPORT_ASK`]) with its
//! [`Report`]: memory, tasks, traffic per channel, topics, instances,
//! quorum and caches. [`Node::peer_reports`] asks every alive member; the
//! dashboard of any node shows the whole cluster from the answers. Asks
//! are made only while someone looks (a dashboard stream is open), so an
//! idle cluster sends none.

use std::time::Duration;

use foundation_proto::telemetry::{CacheReport, ChannelTraffic, Report, TopicReport};

use super::clock::{answer, ClockOffset};
use super::Node;
use crate::transport::{Channel, InboxFilter};

/// Message kind of a report ask.
pub const REPORT_ASK: u16 = *foundation_proto::kinds::TELEMETRY.start();
/// Message kind of a report.
pub const REPORT: u16 = REPORT_ASK + 1;

/// A peer's report, with its clock offset measured by the same exchange.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// The peer's clock offset and the round trip of the ask.
    pub clock: ClockOffset,
    /// What it reported.
    pub report: Report,
}

/// Answers report asks until the node stops.
pub(crate) async fn responder(node: Node) {
    let mut inbox = node.subscribe(InboxFilter {
        channel: Some(Channel::Telemetry),
        kinds: REPORT_ASK..=REPORT_ASK,
    });
    while let Some(msg) = inbox.recv().await {
        let body = match node.report().encode() {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "telemetry report not sent");
                continue;
            }
        };
        if let Some(reply) = answer(&msg.payload, &body) {
            let _ = node.send(msg.from, Channel::Telemetry, REPORT, reply).await;
        }
    }
}

impl Node {
    /// This node's report about itself, cut to the report's limits.
    pub fn report(&self) -> Report {
        let stats = self.raw().stats().clone();
        let traffic = Channel::ALL
            .iter()
            .map(|&c| ChannelTraffic {
                sent_messages: stats.sent_messages(c),
                sent_bytes: stats.sent_bytes(c),
                received_messages: stats.received_messages(c),
                received_bytes: stats.received_bytes(c),
            })
            .collect();
        let topics = self
            .pubsub()
            .stats()
            .into_iter()
            .map(|(name, t)| TopicReport {
                name,
                published: t.published,
                received: t.received,
                delivered: t.delivered,
                dropped: t.dropped,
            })
            .collect();
        let processes = self.processes();
        let mut running: Vec<String> = processes.running().into_iter().map(|(n, _)| n).collect();
        running.sort();
        let caches = self
            .caches()
            .list()
            .into_iter()
            .map(|c| CacheReport {
                name: c.name,
                tier: c.tier.to_owned(),
                entries: c.entries + c.near_entries.unwrap_or(0),
                hit_rate: c.hit_rate,
            })
            .collect();
        let tasks = tokio::runtime::Handle::try_current()
            .map_or(0, |h| h.metrics().num_alive_tasks() as u64);
        let mut report = Report {
            node: self.id(),
            uptime_ms: u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            rss_bytes: crate::telemetry::process::resident_memory_bytes(),
            tasks,
            traffic,
            topics,
            running,
            has_quorum: processes.has_quorum(),
            caches,
            truncated: false,
        };
        report.bound();
        report
    }

    /// Asks every alive member for its report on the telemetry channel and
    /// returns those that answered within `timeout`. A report that does
    /// not decode or is over its limits is dropped (and logged).
    pub async fn peer_reports(&self, timeout: Duration) -> Vec<PeerReport> {
        self.ask_all(Channel::Telemetry, (REPORT_ASK, REPORT), timeout)
            .await
            .into_iter()
            .filter_map(|a| match Report::decode(&a.body) {
                Ok(report) if report.node == a.clock.node => Some(PeerReport {
                    clock: a.clock,
                    report,
                }),
                Ok(_) => {
                    tracing::debug!(peer = %a.clock.node, "telemetry report names another node");
                    None
                }
                Err(e) => {
                    tracing::debug!(peer = %a.clock.node, error = %e, "telemetry report dropped");
                    None
                }
            })
            .collect()
    }
}
