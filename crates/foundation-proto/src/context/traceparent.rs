//! The W3C `traceparent` header: version, trace id, parent span id, flags.

use std::fmt;

/// Why a `traceparent` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Not `version-traceid-spanid-flags` with 2, 32, 16 and 2 hex digits.
    #[error("traceparent is not version-traceid-spanid-flags in lower-case hex")]
    Format,
    /// Version `ff` is forbidden by the specification.
    #[error("traceparent version ff is invalid")]
    Version,
    /// An all-zero trace or span id.
    #[error("traceparent has an all-zero trace id or span id")]
    ZeroId,
}

/// A span's place in a distributed trace (W3C Trace Context, level 1).
///
/// ```
/// use foundation_proto::context::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let child = tp.child([1, 2, 3, 4, 5, 6, 7, 8]);
/// assert_eq!(child.trace_id, tp.trace_id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The whole trace's id.
    pub trace_id: [u8; 16],
    /// The span this one descends from (the sender's span).
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Whether the trace is sampled (recorded and exported).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The same trace with `span_id` as the parent: what a span passes on
    /// to the work it starts.
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        TraceParent { span_id, ..*self }
    }

    /// The trace id as 32 hex digits.
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 hex digits.
    pub fn span_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// Lower-case hex of `bytes` (a table, not the formatting machinery: it
/// runs for every traced request).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Result<[u8; N], TraceParentError> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return Err(TraceParentError::Format);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceParentError::Format),
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Ok(out)
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;

    /// Parses version 00, and later versions by their first four fields
    /// as the specification asks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut parts = s.split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError::Format);
        };
        let [version] = unhex::<1>(version)?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if version == 0 && parts.next().is_some() {
            return Err(TraceParentError::Format);
        }
        let trace_id = unhex::<16>(trace)?;
        let span_id = unhex::<8>(span)?;
        let [flags] = unhex::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceParentError::ZeroId);
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

impl TraceParent {
    /// The header value (`00-<trace>-<span>-<flags>`), built without the
    /// formatting machinery.
    pub fn header(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        s.push_str(&hex(&self.trace_id));
        s.push('-');
        s.push_str(&hex(&self.span_id));
        s.push('-');
        s.push_str(&hex(&[self.flags]));
        s
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}
