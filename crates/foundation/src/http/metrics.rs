//! Prometheus text exposition of a node's counters.

use std::fmt::Write as _;

use crate::membership::MemberState;
use crate::pubsub::TopicStats;
use crate::telemetry::{DropReason, MemberEventKind, MembershipTraffic, Stats};
use foundation_proto::Channel;

type PerChannel = fn(&Stats, Channel) -> u64;

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders the counters and the member counts by state.
pub(crate) fn render(stats: &Stats, members: &[(MemberState, usize)]) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "foundation_members",
        "gauge",
        "Known members by state.",
    );
    for (state, count) in members {
        let _ = writeln!(
            out,
            "foundation_members{{state=\"{}\"}} {count}",
            state.as_str()
        );
    }
    let per_channel: [(&str, &str, PerChannel); 4] = [
        (
            "foundation_messages_sent_total",
            "Frames sent per channel.",
            Stats::sent_messages,
        ),
        (
            "foundation_bytes_sent_total",
            "Frame bytes sent per channel.",
            Stats::sent_bytes,
        ),
        (
            "foundation_messages_received_total",
            "Frames received per channel.",
            Stats::received_messages,
        ),
        (
            "foundation_bytes_received_total",
            "Frame bytes received per channel.",
            Stats::received_bytes,
        ),
    ];
    for (name, help, get) in per_channel {
        header(&mut out, name, "counter", help);
        for c in Channel::ALL {
            let _ = writeln!(out, "{name}{{channel=\"{c}\"}} {}", get(stats, c));
        }
    }
    let singles: [(&str, &str, u64); 9] = [
        (
            "foundation_discovery_messages_dropped_total",
            "Discovery messages (beacons, records) rejected as forged or malformed.",
            stats.discovery_messages_dropped(),
        ),
        (
            "foundation_frame_errors_total",
            "Frames rejected (malformed, oversized, wrong version).",
            stats.frame_errors(),
        ),
        (
            "foundation_frames_unrouted_total",
            "Frames no inbox subscribed to.",
            stats.unrouted_frames(),
        ),
        (
            "foundation_frames_spoofed_sender_total",
            "Frames dropped because they claimed another sender than their connection's.",
            stats.spoofed_senders(),
        ),
        (
            "foundation_frames_from_non_members_total",
            "Frames dropped because their sender is not an active member.",
            stats.non_member_frames(),
        ),
        (
            "foundation_handshakes_failed_total",
            "Incoming QUIC handshakes that failed (TLS, QUIC) or timed out.",
            stats.handshakes_failed(),
        ),
        (
            "foundation_handshakes_retried_total",
            "Incoming QUIC handshakes answered with a Retry (address validation under a handshake flood).",
            stats.handshakes_retried(),
        ),
        (
            "foundation_connections_opened_total",
            "QUIC connections established.",
            stats.connections_opened(),
        ),
        (
            "foundation_connect_failures_total",
            "Failed QUIC connection attempts.",
            stats.connect_failures(),
        ),
    ];
    for (name, help, v) in singles {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let name = "foundation_membership_health_score";
    header(
        &mut out,
        name,
        "gauge",
        "This node's own health as membership judges it (Lifeguard, ADR 019): 0 is healthy; each point (up to 8) is a timer of this node that fired late, and stretches its probe timeout and probe period by one more multiple; each probe answered in time takes one away.",
    );
    let _ = writeln!(out, "{name} {}", stats.membership_health());
    labeled(
        &mut out,
        "foundation_membership_events_total",
        "Member events this node saw, by kind (down: a member it declared or heard declared down).",
        "kind",
        MemberEventKind::ALL.map(|k| (k.as_str(), stats.member_events(k))),
    );
    let name = "foundation_membership_rejoins_total";
    header(
        &mut out,
        name,
        "counter",
        "Times this node learnt it had been declared down and rejoined under a new generation.",
    );
    let _ = writeln!(out, "{name} {}", stats.rejoins());
    labeled(
        &mut out,
        "foundation_membership_datagrams_dropped_total",
        "Membership datagrams dropped, by reason.",
        "reason",
        DropReason::ALL.map(|r| (r.as_str(), stats.datagrams_dropped(r))),
    );
    membership_traffic(&mut out, stats.membership_traffic());
    if let Some(rss) = crate::telemetry::process::resident_memory_bytes() {
        let name = "foundation_process_resident_memory_bytes";
        header(
            &mut out,
            name,
            "gauge",
            "Resident memory of the process this node runs in (shared by every node of the process).",
        );
        let _ = writeln!(out, "{name} {rss}");
    }
    out
}

/// The membership protocol's datagrams and bytes, and its recent rate.
fn membership_traffic(out: &mut String, t: &MembershipTraffic) {
    let (sent, received) = (t.total_sent(), t.total_received());
    labeled(
        out,
        "foundation_membership_datagrams_total",
        "Membership datagrams, by direction (canary nudges are datagrams of 0 bytes).",
        "direction",
        [("sent", sent.datagrams), ("received", received.datagrams)],
    );
    labeled(
        out,
        "foundation_membership_bytes_total",
        "Membership UDP payload bytes, by direction (IP and UDP headers not included).",
        "direction",
        [("sent", sent.bytes), ("received", received.bytes)],
    );
    let name = "foundation_membership_bytes_per_second";
    header(
        out,
        name,
        "gauge",
        "Membership UDP payload bytes per second over the last 10 s, by direction.",
    );
    let (per_s_sent, per_s_received) = t.bytes_per_second();
    let _ = writeln!(out, "{name}{{direction=\"sent\"}} {per_s_sent}");
    let _ = writeln!(out, "{name}{{direction=\"received\"}} {per_s_received}");
}

/// A counter with one label: its header, then a line per value.
fn labeled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    header(out, name, "counter", help);
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub(super) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type PerTopic = fn(&TopicStats) -> u64;

/// Renders the pub/sub counters per topic, the subscriber lag per topic
/// and the rejected frames.
/// Renders coordination's state as this node sees it.
pub(crate) fn render_coord(status: &crate::coord::CoordStatus, me: crate::NodeId) -> String {
    let mut out = String::new();
    let is_voter = status.voters.contains(&me);
    let gauges: [(&str, &str, u64); 10] = [
        ("foundation_coord_term", "Current Raft term.", status.term),
        (
            "foundation_coord_is_leader",
            "1 if this node leads the coordination group.",
            u64::from(status.leader == Some(me)),
        ),
        (
            "foundation_coord_is_voter",
            "1 if this node votes in the coordination group.",
            u64::from(is_voter),
        ),
        (
            "foundation_coord_voters",
            "Voters of the coordination group.",
            status.voters.len() as u64,
        ),
        (
            "foundation_coord_last_log_index",
            "Last Raft log index this node holds.",
            status.last_log,
        ),
        (
            "foundation_coord_commit_index",
            "Last Raft log index this node knows to be committed.",
            status.committed,
        ),
        (
            "foundation_coord_applied_index",
            "Last Raft log index applied to this node's replica.",
            status.applied,
        ),
        (
            "foundation_coord_apply_lag",
            "Committed log entries not applied yet.",
            status.apply_lag(),
        ),
        (
            "foundation_coord_log_entries",
            "Log entries held in memory (the rest is compacted into a snapshot).",
            status.log_entries as u64,
        ),
        (
            "foundation_coord_sessions",
            "Session leases in the coordination state.",
            status.sessions as u64,
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters: [(&str, &str, u64); 2] = [
        (
            "foundation_coord_bad_frames_total",
            "Coordination frames that did not decode (dropped).",
            status.bad_frames,
        ),
        (
            "foundation_coord_foreign_group_total",
            "Raft messages refused because they came from another coordination group.",
            status.foreign_group,
        ),
    ];
    for (name, help, value) in counters {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

pub(crate) fn render_pubsub(
    topics: &[(String, TopicStats)],
    lag: &[(String, usize)],
    rejected: u64,
) -> String {
    let mut out = String::new();
    let per_topic: [(&str, &str, PerTopic); 7] = [
        (
            "foundation_pubsub_published_total",
            "Broadcasts from this node, per topic.",
            |s| s.published,
        ),
        (
            "foundation_pubsub_sent_total",
            "Messages sent to other nodes, per topic.",
            |s| s.sent,
        ),
        (
            "foundation_pubsub_sent_bytes_total",
            "Bytes of messages sent to other nodes, per topic.",
            |s| s.sent_bytes,
        ),
        (
            "foundation_pubsub_received_total",
            "Messages received from other nodes, per topic.",
            |s| s.received,
        ),
        (
            "foundation_pubsub_received_bytes_total",
            "Bytes of messages received from other nodes, per topic.",
            |s| s.received_bytes,
        ),
        (
            "foundation_pubsub_delivered_total",
            "Deliveries to local subscriptions, per topic.",
            |s| s.delivered,
        ),
        (
            "foundation_pubsub_dropped_total",
            "Messages dropped (slow subscriber or full peer queue), per topic.",
            |s| s.dropped,
        ),
    ];
    for (name, help, get) in per_topic {
        header(&mut out, name, "counter", help);
        for (topic, s) in topics {
            let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", label(topic), get(s));
        }
    }
    let name = "foundation_pubsub_subscriber_lag";
    header(
        &mut out,
        name,
        "gauge",
        "Most unread messages of any local subscription, per topic.",
    );
    for (topic, n) in lag {
        let _ = writeln!(out, "{name}{{topic=\"{}\"}} {n}", label(topic));
    }
    let name = "foundation_pubsub_frames_rejected_total";
    header(
        &mut out,
        name,
        "counter",
        "Pub/sub frames rejected as malformed.",
    );
    let _ = writeln!(out, "{name} {rejected}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_labels_are_escaped() {
        let stats = TopicStats {
            published: 3,
            ..TopicStats::default()
        };
        let text = render_pubsub(&[("a\"b\\c\nd".into(), stats)], &[("t".into(), 7)], 2);
        assert!(
            text.contains("foundation_pubsub_published_total{topic=\"a\\\"b\\\\c\\nd\"} 3"),
            "{text}"
        );
        assert!(text.contains("foundation_pubsub_subscriber_lag{topic=\"t\"} 7"));
        assert!(text.contains("foundation_pubsub_frames_rejected_total 2"));
    }
}
