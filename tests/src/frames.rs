//! A GTP-U frame builder, written from the specifications and independent of `guard_common`'s
//! parser, so that tests do not check the parser against itself.
//!
//! Layout built: Ethernet II (+ optional 802.1Q / 802.1ad tags) → outer IPv4 (valid header
//! checksum, optional options) or IPv6 → UDP (dst port 2152 by default, length correct; checksum
//! computed for IPv6, 0 or computed for IPv4) → GTP-U v1 (TS 29.281 §5.1) with optional sequence
//! number / N-PDU number and an extension-header chain (TS 29.281 §5.2, PDU Session Container
//! per TS 38.415 §5.5.2) → payload: an inner IPv4/IPv6 + UDP packet for a G-PDU, information
//! elements for the signalling messages.
//!
//! ```
//! use labkit::frames::GtpFrame;
//! use std::net::Ipv4Addr;
//! let f = GtpFrame::gpdu(0x1234)
//!     .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
//!     .inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
//!     .qfi(9)
//!     .vlan(100)
//!     .build();
//! assert_eq!(f.len(), 14 + 4 + 20 + 8 + 8 + 4 + 4 + 20 + 8 + 32);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const GTPU_PORT: u16 = 2152;

// GTP-U message types (TS 29.281 §6.1, Table 6.1-1).
pub const MSG_ECHO_REQUEST: u8 = 1;
pub const MSG_ECHO_RESPONSE: u8 = 2;
pub const MSG_ERROR_INDICATION: u8 = 26;
pub const MSG_SUPPORTED_EXT_HEADERS: u8 = 31;
pub const MSG_END_MARKER: u8 = 254;
pub const MSG_G_PDU: u8 = 255;

/// Next Extension Header Type of the PDU Session Container (TS 29.281 §5.2.1).
pub const EXT_PDU_SESSION_CONTAINER: u8 = 0x85;
/// Next Extension Header Type "UDP Port" (TS 29.281 §5.2.2.1), used by Error Indication.
pub const EXT_UDP_PORT: u8 = 0x40;
/// PDU Type in the PDU Session Container (TS 38.415 §5.5.3.1).
pub const PDU_TYPE_DL: u8 = 0;
pub const PDU_TYPE_UL: u8 = 1;

// Information element types (TS 29.281 §8).
pub const IE_RECOVERY: u8 = 14;
pub const IE_TEID_DATA_I: u8 = 16;
pub const IE_GTPU_PEER_ADDRESS: u8 = 133;
pub const IE_EXT_HEADER_TYPE_LIST: u8 = 141;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

const IPPROTO_UDP: u8 = 17;

/// One extension header of the chain. `units` overrides the Length octet (in 4-octet units);
/// `None` means "computed from the content".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtHeader {
    pub ext_type: u8,
    /// Content between the Length octet and the Next Extension Header Type octet; padded with
    /// zeros to make the header a multiple of 4 octets.
    pub content: Vec<u8>,
    pub units: Option<u8>,
}

impl ExtHeader {
    /// Bytes as placed on the wire, without the trailing next-type octet's value (filled in by
    /// the builder): `[len, content.., pad.., next]`.
    fn encoded_len(&self) -> usize {
        (self.content.len() + 2).div_ceil(4) * 4
    }
}

/// The inner packet of a G-PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inner {
    /// IPv4 + UDP with this payload.
    V4 { src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16 },
    /// IPv6 + UDP with this payload.
    V6 { src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16 },
    /// Raw bytes as the T-PDU (not IP, or hand-made).
    Raw(Vec<u8>),
    /// No T-PDU at all.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outer {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

/// Builder of one GTP-U Ethernet frame. Every setter consumes and returns the builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GtpFrame {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    /// (TPID, TCI) pairs, outermost first.
    vlans: Vec<(u16, u16)>,
    outer: Outer,
    ttl: u8,
    ip_id: u16,
    ipv4_options: Vec<u8>,
    sport: u16,
    dport: u16,
    udp_checksum_v4: bool,
    // GTP-U
    version: u8,
    pt: bool,
    msg_type: u8,
    teid: u32,
    seq: Option<u16>,
    npdu: Option<u8>,
    ext: Vec<ExtHeader>,
    gtp_length: Option<u16>,
    // payload
    inner: Inner,
    inner_payload: Vec<u8>,
    ies: Vec<u8>,
    truncate: Option<usize>,
}

impl GtpFrame {
    /// A message of any type with no payload, defaults everywhere else: MACs 02:00:00:00:00:01 →
    /// 02:00:00:00:00:02, outer IPv4 10.200.0.11 → 10.200.0.1, UDP 2152 → 2152.
    pub fn message(msg_type: u8, teid: u32) -> Self {
        GtpFrame {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlans: Vec::new(),
            outer: Outer::V4 { src: Ipv4Addr::new(10, 200, 0, 11), dst: Ipv4Addr::new(10, 200, 0, 1) },
            ttl: 64,
            ip_id: 0,
            ipv4_options: Vec::new(),
            sport: GTPU_PORT,
            dport: GTPU_PORT,
            udp_checksum_v4: false,
            version: 1,
            pt: true,
            msg_type,
            teid,
            seq: None,
            npdu: None,
            ext: Vec::new(),
            gtp_length: None,
            inner: Inner::None,
            inner_payload: Vec::new(),
            ies: Vec::new(),
            truncate: None,
        }
    }

    /// A G-PDU (message type 255) on `teid`, carrying an inner IPv4/UDP packet 10.45.0.2:40000 →
    /// 192.0.2.10:50000 with 32 bytes of payload unless changed.
    pub fn gpdu(teid: u32) -> Self {
        let mut f = Self::message(MSG_G_PDU, teid);
        f.inner = Inner::V4 {
            src: Ipv4Addr::new(10, 45, 0, 2),
            dst: Ipv4Addr::new(192, 0, 2, 10),
            sport: 40000,
            dport: 50000,
        };
        f.inner_payload = (0..32u8).collect();
        f
    }

    /// Echo Request (TS 29.281 §7.2.1): TEID 0, S flag set with this sequence number.
    pub fn echo_request(seq: u16) -> Self {
        Self::message(MSG_ECHO_REQUEST, 0).seq(seq)
    }

    /// Echo Response (TS 29.281 §7.2.2): TEID 0, the request's sequence number, Recovery IE.
    pub fn echo_response(seq: u16) -> Self {
        Self::message(MSG_ECHO_RESPONSE, 0).seq(seq).ies(&[IE_RECOVERY, 0])
    }

    /// Error Indication (TS 29.281 §7.3.1): TEID 0, TEID Data I and GTP-U Peer Address IEs.
    pub fn error_indication(teid_data: u32, peer: IpAddr) -> Self {
        let mut ies = vec![IE_TEID_DATA_I];
        ies.extend_from_slice(&teid_data.to_be_bytes());
        ies.push(IE_GTPU_PEER_ADDRESS);
        match peer {
            IpAddr::V4(a) => {
                ies.extend_from_slice(&4u16.to_be_bytes());
                ies.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                ies.extend_from_slice(&16u16.to_be_bytes());
                ies.extend_from_slice(&a.octets());
            }
        }
        Self::message(MSG_ERROR_INDICATION, 0).ies(&ies)
    }

    /// End Marker (TS 29.281 §7.3.2) on `teid`: no payload.
    pub fn end_marker(teid: u32) -> Self {
        Self::message(MSG_END_MARKER, teid)
    }

    /// Supported Extension Headers Notification (TS 29.281 §7.3.3) listing `types`.
    pub fn supported_ext_headers(types: &[u8]) -> Self {
        let mut ies = vec![IE_EXT_HEADER_TYPE_LIST, u8::try_from(types.len()).unwrap_or(u8::MAX)];
        ies.extend(types.iter().take(255));
        Self::message(MSG_SUPPORTED_EXT_HEADERS, 0).ies(&ies)
    }

    // ---- L2 ----

    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Add an 802.1Q tag (TPID 0x8100) with this VLAN id, inside any tags already added.
    pub fn vlan(self, vid: u16) -> Self {
        self.vlan_tag(TPID_8021Q, vid)
    }

    /// 802.1ad (QinQ): outer S-tag 0x88a8 with `s_vid`, inner C-tag 0x8100 with `c_vid`.
    pub fn qinq(self, s_vid: u16, c_vid: u16) -> Self {
        self.vlan_tag(TPID_8021AD, s_vid).vlan_tag(TPID_8021Q, c_vid)
    }

    /// Add a tag with any TPID; `tci` low 12 bits are the VLAN id.
    pub fn vlan_tag(mut self, tpid: u16, tci: u16) -> Self {
        self.vlans.push((tpid, tci));
        self
    }

    // ---- outer L3/L4 ----

    pub fn outer_v4(mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        self.outer = Outer::V4 { src, dst };
        self
    }

    pub fn outer_v6(mut self, src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        self.outer = Outer::V6 { src, dst };
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }

    /// IPv4 options (padded with End-of-Option-List zeros to a multiple of 4, at most 40 bytes).
    pub fn ipv4_options(mut self, opts: &[u8]) -> Self {
        self.ipv4_options = opts.iter().copied().take(40).collect();
        while self.ipv4_options.len() % 4 != 0 {
            self.ipv4_options.push(0);
        }
        self
    }

    pub fn udp_ports(mut self, src: u16, dst: u16) -> Self {
        self.sport = src;
        self.dport = dst;
        self
    }

    /// Compute the UDP checksum over IPv4 too (it is always computed over IPv6).
    pub fn udp_checksum_v4(mut self, on: bool) -> Self {
        self.udp_checksum_v4 = on;
        self
    }

    // ---- GTP-U ----

    pub fn teid(mut self, teid: u32) -> Self {
        self.teid = teid;
        self
    }

    pub fn msg_type(mut self, t: u8) -> Self {
        self.msg_type = t;
        self
    }

    /// Sequence number present (S flag).
    pub fn seq(mut self, seq: u16) -> Self {
        self.seq = Some(seq);
        self
    }

    /// N-PDU number present (PN flag).
    pub fn npdu(mut self, n: u8) -> Self {
        self.npdu = Some(n);
        self
    }

    /// Add an UL PDU Session Container (TS 38.415 PDU type 1) with this QFI (6 bits).
    pub fn qfi(self, qfi: u8) -> Self {
        self.pdu_session(PDU_TYPE_UL, qfi)
    }

    /// Add a PDU Session Container with this PDU type (0 DL, 1 UL) and QFI; one 4-octet unit.
    pub fn pdu_session(self, pdu_type: u8, qfi: u8) -> Self {
        self.ext_header(EXT_PDU_SESSION_CONTAINER, &[(pdu_type & 0x0f) << 4, qfi & 0x3f])
    }

    /// Add a UL PDU Session Container with QoS Monitoring (TS 38.415 §5.5.2.2, QMP = 1): the
    /// DL Sending Time Stamp Repeated, DL Received Time Stamp and UL Sending Time Stamp (8
    /// octets each) follow the QFI, so the header is 7 four-octet units and its Next Extension
    /// Header Type is the last octet of the seventh unit, not of the first.
    pub fn pdu_session_ul_qmp(self, qfi: u8, stamps: [u64; 3]) -> Self {
        let mut c = vec![(PDU_TYPE_UL << 4) | 0x08, qfi & 0x3f];
        for t in stamps {
            c.extend_from_slice(&t.to_be_bytes());
        }
        self.ext_header(EXT_PDU_SESSION_CONTAINER, &c)
    }

    /// Add a UDP Port extension header (TS 29.281 §5.2.2.1): one unit carrying `port`.
    pub fn udp_port_ext(self, port: u16) -> Self {
        self.ext_header(EXT_UDP_PORT, &port.to_be_bytes())
    }

    /// Append an extension header of any type; content is padded so the header is a multiple of
    /// 4 octets and the Length octet is computed (more than 2 octets of content make a header of
    /// several units).
    pub fn ext_header(mut self, ext_type: u8, content: &[u8]) -> Self {
        self.ext.push(ExtHeader { ext_type, content: content.to_vec(), units: None });
        self
    }

    // ---- payload ----

    pub fn inner_v4(mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        let (sport, dport) = self.inner_ports_or_default();
        self.inner = Inner::V4 { src, dst, sport, dport };
        self
    }

    pub fn inner_v6(mut self, src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        let (sport, dport) = self.inner_ports_or_default();
        self.inner = Inner::V6 { src, dst, sport, dport };
        self
    }

    pub fn inner_ports(mut self, s: u16, d: u16) -> Self {
        match &mut self.inner {
            Inner::V4 { sport, dport, .. } | Inner::V6 { sport, dport, .. } => {
                *sport = s;
                *dport = d;
            }
            Inner::Raw(_) | Inner::None => {}
        }
        self
    }

    /// The T-PDU as raw bytes (replaces any inner IP packet).
    pub fn tpdu_raw(mut self, bytes: &[u8]) -> Self {
        self.inner = Inner::Raw(bytes.to_vec());
        self
    }

    /// No T-PDU.
    pub fn no_tpdu(mut self) -> Self {
        self.inner = Inner::None;
        self
    }

    /// Inner UDP payload bytes.
    pub fn payload(mut self, bytes: &[u8]) -> Self {
        self.inner_payload = bytes.to_vec();
        self
    }

    /// Inner UDP payload of `n` bytes (a counting pattern).
    pub fn payload_len(mut self, n: usize) -> Self {
        self.inner_payload = (0..n).map(|i| i as u8).collect();
        self
    }

    /// Information elements following the header of a signalling message (raw TLV bytes).
    pub fn ies(mut self, bytes: &[u8]) -> Self {
        self.ies = bytes.to_vec();
        self
    }

    // ---- malformed variants ----

    /// Set the 3-bit version field (1 is valid).
    pub fn gtp_version(mut self, v: u8) -> Self {
        self.version = v & 0x07;
        self
    }

    /// Set the PT bit (1 = GTP, 0 = GTP').
    pub fn protocol_type(mut self, gtp: bool) -> Self {
        self.pt = gtp;
        self
    }

    /// Override the GTP-U Length field.
    pub fn gtp_length(mut self, len: u16) -> Self {
        self.gtp_length = Some(len);
        self
    }

    /// Append an extension header whose Length octet is 0 (malformed by TS 29.281 §5.2.1). Four
    /// octets are still placed on the wire so the other lengths stay consistent.
    pub fn zero_length_ext(mut self, ext_type: u8) -> Self {
        self.ext.push(ExtHeader { ext_type, content: vec![0, 0], units: Some(0) });
        self
    }

    /// Append an extension header whose Length octet claims `units` 4-octet units while only one
    /// unit is on the wire: with `units` large enough it overruns the GTP-U message.
    pub fn ext_overrun(mut self, ext_type: u8, units: u8) -> Self {
        self.ext.push(ExtHeader { ext_type, content: vec![0x10, 0x09], units: Some(units) });
        self
    }

    /// Cut the finished frame to its first `n` bytes (lengths inside still describe the whole).
    pub fn truncate(mut self, n: usize) -> Self {
        self.truncate = Some(n);
        self
    }

    // ---- accessors ----

    pub fn get_teid(&self) -> u32 {
        self.teid
    }

    pub fn get_msg_type(&self) -> u8 {
        self.msg_type
    }

    /// Outer source address (the gNB).
    pub fn get_outer_src(&self) -> IpAddr {
        match self.outer {
            Outer::V4 { src, .. } => IpAddr::V4(src),
            Outer::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    /// Inner source address (the UE), if the T-PDU is IP.
    pub fn get_inner_src(&self) -> Option<IpAddr> {
        match self.inner {
            Inner::V4 { src, .. } => Some(IpAddr::V4(src)),
            Inner::V6 { src, .. } => Some(IpAddr::V6(src)),
            Inner::Raw(_) | Inner::None => None,
        }
    }

    /// QFI of the first PDU Session Container, if any.
    pub fn get_qfi(&self) -> Option<u8> {
        self.ext
            .iter()
            .find(|e| e.ext_type == EXT_PDU_SESSION_CONTAINER && e.units.is_none())
            .and_then(|e| e.content.get(1))
            .map(|q| q & 0x3f)
    }

    fn inner_ports_or_default(&self) -> (u16, u16) {
        match self.inner {
            Inner::V4 { sport, dport, .. } | Inner::V6 { sport, dport, .. } => (sport, dport),
            Inner::Raw(_) | Inner::None => (40000, 50000),
        }
    }

    // ---- encoding ----

    /// The GTP-U message (header, optional fields, extension headers, payload).
    pub fn build_gtp(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let e = !self.ext.is_empty();
        let s = self.seq.is_some();
        let pn = self.npdu.is_some();
        if e || s || pn {
            body.extend_from_slice(&self.seq.unwrap_or(0).to_be_bytes());
            body.push(self.npdu.unwrap_or(0));
            body.push(self.ext.first().map_or(0, |x| x.ext_type));
        }
        for (i, x) in self.ext.iter().enumerate() {
            let len = x.encoded_len();
            let units = x.units.unwrap_or(u8::try_from(len / 4).unwrap_or(u8::MAX));
            body.push(units);
            body.extend_from_slice(&x.content);
            body.resize(body.len() + len - 2 - x.content.len(), 0);
            body.push(self.ext.get(i + 1).map_or(0, |n| n.ext_type));
        }
        match self.msg_type {
            MSG_G_PDU => body.extend_from_slice(&self.build_tpdu()),
            _ => body.extend_from_slice(&self.ies),
        }
        let flags =
            (self.version << 5) | (u8::from(self.pt) << 4) | (u8::from(e) << 2) | (u8::from(s) << 1) | u8::from(pn);
        let length = self.gtp_length.unwrap_or(u16::try_from(body.len()).unwrap_or(u16::MAX));
        let mut out = Vec::with_capacity(8 + body.len());
        out.push(flags);
        out.push(self.msg_type);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&self.teid.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn build_tpdu(&self) -> Vec<u8> {
        match &self.inner {
            Inner::V4 { src, dst, sport, dport } => {
                let udp = udp_segment(*sport, *dport, &self.inner_payload, |u| {
                    checksum_v4_pseudo(*src, *dst, IPPROTO_UDP, u)
                });
                ipv4_packet(*src, *dst, IPPROTO_UDP, 64, 0, &[], &udp)
            }
            Inner::V6 { src, dst, sport, dport } => {
                let udp = udp_segment(*sport, *dport, &self.inner_payload, |u| {
                    checksum_v6_pseudo(*src, *dst, IPPROTO_UDP, u)
                });
                ipv6_packet(*src, *dst, IPPROTO_UDP, 64, &udp)
            }
            Inner::Raw(b) => b.clone(),
            Inner::None => Vec::new(),
        }
    }

    /// The whole Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let gtp = self.build_gtp();
        let (ethertype, l3) = match self.outer {
            Outer::V4 { src, dst } => {
                let udp = udp_segment(self.sport, self.dport, &gtp, |u| {
                    if self.udp_checksum_v4 {
                        checksum_v4_pseudo(src, dst, IPPROTO_UDP, u)
                    } else {
                        0
                    }
                });
                (ETHERTYPE_IPV4, ipv4_packet(src, dst, IPPROTO_UDP, self.ttl, self.ip_id, &self.ipv4_options, &udp))
            }
            Outer::V6 { src, dst } => {
                let udp = udp_segment(self.sport, self.dport, &gtp, |u| checksum_v6_pseudo(src, dst, IPPROTO_UDP, u));
                (ETHERTYPE_IPV6, ipv6_packet(src, dst, IPPROTO_UDP, self.ttl, &udp))
            }
        };
        let mut f = Vec::with_capacity(14 + 4 * self.vlans.len() + l3.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&l3);
        if let Some(n) = self.truncate {
            f.truncate(n);
        }
        f
    }
}

/// UDP header + payload; `csum` receives the segment with a zero checksum and returns the
/// checksum to store (0 = none; a computed 0 is sent as 0xffff per RFC 768).
fn udp_segment(sport: u16, dport: u16, payload: &[u8], csum: impl Fn(&[u8]) -> u16) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = csum(&u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An IPv4 packet with a valid header checksum (DF set, no fragmentation).
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    id: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = u16::try_from(hlen + payload.len()).unwrap_or(u16::MAX);
    let mut h = Vec::with_capacity(hlen + payload.len());
    h.push(0x40 | u8::try_from(hlen / 4).unwrap_or(0x0f));
    h.push(0); // DSCP/ECN
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
    h.push(ttl);
    h.push(proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = internet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// Cut the outer IPv4 datagram of an Ethernet frame into fragments of at most `max_ip_len` bytes
/// of IP (header included), as a router or the sending gNB does on a path with that MTU
/// (RFC 791 §3.2): every fragment but the last carries a multiple of 8 data octets and More
/// Fragments; Fragment Offset counts 8-octet units; all carry the datagram's Identification `id`
/// (which is written into the header) and DF cleared; the first fragment keeps every option,
/// the others only those with the copied flag (RFC 791 §3.1). Each fragment gets its own total
/// length and header checksum and the frame's L2 header (`l2_len` bytes). `None` when the frame
/// holds no IPv4 header, the datagram is already a fragment, or `max_ip_len` leaves no room for
/// 8 data octets; a datagram that fits is returned as one frame (with `id` set and DF cleared).
pub fn fragment_ipv4(frame: &[u8], l2_len: usize, max_ip_len: usize, id: u16) -> Option<Vec<Vec<u8>>> {
    let ip = frame.get(l2_len..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if *ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    if flags & 0x3fff != 0 || total < ihl {
        return None;
    }
    let (l2, hdr, data) = (&frame[..l2_len], &ip[..ihl], &ip[ihl..total]);
    // Options copied into the later fragments: those whose type has the copied flag (0x80).
    let mut later_opts = Vec::new();
    let mut o = 20;
    while o < ihl {
        let t = hdr[o];
        match t {
            0 => break,
            1 => o += 1,
            _ => {
                let len = usize::from(*hdr.get(o + 1)?).max(2);
                let opt = hdr.get(o..o + len)?;
                if t & 0x80 != 0 {
                    later_opts.extend_from_slice(opt);
                }
                o += len;
            }
        }
    }
    while later_opts.len() % 4 != 0 {
        later_opts.push(0);
    }
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let first = off == 0;
        let h_len = if first { ihl } else { 20 + later_opts.len() };
        // Data per fragment: what fits, rounded down to 8 octets unless it is the rest.
        let room = max_ip_len.checked_sub(h_len)? / 8 * 8;
        if room == 0 {
            return None;
        }
        let rest = data.len() - off;
        let (n, more) = if rest <= max_ip_len - h_len { (rest, false) } else { (room, true) };
        let mut h = Vec::with_capacity(h_len);
        h.extend_from_slice(&hdr[..20]);
        if first {
            h.extend_from_slice(&hdr[20..]);
        } else {
            h.extend_from_slice(&later_opts);
        }
        h[0] = 0x40 | u8::try_from(h_len / 4).unwrap_or(0x0f);
        h[2..4].copy_from_slice(&u16::try_from(h_len + n).unwrap_or(u16::MAX).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = u16::try_from(off / 8).unwrap_or(0x1fff) & 0x1fff;
        h[6..8].copy_from_slice(&(fo | if more { 0x2000 } else { 0 }).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::with_capacity(l2.len() + h.len() + n);
        f.extend_from_slice(l2);
        f.extend_from_slice(&h);
        f.extend_from_slice(&data[off..off + n]);
        out.push(f);
        off += n;
        if !more {
            return Some(out);
        }
    }
}

/// An IPv6 packet (no extension headers).
pub fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(40 + payload.len());
    h.extend_from_slice(&[0x60, 0, 0, 0]);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap_or(u16::MAX).to_be_bytes());
    h.push(next);
    h.push(hop_limit);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// RFC 1071 one's-complement sum, folded, not yet complemented.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !(ones_sum(0, data) as u16)
}

fn finish_l4(sum: u32) -> u16 {
    let c = !(sum as u16);
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// UDP/TCP checksum with the IPv4 pseudo-header.
pub fn checksum_v4_pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let mut s = ones_sum(0, &src.octets());
    s = ones_sum(s, &dst.octets());
    s = ones_sum(s, &[0, proto]);
    s = ones_sum(s, &u16::try_from(segment.len()).unwrap_or(u16::MAX).to_be_bytes());
    finish_l4(ones_sum(s, segment))
}

/// UDP/TCP checksum with the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn checksum_v6_pseudo(src: Ipv6Addr, dst: Ipv6Addr, next: u8, segment: &[u8]) -> u16 {
    let mut s = ones_sum(0, &src.octets());
    s = ones_sum(s, &dst.octets());
    s = ones_sum(s, &u32::try_from(segment.len()).unwrap_or(u32::MAX).to_be_bytes());
    s = ones_sum(s, &[0, 0, 0, next]);
    finish_l4(ones_sum(s, segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be16(b: &[u8], o: usize) -> usize {
        usize::from(u16::from_be_bytes([b[o], b[o + 1]]))
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        for opts in [&[][..], &[0x94, 0x04, 0, 0][..], &[1, 1, 1][..]] {
            let f = GtpFrame::gpdu(7).ipv4_options(opts).build();
            let ihl = usize::from(f[14] & 0x0f) * 4;
            assert_eq!(ihl, 20 + opts.len().div_ceil(4) * 4);
            // A correct header sums to 0xffff, i.e. the checksum over it is 0.
            assert_eq!(internet_checksum(&f[14..14 + ihl]), 0, "IPv4 header checksum, options {opts:?}");
            // The inner IPv4 header too.
            // No optional octets or extension headers: the T-PDU follows the 8-octet header.
            let inner = 14 + ihl + 8 + 8;
            assert_eq!(internet_checksum(&f[inner..inner + 20]), 0, "inner IPv4 checksum");
        }
    }

    #[test]
    fn known_checksum_vector() {
        // RFC 1071 §3 example bytes.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2u16);
    }

    #[test]
    fn lengths_are_consistent_v4() {
        let f = GtpFrame::gpdu(0xdead_beef).qfi(9).seq(5).payload_len(100).build();
        assert_eq!(be16(&f, 12), 0x0800);
        let ip_total = be16(&f, 16);
        assert_eq!(ip_total, f.len() - 14);
        let udp = 14 + 20;
        assert_eq!(be16(&f, udp + 2), 2152);
        assert_eq!(be16(&f, udp + 4), f.len() - udp);
        let gtp = udp + 8;
        assert_eq!(f[gtp], 0x36, "version 1, PT 1, E and S set");
        assert_eq!(f[gtp + 1], 255);
        assert_eq!(be16(&f, gtp + 2), f.len() - gtp - 8);
        assert_eq!(&f[gtp + 4..gtp + 8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(&f[gtp + 8..gtp + 12], &[0, 5, 0, 0x85]);
        // PDU Session Container: 1 unit, UL, QFI 9, no next.
        assert_eq!(&f[gtp + 12..gtp + 16], &[1, 0x10, 9, 0]);
        let inner = gtp + 16;
        assert_eq!(f[inner] >> 4, 4);
        assert_eq!(be16(&f, inner + 2), f.len() - inner);
        assert_eq!(be16(&f, inner + 20 + 4), 8 + 100);
    }

    #[test]
    fn lengths_and_udp_checksum_v6() {
        let src: Ipv6Addr = "fd00:200::11".parse().expect("addr");
        let dst: Ipv6Addr = "fd00:200::1".parse().expect("addr");
        let ue: Ipv6Addr = "2001:db8:45::2".parse().expect("addr");
        let f = GtpFrame::gpdu(1).outer_v6(src, dst).inner_v6(ue, "2001:db8::10".parse().expect("addr")).qfi(1).build();
        assert_eq!(be16(&f, 12), 0x86dd);
        assert_eq!(be16(&f, 14 + 4), f.len() - 14 - 40);
        let udp = &f[14 + 40..];
        assert_ne!(be16(udp, 6), 0, "UDP checksum is mandatory over IPv6");
        // Verifying: the checksum over pseudo-header + segment including the checksum is 0.
        let mut s = ones_sum(0, &src.octets());
        s = ones_sum(s, &dst.octets());
        s = ones_sum(s, &(udp.len() as u32).to_be_bytes());
        s = ones_sum(s, &[0, 0, 0, 17]);
        assert_eq!(!(ones_sum(s, udp) as u16), 0);
    }

    /// RFC 791 §3.2: the fragments' data, at their offsets, is the datagram's payload; every one
    /// but the last has MF and a multiple of 8 data octets; headers verify; the Identification is
    /// the given one.
    #[test]
    fn ipv4_fragments_reassemble_to_the_datagram() {
        let whole = GtpFrame::gpdu(9).payload_len(1400).ipv4_options(&[0x94, 0x04, 0, 0, 0x07, 0x03, 0x04, 0]).build();
        let ihl = usize::from(whole[14] & 0x0f) * 4;
        let frags = fragment_ipv4(&whole, 14, 600, 0x1234).expect("fragments");
        assert_eq!(frags.len(), 3);
        let mut data = vec![0u8; whole.len() - 14 - ihl];
        let mut covered = 0;
        for (i, f) in frags.iter().enumerate() {
            assert_eq!(&f[..14], &whole[..14]);
            let h = usize::from(f[14] & 0x0f) * 4;
            assert!(f.len() - 14 <= 600);
            assert_eq!(internet_checksum(&f[14..14 + h]), 0, "header checksum of fragment {i}");
            assert_eq!(be16(f, 16), f.len() - 14);
            assert_eq!(be16(f, 18), 0x1234);
            let fl = be16(f, 20);
            let (mf, off) = (fl & 0x2000 != 0, (fl & 0x1fff) * 8);
            assert_eq!(fl & 0x4000, 0, "DF cleared");
            assert_eq!(mf, i + 1 < frags.len());
            let n = f.len() - 14 - h;
            if mf {
                assert_eq!(n % 8, 0);
            }
            // Router Alert (0x94) has the copied flag, Record Route (0x07) has not.
            assert_eq!(h, if i == 0 { ihl } else { 24 });
            data[off..off + n].copy_from_slice(&f[14 + h..]);
            covered += n;
        }
        assert_eq!(covered, data.len());
        assert_eq!(&data[..], &whole[14 + ihl..]);
        assert!(fragment_ipv4(&frags[1], 14, 600, 1).is_none(), "a fragment is not cut again");
        assert_eq!(fragment_ipv4(&whole, 14, 4000, 7).map(|v| v.len()), Some(1));
    }

    /// The oracle: tshark reassembles the fragments (RFC 791) and dissects the G-PDU inside with
    /// its TEID and inner source.
    #[test]
    #[ignore = "needs tshark: cargo xtask test runs it"]
    fn tshark_reassembles_the_fragments() {
        let whole = GtpFrame::gpdu(0x00c0_ffee)
            .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
            .inner_v4(Ipv4Addr::new(10, 47, 0, 9), Ipv4Addr::new(203, 0, 113, 90))
            .payload_len(1400)
            .build();
        let frags = fragment_ipv4(&whole, 14, 576, 0x0102).expect("fragments");
        assert_eq!(frags.len(), 3);
        let dir = crate::oracle::TempDir::new("frag-oracle").expect("temp dir");
        let pcap = dir.join("frags.pcap");
        crate::pcap::write_pcap(&pcap, &frags).expect("pcap");
        let rows = crate::oracle::tshark_fields(
            &pcap,
            &["ip.id", "ip.flags.mf", "ip.frag_offset", "gtp.teid", "ip.src"],
            None,
        )
        .expect("tshark");
        assert_eq!(rows.len(), 3, "{rows:?}");
        let col = |r: usize, k: usize| rows[r].get(k).cloned().unwrap_or_default();
        let first = |r: usize, k: usize| col(r, k).split(',').next().unwrap_or("").to_owned();
        // 576 - 20 = 556 octets of room, 552 of data per fragment: offsets 0, 69, 138 (in 8-octet
        // units); MF on all but the last; one Identification.
        for (r, (mf, off)) in [("1", "0"), ("1", "69"), ("0", "138")].into_iter().enumerate() {
            assert_eq!(
                (first(r, 0).as_str(), first(r, 1).as_str(), first(r, 2).as_str()),
                ("0x0102", mf, off),
                "{rows:?}"
            );
        }
        // The last frame carries the reassembled datagram's dissection.
        assert_eq!(col(2, 3), "0x00c0ffee", "{rows:?}");
        assert_eq!(col(2, 4), "10.200.0.11,10.47.0.9", "outer and inner source after reassembly: {rows:?}");
    }

    #[test]
    fn vlan_tags_and_qinq() {
        let f = GtpFrame::gpdu(1).vlan(100).build();
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
        let f = GtpFrame::gpdu(1).qinq(10, 20).build();
        assert_eq!(&f[12..22], &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
    }

    #[test]
    fn signalling_messages() {
        let f = GtpFrame::echo_request(0x0102).build();
        let g = &f[42..];
        assert_eq!(g, &[0x32, 1, 0, 4, 0, 0, 0, 0, 1, 2, 0, 0]);
        let f = GtpFrame::end_marker(77).build();
        assert_eq!(&f[42..], &[0x30, 254, 0, 0, 0, 0, 0, 77]);
        let f = GtpFrame::error_indication(0x11223344, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).build();
        assert_eq!(&f[42..], &[0x30, 26, 0, 12, 0, 0, 0, 0, 16, 0x11, 0x22, 0x33, 0x44, 133, 0, 4, 10, 0, 0, 1]);
        let f = GtpFrame::supported_ext_headers(&[0x85, 0x40]).build();
        assert_eq!(&f[42..], &[0x30, 31, 0, 4, 0, 0, 0, 0, 141, 2, 0x85, 0x40]);
    }

    #[test]
    fn malformed_variants() {
        let f = GtpFrame::gpdu(1).zero_length_ext(EXT_PDU_SESSION_CONTAINER).build();
        assert_eq!(&f[42 + 8..42 + 16], &[0, 0, 0, 0x85, 0, 0, 0, 0]);
        let f = GtpFrame::gpdu(1).ext_overrun(EXT_PDU_SESSION_CONTAINER, 200).build();
        assert_eq!(f[42 + 12], 200);
        let f = GtpFrame::gpdu(1).gtp_version(2).build();
        assert_eq!(f[42] >> 5, 2);
        let f = GtpFrame::gpdu(1).truncate(45).build();
        assert_eq!(f.len(), 45);
        let f = GtpFrame::gpdu(1).gtp_length(9999).build();
        assert_eq!(be16(&f, 44), 9999);
    }

    #[test]
    fn multi_ext_chain_links_next_types() {
        let f = GtpFrame::gpdu(1).ext_header(EXT_UDP_PORT, &[0x08, 0x68]).qfi(5).build();
        let g = 42;
        assert_eq!(f[g + 11], EXT_UDP_PORT);
        assert_eq!(&f[g + 12..g + 16], &[1, 0x08, 0x68, 0x85]);
        assert_eq!(&f[g + 16..g + 20], &[1, 0x10, 5, 0]);
    }

    /// A header of several units: its Length octet counts them all, the Next Extension Header
    /// Type is the last octet of its last unit, and the next header starts after it.
    #[test]
    fn multi_unit_headers_put_the_next_type_in_their_last_unit() {
        let stamps = [0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324_2526_2728];
        let f = GtpFrame::gpdu(1).pdu_session_ul_qmp(7, stamps).udp_port_ext(2152).build();
        let g = 42;
        assert_eq!(f[g] & 0x04, 0x04, "E flag");
        assert_eq!(f[g + 11], EXT_PDU_SESSION_CONTAINER);
        let c = g + 12;
        assert_eq!(&f[c..c + 4], &[7, 0x18, 7, 0x01], "7 units, UL with QMP, QFI 7, first stamp octet");
        assert_eq!(&f[c + 3..c + 27], &stamps.map(u64::to_be_bytes).concat()[..]);
        assert_eq!(f[c + 27], EXT_UDP_PORT, "next type in the last octet of the seventh unit");
        assert_eq!(&f[c + 28..c + 32], &[1, 0x08, 0x68, 0]);
        assert_eq!(f[c + 32] >> 4, 4, "the T-PDU follows the chain");
        let f = GtpFrame::gpdu(1).ext_header(0x81, &[0xaa; 9]).build();
        assert_eq!(
            &f[c..c + 12],
            &[3, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0],
            "9 octets: 3 units, padded"
        );
        assert_eq!(f[c + 12] >> 4, 4);
    }
}
