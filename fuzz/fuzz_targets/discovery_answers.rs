//! Arbitrary answers to the discovery strategies: a gossip beacon, a
//! Consul health answer, a line of an etcd watch, an mDNS TXT record with
//! its port and addresses. The first byte picks which; each must be
//! rejected with an error or yield candidates, never panic.
#![no_main]

use foundation::discovery::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => drop(fuzzing::gossip_beacon(rest)),
        1 => drop(fuzzing::consul_answer(rest)),
        2 => drop(fuzzing::etcd_watch_line(rest)),
        _ => drop(fuzzing::mdns_answer(rest)),
    }
});
