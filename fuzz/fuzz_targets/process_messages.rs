//! Arbitrary process-manager and service messages from a peer: decoded,
//! and every spec they carry checked as the node checks it. Must reject or
//! decode, never panic.
#![no_main]

use foundation_proto::process::manager_wire::ManagerMsg;
use foundation_proto::process::service_wire::ServiceMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ManagerMsg::Specs(entries)) = ManagerMsg::decode(data) {
        for (id, entry) in &entries {
            let _ = entry.check(id);
        }
    }
    let _ = ServiceMsg::decode(data);
});
