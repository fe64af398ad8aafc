//! A payload shared by several sends, compressed at most once.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};

use super::frame;

/// A payload and, once a connection that negotiated LZ4 asked for it, its
/// compressed form. A broadcast builds one and hands it to every peer, so
/// the payload is compressed once per message, not once per peer.
///
/// A payload may come in two pieces, a short `lead` and the `rest`: a
/// large message goes out behind its few bytes of framing without being
/// copied next to them (the lead is copied into the frame's header chunk;
/// the receiver sees one payload).
#[derive(Debug)]
pub(crate) struct Payload {
    lead: Bytes,
    rest: Bytes,
    lz4: OnceLock<Option<Bytes>>,
}

impl Payload {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Payload::led(Bytes::new(), bytes)
    }

    /// The payload `lead` followed by `rest`, kept apart.
    pub(crate) fn led(lead: Bytes, rest: Bytes) -> Self {
        Payload {
            lead,
            rest,
            lz4: OnceLock::new(),
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.lead.len() + self.rest.len()
    }

    /// The short first piece (often empty) and the rest.
    pub(crate) fn pieces(&self) -> (&Bytes, &Bytes) {
        (&self.lead, &self.rest)
    }

    /// The payload in one piece (a copy only if it is in two).
    pub(crate) fn joined(&self) -> Bytes {
        if self.lead.is_empty() {
            return self.rest.clone();
        }
        let mut out = BytesMut::with_capacity(self.len());
        self.write_to(&mut out);
        out.freeze()
    }

    /// Appends the payload to `out`.
    pub(crate) fn write_to(&self, out: &mut BytesMut) {
        out.extend_from_slice(&self.lead);
        out.extend_from_slice(&self.rest);
    }

    /// The LZ4 form if it saves enough (see [`frame::compress`]).
    pub(crate) fn compressed(&self) -> Option<&Bytes> {
        self.lz4
            .get_or_init(|| frame::compress(&self.joined()))
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

    #[test]
    fn a_payload_in_two_pieces_is_one_payload() {
        let rest = Bytes::from(vec![7u8; 50_000]);
        let p = Payload::led(Bytes::from_static(b"ab"), rest.clone());
        assert_eq!(p.len(), 50_002);
        assert_eq!(p.pieces().1.as_ptr(), rest.as_ptr(), "not copied");
        let joined = p.joined();
        assert_eq!((&joined[..2], joined.len()), (&b"ab"[..], 50_002));
        let mut out = BytesMut::new();
        p.write_to(&mut out);
        assert_eq!(out.freeze(), joined);
        let packed = p.compressed().expect("compressible");
        let back = frame::decompress(packed, 1 << 20).expect("decompresses");
        assert_eq!(back, joined);
        let whole = Payload::new(rest.clone());
        assert_eq!(whole.joined().as_ptr(), rest.as_ptr());
    }
}
