//! A node's report about itself: what the dashboard of any node shows for
//! it (memory, tasks, traffic per channel, topics, instances, caches).
//!
//! Counters are cumulative; whoever shows them computes rates from two
//! reports. Every list is cut to its limit by the sender and checked
//! against it by the receiver, so a report is small (at most about 70 KB)
//! and a peer cannot make another node hold more.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Most topics in a report (the busiest by messages published and received).
pub const MAX_TOPICS: usize = 64;
/// Most managed instances in a report.
pub const MAX_RUNNING: usize = 256;
/// Most caches in a report.
pub const MAX_CACHES: usize = 64;
/// Longest name (topic, instance, cache, tier) in a report, in bytes;
/// longer names are cut on a character boundary.
pub const MAX_NAME: usize = 128;

/// One channel's traffic from this node's side, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTraffic {
    /// Messages sent.
    pub sent_messages: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Messages received.
    pub received_messages: u64,
    /// Bytes received.
    pub received_bytes: u64,
}

/// One pub/sub topic on the reporting node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicReport {
    /// The topic.
    pub name: String,
    /// Messages published on this node.
    pub published: u64,
    /// Items received from other nodes.
    pub received: u64,
    /// Deliveries to this node's subscriptions.
    pub delivered: u64,
    /// Messages lost on this node (see `TopicStats::dropped`).
    pub dropped: u64,
}

/// One cache on the reporting node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// The cache.
    pub name: String,
    /// `local`, `partitioned`, `near` or `replicated`.
    pub tier: String,
    /// Entries the node holds.
    pub entries: u64,
    /// Hits over gets on the node.
    pub hit_rate: f64,
}

/// What a node reports about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The reporting node.
    pub node: NodeId,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Resident memory of its process, where the OS tells.
    pub rss_bytes: Option<u64>,
    /// Tasks alive in its tokio runtime.
    pub tasks: u64,
    /// Traffic per channel, in [`crate::Channel::ALL`]'s order.
    pub traffic: Vec<ChannelTraffic>,
    /// Topics (at most [`MAX_TOPICS`]).
    pub topics: Vec<TopicReport>,
    /// Managed instances running on the node (at most [`MAX_RUNNING`]).
    pub running: Vec<String>,
    /// Whether the node's side has quorum under the split-brain policy.
    pub has_quorum: bool,
    /// Caches (at most [`MAX_CACHES`]).
    pub caches: Vec<CacheReport>,
    /// Whether a list was cut to its limit.
    pub truncated: bool,
}

/// A report that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not a report.
    #[error("telemetry report does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// A list or a name over its limit.
    #[error("telemetry report over its limits: {0}")]
    TooLarge(&'static str),
}

/// `name`, cut to [`MAX_NAME`] bytes on a character boundary.
pub fn short_name(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_owned();
    }
    let mut end = MAX_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

impl Report {
    /// Cuts every list to its limit (marking the report truncated) and
    /// every name to [`MAX_NAME`]. Topics keep the busiest first.
    pub fn bound(&mut self) {
        self.topics
            .sort_by_key(|t| std::cmp::Reverse(t.published.saturating_add(t.received)));
        let over = self.topics.len() > MAX_TOPICS
            || self.running.len() > MAX_RUNNING
            || self.caches.len() > MAX_CACHES
            || self.traffic.len() > crate::Channel::ALL.len();
        self.truncated |= over;
        self.topics.truncate(MAX_TOPICS);
        self.running.truncate(MAX_RUNNING);
        self.caches.truncate(MAX_CACHES);
        self.traffic.truncate(crate::Channel::ALL.len());
        for t in &mut self.topics {
            t.name = short_name(&t.name);
        }
        for r in &mut self.running {
            *r = short_name(r);
        }
        for c in &mut self.caches {
            c.name = short_name(&c.name);
            c.tier = short_name(&c.tier);
        }
    }

    /// The report's bytes (bound it first: [`Report::bound`]).
    pub fn encode(&self) -> Result<Vec<u8>, ReportError> {
        self.check()?;
        Ok(postcard::to_allocvec(self)?)
    }

    /// A report from its bytes, refused if it is over any limit.
    pub fn decode(bytes: &[u8]) -> Result<Report, ReportError> {
        let report: Report = postcard::from_bytes(bytes)?;
        report.check()?;
        Ok(report)
    }

    fn check(&self) -> Result<(), ReportError> {
        let mut names = self
            .topics
            .iter()
            .map(|t| t.name.len())
            .chain(self.running.iter().map(String::len))
            .chain(
                self.caches
                    .iter()
                    .flat_map(|c| [c.name.len(), c.tier.len()]),
            );
        if self.topics.len() > MAX_TOPICS {
            Err(ReportError::TooLarge("topics"))
        } else if self.running.len() > MAX_RUNNING {
            Err(ReportError::TooLarge("running"))
        } else if self.caches.len() > MAX_CACHES {
            Err(ReportError::TooLarge("caches"))
        } else if self.traffic.len() > crate::Channel::ALL.len() {
            Err(ReportError::TooLarge("traffic"))
        } else if names.any(|n| n > MAX_NAME) {
            Err(ReportError::TooLarge("name"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Report {
        Report {
            node: NodeId(7),
            uptime_ms: 1_234,
            rss_bytes: Some(15 << 20),
            tasks: 42,
            traffic: vec![
                ChannelTraffic {
                    sent_messages: 1,
                    sent_bytes: 100,
                    received_messages: 2,
                    received_bytes: 200,
                };
                4
            ],
            topics: vec![TopicReport {
                name: "orders".into(),
                published: 5,
                received: 6,
                delivered: 7,
                dropped: 0,
            }],
            running: vec!["billing".into(), "shard#3".into()],
            has_quorum: true,
            caches: vec![CacheReport {
                name: "sessions".into(),
                tier: "near".into(),
                entries: 10,
                hit_rate: 0.5,
            }],
            truncated: false,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(
            Report::decode(&r.encode().expect("encode")).expect("decode"),
            r
        );
    }

    #[test]
    fn bound_cuts_lists_and_names_and_keeps_the_busiest_topics() {
        let mut r = sample();
        r.topics = (0..MAX_TOPICS as u64 + 10)
            .map(|i| TopicReport {
                name: format!("t{i}"),
                published: i,
                received: 0,
                delivered: 0,
                dropped: 0,
            })
            .collect();
        r.running = vec!["é".repeat(MAX_NAME); MAX_RUNNING + 1];
        r.bound();
        assert!(r.truncated);
        assert_eq!(r.topics.len(), MAX_TOPICS);
        assert_eq!(r.topics[0].name, format!("t{}", MAX_TOPICS + 9));
        assert!(r.topics.iter().all(|t| t.published >= 10));
        assert_eq!(r.running.len(), MAX_RUNNING);
        assert!(r
            .running
            .iter()
            .all(|n| n.len() <= MAX_NAME && n.chars().all(|c| c == 'é')));
        assert!(Report::decode(&r.encode().expect("encode")).is_ok());
    }

    #[test]
    fn the_receiver_refuses_a_report_over_its_limits() {
        let mut r = sample();
        r.running = vec!["x".into(); MAX_RUNNING + 1];
        // Encoded without `bound`, as a hostile peer would.
        let bytes = postcard::to_allocvec(&r).expect("encode");
        assert!(matches!(
            Report::decode(&bytes),
            Err(ReportError::TooLarge("running"))
        ));
        let mut r = sample();
        r.topics[0].name = "x".repeat(MAX_NAME + 1);
        let bytes = postcard::to_allocvec(&r).expect("encode");
        assert!(matches!(
            Report::decode(&bytes),
            Err(ReportError::TooLarge("name"))
        ));
        assert!(r.encode().is_err(), "the sender refuses it too");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Report::decode(&bytes);
        }

        #[test]
        fn cut_reports_decode_or_fail_cleanly(cut in 0usize..200) {
            let bytes = sample().encode().expect("encode");
            let cut = cut.min(bytes.len());
            let decoded = Report::decode(&bytes[..cut]);
            prop_assert_eq!(decoded.is_ok(), cut == bytes.len());
        }
    }
}
