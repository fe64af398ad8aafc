//! One way to send a message anywhere: `node.messaging().send(target, msg)`.
//!
//! A target is a [`ServiceRef`] (a cast), a registered name resolved
//! through the registry ([`Name`]), or a pub/sub topic ([`Topic`]). Every
//! error names the target that failed and why.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use serde::Serialize;

use crate::process::{CallError, Service, ServiceRef};
use crate::pubsub::{PubSub, PubSubError, Published};
use crate::registry::{Registry, RegistryError};

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// No service holds the name.
    #[error("send to {target}: no service is registered under that name")]
    NotRegistered {
        /// The target.
        target: String,
    },
    /// The name is held by a service of another type.
    #[error("send to {target}: {source}")]
    Registry {
        /// The target.
        target: String,
        /// The registry's error.
        source: RegistryError,
    },
    /// The service could not take the message.
    #[error("send to {target}: {source}")]
    Service {
        /// The target.
        target: String,
        /// The service's error.
        source: CallError,
    },
    /// The broadcast failed.
    #[error("send to {target}: {source}")]
    Topic {
        /// The target.
        target: String,
        /// The pub/sub error.
        source: PubSubError,
    },
}

/// Where [`Messaging::send`] delivers a message of type `M`.
pub trait Target<M>: fmt::Display {
    /// What a successful send reports.
    type Output;

    /// Delivers `msg` through `via` (its registry and pub/sub).
    fn deliver(
        &self,
        via: &Messaging,
        msg: M,
    ) -> impl Future<Output = Result<Self::Output, MessagingError>> + Send;
}

/// A service registered under a unique name, resolved at each send.
pub struct Name<S> {
    name: String,
    _service: PhantomData<fn() -> S>,
}

impl<S> Name<S> {
    /// The service registered as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Name {
            name: name.into(),
            _service: PhantomData,
        }
    }
}

impl<S> fmt::Display for Name<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name {:?}", self.name)
    }
}

/// A pub/sub topic of messages of type `M`.
pub struct Topic<M> {
    name: String,
    _msg: PhantomData<fn() -> M>,
}

impl<M> Topic<M> {
    /// Topic `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Topic {
            name: name.into(),
            _msg: PhantomData,
        }
    }
}

impl<M> fmt::Display for Topic<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic {:?}", self.name)
    }
}

impl<S: Service> Target<S::Request> for ServiceRef<S> {
    type Output = ();

    async fn deliver(&self, _: &Messaging, msg: S::Request) -> Result<(), MessagingError> {
        self.cast(msg)
            .await
            .map_err(|source| MessagingError::Service {
                target: self.to_string(),
                source,
            })
    }
}

impl<S: Service> Target<S::Request> for Name<S> {
    type Output = ();

    async fn deliver(&self, via: &Messaging, msg: S::Request) -> Result<(), MessagingError> {
        let target = || self.to_string();
        let service = via
            .registry
            .lookup::<S>(&self.name)
            .map_err(|source| MessagingError::Registry {
                target: target(),
                source,
            })?
            .ok_or_else(|| MessagingError::NotRegistered { target: target() })?;
        service
            .cast(msg)
            .await
            .map_err(|source| MessagingError::Service {
                target: target(),
                source,
            })
    }
}

impl<M: Serialize + Send + Sync + 'static> Target<M> for Topic<M> {
    type Output = Published;

    async fn deliver(&self, via: &Messaging, msg: M) -> Result<Published, MessagingError> {
        via.pubsub
            .broadcast(&self.name, msg)
            .await
            .map_err(|source| MessagingError::Topic {
                target: self.to_string(),
                source,
            })
    }
}

/// The messaging facade: `node.messaging()`.
///
/// ```
/// use foundation::messaging::{Name, Topic};
/// use foundation::process::{Context, Service, ServiceError, ServiceOptions};
///
/// struct Log;
/// impl Service for Log {
///     type Request = String;
///     type Reply = ();
///     type State = ();
///     async fn handle(&mut self, _: &mut Context, _: String) -> Result<(), ServiceError> {
///         Ok(())
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
/// let log = node.services().spawn(|| Log, ServiceOptions::default());
/// node.registry().register("log", &log)?;
/// let m = node.messaging();
/// // One `send` for a service ref, a registered name or a topic.
/// m.send(&log, "to the ref".to_owned()).await?;
/// m.send(&Name::<Log>::new("log"), "to the name".to_owned()).await?;
/// let published = m.send(&Topic::<String>::new("news"), "to a topic".to_owned()).await?;
/// assert_eq!(published.nodes, 0);
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Messaging {
    pub(crate) registry: Registry,
    pub(crate) pubsub: PubSub,
}

impl Messaging {
    /// The registry names are looked up in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The pub/sub topics are published through.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Sends `msg` to `target`: a [`ServiceRef`], a [`Name`] or a
    /// [`Topic`]. At most once; returns once the message is handed on
    /// (mailbox, QUIC, or the peers' queues), not once it is handled.
    pub async fn send<M, T: Target<M>>(
        &self,
        target: &T,
        msg: M,
    ) -> Result<T::Output, MessagingError> {
        target.deliver(self, msg).await
    }
}
