//! An SCTP / NGAP / S1AP frame builder written from the specifications, independent of
//! `guard_common`'s parsers (so tests do not check the parser against itself).
//!
//! - Ethernet II (+ 802.1Q tags) → IPv4 (valid header checksum) or IPv6 → SCTP (RFC 9260): the
//!   common header with a correct CRC32c (RFC 9260 §6.8, Appendix B; implemented here) and any
//!   chunks, each padded to 4 octets: DATA, INIT, INIT ACK, SACK, HEARTBEAT(-ACK), ABORT,
//!   SHUTDOWN(-ACK/-COMPLETE), ERROR, COOKIE ECHO, COOKIE ACK, or raw.
//! - [`ngap`]: hand-written ALIGNED PER encodings of NGAP (TS 38.413) messages, InitialUEMessage
//!   in full (RAN-UE-NGAP-ID, NAS-PDU, UserLocationInformation NR/EUTRA with TAI,
//!   RRCEstablishmentCause, FiveG-S-TMSI, UEContextRequest), plus 5GMM NAS messages (TS 24.501);
//!   [`s1ap`]: S1AP (TS 36.413) Initial UE Message. tshark is their oracle
//!   (`tests/tests/oracle_ngap.rs`).
//!
//! ```
//! use labkit::sctp_frames::{Chunk, SctpFrame, ngap};
//! let pdu = ngap::InitialUeMessage::nr(7, 0x1_2345_6789).encode();
//! let f = SctpFrame::ngap().vtag(0x1234).chunk(Chunk::data(1, 0, 0, 60, &pdu)).build();
//! assert_eq!(&f[12..14], &[0x08, 0x00]);
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

pub const NGAP_PORT: u16 = 38412;
pub const S1AP_PORT: u16 = 36412;
pub const PPID_NGAP: u32 = 60;
pub const PPID_S1AP: u32 = 18;

// Chunk types (RFC 9260 §3.2).
pub const DATA: u8 = 0;
pub const INIT: u8 = 1;
pub const INIT_ACK: u8 = 2;
pub const SACK: u8 = 3;
pub const HEARTBEAT: u8 = 4;
pub const HEARTBEAT_ACK: u8 = 5;
pub const ABORT: u8 = 6;
pub const SHUTDOWN: u8 = 7;
pub const SHUTDOWN_ACK: u8 = 8;
pub const ERROR: u8 = 9;
pub const COOKIE_ECHO: u8 = 10;
pub const COOKIE_ACK: u8 = 11;
pub const SHUTDOWN_COMPLETE: u8 = 14;

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), RFC 9260 Appendix B.
pub fn crc32c(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    const T: [u32; 256] = table();
    let mut crc = !0u32;
    for &b in data {
        crc = T[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// One chunk. `length` overrides the Chunk Length field; `pad` = false leaves the padding out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub ctype: u8,
    pub flags: u8,
    pub value: Vec<u8>,
    pub length: Option<u16>,
    pub pad: bool,
}

/// Parameters (or error causes) of a chunk, each type, length (without padding) and value
/// (RFC 9260 §3.2.1). Every parameter but the last is padded to 4 octets; the last one's padding
/// is the chunk's padding, outside the Chunk Length (§3.2: the Chunk Length "does include any
/// padding of variable-length parameters other than the last parameter in the chunk").
fn params(list: &[(u16, &[u8])]) -> Vec<u8> {
    let mut p = Vec::new();
    for (i, (ptype, value)) in list.iter().enumerate() {
        p.extend_from_slice(&ptype.to_be_bytes());
        p.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
        p.extend_from_slice(value);
        if i + 1 < list.len() {
            while p.len() % 4 != 0 {
                p.push(0);
            }
        }
    }
    p
}

/// A chunk's only parameter (see [`params`]).
fn tlv(ptype: u16, value: &[u8]) -> Vec<u8> {
    params(&[(ptype, value)])
}

impl Chunk {
    pub fn raw(ctype: u8, flags: u8, value: &[u8]) -> Chunk {
        Chunk { ctype, flags, value: value.to_vec(), length: None, pad: true }
    }

    /// DATA (§3.3.1), unfragmented (B and E set).
    pub fn data(tsn: u32, stream: u16, ssn: u16, ppid: u32, payload: &[u8]) -> Chunk {
        let mut v = tsn.to_be_bytes().to_vec();
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(&ssn.to_be_bytes());
        v.extend_from_slice(&ppid.to_be_bytes());
        v.extend_from_slice(payload);
        Chunk::raw(DATA, 0x03, &v)
    }

    /// An NGAP PDU in one DATA chunk on stream 1 (UE-associated signalling).
    pub fn ngap(tsn: u32, pdu: &[u8]) -> Chunk {
        Chunk::data(tsn, 1, (tsn & 0xffff) as u16, PPID_NGAP, pdu)
    }

    pub fn s1ap(tsn: u32, pdu: &[u8]) -> Chunk {
        Chunk::data(tsn, 1, (tsn & 0xffff) as u16, PPID_S1AP, pdu)
    }

    fn init_body(tag: u32, tsn: u32, params: &[u8]) -> Vec<u8> {
        let mut v = tag.to_be_bytes().to_vec();
        v.extend_from_slice(&106_496u32.to_be_bytes()); // a_rwnd
        v.extend_from_slice(&2u16.to_be_bytes()); // outbound streams
        v.extend_from_slice(&2u16.to_be_bytes()); // max inbound streams
        v.extend_from_slice(&tsn.to_be_bytes());
        v.extend_from_slice(params);
        v
    }

    /// INIT (§3.3.2) with a Supported Address Types parameter (IPv4).
    pub fn init(tag: u32, tsn: u32) -> Chunk {
        Chunk::raw(INIT, 0, &Self::init_body(tag, tsn, &tlv(12, &5u16.to_be_bytes())))
    }

    /// INIT ACK (§3.3.3) with a State Cookie.
    pub fn init_ack(tag: u32, tsn: u32, cookie: &[u8]) -> Chunk {
        Chunk::raw(INIT_ACK, 0, &Self::init_body(tag, tsn, &tlv(7, cookie)))
    }

    /// SACK (§3.3.4) with gap blocks (start, end) and duplicate TSNs.
    pub fn sack(cum_tsn: u32, gaps: &[(u16, u16)], dups: &[u32]) -> Chunk {
        let mut v = cum_tsn.to_be_bytes().to_vec();
        v.extend_from_slice(&106_496u32.to_be_bytes());
        v.extend_from_slice(&(gaps.len() as u16).to_be_bytes());
        v.extend_from_slice(&(dups.len() as u16).to_be_bytes());
        for (s, e) in gaps {
            v.extend_from_slice(&s.to_be_bytes());
            v.extend_from_slice(&e.to_be_bytes());
        }
        for d in dups {
            v.extend_from_slice(&d.to_be_bytes());
        }
        Chunk::raw(SACK, 0, &v)
    }

    /// HEARTBEAT (§3.3.5) with a Heartbeat Info parameter.
    pub fn heartbeat(info: &[u8]) -> Chunk {
        Chunk::raw(HEARTBEAT, 0, &tlv(1, info))
    }

    pub fn heartbeat_ack(info: &[u8]) -> Chunk {
        Chunk::raw(HEARTBEAT_ACK, 0, &tlv(1, info))
    }

    /// ABORT (§3.3.7), T bit as given, with a User-Initiated Abort cause (12).
    pub fn abort(t_bit: bool) -> Chunk {
        Chunk::raw(ABORT, u8::from(t_bit), &tlv(12, b"bye"))
    }

    pub fn shutdown(cum_tsn: u32) -> Chunk {
        Chunk::raw(SHUTDOWN, 0, &cum_tsn.to_be_bytes())
    }

    pub fn shutdown_ack() -> Chunk {
        Chunk::raw(SHUTDOWN_ACK, 0, &[])
    }

    pub fn shutdown_complete() -> Chunk {
        Chunk::raw(SHUTDOWN_COMPLETE, 0, &[])
    }

    /// ERROR (§3.3.10) with an Invalid Stream Identifier cause (1).
    pub fn error() -> Chunk {
        Chunk::raw(ERROR, 0, &tlv(1, &[0, 9, 0, 0]))
    }

    pub fn cookie_echo(cookie: &[u8]) -> Chunk {
        Chunk::raw(COOKIE_ECHO, 0, cookie)
    }

    pub fn cookie_ack() -> Chunk {
        Chunk::raw(COOKIE_ACK, 0, &[])
    }

    pub fn flags(mut self, f: u8) -> Chunk {
        self.flags = f;
        self
    }

    /// Override the Chunk Length field.
    pub fn length(mut self, l: u16) -> Chunk {
        self.length = Some(l);
        self
    }

    pub fn no_pad(mut self) -> Chunk {
        self.pad = false;
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut c = vec![self.ctype, self.flags];
        let len = self.length.unwrap_or((self.value.len() + 4) as u16);
        c.extend_from_slice(&len.to_be_bytes());
        c.extend_from_slice(&self.value);
        if self.pad {
            while c.len() % 4 != 0 {
                c.push(0);
            }
        }
        c
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ip {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

/// One Ethernet frame carrying an SCTP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpFrame {
    vlans: Vec<u16>,
    ip: Ip,
    sport: u16,
    dport: u16,
    vtag: u32,
    chunks: Vec<Chunk>,
    bad_crc: bool,
    trailer: Vec<u8>,
}

impl SctpFrame {
    /// gNB 10.100.0.11:38412 → AMF 10.100.0.1:38412, verification tag 1, no chunks yet.
    pub fn ngap() -> SctpFrame {
        SctpFrame {
            vlans: Vec::new(),
            ip: Ip::V4 { src: Ipv4Addr::new(10, 100, 0, 11), dst: Ipv4Addr::new(10, 100, 0, 1) },
            sport: NGAP_PORT,
            dport: NGAP_PORT,
            vtag: 1,
            chunks: Vec::new(),
            bad_crc: false,
            trailer: Vec::new(),
        }
    }

    /// eNB → MME on 36412.
    pub fn s1ap() -> SctpFrame {
        SctpFrame { sport: S1AP_PORT, dport: S1AP_PORT, ..SctpFrame::ngap() }
    }

    pub fn v4(mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        self.ip = Ip::V4 { src, dst };
        self
    }

    pub fn v6(mut self, src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        self.ip = Ip::V6 { src, dst };
        self
    }

    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlans.push(vid);
        self
    }

    pub fn ports(mut self, sport: u16, dport: u16) -> Self {
        self.sport = sport;
        self.dport = dport;
        self
    }

    pub fn vtag(mut self, vtag: u32) -> Self {
        self.vtag = vtag;
        self
    }

    pub fn chunk(mut self, c: Chunk) -> Self {
        self.chunks.push(c);
        self
    }

    /// Write a wrong CRC32c (the guard does not verify it; tshark flags it).
    pub fn bad_crc(mut self) -> Self {
        self.bad_crc = true;
        self
    }

    /// Bytes after the IP packet (Ethernet padding), outside the IP length.
    pub fn trailer(mut self, b: &[u8]) -> Self {
        self.trailer = b.to_vec();
        self
    }

    /// The SCTP packet: common header with CRC32c, then the chunks.
    pub fn sctp(&self) -> Vec<u8> {
        let mut s = self.sport.to_be_bytes().to_vec();
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&self.vtag.to_be_bytes());
        s.extend_from_slice(&[0; 4]);
        for c in &self.chunks {
            s.extend_from_slice(&c.encode());
        }
        let mut crc = crc32c(&s);
        if self.bad_crc {
            crc ^= 0xdead_beef;
        }
        // The CRC32c goes on the wire least significant byte first (RFC 9260 Appendix B).
        s[8..12].copy_from_slice(&crc.to_le_bytes());
        s
    }

    pub fn build(&self) -> Vec<u8> {
        let sctp = self.sctp();
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        for v in &self.vlans {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
        }
        match &self.ip {
            Ip::V4 { src, dst } => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let total = (20 + sctp.len()) as u16;
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&[0, 0, 0x40, 0, 64, 132, 0, 0]);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                let c = crate::frames::internet_checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            Ip::V6 { src, dst } => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(sctp.len() as u16).to_be_bytes());
                f.extend_from_slice(&[132, 64]);
                f.extend_from_slice(&src.octets());
                f.extend_from_slice(&dst.octets());
            }
        }
        f.extend_from_slice(&sctp);
        f.extend_from_slice(&self.trailer);
        f
    }

    /// Offset of the SCTP common header in the built frame.
    pub fn sctp_offset(&self) -> usize {
        14 + 4 * self.vlans.len() + if matches!(self.ip, Ip::V4 { .. }) { 20 } else { 40 }
    }
}

/// ALIGNED PER building blocks shared by NGAP and S1AP.
pub mod aper {
    /// An open type / unconstrained length determinant and the contents (X.691 §11.9).
    pub fn open(v: &[u8]) -> Vec<u8> {
        let mut o = if v.len() < 128 {
            vec![v.len() as u8]
        } else {
            assert!(v.len() < 16384, "fragmented lengths are not built");
            vec![0x80 | (v.len() >> 8) as u8, v.len() as u8]
        };
        o.extend_from_slice(v);
        o
    }

    /// ProtocolIE-Field: id (2), criticality (2 bits, padded), value as an open type.
    pub fn ie(id: u16, criticality: u8, value: &[u8]) -> Vec<u8> {
        let mut o = id.to_be_bytes().to_vec();
        o.push(criticality << 6);
        o.extend_from_slice(&open(value));
        o
    }

    /// A whole PDU: CHOICE index (0 initiating, 1 successful, 2 unsuccessful), procedureCode,
    /// criticality, and the message SEQUENCE (extension bit 0, IE count, IEs) as an open type.
    pub fn pdu(choice: u8, proc_code: u8, criticality: u8, ies: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0x00];
        v.extend_from_slice(&(ies.len() as u16).to_be_bytes());
        for i in ies {
            v.extend_from_slice(i);
        }
        let mut o = vec![choice << 5, proc_code, criticality << 6];
        o.extend_from_slice(&open(&v));
        o
    }

    /// A constrained whole number with a range above 64K (X.691 §11.5.7.4): the octet count minus
    /// one in `len_bits` bits (padded to an octet), then the minimal big-endian octets.
    pub fn big_uint(v: u64, len_bits: u32) -> Vec<u8> {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take(7).take_while(|b| **b == 0).count();
        let n = 8 - skip;
        let mut o = vec![((n - 1) as u8) << (8 - len_bits)];
        o.extend_from_slice(&bytes[skip..]);
        o
    }

    pub const REJECT: u8 = 0;
    pub const IGNORE: u8 = 1;
}

/// NGAP (TS 38.413) messages and 5GMM NAS (TS 24.501).
pub mod ngap {
    use super::aper::{big_uint, ie, pdu, IGNORE, REJECT};

    pub const PROC_INITIAL_UE: u8 = 15;
    pub const PROC_UPLINK_NAS: u8 = 46;
    pub const PROC_NG_SETUP: u8 = 21;
    pub const PROC_INITIAL_CONTEXT_SETUP: u8 = 14;
    pub const PROC_UE_CTX_RELEASE_REQ: u8 = 42;

    /// PLMN 001/01 as on the wire (TS 38.413 §9.3.3.5).
    pub const PLMN_00101: [u8; 3] = [0x00, 0xf1, 0x10];

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Cell {
        /// NR-CGI: 36-bit NR Cell Identity.
        Nr(u64),
        /// E-UTRA CGI (ng-eNB): 28-bit cell identity.
        Eutra(u32),
    }

    /// 5G-S-TMSI: AMF Set ID (10 bits), AMF Pointer (6 bits), 5G-TMSI.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FiveGSTmsi {
        pub set_id: u16,
        pub pointer: u8,
        pub tmsi: u32,
    }

    /// RRCEstablishmentCause root values (TS 38.413 §9.3.1.111).
    pub const CAUSE_EMERGENCY: u8 = 0;
    pub const CAUSE_MO_SIGNALLING: u8 = 3;
    pub const CAUSE_MO_DATA: u8 = 4;

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct InitialUeMessage {
        pub ran_ue_id: u32,
        pub nas: Vec<u8>,
        pub plmn: [u8; 3],
        pub cell: Cell,
        pub tac: u32,
        pub cause: u8,
        pub s_tmsi: Option<FiveGSTmsi>,
        pub ue_context_request: bool,
    }

    impl InitialUeMessage {
        /// An NR InitialUEMessage with a Registration Request (SUCI) and no 5G-S-TMSI.
        pub fn nr(ran_ue_id: u32, nci: u64) -> Self {
            InitialUeMessage {
                ran_ue_id,
                nas: registration_request_suci(&PLMN_00101, 0x0000_0012_3456_7890),
                plmn: PLMN_00101,
                cell: Cell::Nr(nci),
                tac: 1,
                cause: CAUSE_MO_SIGNALLING,
                s_tmsi: None,
                ue_context_request: true,
            }
        }

        pub fn s_tmsi(mut self, set_id: u16, pointer: u8, tmsi: u32) -> Self {
            self.s_tmsi = Some(FiveGSTmsi { set_id, pointer, tmsi });
            self
        }

        pub fn nas(mut self, nas: Vec<u8>) -> Self {
            self.nas = nas;
            self
        }

        pub fn cause(mut self, c: u8) -> Self {
            self.cause = c;
            self
        }

        pub fn cell(mut self, c: Cell) -> Self {
            self.cell = c;
            self
        }

        pub fn encode(&self) -> Vec<u8> {
            let mut ies = vec![
                ie(85, REJECT, &big_uint(self.ran_ue_id as u64, 2)),
                ie(38, REJECT, &super::aper::open(&self.nas)),
                ie(121, REJECT, &user_location(&self.plmn, self.cell, self.tac)),
                ie(90, IGNORE, &[self.cause << 3]),
            ];
            if let Some(t) = self.s_tmsi {
                ies.push(ie(26, REJECT, &five_g_s_tmsi(t)));
            }
            if self.ue_context_request {
                // UEContextRequest ::= ENUMERATED {requested, ...}: extension bit, no index bits.
                ies.push(ie(112, IGNORE, &[0x00]));
            }
            pdu(0, PROC_INITIAL_UE, IGNORE, &ies)
        }
    }

    /// UserLocationInformation: CHOICE index (EUTRA 0, NR 1) and the SEQUENCE preamble bits in
    /// octet 0, PLMN, the cell identity bits, then TAI (its 2 preamble bits in the cell identity's
    /// last octet when they fit), PLMN and TAC.
    pub fn user_location(plmn: &[u8; 3], cell: Cell, tac: u32) -> Vec<u8> {
        let mut v = Vec::new();
        match cell {
            Cell::Nr(nci) => {
                v.push(0x40);
                v.extend_from_slice(plmn);
                let n = (nci & 0xf_ffff_ffff) << 4;
                v.extend_from_slice(&n.to_be_bytes()[3..8]);
            }
            Cell::Eutra(eci) => {
                v.push(0x00);
                v.extend_from_slice(plmn);
                let n = (eci & 0x0fff_ffff) << 4;
                v.extend_from_slice(&n.to_be_bytes());
            }
        }
        v.extend_from_slice(plmn);
        v.extend_from_slice(&tac.to_be_bytes()[1..4]);
        v
    }

    /// FiveG-S-TMSI: extension and iE-Extensions bits, AMF Set ID and Pointer (16 bits,
    /// unaligned), padding, 5G-TMSI.
    pub fn five_g_s_tmsi(t: FiveGSTmsi) -> Vec<u8> {
        let bits: u32 = ((t.set_id as u32 & 0x3ff) << 12) | ((t.pointer as u32 & 0x3f) << 6);
        let mut v = bits.to_be_bytes()[1..4].to_vec();
        v.extend_from_slice(&t.tmsi.to_be_bytes());
        v
    }

    /// UplinkNASTransport (46): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID, NAS-PDU, ULI.
    pub fn uplink_nas_transport(amf_ue_id: u64, ran_ue_id: u32, nas: &[u8], nci: u64) -> Vec<u8> {
        pdu(
            0,
            PROC_UPLINK_NAS,
            IGNORE,
            &[
                ie(10, REJECT, &big_uint(amf_ue_id, 3)),
                ie(85, REJECT, &big_uint(ran_ue_id as u64, 2)),
                ie(38, REJECT, &super::aper::open(nas)),
                ie(121, IGNORE, &user_location(&PLMN_00101, Cell::Nr(nci), 1)),
            ],
        )
    }

    /// InitialContextSetupResponse (successfulOutcome 14): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID.
    pub fn initial_context_setup_response(amf_ue_id: u64, ran_ue_id: u32) -> Vec<u8> {
        pdu(
            1,
            PROC_INITIAL_CONTEXT_SETUP,
            REJECT,
            &[ie(10, IGNORE, &big_uint(amf_ue_id, 3)), ie(85, IGNORE, &big_uint(ran_ue_id as u64, 2))],
        )
    }

    /// UEContextReleaseRequest (42): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID, Cause radioNetwork(0)
    /// user-inactivity (20).
    pub fn ue_context_release_request(amf_ue_id: u64, ran_ue_id: u32) -> Vec<u8> {
        // Cause CHOICE (6 alternatives: 3 bits, index 0 radioNetwork), then CauseRadioNetwork
        // (extensible ENUMERATED, < 64 root values: extension bit + 6 bits): 000 0 010100.
        let cause = [0x05, 0x00];
        pdu(
            0,
            PROC_UE_CTX_RELEASE_REQ,
            IGNORE,
            &[
                ie(10, REJECT, &big_uint(amf_ue_id, 3)),
                ie(85, REJECT, &big_uint(ran_ue_id as u64, 2)),
                ie(15, IGNORE, &cause),
            ],
        )
    }

    /// NGSetupRequest (21): GlobalRANNodeID (gNB, 32-bit gNB-ID), RANNodeName, SupportedTAList
    /// (one TAC, one PLMN, one S-NSSAI with SST 1), DefaultPagingDRX v128.
    pub fn ng_setup_request(gnb_id: u32, name: &str) -> Vec<u8> {
        // GlobalRANNodeID CHOICE index 0 (2 bits), GlobalGNB-ID ext + iE-Ext bits: 0x00; PLMN;
        // GNB-ID CHOICE index 0 (1 bit) + BIT STRING SIZE(22..32) length - 22 in 4 bits: 32 → 10
        // → 0b0_1010_000 = 0x50; then the 32 bits, aligned.
        let mut g = vec![0x00];
        g.extend_from_slice(&PLMN_00101);
        g.push(0x50);
        g.extend_from_slice(&gnb_id.to_be_bytes());
        // RANNodeName: PrintableString (SIZE(1..150, ...)): ext bit + 8-bit length - 1, then
        // 8-bit characters (aligned).
        let n = name.as_bytes();
        let mut r = vec![((n.len() - 1) >> 1) as u8, (((n.len() - 1) & 1) << 7) as u8];
        r.extend_from_slice(n);
        // SupportedTAList: SEQUENCE (SIZE(1..256)) OF: count - 1 in 8 bits; item: ext + iE-ext
        // bits (0x00), TAC (3), BroadcastPLMNList (SIZE(1..12): 4 bits count - 1) + item ext +
        // iE-ext bits, PLMN, SliceSupportList (SIZE(1..1024): 10 bits, aligned as length), item:
        // ext + iE-ext, S-NSSAI ext + sD opt + iE-ext opt, SST (1 octet).
        let mut ta = vec![0x00, 0x00, 0x00, 0x00, 0x01, 0x00];
        ta.extend_from_slice(&PLMN_00101);
        ta.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]);
        pdu(
            0,
            PROC_NG_SETUP,
            REJECT,
            &[ie(27, REJECT, &g), ie(82, IGNORE, &r), ie(102, REJECT, &ta), ie(21, IGNORE, &[0x20])],
        )
    }

    /// A plain 5GMM Registration Request (initial registration, ngKSI "no key") with a SUCI
    /// (IMSI, null protection scheme) and a UE security capability.
    pub fn registration_request_suci(plmn: &[u8; 3], msin: u64) -> Vec<u8> {
        let mut id = vec![0x01];
        id.extend_from_slice(plmn);
        // Routing indicator 0 ("0fff"), protection scheme null, home network public key id 0.
        id.extend_from_slice(&[0xf0, 0xff, 0x00, 0x00]);
        // MSIN, 10 BCD digits, low nibble first.
        let digits: Vec<u8> = format!("{msin:010}").bytes().map(|b| b - b'0').collect();
        for p in digits.chunks(2) {
            id.push(p[0] | (p.get(1).copied().unwrap_or(0xf) << 4));
        }
        registration_request(0x79, &id)
    }

    /// A plain Registration Request (mobility update, native ngKSI 0) with a 5G-GUTI.
    pub fn registration_request_guti(plmn: &[u8; 3], region: u8, t: FiveGSTmsi) -> Vec<u8> {
        let mut id = vec![0xf2];
        id.extend_from_slice(plmn);
        id.push(region);
        let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
        id.extend_from_slice(&sp.to_be_bytes());
        id.extend_from_slice(&t.tmsi.to_be_bytes());
        registration_request(0x0b, &id)
    }

    fn registration_request(type_ksi: u8, identity: &[u8]) -> Vec<u8> {
        let mut n = vec![0x7e, 0x00, 0x41, type_ksi];
        n.extend_from_slice(&(identity.len() as u16).to_be_bytes());
        n.extend_from_slice(identity);
        // UE security capability (IEI 0x2e): 5G-EA0-3, 5G-IA0-3, EEA0-3, EIA0-3.
        n.extend_from_slice(&[0x2e, 0x04, 0xf0, 0xf0, 0xf0, 0xf0]);
        n
    }

    /// An integrity-protected (security header type 1) Service Request with the 5G-S-TMSI.
    pub fn service_request(t: FiveGSTmsi) -> Vec<u8> {
        let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
        let mut inner = vec![0x7e, 0x00, 0x4c, 0x01, 0x00, 0x07, 0xf4];
        inner.extend_from_slice(&sp.to_be_bytes());
        inner.extend_from_slice(&t.tmsi.to_be_bytes());
        let mut n = vec![0x7e, 0x01, 0x11, 0x22, 0x33, 0x44, 0x05];
        n.extend_from_slice(&inner);
        n
    }

    /// A plain Deregistration Request (UE originating), another message type.
    pub fn deregistration_request(t: FiveGSTmsi) -> Vec<u8> {
        let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
        let mut n = vec![0x7e, 0x00, 0x45, 0x01, 0x00, 0x07, 0xf4];
        n.extend_from_slice(&sp.to_be_bytes());
        n.extend_from_slice(&t.tmsi.to_be_bytes());
        n
    }
}

/// S1AP (TS 36.413) Initial UE Message.
pub mod s1ap {
    use super::aper::{big_uint, ie, open, pdu, IGNORE, REJECT};

    pub const PROC_INITIAL_UE: u8 = 12;

    /// eNB-UE-S1AP-ID, NAS-PDU (Attach Request), TAI, EUTRAN-CGI, RRC-Establishment-Cause
    /// (mo-Signalling), S-TMSI (optional).
    pub fn initial_ue_message(enb_ue_id: u32, eci: u32, tac: u16, s_tmsi: Option<(u8, u32)>) -> Vec<u8> {
        let plmn = super::ngap::PLMN_00101;
        let mut tai = vec![0x00];
        tai.extend_from_slice(&plmn);
        tai.extend_from_slice(&tac.to_be_bytes());
        let mut cgi = vec![0x00];
        cgi.extend_from_slice(&plmn);
        cgi.extend_from_slice(&((eci & 0x0fff_ffff) << 4).to_be_bytes());
        // Attach Request: EPS attach type (1) + NAS KSI (7), EPS mobile identity (IMSI, LV),
        // UE network capability (LV), ESM message container (LV-E: PDN Connectivity Request).
        let nas = vec![
            0x07, 0x41, 0x71, 0x08, 0x09, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0xe0, 0xe0, 0x00, 0x04, 0x02,
            0x01, 0xd0, 0x11,
        ];
        let mut ies = vec![
            ie(8, REJECT, &big_uint(enb_ue_id as u64, 2)),
            ie(26, REJECT, &open(&nas)),
            ie(67, REJECT, &tai),
            ie(100, IGNORE, &cgi),
            // RRC-Establishment-Cause: extension bit + 3 bits: mo-Signalling (3).
            ie(134, IGNORE, &[3 << 4]),
        ];
        if let Some((mmec, m_tmsi)) = s_tmsi {
            let mut v = ((mmec as u16) << 6).to_be_bytes().to_vec();
            v.extend_from_slice(&m_tmsi.to_be_bytes());
            ies.push(ie(96, REJECT, &v));
        }
        pdu(0, PROC_INITIAL_UE, IGNORE, &ies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value of "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn chunk_padding_and_length() {
        let c = Chunk::cookie_echo(&[1, 2, 3, 4, 5]).encode();
        assert_eq!(c.len(), 12);
        assert_eq!(&c[..4], &[10, 0, 0, 9]);
        assert_eq!(Chunk::cookie_ack().encode(), vec![11, 0, 0, 4]);
    }

    #[test]
    fn big_uint_encoding() {
        assert_eq!(aper::big_uint(1, 2), vec![0x00, 0x01]);
        assert_eq!(aper::big_uint(0x1234, 2), vec![0x40, 0x12, 0x34]);
        assert_eq!(aper::big_uint(0x12_3456_789a, 3), vec![0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
    }
}
