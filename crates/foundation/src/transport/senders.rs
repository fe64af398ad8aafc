//! Who speaks on a connection. A frame names its sender (`Envelope::from`),
//! and the layers above trust that name (registry owners, process holders,
//! pub/sub origins). So the first frame on a connection pins the sender for
//! the whole connection, and one sender id is spoken from one remote IP at
//! a time: a member cannot interleave frames in another member's name on
//! its own connection, nor open a connection in the name of a member that
//! is connected to this node from elsewhere. Frames that break either rule
//! are dropped and counted (`foundation_frames_spoofed_sender_total`).
//!
//! What this cannot stop: with the shared secret every member can mint a
//! certificate, so a member may claim an id that no live connection to
//! this node holds yet (docs/SECURITY.md).
//!
//! Memory: one entry per pinned id with a live connection; an entry goes
//! when its last connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use foundation_proto::NodeId;

use crate::locks::Locked;

/// The sender pinned to one connection (held by its `Peer`).
#[derive(Debug)]
pub(crate) struct Speaker {
    ip: IpAddr,
    pinned: OnceLock<NodeId>,
    /// The connection ended (set under the pins' lock): a frame still in
    /// flight on it pins nothing.
    released: AtomicBool,
    /// Its sender was seen as a member (see `Members`).
    admitted: AtomicBool,
    /// Its sender was waited for and was not a member: later frames are
    /// checked without waiting.
    refused: AtomicBool,
}

impl Speaker {
    /// A connection from `ip`, with no sender pinned yet.
    pub(crate) fn new(ip: IpAddr) -> Self {
        Speaker {
            ip,
            pinned: OnceLock::new(),
            released: AtomicBool::new(false),
            admitted: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        }
    }
}

/// Who the cluster's members are, as membership sees them: frames are
/// accepted only from active members. The node provides it; a bare
/// transport (tests, tools) has none and accepts any authenticated peer.
pub(crate) trait Members: Send + Sync + std::fmt::Debug {
    /// Whether `id` is an active member (alive or suspect).
    fn is_member(&self, id: NodeId) -> bool;
}

/// How long a frame from a sender membership does not know yet waits for
/// it (a joining node may talk before gossip reached this node).
pub(crate) const MEMBER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `speaker`'s sender `from` may deliver: an active member, or one
/// within [`MEMBER_WAIT`] (waited for once per connection).
pub(crate) async fn admit(members: &dyn Members, speaker: &Speaker, from: NodeId) -> bool {
    if speaker.admitted.load(Ordering::Relaxed) {
        return true;
    }
    let wait = !speaker.refused.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now()
        + if wait {
            MEMBER_WAIT
        } else {
            Default::default()
        };
    loop {
        if members.is_member(from) {
            speaker.admitted.store(true, Ordering::Relaxed);
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            speaker.refused.store(true, Ordering::Relaxed);
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Why a frame's claimed sender was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection speaks for `pinned`, the frame claims another.
    NotThisConnection {
        /// The connection's sender.
        pinned: NodeId,
    },
    /// The claimed sender is connected from `ip`, not from this
    /// connection's address.
    ConnectedElsewhere {
        /// Where the claimed sender is connected from.
        ip: IpAddr,
    },
}

#[derive(Debug)]
struct Pin {
    ip: IpAddr,
    connections: usize,
}

/// Every pinned sender of one transport.
#[derive(Debug, Default)]
pub(crate) struct Senders {
    pins: std::sync::Mutex<HashMap<NodeId, Pin>>,
}

impl Senders {
    /// Whether `from` may speak on `speaker`'s connection; the first frame
    /// pins it. Costs no lock once the connection is pinned.
    #[inline]
    pub(crate) fn check(&self, speaker: &Speaker, from: NodeId) -> Result<(), Refused> {
        match speaker.pinned.get() {
            Some(&pinned) if pinned == from => Ok(()),
            Some(&pinned) => Err(Refused::NotThisConnection { pinned }),
            None => self.pin(speaker, from),
        }
    }

    #[cold]
    fn pin(&self, speaker: &Speaker, from: NodeId) -> Result<(), Refused> {
        let mut pins = self.pins.locked();
        // Another stream of this connection may have pinned it meanwhile
        // (both under this lock).
        if let Some(&pinned) = speaker.pinned.get() {
            return if pinned == from {
                Ok(())
            } else {
                Err(Refused::NotThisConnection { pinned })
            };
        }
        let released = speaker.released.load(Ordering::Relaxed);
        match pins.get_mut(&from) {
            Some(pin) if pin.ip != speaker.ip => {
                return Err(Refused::ConnectedElsewhere { ip: pin.ip });
            }
            // One node's connections in both directions come from one
            // address.
            _ if released => return Ok(()),
            Some(pin) => pin.connections += 1,
            None => {
                pins.insert(
                    from,
                    Pin {
                        ip: speaker.ip,
                        connections: 1,
                    },
                );
            }
        }
        let _ = speaker.pinned.set(from);
        Ok(())
    }

    /// The connection of `speaker` ended: its sender, if pinned, no longer
    /// holds the address.
    pub(crate) fn release(&self, speaker: &Speaker) {
        let mut pins = self.pins.locked();
        if speaker.released.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(id) = speaker.pinned.get() else {
            return;
        };
        if let Some(pin) = pins.get_mut(id) {
            pin.connections = pin.connections.saturating_sub(1);
            if pin.connections == 0 {
                pins.remove(id);
            }
        }
    }

    /// Senders pinned to live connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pins.locked().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_first_frame_pins_the_connection() {
        let senders = Senders::default();
        let conn = Speaker::new(A);
        assert_eq!(senders.check(&conn, NodeId(1)), Ok(()));
        assert_eq!(senders.check(&conn, NodeId(1)), Ok(()));
        assert_eq!(
            senders.check(&conn, NodeId(2)),
            Err(Refused::NotThisConnection { pinned: NodeId(1) })
        );
        assert_eq!(senders.len(), 1, "a refused claim leaves no state");
    }

    #[test]
    fn an_id_is_spoken_from_one_address_while_connected() {
        let senders = Senders::default();
        let honest = Speaker::new(A);
        let other_direction = Speaker::new(A);
        let impostor = Speaker::new(B);
        assert_eq!(senders.check(&honest, NodeId(1)), Ok(()));
        assert_eq!(senders.check(&other_direction, NodeId(1)), Ok(()));
        assert_eq!(
            senders.check(&impostor, NodeId(1)),
            Err(Refused::ConnectedElsewhere { ip: A })
        );
        // The impostor's connection is still unpinned: its own id works.
        assert_eq!(senders.check(&impostor, NodeId(9)), Ok(()));

        senders.release(&honest);
        let late = Speaker::new(B);
        assert_eq!(
            senders.check(&late, NodeId(1)),
            Err(Refused::ConnectedElsewhere { ip: A }),
            "one connection from A still holds it"
        );
        senders.release(&other_direction);
        assert_eq!(senders.check(&late, NodeId(1)), Ok(()), "free again");
        senders.release(&late);
        senders.release(&impostor);
        assert_eq!(senders.len(), 0, "nothing kept after connections end");
    }

    #[test]
    fn a_released_connection_pins_nothing_and_releases_once() {
        let senders = Senders::default();
        let ended = Speaker::new(A);
        senders.release(&ended);
        // A frame still in flight on the ended connection is delivered
        // but holds no address.
        assert_eq!(senders.check(&ended, NodeId(1)), Ok(()));
        assert_eq!(senders.len(), 0);

        let a = Speaker::new(A);
        let b = Speaker::new(A);
        assert_eq!(senders.check(&a, NodeId(1)), Ok(()));
        assert_eq!(senders.check(&b, NodeId(1)), Ok(()));
        senders.release(&a);
        senders.release(&a);
        assert_eq!(
            senders.len(),
            1,
            "a second release of one connection counts once"
        );
        senders.release(&b);
        assert_eq!(senders.len(), 0);
    }
}
