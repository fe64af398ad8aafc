//! The caches' lines of `/metrics`: size, hit ratio and counters per
//! cache on this node.

use std::fmt::Write as _;

use super::metrics::{header, label};
use crate::cache::CacheInfo;

type Get = fn(&CacheInfo) -> f64;

/// Renders one gauge or counter per cache for each figure.
pub(crate) fn render_caches(caches: &[CacheInfo]) -> String {
    let mut out = String::new();
    if caches.is_empty() {
        return out;
    }
    let figures: [(&str, &str, &str, Get); 7] = [
        (
            "foundation_cache_entries",
            "gauge",
            "Entries this node holds for the cache (as owner or replica).",
            |c| c.entries as f64,
        ),
        (
            "foundation_cache_near_entries",
            "gauge",
            "Entries in this node's near tier of the cache.",
            |c| c.near_entries.unwrap_or(0) as f64,
        ),
        (
            "foundation_cache_hit_ratio",
            "gauge",
            "Hits over gets on this node (0 before the first get).",
            |c| c.hit_rate,
        ),
        (
            "foundation_cache_hits_total",
            "counter",
            "Gets on this node that found a value.",
            |c| c.hits as f64,
        ),
        (
            "foundation_cache_misses_total",
            "counter",
            "Gets on this node that found none.",
            |c| c.misses as f64,
        ),
        (
            "foundation_cache_evictions_total",
            "counter",
            "Entries this node dropped to stay within the cache's bounds.",
            |c| c.evictions as f64,
        ),
        (
            "foundation_cache_remote_calls_total",
            "counter",
            "Requests this node sent to peers for the cache.",
            |c| c.remote_calls as f64,
        ),
    ];
    for (name, kind, help, get) in figures {
        header(&mut out, name, kind, help);
        for c in caches {
            let _ = writeln!(
                out,
                "{name}{{cache=\"{}\",tier=\"{}\"}} {}",
                label(&c.name),
                c.tier,
                get(c)
            );
        }
    }
    out
}
