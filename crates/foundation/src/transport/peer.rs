//! One connection to a peer, with one long-lived stream per channel.

use bytes::Bytes;
use tokio::sync::Mutex;

use super::channel::Channel;

/// A live QUIC connection and its four channel streams.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) conn: quinn::Connection,
    streams: [Mutex<Option<quinn::SendStream>>; 4],
}

impl Peer {
    pub(crate) fn new(conn: quinn::Connection) -> Self {
        Peer {
            conn,
            streams: Default::default(),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Writes one encoded frame on the channel's stream, opening the stream
    /// (with the channel's priority) on first use. Frames on one channel
    /// are written whole and in order.
    pub(crate) async fn send(&self, channel: Channel, mut frame: [Bytes; 2]) -> Result<(), String> {
        let mut guard = self.streams[channel.index()].lock().await;
        if guard.is_none() {
            let stream = self.conn.open_uni().await.map_err(|e| e.to_string())?;
            stream
                .set_priority(channel.priority())
                .map_err(|e| e.to_string())?;
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
