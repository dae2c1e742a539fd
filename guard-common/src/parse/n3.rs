//! The whole N3 parse: Ethernet → IPv4/IPv6 → UDP to the GTP-U port → GTP-U → inner source.

use super::{be16, ethernet, gtpu, ip, udp, Malformed, Packet};
use crate::abi::{L3Addr, QFI_NONE};

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
    /// The index of the outer destination (the host's N3 address the packet was sent to, whose
    /// TEID it names: the F-TEID, TS 29.281 §5.1) in the host's N3 address table
    /// (`abi::LocalAddr`): not written by the parser, but by the data plane after it, which reads
    /// the address ([`outer_dst_addr`]) only when the table lists any (0 until then).
    pub local: u32,
    pub vlan_tags: u8,
    pub gtp: gtpu::Gtpu,
    /// Inner source of a G-PDU (the UE address), or [`L3Addr::NONE`].
    pub inner_src: L3Addr,
    /// Inner destination of a G-PDU (the server the device talks to), or [`L3Addr::NONE`].
    pub inner_dst: L3Addr,
    /// [`FRAG_NONE`], [`FRAG_FIRST`] (judged like a whole packet) or [`FRAG_LATER`] (no GTP-U
    /// header: `parse_into` returns `Ok(false)` with `outer_src`, `vlan_tags` and `frag` set).
    pub frag_kind: u32,
    /// The IP Identification of a fragment; meaningful only when `frag_kind` is not
    /// [`FRAG_NONE`] (a whole packet leaves it as it was).
    pub frag: u32,
}

/// [`GtpPacket::frag_kind`]: not a fragment (nor an IPv6 atomic fragment, which is whole).
pub const FRAG_NONE: u32 = 0;
/// The first fragment of a UDP datagram: its UDP and GTP-U headers are parsed.
pub const FRAG_FIRST: u32 = 1;
/// A later fragment of a UDP datagram.
pub const FRAG_LATER: u32 = 2;

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
    out.frag_kind = FRAG_NONE;
    let l2 = ethernet::parse(pkt)?;
    let l3 = match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => ip::parse_ipv4(pkt, l2.next)?,
        ethernet::ETHERTYPE_IPV6 => ip::parse_ipv6(pkt, l2.next)?,
        _ => return Ok(false),
    };
    if l3.proto != ip::IPPROTO_UDP {
        return Ok(false);
    }
    // Written for fragments only: `frag` is read only when `frag_kind` says fragment, and one
    // store less on every whole packet keeps the fast path as it was (it measured 8 ns).
    if l3.fragment {
        out.frag = l3.frag_id;
    }
    if l3.fragment && !l3.frag_first {
        // A later fragment: no UDP or GTP-U header. The caller drops it if the first fragment of
        // its datagram was dropped (`frag_kind`), else passes it.
        out.outer_src = l3.src;
        out.vlan_tags = l2.vlan_tags;
        out.frag_kind = FRAG_LATER;
        return Ok(false);
    }
    out.frag_kind = if l3.fragment { FRAG_FIRST } else { FRAG_NONE };
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
    // A first fragment holds the start of the datagram only (RFC 791 §3.2).
    let whole = !l3.fragment;
    if whole && l3.next + ulen > pkt.len() {
        return Err(Malformed::GtpTruncated);
    }
    let g = gtpu::parse_in(pkt, u.next, ulen - udp::UDP_HLEN, whole)?;
    // The inner addresses are written in place (`inner_addrs_into` says why); `outer_src` was
    // written above. A non-G-PDU has none.
    if g.msg_type == gtpu::MSG_G_PDU {
        gtpu::inner_addrs_into(pkt, &g, &mut out.inner_src, &mut out.inner_dst);
    } else {
        gtpu::store_addr(&mut out.inner_src, crate::abi::FAMILY_NONE, [0; 4]);
        gtpu::store_addr(&mut out.inner_dst, crate::abi::FAMILY_NONE, [0; 4]);
    }
    out.vlan_tags = l2.vlan_tags;
    out.gtp = g;
    Ok(true)
}

/// The outer destination (the host's own GTP-U address) of a frame [`parse_into`] accepted, as
/// an address record, read as native words at the IP header's fixed offset: 16 in IPv4, 24 in
/// IPv6 (RFC 791 §3.1, RFC 8200 §3), after `vlan_tags` 802.1Q tags. Signalling needs it (the Echo
/// path, [`outer_dst_words`]), a fragment's datagram key, and the F-TEID's local index where the
/// host lists its N3 addresses (a host with one address never reads it on the common path);
/// those compare and hash the record, so the words go into it as they are (`read_u32s`: the BPF
/// backend would split an unaligned octet array into one load per octet; issue 19).
#[inline(always)]
pub fn outer_dst_addr<P: Packet + ?Sized>(pkt: &P, vlan_tags: u8, family: u32) -> Option<L3Addr> {
    let l3 = ethernet::ETH_HLEN + 4 * usize::from(vlan_tags.min(2));
    if family == crate::abi::FAMILY_IPV4 {
        let [a] = pkt.read_u32s::<1>(l3 + 16)?;
        Some(L3Addr::from_words([family, a, 0, 0, 0]))
    } else if family == crate::abi::FAMILY_IPV6 {
        let [a, b, c, d] = pkt.read_u32s::<4>(l3 + 24)?;
        Some(L3Addr::from_words([family, a, b, c, d]))
    } else {
        None
    }
}

/// [`outer_dst_addr`] as four big-endian words (IPv4 in the first, the rest zero): the Echo
/// path's slot hash takes them so (TS 29.281 §7.2.1, `policy::echo_path_slot`).
#[inline(always)]
pub fn outer_dst_words<P: Packet + ?Sized>(pkt: &P, vlan_tags: u8, family: u32) -> Option<[u32; 4]> {
    let w = outer_dst_addr(pkt, vlan_tags, family)?.words();
    // Each word holds its octets in wire order: `from_be` reads them as the big-endian value.
    Some([u32::from_be(w[1]), u32::from_be(w[2]), u32::from_be(w[3]), u32::from_be(w[4])])
}

/// [`parse_into`] with a fast path first: the common N3 frame ([`parse_common`]) at fixed
/// offsets, anything else through the full parser. Same results (on `Ok(false)` from the fast
/// path only `frag_kind` is written, [`FRAG_NONE`]: the one field a caller reads then).
#[inline(always)]
pub fn parse_into_fast<P: Packet + ?Sized>(pkt: &P, gtpu_port: u16, out: &mut GtpPacket) -> Result<bool, Malformed> {
    match parse_common(pkt, gtpu_port, out) {
        Common::Gtp => Ok(true),
        Common::NotGtp => {
            out.frag_kind = FRAG_NONE;
            Ok(false)
        }
        Common::Other => parse_into(pkt, gtpu_port, out),
    }
}

/// What the fixed-offset path made of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Common {
    /// The common G-PDU: `out` holds exactly what [`parse_into`] writes for it (`Ok(true)`).
    Gtp,
    /// A common frame that is not GTP-U: [`parse_into`] would return `Ok(false)` and leave
    /// `frag_kind` at [`FRAG_NONE`] (not a later fragment), i.e. the program passes it untouched.
    /// Nothing is written to `out` (the program does not even look its scratch slot up): an
    /// EtherType other than IPv4, IPv6 and the two VLAN tags; untagged IPv4 (IHL 5) or IPv6 whose
    /// protocol (Next Header, not an extension header) is not UDP, with the whole IP header in the
    /// frame; the same with UDP (IPv4 not a fragment) to another port than GTP-U's and the UDP
    /// header in the frame.
    NotGtp,
    /// Anything else (or no `out` to write to): `out` partly written; the caller parses in full.
    Other,
}

/// [`parse_common`] for the common G-PDU only: `true` when it is one.
#[inline(always)]
pub fn parse_common_into<P: Packet + ?Sized>(pkt: &P, gtpu_port: u16, out: &mut GtpPacket) -> bool {
    parse_common(pkt, gtpu_port, out) == Common::Gtp
}

/// [`parse_common_with`] into `out`.
#[inline(always)]
pub fn parse_common<P: Packet + ?Sized>(pkt: &P, gtpu_port: u16, out: &mut GtpPacket) -> Common {
    parse_common_with(pkt, gtpu_port, || Some(out))
}

/// Offsets in the common frames, from the IP header's (`IP`: 14 untagged, 18 behind one VLAN
/// tag, IEEE 802.1Q §9): IPv4 without options (20 octets, RFC 791 §3.1) or IPv6 without extension
/// headers (40 octets, RFC 8200 §3), then UDP.
const fn c_udp(ip: usize) -> usize {
    ip + 20
}
const fn c6_udp(ip: usize) -> usize {
    ip + 40
}
/// The IPv6 Source Address (octets 8-23 of the header, RFC 8200 §3).
const fn c6_src(ip: usize) -> usize {
    ip + 8
}
/// The IP header of an untagged frame and of a frame with one VLAN tag.
const IP_UNTAGGED: usize = ethernet::ETH_HLEN;
const IP_TAGGED: usize = ethernet::ETH_HLEN + 4;

/// IPv6 Next Header values the full parser walks as extension headers (`ip::parse_ipv6`):
/// Hop-by-Hop, Routing, Fragment, AH, Destination Options.
#[inline(always)]
fn ipv6_ext(next: u8) -> bool {
    matches!(next, 0 | 43 | 44 | 51 | 60)
}

/// The common uplink G-PDU, parsed at fixed offsets with a handful of bounds checks: untagged
/// Ethernet, then IPv4 without options and not a fragment or IPv6 with Next Header UDP (no
/// extension headers), UDP to the GTP-U port, a GTP-U v1 G-PDU with either no optional fields or
/// only a PDU Session Container (flags 0x30 or 0x34, one 4-octet extension header, TS 29.281
/// §5.2.1 and TS 38.415 §5.5.2): [`Common::Gtp`], and `out()` holds exactly what [`parse_into`]
/// would write. The common frames that are not GTP-U ([`Common::NotGtp`]: other EtherTypes,
/// other IP protocols, UDP to another port) are decided before `out` is asked for, so the
/// pass-through every other packet on an N3 NIC takes (issue 19) costs the program no state at
/// all. Anything else (including every malformed frame) is [`Common::Other`], and the caller
/// parses in full.
///
/// Why: the full parser walks VLAN tags, IPv4 options, IPv6 extension headers and the GTP-U
/// extension chain, which on the BPF target costs loops, spills and a bounds check per field; the
/// common frame needs none of that. Host property tests and the fuzzer hold it to the full
/// parser's results.
#[inline(always)]
pub fn parse_common_with<'o, P, F>(pkt: &P, gtpu_port: u16, out: F) -> Common
where
    P: Packet + ?Sized,
    F: FnOnce() -> Option<&'o mut GtpPacket>,
{
    // Small windows rather than one read of the 50 octets: in the kernel each read is a copy on
    // the 512-byte BPF stack, shared with the policy's frame.
    // Octets 12-29: EtherType, then the IP header's first 16 octets (IPv4 up to its Source
    // Address; IPv6 up to the middle of its Source Address).
    let Some(h) = pkt.read::<18>(12) else {
        return Common::Other;
    };
    ip_common::<P, F, IP_UNTAGGED, false>(pkt, gtpu_port, out, h, 0)
}

/// [`parse_common_with`] from the EtherType on: `h` holds the EtherType (octets 0-1) and the IP
/// header's first 16 octets, which start at `IP`; `vlan_tags` tags came before it (`TAGGED`: one,
/// so a second is not walked here). Instantiated once per tag count, so every offset is a
/// constant.
#[inline(always)]
fn ip_common<'o, P, F, const IP: usize, const TAGGED: bool>(
    pkt: &P,
    gtpu_port: u16,
    out: F,
    h: [u8; 18],
    vlan_tags: u8,
) -> Common
where
    P: Packet + ?Sized,
    F: FnOnce() -> Option<&'o mut GtpPacket>,
{
    use crate::abi::{FAMILY_IPV4, FAMILY_IPV6};
    if h[0] == 0x08 && h[1] == 0x00 && h[2] == 0x45 {
        // EtherType IPv4; version 4, IHL 5 (RFC 791 §3.1).
        if h[11] != ip::IPPROTO_UDP {
            // Another protocol: not GTP-U whatever the fragment bits say (the full parser decides
            // on the protocol first), once the 20-octet header is in the frame.
            return if pkt.len() >= c_udp(IP) { Common::NotGtp } else { Common::Other };
        }
        // Flags and fragment offset: MF clear and offset 0 (DF may be set).
        if h[8] & 0x3f != 0 || h[9] != 0 {
            return Common::Other;
        }
        // The Source Address is read again, only for a GTP-U frame: taken from `h`, LLVM loads
        // and spills its octets before the port is known, which every pass-through paid.
        udp_gtpu(pkt, c_udp(IP), gtpu_port, out, FAMILY_IPV4, vlan_tags, || {
            let [a] = pkt.read_u32s::<1>(IP + 12)?;
            Some([a, 0, 0, 0])
        })
    } else if h[0] == 0x86 && h[1] == 0xdd && h[2] >> 4 == 6 {
        // EtherType IPv6, Version 6. Next Header UDP: no extension header, so no fragment either
        // (RFC 8200 §3, §4). Traffic Class, Flow Label, Payload Length and Hop Limit are not
        // read, as the full parser does not read them (the UDP and GTP-U lengths are what bound
        // the message, and they are checked against the frame below).
        if h[8] != ip::IPPROTO_UDP {
            // Another upper-layer protocol (not an extension header to walk), once the 40-octet
            // header is in the frame: not GTP-U.
            return if !ipv6_ext(h[8]) && pkt.len() >= c6_udp(IP) { Common::NotGtp } else { Common::Other };
        }
        // The Source Address is read only for a GTP-U frame, as four words (`read_u32s`: in the
        // kernel four loads where octets from `h` cost sixteen loads and the shifts and ors that
        // put the words together: 1-2 ns per IPv6 G-PDU, BENCHMARKS.md §11).
        let outer = || pkt.read_u32s::<4>(c6_src(IP));
        udp_gtpu(pkt, c6_udp(IP), gtpu_port, out, FAMILY_IPV6, vlan_tags, outer)
    } else {
        let ethertype = be16([h[0], h[1]]);
        if !TAGGED && (ethertype == ethernet::ETHERTYPE_VLAN || ethertype == ethernet::ETHERTYPE_QINQ) {
            // One VLAN tag (common on N3 links), checked after the untagged IP EtherTypes so an
            // untagged frame never pays for it: its TCI is not read (the full parser does not
            // read it either), and the same window 4 octets on holds the inner EtherType and the
            // IP header. A second tag is one of the EtherTypes below: the full parser's.
            let Some(h) = pkt.read::<18>(IP_TAGGED - 2) else {
                return Common::Other;
            };
            return ip_common::<P, F, IP_TAGGED, true>(pkt, gtpu_port, out, h, 1);
        }
        match ethertype {
            // IP with another version nibble or IHL (malformed or options), a (further) VLAN
            // tag: the full parser's.
            ethernet::ETHERTYPE_IPV4
            | ethernet::ETHERTYPE_IPV6
            | ethernet::ETHERTYPE_VLAN
            | ethernet::ETHERTYPE_QINQ => Common::Other,
            // ARP, LLDP, ...: the full parser reads the EtherType and passes.
            _ => Common::NotGtp,
        }
    }
}

/// The part of [`parse_common_with`] after the IP header, from the UDP header at `udp_at`: inlined
/// into each IP version's and tag count's branch with a constant `udp_at`, so every offset stays
/// a constant and the outer address is stored from inside its own version's branch (ARCHITECTURE.md, verifier
/// notes: addresses merged across the two branches are spilled and copied octet by octet).
#[inline(always)]
fn udp_gtpu<'o, P, F>(
    pkt: &P,
    udp_at: usize,
    gtpu_port: u16,
    out: F,
    family: u32,
    vlan_tags: u8,
    outer: impl FnOnce() -> Option<[u32; 4]>,
) -> Common
where
    P: Packet + ?Sized,
    F: FnOnce() -> Option<&'o mut GtpPacket>,
{
    let gtp_opt = udp_at + udp::UDP_HLEN + gtpu::GTPU_HLEN;
    // The UDP header, then the GTP-U mandatory header, as words (`read_u32s`): the BPF backend
    // splits an octet array's read into one load per octet, and the shifts and ors that put the
    // TEID and the lengths back together. The UDP header's two words first: the whole header
    // is what the full parser needs in the frame before it says "not GTP-U" by the port, and a
    // pass-through reads nothing more.
    let Some([w0, w1]) = pkt.read_u32s::<2>(udp_at) else {
        return Common::Other;
    };
    let p = w0.to_ne_bytes();
    if be16([p[2], p[3]]) != gtpu_port {
        // Not addressed to GTP-U: the full parser has checked nothing more by then (Ethernet, the
        // IP version, IPv4's IHL and fragment bits or IPv6's Next Header, a whole UDP header),
        // and returns `Ok(false)`, not a fragment.
        return Common::NotGtp;
    }
    let Some([w2, w3]) = pkt.read_u32s::<2>(udp_at + 8) else {
        return Common::Other;
    };
    let (u1, u2) = (w1.to_ne_bytes(), w2.to_ne_bytes());
    // UDP (RFC 768): Length covering at least its header and inside the frame.
    let len = pkt.len();
    let ulen = be16([u1[0], u1[1]]) as usize;
    if ulen < udp::UDP_HLEN || udp_at + ulen > len {
        return Common::Other;
    }
    // GTP-U (TS 29.281 §5.1): version 1, PT 1, no S or PN, E optional; a G-PDU whose Length fits
    // in the UDP payload and the frame.
    let flags = u2[0];
    if (flags != 0x30 && flags != 0x30 | gtpu::FLAG_E) || u2[1] != gtpu::MSG_G_PDU {
        return Common::Other;
    }
    let length = be16([u2[2], u2[3]]);
    // The word holds the TEID's octets in wire order (`from_ne_bytes`).
    let teid = u32::from_be_bytes(w3.to_ne_bytes());
    let end = gtp_opt + length as usize;
    if gtpu::GTPU_HLEN + length as usize > ulen - udp::UDP_HLEN || end > len {
        return Common::Other;
    }
    let (mut payload, mut ext_count, mut qfi, mut pdu_type) = (gtp_opt, 0u8, QFI_NONE as u8, 0xffu8);
    if flags & gtpu::FLAG_E != 0 {
        // Octets 9-12 (sequence, N-PDU, next type = PDU Session Container), then the container:
        // length 1 (4 octets), PDU Type | flags, flags | QFI, next type 0 (end of chain).
        let Some([e0, e1]) = pkt.read_u32s::<2>(gtp_opt) else {
            return Common::Other;
        };
        let (a, b) = (e0.to_ne_bytes(), e1.to_ne_bytes());
        let e = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        if e[3] != gtpu::EXT_PDU_SESSION_CONTAINER || e[4] != 1 || e[7] != 0 || gtp_opt + 8 > end {
            return Common::Other;
        }
        (payload, ext_count, qfi, pdu_type) = (gtp_opt + 8, 1, e[6] & 0x3f, e[5] >> 4);
    }
    let Some(outer) = outer() else {
        return Common::Other;
    };
    let Some(out) = out() else {
        return Common::Other;
    };
    gtpu::store_addr(&mut out.outer_src, family, outer);
    out.vlan_tags = vlan_tags;
    out.frag_kind = FRAG_NONE;
    let tpdu_len = (end - payload) as u32;
    out.gtp =
        gtpu::Gtpu { flags, msg_type: gtpu::MSG_G_PDU, length, teid, ext_count, qfi, pdu_type, payload, end, tpdu_len };
    // The T-PDU's addresses, read as the full parser reads them (a T-PDU that is not IP has none).
    gtpu::inner_addrs_into(pkt, &out.gtp, &mut out.inner_src, &mut out.inner_dst);
    Common::Gtp
}

impl GtpPacket {
    /// A placeholder to parse into.
    pub const EMPTY: GtpPacket = GtpPacket {
        outer_src: L3Addr::NONE,
        local: 0,
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
            tpdu_len: 0,
        },
        inner_src: L3Addr::NONE,
        inner_dst: L3Addr::NONE,
        frag_kind: FRAG_NONE,
        frag: 0,
    };
}
