//! One connection to a peer, with one long-lived stream per channel (and
//! per lane of the data channel).

use bytes::Bytes;
use tokio::sync::Mutex;

use foundation_proto::Channel;

use super::senders::Speaker;

/// Streams of the data channel. A data message names a lane (pub/sub uses
/// its topic's hash), frames on one lane stay in order, and QUIC
/// round-robins between lanes of equal priority: a 100 MiB message holds
/// its lane, not the channel.
pub const DATA_LANES: u8 = 8;

/// Streams per connection: control, events, telemetry, then the data lanes.
const STREAMS: usize = 3 + DATA_LANES as usize;

/// ALPN of a connection that may carry LZ4-compressed payloads.
pub(crate) const ALPN_LZ4: &[u8] = b"foundation/2+lz4";
/// ALPN of a connection that carries plain payloads only.
pub(crate) const ALPN_PLAIN: &[u8] = b"foundation/2";

/// A live QUIC connection and its channel streams.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) conn: quinn::Connection,
    /// Both ends offered LZ4 (negotiated by ALPN in the handshake).
    pub(crate) compress: bool,
    /// The sender its frames may name.
    pub(crate) speaker: Speaker,
    single_stream: bool,
    streams: [Mutex<Option<quinn::SendStream>>; STREAMS],
}

/// The stream index of `channel` (and `lane` on data).
fn stream_index(channel: Channel, lane: u8, single_stream: bool) -> usize {
    match channel {
        _ if single_stream => 0,
        Channel::Data => 3 + usize::from(lane % DATA_LANES),
        c => c.index(),
    }
}

impl Peer {
    pub(crate) fn new(conn: quinn::Connection, single_stream: bool) -> Self {
        let compress = conn
            .handshake_data()
            .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|h| h.protocol)
            .is_some_and(|p| p == ALPN_LZ4);
        Peer {
            speaker: Speaker::new(conn.remote_address().ip()),
            conn,
            compress,
            single_stream,
            streams: Default::default(),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Finishes every open stream and waits until the peer has acknowledged
    /// all of its data (later sends open new streams).
    pub(crate) async fn drain(&self) {
        for slot in &self.streams {
            let taken = slot.lock().await.take();
            if let Some(mut stream) = taken {
                if stream.finish().is_ok() {
                    let _ = stream.stopped().await;
                }
            }
        }
    }

    /// Writes one encoded frame on the stream of `channel` (and `lane`),
    /// opening it (with the channel's priority) on first use. Frames on
    /// one stream are written whole and in order.
    pub(crate) async fn send(
        &self,
        channel: Channel,
        lane: u8,
        mut frame: [Bytes; 2],
    ) -> Result<(), String> {
        let index = stream_index(channel, lane, self.single_stream);
        let mut guard = self.streams[index].lock().await;
        if guard.is_none() {
            let stream = self.conn.open_uni().await.map_err(|e| e.to_string())?;
            let priority = if self.single_stream {
                0
            } else {
                channel.priority()
            };
            stream.set_priority(priority).map_err(|e| e.to_string())?;
            *guard = Some(stream);
        }
        let Some(stream) = guard.as_mut() else {
            return Err("stream unavailable".into());
        };
        if let Err(e) = stream.write_all_chunks(&mut frame).await {
            *guard = None;
            return Err(e.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_and_lane_has_its_own_stream() {
        let mut seen = std::collections::HashSet::new();
        for c in [Channel::Control, Channel::Events, Channel::Telemetry] {
            assert!(seen.insert(stream_index(c, 0, false)));
        }
        for lane in 0..DATA_LANES {
            assert!(seen.insert(stream_index(Channel::Data, lane, false)));
        }
        assert_eq!(seen.len(), STREAMS);
        assert!(seen.iter().all(|&i| i < STREAMS));
        assert_eq!(stream_index(Channel::Data, DATA_LANES + 1, false), 4);
        for c in Channel::ALL {
            assert_eq!(stream_index(c, 5, true), 0);
        }
    }
}
