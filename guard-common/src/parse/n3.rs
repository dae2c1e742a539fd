//! The whole N3 parse: Ethernet → IPv4/IPv6 → UDP to the GTP-U port → GTP-U → inner source.

use super::{ethernet, gtpu, ip, udp, Malformed, Packet};
use crate::abi::L3Addr;

/// What the N3 program needs to know about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum N3 {
    /// Not GTP-U (another EtherType, protocol or port, or an IP fragment): passed untouched.
    NotGtp,
    Gtp(GtpPacket),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GtpPacket {
    /// Outer source: the gNB (the "cell" on N3).
    pub outer_src: L3Addr,
    pub vlan_tags: u8,
    pub gtp: gtpu::Gtpu,
    /// Inner source of a G-PDU (the UE address), or [`L3Addr::NONE`].
    pub inner_src: L3Addr,
    /// Inner destination of a G-PDU (the server the device talks to), or [`L3Addr::NONE`].
    pub inner_dst: L3Addr,
}

/// Parse one frame. `Err` carries the malformed reason; [`Malformed::is_gtp`] tells whether the
/// packet was already known to be GTP-U.
#[inline(always)]
pub fn parse<P: Packet + ?Sized>(pkt: &P, gtpu_port: u16) -> Result<N3, Malformed> {
    let mut out = GtpPacket::EMPTY;
    if parse_into(pkt, gtpu_port, &mut out)? {
        Ok(N3::Gtp(out))
    } else {
        Ok(N3::NotGtp)
    }
}

/// [`parse`], writing a GTP-U packet's fields into `out` one by one: in the kernel this avoids a
/// whole-struct copy (a `memcpy` the BPF backend would turn into a byte loop). `Ok(true)` when
/// the frame is GTP-U (then every field of `out` is written), `Ok(false)` when it is not. On a
/// GTP-level `Err`, `out.outer_src` still names the sender (so its cell can be charged); it is
/// [`L3Addr::NONE`] when the error came before the IP header was read.
#[inline(always)]
pub fn parse_into<P: Packet + ?Sized>(pkt: &P, gtpu_port: u16, out: &mut GtpPacket) -> Result<bool, Malformed> {
    out.outer_src.family = crate::abi::FAMILY_NONE;
    let l2 = ethernet::parse(pkt)?;
    let l3 = match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => ip::parse_ipv4(pkt, l2.next)?,
        ethernet::ETHERTYPE_IPV6 => ip::parse_ipv6(pkt, l2.next)?,
        _ => return Ok(false),
    };
    if l3.proto != ip::IPPROTO_UDP || l3.fragment {
        return Ok(false);
    }
    out.outer_src = l3.src;
    let u = udp::parse(pkt, l3.next)?;
    if u.dst_port != gtpu_port {
        return Ok(false);
    }
    // From here the packet is addressed to GTP-U: malformations are GTP-level.
    let ulen = u.length as usize;
    if ulen < udp::UDP_HLEN {
        return Err(Malformed::UdpBadLength);
    }
    if l3.next + ulen > pkt.len() {
        return Err(Malformed::GtpTruncated);
    }
    let g = gtpu::parse(pkt, u.next, ulen - udp::UDP_HLEN)?;
    // The inner addresses are written in place (`inner_addrs_into` says why); `outer_src` was
    // written above. A non-G-PDU has none.
    if g.msg_type == gtpu::MSG_G_PDU {
        gtpu::inner_addrs_into(pkt, &g, &mut out.inner_src, &mut out.inner_dst)?;
    } else {
        gtpu::store_addr(&mut out.inner_src, crate::abi::FAMILY_NONE, [0; 4]);
        gtpu::store_addr(&mut out.inner_dst, crate::abi::FAMILY_NONE, [0; 4]);
    }
    out.vlan_tags = l2.vlan_tags;
    out.gtp = g;
    Ok(true)
}

impl GtpPacket {
    /// A placeholder to parse into.
    pub const EMPTY: GtpPacket = GtpPacket {
        outer_src: L3Addr::NONE,
        vlan_tags: 0,
        gtp: gtpu::Gtpu {
            flags: 0,
            msg_type: 0,
            length: 0,
            teid: 0,
            ext_count: 0,
            qfi: 0,
            pdu_type: 0,
            payload: 0,
            end: 0,
        },
        inner_src: L3Addr::NONE,
        inner_dst: L3Addr::NONE,
    };
}
