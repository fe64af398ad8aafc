//! The registry facade: `node.registry()`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::event::RegistryEvent;
use super::shared::RegistryShared;
use super::RegisterError;
use super::{Entry, EntryKind};
use crate::id::NodeId;
use crate::services::{Host, Service, ServiceRef};
use foundation_proto::mesh::ServiceMeta;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is taken or invalid.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// Only the node hosting a service can register it (entries are owned
    /// by their host node).
    #[error("service {0} runs on another node; register it there")]
    NotLocal(super::ServiceAddr),
    /// The service is not running.
    #[error("service {0} is not running")]
    NotRunning(super::ServiceAddr),
    /// `register_sync` timed out before these members applied the entry.
    /// The entry stays registered and will reach them by anti-entropy.
    #[error("registration of {name:?} not confirmed within {after:?} by {missing:?}")]
    SyncTimeout {
        /// The name.
        name: String,
        /// The timeout.
        after: Duration,
        /// Members that had not confirmed.
        missing: Vec<NodeId>,
    },
    /// The name is held by a service of another type.
    #[error("{name:?} is held by a service speaking {found}, not {expected}")]
    Protocol {
        /// The name.
        name: String,
        /// The type asked for.
        expected: &'static str,
        /// The holder's type.
        found: String,
    },
}

/// The cluster-wide registry of named services (ADR 007).
///
/// Entries are owned by the node hosting the service: they go away when
/// the service stops or the node leaves or is declared down. Changes are
/// pushed to every member at once and repaired by anti-entropy.
///
/// ```
/// use std::time::Duration;
/// use foundation::process::{Context, Service, ServiceError, ServiceOptions};
///
/// struct Echo;
/// impl Service for Echo {
///     type Request = String;
///     type Reply = String;
///     type State = ();
///     async fn handle(&mut self, _: &mut Context, s: String) -> Result<String, ServiceError> {
///         Ok(s)
///     }
/// }
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = foundation::NodeBuilder::isolated()
///     .cluster("static")
///     .secret("doc-example-secret-0123456789")
///     .bind("127.0.0.1".parse()?)
///     .port(0)
///     .start()
///     .await?;
/// let echo = node.services().spawn(|| Echo, ServiceOptions::default());
/// // Unique names: one service per name in the cluster. `register_sync`
/// // returns once every member has applied it.
/// node.registry().register_sync("echo", &echo, Duration::from_secs(5)).await?;
/// // Any node looks it up by name and protocol, and calls it.
/// let found = node.registry().lookup::<Echo>("echo")?.ok_or("not found")?;
/// assert_eq!(found.call("hi".into(), Duration::from_secs(5)).await?, "hi");
/// // Groups: many services under one name.
/// node.registry().join("echoes", &echo)?;
/// assert_eq!(node.registry().members_of::<Echo>("echoes").len(), 1);
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Registry {
    pub(crate) shared: Arc<RegistryShared>,
    pub(crate) host: Arc<Host>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every entry with its owner, as this node sees them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistrySnapshot {
    /// This node.
    pub node: NodeId,
    /// Each owner's version.
    pub versions: Vec<(NodeId, u64)>,
    /// Every entry.
    pub entries: Vec<Entry>,
}

impl Registry {
    fn entry<S: Service>(
        &self,
        kind: EntryKind,
        name: &str,
        service: &ServiceRef<S>,
        meta: ServiceMeta,
    ) -> Result<Entry, RegistryError> {
        let addr = service.addr();
        if addr.node != self.shared.messenger.id() {
            return Err(RegistryError::NotLocal(addr));
        }
        Ok(Entry {
            name: name.to_owned(),
            kind,
            service: addr,
            protocol: std::any::type_name::<S>().to_owned(),
            registered_at: now_ms(),
            meta,
        })
    }

    /// Puts a local change into the state and pushes it; the new local
    /// version and the peers it went to.
    fn change(&self, entry: Entry, ack: bool) -> Result<Option<(u64, Vec<NodeId>)>, RegistryError> {
        let _ = self.host.spans().decision("register", || {
            vec![
                ("foundation.name", entry.name.clone()),
                ("foundation.service", entry.service.to_string()),
            ]
        });
        let local = entry.service.local;
        let delta = {
            let mut st = self.shared.state();
            // Checked under the state lock: a service that ends takes its
            // entries out under the same lock (see `Host::exited`).
            if !self.host.is_running(local) {
                return Err(RegistryError::NotRunning(entry.service));
            }
            st.register(entry)?
        };
        Ok(delta.map(|d| {
            let v = d.version;
            (v, self.shared.publish(d, ack))
        }))
    }

    /// Registers a local service under a unique name. Returns at once; the
    /// entry reaches the other members within a round trip.
    pub fn register<S: Service>(
        &self,
        name: &str,
        service: &ServiceRef<S>,
    ) -> Result<(), RegistryError> {
        self.register_with(name, service, ServiceMeta::default())
    }

    /// [`Registry::register`] with a version, capabilities and metadata
    /// that the mesh discovers it by. Registering the same service again
    /// with other metadata replaces it.
    pub fn register_with<S: Service>(
        &self,
        name: &str,
        service: &ServiceRef<S>,
        meta: ServiceMeta,
    ) -> Result<(), RegistryError> {
        let e = self.entry(EntryKind::Unique, name, service, meta)?;
        self.change(e, false).map(|_| ())
    }

    /// Registers, then waits until every active member applied the entry:
    /// after `Ok`, a lookup on any of them finds it.
    pub async fn register_sync<S: Service>(
        &self,
        name: &str,
        service: &ServiceRef<S>,
        timeout: Duration,
    ) -> Result<(), RegistryError> {
        let e = self.entry(EntryKind::Unique, name, service, ServiceMeta::default())?;
        let version = match self.change(e, true)? {
            Some((v, _)) => v,
            // Already registered: wait for the current version.
            None => self.shared.state().local_version(),
        };
        let peers = self.shared.messenger.peers();
        self.shared
            .wait_acks(version, &peers, timeout)
            .await
            .map_err(|missing| RegistryError::SyncTimeout {
                name: name.to_owned(),
                after: timeout,
                missing,
            })
    }

    /// Adds a local service to group `group` (any number of members).
    pub fn join<S: Service>(
        &self,
        group: &str,
        service: &ServiceRef<S>,
    ) -> Result<(), RegistryError> {
        self.join_with(group, service, ServiceMeta::default())
    }

    /// [`Registry::join`] with a version, capabilities and metadata that
    /// the mesh discovers it by (`node.mesh()`). Joining again with other
    /// metadata replaces it.
    pub fn join_with<S: Service>(
        &self,
        group: &str,
        service: &ServiceRef<S>,
        meta: ServiceMeta,
    ) -> Result<(), RegistryError> {
        let e = self.entry(EntryKind::Group, group, service, meta)?;
        self.change(e, false).map(|_| ())
    }

    /// Removes a local service from group `group`; whether it was in it.
    pub fn leave<S: Service>(&self, group: &str, service: &ServiceRef<S>) -> bool {
        self.remove(EntryKind::Group, group, service.addr())
    }

    /// Unregisters unique name `name` if a local service holds it; whether
    /// it did.
    pub fn unregister(&self, name: &str) -> bool {
        let me = self.shared.messenger.id();
        let held = self
            .shared
            .state()
            .lookup(name)
            .filter(|e| e.owner() == me)
            .map(|e| e.service);
        held.is_some_and(|addr| self.remove(EntryKind::Unique, name, addr))
    }

    fn remove(&self, kind: EntryKind, name: &str, addr: super::ServiceAddr) -> bool {
        self.shared.remove(kind, name, addr.local)
    }

    /// The service holding unique name `name`, typed. `Ok(None)` if nobody
    /// holds it; an error if its holder speaks another protocol.
    pub fn lookup<S: Service>(&self, name: &str) -> Result<Option<ServiceRef<S>>, RegistryError> {
        let Some(e) = self.whereis(name) else {
            return Ok(None);
        };
        let expected = std::any::type_name::<S>();
        if e.protocol != expected {
            return Err(RegistryError::Protocol {
                name: name.to_owned(),
                expected,
                found: e.protocol,
            });
        }
        Ok(Some(self.host.ref_for(e.service)))
    }

    /// The entry holding unique name `name`, untyped.
    pub fn whereis(&self, name: &str) -> Option<Entry> {
        self.shared.state().lookup(name).cloned()
    }

    /// The members of group `group` that speak `S`.
    pub fn members_of<S: Service>(&self, group: &str) -> Vec<ServiceRef<S>> {
        let expected = std::any::type_name::<S>();
        let addrs: Vec<_> = self
            .shared
            .state()
            .members_of(group)
            .into_iter()
            .filter(|e| e.protocol == expected)
            .map(|e| e.service)
            .collect();
        addrs.into_iter().map(|a| self.host.ref_for(a)).collect()
    }

    /// Every entry and every owner's version, as this node holds them.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let st = self.shared.state();
        RegistrySnapshot {
            node: st.local(),
            versions: st.digest(),
            entries: st.entries().cloned().collect(),
        }
    }

    /// Registry events (name conflicts) from now on.
    pub fn events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared.events.subscribe()
    }

    /// A counter bumped on every change to this node's view; wait on it
    /// instead of polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }
}
