//! Which way a captured frame went. A capture of a mirror port or a tcpdump holds both
//! directions; the guard's XDP programs see only what arrives at the NIC. The operator says which
//! addresses are the guarded host's own (`guard replay --local ADDR`; for N3, `guard.n3_addrs`
//! too): a frame whose outer source is one of them was sent by the host. On N3 such a frame is
//! not replayed (live, `guard_n3` never sees it); on N2 it goes through the egress classifier
//! `guard_n2_egress`, as it would live. Without any, the direction cannot be told and every frame
//! is replayed as arriving (docs/replay.md, "Which way a frame went").

use std::net::IpAddr;

use guard_common::{
    abi::L3Addr,
    parse::{ethernet, ip},
};

/// The guarded host's own addresses.
#[derive(Debug, Clone, Default)]
pub struct Local {
    addrs: Vec<L3Addr>,
}

impl Local {
    pub fn new<'a>(addrs: impl IntoIterator<Item = &'a IpAddr>) -> Local {
        let mut v: Vec<L3Addr> = addrs
            .into_iter()
            .map(|a| match a {
                IpAddr::V4(v) => L3Addr::v4(v.octets()),
                IpAddr::V6(v) => L3Addr::v6(v.octets()),
            })
            .collect();
        v.sort();
        v.dedup();
        Local { addrs: v }
    }

    /// No address given: the direction of a frame cannot be told.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The frame's outer IP source is one of the host's addresses: the host sent it. Read with
    /// the guard's own parsers (Ethernet with up to two VLAN tags, IPv4, IPv6); a frame they
    /// cannot read is taken as arriving, as the ingress program would judge it.
    pub fn sent_by_host(&self, frame: &[u8]) -> bool {
        if self.addrs.is_empty() {
            return false;
        }
        let Ok(l2) = ethernet::parse(frame) else {
            return false;
        };
        let l3 = match l2.ethertype {
            ethernet::ETHERTYPE_IPV4 => ip::parse_ipv4(frame, l2.next),
            ethernet::ETHERTYPE_IPV6 => ip::parse_ipv6(frame, l2.next),
            _ => return false,
        };
        l3.is_ok_and(|l| self.addrs.binary_search(&l.src).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet (with `vlans` 802.1Q tags) + an IPv4 header from `src` to 10.0.0.1, UDP.
    fn v4(src: [u8; 4], vlans: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for _ in 0..vlans {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[10, 0, 0, 1]);
        f.extend_from_slice(&[0; 8]);
        f
    }

    /// Ethernet + an IPv6 header from `src` to ::1, UDP.
    fn v6(src: [u8; 16]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        f.extend_from_slice(&[0; 8]);
        f
    }

    #[test]
    fn a_frame_from_a_local_address_is_the_hosts_own() {
        let amf: IpAddr = "10.100.0.1".parse().expect("address");
        let six: IpAddr = "fd00::1".parse().expect("address");
        let local = Local::new(&[amf, six]);
        assert!(!local.is_empty());
        assert!(local.sent_by_host(&v4([10, 100, 0, 1], 0)));
        assert!(local.sent_by_host(&v4([10, 100, 0, 1], 2)), "behind QinQ");
        assert!(!local.sent_by_host(&v4([10, 100, 0, 11], 0)), "a gNB's frame arrives");
        assert!(!local.sent_by_host(&v4([10, 100, 0, 11], 1)));
        let IpAddr::V6(s) = six else { unreachable!("an IPv6 address") };
        assert!(local.sent_by_host(&v6(s.octets())));
        assert!(!local.sent_by_host(&v6(std::net::Ipv6Addr::LOCALHOST.octets())));
        // A frame the parsers cannot read (ARP, truncated) is taken as arriving.
        let mut arp = v4([10, 100, 0, 1], 0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!local.sent_by_host(&arp));
        assert!(!local.sent_by_host(&v4([10, 100, 0, 1], 0)[..20]));
    }

    #[test]
    fn without_local_addresses_every_frame_arrives() {
        let none = Local::new(&[]);
        assert!(none.is_empty());
        assert!(!none.sent_by_host(&v4([10, 100, 0, 1], 0)));
    }
}
