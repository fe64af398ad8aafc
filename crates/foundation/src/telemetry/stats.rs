//! The counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use foundation_proto::Channel;

use super::traffic::MembershipTraffic;

/// Why a membership datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Could not be opened with our key: another cluster, or tampered.
    Unauthenticated,
    /// Opened, but foca rejected its content.
    Malformed,
    /// Too short to carry a nonce and tag.
    Truncated,
    /// Sealed outside the replay window of this node's clock: replayed, or
    /// the sender's clock is off.
    Stale,
    /// Seen before within the replay window.
    Replayed,
}

impl DropReason {
    /// All reasons.
    pub const ALL: [DropReason; 5] = [
        DropReason::Unauthenticated,
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::Stale,
        DropReason::Replayed,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::Malformed => "malformed",
            DropReason::Truncated => "truncated",
            DropReason::Stale => "stale",
            DropReason::Replayed => "replayed",
        }
    }
}

/// A node's counters. All methods are cheap (relaxed atomics).
#[derive(Debug, Default)]
pub struct Stats {
    sent_messages: [AtomicU64; 4],
    sent_bytes: [AtomicU64; 4],
    received_messages: [AtomicU64; 4],
    received_bytes: [AtomicU64; 4],
    frame_errors: AtomicU64,
    unrouted: AtomicU64,
    spoofed: AtomicU64,
    non_member: AtomicU64,
    handshakes_failed: AtomicU64,
    handshakes_retried: AtomicU64,
    connections_opened: AtomicU64,
    connect_failures: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    discovery_dropped: AtomicU64,
    membership_health: AtomicU64,
    member_events: [AtomicU64; MemberEventKind::ALL.len()],
    rejoins: AtomicU64,
    membership_traffic: MembershipTraffic,
    /// The runtime's busy time at the previous `/metrics` scrape.
    pub(crate) busy_sample: std::sync::Mutex<Option<(std::time::Instant, std::time::Duration)>>,
}

/// The kinds of member events a node counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEventKind {
    /// A member came up (joined, or refuted a suspicion).
    Up,
    /// A member is suspected.
    Suspect,
    /// A member was declared down.
    Down,
    /// A member left gracefully.
    Left,
}

impl MemberEventKind {
    /// Every kind, in label order.
    pub const ALL: [MemberEventKind; 4] = [
        MemberEventKind::Up,
        MemberEventKind::Suspect,
        MemberEventKind::Down,
        MemberEventKind::Left,
    ];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberEventKind::Up => "up",
            MemberEventKind::Suspect => "suspect",
            MemberEventKind::Down => "down",
            MemberEventKind::Left => "left",
        }
    }
}

impl Stats {
    /// Counts a frame sent.
    pub fn sent(&self, channel: Channel, bytes: usize) {
        let i = channel.index();
        self.sent_messages[i].fetch_add(1, Relaxed);
        self.sent_bytes[i].fetch_add(bytes as u64, Relaxed);
        metrics::counter!("foundation_messages_sent_total", "channel" => channel.as_str())
            .increment(1);
        metrics::counter!("foundation_bytes_sent_total", "channel" => channel.as_str())
            .increment(bytes as u64);
    }

    /// Counts a frame received.
    pub fn received(&self, channel: Channel, bytes: usize) {
        let i = channel.index();
        self.received_messages[i].fetch_add(1, Relaxed);
        self.received_bytes[i].fetch_add(bytes as u64, Relaxed);
        metrics::counter!("foundation_messages_received_total", "channel" => channel.as_str())
            .increment(1);
        metrics::counter!("foundation_bytes_received_total", "channel" => channel.as_str())
            .increment(bytes as u64);
    }

    /// Counts a rejected frame.
    pub fn frame_error(&self) {
        self.frame_errors.fetch_add(1, Relaxed);
        metrics::counter!("foundation_frame_errors_total").increment(1);
    }

    /// Counts a frame no inbox wanted.
    pub fn unrouted(&self) {
        self.unrouted.fetch_add(1, Relaxed);
        metrics::counter!("foundation_frames_unrouted_total").increment(1);
    }

    /// Counts a frame dropped because it claimed another sender than its
    /// connection's.
    pub fn spoofed_sender(&self) {
        self.spoofed.fetch_add(1, Relaxed);
        metrics::counter!("foundation_frames_spoofed_sender_total").increment(1);
    }

    /// Counts a frame dropped because its sender is not a member.
    pub fn non_member(&self) {
        self.non_member.fetch_add(1, Relaxed);
        metrics::counter!("foundation_frames_from_non_members_total").increment(1);
    }

    /// Counts an incoming handshake that failed or timed out.
    pub fn handshake_failed(&self) {
        self.handshakes_failed.fetch_add(1, Relaxed);
        metrics::counter!("foundation_handshakes_failed_total").increment(1);
    }

    /// Counts an incoming handshake answered with a QUIC Retry.
    pub fn handshake_retried(&self) {
        self.handshakes_retried.fetch_add(1, Relaxed);
        metrics::counter!("foundation_handshakes_retried_total").increment(1);
    }

    /// Counts a connection established.
    pub fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Relaxed);
        metrics::counter!("foundation_connections_opened_total").increment(1);
    }

    /// Counts a failed connection attempt.
    pub fn connect_failed(&self) {
        self.connect_failures.fetch_add(1, Relaxed);
        metrics::counter!("foundation_connect_failures_total").increment(1);
    }

    /// Counts a dropped membership datagram.
    pub fn datagram_dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
        metrics::counter!("foundation_membership_datagrams_dropped_total", "reason" => reason.as_str())
            .increment(1);
    }

    /// Counts a discovery message (beacon, record) rejected as forged or malformed.
    pub fn discovery_dropped(&self) {
        self.discovery_dropped.fetch_add(1, Relaxed);
        metrics::counter!("foundation_discovery_messages_dropped_total").increment(1);
    }

    /// Records this node's membership health score (0 = healthy).
    pub fn set_membership_health(&self, score: u32) {
        self.membership_health.store(u64::from(score), Relaxed);
    }

    /// Counts a member event this node saw.
    pub fn member_event(&self, kind: MemberEventKind) {
        self.member_events[kind as usize].fetch_add(1, Relaxed);
    }

    /// Member events of `kind` this node saw.
    pub fn member_events(&self, kind: MemberEventKind) -> u64 {
        self.member_events[kind as usize].load(Relaxed)
    }

    /// Records how many times this node was declared down by the cluster
    /// and rejoined under a new generation.
    pub fn set_rejoins(&self, n: u64) {
        self.rejoins.store(n, Relaxed);
    }

    /// Times this node rejoined after being declared down.
    pub fn rejoins(&self) -> u64 {
        self.rejoins.load(Relaxed)
    }

    /// This node's membership health score (0 = healthy; see
    /// `foundation_proto::membership::lifeguard`).
    pub fn membership_health(&self) -> u64 {
        self.membership_health.load(Relaxed)
    }

    /// Discovery messages rejected.
    pub fn discovery_messages_dropped(&self) -> u64 {
        self.discovery_dropped.load(Relaxed)
    }

    /// Messages sent on a channel.
    pub fn sent_messages(&self, channel: Channel) -> u64 {
        self.sent_messages[channel.index()].load(Relaxed)
    }
    /// Bytes sent on a channel.
    pub fn sent_bytes(&self, channel: Channel) -> u64 {
        self.sent_bytes[channel.index()].load(Relaxed)
    }
    /// Messages received on a channel.
    pub fn received_messages(&self, channel: Channel) -> u64 {
        self.received_messages[channel.index()].load(Relaxed)
    }
    /// Bytes received on a channel.
    pub fn received_bytes(&self, channel: Channel) -> u64 {
        self.received_bytes[channel.index()].load(Relaxed)
    }
    /// Rejected frames.
    pub fn frame_errors(&self) -> u64 {
        self.frame_errors.load(Relaxed)
    }
    /// Frames no inbox wanted.
    pub fn unrouted_frames(&self) -> u64 {
        self.unrouted.load(Relaxed)
    }
    /// Frames dropped for claiming another sender than their connection's.
    pub fn spoofed_senders(&self) -> u64 {
        self.spoofed.load(Relaxed)
    }
    /// Frames dropped because their sender is not a member.
    pub fn non_member_frames(&self) -> u64 {
        self.non_member.load(Relaxed)
    }
    /// Incoming handshakes that failed or timed out.
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed.load(Relaxed)
    }
    /// Incoming handshakes answered with a QUIC Retry.
    pub fn handshakes_retried(&self) -> u64 {
        self.handshakes_retried.load(Relaxed)
    }
    /// Connections established.
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Relaxed)
    }
    /// Failed connection attempts.
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Relaxed)
    }
    /// What the membership protocol sent and received.
    pub fn membership_traffic(&self) -> &MembershipTraffic {
        &self.membership_traffic
    }
    /// Membership datagrams dropped for a reason.
    pub fn datagrams_dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Relaxed)
    }
}
