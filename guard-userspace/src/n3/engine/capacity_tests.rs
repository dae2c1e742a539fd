//! The last-resort cap's step (`capacity.rs`), window by window: when a cap engages (demand above
//! the level's capacity, strictly, with enough offenders, for `sustain_windows`), what evidence it
//! carries, and when an engaged cap is refreshed (at half its TTL). Written for mutants
//! `cargo xtask mutants --scope engine` showed surviving (issue 24).

use guard_common::abi::L3Addr;

use super::capacity::{step, CapState, Level, Load};
use super::decision::Decision;
use crate::config::Config;

const SEC: u64 = 1_000_000_000;

fn cfg() -> Config {
    let mut c = Config::default();
    c.capacity.cell.capacity_pps = 1_000;
    c.capacity.cell.min_offenders = c.capacity.cell.min_offenders.max(5);
    c.capacity.cell.ttl = crate::config::Dur::secs(30);
    c.capacity.cell.quiet = crate::config::Dur::secs(600);
    c
}

fn load(cfg: &Config, demand: f64) -> Load {
    Load {
        offered: demand * 2.0,
        demand,
        offenders: u64::from(cfg.capacity.cell.min_offenders),
        devices: 4321,
        ..Load::default()
    }
}

/// Windows of `demand` from `t0`, one per second; the decisions of each.
fn windows(cfg: &Config, st: &mut CapState, demand: f64, t0: u64, n: u32) -> Vec<Vec<Decision>> {
    let level = Level::Cell(L3Addr::v4([10, 200, 0, 11]));
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            step(cfg, level, st, &load(cfg, demand), 1.0, t0 + u64::from(i) * SEC, &mut out);
            out
        })
        .collect()
}

#[test]
fn demand_at_capacity_is_not_an_overload_and_above_it_engages_after_sustain_windows() {
    let c = cfg();
    let sustain = c.capacity.sustain_windows;
    let mut st = CapState::default();
    let at = windows(&c, &mut st, 1_000.0, 0, sustain + 2);
    assert!(at.iter().all(Vec::is_empty) && !st.engaged, "demand equal to capacity: no cap");
    let mut st = CapState::default();
    let over = windows(&c, &mut st, 1_001.0, 0, sustain);
    assert!(over[..sustain as usize - 1].iter().all(Vec::is_empty), "not before sustain_windows");
    let Some(Decision::SetCellCap { refresh, evidence: e, .. }) = over.last().and_then(|d| d.first()) else {
        panic!("a cell cap after {sustain} windows: {over:?}");
    };
    assert!(!refresh);
    assert_eq!(e.demand_pps, Some(1_001.0));
    assert_eq!(e.offered_pps, Some(2_002.0));
    assert_eq!(e.capacity_pps, Some(1_000.0));
    assert_eq!(e.offenders, Some(u64::from(c.capacity.cell.min_offenders)));
    assert_eq!(e.active_devices, Some(4321));
    assert_eq!(e.windows, Some(sustain));
}

#[test]
fn an_engaged_cap_is_refreshed_at_half_its_ttl_not_before() {
    let c = cfg();
    let mut st = CapState::default();
    let sustain = c.capacity.sustain_windows;
    windows(&c, &mut st, 5_000.0, 0, sustain);
    assert!(st.engaged);
    let engaged_at = u64::from(sustain - 1) * SEC;
    // 30 s TTL: 14 windows later 16 s remain (no refresh); at 15 s, 15 s remain (refresh).
    let later = windows(&c, &mut st, 5_000.0, engaged_at + 14 * SEC, 1).concat();
    assert!(later.is_empty(), "16 s of 30 left: not yet: {later:?}");
    let later = windows(&c, &mut st, 5_000.0, engaged_at + 15 * SEC, 1).concat();
    assert!(matches!(later.as_slice(), [Decision::SetCellCap { refresh: true, .. }]), "{later:?}");
    assert_eq!(st.expires_ns, engaged_at + 45 * SEC);
}

/// An engaged cap is released once its level has been quiet for `quiet`, saying how long.
#[test]
fn a_cap_is_released_after_its_quiet_time_with_it_in_the_evidence() {
    let mut c = cfg();
    c.capacity.cell.quiet = crate::config::Dur::secs(20);
    let mut st = CapState::default();
    let sustain = c.capacity.sustain_windows;
    windows(&c, &mut st, 5_000.0, 0, sustain);
    let last_noisy = u64::from(sustain - 1) * SEC;
    let quiet = windows(&c, &mut st, 10.0, last_noisy + SEC, 20);
    let released: Vec<_> = quiet.iter().flatten().filter(|d| matches!(d, Decision::ReleaseCell { .. })).collect();
    let [Decision::ReleaseCell { evidence, .. }] = released.as_slice() else {
        panic!("one release: {quiet:?}");
    };
    assert_eq!(evidence.quiet_s, Some(20.0));
    assert!(!st.engaged);
}

/// Only cells that are capped or building up to a cap keep their state.
#[test]
fn prune_keeps_only_capped_or_building_cells() {
    let mut cells = std::collections::HashMap::new();
    let k = |n: u8| L3Addr::v4([10, 200, 0, n]);
    cells.insert(k(1), CapState { engaged: true, ..CapState::default() });
    cells.insert(k(2), CapState { over_windows: 1, ..CapState::default() });
    cells.insert(k(3), CapState::default());
    super::capacity::prune(&mut cells);
    let mut left: Vec<_> = cells.keys().copied().collect();
    left.sort_by_key(|a| a.addr);
    assert_eq!(left, vec![k(1), k(2)]);
}

/// A cell level with a byte capacity of 100 Mbit/s and a cap rate of 40 Mbit/s.
fn byte_cfg() -> Config {
    use guard_common::units::BitRate;
    let mut c = cfg();
    c.capacity.cell.capacity_rate = crate::config::Rate(BitRate(100_000_000));
    c.capacity.cell.cap_rate = crate::config::Rate(BitRate(40_000_000));
    c
}

/// One window of `demand` packets/s and `demand_bps`, with `offenders` offenders, at `now`, with
/// this member's `share` of the cap; its decisions.
fn byte_window(
    c: &Config,
    st: &mut CapState,
    demand: f64,
    demand_bps: f64,
    offenders: u64,
    share: f64,
    now: u64,
) -> Vec<Decision> {
    let level = Level::Cell(L3Addr::v4([10, 200, 0, 12]));
    let l = Load { offered: demand * 2.0, demand, offered_bps: demand_bps * 3.0, demand_bps, offenders, devices: 99 };
    let mut out = Vec::new();
    step(c, level, st, &l, share, now, &mut out);
    out
}

/// Over its capacity in octets, strictly (demand equal to it is none), with enough offenders:
/// the cap engages with the byte rate beside the packet rate, and its evidence carries the bits.
#[test]
fn an_overload_in_octets_engages_the_cap_with_its_byte_rate_and_bit_evidence() {
    let c = byte_cfg();
    let many = u64::from(c.capacity.cell.min_offenders);
    let sustain = c.capacity.sustain_windows;
    let mut st = CapState::default();
    for i in 0..sustain + 2 {
        assert!(byte_window(&c, &mut st, 10.0, 100e6, many, 1.0, u64::from(i) * SEC).is_empty(), "at capacity: none");
    }
    let mut st = CapState::default();
    let mut last = Vec::new();
    for i in 0..sustain {
        last = byte_window(&c, &mut st, 10.0, 100e6 + 1.0, many, 1.0, u64::from(i) * SEC);
    }
    let [Decision::SetCellCap { bytes, evidence: e, refresh: false, .. }] = last.as_slice() else {
        panic!("a cap on the last sustain window: {last:?}");
    };
    assert_eq!(*bytes, c.capacity.cell.cap_bytes(), "the byte rate rides along");
    assert!(!bytes.is_unlimited());
    assert_eq!(
        (e.demand_bps, e.offered_bps, e.capacity_bps),
        (Some(100e6 + 1.0), Some(3.0 * (100e6 + 1.0)), Some(100e6))
    );
    // Without a byte capacity there is no bit evidence at all.
    let mut st = CapState::default();
    let c = cfg();
    for i in 0..sustain {
        last = byte_window(&c, &mut st, 5_000.0, 1e9, many, 1.0, u64::from(i) * SEC);
    }
    let [Decision::SetCellCap { bytes, evidence: e, .. }] = last.as_slice() else { panic!("{last:?}") };
    assert!(bytes.is_unlimited());
    assert_eq!((e.demand_bps, e.offered_bps, e.capacity_bps), (None, None, None));
}

/// A cap engaged for packets takes its byte rate the window the octets go over too (enough
/// offenders only), once: a window after that is no new decision until the refresh is due.
#[test]
fn a_packet_cap_takes_its_byte_rate_once_when_octets_go_over_with_enough_offenders() {
    let c = byte_cfg();
    let many = u64::from(c.capacity.cell.min_offenders);
    let sustain = c.capacity.sustain_windows;
    let mut st = CapState::default();
    for i in 0..sustain {
        byte_window(&c, &mut st, 5_000.0, 1e6, many, 1.0, u64::from(i) * SEC);
    }
    assert!(st.engaged && !st.in_bytes);
    let t = u64::from(sustain) * SEC;
    // Over in octets, but from a handful of devices: no byte rate.
    assert!(byte_window(&c, &mut st, 5_000.0, 200e6, many - 1, 1.0, t).is_empty());
    assert!(!st.in_bytes);
    let d = byte_window(&c, &mut st, 5_000.0, 200e6, many, 1.0, t + SEC);
    assert!(
        matches!(d.as_slice(), [Decision::SetCellCap { refresh: true, bytes, .. }] if !bytes.is_unlimited()),
        "{d:?}"
    );
    assert!(st.in_bytes);
    let d = byte_window(&c, &mut st, 5_000.0, 200e6, many, 1.0, t + 2 * SEC);
    assert!(d.is_empty(), "already in bytes: nothing new until the refresh: {d:?}");
}

/// A fleet member sets its share of the cap (fleet.rs): half of the rates and bursts, rounded up;
/// a share of 1 or more is the whole cap.
#[test]
fn a_fleet_share_scales_the_packet_and_byte_rates_of_the_cap() {
    let c = byte_cfg();
    let many = u64::from(c.capacity.cell.min_offenders);
    let sustain = c.capacity.sustain_windows;
    let cap = |share: f64| {
        let mut st = CapState::default();
        let mut last = Vec::new();
        for i in 0..sustain {
            last = byte_window(&c, &mut st, 5_000.0, 200e6, many, share, u64::from(i) * SEC);
        }
        match last.as_slice() {
            [Decision::SetCellCap { limit, bytes, .. }] => (*limit, *bytes),
            other => panic!("{other:?}"),
        }
    };
    let lvl = &c.capacity.cell;
    let whole = (guard_common::abi::Limit::per_second(lvl.cap_pps, lvl.burst), lvl.cap_bytes());
    assert_eq!(cap(1.0), whole);
    assert_eq!(cap(1.5), whole, "a share above 1 is no more than the cap");
    let half = cap(0.5);
    let up = |v: u64| v.div_ceil(2);
    assert_eq!(half.0, guard_common::abi::Limit::per_second(up(lvl.cap_pps), up(lvl.burst)));
    assert_eq!(half.1, lvl.cap_bytes_scaled(up));
    assert_ne!(half.1, whole.1);
}
