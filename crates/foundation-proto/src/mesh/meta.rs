//! What a registration says about its service: a version, capabilities
//! and free key-value metadata (the mesh's discovery criteria match them).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Most capabilities one registration may carry.
pub const MAX_CAPABILITIES: usize = 64;
/// Most metadata pairs one registration may carry.
pub const MAX_METADATA: usize = 64;
/// Longest version, capability, metadata key or value, in bytes.
pub const MAX_META_ITEM_LEN: usize = 256;

/// The metadata key a weighted balancer reads the endpoint's weight from.
pub const WEIGHT_KEY: &str = "weight";
/// Highest weight [`ServiceMeta::weight`] returns.
pub const MAX_WEIGHT: u32 = 1000;

/// A service's version, capabilities (tags) and metadata, carried by its
/// registry entry to every node. Immutable for one registration: register
/// again to change it.
///
/// ```
/// use foundation_proto::mesh::ServiceMeta;
///
/// let meta = ServiceMeta::new()
///     .version("1.4.2")
///     .capability("gpu")
///     .with("zone", "eu-west-1a");
/// assert!(meta.validate().is_ok());
/// assert!(meta.has_capability("gpu"));
/// assert_eq!(meta.get("zone"), Some("eu-west-1a"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceMeta {
    /// A semantic version (`1.4.2`); criteria with a version requirement
    /// match only services that have one.
    pub version: Option<String>,
    /// Tags such as `gpu` or `eu-west`.
    pub capabilities: BTreeSet<String>,
    /// Free key-value pairs (`weight` sets the weighted balancer's weight).
    pub metadata: BTreeMap<String, String>,
}

/// Why metadata was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The version is not a semantic version.
    #[error("version {version:?} is not a semantic version (major.minor.patch): {reason}")]
    Version {
        /// The version given.
        version: String,
        /// The parser's reason.
        reason: String,
    },
    /// Too many capabilities or metadata pairs, or an item too long.
    #[error("service metadata too large: {0}")]
    TooLarge(&'static str),
}

impl ServiceMeta {
    /// No version, no capabilities, no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a semantic version.
    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.to_owned());
        self
    }

    /// With one more capability.
    pub fn capability(mut self, capability: &str) -> Self {
        self.capabilities.insert(capability.to_owned());
        self
    }

    /// With one more metadata pair.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Whether it has `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.contains(capability)
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The version, parsed; `None` when there is none or it does not parse.
    pub fn semver(&self) -> Option<semver::Version> {
        self.version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok())
    }

    /// The weight for weighted balancing: metadata `weight` as a whole
    /// number from 1 to [`MAX_WEIGHT`], or 1.
    pub fn weight(&self) -> u32 {
        self.get(WEIGHT_KEY)
            .and_then(|w| w.trim().parse::<u32>().ok())
            .map_or(1, |w| w.clamp(1, MAX_WEIGHT))
    }

    /// Checks the bounds and the version's syntax. The registry refuses a
    /// registration, local or from a peer, that fails this.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Err(MetaError::TooLarge("more than 64 capabilities"));
        }
        if self.metadata.len() > MAX_METADATA {
            return Err(MetaError::TooLarge("more than 64 metadata pairs"));
        }
        let items = self
            .version
            .iter()
            .chain(&self.capabilities)
            .chain(self.metadata.iter().flat_map(|(k, v)| [k, v]));
        for item in items {
            if item.len() > MAX_META_ITEM_LEN {
                return Err(MetaError::TooLarge(
                    "a version, capability, key or value longer than 256 bytes",
                ));
            }
        }
        if let Some(v) = &self.version {
            semver::Version::parse(v).map_err(|e| MetaError::Version {
                version: v.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}
