//! Pub/sub frames: batches of (topic, body) items.
//!
//! A frame of kind [`KIND_BATCH`] carries one or more items back to back,
//! each `postcard(Item)`. A broadcast encodes its item once; every peer's
//! queue shares those bytes, and a peer's sender concatenates what is
//! queued into one frame. Decoding borrows topic and body from the frame.
//!
//! An item with an empty topic is no message: its body (a [`WireContext`]
//! in its binary form, postcard) is the request context of the item
//! that follows it. Untraced messages carry none and pay nothing.

use std::borrow::Cow;
use std::ops::RangeInclusive;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::context::WireContext;
use crate::registry::MAX_NAME_LEN;

/// Message kinds reserved for pub/sub (`crate::kinds::PUBSUB`).
pub const KINDS: RangeInclusive<u16> = crate::kinds::PUBSUB;
/// A batch of published items.
pub const KIND_BATCH: u16 = *KINDS.start();

/// One published message as it travels.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item<'a> {
    /// The topic.
    #[serde(borrow)]
    pub topic: Cow<'a, str>,
    /// The message, postcard-encoded by the publisher.
    #[serde(borrow)]
    pub body: Cow<'a, [u8]>,
    /// The publisher's request context (from the context item before it).
    #[serde(skip)]
    pub context: Option<WireContext>,
}

/// Why a pub/sub frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a sequence of items.
    #[error("malformed pub/sub item at byte {at}: {why}")]
    Malformed {
        /// Offset of the bad item.
        at: usize,
        /// The decoder's reason.
        why: String,
    },
    /// An item with an empty or too long topic.
    #[error("pub/sub item with an invalid topic ({len} bytes)")]
    Topic {
        /// The topic's length.
        len: usize,
    },
}

/// Appends `n` as a postcard varint (LEB128); returns its length.
fn varint(n: usize, out: &mut [u8; 10]) -> usize {
    let mut n = n as u64;
    let mut i = 0;
    loop {
        let byte = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Encodes one item with `msg` serialized straight into it: the bytes of
/// `postcard(Item)`, and where the body starts. One allocation: the body
/// is serialized after room for its length, and the (short) topic header
/// is moved up against it.
pub fn encode_item_of<T: Serialize + ?Sized>(
    topic: &str,
    msg: &T,
) -> Result<(Bytes, usize), postcard::Error> {
    let mut head = [0u8; 10];
    let n = varint(topic.len(), &mut head);
    let prefix = n + topic.len();
    let mut buf = Vec::with_capacity(prefix + 10 + 120);
    buf.extend_from_slice(&[0u8; 10]);
    buf.extend_from_slice(&head[..n]);
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(&[0u8; 10]);
    let mut buf = postcard::to_extend(msg, buf)?;
    let body_at = 10 + prefix + 10;
    let body_len = buf.len() - body_at;
    let mut len = [0u8; 10];
    let m = varint(body_len, &mut len);
    buf[body_at - m..body_at].copy_from_slice(&len[..m]);
    // Close the gap: move the topic header up against the body length.
    let start = body_at - m - prefix;
    buf.copy_within(10..10 + prefix, start);
    let item = Bytes::from(buf).slice(start..);
    let body = item.len() - body_len;
    Ok((item, body))
}

/// Encodes one item whose message is raw bytes (`postcard(Bytes)`: the
/// length, then the bytes) without copying them: the item is `head` then
/// `msg` itself, and the body starts at the returned offset of `head`.
/// The joined bytes equal [`encode_item_of`]`(topic, msg)`.
pub fn encode_bytes_item(topic: &str, msg: &Bytes) -> (Bytes, usize) {
    let (mut t, mut raw, mut body) = ([0u8; 10], [0u8; 10], [0u8; 10]);
    let n = varint(topic.len(), &mut t);
    let t = &t[..n];
    let n = varint(msg.len(), &mut raw);
    let raw = &raw[..n];
    let n = varint(raw.len() + msg.len(), &mut body);
    let body = &body[..n];
    let mut head = Vec::with_capacity(t.len() + topic.len() + body.len() + raw.len());
    head.extend_from_slice(t);
    head.extend_from_slice(topic.as_bytes());
    head.extend_from_slice(body);
    let body_at = head.len();
    head.extend_from_slice(raw);
    (Bytes::from(head), body_at)
}

/// Encodes one item from an already serialized body.
#[cfg(test)]
pub fn encode_item(topic: &str, body: &[u8]) -> Bytes {
    let item = Item {
        topic: Cow::Borrowed(topic),
        body: Cow::Borrowed(body),
        context: None,
    };
    Bytes::from(postcard::to_allocvec(&item).unwrap_or_default())
}

/// The context item that carries `context` for the item after it.
pub fn encode_context_item(context: &WireContext) -> Bytes {
    let binary = postcard::to_allocvec(context).unwrap_or_default();
    let item = Item {
        topic: Cow::Borrowed(""),
        body: Cow::Borrowed(&binary),
        context: None,
    };
    Bytes::from(postcard::to_allocvec(&item).unwrap_or_default())
}

/// Decodes every item of a batch, in order; stops at the first bad one
/// (the items before it are returned).
pub fn decode_batch(mut data: &[u8]) -> (Vec<Item<'_>>, Option<WireError>) {
    let total = data.len();
    let mut items = Vec::new();
    let mut context = None;
    while !data.is_empty() {
        let at = total - data.len();
        match postcard::take_from_bytes::<Item<'_>>(data) {
            Ok((item, rest)) if item.topic.is_empty() => {
                match postcard::from_bytes::<WireContext>(&item.body) {
                    Ok(c) => context = Some(c),
                    Err(e) => {
                        let why = format!("context item: {e}");
                        return (items, Some(WireError::Malformed { at, why }));
                    }
                }
                data = rest;
            }
            Ok((mut item, rest)) => {
                let len = item.topic.len();
                if len > MAX_NAME_LEN {
                    return (items, Some(WireError::Topic { len }));
                }
                item.context = context.take();
                items.push(item);
                data = rest;
            }
            Err(e) => {
                return (
                    items,
                    Some(WireError::Malformed {
                        at,
                        why: e.to_string(),
                    }),
                )
            }
        }
    }
    (items, None)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn items_encoded_in_place_match_postcard() {
        let long = "x".repeat(200);
        for (topic, msg) in [("a", vec![1u8, 2, 3]), (long.as_str(), vec![7u8; 300])] {
            let body = postcard::to_allocvec(&msg).expect("body");
            let (item, at) = encode_item_of(topic, &msg).expect("item");
            assert_eq!(&item[..], &encode_item(topic, &body)[..]);
            assert_eq!(&item[at..], &body[..]);
        }
    }

    #[test]
    fn a_batch_is_items_back_to_back() {
        let mut batch = encode_item("a", b"one").to_vec();
        batch.extend_from_slice(&encode_item("b/c", b""));
        let (items, err) = decode_batch(&batch);
        assert_eq!(err, None);
        assert_eq!(items.len(), 2);
        assert_eq!((&*items[0].topic, &*items[0].body), ("a", &b"one"[..]));
        assert_eq!((&*items[1].topic, &*items[1].body), ("b/c", &b""[..]));
    }

    #[test]
    fn bad_items_are_reported_and_earlier_ones_kept() {
        let mut batch = encode_item("ok", b"1").to_vec();
        batch.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
        let (items, err) = decode_batch(&batch);
        assert_eq!(items.len(), 1);
        assert!(
            matches!(err, Some(WireError::Malformed { at: 5, .. })),
            "{err:?}"
        );
        // An empty topic marks a context item: one that is no context is
        // malformed.
        let empty = encode_item("", b"x");
        let (items, err) = decode_batch(&empty);
        assert!(items.is_empty());
        assert!(
            matches!(err, Some(WireError::Malformed { at: 0, .. })),
            "{err:?}"
        );
        let long = "t".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            decode_batch(&encode_item(&long, b"")).1,
            Some(WireError::Topic { .. })
        ));
    }

    #[test]
    fn a_context_item_gives_its_context_to_the_next_item_only() {
        let ctx = WireContext {
            trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .ok(),
            tracestate: None,
            deadline: None,
            baggage: vec![("k".into(), "v".into())],
        };
        let mut batch = encode_item("a", b"0").to_vec();
        batch.extend_from_slice(&encode_context_item(&ctx));
        batch.extend_from_slice(&encode_item("b", b"1"));
        batch.extend_from_slice(&encode_item("c", b"2"));
        let (items, err) = decode_batch(&batch);
        assert_eq!(err, None);
        let contexts: Vec<Option<WireContext>> = items.iter().map(|i| i.context.clone()).collect();
        assert_eq!(contexts, [None, Some(ctx), None]);
        // A context item at the end carries nothing further.
        let alone = encode_context_item(&WireContext::default());
        let (items, err) = decode_batch(&alone);
        assert!(items.is_empty() && err.is_none());
    }

    proptest! {
        #[test]
        fn byte_items_without_a_copy_match_postcard(topic in "[a-z/]{1,200}", len in 0usize..70_000) {
            let msg = Bytes::from(vec![0xA5u8; len]);
            let (head, body_at) = encode_bytes_item(&topic, &msg);
            let mut joined = head.to_vec();
            joined.extend_from_slice(&msg);
            let (whole, at) = encode_item_of(&topic, &msg).expect("item");
            prop_assert_eq!(&joined[..], &whole[..]);
            prop_assert_eq!(body_at, at);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (items, _) = decode_batch(&data);
            prop_assert!(items.len() <= data.len());
        }

        #[test]
        fn batches_round_trip(items in proptest::collection::vec(("[a-z/]{1,12}", proptest::collection::vec(any::<u8>(), 0..64)), 0..20)) {
            let mut batch = Vec::new();
            for (t, b) in &items {
                batch.extend_from_slice(&encode_item(t, b));
            }
            let (got, err) = decode_batch(&batch);
            prop_assert_eq!(err, None);
            let got: Vec<(String, Vec<u8>)> = got.into_iter().map(|i| (i.topic.into_owned(), i.body.into_owned())).collect();
            prop_assert_eq!(got, items);
        }
    }
}
