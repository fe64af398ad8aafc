//! The `/health` document.

use serde::{Deserialize, Serialize};

use crate::membership::{Member, MemberState};
use crate::node::Node;

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Joined, every known active member alive.
    Healthy,
    /// Running, but not joined yet or some member is suspect.
    Degraded,
    /// Shutting down.
    Critical,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Check name.
    pub name: String,
    /// Whether it passes.
    pub ok: bool,
    /// Detail.
    pub detail: String,
}

/// The `/health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// healthy, degraded or critical.
    pub status: HealthStatus,
    /// This node.
    pub node: Member,
    /// Members as this node sees them (itself first).
    pub members: Vec<Member>,
    /// The checks behind the status.
    pub checks: Vec<Check>,
}

impl Health {
    /// The health of `node` now.
    pub fn of(node: &Node) -> Health {
        let members = node.members();
        let suspects = members
            .iter()
            .filter(|m| m.state == MemberState::Suspect)
            .count();
        let alive = members
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .count();
        let ready = node.is_ready();
        let stopping = node.raw().transport().endpoint().open_connections() == 0
            && node.raw().membership().is_stopped();
        let mut checks = vec![
            Check {
                name: "joined".into(),
                ok: ready,
                detail: if ready {
                    format!("{alive} alive members")
                } else {
                    "waiting to join a cluster".into()
                },
            },
            Check {
                name: "no_suspects".into(),
                ok: suspects == 0,
                detail: format!("{suspects} suspect members"),
            },
            {
                let (strategy, candidates, errors) = node.discovery();
                Check {
                    name: "discovery".into(),
                    ok: true,
                    detail: format!(
                        "{strategy}: {} candidate(s), {errors} failure(s) (failures keep the last candidates)",
                        candidates.len()
                    ),
                }
            },
            Check {
                name: "membership_running".into(),
                ok: !stopping,
                detail: if stopping {
                    "stopped".into()
                } else {
                    "running".into()
                },
            },
        ];
        if let Some(addrs) = node.development_exposure() {
            let ok = addrs.is_empty();
            checks.push(Check {
                name: "insecure_development_secret".into(),
                ok,
                detail: if ok {
                    "the public development secret, on loopback only".into()
                } else {
                    format!(
                        "the public development secret is in use on {addrs:?}: anyone on that network can join; set FOUNDATION_SECRET"
                    )
                },
            });
        }
        let status = if stopping {
            HealthStatus::Critical
        } else if !ready || suspects > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        Health {
            status,
            node: node.local_member(),
            members,
            checks,
        }
    }
}
