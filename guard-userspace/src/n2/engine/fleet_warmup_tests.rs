//! Warm-up with fleet input (docs/fleet.md "Warm-up with fleet input"): a cell this member first
//! sees at a storm's onset, which the other members of its AMF set (TS 23.501 §5.21) already
//! know, is not learned as normal while they publish it far above their baseline; and what a
//! forged summary can do to a warm-up (delay it, within a bound, never stop it).

use super::fleet_tests::{background, cell, dev, fleet_of, settings, storm_second, through, Host, SEC};
use super::*;

/// Cell 0's background (one registration every 10 s) reaches AMF A only, so B first sees the
/// cell at the storm's onset; cells 1..3 reach both. From `storm_from`, infected devices in
/// cell 0 each register every 20 s, each always through the same AMF (its 5G-S-TMSI names it:
/// TS 23.003 §2.10.1), half through each: 56 for the first 30 s, then 80 (4/s for the cell,
/// 2/s at each AMF: below the 3/s floor there). The members swap summaries every tick;
/// `legacy`: B warms up as before the fix. Returns the highest level of A and B.
fn run_new_cell(secs: u64, storm_from: u64, legacy: bool) -> (u8, u8) {
    let n = 80u32;
    let s = settings();
    let (mut a, mut b) = (N2Engine::new(&s), N2Engine::new(&s));
    b.legacy_warmup = legacy;
    let (mut ha, mut hb) = (Host::default(), Host::default());
    let (mut pub_a, mut pub_b) = (Vec::new(), Vec::new());
    let mut top = (0u8, 0u8);
    let mut bg = 0u32;
    for sec in 0..secs {
        if sec % 10 == 0 {
            bg += 1;
            ha.attempt(dev(1_000_000 + bg), 0);
        }
        background(sec, 1..4, &mut bg, &mut ha, &mut hb, None);
        if sec >= storm_from {
            // The infection spreads: 56 devices (2.8/s, below the 3/s floor even for the whole
            // cell) for the first 30 s, then `n`.
            let active = if sec < storm_from + 30 { n.min(56) } else { n };
            for i in storm_second(sec, active) {
                through(&mut ha, &mut hb, i % 2 == 0, dev(i), 0);
            }
        }
        let now = (sec + 1) * SEC;
        a.set_fleet(fleet_of(&pub_b));
        b.set_fleet(fleet_of(&pub_a));
        ha.tick(&mut a, now);
        hb.tick(&mut b, now);
        pub_a = a.hot_cells_for_fleet(0.25, 32);
        pub_b = b.hot_cells_for_fleet(0.25, 32);
        top = (top.0.max(a.level()), top.1.max(b.level()));
    }
    top
}

#[test]
fn a_split_storm_in_a_cell_new_to_one_member_is_missed_there_without_the_hold_and_answered_with_it() {
    // Without the hold, B learns the storm's first 30 s (2.8/s for the cell, below even the
    // whole-cell floor) as the cell's normal: 1.4/s at B, published to A as B's baseline, so
    // the fleet's threshold (4 × the summed baselines) rises above the storm's 4/s on B.
    let (_, b) = run_new_cell(400, 120, true);
    assert_eq!(b, LEVEL_NONE, "the member new to the cell learns the storm and misses it");
    // With it, A's summaries (the cell far above A's learned baseline) hold B's warm-up back:
    // B keeps the prior and the fleet's sums make the cell hot on both.
    let (a, b) = run_new_cell(400, 120, false);
    assert!(a >= LEVEL_DEVICES && b >= LEVEL_DEVICES, "both members answer: {a} {b}");
}

#[test]
fn a_forged_summary_for_a_quiet_cell_raises_no_level_and_delays_its_warm_up_within_the_bound() {
    let s = settings();
    let bound = N2Engine::fleet_hold_bound_s(&s);
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    // Cell 0: a forged rate far above a forged tiny baseline, summed still below the floor (it
    // only holds the warm-up); cell 1: a forged rate at `max_rate` (it makes the cell hot by the
    // fleet's sums); cell 2: no summary.
    let forged: FleetCells = [
        (cell(0), FleetCell { rate: 1.0, baseline: 0.01, members: 1 }),
        (cell(1), FleetCell { rate: 1000.0, baseline: 0.0, members: 1 }),
    ]
    .into_iter()
    .collect();
    let mut bg = 0u32;
    let mut learned = None;
    let end = bound as u64 + 120;
    for sec in 0..end {
        if sec % 10 == 0 {
            for c in 0..3 {
                bg += 1;
                h.attempt(dev(3_000_000 + bg), c);
            }
        }
        e.set_fleet(forged.clone());
        let out = h.tick(&mut e, (sec + 1) * SEC);
        assert!(out.responses.is_empty() && e.level() == LEVEL_NONE, "no local repeaters: no level ({sec} s)");
        let w = |c| e.cells.get(&cell(c)).map_or(0, |t| t.windows);
        if sec == 30 {
            assert!(w(2) >= s.warmup_windows, "the cell without a summary warms up as before");
            assert_eq!((w(0), w(1)), (0, 0), "the forged summaries hold the warm-up back");
        }
        if sec + 1 == bound as u64 - 5 {
            assert!(w(0) < s.warmup_windows && w(1) < s.warmup_windows, "held up to the bound");
        }
        if learned.is_none() && w(1) >= s.warmup_windows {
            learned = e.cells.get(&cell(1)).map(|t| t.baseline);
        }
    }
    for c in 0..2 {
        let t = &e.cells[&cell(c)];
        assert!(t.windows >= s.warmup_windows, "cell {c} warms up past the bound, forged summary or not");
        assert!(t.warm_held_s <= bound + 1.0, "cell {c}: held {} s", t.warm_held_s);
        assert!(t.baseline_or_prior(&s) < s.cell_prior_rate, "cell {c}: its own quiet normal, not the prior");
    }
    let t = &e.cells[&cell(1)];
    assert!(t.hot, "the forged rate still makes cell 1 hot here (docs/fleet.md: the forgery cost)");
    assert_eq!(Some(t.baseline), learned, "but its learned baseline is kept: never lowered by the fleet");
}
