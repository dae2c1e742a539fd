//! What the engine's per-device state costs: the record's size by part (printed with
//! `--nocapture`; the bounds are `const` asserts beside the record, `track.rs`) and, as an
//! ignored test, the resident memory an engine holding many devices adds to the process
//! (`GUARD_MEM_DEVICES`, default 1M), the part of the controller's RSS that grows with the
//! devices: `cargo test -p guard-userspace --lib -- --ignored --nocapture resident_memory`.

use std::mem::size_of;

use guard_common::abi::{DeviceKey, L3Addr};

use super::track::{Baseline, Bursts, StageState, Track, Window};
use super::{DeviceSample, Engine, Pass};
use crate::config::Config;

#[test]
fn record_sizes() {
    for (part, n) in [
        ("Track", size_of::<Track>()),
        ("(DeviceKey, Track)", size_of::<(DeviceKey, Track)>()),
        ("Window", size_of::<Window>()),
        ("Baseline", size_of::<Baseline>()),
        ("Bursts", size_of::<Bursts>()),
        ("StageState", size_of::<StageState>()),
    ] {
        println!("{part}: {n} bytes");
    }
}

fn vm_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map_or(0, |kib| kib * 1024)
}

#[test]
#[ignore = "allocates for 1M devices; run by hand to measure"]
fn resident_memory_at_scale() {
    let n: u32 = std::env::var("GUARD_MEM_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let mut cfg = Config::default();
    cfg.guard.max_devices = cfg.guard.max_devices.max(n);
    let before = vm_rss();
    let mut engine = Engine::new(&cfg);
    let sample = |i: u32, packets: u64| DeviceSample {
        key: DeviceKey::teid(i),
        cell: L3Addr::v4([10, 0, (i % 4000 / 256) as u8, (i % 256) as u8]),
        packets,
        bytes: packets * 100,
        inner_dst: L3Addr::v4([192, 0, 2, 1]),
        ue_addr: L3Addr::v4([10, 128 + (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        teid: i,
        ..DeviceSample::default()
    };
    // Two walks of the whole population in slices of 32k, as the controller reads a big map: the
    // first primes every track, the second gives each a window.
    let slice = 32_768u32;
    let mut now = 1_000_000_000u64;
    let mut walk = std::time::Duration::ZERO;
    for round in 0..2u64 {
        let t0 = std::time::Instant::now();
        let mut lo = 0;
        while lo < n {
            let hi = (lo + slice).min(n);
            let samples: Vec<_> = (lo..hi).map(|i| sample(i, 10 * (round + 1))).collect();
            let pass = if hi == n { Pass::Full } else { Pass::Changed };
            let _ = engine.tick_pass(now, &samples, &[], pass);
            now += 1_000_000_000;
            lo = hi;
        }
        walk = t0.elapsed();
    }
    let after = vm_rss();
    // The engine's time per reading (the second walk: every device known) and per full pass.
    let t0 = std::time::Instant::now();
    for _ in 0..5 {
        let _ = engine.tick_pass(now, &[], &[], Pass::Full);
        now += 1_000_000_000;
    }
    println!(
        "second walk {:.0} ns per reading (with its passes); a full pass {:.1} ms",
        walk.as_nanos() as f64 / f64::from(n),
        t0.elapsed().as_secs_f64() * 1e3 / 5.0
    );
    let grown = after.saturating_sub(before);
    println!(
        "{n} devices: RSS {:.1} MiB before, {:.1} MiB after, +{:.1} MiB ({:.0} bytes per device)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        grown as f64 / f64::from(n)
    );
    assert_eq!(engine.tracks.len(), n as usize);
}

/// The gNB table holds the gNBs of the tracked devices only: readings from ever new outer
/// addresses (devices evicted to make room, or one device moving) do not grow it.
#[test]
fn the_gnb_table_holds_only_the_tracked_devices_gnbs() {
    let mut cfg = Config::default();
    cfg.guard.max_devices = 64;
    let mut engine = Engine::new(&cfg);
    let cell = |i: u32| L3Addr::v4([10, 1, (i >> 8) as u8, i as u8]);
    for round in 0..3u64 {
        let samples: Vec<_> = (0..1000u32)
            .map(|i| DeviceSample {
                key: DeviceKey::teid(i),
                cell: cell(i + 1000 * round as u32),
                packets: 10 * (round + 1),
                ..DeviceSample::default()
            })
            .collect();
        let _ = engine.tick(1_000_000_000 * (round + 1), &samples, &[]);
        assert!(engine.tracks.len() <= 65, "bounded: {}", engine.tracks.len());
        assert!(engine.cell_ids.held() <= engine.tracks.len(), "{} gNBs held", engine.cell_ids.held());
    }
    // One device behind ever new gNBs holds one.
    let mut engine = Engine::new(&cfg);
    for i in 0..100u32 {
        let s =
            DeviceSample { key: DeviceKey::teid(1), cell: cell(i), packets: u64::from(i), ..DeviceSample::default() };
        let _ = engine.tick(1_000_000_000 * u64::from(i + 1), &[s], &[]);
    }
    assert_eq!(engine.cell_ids.held(), 1);
}
