//! Building a node: the Mortal `start()` and the `NodeBuilder`.

use std::net::IpAddr;

use crate::config::{Config, ConfigError, Layer, Profile, Resolved, Resolver, Value};
use crate::discovery::{StaticSeeds, Strategy};
use crate::error::StartError;
use crate::node::{Node, Sockets};

/// Starts a node from the environment, `./foundation.toml` and defaults.
///
/// The Mortal tier: nothing to configure. See [`NodeBuilder`] for the rest.
pub async fn start() -> Result<Node, StartError> {
    NodeBuilder::new().start().await
}

/// Builds a [`Node`]. Builder settings have the highest precedence
/// (builder > env > file > detection > defaults).
///
/// ```
/// use std::time::Duration;
/// use foundation::{NodeBuilder, Profile};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The Apprentice tier: one word names the discovery strategy; any key
/// // of `foundation config explain` can be set by name.
/// let seed = NodeBuilder::isolated()
///     .cluster("static")
///     .name("seed")
///     .profile(Profile::Production)
///     .secret("a-long-random-secret-from-your-vault")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .set("membership.probe_period_ms", "300")
///     .start()
///     .await?;
/// let other = NodeBuilder::isolated()
///     .cluster("static")
///     .name("other")
///     .profile(Profile::Production)
///     .secret("a-long-random-secret-from-your-vault")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .seeds([seed.membership_addr().to_string()])
///     .start()
///     .await?;
/// other.wait_for_members(2, Duration::from_secs(10)).await.map_err(|_| "no join")?;
/// other.shutdown().await;
/// seed.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NodeBuilder {
    resolver: Resolver,
    error: Option<ConfigError>,
    strategy: Option<Box<dyn DebugStrategy>>,
    sockets: Option<Sockets>,
    adjust: Vec<Adjust>,
}

/// A Wizard's change to the resolved configuration ([`NodeBuilder::config`]).
struct Adjust(Box<dyn Fn(&mut Config) + Send + Sync>);

impl std::fmt::Debug for Adjust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adjust")
    }
}

/// A [`Strategy`] that is also `Debug` (blanket-implemented).
pub trait DebugStrategy: Strategy + std::fmt::Debug {}
impl<T: Strategy + std::fmt::Debug> DebugStrategy for T {}

impl Default for NodeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeBuilder {
    /// A builder reading this process's `FOUNDATION_*` variables.
    pub fn new() -> Self {
        NodeBuilder {
            resolver: Resolver::from_process_env(),
            error: None,
            strategy: None,
            sockets: None,
            adjust: Vec::new(),
        }
    }

    /// A builder that ignores the process environment and ./foundation.toml
    /// (tests, and several nodes in one process).
    pub fn isolated() -> Self {
        NodeBuilder {
            resolver: Resolver::new().no_file_detection(),
            error: None,
            strategy: None,
            sockets: None,
            adjust: Vec::new(),
        }
    }

    /// Uses a prepared resolver (the CLI does this).
    pub fn with_resolver(resolver: Resolver) -> Self {
        NodeBuilder {
            resolver,
            error: None,
            strategy: None,
            sockets: None,
            adjust: Vec::new(),
        }
    }

    /// Sets any key from text, as in foundation.toml (`"membership.port"`).
    /// An unknown key or bad value is reported by [`NodeBuilder::start`].
    pub fn set(mut self, key: &str, value: &str) -> Self {
        if let Err(e) = self.resolver.builder_layer().set_str(key, value, "builder") {
            self.error.get_or_insert(e);
        }
        self
    }

    fn layer(&mut self) -> &mut Layer {
        self.resolver.builder_layer()
    }

    /// Discovery strategy by name (`"static"`, ...): the Apprentice word.
    pub fn cluster(self, strategy: &str) -> Self {
        self.set("cluster", strategy)
    }

    /// Static seeds (`host:port` of their membership ports).
    pub fn seeds<I, S>(self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.set("seeds", &joined.join(","))
    }

    /// Cluster secret.
    pub fn secret(self, secret: &str) -> Self {
        self.set("secret", secret)
    }

    /// Cluster name.
    pub fn cluster_name(self, name: &str) -> Self {
        self.set("cluster_name", name)
    }

    /// Node name.
    pub fn name(self, name: &str) -> Self {
        self.set("node.name", name)
    }

    /// Roles.
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles = roles.into_iter().map(Into::into).collect();
        self.layer().set("node.roles", Value::List(roles));
        self
    }

    /// Membership port (0 = any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.layer().set("membership.port", Value::Int(port.into()));
        self
    }

    /// Bind address of both sockets.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.layer().set("transport.bind", Value::Ip(ip));
        self
    }

    /// Profile.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.layer()
            .set("profile", Value::Text(profile.as_str().to_owned()));
        self
    }

    /// Turns the HTTP endpoint on or off.
    pub fn http(mut self, enabled: bool) -> Self {
        self.layer().set("http.enabled", Value::Bool(enabled));
        self
    }

    /// HTTP port (0 = any free port).
    pub fn http_port(mut self, port: u16) -> Self {
        self.layer().set("http.port", Value::Int(port.into()));
        self
    }

    /// Reads this configuration file.
    pub fn config_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.resolver = self.resolver.file(path);
        self
    }

    /// Uses a custom discovery strategy instead of the configured one.
    pub fn discovery(mut self, strategy: impl DebugStrategy) -> Self {
        self.strategy = Some(Box::new(strategy));
        self
    }

    /// Uses these UDP sockets instead of binding the configured ports (a
    /// simulated network; see [`Sockets`]).
    pub fn sockets(mut self, sockets: Sockets) -> Self {
        self.sockets = Some(sockets);
        self
    }

    /// Resolves the configuration without starting (what `config explain` shows).
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut resolved = self.resolver.resolve()?;
        if !self.adjust.is_empty() {
            resolved.change_in_code(|config| {
                for Adjust(f) in &self.adjust {
                    f(config);
                }
            });
            resolved.config.validate()?;
        }
        Ok(resolved)
    }

    /// The Wizard tier: changes the resolved [`Config`] directly (after
    /// every layer has been merged), then validates it again. Start from a
    /// preset with `*c = Config::wan()`, or change single fields.
    ///
    /// ```
    /// use std::time::Duration;
    /// use foundation::config::Source;
    /// use foundation::{Config, NodeBuilder};
    ///
    /// let resolved = NodeBuilder::isolated()
    ///     .config(|c| {
    ///         c.membership = Config::wan().membership; // ~100 ms round trips
    ///         c.registry.sync_interval = Duration::from_secs(1);
    ///     })
    ///     .resolve()?;
    /// assert_eq!(resolved.config.membership.probe_period, Duration::from_secs(1));
    /// // `config explain` says where each value came from.
    /// assert_eq!(resolved.sources["registry.sync_interval_ms"], Source::Code);
    /// assert_eq!(resolved.sources["http.port"], Source::Default);
    ///
    /// // A contradiction is refused with the same errors as the resolver's.
    /// let bad = NodeBuilder::isolated()
    ///     .config(|c| c.membership.probe_rtt = c.membership.probe_period * 2)
    ///     .resolve();
    /// assert!(bad.is_err());
    /// # Ok::<(), foundation::ConfigError>(())
    /// ```
    pub fn config(mut self, f: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.adjust.push(Adjust(Box::new(f)));
        self
    }

    /// Starts the node: binds sockets, starts membership, discovery and
    /// (when enabled) HTTP.
    pub async fn start(self) -> Result<Node, StartError> {
        let resolved = self.resolve()?;
        let strategy: Box<dyn Strategy> = match self.strategy {
            Some(s) => s,
            // The resolver only lets built-in words through; static seeds
            // are the harmless answer should that ever change.
            None => crate::discovery::built_in(&resolved.config).unwrap_or_else(|| {
                Box::new(StaticSeeds::new(resolved.config.cluster.seeds.clone()))
            }),
        };
        let http = resolved.config.http.clone();
        let node = Node::start(resolved, strategy, self.sockets).await?;
        if http.enabled {
            let addr = std::net::SocketAddr::new(http.bind, http.port);
            let serve = crate::http::serve(node.clone(), addr, node.cancel_token());
            match tracing::Instrument::instrument(serve, node.span().clone()).await {
                Ok((bound, task)) => node.attach_http(bound, task),
                Err(e) => {
                    node.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(node)
    }
}
