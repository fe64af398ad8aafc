//! Arbitrary registry messages from a peer: decoded, then handled by the
//! sans-IO sync protocol against a registry that holds entries, as the
//! node's registry task does. Must reject or apply, never panic.
#![no_main]

use foundation::NodeId;
use foundation_proto::registry::sync::on_message;
use foundation_proto::registry::RegistryMsg;
use foundation_proto::registry::RegistryState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = RegistryMsg::decode(data) else {
        return;
    };
    let mut state = RegistryState::new(NodeId(1));
    let _ = on_message(&mut state, NodeId(2), msg, |n| n.0 < 4);
});
