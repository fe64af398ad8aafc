//! Frames: a versioned envelope, postcard-encoded, length-prefixed.
//!
//! Wire format of one frame:
//!
//! ```text
//! +----------------+---------+---------------------------------------------+
//! | length: u32 BE | version | postcard(Head) | varint(n) | n payload bytes |
//! +----------------+---------+---------------------------------------------+
//!                  '----------------- length bytes ----------------------'
//! ```
//!
//! `Head` is the envelope without its payload, plus the payload's codec.
//! The request context travels in the head in binary (ADR 026), beside the
//! free-form text headers.
//! A compressed payload (codec `Lz4`) is `u32 LE original length ++ LZ4
//! block`; the decoder checks the original length against the frame limit
//! before it allocates, so a small frame cannot inflate past the limit.
//!
//! The decoder is sans-IO: it reads from a buffer, checks the length
//! against the limit before buffering the frame (so a peer cannot make it
//! allocate more than the limit), then checks the version, then decodes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::context::WireContext;
use crate::{Channel, NodeId};

pub use crate::PROTOCOL_VERSION;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;
/// Headers a frame may carry.
pub const MAX_HEADERS: usize = 64;
/// Bytes of header names and values a frame may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The channel it was sent on.
    pub channel: Channel,
    /// Message kind, defined by the layer that sends it (registry, pub/sub...).
    pub kind: u16,
    /// The sending node.
    pub from: NodeId,
    /// Free-form text headers (an application's own, or W3C
    /// `traceparent` from a sender that writes text).
    pub headers: Vec<(String, String)>,
    /// The request context (trace position, deadline, baggage), in binary.
    pub context: Option<WireContext>,
    /// The payload.
    pub payload: Bytes,
}

/// How a frame's payload is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// As is.
    Plain,
    /// LZ4 block with its original length in front (u32 LE).
    Lz4,
}

/// Payloads above this are sampled before they are compressed whole.
const SAMPLE: usize = 64 * 1024;

/// Whether LZ4 saves at least 1/8 of `data`.
fn pays(data: &[u8], packed: usize) -> bool {
    packed + 4 <= data.len() - data.len() / 8
}

/// Compresses `payload` with LZ4 if that saves at least 1/8 of it; the
/// result is what goes on the wire with [`Codec::Lz4`]. A large payload
/// whose first 64 KiB do not compress is sent as is without trying the
/// rest (random or already compressed data costs a sample, not a pass).
pub fn compress(payload: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(payload.len()).ok()?;
    if payload.len() > 4 * SAMPLE {
        let sample = &payload[..SAMPLE];
        if !pays(sample, lz4_flex::block::compress(sample).len()) {
            return None;
        }
    }
    let block = lz4_flex::block::compress(payload);
    if !pays(payload, block.len()) {
        return None;
    }
    let mut out = BytesMut::with_capacity(4 + block.len());
    out.put_u32_le(len);
    out.extend_from_slice(&block);
    Some(out.freeze())
}

/// Reverses [`compress`]; refuses an original length above `max`.
pub fn decompress(data: &[u8], max: usize) -> Result<Bytes, FrameError> {
    let bad = |why: String| FrameError::Malformed(format!("lz4 payload: {why}"));
    let (len, block) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("shorter than its length".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    let out = lz4_flex::block::decompress(block, len).map_err(|e| bad(e.to_string()))?;
    if out.len() != len {
        return Err(bad(format!("{} bytes, announced {len}", out.len())));
    }
    Ok(Bytes::from(out))
}

/// Why a frame was rejected. The stream carrying it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds transport.max_frame_size = {max}")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length of zero (no version byte).
    #[error("empty frame")]
    Empty,
    /// Another protocol version.
    #[error("frame version {got}, this node speaks version {PROTOCOL_VERSION}")]
    WrongVersion {
        /// The version found.
        got: u8,
    },
    /// The body is not a valid envelope.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// More headers than [`MAX_HEADERS`], or more than [`MAX_HEADER_BYTES`]
    /// of them.
    #[error("frame headers over the limit ({MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes)")]
    Headers,
    /// A frame whose channel differs from its stream's.
    #[error("frame for channel {frame} arrived on the {stream} stream")]
    WrongChannel {
        /// The frame's channel.
        frame: Channel,
        /// The stream's channel.
        stream: Channel,
    },
}

/// The envelope without its payload, plus the payload's codec. Encoding the
/// head alone lets the payload go out as its own chunk (no copy) and come
/// back as a slice of the received frame (no copy).
#[derive(Serialize)]
struct Head<'a> {
    channel: Channel,
    kind: u16,
    from: NodeId,
    headers: &'a [(String, String)],
    context: Option<&'a WireContext>,
    codec: Codec,
}

/// Text pairs (headers, baggage) as decoded: checked against [`MAX_HEADERS`] and
/// [`MAX_HEADER_BYTES`] while they are read, so a frame of many empty
/// headers (two bytes each on the wire, 48 in memory) is refused before it
/// is allocated.
pub(crate) struct BoundedPairs(pub(crate) Vec<(String, String)>);

/// Whether `headers` fit the limits.
fn headers_fit(headers: &[(String, String)]) -> bool {
    headers.len() <= MAX_HEADERS
        && headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            <= MAX_HEADER_BYTES
}

impl<'de> Deserialize<'de> for BoundedPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bounded;
        impl<'de> serde::de::Visitor<'de> for Bounded {
            type Value = BoundedPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes"
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedPairs, A::Error> {
                let mut out = Vec::new();
                let mut bytes = 0usize;
                while let Some((k, v)) = seq.next_element::<(&'de str, &'de str)>()? {
                    bytes = bytes.saturating_add(k.len() + v.len());
                    if out.len() == MAX_HEADERS || bytes > MAX_HEADER_BYTES {
                        return Err(serde::de::Error::custom("headers over the limit"));
                    }
                    out.push((k.to_owned(), v.to_owned()));
                }
                Ok(BoundedPairs(out))
            }
        }
        d.deserialize_seq(Bounded)
    }
}

/// Encodes one frame as two chunks: prefix + version + head + payload
/// length, then the payload itself (shared, not copied). `payload` is
/// already encoded with `codec`. Fails only when the frame would exceed
/// `max` bytes, or when `headers` are over the limits.
pub fn encode_parts(
    channel: Channel,
    kind: u16,
    from: NodeId,
    headers: &[(String, String)],
    body: (Codec, &Bytes),
    max: usize,
) -> Result<[Bytes; 2], FrameError> {
    encode_parts_led(channel, kind, from, (headers, None), &[], body, max)
}

/// [`encode_parts`] for a payload in two pieces: `lead` (a few bytes,
/// copied into the first chunk) then `payload` (shared, not copied). The
/// receiver sees one payload, `lead` followed by `payload`; `codec` must
/// describe the two together. The frame carries `headers` and `context`.
pub fn encode_parts_led(
    channel: Channel,
    kind: u16,
    from: NodeId,
    (headers, context): (&[(String, String)], Option<&WireContext>),
    lead: &[u8],
    (codec, payload): (Codec, &Bytes),
    max: usize,
) -> Result<[Bytes; 2], FrameError> {
    if !headers_fit(headers) {
        return Err(FrameError::Headers);
    }
    let head = Head {
        channel,
        kind,
        from,
        headers,
        context,
        codec,
    };
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX + 96 + lead.len());
    out.put_u32(0);
    out.put_u8(PROTOCOL_VERSION);
    let writer = (&mut out).writer();
    let writer =
        postcard::to_io(&head, writer).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let payload_len = lead.len() + payload.len();
    postcard::to_io(&payload_len, writer).map_err(|e| FrameError::Malformed(e.to_string()))?;
    out.extend_from_slice(lead);
    let len = out.len() - LENGTH_PREFIX + payload.len();
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    out[..LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok([out.freeze(), payload.clone()])
}

/// Encodes one frame into a single buffer (see [`encode_parts`]).
pub fn encode(envelope: &Envelope, max: usize) -> Result<Bytes, FrameError> {
    let [head, payload] = encode_parts_led(
        envelope.channel,
        envelope.kind,
        envelope.from,
        (&envelope.headers, envelope.context.as_ref()),
        &[],
        (Codec::Plain, &envelope.payload),
        max,
    )?;
    let mut out = BytesMut::with_capacity(head.len() + payload.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&payload);
    Ok(out.freeze())
}

/// Incremental frame decoder with a size limit.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max` bytes (after the prefix).
    pub fn new(max: usize) -> Self {
        FrameDecoder { max }
    }

    /// Checks a length prefix; returns the body length to read.
    pub fn check_len(&self, prefix: [u8; LENGTH_PREFIX]) -> Result<usize, FrameError> {
        let len = u32::from_be_bytes(prefix) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max {
            return Err(FrameError::Oversized { len, max: self.max });
        }
        Ok(len)
    }

    /// Decodes one frame body (version byte + postcard envelope). A plain
    /// payload is a slice of `body`, not a copy; a compressed one is
    /// decompressed (at most `max` bytes).
    pub fn decode_body(&self, body: Bytes) -> Result<Envelope, FrameError> {
        let malformed = |e: postcard::Error| FrameError::Malformed(e.to_string());
        let (&version, rest) = body.split_first().ok_or(FrameError::Empty)?;
        if version != PROTOCOL_VERSION {
            return Err(FrameError::WrongVersion { got: version });
        }
        // The head's fields one after another (postcard writes a struct
        // as its fields in order), so that an error in the headers is
        // told apart.
        let ((channel, kind, from), rest): ((Channel, u16, NodeId), &[u8]) =
            postcard::take_from_bytes(rest).map_err(malformed)?;
        let (BoundedPairs(headers), rest): (BoundedPairs, &[u8]) = postcard::take_from_bytes(rest)
            .map_err(|e| match e {
                postcard::Error::SerdeDeCustom => FrameError::Headers,
                e => malformed(e),
            })?;
        let (context, rest): (Option<WireContext>, &[u8]) =
            postcard::take_from_bytes(rest).map_err(malformed)?;
        let (codec, rest): (Codec, &[u8]) = postcard::take_from_bytes(rest).map_err(malformed)?;
        let (len, rest): (usize, &[u8]) = postcard::take_from_bytes(rest).map_err(malformed)?;
        if rest.len() != len {
            return Err(FrameError::Malformed(format!(
                "payload length {len} but {} bytes follow",
                rest.len()
            )));
        }
        let start = body.len() - len;
        let payload = match codec {
            Codec::Plain => body.slice(start..),
            Codec::Lz4 => decompress(&body[start..], self.max)?,
        };
        Ok(Envelope {
            channel,
            kind,
            from,
            headers,
            context,
            payload,
        })
    }

    /// Takes one whole frame from `buf` if it holds one. `Ok(None)` means
    /// more bytes are needed; the caller must not buffer more than
    /// [`FrameDecoder::max_buffer`] bytes.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        if buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX];
        prefix.copy_from_slice(&buf[..LENGTH_PREFIX]);
        let len = self.check_len(prefix)?;
        if buf.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX);
        let body = buf.split_to(len).freeze();
        self.decode_body(body).map(Some)
    }

    /// Most bytes a caller ever needs to buffer for one frame.
    pub fn max_buffer(&self) -> usize {
        LENGTH_PREFIX + self.max
    }
}

/// Incompressible bytes (xorshift64), for tests of compression.
#[doc(hidden)]
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(payload: &[u8]) -> Envelope {
        Envelope {
            channel: Channel::Events,
            kind: 7,
            from: NodeId(42),
            headers: vec![("app".into(), "value".into())],
            context: Some(WireContext {
                trace: Some(crate::context::TraceParent {
                    trace_id: [7; 16],
                    span_id: [9; 8],
                    flags: 1,
                }),
                tracestate: Some("vendor=x".into()),
                deadline: Some(std::time::Duration::from_micros(1500)),
                baggage: vec![("tenant".into(), "acme, inc".into())],
            }),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn round_trip() {
        let env = sample(b"hello");
        let bytes = encode(&env, 1024).expect("fits");
        let mut buf = BytesMut::from(&bytes[..]);
        let dec = FrameDecoder::new(1024);
        assert_eq!(dec.decode(&mut buf), Ok(Some(env)));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_led_payload_arrives_as_one() {
        let env = sample(b"lead|the rest, shared");
        let rest = env.payload.slice(5..);
        let [head, payload] = encode_parts_led(
            env.channel,
            env.kind,
            env.from,
            (&env.headers, env.context.as_ref()),
            b"lead|",
            (Codec::Plain, &rest),
            1024,
        )
        .expect("fits");
        assert_eq!(payload.as_ptr(), rest.as_ptr(), "the rest is not copied");
        assert_eq!(
            [&head[..], &payload[..]].concat(),
            &encode(&env, 1024).expect("fits")[..]
        );
        let too_small = encode_parts_led(
            env.channel,
            env.kind,
            env.from,
            (&env.headers, env.context.as_ref()),
            b"lead|",
            (Codec::Plain, &rest),
            head.len() + payload.len() - LENGTH_PREFIX - 1,
        );
        assert!(matches!(too_small, Err(FrameError::Oversized { .. })));
    }

    #[test]
    fn compressed_payload_round_trips_and_plain_stays_shared() {
        let env = Envelope {
            context: None,
            ..sample(&b"abcdefgh".repeat(1000))
        };
        let packed = compress(&env.payload).expect("repetitive data compresses");
        assert!(packed.len() < env.payload.len() / 10);
        let [head, payload] = encode_parts(
            env.channel,
            env.kind,
            env.from,
            &env.headers,
            (Codec::Lz4, &packed),
            1 << 20,
        )
        .expect("fits");
        let mut buf = BytesMut::from(&[&head[..], &payload[..]].concat()[..]);
        assert_eq!(FrameDecoder::new(1 << 20).decode(&mut buf), Ok(Some(env)));
        // Random bytes do not compress: sent plain.
        let noise = crate::frame::noise(4096);
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn compressed_payload_cannot_inflate_past_the_limit() {
        let packed = compress(&vec![0u8; 100_000]).expect("zeros compress");
        assert!(matches!(
            decompress(&packed, 50_000),
            Err(FrameError::Oversized {
                len: 100_000,
                max: 50_000
            })
        ));
        // A length that lies is caught.
        let mut lie = packed.to_vec();
        lie[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decompress(&lie, 1 << 20).is_err());
        assert!(decompress(&[1, 2], 1 << 20).is_err());
    }

    #[test]
    fn partial_input_waits_for_more() {
        let bytes = encode(&sample(b"hello"), 1024).expect("fits");
        let dec = FrameDecoder::new(1024);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(dec.decode(&mut buf), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_prefix_is_rejected_before_buffering() {
        let dec = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::Oversized { .. })
        ));
        assert!(encode(&sample(&[0u8; 200]), 100).is_err());
    }

    #[test]
    fn wrong_version_is_rejected() {
        let bytes = encode(&sample(b"x"), 1024).expect("fits");
        let mut raw = bytes.to_vec();
        raw[LENGTH_PREFIX] = 9;
        let mut buf = BytesMut::from(&raw[..]);
        assert_eq!(
            FrameDecoder::new(1024).decode(&mut buf),
            Err(FrameError::WrongVersion { got: 9 })
        );
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let dec = FrameDecoder::new(1024);
        let bytes = encode(&sample(b"x"), 1024).expect("fits");
        let mut body = bytes[LENGTH_PREFIX..].to_vec();
        body.push(0);
        assert!(matches!(
            dec.decode_body(Bytes::from(body)),
            Err(FrameError::Malformed(_))
        ));
    }

    /// A frame body with `headers`, written without [`encode_parts`]'s
    /// check (as a hostile peer would).
    fn body_with(headers: Vec<(String, String)>) -> Bytes {
        let head = Head {
            channel: Channel::Control,
            kind: 1,
            from: NodeId(1),
            headers: &headers,
            context: None,
            codec: Codec::Plain,
        };
        let mut body = vec![PROTOCOL_VERSION];
        body.extend(postcard::to_allocvec(&head).expect("encode"));
        body.extend(postcard::to_allocvec(&0usize).expect("encode"));
        Bytes::from(body)
    }

    #[test]
    fn headers_over_the_limits_are_refused_on_both_sides() {
        let dec = FrameDecoder::new(16 << 20);
        let empty = || (String::new(), String::new());
        let at_limit = vec![empty(); MAX_HEADERS];
        let env = dec
            .decode_body(body_with(at_limit.clone()))
            .expect("at the limit");
        assert_eq!(env.headers, at_limit);

        let one_over = vec![empty(); MAX_HEADERS + 1];
        assert_eq!(
            dec.decode_body(body_with(one_over.clone())),
            Err(FrameError::Headers)
        );
        let p = Bytes::new();
        assert_eq!(
            encode_parts(
                Channel::Control,
                1,
                NodeId(1),
                &one_over,
                (Codec::Plain, &p),
                1 << 20
            )
            .map(|_| ()),
            Err(FrameError::Headers)
        );

        let big = vec![("k".to_owned(), "v".repeat(MAX_HEADER_BYTES))];
        assert_eq!(dec.decode_body(body_with(big)), Err(FrameError::Headers));

        // Four million empty headers: 8 MB on the wire, 192 MB had they
        // been decoded. Refused after the 65th.
        let mut body = vec![PROTOCOL_VERSION];
        body.extend(postcard::to_allocvec(&(Channel::Control, 1u16, NodeId(1))).expect("encode"));
        body.extend(postcard::to_allocvec(&4_000_000usize).expect("encode"));
        body.resize(body.len() + 8_000_000, 0);
        assert_eq!(dec.decode_body(Bytes::from(body)), Err(FrameError::Headers));
    }

    #[test]
    fn a_bad_channel_is_malformed_not_a_header_error() {
        let dec = FrameDecoder::new(1024);
        let mut body = body_with(vec![]).to_vec();
        body[1] = 0x7f; // the channel's variant index
        assert!(matches!(
            dec.decode_body(Bytes::from(body)),
            Err(FrameError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dec = FrameDecoder::new(256);
            let mut buf = BytesMut::from(&data[..]);
            // Drain until error or need-more; must terminate and never panic.
            for _ in 0..64 {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = dec.decode_body(Bytes::from(data.clone()));
            let _ = decompress(&data, 4096);
        }

        #[test]
        fn encode_decode_round_trips(
            kind in any::<u16>(),
            from in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            key in "[a-z]{0,8}",
            value in ".{0,16}",
            ch in 0usize..4,
            trace in proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>())),
            deadline_us in proptest::option::of(any::<u64>()),
            bag in proptest::collection::vec(("[a-z]{1,6}", ".{0,12}"), 0..3),
        ) {
            let trace = trace
                .filter(|(t, s, _)| *t != [0; 16] && *s != [0; 8])
                .map(|(trace_id, span_id, flags)| crate::context::TraceParent { trace_id, span_id, flags });
            let context = WireContext {
                trace,
                tracestate: trace.map(|_| "k=v".to_owned()),
                deadline: deadline_us.map(std::time::Duration::from_micros),
                baggage: bag,
            };
            let env = Envelope {
                channel: Channel::ALL[ch],
                kind,
                from: NodeId(from),
                headers: vec![(key, value)],
                context: (!context.is_empty()).then_some(context),
                payload: Bytes::from(payload),
            };
            let bytes = encode(&env, 4096).expect("fits");
            let mut buf = BytesMut::from(&bytes[..]);
            prop_assert_eq!(FrameDecoder::new(4096).decode(&mut buf), Ok(Some(env)));
        }
    }
}
