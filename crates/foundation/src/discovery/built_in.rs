//! The built-in strategies by their `cluster.discovery` word: the one
//! place that maps a word to a strategy.

use super::{Dns, Gossip, Mdns, StaticSeeds, Strategy};
use crate::config::{Config, DiscoveryKind};

/// The built-in strategy `config` names, or `None` if this build does not
/// contain it (the resolver only lets built-in words through, so a node
/// never sees `None`).
///
/// ```
/// let config = foundation::Config::default();
/// let strategy = foundation::discovery::built_in(&config).expect("mdns is built in");
/// assert_eq!(strategy.name(), config.cluster.discovery.as_str());
/// ```
pub fn built_in(config: &Config) -> Option<Box<dyn Strategy>> {
    let strategy: Box<dyn Strategy> = match config.cluster.discovery {
        DiscoveryKind::Static => Box::new(StaticSeeds::new(config.cluster.seeds.clone())),
        DiscoveryKind::Mdns => Box::new(Mdns::new()),
        DiscoveryKind::Gossip => Box::new(Gossip::new()),
        DiscoveryKind::Dns => Box::new(Dns::new()),
        #[cfg(feature = "consul")]
        DiscoveryKind::Consul => Box::new(super::Consul::new()),
        #[cfg(feature = "etcd")]
        DiscoveryKind::Etcd => Box::new(super::Etcd::new()),
        #[cfg(feature = "kubernetes")]
        DiscoveryKind::Kubernetes => Box::new(super::Kubernetes::new()),
        // Reached by the strategies a build leaves out (cargo features).
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(strategy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_word_makes_the_strategy_of_that_name() {
        for kind in DiscoveryKind::ALL {
            let mut config = Config::default();
            config.cluster.discovery = kind;
            match built_in(&config) {
                Some(s) => {
                    assert!(kind.is_built_in(), "{kind} made but not built in");
                    assert_eq!(s.name(), kind.as_str());
                }
                None => assert!(!kind.is_built_in(), "{kind} is built in but not made"),
            }
        }
    }
}
