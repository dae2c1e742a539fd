//! Fuzz the N3 parser the XDP program runs: arbitrary frames must never panic, a GTP-U result
//! must point inside the frame, and the fixed-offset fast path (`parse_common`) must decide as the
//! full parser does and write exactly what it writes whenever it decides a frame.
#![no_main]

use guard_common::parse::n3::{parse, parse_common, parse_into, Common, GtpPacket, N3};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(N3::Gtp(p)) = parse(data, 2152) {
        assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= data.len());
    }
    let mut fast = GtpPacket::EMPTY;
    let want = match parse_common(data, 2152, &mut fast) {
        Common::Gtp => Some(Ok(true)),
        Common::NotGtp => Some(Ok(false)),
        Common::Other => None,
    };
    if let Some(want) = want {
        let mut full = GtpPacket::EMPTY;
        assert_eq!(parse_into(data, 2152, &mut full), want);
        assert_eq!(fast, full);
    }
});
