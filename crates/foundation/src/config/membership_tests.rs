//! The `membership.*` keys.

use std::time::Duration;

use super::{env, file};

#[test]
fn port_unreachable_detection_is_on_by_default_and_can_be_turned_off() {
    let r = env(&[]).resolve().expect("resolves");
    assert!(r.config.membership.port_unreachable);
    let f = file("[membership]\nport_unreachable = false\n");
    let r = env(&[]).file(f.path()).resolve().expect("resolves");
    assert!(!r.config.membership.port_unreachable);
    let f = file("[membership]\nport_unreachable = \"maybe\"\n");
    let e = env(&[]).file(f.path()).resolve().expect_err("not a bool");
    assert!(e.to_string().contains("membership.port_unreachable"), "{e}");
}

#[test]
fn the_replay_window_defaults_to_a_minute_and_must_stay_under_the_forget_time() {
    let r = env(&[]).resolve().expect("resolves");
    assert_eq!(r.config.membership.replay_window, Duration::from_secs(60));
    let f = file("[membership]\nreplay_window_ms = 5000\n");
    let r = env(&[]).file(f.path()).resolve().expect("resolves");
    assert_eq!(r.config.membership.replay_window, Duration::from_secs(5));
    for bad in ["999", "300000"] {
        let f = file(&format!("[membership]\nreplay_window_ms = {bad}\n"));
        let e = env(&[]).file(f.path()).resolve().expect_err("out of range");
        let text = e.to_string();
        assert!(text.contains("membership.replay_window_ms"), "{text}");
        assert!(text.contains("1000 to 240000"), "{text}");
    }
}
