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
pub mod aper;

/// NGAP (TS 38.413) messages and 5GMM NAS (TS 24.501).
pub mod ngap;

/// S1AP (TS 36.413) Initial UE Message.
pub mod s1ap;

#[cfg(test)]
mod tests;
