//! The W3C `baggage` header: `key=value` pairs, values percent-encoded.

/// Most baggage entries carried.
pub const MAX_BAGGAGE_ENTRIES: usize = 32;
/// Most bytes of encoded baggage carried.
pub const MAX_BAGGAGE_BYTES: usize = 4096;

/// Encodes `entries` as a `baggage` header value. Entries past the limits
/// and keys that are not tokens are left out (they could not be read
/// back).
pub fn encode(entries: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in entries.iter().take(MAX_BAGGAGE_ENTRIES) {
        if !is_token(k) {
            continue;
        }
        let item = format!("{k}={}", percent_encode(v));
        if out.len() + item.len() + 1 > MAX_BAGGAGE_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&item);
    }
    out
}

/// Decodes a `baggage` header value. Malformed members are skipped (the
/// specification's rule: one bad member does not spoil the rest); input
/// over the limits is cut at them.
pub fn decode(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if value.len() > MAX_BAGGAGE_BYTES * 2 {
        return out;
    }
    for member in value.split(',') {
        if out.len() >= MAX_BAGGAGE_ENTRIES {
            break;
        }
        // Properties after ';' are not kept.
        let pair = member.split(';').next().unwrap_or_default();
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !is_token(k) {
            continue;
        }
        if let Some(v) = percent_decode(v.trim()) {
            out.push((k.to_owned(), v));
        }
    }
    out
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric() || b"-._~!#$&'()*+/:<>?@[]^`{|}".contains(&b);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
