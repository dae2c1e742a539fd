//! Outer IP fragments (RFC 791 §3.2, RFC 8200 §4.5, RFC 6946): a first fragment is parsed like
//! the packet, a later one is named, an atomic one is whole.

use super::{base, encode, gtp, Spec};
use crate::abi::L3Addr;
use crate::parse::n3;

/// Split an untagged IPv4 frame's payload at `cut` (a multiple of 8): the first fragment (MF
/// set) and the second (offset `cut / 8`), both with Identification `id`.
fn fragment_v4(f: &[u8], id: u16, cut: usize) -> (Vec<u8>, Vec<u8>) {
    let (hdr, payload) = f.split_at(14 + 20);
    let mk = |part: &[u8], off: usize, more: bool| {
        let mut x = hdr.to_vec();
        x[14 + 2..14 + 4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        x[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        x[14 + 6..14 + 8].copy_from_slice(&fo.to_be_bytes());
        x.extend_from_slice(part);
        x
    };
    (mk(&payload[..cut], 0, true), mk(&payload[cut..], cut, false))
}

/// An IPv6 frame with a Fragment header (Next Header UDP, `offset` in octets, M, `id`) inserted
/// before its UDP header, carrying `part` of the original payload.
fn fragment_v6(f: &[u8], id: u32, part: std::ops::Range<usize>, more: bool) -> Vec<u8> {
    let (hdr, payload) = f.split_at(14 + 40);
    let mut x = hdr.to_vec();
    let body = &payload[part.clone()];
    x[14 + 4..14 + 6].copy_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    x[14 + 6] = 44;
    let om = (part.start as u16) | u16::from(more);
    x.extend_from_slice(&[17, 0]);
    x.extend_from_slice(&om.to_be_bytes());
    x.extend_from_slice(&id.to_be_bytes());
    x.extend_from_slice(body);
    x
}

#[test]
fn a_first_ipv4_fragment_is_parsed_like_the_packet_and_a_later_one_is_named() {
    let spec = Spec { payload: 1400, ..base() };
    let whole = encode(&spec);
    let (first, later) = fragment_v4(&whole, 0xbeef, 1000);
    let p = gtp(&first);
    assert_eq!((p.gtp.teid, p.gtp.qfi, p.inner_src), (0x1234, 9, L3Addr::v4([10, 45, 0, 2])));
    assert_eq!((p.frag_kind, p.frag), (n3::FRAG_FIRST, 0xbeef), "judged like a whole G-PDU");
    let mut out = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into(&later[..], 2152, &mut out), Ok(false), "no GTP-U header in a later fragment");
    assert_eq!((out.frag_kind, out.frag, out.outer_src), (n3::FRAG_LATER, 0xbeef, L3Addr::v4([10, 200, 0, 11])));
    // The fast path leaves fragments to the full parser, which reports the same.
    let mut fast = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into_fast(&later[..], 2152, &mut fast), Ok(false));
    assert_eq!(fast.frag_kind, n3::FRAG_LATER);
    // A whole packet after a fragment is not a fragment (the scratch is reused per CPU).
    let mut reused = out;
    assert!(n3::parse_into_fast(&whole[..], 2152, &mut reused).expect("whole"));
    assert_eq!(reused.frag_kind, n3::FRAG_NONE, "`frag` is not read for a whole packet");
    let other = [0u8; 60];
    let _ = n3::parse_into(&other[..], 2152, &mut reused);
    assert_eq!(reused.frag_kind, n3::FRAG_NONE, "a non-IP frame resets it too");
}

#[test]
fn ipv6_first_fragments_are_parsed_later_ones_named_and_atomic_ones_whole() {
    let spec = Spec { payload: 1400, ipv6: true, ..base() };
    let whole = encode(&spec);
    let udp_len = whole.len() - (14 + 40);
    let first = fragment_v6(&whole, 0x0102_0304, 0..1000, true);
    let p = gtp(&first);
    assert_eq!((p.gtp.teid, p.frag_kind, p.frag), (0x1234, n3::FRAG_FIRST, 0x0102_0304));
    let later = fragment_v6(&whole, 0x0102_0304, 1000..udp_len, false);
    let mut out = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into(&later[..], 2152, &mut out), Ok(false));
    assert_eq!((out.frag_kind, out.frag), (n3::FRAG_LATER, 0x0102_0304));
    // RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet.
    let atomic = fragment_v6(&whole, 7, 0..udp_len, false);
    let p = gtp(&atomic);
    assert_eq!((p.gtp.teid, p.frag_kind, p.inner_src), (0x1234, n3::FRAG_NONE, L3Addr::v4([10, 45, 0, 2])));
}

#[test]
fn a_first_fragment_too_short_for_the_headers_is_still_malformed() {
    let whole = encode(&Spec { payload: 1400, ..base() });
    // Cut inside the GTP-U optional fields: the headers are not all there.
    let (first, _) = fragment_v4(&whole, 1, 16);
    assert!(matches!(n3::parse(&first[..], 2152), Err(e) if e.is_gtp()), "{:?}", n3::parse(&first[..], 2152));
}
