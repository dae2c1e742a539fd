//! Fuzz the GCRA limiter every stage and cap runs in XDP (`guard_common::rate::admit`): any
//! limit and any (monotone or not) sequence of arrival times must never panic, and over any
//! span of monotone time it must admit no more than the burst plus the sustained rate allows
//! (ITU-T I.371 GCRA: at most `1 + (span + tau) / interval` conforming cells, `tau` being the
//! tolerance `admit` applies, `Limit::effective_tau_ns`: at least one step of the coarse clock).
#![no_main]

use guard_common::{abi::Limit, rate::admit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let limit = Limit::per_interval(word(0) % 10_000_000_000, word(8) % 1_000_000);
    let mut tat = 0u64;
    let start = word(16) % (1 << 62);
    let mut now = start;
    let mut admitted = 0u64;
    // Arrival gaps: one byte each, scaled so bursts and idle periods both occur.
    for &gap in &data[24..] {
        now = now.saturating_add(u64::from(gap) * u64::from(gap) * 1_000);
        if admit(&mut tat, now, &limit) {
            admitted += 1;
        }
    }
    if !limit.is_unlimited() {
        let bound = 1 + (now - start).saturating_add(limit.effective_tau_ns()) / limit.interval_ns;
        assert!(admitted <= bound, "admitted {admitted} > GCRA bound {bound} for {limit:?}");
    }
});
