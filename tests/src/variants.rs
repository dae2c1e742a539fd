//! Real PDU session variants in the lab (issue 17): what the k-th G-PDU of a device carries when
//! its population asks for more than one IPv4 address per session.
//!
//! - inner IP family: IPv4, IPv6, or both (IPv4v6, TS 23.501 §5.8.2.1): a dual-stack session
//!   alternates its families packet by packet;
//! - IPv6 (TS 23.501 §5.8.2.2.1): the session's first G-PDU is a Router Solicitation from the UE's
//!   link-local address (RFC 4861 §6.3.7); its data then comes from a SLAAC address inside the
//!   session's /64 (RFC 4862), and, with a rotation period, from a new privacy address inside the
//!   same /64 every period (RFC 8981), each device at its own phase;
//! - framed routes (TS 23.501 §5.6.14): three of every four packets of the route's family come
//!   from hosts of a network behind the UE (the guard's `framed_routes` lists it), the fourth from
//!   the UE's own address;
//! - Ethernet and Unstructured sessions (TS 23.501 §5.6.10.2, §5.6.10.3): the T-PDU is an
//!   Ethernet frame or plain octets, half of them starting with 0x45 like an IPv4 header;
//! - forgers: a fraction of a session's G-PDUs carry an inner source that is not the session's
//!   ([`FORGED_V4`], [`FORGED_V6`]), never before the session's own first packet of that family,
//!   so the binding the guard learns is the real one (docs/dataplane.md, "Anti-spoofing").
//!
//! Everything is a function of the seed, the device and the packet's index (and, for rotation,
//! its time), so every mode of a run sends the same frames.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::frames::{checksum_v6_pseudo, ipv4_packet, ipv6_packet, GtpFrame};

/// Inner sources of forged G-PDUs: IPv4 `10.99.0.0/16`, IPv6 `2001:db8:dead::/48` (another /64
/// than any session's). No population may use them; the sink counts G-PDUs from them apart.
pub const FORGED_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 99, 0, 0), 16);
pub const FORGED_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0xdead, 0, 0, 0, 0, 0), 48);

/// Both forged ranges, as the sink takes them.
pub fn forged_prefixes() -> Vec<(IpAddr, u8)> {
    vec![(IpAddr::V4(FORGED_V4.0), FORGED_V4.1), (IpAddr::V6(FORGED_V6.0), FORGED_V6.1)]
}

/// IPv6 servers: the population's IPv4 server behind the NAT64 well-known prefix (RFC 6052 §2.1),
/// so one `dst` serves both families.
pub fn server_v6(dst: Ipv4Addr) -> Ipv6Addr {
    let o = dst.octets();
    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]))
}

/// All-routers multicast, where a Router Solicitation goes (RFC 4861 §6.3.7).
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Inner IP family of a population's sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    #[default]
    V4,
    V6,
    V4v6,
}

impl Family {
    pub fn has_v6(self) -> bool {
        self != Family::V4
    }
}

/// PDU session type (TS 23.501 §5.6.10): IP, or one of the two non-IP types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    #[default]
    Ip,
    Ethernet,
    Unstructured,
}

/// An IP prefix `address/length`, as a scenario writes it (`"10.60.0.0/16"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Net, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| format!("{s:?}: want address/length"))?;
        let addr: IpAddr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let len: u8 = l.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("{s:?}: length over {max}"));
        }
        Ok(Net { addr, len })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Net {
    /// Host `n` of the prefix (1-based, wrapping inside the host part, never the all-zero host).
    pub fn host(&self, n: u64) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let bits = 32 - u32::from(self.len);
                let size = if bits >= 32 { u64::from(u32::MAX) } else { (1u64 << bits).max(2) };
                let h = 1 + n % (size - 1).max(1);
                let mask = if bits >= 32 { 0 } else { u32::MAX << bits };
                IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) | (h as u32 & !mask)))
            }
            IpAddr::V6(a) => {
                // At most 2^32 hosts drawn from: plenty, and no u128 shifts past the width.
                let bits = (128 - u32::from(self.len)).min(32);
                let size = (1u64 << bits).max(2);
                let h = 1 + n % (size - 1).max(1);
                let host_mask: u128 = if self.len >= 128 { 0 } else { u128::MAX >> self.len };
                IpAddr::V6(Ipv6Addr::from((u128::from(a) & !host_mask) | (u128::from(h) & host_mask)))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

impl Serialize for Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// splitmix64 of a few words: per-device, per-packet draws without a generator's state.
pub fn mix(words: &[u64]) -> u64 {
    let mut z = 0x9e37_79b9_7f4a_7c15u64;
    for w in words {
        z = z.wrapping_add(*w).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}

/// The session a device holds, beyond its TEID and IPv4 address.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub family: Family,
    pub session_type: SessionType,
    /// The session's /64 (TS 23.501 §5.8.2.2.1: the network delegates one per IPv6 session).
    pub v6_prefix: Ipv6Addr,
    /// Privacy-address rotation period (0: the SLAAC address only), and the device's first
    /// rotation (its phase).
    pub rotate_s: f64,
    pub rotate_at_s: f64,
    /// A Router Solicitation from the link-local address first.
    pub router_solicitation: bool,
    pub framed: Option<Net>,
    /// Fraction of G-PDUs with a forged inner source.
    pub forged: f64,
    /// Per-device seed of the draws.
    pub seed: u64,
}

impl Session {
    /// A plain IPv4 IP session: one address, what every device was before issue 17 (built from
    /// one template per variant).
    pub fn plain() -> Session {
        Session {
            family: Family::V4,
            session_type: SessionType::Ip,
            v6_prefix: Ipv6Addr::UNSPECIFIED,
            rotate_s: 0.0,
            rotate_at_s: 0.0,
            router_solicitation: false,
            framed: None,
            forged: 0.0,
            seed: 0,
        }
    }

    pub fn is_plain(&self) -> bool {
        self.family == Family::V4
            && self.session_type == SessionType::Ip
            && !self.router_solicitation
            && self.framed.is_none()
            && self.forged <= 0.0
    }

    /// The interface identifier of the SLAAC address: modified EUI-64 of the device's MAC
    /// (RFC 4291 Appendix A: ff:fe in the middle, the U/L bit inverted).
    fn slaac_iid(&self) -> u64 {
        let m = self.seed.to_be_bytes();
        let mac = [0x02, 0x5a, m[4], m[5], m[6], m[7]];
        u64::from_be_bytes([mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
    }

    pub fn link_local(&self) -> Ipv6Addr {
        Ipv6Addr::from((0xfe80u128 << 112) | u128::from(self.slaac_iid()))
    }

    /// The IPv6 source the UE uses at `t_s`: SLAAC before the first rotation, then a new random
    /// (privacy) interface identifier per period, all inside the session's /64.
    pub fn v6_at(&self, t_s: f64) -> Ipv6Addr {
        let net = u128::from(self.v6_prefix) & !u128::from(u64::MAX);
        let iid = if self.rotate_s > 0.0 && t_s >= self.rotate_at_s {
            let epoch = 1 + ((t_s - self.rotate_at_s) / self.rotate_s).floor() as u64;
            // RFC 8981 §3.3.1: random, never the all-zero identifier.
            mix(&[self.seed, epoch, 0x70726976]).max(1) & !0x0200_0000_0000_0000
        } else {
            self.slaac_iid()
        };
        Ipv6Addr::from(net | u128::from(iid))
    }

    /// What the `k`-th G-PDU (from 0) of the device, sent at `t_s`, carries.
    pub fn packet(&self, dev: usize, ue_v4: Ipv4Addr, k: u64, t_s: f64) -> Pkt {
        self.packet_with(dev, ue_v4, k, t_s, true)
    }

    /// The UE's own source in the family of the `k`-th G-PDU: what it carries when it is not
    /// forged (`forge` false) or not a framed route's.
    fn own(&self, v6: bool, ue_v4: Ipv4Addr, t_s: f64) -> Pkt {
        let inner = if v6 { Inner::V6(self.v6_at(t_s)) } else { Inner::V4(ue_v4) };
        Pkt { inner, forged: false }
    }

    /// As [`Session::packet`]; with `forge` false a G-PDU due to be forged carries the UE's own
    /// source instead (the sender does that until the session's own packets of that family were
    /// sent: see `crate::scenario`).
    pub fn packet_with(&self, dev: usize, ue_v4: Ipv4Addr, k: u64, t_s: f64, forge: bool) -> Pkt {
        match self.session_type {
            SessionType::Ethernet => return Pkt { inner: Inner::Ethernet, forged: false },
            SessionType::Unstructured => return Pkt { inner: Inner::Unstructured, forged: false },
            SessionType::Ip => {}
        }
        let rs = self.router_solicitation && self.family.has_v6();
        if rs && k == 0 {
            return Pkt { inner: Inner::RouterSolicitation(self.link_local()), forged: false };
        }
        let j = k - u64::from(rs);
        let v6 = match self.family {
            Family::V4 => false,
            Family::V6 => true,
            Family::V4v6 => j % 2 == 1,
        };
        // Forged: never among the first two data packets (a dual-stack session's first of each
        // family), so the session's own sources are bound first.
        let f = self.forged;
        if f > 0.0 && j >= 2 && ((j + 1) as f64 * f).floor() > (j as f64 * f).floor() {
            let r = mix(&[self.seed, j, 0x666f7267]);
            // A dual-stack forger alternates the family of its forgeries by their own count (the
            // fraction's steps may all fall on one family's packets).
            let n = ((j + 1) as f64 * f).floor() as u64;
            let v6 = if self.family == Family::V4v6 { n % 2 == 1 } else { v6 };
            if !forge {
                return self.own(v6, ue_v4, t_s);
            }
            let inner = if v6 {
                let net = u128::from(FORGED_V6.0) | (u128::from(dev as u16) << 64);
                Inner::V6(Ipv6Addr::from(net | u128::from(r | 1)))
            } else {
                Inner::V4(Ipv4Addr::from(u32::from(FORGED_V4.0) | (1 + (r % 65_534) as u32)))
            };
            return Pkt { inner, forged: true };
        }
        if let Some(net) = self.framed {
            if net.addr.is_ipv6() == v6 && (j / if self.family == Family::V4v6 { 2 } else { 1 }) % 4 != 0 {
                let inner = match net.host(mix(&[self.seed, j, 0x66726d64])) {
                    IpAddr::V4(a) => Inner::V4(a),
                    IpAddr::V6(a) => Inner::V6(a),
                };
                return Pkt { inner, forged: false };
            }
        }
        self.own(v6, ue_v4, t_s)
    }

    /// Whether `pkt` carries the UE's own source (what an anti-spoofing binding is learned from):
    /// not forged, not a framed route's host, not link-local.
    pub fn is_own(&self, pkt: &Pkt) -> bool {
        let framed = |a: IpAddr| self.framed.is_some_and(|n| n.contains(a));
        match pkt.inner {
            Inner::V4(a) => !pkt.forged && !framed(IpAddr::V4(a)),
            Inner::V6(a) => !pkt.forged && !framed(IpAddr::V6(a)),
            _ => false,
        }
    }

    /// The frame of `pkt` on `base` (a G-PDU builder with the device's MACs, outer addresses and
    /// TEID); `dst` is the device's server, `payload` its inner UDP payload length.
    pub fn frame(&self, base: &GtpFrame, pkt: &Pkt, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
        let b = base.clone();
        let b = match pkt.inner {
            Inner::V4(src) => b.inner_v4(src, dst).payload_len(payload),
            Inner::V6(src) => b.inner_v6(src, server_v6(dst)).payload_len(payload),
            Inner::RouterSolicitation(ll) => {
                // ICMPv6 type 133, code 0, checksum, reserved (RFC 4861 §4.1); hop limit 255.
                let mut icmp = vec![133, 0, 0, 0, 0, 0, 0, 0];
                let c = checksum_v6_pseudo(ll, ALL_ROUTERS, 58, &icmp);
                icmp[2..4].copy_from_slice(&c.to_be_bytes());
                b.tpdu_raw(&ipv6_packet(ll, ALL_ROUTERS, 58, 255, &icmp))
            }
            Inner::Ethernet => b.tpdu_raw(&self.ethernet_frame(payload)),
            Inner::Unstructured => b.tpdu_raw(&self.unstructured(payload)),
        };
        b.build()
    }

    /// An Ethernet frame as the T-PDU (TS 23.501 §5.6.10.2; the N3 T-PDU carries it without
    /// preamble or FCS, TS 29.281 §5.1): a PLC on the session's LAN talking IPv4/UDP. Half of the
    /// devices' destination MACs start with 0x45, so the T-PDU's first nibble reads as IPv4.
    fn ethernet_frame(&self, payload: usize) -> Vec<u8> {
        let s = self.seed.to_be_bytes();
        let dst = if self.seed % 2 == 0 {
            [0x45, 0x00, 0x00, 0x54, s[6], s[7]]
        } else {
            [0x02, 0x00, 0x5e, 0x10, s[6], s[7]]
        };
        let src = [0x02, 0x5a, s[4], s[5], s[6], s[7]];
        let mut udp = Vec::with_capacity(8 + payload);
        udp.extend_from_slice(&47808u16.to_be_bytes());
        udp.extend_from_slice(&47808u16.to_be_bytes());
        udp.extend_from_slice(&u16::try_from(8 + payload).unwrap_or(u16::MAX).to_be_bytes());
        udp.extend_from_slice(&[0, 0]); // no checksum (RFC 768, IPv4)
        udp.extend((0..payload).map(|i| i as u8));
        let ip = ipv4_packet(Ipv4Addr::new(192, 168, 7, 2), Ipv4Addr::new(192, 168, 7, 1), 17, 64, 0, &[], &udp);
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(&ip);
        f
    }

    /// Unstructured octets (TS 23.501 §5.6.10.3): half of the devices' start with 0x45 00 like an
    /// IPv4 header whose lengths do not fit, the others with 0x60 like IPv6.
    fn unstructured(&self, payload: usize) -> Vec<u8> {
        let mut b: Vec<u8> = (0..payload.max(8)).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect();
        if self.seed % 2 == 0 {
            b[0] = 0x45;
            b[1] = 0x00;
        } else {
            b[0] = 0x60;
        }
        b
    }
}

/// What one G-PDU carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    RouterSolicitation(Ipv6Addr),
    Ethernet,
    Unstructured,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub inner: Inner,
    /// Its inner source does not belong to the session.
    pub forged: bool,
}

/// [`Pkt::family_bit`] of an IPv4 and an IPv6 packet.
pub const BIT_V4: u8 = 1;
pub const BIT_V6: u8 = 2;

impl Pkt {
    /// The family of an IP packet with a source of its own (real or forged): [`BIT_V4`] or
    /// [`BIT_V6`]; 0 for a Router Solicitation and non-IP.
    pub fn family_bit(&self) -> u8 {
        match self.inner {
            Inner::V4(_) => BIT_V4,
            Inner::V6(_) => BIT_V6,
            _ => 0,
        }
    }

    /// The inner source address, for IP T-PDUs.
    pub fn src(&self) -> Option<IpAddr> {
        match self.inner {
            Inner::V4(a) => Some(IpAddr::V4(a)),
            Inner::V6(a) | Inner::RouterSolicitation(a) => Some(IpAddr::V6(a)),
            Inner::Ethernet | Inner::Unstructured => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6_session(family: Family, forged: f64, framed: Option<&str>) -> Session {
        Session {
            family,
            session_type: SessionType::Ip,
            v6_prefix: "2001:db8:45:7::".parse().unwrap(),
            rotate_s: 4.0,
            rotate_at_s: 1.5,
            router_solicitation: true,
            framed: framed.map(|f| f.parse().unwrap()),
            forged,
            seed: 42,
        }
    }

    /// TS 23.501 §5.8.2.2: RS from fe80:: first, then SLAAC, then privacy addresses, all in the /64.
    #[test]
    fn ipv6_session_solicits_then_rotates_inside_its_prefix() {
        let s = v6_session(Family::V6, 0.0, None);
        let ue = Ipv4Addr::new(10, 45, 0, 1);
        let p0 = s.packet(0, ue, 0, 0.0);
        let Inner::RouterSolicitation(ll) = p0.inner else { panic!("{p0:?}") };
        assert_eq!(ll.segments()[0], 0xfe80);
        let slaac = s.packet(0, ue, 1, 0.5).src().unwrap();
        let later = s.packet(0, ue, 2, 2.0).src().unwrap();
        let later2 = s.packet(0, ue, 3, 6.0).src().unwrap();
        assert_ne!(slaac, later);
        assert_ne!(later, later2);
        let net: Net = "2001:db8:45:7::/64".parse().unwrap();
        for a in [slaac, later, later2] {
            assert!(net.contains(a), "{a}");
        }
        assert_eq!(s.packet(0, ue, 2, 2.0), s.packet(0, ue, 2, 2.0));
    }

    #[test]
    fn dual_stack_alternates_and_forges_only_after_both_bindings() {
        let s = v6_session(Family::V4v6, 0.5, None);
        let ue = Ipv4Addr::new(10, 47, 0, 3);
        let pk: Vec<Pkt> = (0..40).map(|k| s.packet(3, ue, k, k as f64 * 0.1)).collect();
        assert!(matches!(pk[0].inner, Inner::RouterSolicitation(_)));
        assert_eq!(pk[1], Pkt { inner: Inner::V4(ue), forged: false });
        assert!(matches!(pk[2].inner, Inner::V6(_)) && !pk[2].forged);
        let forged: Vec<&Pkt> = pk.iter().filter(|p| p.forged).collect();
        assert!((15..=21).contains(&forged.len()), "{}", forged.len());
        let (f4, f6): (Net, Net) = ("10.99.0.0/16".parse().unwrap(), "2001:db8:dead::/48".parse().unwrap());
        for p in &forged {
            let a = p.src().unwrap();
            assert!(f4.contains(a) || f6.contains(a), "{a}");
        }
        assert!(forged.iter().any(|p| p.src().unwrap().is_ipv4()) && forged.iter().any(|p| p.src().unwrap().is_ipv6()));
        // Held back (the session's own packets of that family not sent yet): the UE's own source.
        for k in 0..40 {
            let t = k as f64 * 0.1;
            let (p, q) = (s.packet(3, ue, k, t), s.packet_with(3, ue, k, t, false));
            assert!(!q.forged && (s.is_own(&q) || matches!(q.inner, Inner::RouterSolicitation(_))));
            if p.forged {
                assert_eq!(p.family_bit(), q.family_bit(), "the same family, its own source");
                assert!(!s.is_own(&p));
            } else {
                assert_eq!(p, q);
            }
        }
    }

    #[test]
    fn framed_route_sources_come_from_the_route() {
        let mut s = v6_session(Family::V4, 0.0, Some("10.60.0.0/16"));
        s.router_solicitation = false;
        let ue = Ipv4Addr::new(10, 48, 0, 1);
        let net: Net = "10.60.0.0/16".parse().unwrap();
        let srcs: Vec<IpAddr> = (0..8).map(|k| s.packet(0, ue, k, 0.0).src().unwrap()).collect();
        assert_eq!(srcs[0], IpAddr::V4(ue));
        assert_eq!(srcs.iter().filter(|a| net.contains(**a)).count(), 6);
        let v6: Net = "2001:db8:f00::/48".parse().unwrap();
        for n in [0, 1, 77, u64::MAX] {
            assert!(v6.contains(v6.host(n)) && net.contains(net.host(n)));
            assert_ne!(net.host(n), IpAddr::V4(Ipv4Addr::new(10, 60, 0, 0)));
        }
        assert!("10.0.0.0/33".parse::<Net>().is_err() && "x/8".parse::<Net>().is_err());
    }
}
