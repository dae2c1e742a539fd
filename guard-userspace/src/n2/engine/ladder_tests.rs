//! The N2 ladder one step at a time (ladder.rs): each edge of `step_ladder` (when it climbs, on
//! how many offenders, what it sends and why), and the exact arithmetic of what each level asks
//! for (the load reduction, the barring factor, the pattern back-off's T3346). The storm tests
//! (tests.rs) drive whole scenarios; these set the engine's state directly, so an edge that a
//! scenario happens to cross by a wide margin is held at its boundary.

use guard_common::abi::L3Addr;
use guard_common::abi_n2::{N2CellKey, N2DeviceKey, CELL_KIND_NR};

use super::*;

const SEC: u64 = 1_000_000_000;

fn cell(n: u64) -> N2CellKey {
    N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0x3000 + n }
}

fn dev(n: u32) -> N2DeviceKey {
    N2DeviceKey::five_g_s_tmsi(2, 2, 0x0200_0000 + n)
}

fn gnb(n: u8) -> L3Addr {
    L3Addr::v4([10, 101, 0, n])
}

fn engine() -> N2Engine {
    let s = N2Settings::default();
    s.validate().expect("defaults are valid");
    N2Engine::new(&s)
}

/// A warmed-up cell of gNB `g` at `rate` attempts/s against `baseline`, hot or not.
fn put_cell(e: &mut N2Engine, c: u64, g: u8, rate: f64, baseline: f64, hot: bool) {
    let windows = e.s.warmup_windows;
    e.cells.insert(cell(c), CellTrack { rate, baseline, windows, hot, peer: gnb(g), tac: 7, ..Default::default() });
}

/// A device with `n` attempts in the device window, in cell `c` of gNB `g`.
fn put_device(e: &mut N2Engine, d: u32, c: u64, g: u8, n: u64) {
    e.devices
        .insert(dev(d), DeviceTrack { in_window: n, cell: cell(c), peer: gnb(g), primed: true, ..Default::default() });
}

fn evidence(rate: f64, repeaters: u64) -> StormEvidence {
    StormEvidence { region_rate_per_s: rate, repeaters, ..StormEvidence::default() }
}

/// One step; the response it sent, if any.
fn step(e: &mut N2Engine, now: u64, t2: bool, ev: &StormEvidence, repeaters: &[N2DeviceKey]) -> Option<Response> {
    let mut out = TickOutput::default();
    e.step_ladder(now, t2, ev, repeaters, &mut out);
    assert!(out.responses.len() <= 1, "{:?}", out.responses);
    out.responses.pop()
}

#[test]
fn level_zero_climbs_on_the_window_that_completes_persistence_and_not_before() {
    let mut e = engine();
    let persist = e.s.persist_windows;
    e.t2_streak = persist - 1;
    assert!(step(&mut e, SEC, true, &evidence(50.0, 10), &[]).is_none());
    assert_eq!(e.level, LEVEL_NONE, "one window short of persistence");
    // Persistence without a T2 verdict this window is no storm either.
    e.t2_streak = persist;
    assert!(step(&mut e, 2 * SEC, false, &evidence(50.0, 10), &[]).is_none());
    assert_eq!(e.level, LEVEL_NONE);
    let r = step(&mut e, 3 * SEC, true, &evidence(50.0, 10), &[]).expect("level 1 is sent");
    assert_eq!((r.level, r.previous_level, r.reason), (LEVEL_DEVICES, LEVEL_NONE, "storm"));
    assert_eq!(e.level_entry_rate, 50.0, "the entry rate is what containment is judged against");
}

#[test]
fn at_level_zero_nothing_is_held_as_affected_nor_counted_as_time_at_level() {
    let mut e = engine();
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    put_device(&mut e, 1, 0, 1, 30);
    assert!(!e.storm_cells().is_empty(), "the cell is a storm cell");
    assert!(step(&mut e, SEC, false, &evidence(40.0, 1), &[]).is_none());
    assert!(e.affected.is_empty(), "a hot cell is affected only once a level is in force");
    assert_eq!(e.level_since_windows, 0);
    assert_eq!(e.status().affected_cells, 0);
}

/// Level 1 → 2 needs `min_offenders_barring` offenders, level 2 → 3 `min_offenders_overload`.
#[test]
fn each_level_needs_its_own_count_of_offenders() {
    let mut e = engine();
    let (barring, overload) = (e.s.min_offenders_barring, e.s.min_offenders_overload);
    assert!(barring < overload, "the defaults tell the two apart");
    e.level = LEVEL_DEVICES;
    e.level_entry_rate = 100.0;
    e.level_since_windows = e.s.escalate_windows;
    // Not contained (the rate did not fall below contain_fraction of the entry rate).
    let r = step(&mut e, SEC, true, &evidence(100.0, barring), &[]).expect("climbs");
    assert_eq!((r.level, r.reason), (LEVEL_BARRING, "escalate_not_contained"));
    e.level_since_windows = e.s.escalate_windows;
    e.level_entry_rate = 100.0;
    assert!(step(&mut e, 2 * SEC, true, &evidence(100.0, overload - 1), &[]).is_none_or(|r| r.level == LEVEL_BARRING));
    assert_eq!(e.level, LEVEL_BARRING, "one offender short of overload");
    let r = step(&mut e, 3 * SEC, true, &evidence(100.0, overload), &[]).expect("climbs");
    assert_eq!(r.level, LEVEL_OVERLOAD);
}

#[test]
fn attribution_is_taken_only_from_a_storm_window() {
    let mut e = engine();
    let ev = StormEvidence { attribution: Attribution::CellPattern, ..evidence(5.0, 0) };
    step(&mut e, SEC, false, &ev, &[]);
    assert_eq!(e.attribution, Attribution::None, "a window that is no T2 storm pins nothing");
    step(&mut e, 2 * SEC, true, &ev, &[]);
    assert_eq!(e.attribution, Attribution::CellPattern);
}

#[test]
fn overload_in_force_is_updated_not_stopped() {
    let mut e = engine();
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    put_device(&mut e, 1, 0, 1, 30);
    e.level = LEVEL_OVERLOAD;
    e.level_entry_rate = 40.0;
    e.affected.insert(cell(0));
    // A second cell of another gNB turns hot: the scope changes while overload holds.
    put_cell(&mut e, 1, 2, 40.0, 1.0, true);
    put_device(&mut e, 2, 1, 2, 30);
    let r = step(&mut e, SEC, true, &evidence(40.0, 2), &[]).expect("a new scope is sent");
    assert_eq!((r.action, r.level, r.reason), (ResponseAction::OverloadUpdate, LEVEL_OVERLOAD, "scope"));
    let o = r.overload.expect("overload carries its request");
    assert_eq!(o.gnbs, vec![addr_str(&gnb(1)), addr_str(&gnb(2))]);
    assert!(o.traffic_load_reduction_pct > 0);
}

#[test]
fn a_level_in_force_resends_on_a_new_scope_and_on_the_refresh_period_exactly() {
    let mut e = engine();
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    put_device(&mut e, 1, 0, 1, 30);
    e.level = LEVEL_DEVICES;
    e.level_entry_rate = 40.0;
    e.affected.insert(cell(0));
    e.last_sent_ns = SEC;
    let r = step(&mut e, 2 * SEC, true, &evidence(40.0, 1), &[dev(1)]).expect("the first scope is new");
    assert_eq!((r.action, r.reason), (ResponseAction::Advise, "scope"));
    let refresh = (e.s.refresh_s * 1e9) as u64;
    assert!(step(&mut e, 2 * SEC + refresh - 1, true, &evidence(40.0, 1), &[dev(1)]).is_none(), "not yet due");
    let r = step(&mut e, 2 * SEC + refresh, true, &evidence(40.0, 1), &[dev(1)]).expect("due on the period");
    assert_eq!(r.reason, "refresh");
}

#[test]
fn devices_beyond_the_report_bound_are_counted_as_omitted() {
    let mut e = engine();
    e.s.max_devices_reported = 2;
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    for d in 1..=5 {
        put_device(&mut e, d, 0, 1, 30);
    }
    e.level = LEVEL_DEVICES;
    e.level_entry_rate = 40.0;
    e.affected.insert(cell(0));
    let reps: Vec<N2DeviceKey> = (1..=5).map(dev).collect();
    let r = step(&mut e, SEC, true, &evidence(40.0, 5), &reps).expect("sent");
    assert_eq!((r.devices.len(), r.devices_omitted), (2, 3));
    let t3346 = e.s.t3346_base_s;
    assert!(r.devices.iter().all(|d| d.t3346_s == t3346 && d.attempts == 30), "{:?}", r.devices);
}

fn pin(expires_ns: u64) -> FleetDevice {
    FleetDevice { t3346_s: 900, expires_ns, origin: FleetOrigin::Pin { author: "noc".into() } }
}

#[test]
fn fleet_entries_that_do_not_fit_add_to_the_omitted_count() {
    let mut e = engine();
    e.s.max_devices_reported = 3;
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    for d in 1..=4 {
        put_device(&mut e, d, 0, 1, 30);
    }
    e.set_fleet_backoff((100..105).map(|d| (dev(d), pin(100 * SEC))).collect());
    e.level = LEVEL_DEVICES;
    e.level_entry_rate = 40.0;
    e.affected.insert(cell(0));
    let reps: Vec<N2DeviceKey> = (1..=4).map(dev).collect();
    let r = step(&mut e, SEC, true, &evidence(40.0, 4), &reps).expect("sent");
    // 3 of the 4 own repeaters fit, 1 is omitted; no room is left for the 5 pins.
    assert_eq!((r.devices.len(), r.devices_omitted), (3, 1 + 5));
}

#[test]
fn the_end_of_a_storm_keeps_advising_the_fleets_devices_and_names_why_at_level_zero() {
    let mut e = engine();
    put_cell(&mut e, 0, 1, 2.0, 1.0, false);
    e.level = LEVEL_DEVICES;
    e.affected.insert(cell(0));
    e.last_scope = (vec![addr_str(&gnb(1))], 0);
    e.quiet_streak = e.s.quiet_windows;
    e.set_fleet_backoff([(dev(100), pin(100 * SEC))].into_iter().collect());
    let r = step(&mut e, SEC, false, &evidence(2.0, 0), &[]).expect("sent");
    assert_eq!((r.action, r.level, r.reason), (ResponseAction::Advise, LEVEL_NONE, "quiet"));
    assert_eq!(r.devices.len(), 1, "the pin still holds");
    // At level 0 a scope left over from the storm is no reason; a new fleet device is.
    e.last_scope = (vec![addr_str(&gnb(1))], 0);
    e.set_fleet_backoff([(dev(100), pin(100 * SEC)), (dev(101), pin(100 * SEC))].into_iter().collect());
    let r = step(&mut e, 2 * SEC, false, &evidence(2.0, 0), &[]).expect("sent");
    assert_eq!((r.action, r.level, r.reason), (ResponseAction::Advise, LEVEL_NONE, "fleet_devices"));
}

/// Two affected cells: the reduction brings their summed rate to their summed baseline ×
/// headroom. 100 × (1 − (2 + 3) × 1.5 / (30 + 20)) = 85 → clamped to reduction_max_pct (80);
/// with baselines 10 and 8: 100 × (1 − 18 × 1.5 / 50) = 46.
#[test]
fn the_reduction_is_computed_over_the_affected_cells_together() {
    let mut e = engine();
    assert_eq!((e.s.headroom, e.s.reduction_min_pct, e.s.reduction_max_pct), (1.5, 10, 80));
    put_cell(&mut e, 0, 1, 30.0, 2.0, true);
    put_cell(&mut e, 1, 1, 20.0, 3.0, true);
    e.affected.extend([cell(0), cell(1)]);
    assert_eq!(e.needed_reduction(&evidence(0.0, 0)), 80);
    put_cell(&mut e, 0, 1, 30.0, 10.0, true);
    put_cell(&mut e, 1, 1, 20.0, 8.0, true);
    assert_eq!(e.needed_reduction(&evidence(0.0, 0)), 46);
    // The region's rate counts when it is higher than the cells' own (fleet sums, other cells).
    assert_eq!(e.needed_reduction(&evidence(100.0, 0)), 73, "100 × (1 − 27 / 100)");
    // Near the baseline the floor applies: 100 × (1 − 27 / 28.5) = 5.3 → 10.
    put_cell(&mut e, 0, 1, 15.0, 10.0, true);
    put_cell(&mut e, 1, 1, 13.5, 8.0, true);
    assert_eq!(e.needed_reduction(&evidence(0.0, 0)), 10);
}

/// The barring factor admits baseline × headroom of the cell's rate, rounded down to the 0.05
/// steps of uac-BarringFactor (TS 38.331 `UAC-BarringInfoSet`), within p05..p95.
#[test]
fn the_barring_factor_admits_the_cells_target_in_005_steps() {
    let mut e = engine();
    put_cell(&mut e, 0, 1, 30.0, 4.0, true); // 6 / 30 = 0.20
    put_cell(&mut e, 1, 2, 37.0, 4.0, true); // 6 / 37 = 0.162 → 0.15
    put_cell(&mut e, 2, 2, 1000.0, 1.0, true); // 0.0015 → never a full bar: 0.05
    put_cell(&mut e, 3, 2, 5.0, 4.0, true); // 1.2 → at most 0.95
    e.affected.extend([cell(0), cell(1), cell(2), cell(3)]);
    let b: BTreeMap<String, f64> = e.barring().into_iter().map(|a| (a.cell, a.barring_factor)).collect();
    let f = |c| b[&cell_str(&cell(c))];
    assert!((f(0) - 0.20).abs() < 1e-9, "{b:?}");
    assert!((f(1) - 0.15).abs() < 1e-9, "{b:?}");
    assert!((f(2) - 0.05).abs() < 1e-9, "{b:?}");
    assert!((f(3) - 0.95).abs() < 1e-9, "{b:?}");
}

/// The pattern back-off doubles T3346 per level above the first, as the device list does.
#[test]
fn the_pattern_back_off_doubles_t3346_per_level() {
    let mut e = engine();
    let mut t = CellTrack { rate: 30.0, baseline: 1.0, windows: 100, hot: true, pattern: true, ..Default::default() };
    t.peer = gnb(1);
    e.cells.insert(cell(0), t);
    e.affected_pattern.insert(cell(0));
    let base = e.s.t3346_base_s;
    for (level, want) in
        [(LEVEL_NONE, base), (LEVEL_DEVICES, base), (LEVEL_BARRING, 2 * base), (LEVEL_OVERLOAD, 4 * base)]
    {
        e.level = level;
        let p = e.pattern_advice();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].t3346_s, want.min(e.s.t3346_max_s), "level {level}");
    }
}

/// `refresh_s = 0` turns the periodic resend off: a level in force with nothing new says nothing.
#[test]
fn no_refresh_period_means_no_resend() {
    let mut e = engine();
    e.s.refresh_s = 0.0;
    put_cell(&mut e, 0, 1, 40.0, 1.0, true);
    put_device(&mut e, 1, 0, 1, 30);
    e.level = LEVEL_DEVICES;
    e.level_entry_rate = 40.0;
    e.affected.insert(cell(0));
    assert!(step(&mut e, SEC, true, &evidence(40.0, 1), &[dev(1)]).is_some(), "the first scope is new");
    for t in 2..5 {
        assert!(step(&mut e, t * 100 * SEC, true, &evidence(40.0, 1), &[dev(1)]).is_none());
    }
}
