//! Sealing of membership datagrams with ChaCha20-Poly1305 (ring).
//!
//! ```text
//! +---------+------------+---------------------------------------------------+
//! | version | nonce (12) | ChaCha20-Poly1305(kind | sent (8) | body) + tag    |
//! +---------+------------+---------------------------------------------------+
//! ```
//!
//! The key derives from the cluster secret and cluster name, so datagrams of
//! another cluster or a tampered datagram fail to open and are dropped.
//! `sent` is the sealing time in ms since the Unix epoch (little-endian):
//! with the nonce it lets [`Sealer::open_fresh`] refuse replays
//! ([`super::freshness`]).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use super::freshness::{Freshness, Refused};

/// Datagram format version (authenticated as associated data). Version 2
/// added the sealing time; version 3 carries slim SWIM identities and the
/// Who and Profile kinds (ADR 024). Nodes of different versions do not
/// talk.
pub const SEAL_VERSION: u8 = 3;

/// Bytes of the sealing time.
const SENT: usize = 8;

/// Bytes a sealed datagram adds to its plaintext (the kind byte aside).
pub const OVERHEAD: usize = 1 + NONCE_LEN + SENT + 16;

/// Length of the sealed datagram of a `body_len`-byte body.
pub const fn sealed_len(body_len: usize) -> usize {
    OVERHEAD + 1 + body_len
}

/// What a membership datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DatagramKind {
    /// A foca (SWIM) packet; its identities are
    /// [`SwimId`](super::identity::SwimId)s.
    Swim = 0,
    /// "I am leaving": postcard `NodeId`.
    Leave = 1,
    /// "Please let me join": postcard `MemberId` of the sender.
    Hello = 2,
    /// A Hello that also asks for the full member list: postcard
    /// `MemberId` of the sender, answered with [`DatagramKind::State`].
    Pull = 3,
    /// Part of a member list: postcard `Vec<(MemberId, Incarnation)>`,
    /// alive members with their metadata.
    State = 4,
    /// A summary of the sender's member view, answered with
    /// [`DatagramKind::State`] or another digest when views differ.
    Digest = 5,
    /// "You are suspected": postcard `(foca::Member<SwimId>, SwimId)`,
    /// the suspicion and who sends it. The suspect refutes at once and
    /// answers the sender (Lifeguard's buddy system).
    Suspicion = 6,
    /// "Who are you?": postcard `MemberId` of the sender, sent to a member
    /// heard of without its metadata; answered with a Profile.
    Who = 7,
    /// "This is me": postcard `MemberId` of the sender.
    Profile = 8,
}

impl DatagramKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(DatagramKind::Swim),
            1 => Some(DatagramKind::Leave),
            2 => Some(DatagramKind::Hello),
            3 => Some(DatagramKind::Pull),
            4 => Some(DatagramKind::State),
            5 => Some(DatagramKind::Digest),
            6 => Some(DatagramKind::Suspicion),
            7 => Some(DatagramKind::Who),
            8 => Some(DatagramKind::Profile),
            _ => None,
        }
    }
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than the sealing overhead.
    #[error("datagram too short")]
    Truncated,
    /// Wrong key (another cluster), tampered, or another version.
    #[error("datagram failed authentication")]
    Unauthenticated,
    /// Authenticated but of an unknown kind.
    #[error("datagram of unknown kind")]
    UnknownKind,
    /// Authenticated but not fresh: replayed, or sealed outside the window
    /// of this node's clock.
    #[error("datagram refused: {0}")]
    Refused(#[from] Refused),
}

/// An opened datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What it carries.
    pub kind: DatagramKind,
    /// When it was sealed (ms since the Unix epoch, the sender's clock).
    pub sent_ms: u64,
    /// Its nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Its plaintext body.
    pub body: &'a [u8],
}

/// Seals and opens datagrams with the cluster's membership key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
            .unwrap_or_else(|_| unreachable!("32-byte key"));
        Sealer {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `body` of `kind`, sealed at `sent_ms` (ms since the Unix
    /// epoch). `nonce` must be unique per key (the shell draws 96 random
    /// bits per datagram).
    pub fn seal(
        &self,
        kind: DatagramKind,
        body: &[u8],
        nonce: [u8; NONCE_LEN],
        sent_ms: u64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(OVERHEAD + 1 + body.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        let mut plain = Vec::with_capacity(1 + SENT + body.len() + 16);
        plain.push(kind as u8);
        plain.extend_from_slice(&sent_ms.to_le_bytes());
        plain.extend_from_slice(body);
        // Sealing fails only for inputs beyond ~256 GiB.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([SEAL_VERSION]),
            &mut plain,
        );
        out.extend_from_slice(&plain);
        out
    }

    /// Opens a datagram and checks that it is fresh (sealed within the
    /// window of `now_ms`, not seen before); returns its kind and body.
    /// What the shell calls.
    pub fn open_fresh<'a>(
        &self,
        datagram: &'a mut [u8],
        freshness: &mut Freshness,
        now_ms: u64,
    ) -> Result<(DatagramKind, &'a [u8]), OpenError> {
        let opened = self.open(datagram)?;
        freshness.check(opened.sent_ms, opened.nonce, now_ms)?;
        Ok((opened.kind, opened.body))
    }

    /// Opens a datagram (authenticity only; [`Sealer::open_fresh`] also
    /// refuses replays).
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        if datagram.len() < OVERHEAD + 1 {
            return Err(OpenError::Truncated);
        }
        let (head, sealed) = datagram.split_at_mut(1 + NONCE_LEN);
        if head[0] != SEAL_VERSION {
            return Err(OpenError::Unauthenticated);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[1..]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([SEAL_VERSION]),
                sealed,
            )
            .map_err(|_| OpenError::Unauthenticated)?;
        let (&kind, rest) = plain.split_first().ok_or(OpenError::Truncated)?;
        let kind = DatagramKind::from_u8(kind).ok_or(OpenError::UnknownKind)?;
        let (sent, body) = rest
            .split_first_chunk::<SENT>()
            .ok_or(OpenError::Truncated)?;
        Ok(Opened {
            kind,
            sent_ms: u64::from_le_bytes(*sent),
            nonce,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn round_trip_and_foreign_key_rejected() {
        let a = Sealer::new(&[1; 32]);
        let b = Sealer::new(&[2; 32]);
        let mut d = a.seal(DatagramKind::Swim, b"ping", [7; 12], T0);
        assert_eq!(d.len(), sealed_len(4));
        let mut copy = d.clone();
        assert_eq!(
            a.open(&mut d),
            Ok(Opened {
                kind: DatagramKind::Swim,
                sent_ms: T0,
                nonce: [7; 12],
                body: &b"ping"[..]
            })
        );
        assert_eq!(b.open(&mut copy), Err(OpenError::Unauthenticated));
    }

    #[test]
    fn a_replayed_or_stale_datagram_does_not_open_fresh() {
        let a = Sealer::new(&[1; 32]);
        let mut f = Freshness::new(std::time::Duration::from_secs(60));
        let d = a.seal(DatagramKind::Leave, b"bye", [3; 12], T0);
        let mut first = d.clone();
        assert_eq!(
            a.open_fresh(&mut first, &mut f, T0 + 20),
            Ok((DatagramKind::Leave, &b"bye"[..]))
        );
        let mut again = d.clone();
        assert_eq!(
            a.open_fresh(&mut again, &mut f, T0 + 30),
            Err(OpenError::Refused(Refused::Replayed))
        );
        let mut late = a.seal(DatagramKind::Leave, b"bye", [4; 12], T0);
        assert_eq!(
            a.open_fresh(&mut late, &mut f, T0 + 61_000),
            Err(OpenError::Refused(Refused::Old { age_ms: 61_000 }))
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let a = Sealer::new(&[1; 32]);
        let d = a.seal(DatagramKind::Leave, b"bye", [3; 12], T0);
        for i in 0..d.len() * 8 {
            let mut t = d.clone();
            t[i / 8] ^= 1 << (i % 8);
            assert!(a.open(&mut t).is_err(), "bit {i}");
        }
    }

    proptest! {
        #[test]
        fn open_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let a = Sealer::new(&[9; 32]);
            let _ = a.open(&mut data);
        }
    }
}
