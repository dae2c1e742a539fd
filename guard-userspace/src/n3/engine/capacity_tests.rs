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
