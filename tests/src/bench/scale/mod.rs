//! Scale: the device map at 1M and 10M entries, a spoofed-TEID flood against a full map, and the
//! controller (the real `guard run` binary) at 1M active devices with 1% offenders.
//!
//! Devices are inserted from userspace (`bpf_map_update_elem`, one syscall each): that is both the
//! update cost reported and the fastest way to fill a map. Per-packet costs at scale come from
//! BPF_PROG_TEST_RUN with `repeat` 1 over frames of distinct devices, so every run touches a
//! different entry (cache-cold, as real traffic), against the reference programs run the same way.

use std::collections::HashMap as StdHashMap;
use std::io::{Read as _, Write as _};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::programs::{TestRun, TestRunOptions};
use guard::{bpf::pins::PinDir, n3::load, n3::maps::N3Maps};
use guard_common::abi::{self, device_id, DeviceId, DeviceKey, DeviceState, GuardConfig, STAGE_QUARANTINE};
use guard_common::policy::Verdict;

use crate::bench::progs::{self, time_cycle, RefProgs};
use crate::bench::{bytes, median, num, pps, ratio, sys, Table};
use crate::bpf::{l3_v4, stage_entry, PinScope};
use crate::frames::GtpFrame;
use crate::lab::Lab;

const SEC_NS: u64 = 1_000_000_000;
const FILL_BASE: u32 = 0x2000_0000;
const SPOOF_BASE: u32 = 0x8000_0000;
/// Byte offset of the TEID in an untagged IPv4 G-PDU without options.
const TEID_OFF: usize = 14 + 20 + 8 + 4;

fn gnb(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, 11 + (i % 4) as u8)
}

/// A 5G uplink G-PDU: with the UL PDU Session Container every N3 uplink G-PDU carries (TS 38.415
/// §5.5.2.2, QFI 9); the TEID at the offset it has without one (TS 29.281 §5.1).
fn frame(teid: u32) -> Vec<u8> {
    GtpFrame::gpdu(teid).outer_v4(gnb(teid), Ipv4Addr::new(10, 200, 0, 1)).qfi(9).build()
}

fn device(teid: u32, packets: u64) -> DeviceState {
    DeviceState { teid, own_packets: packets, cell: l3_v4(gnb(teid)), ..DeviceState::default() }
}

/// Insert `n` devices `base..base+n`; seconds taken.
fn fill(maps: &mut N3Maps, base: u32, n: u32) -> Result<f64> {
    let t0 = Instant::now();
    for i in 0..n {
        let t = base + i;
        maps.devices
            .insert(device_id::fteid(0, t), device(t, 1), 0)
            .with_context(|| format!("inserting device {i} of {n}"))?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Kernel ns per run, `repeat` 1, cycling over `frames`: baseline, floor (if loaded with these
/// TEIDs) and the guard, interleaved.
fn cycle3(
    refs: &mut RefProgs,
    guard: &mut load::Loaded,
    frames: &[Vec<u8>],
    floor: bool,
    rounds: usize,
) -> Result<[f64; 3]> {
    let mut ns: [Vec<f64>; 3] = Default::default();
    for r in 0..rounds {
        for k in 0..3 {
            let i = (r + k) % 3;
            let v = match i {
                0 => time_cycle(refs.prog(progs::BASELINE)?, frames)?,
                1 if floor => time_cycle(refs.prog(progs::FLOOR_LRU)?, frames)?,
                1 => f64::NAN,
                _ => time_cycle(guard.program().context("guard_n3")?, frames)?,
            };
            ns[i].push(v);
        }
    }
    Ok(ns.each_ref().map(|v| if v.iter().all(|x| x.is_nan()) { f64::NAN } else { median(v) }))
}

/// One map size: load, fill, memory, per-packet cost at that size.
struct MapScale {
    devices: u64,
    fill_s: f64,
    dev_mem: u64,
    all_mem: u64,
    cyc: [f64; 3],
    sample: usize,
}

fn map_scale(
    cfg: &GuardConfig,
    n: u32,
    sample: u32,
    refs: &mut RefProgs,
    floor: bool,
) -> Result<(MapScale, load::Loaded, N3Maps, PinScope)> {
    let scope = PinScope::new("bsca");
    let before: Vec<u32> = sys::process_maps()?.into_keys().collect();
    let mut loaded =
        load::load(&scope.pins, n, cfg).with_context(|| format!("loading guard_n3 with N3_DEVICES of {n} entries"))?;
    let mut maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf).context("opening the N3 maps")?;
    println!("bench: part 3: filling N3_DEVICES with {n} devices");
    let fill_s = fill(&mut maps, FILL_BASE, n)?;
    let mems = sys::process_maps()?;
    let mine: Vec<&sys::MapMem> = mems.values().filter(|m| !before.contains(&m.id)).collect();
    let dev_mem = mine.iter().find(|m| m.name == abi::MAP_N3_DEVICES).map(|m| m.memlock).unwrap_or(0);
    let all_mem = mine.iter().filter(|m| !m.name.starts_with("BENCH_")).map(|m| m.memlock).sum();
    let step = (n / sample).max(1);
    let teids: Vec<u32> = (0..sample.min(n)).map(|i| FILL_BASE + i * step).collect();
    if floor {
        refs.floor_insert(teids.iter().copied())?;
    }
    let frames: Vec<Vec<u8>> = teids.iter().map(|t| frame(*t)).collect();
    let cyc = cycle3(refs, &mut loaded, &frames, floor, 3)?;
    Ok((MapScale { devices: u64::from(n), fill_s, dev_mem, all_mem, cyc, sample: frames.len() }, loaded, maps, scope))
}

fn scale_row(t: &mut Table, s: &MapScale) {
    t.row(vec![
        format!("{}", s.devices),
        bytes(s.dev_mem),
        num(ratio(s.dev_mem as f64, s.devices as f64), 0),
        num(ratio(s.all_mem as f64, s.devices as f64), 0),
        format!(
            "{} µs ({}/s)",
            num(ratio(s.fill_s * 1e6, s.devices as f64), 2),
            pps(ratio(s.devices as f64, s.fill_s))
        ),
        num(s.cyc[0], 1),
        num(s.cyc[1], 1),
        num(s.cyc[2], 1),
        format!("{}x", num(ratio(s.cyc[2], s.cyc[0]), 1)),
        if s.cyc[1].is_finite() { format!("{}x", num(ratio(s.cyc[2], s.cyc[1]), 2)) } else { "-".into() },
    ]);
}

pub fn scale_part(cfg: &GuardConfig, quick: bool) -> Result<(Vec<Table>, Vec<Vec<String>>)> {
    let mut tables = Vec::new();
    let mut goals = Vec::new();
    let one_m: u32 = 1 << 20;
    let sample: u32 = if quick { 20_000 } else { 100_000 };
    let mut refs = RefProgs::load(sample + 1024)?;

    let mut t = Table::new(
        "Device map at scale: memory, update cost, per-packet cost (each run a different device)",
        &[
            "devices",
            "N3_DEVICES memory",
            "B/device (N3_DEVICES)",
            "B/device (all N3 maps)",
            "insert from userspace",
            "baseline ns",
            "floor (LRU) ns",
            "guard ns",
            "guard / baseline",
            "guard / floor",
        ],
    );
    let (s1, mut loaded, mut maps, scope) = map_scale(cfg, one_m, sample, &mut refs, true)?;
    scale_row(&mut t, &s1);

    // The spoofed-TEID flood against the full 1M map, while known devices keep sending.
    let flood_n: u32 = if quick { 1_000_000 } else { 10_000_000 };
    let spoof = spoof_flood(&mut loaded, &mut maps, one_m, flood_n, s1.cyc[0])?;
    drop(maps);
    drop(loaded);
    drop(scope);

    // 10M, memory permitting (the LRU hash is preallocated: all of it is allocated at load).
    let ten_m: u32 = 10_000_000;
    let need = u64::from(ten_m) * ratio(s1.all_mem as f64, s1.devices as f64) as u64;
    let avail = sys::mem_available();
    if quick {
        t.row(vec![format!("{ten_m}"), "not measured: --quick".into()]);
    } else if avail < need + (2u64 << 30) {
        t.row(vec![
            format!("{ten_m}"),
            format!(
                "not measured: needs ~{} and only {} is available (leaving 2 GiB to the rest of the machine)",
                bytes(need),
                bytes(avail)
            ),
        ]);
    } else {
        match map_scale(cfg, ten_m, sample, &mut refs, false) {
            Ok((s10, l, m, sc)) => {
                scale_row(&mut t, &s10);
                drop(m);
                drop(l);
                drop(sc);
            }
            Err(e) => t.row(vec![format!("{ten_m}"), format!("not measured: {e:#}")]),
        }
    }
    t.note(format!("Memory = the kernel's own accounting (`memlock` in /proc/self/fdinfo). N3_DEVICES is a preallocated LRU hash: its memory is fixed at load time, full or empty. sizeof(DeviceKey) = {} B, sizeof(DeviceState) = {} B; the rest is the kernel's per-element overhead (hash node, LRU links) and per-CPU free lists.", std::mem::size_of::<DeviceKey>(), std::mem::size_of::<DeviceState>()));
    t.note(format!("Per-packet: {} devices spread over the map, each run once per round (`repeat` 1, so every figure includes the kernel's per-call timer overhead, carried by the baseline too), median of 3 interleaved rounds. The floor at 10M is not measured: it would need a second 10M-entry map.", s1.sample));
    t.note("Insert = `bpf_map_update_elem` from userspace, one syscall per device (aya 0.14 has no batched update).");
    tables.push(t);
    tables.push(spoof);
    drop(refs);

    let (ctl, g) = controller(cfg, quick)?;
    tables.push(ctl);
    goals.extend(g);
    Ok((tables, goals))
}

/// The controller run alone (`bench --only-controller`).
pub fn controller_part(cfg: &GuardConfig, quick: bool) -> Result<(Vec<Table>, Vec<Vec<String>>)> {
    let (t, g) = controller(cfg, quick)?;
    Ok((vec![t], g))
}

// ---------------------------------------------------------------------------------------------

fn verdict_counts(maps: &N3Maps) -> Result<Vec<u64>> {
    Ok(maps.verdicts()?.iter().map(|(_, c)| c.packets).collect())
}

/// `flood_n` never-seen TEIDs from four gNBs against a full map of `have` devices, with 10,000
/// known devices sending in between (one of their packets per 1,000 spoofed) and 100 staged ones.
fn spoof_flood(
    loaded: &mut load::Loaded,
    maps: &mut N3Maps,
    have: u32,
    flood_n: u32,
    baseline_ns: f64,
) -> Result<Table> {
    println!("bench: part 3: spoofed-TEID flood of {flood_n} distinct TEIDs against a full map of {have} devices");
    let known: Vec<u32> = (0..10_000u32).map(|i| FILL_BASE + i * (have / 10_000)).collect();
    let staged: Vec<u32> = known.iter().take(100).copied().collect();
    for t in &staged {
        maps.set_stage(&DeviceKey::teid(*t), &stage_entry(STAGE_QUARANTINE, 0, 0, 3600 * SEC_NS))?;
    }
    let known_frames: Vec<Vec<u8>> = known.iter().map(|t| frame(*t)).collect();
    let before = verdict_counts(maps)?;
    let prog = loaded.program().context("guard_n3")?;
    let mut f = frame(SPOOF_BASE);
    let mut kernel_ns = 0f64;
    let t0 = Instant::now();
    let deadline = Duration::from_secs(120);
    let mut sent = 0u32;
    let mut k = 0usize;
    for i in 0..flood_n {
        let teid = SPOOF_BASE.wrapping_add(i);
        f[TEID_OFF..TEID_OFF + 4].copy_from_slice(&teid.to_be_bytes());
        // Spread over the four gNBs (the outer source's last octet; the checksum is not checked).
        f[14 + 15] = 11 + (i % 4) as u8;
        let r = prog
            .test_run(TestRunOptions { data_in: Some(&f), repeat: 1, ..Default::default() })
            .context("BPF_PROG_TEST_RUN")?;
        kernel_ns += r.duration.as_nanos() as f64;
        sent += 1;
        if i % 1000 == 0 {
            prog.test_run(TestRunOptions {
                data_in: Some(&known_frames[k % known_frames.len()]),
                repeat: 1,
                ..Default::default()
            })
            .context("BPF_PROG_TEST_RUN")?;
            k += 1;
            if t0.elapsed() > deadline {
                break;
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let after = verdict_counts(maps)?;
    let moved = |v: Verdict| after[v as usize].saturating_sub(before[v as usize]);
    let mut lost = 0;
    let mut reset = 0;
    for t in &known {
        match maps.device(&DeviceKey::teid(*t))? {
            None => lost += 1,
            // Every known device was inserted with packets = 1; an evicted and re-created one restarts at its packets since.
            Some(d) if d.packets() == 0 => reset += 1,
            Some(_) => {}
        }
    }
    let mut stages_kept = 0;
    for t in &staged {
        if maps.stage(&DeviceKey::teid(*t))?.is_some_and(|e| e.stage == STAGE_QUARANTINE) {
            stages_kept += 1;
        }
    }
    let entries = maps.devices.keys().filter(|k| k.is_ok()).count();
    let mut t = Table::new("Spoofed-TEID flood against a full device map", &["quantity", "value"]);
    t.row(vec!["device map".into(), format!("{have} entries, full, before the flood")]);
    t.row(vec!["spoofed TEIDs sent (distinct, never seen, 4 gNBs)".into(), format!("{sent} in {} s", num(wall, 1))]);
    t.row(vec![
        "guard's cost per spoofed packet (repeat 1, incl. timer overhead)".into(),
        format!(
            "{} ns (`xdp_baseline` run the same way: {} ns)",
            num(ratio(kernel_ns, f64::from(sent)), 1),
            num(baseline_ns, 1)
        ),
    ]);
    t.row(vec![
        "dropped as over the new-device budget (not inserted)".into(),
        moved(Verdict::DropNewDevice).to_string(),
    ]);
    t.row(vec![
        "admitted within the budget (inserted, evicting the least recently seen)".into(),
        moved(Verdict::PassGpdu).saturating_sub(k as u64).to_string(),
    ]);
    t.row(vec![
        "known devices (10,000, sending during the flood) evicted".into(),
        format!("{lost} (and {reset} re-created)"),
    ]);
    t.row(vec![
        "staged devices (100, quarantined) whose stage survived".into(),
        format!("{stages_kept} / {}", staged.len()),
    ]);
    t.row(vec!["device map entries after".into(), entries.to_string()]);
    t.note("Budget: the shipped default `[dataplane] new_device` (1000 pps, burst 2000 per gNB). Stages live in the userspace-owned N3_STAGES, which the data plane never evicts from.");
    Ok(t)
}

mod churn;
mod controller;
mod guard_child;
use controller::*;
