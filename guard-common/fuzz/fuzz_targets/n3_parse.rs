//! Fuzz the N3 parser the XDP program runs: arbitrary frames must never panic, a GTP-U result
//! must point inside the frame, and the fixed-offset fast path (`parse_common`) must decide as the
//! full parser does and write exactly what it writes whenever it decides a frame.
//!
//! Each input is checked three ways: as the whole frame; with what follows octet 34 (the UDP
//! header of an untagged IPv4 frame without options, as most seeds in `tests/corpus/n3` are) put
//! behind an untagged IPv6 header whose Next Header is UDP (the fast path's IPv6 shape, issue 19;
//! RFC 8200 §3); and behind an Ethernet header whose EtherType is IPv6, so the IPv6 header itself
//! (Version, Next Header, addresses) comes from the input. Random bytes rarely spell an IPv6
//! EtherType and Version, so without the last two the fuzzer would seldom reach the IPv6 branch
//! of the fast path.
#![no_main]

use guard_common::parse::n3::{parse, parse_common, parse_into, Common, GtpPacket, FRAG_LATER, N3};
use libfuzzer_sys::fuzz_target;

/// Ethernet (EtherType IPv6) and an IPv6 header: Version 6, Payload Length 0 (not read by either
/// parser), Next Header UDP, Hop Limit 64, source fd00:200::11, destination fd00:200::1.
const IPV6_UDP: [u8; 54] = [
    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd, //
    0x60, 0, 0, 0, 0, 0, 17, 64, //
    0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, //
    0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];

fn check(data: &[u8]) {
    if let Ok(N3::Gtp(p)) = parse(data, 2152) {
        assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= data.len());
    }
    let mut fast = GtpPacket::EMPTY;
    let got = parse_common(data, 2152, &mut fast);
    let want = match got {
        Common::Gtp => Some(Ok(true)),
        Common::NotGtp => Some(Ok(false)),
        Common::Other => None,
    };
    if let Some(want) = want {
        let mut full = GtpPacket::EMPTY;
        assert_eq!(parse_into(data, 2152, &mut full), want);
        if got == Common::Gtp {
            assert_eq!(fast, full);
        } else {
            // Not GTP-U: passed untouched, so never a later fragment (which the program checks
            // against its dropped datagrams), and nothing written.
            assert_ne!(full.frag_kind, FRAG_LATER);
            assert_eq!(fast, GtpPacket::EMPTY);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // An IPv4 seed's UDP header, GTP-U and T-PDU behind a fixed IPv6 header.
    check(&[&IPV6_UDP[..], data.get(34..).unwrap_or(data)].concat());
    // The IPv6 header and what follows from the input.
    check(&[&IPV6_UDP[..14], data].concat());
});
