//! Arbitrary configuration text: a clear error or a layer, never a panic.
#![no_main]

use std::path::Path;

use foundation::config::Layer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Layer::from_toml(text, Path::new("fuzz.toml"));
    if let Some((k, v)) = text.split_once('=') {
        let _ = Layer::from_env([(k, v)]);
    }
});
