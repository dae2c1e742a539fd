//! Fuzz the N2 parsers the XDP program runs (SCTP common header and chunk walk, RFC 9260 §3;
//! NGAP/S1AP PDU header and the InitialUEMessage IE walk, TS 38.413 / TS 36.413): arbitrary
//! frames must never panic, and every recorded offset must lie inside the frame.
#![no_main]

use guard_common::parse::n2::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(p)) = parse(data, 38412, 36412) {
        for i in 0..(p.pkt.ue_count as usize).min(p.pkt.ue_off.len()) {
            let (off, end) = (p.pkt.ue_off[i] as usize, p.pkt.ue_end[i] as usize);
            assert!(off <= end && end <= data.len(), "InitialUEMessage {i} at {off}..{end} of {}", data.len());
        }
    }
});
