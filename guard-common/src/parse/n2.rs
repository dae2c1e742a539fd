//! The whole N2 parse: Ethernet (+VLAN) → IPv4/IPv6 → SCTP (protocol 132) to the NGAP / S1AP
//! port → a bounded chunk walk, counting chunk types, reading the PDU header of every DATA chunk
//! that begins an NGAP (PPID 60) / S1AP (PPID 18) message, and noting where InitialUEMessages
//! start so their IEs can be walked ([`super::ngap::initial_ue`], a separate step so that in the
//! kernel it is a BPF subprogram of its own).
//!
//! The SCTP packet ends where the IP packet ends (IPv4 Total Length, IPv6 Payload Length), not at
//! the end of the frame: Ethernet pads short frames, and padding is not a chunk.

use super::{be16, be32, ethernet, ip, ngap, sctp, Malformed, Packet};
use crate::abi::n2::{
    CHUNK_CLASS_COOKIE_ECHO, CHUNK_CLASS_COUNT, CHUNK_CLASS_DATA, CHUNK_CLASS_INIT, PPID_NGAP, PPID_S1AP,
    PROC_CLASS_COUNT,
};
use crate::abi::L3Addr;

/// Chunks walked per packet. Setup chunks are always first (INIT alone, RFC 9260 §6.10;
/// COOKIE-ECHO first, §5.1), so a longer bundle needs no more for enforcement; for accounting,
/// 16 covers a SACK and the InitialUEMessages an SCTP stack bundles into one 1500-octet packet
/// (a DATA chunk with a short InitialUEMessage is about 90 octets).
pub const MAX_CHUNKS: usize = 16;
/// InitialUEMessages per packet whose IEs are walked (more are counted in `N2_STAT_UE_SKIPPED`
/// and on the peer, never on a cell).
pub const MAX_UE_MSGS: usize = 16;

/// Why an N2 packet was malformed: one counter per reason in `N2_MALFORMED`. Reasons up to
/// [`N2Malformed::Ipv6ExtTooDeep`] are found below SCTP: those packets pass (the kernel drops
/// them). From [`N2Malformed::SctpTruncated`] on, the packet is SCTP and is dropped when
/// `N2_PROT_MALFORMED` is enforced.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum N2Malformed {
    EthTruncated = 0,
    VlanTruncated = 1,
    VlanTooDeep = 2,
    Ipv4Truncated = 3,
    Ipv4BadVersion = 4,
    Ipv4BadIhl = 5,
    Ipv6Truncated = 6,
    Ipv6BadVersion = 7,
    Ipv6ExtTruncated = 8,
    Ipv6ExtTooDeep = 9,
    /// The common header is cut, or the IP length runs past the frame or leaves no room for it.
    SctpTruncated = 10,
    /// A common header and no chunk.
    NoChunks = 11,
    /// 1-3 octets after the last chunk: too short for a chunk header.
    ChunkTruncated = 12,
    /// Chunk Length below 4, or below the type's fixed part (DATA 16, INIT 20, SACK 16 ...).
    ChunkTooShort = 13,
    /// Chunk Length past the end of the packet.
    ChunkOverrun = 14,
    /// INIT, INIT ACK or SHUTDOWN COMPLETE bundled with other chunks (RFC 9260 §6.10).
    InitBundled = 15,
    /// A packet with INIT and a non-zero verification tag (RFC 9260 §8.5.1).
    InitBadVtag = 16,
}

impl N2Malformed {
    pub const COUNT: u32 = 17;

    pub const ALL: [N2Malformed; Self::COUNT as usize] = [
        N2Malformed::EthTruncated,
        N2Malformed::VlanTruncated,
        N2Malformed::VlanTooDeep,
        N2Malformed::Ipv4Truncated,
        N2Malformed::Ipv4BadVersion,
        N2Malformed::Ipv4BadIhl,
        N2Malformed::Ipv6Truncated,
        N2Malformed::Ipv6BadVersion,
        N2Malformed::Ipv6ExtTruncated,
        N2Malformed::Ipv6ExtTooDeep,
        N2Malformed::SctpTruncated,
        N2Malformed::NoChunks,
        N2Malformed::ChunkTruncated,
        N2Malformed::ChunkTooShort,
        N2Malformed::ChunkOverrun,
        N2Malformed::InitBundled,
        N2Malformed::InitBadVtag,
    ];

    /// True when the packet was already known to be SCTP.
    pub const fn is_sctp(self) -> bool {
        self as u32 >= N2Malformed::SctpTruncated as u32
    }

    /// The N2 reason of an Ethernet / IP parse error.
    #[inline(always)]
    pub const fn from_l3(m: Malformed) -> Self {
        match m {
            Malformed::EthTruncated => N2Malformed::EthTruncated,
            Malformed::VlanTruncated => N2Malformed::VlanTruncated,
            Malformed::VlanTooDeep => N2Malformed::VlanTooDeep,
            Malformed::Ipv4Truncated => N2Malformed::Ipv4Truncated,
            Malformed::Ipv4BadVersion => N2Malformed::Ipv4BadVersion,
            Malformed::Ipv4BadIhl => N2Malformed::Ipv4BadIhl,
            Malformed::Ipv6Truncated => N2Malformed::Ipv6Truncated,
            Malformed::Ipv6BadVersion => N2Malformed::Ipv6BadVersion,
            Malformed::Ipv6ExtTruncated => N2Malformed::Ipv6ExtTruncated,
            Malformed::Ipv6ExtTooDeep => N2Malformed::Ipv6ExtTooDeep,
            // The Ethernet and IP parsers return nothing else.
            _ => N2Malformed::Ipv4Truncated,
        }
    }

    /// A stable snake_case name (metric label, JSON, CLI).
    pub const fn name(self) -> &'static str {
        match self {
            N2Malformed::EthTruncated => "eth_truncated",
            N2Malformed::VlanTruncated => "vlan_truncated",
            N2Malformed::VlanTooDeep => "vlan_too_deep",
            N2Malformed::Ipv4Truncated => "ipv4_truncated",
            N2Malformed::Ipv4BadVersion => "ipv4_bad_version",
            N2Malformed::Ipv4BadIhl => "ipv4_bad_ihl",
            N2Malformed::Ipv6Truncated => "ipv6_truncated",
            N2Malformed::Ipv6BadVersion => "ipv6_bad_version",
            N2Malformed::Ipv6ExtTruncated => "ipv6_ext_truncated",
            N2Malformed::Ipv6ExtTooDeep => "ipv6_ext_too_deep",
            N2Malformed::SctpTruncated => "sctp_truncated",
            N2Malformed::NoChunks => "no_chunks",
            N2Malformed::ChunkTruncated => "chunk_truncated",
            N2Malformed::ChunkTooShort => "chunk_too_short",
            N2Malformed::ChunkOverrun => "chunk_overrun",
            N2Malformed::InitBundled => "init_bundled",
            N2Malformed::InitBadVtag => "init_bad_vtag",
        }
    }
}

/// What the N2 program needs to know about one SCTP packet. `#[repr(C)]`: in the kernel it lives
/// in a per-CPU map slot and is written field by field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct N2Packet {
    /// The peer (IP source).
    pub src: L3Addr,
    pub vtag: u32,
    pub sport: u16,
    pub dport: u16,
    /// By destination port: [`ngap::PROTO_NGAP`] or [`ngap::PROTO_S1AP`].
    pub port_proto: u8,
    pub vlan_tags: u8,
    /// Chunks walked.
    pub chunks: u8,
    /// 1 when the walk stopped before the end of the packet (see `N2_STAT_WALK_CUT`).
    pub walk_cut: u8,
    /// Chunks walked per `CHUNK_CLASS_*`.
    pub chunk_counts: [u8; 16],
    /// Messages per `PROC_*` (DATA chunks of PPID 60/18 with the B bit).
    pub procs: [u8; PROC_CLASS_COUNT],
    /// InitialUEMessages recorded in `ue_off` / `ue_end` / `ue_proto`.
    pub ue_count: u8,
    /// InitialUEMessages beyond [`MAX_UE_MSGS`].
    pub ue_skipped: u8,
    pub ue_proto: [u8; MAX_UE_MSGS],
    pub _pad0: [u8; 2],
    /// Offset of each InitialUEMessage PDU and the end of its DATA chunk's user data.
    pub ue_off: [u32; MAX_UE_MSGS],
    pub ue_end: [u32; MAX_UE_MSGS],
    /// Walk state: the offset of the next chunk, and the end of the SCTP packet (the end of the
    /// IP packet, not of the frame).
    pub cur: u32,
    pub end: u32,
    /// 1 when an INIT, INIT ACK or SHUTDOWN COMPLETE was walked (they must be alone).
    pub alone: u8,
    /// 1 when chunks the walk did not read may be DATA (see [`finish`]): the packet is treated as
    /// carrying DATA, so no setup limit drops it (a COOKIE ECHO with a 500-octet cookie bundled
    /// with DATA, RFC 9260 §5.1, or a first fragment cut inside its chunks).
    pub may_data: u8,
    /// [`FRAG_NONE`], [`FRAG_FIRST`] or [`FRAG_LATER`].
    pub frag: u8,
    pub _pad: u8,
    /// The IP source as on the wire. `src` is the peer: the same, unless the kernel found this
    /// address to be another path of a multi-homed peer (`N2_ALIAS`, RFC 9260 §6.4) and
    /// replaced `src` with the peer's primary address. Per-path state (issued cookies,
    /// association ports) is keyed by the wire source.
    pub wire_src: L3Addr,
    pub _pad2: u32,
}

/// [`N2Packet::frag`]: a whole IP packet.
pub const FRAG_NONE: u8 = 0;
/// The first IP fragment of an SCTP packet (offset 0, more to come): it holds the common header
/// and the first chunks, which are judged like a whole packet's; the walk ends at the fragment.
pub const FRAG_FIRST: u8 = 1;
/// A later IP fragment (offset > 0) of SCTP: no transport header, so no port, no chunk. Only
/// what depends on the source alone applies (allow-list, whole-peer quarantine).
pub const FRAG_LATER: u8 = 2;

impl N2Packet {
    pub const EMPTY: N2Packet = N2Packet {
        src: L3Addr::NONE,
        vtag: 0,
        sport: 0,
        dport: 0,
        port_proto: 0,
        vlan_tags: 0,
        chunks: 0,
        walk_cut: 0,
        chunk_counts: [0; 16],
        procs: [0; PROC_CLASS_COUNT],
        ue_count: 0,
        ue_skipped: 0,
        ue_proto: [0; MAX_UE_MSGS],
        _pad0: [0; 2],
        ue_off: [0; MAX_UE_MSGS],
        ue_end: [0; MAX_UE_MSGS],
        cur: 0,
        end: 0,
        alone: 0,
        may_data: 0,
        frag: FRAG_NONE,
        _pad: 0,
        wire_src: L3Addr::NONE,
        _pad2: 0,
    };

    /// The chunk walk is at the packet's end: [`chunk_step`] has nothing more to read (the kernel
    /// asks before calling it, to save a call that would only say so).
    #[inline(always)]
    pub fn chunks_done(&self) -> bool {
        self.cur >= self.end
    }

    #[inline(always)]
    pub fn count(&self, class: usize) -> u8 {
        if class < CHUNK_CLASS_COUNT {
            self.chunk_counts[class]
        } else {
            0
        }
    }

    /// The packet carries (or, for chunks beyond the walk, may carry) DATA or I-DATA.
    #[inline(always)]
    pub fn has_data(&self) -> bool {
        self.chunk_counts[CHUNK_CLASS_DATA] != 0 || self.may_data != 0
    }

    /// The packet carries a COOKIE ECHO (always its first chunk, RFC 9260 §5.1 / §6.10).
    #[inline(always)]
    pub fn has_cookie_echo(&self) -> bool {
        self.chunk_counts[CHUNK_CLASS_COOKIE_ECHO] != 0
    }

    /// The packet carries an INIT (always alone, RFC 9260 §6.10).
    #[inline(always)]
    pub fn has_init(&self) -> bool {
        self.chunk_counts[CHUNK_CLASS_INIT] != 0
    }

    /// The packet carries an association-setup chunk (INIT or COOKIE-ECHO).
    #[inline(always)]
    pub fn has_setup(&self) -> bool {
        self.chunk_counts[CHUNK_CLASS_INIT] != 0 || self.chunk_counts[CHUNK_CLASS_COOKIE_ECHO] != 0
    }
}

/// Parse one frame into `out`. `Ok(false)`: not N2 (another EtherType or protocol, an IP
/// fragment, SCTP to another port): `out` then holds nothing useful. `Ok(true)`: an SCTP packet
/// to the NGAP or S1AP port, every field of `out` written. `Err`: malformed; when the reason
/// [`N2Malformed::is_sctp`], `out.src` is the peer.
///
/// This is [`parse_head`], up to [`MAX_CHUNKS`] [`chunk_step`]s and [`finish`]. The kernel runs the
/// same three, each chunk step in a BPF subprogram of its own (see `guard-ebpf/src/n2.rs`).
#[inline(always)]
pub fn parse_into<P: Packet + ?Sized>(
    pkt: &P,
    ngap_port: u16,
    s1ap_port: u16,
    out: &mut N2Packet,
) -> Result<bool, N2Malformed> {
    *out = N2Packet::EMPTY;
    if !parse_head(pkt, ngap_port, s1ap_port, out)? {
        return Ok(false);
    }
    for _ in 0..MAX_CHUNKS {
        if !chunk_step(pkt, out)? {
            break;
        }
    }
    finish(out)?;
    Ok(true)
}

/// Ethernet, IP and the SCTP common header (RFC 9260 §3.1). `Ok(true)`: SCTP to the NGAP or
/// S1AP port; the walk state (`cur`, `end`) points at the first chunk.
///
/// `out` must be [`N2Packet::EMPTY`] on entry: only what is found is written. (In the kernel the
/// per-CPU slot is cleared with word stores; field-by-field resets here would be merged by LLVM
/// into a `memset`, a byte loop in BPF.)
#[inline(always)]
pub fn parse_head<P: Packet + ?Sized>(
    pkt: &P,
    ngap_port: u16,
    s1ap_port: u16,
    out: &mut N2Packet,
) -> Result<bool, N2Malformed> {
    let l2 = ethernet::parse(pkt).map_err(N2Malformed::from_l3)?;
    let (l3, ip_end) = match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let l3 = ip::parse_ipv4(pkt, l2.next).map_err(N2Malformed::from_l3)?;
            // Octets 2-3: Total Length, header included (RFC 791 §3.1).
            let h = pkt.read::<4>(l2.next).ok_or(N2Malformed::Ipv4Truncated)?;
            (l3, l2.next + be16([h[2], h[3]]) as usize)
        }
        ethernet::ETHERTYPE_IPV6 => {
            let l3 = ip::parse_ipv6(pkt, l2.next).map_err(N2Malformed::from_l3)?;
            // Octets 4-5: Payload Length, extension headers included (RFC 8200 §3).
            let h = pkt.read::<6>(l2.next).ok_or(N2Malformed::Ipv6Truncated)?;
            (l3, l2.next + 40 + be16([h[4], h[5]]) as usize)
        }
        _ => return Ok(false),
    };
    if l3.proto != ip::IPPROTO_SCTP {
        return Ok(false);
    }
    out.src = l3.src;
    out.wire_src = l3.src;
    if l3.fragment && !l3.frag_first {
        // A later fragment: no SCTP header to read (RFC 791 §3.2, RFC 8200 §4.5). The walk is
        // empty (`cur` = `end` = 0); the caller judges the source only.
        out.frag = FRAG_LATER;
        return Ok(true);
    }
    if l3.fragment {
        out.frag = FRAG_FIRST;
    }
    let c = sctp::parse_common(pkt, l3.next).ok_or(N2Malformed::SctpTruncated)?;
    let port_proto = if ngap_port != 0 && c.dst_port == ngap_port {
        ngap::PROTO_NGAP
    } else if s1ap_port != 0 && c.dst_port == s1ap_port {
        ngap::PROTO_S1AP
    } else {
        return Ok(false);
    };
    let end = ip_end;
    if end > pkt.len() || end < l3.next + sctp::SCTP_HLEN {
        return Err(N2Malformed::SctpTruncated);
    }
    out.vtag = c.vtag;
    out.sport = c.src_port;
    out.dport = c.dst_port;
    out.port_proto = port_proto;
    out.vlan_tags = l2.vlan_tags;
    let cur = l3.next + sctp::SCTP_HLEN;
    if cur >= end {
        return Err(N2Malformed::NoChunks);
    }
    out.cur = cur as u32;
    out.end = end as u32;
    Ok(true)
}

/// One chunk at `out.cur` (RFC 9260 §3.2): check its length, count its class, read the PDU header
/// of a DATA chunk, advance `out.cur` past the padding. `Ok(true)`: one chunk walked;
/// `Ok(false)`: the walk is over (end of the packet, or beyond the parse window).
///
/// Everything it needs is read from `out`, nothing is carried in locals between two steps: in
/// the kernel each step is a BPF subprogram that starts from map-value loads, so the verifier
/// sees the same state at every step instead of one per path through the previous chunks.
#[inline(always)]
pub fn chunk_step<P: Packet + ?Sized>(pkt: &P, out: &mut N2Packet) -> Result<bool, N2Malformed> {
    if out.chunks_done() {
        return Ok(false);
    }
    let (cur, end) = (out.cur as usize, out.end as usize);
    if cur + sctp::CHUNK_HLEN > end {
        return Err(N2Malformed::ChunkTruncated);
    }
    // Inside the packet (checked above) but unreadable: beyond the parse window.
    let Some(h) = pkt.read_wide::<4>(cur) else {
        out.walk_cut = 1;
        return Ok(false);
    };
    let t = h[0];
    let clen = be16([h[2], h[3]]) as usize;
    if clen < sctp::min_chunk_len(t) {
        return Err(N2Malformed::ChunkTooShort);
    }
    if cur + clen > end {
        if out.frag == FRAG_FIRST {
            // The chunk goes on in the next fragment: count it (an INIT split by the IP layer
            // is still an INIT to limit) and stop the walk there.
            if let Some(cnt) = out.chunk_counts.get_mut(sctp::chunk_class(t)) {
                *cnt = cnt.wrapping_add(1);
            }
            if matches!(t, sctp::CHUNK_INIT | sctp::CHUNK_INIT_ACK | sctp::CHUNK_SHUTDOWN_COMPLETE) {
                out.alone = 1;
            }
            out.chunks = out.chunks.wrapping_add(1);
            out.walk_cut = 1;
            return Ok(false);
        }
        return Err(N2Malformed::ChunkOverrun);
    }
    let class = sctp::chunk_class(t);
    if let Some(cnt) = out.chunk_counts.get_mut(class) {
        *cnt = cnt.wrapping_add(1);
    }
    if matches!(t, sctp::CHUNK_INIT | sctp::CHUNK_INIT_ACK | sctp::CHUNK_SHUTDOWN_COMPLETE) {
        out.alone = 1;
    }
    if t == sctp::CHUNK_DATA || t == sctp::CHUNK_I_DATA {
        data_chunk(pkt, cur, clen, t, h[1], out);
    }
    out.chunks = out.chunks.wrapping_add(1);
    out.cur = (cur + sctp::padded(clen)) as u32;
    Ok(true)
}

/// After the walk: note a walk cut short, and the bundling rules of setup chunks (RFC 9260
/// §6.10: INIT, INIT ACK and SHUTDOWN COMPLETE travel alone; §8.5.1: an INIT carries
/// verification tag 0).
///
/// A walk cut short (more chunks than [`MAX_CHUNKS`], the parse window, or the end of a first
/// fragment) may have left DATA unread: `may_data` is set so that no setup limit drops the
/// packet (RFC 9260 §5.1: a COOKIE ECHO may be bundled with DATA, and its cookie is typically a
/// few hundred octets). Not when the packet's chunk is one that travels alone (an INIT cut by a
/// fragment boundary): nothing can follow it.
#[inline(always)]
pub fn finish(out: &mut N2Packet) -> Result<(), N2Malformed> {
    if out.cur < out.end {
        out.walk_cut = 1;
    }
    let frag_cut = out.frag == FRAG_FIRST && out.walk_cut != 0;
    if out.alone != 0 && (out.chunks > 1 || (out.walk_cut != 0 && !frag_cut)) {
        return Err(N2Malformed::InitBundled);
    }
    if out.walk_cut != 0 && out.alone == 0 {
        out.may_data = 1;
    }
    if out.chunk_counts[CHUNK_CLASS_INIT] != 0 && out.vtag != 0 {
        return Err(N2Malformed::InitBadVtag);
    }
    Ok(())
}

/// A DATA chunk (type 0, RFC 9260 §3.3.1) or I-DATA chunk (type 64, RFC 8260 §2.1) at `off` of
/// length `clen` (at least its header, inside the packet): count the NGAP/S1AP message it begins
/// and note an InitialUEMessage.
#[inline(always)]
fn data_chunk<P: Packet + ?Sized>(pkt: &P, off: usize, clen: usize, t: u8, flags: u8, out: &mut N2Packet) {
    // Only the first fragment of a user message starts a PDU (and only there does I-DATA carry
    // a PPID: otherwise that field is the Fragment Sequence Number).
    if flags & sctp::DATA_FLAG_B == 0 {
        return;
    }
    // DATA: PPID at octets 12-15, user data from 16. I-DATA: PPID at 16-19, user data from 20.
    let hlen = if t == sctp::CHUNK_I_DATA { sctp::I_DATA_HLEN } else { sctp::DATA_HLEN };
    let Some(d) = pkt.read_wide::<4>(off + hlen - 4) else {
        return;
    };
    let ppid = be32(d);
    let app = if ppid == PPID_NGAP {
        ngap::PROTO_NGAP
    } else if ppid == PPID_S1AP {
        ngap::PROTO_S1AP
    } else {
        return;
    };
    let pdu = off + hlen;
    let h = if clen >= hlen + 2 { pkt.read_wide::<2>(pdu).and_then(ngap::header) } else { None };
    let class = ngap::proc_class(app, h);
    if let Some(p) = out.procs.get_mut(class) {
        *p = p.wrapping_add(1);
    }
    if let Some(h) = h {
        if ngap::is_initial_ue(app, &h) {
            let i = out.ue_count as usize;
            if i < MAX_UE_MSGS {
                out.ue_off[i] = pdu as u32;
                out.ue_end[i] = (off + clen) as u32;
                out.ue_proto[i] = app;
                out.ue_count += 1;
            } else {
                out.ue_skipped = out.ue_skipped.saturating_add(1);
            }
        }
    }
}

/// What the egress classifier learns from one SCTP packet the AMF sends (from the NGAP or S1AP
/// port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// An INIT ACK (RFC 9260 §3.3.3) to `peer`:`port`; `tag` is the AMF's Initiate Tag, which the
    /// peer's COOKIE ECHO must carry as its Verification Tag (§5.1, §8.5).
    InitAck { peer: L3Addr, port: u16, tag: u32 },
    /// A chunk only an established association sends: COOKIE ACK, DATA, I-DATA, SACK, HEARTBEAT,
    /// HEARTBEAT ACK. (Not ABORT, ERROR or SHUTDOWN COMPLETE: the AMF sends those in answer to
    /// out-of-the-blue packets, §8.4, so a forger could make it send them anywhere.)
    /// `vtag` is the packet's verification tag: the peer's tag of that association (§8.5),
    /// the same on every path, so a second address the AMF sends it to is the same peer.
    Assoc { peer: L3Addr, port: u16, vtag: u32 },
}

/// Parse a frame leaving towards the RAN: Ethernet (+VLAN), IPv4/IPv6, SCTP *from* the NGAP or
/// S1AP port, and its first chunk (an INIT ACK travels alone, §6.10; a COOKIE ACK comes first,
/// §5.1). `None` for anything else. IP fragments are not recorded: an INIT ACK that the IP
/// layer fragmented costs its peer only the issued-cookie lane (its COOKIE ECHO is then limited
/// like any other).
#[inline(always)]
pub fn parse_egress<P: Packet + ?Sized>(pkt: &P, ngap_port: u16, s1ap_port: u16) -> Option<Egress> {
    let l2 = ethernet::parse(pkt).ok()?;
    let (l3, peer) = match l2.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let l3 = ip::parse_ipv4(pkt, l2.next).ok()?;
            // Octets 16-19: Destination Address (RFC 791 §3.1).
            let d = pkt.read::<4>(l2.next + 16)?;
            (l3, L3Addr::v4(d))
        }
        ethernet::ETHERTYPE_IPV6 => {
            let l3 = ip::parse_ipv6(pkt, l2.next).ok()?;
            // Octets 24-39: Destination Address (RFC 8200 §3).
            let d = pkt.read::<16>(l2.next + 24)?;
            (l3, L3Addr::v6(d))
        }
        _ => return None,
    };
    if l3.proto != ip::IPPROTO_SCTP || l3.fragment {
        return None;
    }
    let c = sctp::parse_common(pkt, l3.next)?;
    let ours = (ngap_port != 0 && c.src_port == ngap_port) || (s1ap_port != 0 && c.src_port == s1ap_port);
    if !ours {
        return None;
    }
    let off = l3.next + sctp::SCTP_HLEN;
    let h = pkt.read::<8>(off)?;
    let port = c.dst_port;
    match h[0] {
        sctp::CHUNK_INIT_ACK => {
            // Octets 4-7 of the chunk: Initiate Tag.
            let tag = be32([h[4], h[5], h[6], h[7]]);
            (tag != 0).then_some(Egress::InitAck { peer, port, tag })
        }
        sctp::CHUNK_COOKIE_ACK
        | sctp::CHUNK_DATA
        | sctp::CHUNK_I_DATA
        | sctp::CHUNK_SACK
        | sctp::CHUNK_HEARTBEAT
        | sctp::CHUNK_HEARTBEAT_ACK => Some(Egress::Assoc { peer, port, vtag: c.vtag }),
        _ => None,
    }
}

/// Everything about one frame, for host code and tests: the packet summary and the walk of each
/// recorded InitialUEMessage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct N2Parsed {
    pub pkt: N2Packet,
    pub ues: [Option<Result<ngap::InitialUe, ngap::NgapError>>; MAX_UE_MSGS],
}

/// [`parse_into`] and [`ngap::initial_ue`] on every recorded InitialUEMessage. `Ok(None)`: not N2.
pub fn parse<P: Packet + ?Sized>(pkt: &P, ngap_port: u16, s1ap_port: u16) -> Result<Option<N2Parsed>, N2Malformed> {
    let mut p = N2Packet::EMPTY;
    if !parse_into(pkt, ngap_port, s1ap_port, &mut p)? {
        return Ok(None);
    }
    let mut ues = [None; MAX_UE_MSGS];
    for (i, slot) in ues.iter_mut().enumerate().take(p.ue_count as usize) {
        let mut u = ngap::InitialUe::default();
        *slot =
            Some(ngap::initial_ue(pkt, p.ue_off[i] as usize, p.ue_end[i] as usize, p.ue_proto[i], &mut u).map(|()| u));
    }
    Ok(Some(N2Parsed { pkt: p, ues }))
}
