//! What nodes tell each other about themselves over the telemetry channel
//! (the dashboard's cluster-wide figures).

pub mod report;

pub use report::{CacheReport, ChannelTraffic, Report, ReportError, TopicReport};
