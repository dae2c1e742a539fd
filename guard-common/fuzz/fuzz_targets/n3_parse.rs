//! Fuzz the N3 parser the XDP program runs: arbitrary frames must never panic, a GTP-U result
//! must point inside the frame, and the fixed-offset fast path (`parse_common_into`) must write
//! exactly what the full parser writes whenever it accepts a frame.
#![no_main]

use guard_common::parse::n3::{parse, parse_common_into, parse_into, GtpPacket, N3};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(N3::Gtp(p)) = parse(data, 2152) {
        assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= data.len());
    }
    let mut fast = GtpPacket::EMPTY;
    if parse_common_into(data, 2152, &mut fast) {
        let mut full = GtpPacket::EMPTY;
        assert_eq!(parse_into(data, 2152, &mut full), Ok(true));
        assert_eq!(fast, full);
    }
});
