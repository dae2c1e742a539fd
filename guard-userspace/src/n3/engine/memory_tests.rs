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

/// Device `i`'s reading with `packets` (cumulative) packets: its gNB one of 4,000, its UE
/// address and TEID its own.
fn sample(i: u32, packets: u64) -> DeviceSample {
    DeviceSample {
        key: DeviceKey::teid(i),
        cell: L3Addr::v4([10, 0, (i % 4000 / 256) as u8, (i % 256) as u8]),
        packets,
        bytes: packets * 100,
        inner_dst: L3Addr::v4([192, 0, 2, 1]),
        ue_addr: L3Addr::v4([10, 128 + (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        teid: i,
        ..DeviceSample::default()
    }
}

/// An engine holding `n` devices (`cfg.guard.max_devices` raised to fit), each read twice, as two
/// walks of the whole population in slices of 32k (as the controller reads a big map): the first
/// primes every track, the second gives each a window. Returns it, the clock after, and the time
/// of the second walk.
fn populated(cfg: &mut Config, n: u32) -> (Engine, u64, std::time::Duration) {
    cfg.guard.max_devices = cfg.guard.max_devices.max(n);
    let mut engine = Engine::new(cfg);
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
    (engine, now, walk)
}

fn devices() -> u32 {
    std::env::var("GUARD_MEM_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20)
}

#[test]
#[ignore = "allocates for 1M devices; run by hand to measure"]
fn resident_memory_at_scale() {
    let n = devices();
    let mut cfg = Config::default();
    let before = vm_rss();
    let (mut engine, mut now, walk) = populated(&mut cfg, n);
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

/// What a walk's fold costs per reading when the readings come in the table's order (as walks
/// do), and when some come out of it (session churn: new devices appended out of the map's
/// order, evictions moving tracks; docs/controller.md "CPU"): every `k`th sample of each slice
/// swapped with a random one, so that ~2/k of them miss the position after the last found.
/// It checks that every reading, in order or not, found its own track. Its timings are meant for
/// a release build, by hand: `cargo test --release -p guard-userspace --lib -- --ignored
/// --nocapture a_walk_in_and_out_of_order_at_scale` (`cargo xtask test` runs it too, in debug,
/// for the check: ~40 s).
#[test]
#[ignore = "allocates for 1M devices; run by hand (--release) to measure"]
fn a_walk_in_and_out_of_order_at_scale() {
    let n = devices();
    let mut cfg = Config::default();
    let (mut engine, mut now, _) = populated(&mut cfg, n);
    let slice = 32_768u32;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let mut packets = 100u64;
    for every in [0usize, 10, 5, 2, 1] {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let mut took = std::time::Duration::ZERO;
            let mut lo = 0;
            while lo < n {
                let hi = (lo + slice).min(n);
                let mut samples: Vec<_> = (lo..hi).map(|i| sample(i, packets)).collect();
                if every > 0 {
                    for j in (0..samples.len()).step_by(every) {
                        let k = rand(samples.len());
                        samples.swap(j, k);
                    }
                }
                let pass = if hi == n { Pass::Full } else { Pass::Changed };
                let t0 = std::time::Instant::now();
                let _ = engine.tick_pass(now, &samples, &[], pass);
                took += t0.elapsed();
                now += 1_000_000_000;
                lo = hi;
            }
            packets += 10;
            best = best.min(took.as_secs_f64());
        }
        let label = match every {
            0 => "in order".to_owned(),
            1 => "every reading swapped".to_owned(),
            2 => "every 2nd swapped".to_owned(),
            n => format!("every {n}th swapped"),
        };
        println!("{n} devices, {label}: {:.0} ns a reading (the fastest of 3 walks)", best * 1e9 / f64::from(n));
    }
    // Located in batches, in any order: every reading found its own device's track, none was
    // made twice or lost, and each holds its last reading.
    assert_eq!(engine.tracks.len(), n as usize);
    let last = packets - 10;
    assert!(engine.tracks.iter().all(|(_, t)| t.packets == last), "every track holds the last walk's reading");
}

/// What a tick with nothing read costs when 1% of the devices are staged (restored stages, as
/// after a restart: engine stages): every such tick follows the operator's pins (`sync_manual`,
/// none here), steps the notable devices and takes the status snapshot, each touching every
/// staged device's track, scattered over the table. Run by
/// hand, in release: `cargo test --release -p guard-userspace --lib -- --ignored --nocapture
/// a_quiet_tick_with_staged_devices_at_scale`.
#[test]
#[ignore = "allocates for 1M devices; run by hand (--release) to measure"]
fn a_quiet_tick_with_staged_devices_at_scale() {
    use guard_common::abi::{ByteLimit, Limit, STAGE_SHAPE};
    let n = devices();
    let mut cfg = Config::default();
    let (mut engine, mut now, _) = populated(&mut cfg, n);
    let expires_ns = now + 3_600_000_000_000;
    let limit = Limit::per_second(100, 100);
    // Every 100th device, spread over the table as a flood's offenders are.
    let staged: Vec<_> = (0..n)
        .step_by(100)
        .map(|i| super::CurrentStage {
            key: DeviceKey::teid(i),
            stage: STAGE_SHAPE,
            flags: 0,
            limit,
            bytes: ByteLimit::UNLIMITED,
            expires_ns,
            reason: 0,
        })
        .collect();
    engine.restore(&staged, now);
    let ticks = 50u32;
    let (mut sync, mut step, mut snap) = (0f64, 0f64, 0f64);
    let mut listed = 0;
    // Between two ticks the controller reads a walk slice (25k devices, 8 MiB through the
    // kernel's batch copy) and folds it: the staged devices' tracks are not in the cache then.
    let mut other = vec![0u8; 64 << 20];
    for round in 0..ticks {
        other.iter_mut().step_by(64).for_each(|b| *b = b.wrapping_add(round as u8));
        now += 1_000_000_000;
        let t0 = std::time::Instant::now();
        engine.sync_manual(&[], now);
        let t1 = std::time::Instant::now();
        let _ = engine.tick_pass(now, &[], &[], Pass::Changed);
        let t2 = std::time::Instant::now();
        listed = engine.snapshot().devices_per_stage[STAGE_SHAPE as usize];
        let t3 = std::time::Instant::now();
        sync += (t1 - t0).as_secs_f64();
        step += (t2 - t1).as_secs_f64();
        snap += (t3 - t2).as_secs_f64();
    }
    let ms = |x: f64| x * 1e3 / f64::from(ticks);
    println!(
        "{n} devices, {} staged: per tick sync_manual {:.2} ms, step {:.2} ms, snapshot {:.2} ms",
        staged.len(),
        ms(sync),
        ms(step),
        ms(snap)
    );
    assert_eq!(listed, staged.len() as u64);
    // The writes that push the tracks out of the cache are kept, not a claim of the test.
    std::hint::black_box(&other);
}
