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

mod ip;
pub use ip::*;
#[cfg(test)]
mod tests;
