//! SCTP (RFC 9260): the 12-octet common header (§3.1) and chunk headers (§3.2).
//!
//! The CRC32c is *not* verified here: in XDP it would cost a pass over every payload byte, and
//! the receiving SCTP stack verifies it anyway. The guard only needs the structure.

use super::{be16, be32, Packet};
use crate::abi::n2::{
    CHUNK_CLASS_ABORT, CHUNK_CLASS_COOKIE_ACK, CHUNK_CLASS_COOKIE_ECHO, CHUNK_CLASS_DATA, CHUNK_CLASS_ERROR,
    CHUNK_CLASS_HEARTBEAT, CHUNK_CLASS_HEARTBEAT_ACK, CHUNK_CLASS_INIT, CHUNK_CLASS_INIT_ACK, CHUNK_CLASS_OTHER,
    CHUNK_CLASS_SACK, CHUNK_CLASS_SHUTDOWN,
};

pub const SCTP_HLEN: usize = 12;
pub const CHUNK_HLEN: usize = 4;
/// DATA chunk header: type, flags, length, TSN, stream id, stream sequence number, PPID (§3.3.1).
pub const DATA_HLEN: usize = 16;
/// I-DATA chunk header (RFC 8260 §2.1): type, flags, length, TSN, stream id, reserved, Message
/// Identifier, then PPID (B bit set) or Fragment Sequence Number (B bit clear).
pub const I_DATA_HLEN: usize = 20;

// Chunk types (RFC 9260 §3.2).
pub const CHUNK_DATA: u8 = 0;
pub const CHUNK_INIT: u8 = 1;
pub const CHUNK_INIT_ACK: u8 = 2;
pub const CHUNK_SACK: u8 = 3;
pub const CHUNK_HEARTBEAT: u8 = 4;
pub const CHUNK_HEARTBEAT_ACK: u8 = 5;
pub const CHUNK_ABORT: u8 = 6;
pub const CHUNK_SHUTDOWN: u8 = 7;
pub const CHUNK_SHUTDOWN_ACK: u8 = 8;
pub const CHUNK_ERROR: u8 = 9;
pub const CHUNK_COOKIE_ECHO: u8 = 10;
pub const CHUNK_COOKIE_ACK: u8 = 11;
pub const CHUNK_SHUTDOWN_COMPLETE: u8 = 14;
/// I-DATA (RFC 8260 §2.1): user data with message interleaving; carries NGAP like DATA.
pub const CHUNK_I_DATA: u8 = 64;

/// DATA chunk flags (§3.3.1): B (beginning fragment), E (ending fragment).
pub const DATA_FLAG_B: u8 = 0x02;
pub const DATA_FLAG_E: u8 = 0x01;

/// The common header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommonHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub vtag: u32,
    /// CRC32c as on the wire (not verified).
    pub checksum: u32,
}

#[inline(always)]
pub fn parse_common<P: Packet + ?Sized>(pkt: &P, off: usize) -> Option<CommonHeader> {
    let h = pkt.read::<SCTP_HLEN>(off)?;
    Some(CommonHeader {
        src_port: be16([h[0], h[1]]),
        dst_port: be16([h[2], h[3]]),
        vtag: be32([h[4], h[5], h[6], h[7]]),
        checksum: be32([h[8], h[9], h[10], h[11]]),
    })
}

/// The per-peer counter class of a chunk type (`CHUNK_CLASS_*`).
#[inline(always)]
pub const fn chunk_class(t: u8) -> usize {
    match t {
        // I-DATA is user data like DATA (RFC 8260): never dropped by a setup limit.
        CHUNK_DATA | CHUNK_I_DATA => CHUNK_CLASS_DATA,
        CHUNK_INIT => CHUNK_CLASS_INIT,
        CHUNK_INIT_ACK => CHUNK_CLASS_INIT_ACK,
        CHUNK_SACK => CHUNK_CLASS_SACK,
        CHUNK_HEARTBEAT => CHUNK_CLASS_HEARTBEAT,
        CHUNK_HEARTBEAT_ACK => CHUNK_CLASS_HEARTBEAT_ACK,
        CHUNK_ABORT => CHUNK_CLASS_ABORT,
        CHUNK_SHUTDOWN | CHUNK_SHUTDOWN_ACK | CHUNK_SHUTDOWN_COMPLETE => CHUNK_CLASS_SHUTDOWN,
        CHUNK_ERROR => CHUNK_CLASS_ERROR,
        CHUNK_COOKIE_ECHO => CHUNK_CLASS_COOKIE_ECHO,
        CHUNK_COOKIE_ACK => CHUNK_CLASS_COOKIE_ACK,
        _ => CHUNK_CLASS_OTHER,
    }
}

/// The smallest valid Chunk Length of a type (its fixed fields), RFC 9260 §3.3.
#[inline(always)]
pub const fn min_chunk_len(t: u8) -> usize {
    match t {
        // Header + TSN, stream id, SSN, PPID. A DATA chunk without user data (length 16) is a
        // protocol error the receiver ABORTs on, but structurally readable.
        CHUNK_DATA => DATA_HLEN,
        CHUNK_I_DATA => I_DATA_HLEN,
        // Initiate Tag, a_rwnd, OS, MIS, Initial TSN (§3.3.2, §3.3.3).
        CHUNK_INIT | CHUNK_INIT_ACK => 20,
        // Cumulative TSN Ack, a_rwnd, #gap blocks, #dup TSNs (§3.3.4).
        CHUNK_SACK => 16,
        // Heartbeat Info TLV, at least its 4-octet header (§3.3.5, §3.3.6).
        CHUNK_HEARTBEAT | CHUNK_HEARTBEAT_ACK => 8,
        // Cumulative TSN Ack (§3.3.8).
        CHUNK_SHUTDOWN => 8,
        _ => CHUNK_HLEN,
    }
}

/// Chunks are padded to a multiple of 4 octets; the padding is not in the Chunk Length (§3.2).
#[inline(always)]
pub const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_header_fields() {
        let h = [0x96, 0x0c, 0x96, 0x0c, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
        let c = parse_common(&h[..], 0).expect("12 octets");
        assert_eq!(c, CommonHeader { src_port: 38412, dst_port: 38412, vtag: 0xdead_beef, checksum: 0x0102_0304 });
        assert!(parse_common(&h[..11], 0).is_none());
    }

    #[test]
    fn classes_and_padding() {
        assert_eq!(chunk_class(14), CHUNK_CLASS_SHUTDOWN);
        assert_eq!(chunk_class(CHUNK_I_DATA), CHUNK_CLASS_DATA);
        assert_eq!(chunk_class(65), CHUNK_CLASS_OTHER);
        assert_eq!((padded(4), padded(5), padded(8), padded(19)), (4, 8, 8, 20));
        assert_eq!(min_chunk_len(CHUNK_COOKIE_ECHO), 4);
    }

    /// Every chunk type of RFC 9260 §3.2 (and I-DATA, RFC 8260) in its own class with its fixed
    /// length (§3.3); every other type counts as "other" with only the chunk header required.
    #[test]
    fn every_chunk_type_has_its_class_and_minimum_length() {
        let table = [
            (CHUNK_DATA, CHUNK_CLASS_DATA, 16),
            (CHUNK_INIT, CHUNK_CLASS_INIT, 20),
            (CHUNK_INIT_ACK, CHUNK_CLASS_INIT_ACK, 20),
            (CHUNK_SACK, CHUNK_CLASS_SACK, 16),
            (CHUNK_HEARTBEAT, CHUNK_CLASS_HEARTBEAT, 8),
            (CHUNK_HEARTBEAT_ACK, CHUNK_CLASS_HEARTBEAT_ACK, 8),
            (CHUNK_ABORT, CHUNK_CLASS_ABORT, 4),
            (CHUNK_SHUTDOWN, CHUNK_CLASS_SHUTDOWN, 8),
            (CHUNK_SHUTDOWN_ACK, CHUNK_CLASS_SHUTDOWN, 4),
            (CHUNK_ERROR, CHUNK_CLASS_ERROR, 4),
            (CHUNK_COOKIE_ECHO, CHUNK_CLASS_COOKIE_ECHO, 4),
            (CHUNK_COOKIE_ACK, CHUNK_CLASS_COOKIE_ACK, 4),
            (CHUNK_SHUTDOWN_COMPLETE, CHUNK_CLASS_SHUTDOWN, 4),
            (CHUNK_I_DATA, CHUNK_CLASS_DATA, 20),
        ];
        for t in 0..=255u8 {
            let (class, min) = table.iter().find(|e| e.0 == t).map_or((CHUNK_CLASS_OTHER, 4), |e| (e.1, e.2));
            assert_eq!((chunk_class(t), min_chunk_len(t)), (class, min), "chunk type {t}");
        }
        let padded_lens: Vec<_> = (0..=9).map(padded).collect();
        assert_eq!(padded_lens, [0, 4, 4, 4, 4, 8, 8, 8, 8, 12]);
        assert_eq!(padded(0xfffc), 0xfffc);
        assert_eq!(padded(0xfffd), 0x1_0000);
    }
}
