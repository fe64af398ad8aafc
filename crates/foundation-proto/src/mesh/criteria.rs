//! Discovery criteria: which registrations a mesh client may call.

use std::collections::BTreeSet;
use std::fmt;

use crate::registry::{Entry, EntryKind};

/// What a caller asks of a service: its registered name, and optionally a
/// version requirement, capabilities and a role of the hosting node.
///
/// ```
/// use foundation_proto::mesh::{Criteria, ServiceMeta};
/// use foundation_proto::registry::{Entry, EntryKind, ServiceAddr};
/// use foundation_proto::NodeId;
///
/// let criteria = Criteria::name("resize").version("^1.2").unwrap().capability("gpu");
/// let entry = Entry {
///     name: "resize".into(),
///     kind: EntryKind::Group,
///     service: ServiceAddr { node: NodeId(7), local: 1 },
///     protocol: "Resize".into(),
///     registered_at: 0,
///     meta: ServiceMeta::new().version("1.4.0").capability("gpu"),
/// };
/// assert!(criteria.matches(&entry, &[]));
/// let old = Entry { meta: ServiceMeta::new().version("1.1.9").capability("gpu"), ..entry };
/// assert!(!criteria.matches(&old, &[]));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Criteria {
    /// The registered name (a group or a unique name).
    pub name: String,
    /// A semantic-version requirement (`^1.2`, `>=2, <3`); `None` takes any
    /// version or none.
    pub version: Option<semver::VersionReq>,
    /// Capabilities the service must all have.
    pub capabilities: BTreeSet<String>,
    /// A role the hosting node must have.
    pub role: Option<String>,
}

/// A version requirement that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("version requirement {requirement:?} does not parse: {reason}")]
pub struct CriteriaError {
    /// The requirement given.
    pub requirement: String,
    /// The parser's reason.
    pub reason: String,
}

impl Criteria {
    /// Every service registered under `name`.
    pub fn name(name: &str) -> Self {
        Criteria {
            name: name.to_owned(),
            version: None,
            capabilities: BTreeSet::new(),
            role: None,
        }
    }

    /// Only versions meeting `requirement` (Cargo's syntax: `^1.2`,
    /// `~1.4`, `>=2, <3`, `=1.0.1`).
    pub fn version(mut self, requirement: &str) -> Result<Self, CriteriaError> {
        let req = semver::VersionReq::parse(requirement).map_err(|e| CriteriaError {
            requirement: requirement.to_owned(),
            reason: e.to_string(),
        })?;
        self.version = Some(req);
        Ok(self)
    }

    /// Only services with `capability` (all that are asked for).
    pub fn capability(mut self, capability: &str) -> Self {
        self.capabilities.insert(capability.to_owned());
        self
    }

    /// Only services on nodes with `role`.
    pub fn role(mut self, role: &str) -> Self {
        self.role = Some(role.to_owned());
        self
    }

    /// Whether `entry`, hosted on a node with `roles`, meets the criteria.
    /// Pub/sub interest entries never do.
    pub fn matches(&self, entry: &Entry, roles: &[String]) -> bool {
        entry.kind != EntryKind::Interest
            && entry.name == self.name
            && self
                .version
                .as_ref()
                .is_none_or(|req| entry.meta.semver().is_some_and(|v| req.matches(&v)))
            && self.capabilities.is_subset(&entry.meta.capabilities)
            && self.role.as_ref().is_none_or(|r| roles.contains(r))
    }
}

impl fmt::Debug for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Criteria({self})")
    }
}

impl fmt::Display for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(v) = &self.version {
            write!(f, " {v}")?;
        }
        for c in &self.capabilities {
            write!(f, " +{c}")?;
        }
        if let Some(r) = &self.role {
            write!(f, " @{r}")?;
        }
        Ok(())
    }
}
