//! Entry points for the fuzz targets (`fuzz/`, cargo feature `fuzzing`):
//! the decoders of discovery answers, which are private otherwise. Each
//! takes bytes as a peer or a discovery service would send them and runs
//! the code the strategy runs on them.

use std::collections::HashMap;
use std::net::IpAddr;

/// A Consul health API answer: the candidates it yields, or why not.
pub fn consul_answer(body: &[u8]) -> Result<usize, String> {
    super::consul::parse(body).map(|c| c.len())
}

/// One line of an etcd watch stream: whether it changed the peers.
pub fn etcd_watch_line(line: &[u8]) -> Result<bool, String> {
    let mut peers = HashMap::new();
    super::etcd::watch_line(&mut peers, line, "/foundation/fuzz/1")
}

/// An mDNS answer: `data` is the SRV port (2 bytes), up to four IPv4
/// addresses (4 bytes each, after a count byte), then the TXT record's
/// bytes, decoded by mdns-sd as on the wire.
pub fn mdns_answer(data: &[u8]) -> Result<usize, String> {
    let (port, rest) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Err("short".into()),
    };
    let (count, rest) = match rest {
        [n, rest @ ..] => (usize::from(n % 5), rest),
        _ => return Err("short".into()),
    };
    let ips: Vec<IpAddr> = rest
        .chunks_exact(4)
        .take(count)
        .map(|o| IpAddr::from([o[0], o[1], o[2], o[3]]))
        .collect();
    let txt = mdns_sd::TxtProperties::from(&rest[(4 * ips.len()).min(rest.len())..]);
    let announced = super::mdns::Announced {
        txt: &txt,
        port,
        ips,
    };
    let hash = super::context::cluster_hash("fuzz");
    announced
        .accept(&hash, "1")
        .map(|a| a.map_or(0, |a| a.len()))
}

/// A gossip beacon datagram: verified with a fixed key, then decoded.
pub fn gossip_beacon(data: &[u8]) -> Result<(), super::gossip::BeaconError> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]);
    super::Beacon::open(data, &key).map(|_| ())
}
