//! The GTP-U header (`parse::gtpu`). Hand-written vectors (TS 29.281 §5.1, §5.2; TS 38.415
//! §5.5.2): octets written here, not by the encoder, and every field of the result checked;
//! and the T-PDU's inner addresses, as the kernel stores them, against the plain reader.

use proptest::prelude::*;

use crate::abi::{L3Addr, QFI_NONE};
use crate::parse::gtpu::{self, Gtpu};
use crate::parse::{n3, Malformed};

/// An inner IPv4 header, 10.45.0.2 -> 192.0.2.1.
const INNER: [u8; 20] = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 45, 0, 2, 192, 0, 2, 1];

/// A G-PDU whose chain is two 2-unit headers: a Long PDCP PDU Number (0x82) whose first unit
/// ends in 0xff (part of the number) and a DL PDU Session Container with the PPP and RQI
/// bits set around QFI 9 and a PPI octet (0xa0) ending its first unit. Each next type is
/// in its header's last octet: a walk that read it from the first unit would see 0xff or
/// 0xa0.
#[test]
fn a_chain_of_two_unit_headers() {
    let mut v = vec![
        0x34, 0xff, 0x00, 0x28, 0x01, 0x02, 0x03, 0x04, // E set, G-PDU, Length 40, TEID
        0x00, 0x2a, 0x00, 0x82, // sequence, N-PDU, next: Long PDCP PDU Number
        0x02, 0x03, 0xff, 0xff, 0x00, 0x00, 0x00, 0x85, // 2 units, PDCP number, next: container
        0x02, 0x00, 0xc9, 0xa0, 0x00, 0x00, 0x00, 0x00, // 2 units, DL, PPP|RQI|QFI 9, PPI, end
    ];
    v.extend_from_slice(&INNER);
    let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
    let want = Gtpu {
        flags: 0x34,
        msg_type: 255,
        length: 40,
        teid: 0x0102_0304,
        ext_count: 2,
        qfi: 9,
        pdu_type: 0,
        payload: 28,
        end: 48,
        tpdu_len: 20,
    };
    assert_eq!(g, want);
    assert_eq!(gtpu::inner_addrs(&v[..], &g), (L3Addr::v4([10, 45, 0, 2]), L3Addr::v4([192, 0, 2, 1])));
    // The same message after 6 octets of something else, in a UDP payload 2 longer than it.
    let mut at6 = vec![0xee; 6];
    at6.extend_from_slice(&v);
    at6.extend_from_slice(&[0, 0]);
    let g6 = gtpu::parse(&at6[..], 6, v.len() + 2).expect("valid at 6");
    assert_eq!(g6, Gtpu { payload: 34, end: 54, ..want });
}

/// An End Marker with a 1-unit UL container (the spare bits above QFI 63 set) then a 1-unit
/// UDP Port header (0x40): QFI and PDU type come from the container wherever it is in the
/// chain, and the message ends with the chain.
#[test]
fn an_end_marker_with_a_container_then_a_udp_port_header() {
    let v = [
        0x36, 0xfe, 0x00, 0x0c, 0xde, 0xad, 0xbe, 0xef, // E and S set, End Marker, Length 12
        0x12, 0x34, 0x00, 0x85, // sequence 0x1234, next: container
        0x01, 0x10, 0xff, 0x40, // 1 unit, UL, QFI 63 with both high bits set, next: UDP Port
        0x01, 0x08, 0x68, 0x00, // 1 unit, port 2152, end of chain
    ];
    let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
    let want = Gtpu {
        flags: 0x36,
        msg_type: 254,
        length: 12,
        teid: 0xdead_beef,
        ext_count: 2,
        qfi: 63,
        pdu_type: 1,
        payload: 20,
        end: 20,
        tpdu_len: 0,
    };
    assert_eq!(g, want);
    assert_eq!(gtpu::inner_addrs(&v[..], &g), (L3Addr::NONE, L3Addr::NONE));
}

/// With S or PN set but not E, octets 9-12 are present and the Next Extension Header Type
/// (here 0x85, followed by octets that would read as a container with QFI 5) is not
/// meaningful: nothing is walked, and the T-PDU starts at octet 13.
#[test]
fn a_next_type_without_the_e_flag_is_not_walked() {
    for flags in [0x32u8, 0x31, 0x33] {
        let mut v = vec![flags, 0xff, 0x00, 0x18, 0, 0, 0, 1, 0x00, 0x01, 0x00, 0x85];
        v.extend_from_slice(&[0x01, 0x10, 0x05, 0x00]);
        v.extend_from_slice(&INNER[4..]);
        let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
        let want = Gtpu {
            flags,
            msg_type: 255,
            length: 24,
            teid: 1,
            ext_count: 0,
            qfi: QFI_NONE as u8,
            pdu_type: 0xff,
            payload: 12,
            end: 32,
            tpdu_len: 20,
        };
        assert_eq!(g, want, "flags {flags:#04x}");
    }
    // With E set the same octets are a container.
    let v = vec![0x34, 0xff, 0x00, 0x08, 0, 0, 0, 1, 0x00, 0x01, 0x00, 0x85, 0x01, 0x10, 0x05, 0x00];
    let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
    assert_eq!((g.ext_count, g.qfi, g.pdu_type, g.payload), (1, 5, 1, 16));
}

/// Octet 1: version 1 and PT 1 (GTP, not GTP') or the message is refused, whatever the other
/// bits say.
#[test]
fn version_and_protocol_type() {
    let msg = |flags: u8| [flags, 0xff, 0, 0, 0, 0, 0, 1];
    for flags in [0x30u8, 0x38] {
        assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8).map(|g| g.flags), Ok(flags));
    }
    for flags in [0x20u8, 0x28, 0x2f] {
        assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8), Err(Malformed::GtpBadProtocolType), "{flags:#04x}");
    }
    for flags in [0x10u8, 0x50, 0xf0, 0x00] {
        assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8), Err(Malformed::GtpBadVersion), "{flags:#04x}");
    }
}

/// Exactly the seven message types of TS 29.281 Table 6.1-1 that N3 carries are known;
/// every other value is refused as unknown.
#[test]
fn only_the_known_message_types_parse() {
    let known = [1u8, 2, 26, 31, 253, 254, 255];
    for t in 0..=255u8 {
        let v = [0x30, t, 0, 0, 0, 0, 0, 7];
        let got = gtpu::parse(&v[..], 0, 8);
        if known.contains(&t) {
            assert_eq!(got.map(|g| (g.msg_type, g.teid, g.payload, g.end)), Ok((t, 7, 8, 8)), "type {t}");
        } else {
            assert_eq!(got, Err(Malformed::UnknownMessageType), "type {t}");
        }
        assert_eq!(Gtpu::is_known_message(t), known.contains(&t), "type {t}");
    }
}

proptest! {
    /// `gtpu::inner_addrs_into` (what `parse_into`, and so the kernel, uses) agrees with
    /// `gtpu::inner_addrs` on any T-PDU: IPv4, IPv6, not IP, empty, truncated, cut by the GTP-U
    /// length, or with an inner length that is or is not the T-PDU's.
    #[test]
    fn inner_addrs_into_agrees_with_inner_addrs(
        mut bytes in prop::collection::vec(any::<u8>(), 0..80),
        version in prop::sample::select(vec![4u8, 6, 0, 5]),
        start in 0usize..8,
        end in 0usize..90,
        tpdu_len in 0u32..90,
        true_length in any::<bool>(),
    ) {
        use gtpu::{inner_addrs, inner_addrs_into};
        if let Some(b) = bytes.get_mut(start) {
            *b = (version << 4) | (*b & 0x0f);
        }
        if true_length {
            // Make the inner header's own length say `tpdu_len`, so the IP branches are taken.
            let (at, v) = if version == 4 { (start + 2, tpdu_len) } else { (start + 4, tpdu_len.saturating_sub(40)) };
            if at + 2 <= bytes.len() {
                bytes[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
            }
        }
        let g = gtpu::Gtpu { payload: start, end, tpdu_len, ..n3::GtpPacket::EMPTY.gtp };
        let marker = L3Addr { family: 0xdead, addr: [0xa5; 16] };
        let (mut s, mut d) = (marker, marker);
        inner_addrs_into(bytes.as_slice(), &g, &mut s, &mut d);
        prop_assert_eq!((s, d), inner_addrs(bytes.as_slice(), &g));
    }
}
