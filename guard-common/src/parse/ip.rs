//! IPv4 (RFC 791 §3.1) and IPv6 (RFC 8200 §3, §4) headers: the outer header of N3 traffic, and the
//! inner source address of a G-PDU (the UE address).

use super::{be16, Malformed, Packet};
use crate::abi::L3Addr;

pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
const IPV6_HLEN: usize = 40;
/// IPv6 extension headers walked before giving up (hop-by-hop, routing, destination options, AH).
pub const MAX_IPV6_EXT: usize = 4;

/// The transport protocol, its offset and the source address of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L3 {
    pub proto: u8,
    pub src: L3Addr,
    /// Offset of the transport header.
    pub next: usize,
    /// A fragment (IPv4 MF or offset != 0; an IPv6 Fragment header other than an atomic one):
    /// the transport header may be absent.
    pub fragment: bool,
    /// The first fragment (offset 0, more to come): it carries the transport header and the
    /// start of the payload (RFC 791 §3.2, RFC 8200 §4.5), so it can be judged like a packet.
    pub frag_first: bool,
    /// The fragment's Identification (IPv4: 16 bits; IPv6: the Fragment header's 32 bits), 0
    /// for a packet that is not a fragment.
    pub frag_id: u32,
}

/// Parse an IPv4 header at `off`.
#[inline(always)]
pub fn parse_ipv4<P: Packet + ?Sized>(pkt: &P, off: usize) -> Result<L3, Malformed> {
    let h = pkt.read::<20>(off).ok_or(Malformed::Ipv4Truncated)?;
    // Octet 0: version (4 bits) | IHL (4 bits, in 32-bit words, >= 5).
    if h[0] >> 4 != 4 {
        return Err(Malformed::Ipv4BadVersion);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(Malformed::Ipv4BadIhl);
    }
    // Options are skipped but must be present: honour IHL.
    if ihl > 20 {
        pkt.read::<4>(off + ihl - 4).ok_or(Malformed::Ipv4Truncated)?;
    }
    // Octets 6-7: flags (3 bits: reserved, DF, MF) | fragment offset (13 bits); 4-5: Identification.
    let frag = be16([h[6], h[7]]);
    let fragment = frag & 0x2000 != 0 || frag & 0x1fff != 0;
    let frag_first = fragment && frag & 0x1fff == 0;
    let frag_id = if fragment { u32::from(be16([h[4], h[5]])) } else { 0 };
    Ok(L3 {
        proto: h[9],
        src: L3Addr::v4([h[12], h[13], h[14], h[15]]),
        next: off + ihl,
        fragment,
        frag_first,
        frag_id,
    })
}

/// Parse an IPv6 header at `off`, walking up to [`MAX_IPV6_EXT`] extension headers.
#[inline(always)]
pub fn parse_ipv6<P: Packet + ?Sized>(pkt: &P, off: usize) -> Result<L3, Malformed> {
    // Read in pieces rather than all 40 octets at once: the BPF stack is 512 bytes in all.
    // Octet 0: version (4 bits); octet 6: Next Header; octets 8-23: Source Address.
    let h = pkt.read::<8>(off).ok_or(Malformed::Ipv6Truncated)?;
    pkt.read::<2>(off + IPV6_HLEN - 2).ok_or(Malformed::Ipv6Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(Malformed::Ipv6BadVersion);
    }
    let src = pkt.read::<16>(off + 8).ok_or(Malformed::Ipv6Truncated)?;
    let mut next_hdr = h[6];
    let mut next = off + IPV6_HLEN;
    let mut fragment = false;
    let mut frag_first = false;
    let mut frag_id = 0u32;
    for _ in 0..MAX_IPV6_EXT {
        match next_hdr {
            // Hop-by-Hop (0), Routing (43), Destination Options (60): Hdr Ext Len in 8-octet
            // units, not counting the first 8 (RFC 8200 §4.3, §4.4, §4.6).
            0 | 43 | 60 => {
                let e = pkt.read::<2>(next).ok_or(Malformed::Ipv6ExtTruncated)?;
                next_hdr = e[0];
                next += (e[1] as usize + 1) * 8;
            }
            // Authentication Header: Payload Len in 4-octet units, minus 2 (RFC 4302 §2.2).
            51 => {
                let e = pkt.read::<2>(next).ok_or(Malformed::Ipv6ExtTruncated)?;
                next_hdr = e[0];
                next += (e[1] as usize + 2) * 4;
            }
            // Fragment header (RFC 8200 §4.5): Next Header, reserved, Fragment Offset (13 bits) |
            // Res | M, Identification (32 bits); 8 octets.
            44 => {
                let e = pkt.read::<8>(next).ok_or(Malformed::Ipv6ExtTruncated)?;
                next_hdr = e[0];
                let off_m = be16([e[2], e[3]]);
                if off_m & 0xfff9 == 0 {
                    // An atomic fragment (offset 0, M clear; RFC 6946): the whole packet, whose
                    // transport header follows. Parsed like any packet.
                    next += 8;
                    continue;
                }
                fragment = true;
                frag_first = off_m & 0xfff8 == 0;
                frag_id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                if frag_first {
                    next += 8;
                }
                break;
            }
            _ => break,
        }
    }
    if !fragment && matches!(next_hdr, 0 | 43 | 60 | 51 | 44) {
        return Err(Malformed::Ipv6ExtTooDeep);
    }
    Ok(L3 { proto: next_hdr, src: L3Addr::v6(src), next, fragment, frag_first, frag_id })
}

/// The source and destination addresses of the IP packet at `off`, which is `len` octets long
/// (the T-PDU of a G-PDU). `None` when it is not an IP packet of exactly that length: an Ethernet
/// or Unstructured PDU session (TS 23.501 §5.6.10), whose first nibble may be 4 or 6 by chance.
#[inline(always)]
pub fn inner_addrs<P: Packet + ?Sized>(pkt: &P, off: usize, len: usize) -> Option<(L3Addr, L3Addr)> {
    let b = pkt.read::<8>(off)?;
    match b[0] >> 4 {
        4 => {
            // IHL >= 5 words and Total Length = the T-PDU (RFC 791 §3.1).
            let ihl = usize::from(b[0] & 0x0f) * 4;
            if ihl < 20 || ihl > len || usize::from(be16([b[2], b[3]])) != len {
                return None;
            }
            // Octets 12-15: Source Address, 16-19: Destination Address.
            let h = pkt.read::<8>(off + 12)?;
            Some((L3Addr::v4([h[0], h[1], h[2], h[3]]), L3Addr::v4([h[4], h[5], h[6], h[7]])))
        }
        6 => {
            // 40-octet header + Payload Length = the T-PDU (RFC 8200 §3).
            if usize::from(be16([b[4], b[5]])) + 40 != len {
                return None;
            }
            let s = pkt.read::<16>(off + 8)?;
            let d = pkt.read::<16>(off + 24)?;
            Some((L3Addr::v6(s), L3Addr::v6(d)))
        }
        _ => None,
    }
}
