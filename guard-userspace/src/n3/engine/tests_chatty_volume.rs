//! The volume form of chatty devices (T3, issue 27 item 2): bursts that are excessive in T-PDU
//! octets while their packet count stays inside the device's burst profile (a few 1,400-octet
//! packets where the device used to send 100-octet ones) are chatty under the same periodicity
//! and shortness tests as bursts excessive in packets, and the stage gets a byte rate; a meter
//! whose bursts are large but regular never is.

use std::collections::BTreeSet;

use super::sim::{index_of, Rng, Sim};
use super::{Decision, Reason};
use crate::config::Config;

const N: usize = 200;
/// Packets per burst for everyone: the burst profile the packet test learns (20), far below its
/// excessive threshold (max(8 × 20, 50) = 160), so only octets can make a burst excessive.
const BURST: u64 = 20;

/// What device `i` does after 300 s (before, every class but the large meters is a small meter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// 20 packets of 100 octets every 60 s ±10%, random phase.
    Meter,
    /// 20 packets of 1,400 octets every 60 s ±10% from the start: large but regular.
    LargeMeter,
    /// From 301 s: 20 × 1,400 octets in the same window as its peers, every 20 s.
    LockStep,
    /// From 300 s: 20 × 1,400 octets every 20 s ±30%, on its own timing.
    Jittered,
    /// From 300 s: 20 × 1,400 octets at intervals alternating 6 s and 60 s (not quasi-periodic).
    Aperiodic,
    /// From 300 s: 3 × 1,400 octets a window for 8 windows every 20 s (long, not short; per
    /// window 4.2× the byte profile floor, below the flood trigger of 8×).
    Long,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        3 => Kind::LockStep,
        5 => Kind::Jittered,
        7 => Kind::LargeMeter,
        9 => Kind::Aperiodic,
        1 => Kind::Long,
        _ => Kind::Meter,
    }
}

#[test]
fn bursts_excessive_in_octets_are_chatty_and_large_regular_meters_are_not() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(27);
    for i in (0..N).filter(|&i| kind(i) == Kind::LargeMeter) {
        sim.size[i] = 1400;
    }
    let mut next: Vec<f64> = (0..N).map(|_| rng.range(0.0, 60.0)).collect();
    let meter = |rng: &mut Rng, next: &mut f64, t: f64| {
        if t >= *next {
            *next += 60.0 * rng.range(0.9, 1.1);
            BURST
        } else {
            0
        }
    };
    // 300 s: everyone learns a 20-packet burst (2,000 octets, or 28,000 for the large meters).
    sim.run(300, |i, t, _| meter(&mut rng, &mut next[i], t));
    for i in (0..N).filter(|&i| !matches!(kind(i), Kind::Meter | Kind::LargeMeter)) {
        sim.size[i] = 1400;
        next[i] = 300.0 + rng.range(0.0, 2.0);
    }
    let mut flip = [false; N];
    let mut left = [0u32; N];
    let passed_at = |sim: &Sim| -> Vec<u64> { (0..N).map(|i| sim.devs[i].passed_bytes).collect() };
    sim.run(300, |i, t, _| match kind(i) {
        Kind::Meter | Kind::LargeMeter => meter(&mut rng, &mut next[i], t),
        Kind::LockStep => {
            if t > 300.0 && (t as u64 - 301).is_multiple_of(20) {
                BURST
            } else {
                0
            }
        }
        Kind::Jittered | Kind::Aperiodic | Kind::Long => {
            if t >= next[i] {
                next[i] += match kind(i) {
                    Kind::Jittered => 20.0 * rng.range(0.7, 1.3),
                    Kind::Long => 20.0,
                    _ => {
                        flip[i] = !flip[i];
                        if flip[i] {
                            6.0
                        } else {
                            60.0
                        }
                    }
                };
                if kind(i) == Kind::Long {
                    left[i] = 8;
                } else {
                    return BURST;
                }
            }
            if left[i] > 0 {
                left[i] -= 1;
                return 3;
            }
            0
        }
    });
    let before = passed_at(&sim);
    let chatty: BTreeSet<usize> = (0..N).filter(|&i| matches!(kind(i), Kind::LockStep | Kind::Jittered)).collect();
    assert_eq!(sim.staged(), chatty, "exactly the devices chatty by volume are staged");
    for &i in &chatty {
        let first = sim.stage_changes(i)[0];
        assert_eq!(first.2, Reason::Chatty, "device {i}: {first:?}");
        let by = if kind(i) == Kind::LockStep { 342.0 } else { 300.0 + 6.0 * 26.0 };
        assert!(first.0 <= by, "device {i} ({:?}) found at {}, not by {by}", kind(i), first.0);
    }
    // The stage carries a byte rate (the device's own byte profile, the 8 kbit/s floor here):
    // a packet limit alone would let 20 packets a burst through untouched.
    let shapes: Vec<_> = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::Chatty, refresh: false, .. }))
        .map(|(_, d)| match d {
            Decision::SetDeviceStage { bytes, evidence, .. } => (bytes.bits_per_sec(), evidence.clone()),
            _ => unreachable!("filtered to stages"),
        })
        .collect();
    assert_eq!(shapes.len(), chatty.len(), "{shapes:?}");
    for (bps, ev) in &shapes {
        assert!((8_000..=16_000).contains(bps), "byte rate {bps}: {ev:?}");
        assert_eq!(ev.burst_packets, Some(BURST), "{ev:?}");
        assert!(ev.burst_bytes.is_some_and(|b| b >= 27_000), "{ev:?}");
        assert!(ev.period_cv.is_some_and(|cv| cv <= 0.5) && ev.peak_ratio.is_some_and(|p| p >= 4.0), "{ev:?}");
    }
    // And the byte rate bites: from here on the chatty devices' bursts are cut, not passed.
    sim.run(200, |i, t, _| match kind(i) {
        Kind::LockStep | Kind::Jittered => u64::from((t as u64).is_multiple_of(20)) * BURST,
        _ => 0,
    });
    for &i in &chatty {
        let passed = sim.devs[i].passed_bytes - before[i];
        assert!(passed * 4 < 10 * BURST * 1400, "device {i} passed {passed} of {} octets", 10 * BURST * 1400);
    }
}

/// A chatty stage found in the map with a byte rate (set for the device's octets, then the
/// controller restarted) keeps its byte rate through its refreshes, though the restarted engine
/// has no byte profile yet to derive it from; one without a byte rate gets none.
#[test]
fn a_restored_chatty_stage_keeps_its_byte_rate() {
    use guard_common::abi::{ByteLimit, Limit, STAGE_QUARANTINE, STAGE_SHAPE};

    use super::CurrentStage;

    let cfg = Config::default();
    let mut sim = Sim::new(cfg.clone(), N, 10);
    let rate = ByteLimit::bits_per_second(8_000, 1_000);
    let limit = Limit::per_second(cfg.ladder.shape.rate_pps, cfg.ladder.shape.burst);
    let stage = |i: usize, bytes| CurrentStage {
        key: sim.devs[i].key,
        stage: STAGE_SHAPE,
        flags: 0,
        limit,
        bytes,
        expires_ns: sim.now + 30_000_000_000,
        reason: Reason::Chatty.code(),
    };
    let stages = [stage(3, rate), stage(13, ByteLimit::UNLIMITED)];
    sim.restore(&stages);
    sim.size[3] = 1400;
    sim.run(90, |i, t, _| u64::from(matches!(i, 3 | 13) && (t as u64).is_multiple_of(20)) * BURST);
    let written = |dev: usize| -> Vec<ByteLimit> {
        sim.decisions(|d| matches!(d, Decision::SetDeviceStage { stage, .. } if *stage < STAGE_QUARANTINE))
            .filter_map(|(_, d)| match d {
                Decision::SetDeviceStage { key, bytes, .. } if index_of(key) == dev => Some(*bytes),
                _ => None,
            })
            .collect()
    };
    let (w3, w13) = (written(3), written(13));
    assert!(!w3.is_empty() && !w13.is_empty(), "both refreshed: {w3:?} {w13:?}");
    assert!(w3.iter().all(|b| b.bits_per_sec() == 8_000), "{w3:?}");
    assert!(w13.iter().all(|b| b.is_unlimited()), "{w13:?}");
}
