//! Supervision options: restart policy and intensity, as in OTP.

use std::time::Duration;

/// When the supervisor restarts an instance that ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Always, unless stopped through its ref, the node, or the registry.
    #[default]
    Permanent,
    /// Only after a failure (error or panic).
    Transient,
    /// Never.
    Temporary,
}

/// At most `max_restarts` restarts within `period`; one more and the
/// supervisor gives up on the service (it stops, with an event and an
/// ERROR log), so a crash loop cannot spin forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            period: Duration::from_secs(5),
        }
    }
}

/// How a service is supervised.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Restart policy.
    pub restart: Restart,
    /// Restart intensity.
    pub intensity: Intensity,
    /// Requests queued before senders wait (local) or are refused as
    /// overloaded (remote).
    pub mailbox: usize,
    /// A label for logs and events.
    pub label: String,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            restart: Restart::Permanent,
            intensity: Intensity::default(),
            mailbox: 1024,
            label: String::new(),
        }
    }
}

impl ServiceOptions {
    /// Options with this label.
    pub fn labelled(label: impl Into<String>) -> Self {
        ServiceOptions {
            label: label.into(),
            ..Default::default()
        }
    }

    /// With this restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// With this intensity.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }
}
