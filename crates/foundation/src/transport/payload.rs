//! A payload shared by several sends, compressed at most once.

use std::sync::OnceLock;

use bytes::Bytes;

use super::frame;

/// A payload and, once a connection that negotiated LZ4 asked for it, its
/// compressed form. A broadcast builds one and hands it to every peer, so
/// the payload is compressed once per message, not once per peer.
#[derive(Debug)]
pub(crate) struct Payload {
    bytes: Bytes,
    lz4: OnceLock<Option<Bytes>>,
}

impl Payload {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Payload {
            bytes,
            lz4: OnceLock::new(),
        }
    }

    /// The payload as given.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The LZ4 form if it saves enough (see [`frame::compress`]).
    pub(crate) fn compressed(&self) -> Option<&Bytes> {
        self.lz4
            .get_or_init(|| frame::compress(&self.bytes))
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_once_and_only_when_it_pays() {
        let p = Payload::new(Bytes::from(vec![7u8; 50_000]));
        let first = p.compressed().expect("compressible").as_ptr();
        assert_eq!(p.compressed().expect("memoized").as_ptr(), first);
        let noise = foundation_proto::frame::noise(50_000);
        assert!(Payload::new(Bytes::from(noise)).compressed().is_none());
    }
}
