//! Configuration: three tiers (Mortal, Apprentice, Wizard), one resolver.
//!
//! Values come from five layers, highest precedence first:
//! **builder > environment > file > detection > defaults**. [`Resolver`] merges
//! them into one [`Config`] and remembers where every value came from
//! ([`Resolved::sources`]), which is what `foundation config explain` prints.
//!
//! Every key is declared once in [`KEYS`] (its file name, environment
//! variable, kind and documentation); every default lives in [`defaults`].

pub mod defaults;
mod detect;
mod error;
mod explain;
mod keys;
mod layer;
mod resolve;
mod suggest;
mod types;
mod validate;

pub use error::{ConfigError, Contradiction, InvalidValue};
pub use keys::{KeyKind, KeySpec, KEYS};
pub use layer::{Layer, Value};
pub use resolve::{Resolved, Resolver, Source, Tier};
pub(crate) use types::certificate_name;
pub use types::{
    CacheConfig, CacheTier, ChannelsConfig, ClusterConfig, Config, ConsulConfig, CoordConfig,
    CoordStorage, DiscoveryKind, DnsConfig, DnsRecord, EtcdConfig, GossipConfig, HttpConfig,
    KubernetesConfig, MembershipConfig, NodeConfig, Profile, PubSubConfig, RegistryConfig, Secret,
    SeedAddr, TlsConfig, TracingConfig, TransportConfig, CERTIFICATE_NAME_SUFFIX,
};

#[cfg(test)]
mod tests;
