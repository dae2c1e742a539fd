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
