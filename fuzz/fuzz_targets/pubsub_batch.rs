//! Arbitrary pub/sub batch frames from a peer: every item decoded in
//! order, stopping at the first bad one. Must never panic.
#![no_main]

use foundation_proto::pubsub::decode_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (items, _error) = decode_batch(data);
    for item in items {
        assert!(!item.topic.is_empty());
    }
});
