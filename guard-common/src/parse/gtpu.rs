//! GTP-U version 1 header (3GPP TS 29.281 §5.1, §5.2) and the PDU Session Container extension
//! header (TS 38.415 §5.5.2).

use super::{be16, be32, ip, Malformed, Packet};
use crate::abi::{L3Addr, QFI_NONE};

pub const GTPU_PORT: u16 = 2152;
/// The mandatory part of the header (TS 29.281 §5.1, octets 1-8).
pub const GTPU_HLEN: usize = 8;

// Message types (TS 29.281 §6.1, Table 6.1-1).
pub const MSG_ECHO_REQUEST: u8 = 1;
pub const MSG_ECHO_RESPONSE: u8 = 2;
pub const MSG_ERROR_INDICATION: u8 = 26;
pub const MSG_SUPPORTED_EXT_HEADERS: u8 = 31;
pub const MSG_TUNNEL_STATUS: u8 = 253;
pub const MSG_END_MARKER: u8 = 254;
pub const MSG_G_PDU: u8 = 255;

/// Octet 1 flags (TS 29.281 §5.1).
pub const FLAG_E: u8 = 0x04;
pub const FLAG_S: u8 = 0x02;
pub const FLAG_PN: u8 = 0x01;

/// Next Extension Header Type of the PDU Session Container (TS 29.281 §5.2.1, Figure 5.2.1-3).
pub const EXT_PDU_SESSION_CONTAINER: u8 = 0x85;
/// Extension headers walked before the chain is called too long. A real N3 packet carries one
/// (the PDU Session Container), sometimes two.
pub const MAX_EXT_HEADERS: usize = 8;

/// A parsed GTP-U header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtpu {
    /// Octet 1 as sent.
    pub flags: u8,
    pub msg_type: u8,
    /// Octets 3-4: the length of everything after the mandatory 8 octets.
    pub length: u16,
    pub teid: u32,
    /// Extension headers walked.
    pub ext_count: u8,
    /// QFI from a PDU Session Container, or [`QFI_NONE`] as u8.
    pub qfi: u8,
    /// PDU Type from a PDU Session Container (0 DL, 1 UL), or 0xff.
    pub pdu_type: u8,
    /// Offset of the T-PDU (the inner packet of a G-PDU) or the information elements.
    pub payload: usize,
    /// Offset just past this GTP-U message, per its Length field (capped at the frame for a
    /// first IP fragment).
    pub end: usize,
    /// Length of the T-PDU (or information elements) per the Length field, whether or not the
    /// frame holds all of it: what an inner IP header's own length must equal
    /// ([`inner_addrs_into`]).
    pub tpdu_len: u32,
}

impl Gtpu {
    pub const fn is_known_message(msg_type: u8) -> bool {
        matches!(
            msg_type,
            MSG_ECHO_REQUEST
                | MSG_ECHO_RESPONSE
                | MSG_ERROR_INDICATION
                | MSG_SUPPORTED_EXT_HEADERS
                | MSG_TUNNEL_STATUS
                | MSG_END_MARKER
                | MSG_G_PDU
        )
    }
}

/// Parse a GTP-U header at `off`. `udp_payload_len` is the UDP Length minus the UDP header: the
/// GTP-U Length field must fit in it.
#[inline(always)]
pub fn parse<P: Packet + ?Sized>(pkt: &P, off: usize, udp_payload_len: usize) -> Result<Gtpu, Malformed> {
    parse_in(pkt, off, udp_payload_len, true)
}

/// [`parse`] of a message the frame may hold only the start of (`whole == false`: the first IP
/// fragment of a G-PDU, RFC 791 §3.2): the headers must be there, the rest of the message may be
/// in later fragments, so `end` is capped at the frame.
#[inline(always)]
pub fn parse_in<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    udp_payload_len: usize,
    whole: bool,
) -> Result<Gtpu, Malformed> {
    let h = pkt.read::<GTPU_HLEN>(off).ok_or(Malformed::GtpTruncated)?;
    // Octet 1: Version (3 bits) = 1 | PT (1 bit) = 1 for GTP (0 is GTP') | spare | E | S | PN.
    let flags = h[0];
    if flags >> 5 != 1 {
        return Err(Malformed::GtpBadVersion);
    }
    if flags & 0x10 == 0 {
        return Err(Malformed::GtpBadProtocolType);
    }
    let msg_type = h[1];
    // Octets 3-4: Length, in octets, of the payload after the mandatory header; the optional
    // fields and extension headers count as payload (TS 29.281 §5.1).
    let length = be16([h[2], h[3]]);
    let teid = be32([h[4], h[5], h[6], h[7]]);
    let full_end = off + GTPU_HLEN + length as usize;
    let mut end = full_end;
    if GTPU_HLEN + length as usize > udp_payload_len {
        return Err(Malformed::GtpLengthMismatch);
    }
    if end > pkt.len() {
        if whole {
            return Err(Malformed::GtpTruncated);
        }
        end = pkt.len();
    }
    if !Gtpu::is_known_message(msg_type) {
        return Err(Malformed::UnknownMessageType);
    }

    let mut cur = off + GTPU_HLEN;
    let mut next_ext = 0u8;
    if flags & (FLAG_E | FLAG_S | FLAG_PN) != 0 {
        // If any of E, S, PN is set, octets 9-12 are all present: Sequence Number (2), N-PDU
        // Number (1), Next Extension Header Type (1). The last is only meaningful when E is set.
        if length < 4 {
            return Err(Malformed::GtpOptionalTruncated);
        }
        let o = pkt.read::<4>(cur).ok_or(Malformed::GtpOptionalTruncated)?;
        if flags & FLAG_E != 0 {
            next_ext = o[3];
        }
        cur += 4;
    }

    let mut qfi = QFI_NONE as u8;
    let mut pdu_type = 0xffu8;
    let mut ext_count = 0u8;
    // Bounded walk of the extension-header chain (TS 29.281 §5.2.1): each header is
    // Length (in 4-octet units, including itself) | content | Next Extension Header Type.
    for _ in 0..MAX_EXT_HEADERS {
        if next_ext == 0 {
            break;
        }
        // Every extension header is at least 4 octets (length >= 1 unit), so reading 4 here
        // refuses nothing valid (and reads of 1 octet are not verifier-safe; see `Packet`).
        let units = pkt.read::<4>(cur).ok_or(Malformed::ExtOverrun)?[0] as usize;
        if units == 0 {
            return Err(Malformed::ExtZeroLength);
        }
        let elen = units * 4;
        if cur + elen > end {
            return Err(Malformed::ExtOverrun);
        }
        if next_ext == EXT_PDU_SESSION_CONTAINER {
            // TS 38.415 §5.5.2.1/2: octet 1 PDU Type (4 bits) | flags; octet 2 flags (2 bits) |
            // QFI (6 bits), for both DL and UL PDU SESSION INFORMATION.
            let c = pkt.read::<3>(cur).ok_or(Malformed::ExtOverrun)?;
            pdu_type = c[1] >> 4;
            qfi = c[2] & 0x3f;
        }
        // The last octet of the header is the Next Extension Header Type.
        next_ext = pkt.read::<4>(cur + elen - 4).ok_or(Malformed::ExtOverrun)?[3];
        cur += elen;
        ext_count += 1;
    }
    if next_ext != 0 {
        return Err(Malformed::ExtChainTooLong);
    }
    // `cur <= end <= full_end`: every extension header was checked to end by `end`.
    let tpdu_len = full_end.saturating_sub(cur) as u32;
    Ok(Gtpu { flags, msg_type, length, teid, ext_count, qfi, pdu_type, payload: cur, end, tpdu_len })
}

/// [`inner_addrs`], written into `src` and `dst` from inside each IP version's branch, with
/// word stores. Returning the pair merges the IPv4 and IPv6 branches octet by octet: in the XDP
/// program that kept 32 octets live across the merge, spilled to the stack and copied back one
/// by one on every G-PDU.
///
/// A T-PDU is IP only when its header says so *and* its own length is the T-PDU's (IPv4: IHL of
/// at least 5 and Total Length = the T-PDU length, RFC 791 §3.1; IPv6: 40 + Payload Length = the
/// T-PDU length, RFC 8200 §3), with both addresses inside the frame. Anything else is a non-IP
/// T-PDU: an Ethernet or Unstructured PDU session (TS 23.501 §5.6.10.2, §5.6.10.3) carries
/// frames and octets whose first nibble may well be 4 or 6, and such a T-PDU is neither
/// malformed nor a source of addresses. Both are then [`L3Addr::NONE`]: never dropped as
/// malformed, never an anti-spoofing binding or a UE-address key (docs/dataplane.md).
#[inline(always)]
pub fn inner_addrs_into<P: Packet + ?Sized>(pkt: &P, g: &Gtpu, src: &mut L3Addr, dst: &mut L3Addr) {
    use crate::abi::{FAMILY_IPV4, FAMILY_IPV6, FAMILY_NONE};
    let tpdu = g.tpdu_len as usize;
    // Octet 0 of either version: Version (4 bits). A T-PDU of under 20 octets is no IP packet.
    // Read as words (`read_u32s`), here and below: the BPF backend splits an octet array's
    // read into one load per octet and the shifts and ors that rebuild the words (issue 19).
    let head = if g.payload < g.end && tpdu >= 20 { pkt.read_u32s::<2>(g.payload) } else { None };
    let head = head.map(|[a, b]| {
        let (a, b) = (a.to_ne_bytes(), b.to_ne_bytes());
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    });
    let v = head.map_or(0, |b| b[0] >> 4);
    if let (4, Some(b)) = (v, head) {
        // IHL (in words) and Total Length (octets 2-3), RFC 791 §3.1.
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl >= 20 && ihl <= tpdu && usize::from(be16([b[2], b[3]])) == tpdu && g.payload + 20 <= g.end {
            // Octets 12-15: Source Address, 16-19: Destination Address.
            if let Some([s, d]) = pkt.read_u32s::<2>(g.payload + 12) {
                store_addr(src, FAMILY_IPV4, [s, 0, 0, 0]);
                store_addr(dst, FAMILY_IPV4, [d, 0, 0, 0]);
                return;
            }
        }
    } else if let (6, Some(b)) = (v, head) {
        // Payload Length (octets 4-5) counts what follows the 40-octet header, RFC 8200 §3.
        if usize::from(be16([b[4], b[5]])) + 40 == tpdu && g.payload + 40 <= g.end {
            if let (Some(s), Some(d)) = (pkt.read_u32s::<4>(g.payload + 8), pkt.read_u32s::<4>(g.payload + 24)) {
                store_addr(src, FAMILY_IPV6, s);
                store_addr(dst, FAMILY_IPV6, d);
                return;
            }
        }
    }
    store_addr(src, FAMILY_NONE, [0; 4]);
    store_addr(dst, FAMILY_NONE, [0; 4]);
}

/// Write an address as five u32 stores. Volatile: LLVM would otherwise merge the zero words of
/// an IPv4 address into a `memset` call, which the BPF backend emits as a byte-at-a-time loop.
#[inline(always)]
pub fn store_addr(dst: &mut L3Addr, family: u32, addr: [u32; 4]) {
    let f = &raw mut dst.family;
    let a = dst.addr.as_mut_ptr() as *mut u32;
    // SAFETY: `L3Addr` is `#[repr(C)]` { u32, [u8; 16] } with 4-byte alignment, so `addr` is
    // 4-aligned and holds exactly four u32 words; both pointers come from `dst`, a live `&mut`.
    unsafe {
        core::ptr::write_volatile(f, family);
        core::ptr::write_volatile(a, addr[0]);
        core::ptr::write_volatile(a.add(1), addr[1]);
        core::ptr::write_volatile(a.add(2), addr[2]);
        core::ptr::write_volatile(a.add(3), addr[3]);
    }
}

/// The inner (source, destination) of a G-PDU's T-PDU: the reference for [`inner_addrs_into`]
/// (written the plain way, through [`ip::inner_addrs`]); both [`L3Addr::NONE`] when the T-PDU is
/// empty or not IP.
#[inline(always)]
pub fn inner_addrs<P: Packet + ?Sized>(pkt: &P, g: &Gtpu) -> (L3Addr, L3Addr) {
    if g.payload >= g.end {
        return (L3Addr::NONE, L3Addr::NONE);
    }
    match ip::inner_addrs(pkt, g.payload, g.tpdu_len as usize) {
        Some((s, d)) => {
            let need = if s.family == crate::abi::FAMILY_IPV4 { 20 } else { 40 };
            if g.payload + need > g.end {
                return (L3Addr::NONE, L3Addr::NONE);
            }
            (s, d)
        }
        None => (L3Addr::NONE, L3Addr::NONE),
    }
}
