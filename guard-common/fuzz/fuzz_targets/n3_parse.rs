//! Fuzz the N3 parser the XDP program runs: arbitrary frames must never panic, and a GTP-U
//! result must point inside the frame.
#![no_main]

use guard_common::parse::n3::{parse, N3};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(N3::Gtp(p)) = parse(data, 2152) {
        assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= data.len());
    }
});
