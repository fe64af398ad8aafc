//! Arbitrary bytes on a stream: the frame decoder must reject or decode,
//! never panic, never buffer past its limit. The same bytes as a
//! telemetry report's body (the dashboard's peer reports): a report
//! within its limits or an error.
#![no_main]

use bytes::{Bytes, BytesMut};
use foundation::transport::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(4096);
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    let _ = decoder.decode_body(Bytes::copy_from_slice(data));
    if let Ok(report) = foundation_proto::telemetry::Report::decode(data) {
        assert!(report.running.len() <= foundation_proto::telemetry::report::MAX_RUNNING);
    }
});
