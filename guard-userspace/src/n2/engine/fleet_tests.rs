//! A registration storm from one gNB's cell split evenly over two AMF-side guards (an AMF set,
//! TS 23.501 §5.21): missed by each alone, detected by both with the fleet's cell summaries, as
//! one host carrying the whole cell detects it; and what forged summaries can and cannot do.

use std::collections::HashMap;

use guard_common::abi::L3Addr;
use guard_common::abi_n2::{N2CellKey, N2DeviceKey, CELL_KIND_NR};

use super::*;

pub(super) const SEC: u64 = 1_000_000_000;

pub(super) fn cell(n: u64) -> N2CellKey {
    N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0x2000 + n }
}

pub(super) fn dev(n: u32) -> N2DeviceKey {
    N2DeviceKey::five_g_s_tmsi(1, 1, 0x0100_0000 + n)
}

/// One guard's view: cumulative counters of the attempts that reached its AMF.
#[derive(Default)]
pub(super) struct Host {
    pub(super) cells: HashMap<N2CellKey, CellSample>,
    pub(super) devices: HashMap<N2DeviceKey, DeviceSample>,
}

impl Host {
    pub(super) fn attempt(&mut self, d: N2DeviceKey, c: u64) {
        let k = cell(c);
        let peer = L3Addr::v4([10, 100, 0, 1]);
        let cs = self.cells.entry(k).or_insert(CellSample { key: k, peer, tac: 1, ..Default::default() });
        cs.initial_ue += 1;
        cs.registration_requests += 1;
        let ds = self.devices.entry(d).or_insert(DeviceSample { key: d, ..Default::default() });
        ds.attempts += 1;
        ds.registration_requests += 1;
        ds.cell = k;
        ds.peer = peer;
    }

    pub(super) fn tick(&self, e: &mut N2Engine, now: u64) -> TickOutput {
        let cells: Vec<CellSample> = self.cells.values().copied().collect();
        let devices: Vec<DeviceSample> = self.devices.values().copied().collect();
        e.tick(now, &cells, &devices)
    }
}

/// Quiet cells (a few IoT registrations a minute) where the absolute floor, not the baseline
/// ratio, decides hotness: the case a split hides.
pub(super) fn settings() -> N2Settings {
    let s = N2Settings { cell_min_rate: 3.0, ..N2Settings::default() };
    s.validate().expect("valid");
    s
}

/// What the other member published last tick, as this member's fleet input.
pub(super) fn fleet_of(published: &[HotCell]) -> FleetCells {
    published.iter().map(|c| (c.key, FleetCell { rate: c.rate, baseline: c.baseline, members: 1 })).collect()
}

/// Device `d`'s registration in cell `c`, through AMF A or B.
pub(super) fn through(a: &mut Host, b: &mut Host, to_a: bool, d: N2DeviceKey, c: u64) {
    if to_a {
        a.attempt(d, c)
    } else {
        b.attempt(d, c)
    }
}

/// Second `sec` of background in cells `cells` (one registration per cell every 5 s, a fresh
/// device each time, alternating AMFs; `bg` counts the devices used), each also to `one` if given.
pub(super) fn background(
    sec: u64,
    cells: std::ops::Range<u64>,
    bg: &mut u32,
    a: &mut Host,
    b: &mut Host,
    mut one: Option<&mut Host>,
) {
    if sec % 5 != 0 {
        return;
    }
    for c in cells {
        *bg += 1;
        let d = dev(1_000_000 + *bg);
        through(a, b, *bg % 2 == 0, d, c);
        if let Some(h) = one.as_deref_mut() {
            h.attempt(d, c);
        }
    }
}

/// The infected devices `0..active` that register in second `sec`: each every 20 s, staggered.
/// Each always goes through the same AMF (its 5G-S-TMSI names it: TS 23.003 §2.10.1): even ones
/// through A, odd ones through B.
pub(super) fn storm_second(sec: u64, active: u32) -> impl Iterator<Item = u32> {
    (0..active).filter(move |i| (u64::from(*i) + sec) % 20 == 0)
}

/// `secs` seconds: background in cells 0..3 (one registration per cell every 5 s, a fresh
/// device each time, alternating AMFs); from `storm_from` on, 80 infected devices in cell 0
/// each registering every 20 s (4/s), each always through the same AMF (its 5G-S-TMSI names
/// its AMF: TS 23.003 §2.10.1), half of them through each. `exchange`: the members swap their
/// summaries every tick. Returns the highest level each engine (and the single host) reached.
fn run(secs: u64, storm_from: u64, exchange: bool) -> (u8, u8, u8, usize) {
    let s = settings();
    let (mut a, mut b, mut one) = (N2Engine::new(&s), N2Engine::new(&s), N2Engine::new(&s));
    let (mut ha, mut hb, mut hone) = (Host::default(), Host::default(), Host::default());
    let (mut pub_a, mut pub_b) = (Vec::new(), Vec::new());
    let mut top = (0u8, 0u8, 0u8);
    let mut devices_listed = 0;
    let mut bg = 0u32;
    for sec in 0..secs {
        background(sec, 0..3, &mut bg, &mut ha, &mut hb, Some(&mut hone));
        if sec >= storm_from {
            for i in storm_second(sec, 80) {
                through(&mut ha, &mut hb, i % 2 == 0, dev(i), 0);
                hone.attempt(dev(i), 0);
            }
        }
        let now = (sec + 1) * SEC;
        if exchange {
            a.set_fleet(fleet_of(&pub_b));
            b.set_fleet(fleet_of(&pub_a));
        }
        let oa = ha.tick(&mut a, now);
        let ob = hb.tick(&mut b, now);
        hone.tick(&mut one, now);
        pub_a = a.hot_cells_for_fleet(0.25, 32);
        pub_b = b.hot_cells_for_fleet(0.25, 32);
        for r in oa.responses.iter().chain(&ob.responses) {
            devices_listed = devices_listed.max(r.devices.len());
        }
        top = (top.0.max(a.level()), top.1.max(b.level()), top.2.max(one.level()));
    }
    (top.0, top.1, top.2, devices_listed)
}

#[test]
fn a_storm_split_over_two_amfs_is_missed_alone_and_detected_with_the_fleet() {
    let (a, b, one, _) = run(400, 120, false);
    assert!(one >= LEVEL_DEVICES, "one host carrying the whole cell detects the storm");
    assert_eq!((a, b), (LEVEL_NONE, LEVEL_NONE), "each AMF-side guard alone sees half: below the floor");
    let (a, b, one, listed) = run(400, 120, true);
    assert!(one >= LEVEL_DEVICES);
    assert!(a >= LEVEL_DEVICES && b >= LEVEL_DEVICES, "with the summaries both answer: {a} {b}");
    assert!(listed > 0 && listed <= 40, "each lists only its own repeaters: {listed}");
}

#[test]
fn quiet_cells_are_not_published_and_the_list_is_bounded() {
    let s = settings();
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    // 50 cells at 0.1/s for 40 s (baselines learned), then cells 0..10 at 2/s: 2/3 of the 3/s
    // floor, not hot, but close enough to publish; the others stay quiet.
    for sec in 0..60u64 {
        for c in 0..50u64 {
            let n = if sec >= 40 && c < 10 { 2 } else { u64::from(sec % 10 == c % 10) };
            for j in 0..n {
                h.attempt(dev(9_000_000 + (sec * 1000 + c * 10 + j) as u32), c);
            }
        }
        h.tick(&mut e, (sec + 1) * SEC);
    }
    let all = e.hot_cells_for_fleet(0.25, 1000);
    assert_eq!(all.len(), 10, "only the cells above a quarter of their threshold: {all:?}");
    assert!(all.iter().all(|c| c.key.cell_id < 0x2000 + 10 && c.baseline > 0.0), "{all:?}");
    assert!(e.status().hot_cells == 0, "none of them is hot here");
    assert_eq!(e.hot_cells_for_fleet(0.25, 4).len(), 4, "at most max per tick");
    assert!(e.hot_cells_for_fleet(0.9, 1000).is_empty());
}

#[test]
fn forged_summaries_make_a_cell_hot_but_never_name_an_offender() {
    let s = settings();
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    let forged: FleetCells = (0..3).map(|c| (cell(c), FleetCell { rate: 1000.0, baseline: 0.0, members: 1 })).collect();
    let mut bg = 0u32;
    for sec in 0..600u64 {
        for c in 0..3 {
            bg += 1;
            h.attempt(dev(2_000_000 + bg), c);
        }
        if sec >= 60 {
            e.set_fleet(forged.clone());
        }
        let out = h.tick(&mut e, (sec + 1) * SEC);
        assert!(out.responses.is_empty(), "no local repeaters: nothing to answer ({sec} s)");
    }
    assert_eq!(e.status().hot_cells, 3, "the forged rate makes the cells hot here");
    assert_eq!(e.class(), StormClass::FlashCrowd, "but the local devices are a crowd, not a storm");
    e.set_fleet(FleetCells::new());
    let cells: Vec<CellSample> = h.cells.values().copied().collect();
    e.tick(601 * SEC, &cells, &[]);
    assert_eq!(e.status().hot_cells, 0, "without the forged input the cells are cold again");
}
