//! Where the public development secret may be used: only where the
//! Internet cannot reach the node (loopback, link-local and private
//! networks). Zero configuration stays zero configuration on a laptop and
//! a LAN, and can never expose a cluster silently (issue 16, docs/SECURITY.md).

use std::net::IpAddr;

use crate::config::Config;

/// How far an address can be reached from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// This host only (127.0.0.0/8, ::1).
    Loopback,
    /// One link (169.254.0.0/16, fe80::/10).
    LinkLocal,
    /// A network that is not routed on the Internet: RFC 1918, shared
    /// (100.64.0.0/10), unique local (fc00::/7), and the reserved,
    /// documentation and benchmarking ranges.
    Private,
    /// Anything else: routable on the Internet.
    Public,
}

/// How far `ip` can be reached from.
pub fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_loopback() {
                Reach::Loopback
            } else if v4.is_link_local() {
                Reach::LinkLocal
            } else if v4.is_private()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a, b, c) == (192, 0, 2) // documentation
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved and broadcast
                || v4.is_multicast()
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return reach(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Reach::Loopback
            } else if first & 0xffc0 == 0xfe80 {
                Reach::LinkLocal
            } else if first & 0xfe00 == 0xfc00 // unique local
                || v6.is_unspecified()
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6.is_multicast()
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

/// The addresses a node with the development secret would be reachable
/// on, beyond loopback, and whether one of them is public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// Not the development secret: nothing to say.
    NotDevelopment,
    /// Only loopback: nobody else can reach it.
    LoopbackOnly,
    /// Reachable on these private or link-local addresses (a LAN).
    Lan(Vec<IpAddr>),
    /// Reachable on a public address: refused.
    Public {
        /// The address.
        addr: IpAddr,
        /// Which setting puts it there.
        key: &'static str,
    },
}

/// What the development secret would be exposed to with `config`, on a
/// host whose interfaces have `interfaces`. An unspecified bind address
/// (0.0.0.0, ::) means every interface address of its family.
pub(crate) fn development_exposure(config: &Config, interfaces: &[IpAddr]) -> Exposure {
    let dev = config
        .cluster
        .secret
        .as_ref()
        .is_some_and(|s| s.is_development());
    if !dev {
        return Exposure::NotDevelopment;
    }
    let expand = |ip: IpAddr| -> Vec<IpAddr> {
        if !ip.is_unspecified() {
            return vec![ip];
        }
        interfaces
            .iter()
            .copied()
            .filter(|i| i.is_ipv4() == ip.is_ipv4())
            .collect()
    };
    let mut used: Vec<(IpAddr, &'static str)> = Vec::new();
    used.extend(
        expand(config.transport.bind)
            .into_iter()
            .map(|ip| (ip, "transport.bind")),
    );
    if let Some(a) = config.transport.advertise {
        used.push((a, "transport.advertise"));
    }
    if config.http.enabled {
        used.extend(
            expand(config.http.bind)
                .into_iter()
                .map(|ip| (ip, "http.bind")),
        );
    }
    if let Some(&(addr, key)) = used.iter().find(|(ip, _)| reach(*ip) == Reach::Public) {
        return Exposure::Public { addr, key };
    }
    let mut lan: Vec<IpAddr> = used
        .into_iter()
        .map(|(ip, _)| ip)
        .filter(|ip| reach(*ip) != Reach::Loopback)
        .collect();
    lan.sort();
    lan.dedup();
    if lan.is_empty() {
        Exposure::LoopbackOnly
    } else {
        Exposure::Lan(lan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn addresses_are_classified_by_who_can_reach_them() {
        for (a, r) in [
            ("127.0.0.1", Reach::Loopback),
            ("127.5.6.7", Reach::Loopback),
            ("::1", Reach::Loopback),
            ("::ffff:127.0.0.1", Reach::Loopback),
            ("169.254.10.1", Reach::LinkLocal),
            ("fe80::1", Reach::LinkLocal),
            ("10.1.2.3", Reach::Private),
            ("172.16.0.1", Reach::Private),
            ("172.31.255.254", Reach::Private),
            ("192.168.1.20", Reach::Private),
            ("100.64.0.1", Reach::Private),
            ("192.0.2.2", Reach::Private),
            ("fd00::2", Reach::Private),
            ("2001:db8::1", Reach::Private),
            ("8.8.8.8", Reach::Public),
            ("172.32.0.1", Reach::Public),
            ("100.128.0.1", Reach::Public),
            ("1.1.1.1", Reach::Public),
            ("2a00:1450::1", Reach::Public),
            ("::ffff:8.8.4.4", Reach::Public),
        ] {
            assert_eq!(reach(ip(a)), r, "{a}");
        }
    }

    fn dev(bind: &str) -> Config {
        let mut c = Config::default();
        c.cluster.secret = Some(Secret::new(crate::config::defaults::DEVELOPMENT_SECRET));
        c.transport.bind = ip(bind);
        c.transport.advertise = None;
        c
    }

    #[test]
    fn the_development_secret_is_judged_by_every_bound_and_advertised_address() {
        let lan = [ip("127.0.0.1"), ip("192.168.1.20"), ip("fe80::1")];
        let public = [ip("127.0.0.1"), ip("192.168.1.20"), ip("8.8.8.8")];

        assert_eq!(
            development_exposure(&dev("127.0.0.1"), &public),
            Exposure::LoopbackOnly
        );
        assert_eq!(
            development_exposure(&dev("0.0.0.0"), &lan),
            Exposure::Lan(vec![ip("192.168.1.20")])
        );
        assert_eq!(
            development_exposure(&dev("0.0.0.0"), &public),
            Exposure::Public {
                addr: ip("8.8.8.8"),
                key: "transport.bind"
            }
        );
        let mut advertised = dev("127.0.0.1");
        advertised.transport.advertise = Some(ip("8.8.8.8"));
        assert!(matches!(
            development_exposure(&advertised, &lan),
            Exposure::Public {
                key: "transport.advertise",
                ..
            }
        ));
        let mut http = dev("127.0.0.1");
        http.http.enabled = true;
        http.http.bind = ip("0.0.0.0");
        assert!(matches!(
            development_exposure(&http, &public),
            Exposure::Public {
                key: "http.bind",
                ..
            }
        ));
        // Another secret is not this check's business.
        let mut own = dev("0.0.0.0");
        own.cluster.secret = Some(Secret::new("a-secret-of-our-own-0123456789"));
        assert_eq!(
            development_exposure(&own, &public),
            Exposure::NotDevelopment
        );
    }
}
