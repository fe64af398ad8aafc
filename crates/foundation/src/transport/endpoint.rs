//! The QUIC endpoint: accepting, connecting on demand, sending.

use crate::locks::Locked as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{SendError, SendFailure, TransportError};
use super::frame::{self, FrameDecoder, FrameError};
use super::inbox::{Inbox, InboxFilter, Router};
use super::payload::Payload;
use super::peer::{Peer, ALPN_LZ4, ALPN_PLAIN};
use super::reader::{read_stream, Receiving};
use super::senders::{Members, Senders};
use crate::id::NodeId;
use crate::security::TlsIdentity;
use crate::telemetry::Stats;
use crate::throttle::{Rate, Throttle};
use foundation_proto::context::WireContext;
use foundation_proto::Channel;

/// Settings the transport needs (from [`crate::config::TransportConfig`]).
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Address to bind.
    pub bind: SocketAddr,
    /// Largest frame.
    pub max_frame_size: usize,
    /// Per-stream receive window in bytes.
    pub stream_window: u32,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive.
    pub keep_alive: Duration,
    /// Handshake timeout.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Messages per inbox.
    pub inbox_capacity: usize,
    /// Fault injection (tests): blocked peers.
    pub faults: crate::faults::Faults,
    /// Offer LZ4 compression to peers.
    pub compression: bool,
    /// Data-channel payloads above this many bytes are compressed when
    /// the connection negotiated it.
    pub compress_above: usize,
    /// Every channel on one stream: the head-of-line baseline of
    /// `foundation bench hol`, never for production.
    pub single_stream: bool,
}

#[derive(Debug, Default)]
struct SlotState {
    peer: Option<Arc<Peer>>,
    failures: u32,
    retry_at: Option<Instant>,
}

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

#[derive(Debug)]
struct Inner {
    endpoint: quinn::Endpoint,
    local: NodeId,
    server_name: String,
    settings: TransportSettings,
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    router: Router,
    /// Which sender each connection speaks for.
    senders: Senders,
    /// Active members: frames from others are dropped (set by the node).
    members: std::sync::OnceLock<Arc<dyn Members>>,
    /// Incoming handshakes per second (Retry above the limit).
    handshakes: Rate,
    /// Warnings about refused connections (one per period).
    refusals: Throttle,
    /// Warnings about dropped frames and bad streams (one per period).
    stream_warnings: Throttle,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// The span of the node this transport belongs to (current when it
    /// was made): its tasks' events carry the node's id.
    span: tracing::Span,
    /// Whether the endpoint runs on a kernel socket this transport bound
    /// (`bind`), whose port shutdown must release; a socket handed to
    /// `with_socket` belongs to the caller.
    kernel_socket: std::sync::atomic::AtomicBool,
}

/// The QUIC transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

/// Unvalidated handshakes a second above which clients must answer a
/// QUIC Retry first (a cluster's reconnect storm stays well below).
pub(crate) const RETRY_ABOVE: u32 = 64;
/// One warning per period about refused connections (the counter has
/// them all: `foundation_handshakes_failed_total`).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Streams a peer may open at once: three channels and the data lanes
/// (11), with room to spare.
const MAX_UNI_STREAMS: u32 = 16;

/// Connection-wide send buffer for a given per-stream window. A stream can
/// never have more bytes buffered at the sender than the peer's credit (its
/// stream window), so a send window larger than all streams' windows
/// together always leaves room for control: a saturated data stream cannot
/// block control writes (head-of-line blocking in the send buffer).
/// Measured: a 1 MB send window with 1 MiB streams raised the loaded control
/// round trip from 0.5 ms to 12-32 ms.
pub(crate) fn send_window(stream_window: u32) -> u64 {
    (u64::from(MAX_UNI_STREAMS) + 1) * u64::from(stream_window)
}

/// Connection-level receive window: bounds what one peer can make us buffer.
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Byte budget of one inbox: four maximum frames or 64 MiB, whichever is more.
fn inbox_bytes(max_frame: usize) -> usize {
    (4 * max_frame).max(64 << 20).min(u32::MAX as usize >> 1)
}

impl Transport {
    /// Binds the endpoint and starts accepting connections.
    pub fn bind(
        settings: TransportSettings,
        tls: &TlsIdentity,
        local: NodeId,
        stats: Arc<Stats>,
    ) -> Result<Transport, TransportError> {
        let socket = std::net::UdpSocket::bind(settings.bind).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                TransportError::PortInUse {
                    addr: settings.bind,
                }
            } else {
                TransportError::Bind {
                    addr: settings.bind,
                    message: e.to_string(),
                }
            }
        })?;
        let runtime = quinn::default_runtime().ok_or_else(|| TransportError::Bind {
            addr: settings.bind,
            message: "no async runtime (call from within tokio)".into(),
        })?;
        let socket = runtime
            .wrap_udp_socket(socket)
            .map_err(|e| TransportError::Bind {
                addr: settings.bind,
                message: e.to_string(),
            })?;
        let transport = Self::with_socket(settings, tls, local, stats, socket, runtime, None)?;
        transport
            .inner
            .kernel_socket
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(transport)
    }

    /// Starts the transport on a socket the caller provides: a simulated
    /// network's (foundation-testkit runs it under turmoil this way) or any
    /// other [`quinn::AsyncUdpSocket`]. `rng_seed` seeds quinn's own
    /// randomness (connection ids, tokens) for reproducible simulations;
    /// `settings.bind` is only used in error messages.
    pub fn with_socket(
        settings: TransportSettings,
        tls: &TlsIdentity,
        local: NodeId,
        stats: Arc<Stats>,
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        runtime: Arc<dyn quinn::Runtime>,
        rng_seed: Option<[u8; 32]>,
    ) -> Result<Transport, TransportError> {
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(quinn::IdleTimeout::try_from(settings.idle_timeout).ok())
            .keep_alive_interval(Some(settings.keep_alive))
            .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
            .stream_receive_window(settings.stream_window.into())
            .send_window(send_window(settings.stream_window))
            .max_concurrent_bidi_streams(0u32.into())
            .receive_window(CONNECTION_WINDOW.into());
        let transport = Arc::new(transport);
        let alpn: &[&[u8]] = if settings.compression {
            &[ALPN_LZ4, ALPN_PLAIN]
        } else {
            &[ALPN_PLAIN]
        };
        let mut server = tls.quic_server(alpn)?;
        server.transport_config(transport.clone());
        let mut client = tls.quic_client(alpn)?;
        client.transport_config(transport);

        let mut config = quinn::EndpointConfig::default();
        config.rng_seed(rng_seed);
        let mut endpoint =
            quinn::Endpoint::new_with_abstract_socket(config, Some(server), socket, runtime)
                .map_err(|e| TransportError::Bind {
                    addr: settings.bind,
                    message: e.to_string(),
                })?;
        endpoint.set_default_client_config(client);

        let inner = Arc::new(Inner {
            endpoint,
            local,
            server_name: tls.server_name().to_owned(),
            senders: Senders::default(),
            members: std::sync::OnceLock::new(),
            handshakes: Rate::new(RETRY_ABOVE),
            refusals: Throttle::new(WARN_EVERY),
            stream_warnings: Throttle::new(WARN_EVERY),
            router: Router::new(
                settings.inbox_capacity,
                inbox_bytes(settings.max_frame_size),
            ),
            settings,
            slots: Mutex::new(HashMap::new()),
            stats,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            span: tracing::Span::current(),
            kernel_socket: std::sync::atomic::AtomicBool::new(false),
        });
        let accept = inner.clone();
        inner.spawn(async move { accept.accept_loop().await });
        Ok(Transport { inner })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .endpoint
            .local_addr()
            .unwrap_or(self.inner.settings.bind)
    }

    /// The quinn endpoint underneath (leaky by design).
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.inner.endpoint
    }

    /// From now on, accepts frames only from senders `members` knows as
    /// active members (waiting up to `senders::MEMBER_WAIT` for one it
    /// does not know yet). Set once; later calls are ignored.
    pub(crate) fn accept_members_only(&self, members: Arc<dyn Members>) {
        let _ = self.inner.members.set(members);
    }

    /// A new inbox for messages matching `filter`.
    pub fn subscribe(&self, filter: InboxFilter) -> Inbox {
        self.inner.router.subscribe(filter)
    }

    /// Sends `payload` of `kind` to the node at `addr` on `channel`,
    /// connecting first if needed. Returns once the frame is handed to QUIC
    /// (written to the stream's send buffer), not once it is received.
    pub async fn send(
        &self,
        addr: SocketAddr,
        channel: Channel,
        kind: u16,
        headers: Vec<(String, String)>,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let payload = Payload::new(payload);
        self.send_on(addr, channel, 0, kind, (&headers, None), &payload)
            .await
    }

    /// [`Transport::send`] on lane `lane` of the data channel (ignored on
    /// other channels), with a payload shared across sends, text headers
    /// and a request context.
    pub(crate) async fn send_on(
        &self,
        addr: SocketAddr,
        channel: Channel,
        lane: u8,
        kind: u16,
        meta: (&[(String, String)], Option<&WireContext>),
        payload: &Payload,
    ) -> Result<(), SendError> {
        // A send that finds room at once never waits: give other tasks
        // their turn now and then, as tokio's own resources do, so a
        // sending loop cannot starve the runtime (measured: a tight loop of
        // compressible 1 MiB sends held a single-threaded runtime for
        // 30 ms at a time).
        tokio::task::coop::consume_budget().await;
        let inner = &self.inner;
        let fail = |reason| Err(SendError::new(addr, channel, reason, payload.joined()));
        if inner.settings.faults.drops_to(addr) {
            // Lost on the (simulated) wire, as a partition would.
            return Ok(());
        }
        if inner.cancel.is_cancelled() {
            return fail(SendFailure::ShuttingDown);
        }
        // The caller may be an application task outside the node's span:
        // what connecting logs still names the node.
        let connecting = tracing::Instrument::instrument(inner.connect(addr), inner.span.clone());
        let peer = match connecting.await {
            Ok(p) => p,
            Err(reason) => return fail(reason),
        };
        let wants_lz4 = peer.compress
            && channel == Channel::Data
            && payload.len() > inner.settings.compress_above;
        let (lead, rest) = payload.pieces();
        // Compress only what is asked (data frames above the threshold, to
        // peers that negotiated it): `compressed()` costs a pass, or a
        // sample of a large payload, the first time.
        let packed = if wants_lz4 {
            payload.compressed()
        } else {
            None
        };
        let (lead, body) = match packed {
            Some(packed) => (&[][..], (frame::Codec::Lz4, packed)),
            None => (&lead[..], (frame::Codec::Plain, rest)),
        };
        let parts = match frame::encode_parts_led(
            channel,
            kind,
            inner.local,
            meta,
            lead,
            body,
            inner.settings.max_frame_size,
        ) {
            Ok(parts) => parts,
            Err(FrameError::Oversized { len, max }) => {
                return fail(SendFailure::TooLarge { len, max })
            }
            Err(e) => return fail(SendFailure::Stream(e.to_string())),
        };
        let len = parts[0].len() + parts[1].len();
        match peer.send(channel, lane, parts).await {
            Ok(()) => {
                inner.stats.sent(channel, len);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(%addr, %channel, error = %e, "send failed");
                fail(SendFailure::Stream(e))
            }
        }
    }

    /// Forgets a peer (after it left or went down): closes its connection
    /// and clears its backoff state.
    pub fn forget(&self, addr: SocketAddr) {
        let slot = self.inner.lock_slots().remove(&addr);
        if let Some(slot) = slot {
            if let Ok(state) = slot.try_lock() {
                if let Some(peer) = &state.peer {
                    peer.conn.close(0u32.into(), b"forgotten");
                }
            }
        }
    }

    /// Number of live peer connections.
    pub fn connected_peers(&self) -> usize {
        self.inner
            .lock_slots()
            .values()
            .filter(|s| {
                s.try_lock()
                    .map(|st| st.peer.as_ref().is_some_and(|p| p.is_alive()))
                    .unwrap_or(true)
            })
            .count()
    }

    /// The live connection to `addr`, connecting if needed (tests write
    /// raw bytes on it).
    #[cfg(test)]
    pub(crate) async fn connection(
        &self,
        addr: SocketAddr,
    ) -> Result<quinn::Connection, SendFailure> {
        Ok(self.inner.connect(addr).await?.conn.clone())
    }

    /// Waits, at most `within`, until every peer has acknowledged what was
    /// written to it. A graceful shutdown calls it before leaving: closing
    /// the endpoint (or the peer closing its side on our leave notice)
    /// discards data still in flight, which lost the tail of 5,000
    /// just-broadcast messages in about one run in six under test load.
    /// Returns whether everything was acknowledged in time.
    pub async fn drain(&self, within: Duration) -> bool {
        let slots: Vec<Slot> = self.inner.lock_slots().values().cloned().collect();
        let mut peers = Vec::new();
        for slot in slots {
            if let Some(p) = slot.lock().await.peer.clone().filter(|p| p.is_alive()) {
                peers.push(p);
            }
        }
        let all = futures_util::future::join_all(peers.iter().map(|p| p.drain()));
        tokio::time::timeout(within, all).await.is_ok()
    }

    /// Closes every connection and stops every task.
    pub async fn shutdown(&self) {
        let bound = self.local_addr();
        self.inner.cancel.cancel();
        self.inner.endpoint.close(0u32.into(), b"shutdown");
        self.inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.endpoint.wait_idle()).await;
        self.inner.tasks.wait().await;
        // Connection handles keep a reference to the socket: drop them.
        self.inner.lock_slots().clear();
        self.inner.router.close();
        if !self
            .inner
            .kernel_socket
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        // quinn keeps its UDP socket until every `Endpoint` handle is dropped,
        // and handles to this one live on in `Node` clones. Moving the closed
        // endpoint to a throwaway socket frees the configured port, so a node
        // can be restarted on it in the same process. quinn parks the
        // replaced socket until its driver runs again, and connection tasks
        // hold it until they process the rebind; a second rebind drops the
        // parked original, then we give those tasks up to ~100 ms to let go.
        for _ in 0..2 {
            match std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)) {
                Ok(spare) => {
                    if let Err(e) = self.inner.endpoint.rebind(spare) {
                        tracing::debug!(error = %e, "could not release the QUIC socket");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "no spare socket to release the QUIC port"),
            }
        }
        for _ in 0..100 {
            if std::net::UdpSocket::bind(bound).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tracing::debug!(%bound, "QUIC port still held after shutdown");
    }
}

impl Inner {
    /// Runs `fut` as one of the transport's tasks, in the node's span.
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks
            .spawn(tracing::Instrument::instrument(fut, self.span.clone()));
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.slots.locked()
    }

    async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                _ = self.cancel.cancelled() => return,
                i = self.endpoint.accept() => match i {
                    Some(i) => i,
                    None => return,
                },
            };
            // A flood of handshakes from spoofed addresses costs a Retry
            // packet each, not a TLS handshake: above the rate, a client
            // must prove it receives at its address first.
            if !incoming.remote_address_validated()
                && self.handshakes.busy(std::time::Instant::now())
            {
                self.stats.handshake_retried();
                let _ = incoming.retry();
                continue;
            }
            let me = self.clone();
            self.spawn(async move {
                let addr = incoming.remote_address();
                // Bounded by the idle timeout, not the connect timeout: the
                // client may already count the connection as up (it wrote
                // frames) while our side still waits for its last
                // handshake packet. Dropping the handshake here at the
                // connect timeout closed such connections and lost what
                // the client had written: under turmoil with 5% loss, a
                // whole batch of messages from one node to another.
                let handshake = tokio::time::timeout(me.settings.idle_timeout, async {
                    incoming
                        .accept()
                        .map_err(|e| e.to_string())?
                        .await
                        .map_err(|e| e.to_string())
                });
                let why = match handshake.await {
                    Ok(Ok(conn)) => {
                        tracing::debug!(%addr, "accepted connection");
                        return me.serve(addr, conn).await;
                    }
                    Ok(Err(e)) => format!("TLS or QUIC handshake failed: {e}"),
                    Err(_) => "handshake timed out".to_owned(),
                };
                me.stats.handshake_failed();
                if let Some(suppressed) = me.refusals.admit(std::time::Instant::now()) {
                    tracing::warn!(%addr, reason = %why, suppressed, "refused connection");
                }
            });
        }
    }

    /// Serves a connection we did not open ourselves in `connect` (accepted,
    /// or completed after the connect timeout): reads its streams until it
    /// ends, and uses it for our own sends if we have no other.
    async fn serve(self: &Arc<Self>, addr: SocketAddr, conn: quinn::Connection) {
        self.stats.connection_opened();
        let peer = Arc::new(Peer::new(conn, self.settings.single_stream));
        self.adopt(addr, &peer).await;
        self.drive(peer, addr).await;
    }

    /// Uses an accepted connection for our own sends if we have none.
    async fn adopt(&self, addr: SocketAddr, peer: &Arc<Peer>) {
        let slot = self.lock_slots().entry(addr).or_default().clone();
        let mut st = slot.lock().await;
        if !st.peer.as_ref().is_some_and(|p| p.is_alive()) {
            st.peer = Some(peer.clone());
            st.failures = 0;
            st.retry_at = None;
        }
    }

    /// Accepts the peer's streams until the connection ends.
    async fn drive(self: &Arc<Self>, peer: Arc<Peer>, addr: SocketAddr) {
        self.accept_streams(&peer, addr).await;
        self.senders.release(&peer.speaker);
    }

    async fn accept_streams(self: &Arc<Self>, peer: &Arc<Peer>, addr: SocketAddr) {
        loop {
            let recv = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = peer.conn.accept_uni() => match r {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(%addr, reason = %e, "connection closed");
                        return;
                    }
                },
            };
            let (me, peer) = (self.clone(), peer.clone());
            self.spawn(async move {
                let decoder = FrameDecoder::new(me.settings.max_frame_size);
                let rx = Receiving {
                    router: &me.router,
                    stats: &me.stats,
                    settings: &me.settings,
                    senders: &me.senders,
                    members: &me.members,
                    warnings: &me.stream_warnings,
                };
                tokio::select! {
                    _ = me.cancel.cancelled() => {}
                    _ = read_stream(recv, addr, decoder, &peer.speaker, rx) => {}
                }
            });
        }
    }

    /// A handshake that outlived the connect timeout keeps going, up to the
    /// idle timeout, instead of being closed: the peer may already count
    /// the connection as up (its side of the handshake completed) and be
    /// writing on it. Closing it lost those frames (turmoil, 10% loss: a
    /// node's whole batch to another). If it completes, its streams are
    /// read, and it carries our sends if we have no other connection.
    fn finish_handshake_later(
        self: &Arc<Self>,
        addr: SocketAddr,
        connecting: std::pin::Pin<Box<quinn::Connecting>>,
    ) {
        let me = self.clone();
        self.spawn(async move {
            let late = tokio::select! {
                _ = me.cancel.cancelled() => return,
                r = tokio::time::timeout(me.settings.idle_timeout, connecting) => r,
            };
            if let Ok(Ok(conn)) = late {
                tracing::debug!(%addr, "connected after the connect timeout");
                me.serve(addr, conn).await;
            }
        });
    }

    async fn connect(self: &Arc<Self>, addr: SocketAddr) -> Result<Arc<Peer>, SendFailure> {
        let slot = self.lock_slots().entry(addr).or_default().clone();
        let mut st = slot.lock().await;
        if let Some(peer) = &st.peer {
            if peer.is_alive() {
                return Ok(peer.clone());
            }
            st.peer = None;
        }
        let now = Instant::now();
        if let Some(at) = st.retry_at {
            if now < at {
                return Err(SendFailure::Backoff { retry_in: at - now });
            }
        }
        let result = match self.endpoint.connect(addr, &self.server_name) {
            Err(e) => Err(e.to_string()),
            Ok(connecting) => {
                let mut connecting = Box::pin(connecting);
                let waited = tokio::select! {
                    _ = self.cancel.cancelled() => return Err(SendFailure::ShuttingDown),
                    r = tokio::time::timeout(self.settings.connect_timeout, &mut connecting) => r,
                };
                match waited {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => {
                        self.finish_handshake_later(addr, connecting);
                        Err("handshake timed out".to_owned())
                    }
                }
            }
        };
        match result {
            Ok(conn) => {
                self.stats.connection_opened();
                tracing::debug!(%addr, "connected");
                let peer = Arc::new(Peer::new(conn, self.settings.single_stream));
                st.peer = Some(peer.clone());
                st.failures = 0;
                st.retry_at = None;
                let me = self.clone();
                let driven = peer.clone();
                self.spawn(async move { me.drive(driven, addr).await });
                Ok(peer)
            }
            Err(why) => {
                self.stats.connect_failed();
                st.failures = st.failures.saturating_add(1);
                let delay = backoff(
                    st.failures,
                    self.settings.reconnect_min,
                    self.settings.reconnect_max,
                );
                st.retry_at = Some(Instant::now() + delay);
                tracing::debug!(%addr, error = %why, retry_in = ?delay, "connect failed");
                Err(SendFailure::Connect(why))
            }
        }
    }
}

/// Exponential backoff: `min * 2^(failures-1)`, capped at `max`.
pub(crate) fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << exp).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_always_leaves_room_for_control() {
        for w in [16 * 1024, 256 * 1024, 1 << 20, 64 << 20] {
            assert!(send_window(w) > u64::from(MAX_UNI_STREAMS) * u64::from(w));
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(backoff(1, min, max), min);
        assert_eq!(backoff(2, min, max), Duration::from_millis(200));
        assert_eq!(backoff(4, min, max), Duration::from_millis(800));
        assert_eq!(backoff(5, min, max), max);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }
}
