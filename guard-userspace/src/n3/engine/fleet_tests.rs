//! A gNB overload split over two UPFs (fleet.rs): missed by each alone, capped by both with the
//! fleet's sums, each at its share of the gNB's cap; forged sums move nothing without local
//! evidence, and cannot squeeze a member's share below `publish_fraction`.

use guard_common::abi::Limit;

use super::sim::{cell_of, Rng, Sim};
use super::*;

const N: usize = 1000;

/// The cell capacity of `tests.rs`'s cell-cap tests, with `[fleet]` (publish_fraction 0.25).
fn config() -> Config {
    let mut cfg = Config::from_toml_str(
        "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"upf-pool\"\ninsecure = true\n",
    )
    .expect("valid");
    cfg.capacity.cell.capacity_pps = 50_000;
    cfg.capacity.cell.cap_pps = 50_000;
    cfg.validate().expect("valid");
    cfg
}

fn cell_caps(sim: &Sim) -> Vec<Limit> {
    sim.log
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::SetCellCap { limit, refresh: false, .. } => Some(*limit),
            _ => None,
        })
        .collect()
}

fn fleet_of(member: &str, published: &[N3HotCell]) -> N3FleetCells {
    let load = |c: &N3HotCell| FleetCellLoad {
        demand: c.demand,
        offenders: c.offenders,
        members: 1,
        by: vec![member.to_owned()],
    };
    published.iter().map(|c| (c.cell, load(c))).collect()
}

/// Two UPFs behind one gNB, each carrying 300 devices at 150 pps (shaped to 100: 30 kpps left
/// each, 60 kpps for the gNB, over its 50 kpps) and 700 quiet ones. `exchange`: they swap their
/// published cells every tick.
fn run(exchange: bool) -> (Sim, Sim) {
    let (mut a, mut b) = (Sim::new(config(), N, 1), Sim::new(config(), N, 1));
    let (mut ra, mut rb) = (Rng(11), Rng(12));
    let base: Vec<f64> = (0..N).map(|_| ra.range(1.0, 10.0)).collect();
    for _ in 0..400 {
        let t = a.secs() + 1.0;
        let rate =
            |i: usize, r: &mut Rng| if i % 10 < 3 && t > 150.0 { r.noisy(150.0, 0.05) } else { r.noisy(base[i], 0.3) };
        if exchange {
            let (pa, pb) = (a.engine.hot_cells_for_fleet(0.25, 32), b.engine.hot_cells_for_fleet(0.25, 32));
            a.engine.set_fleet(fleet_of("upf-b", &pb));
            b.engine.set_fleet(fleet_of("upf-a", &pa));
        }
        a.run(1, |i, _, _| rate(i, &mut ra));
        b.run(1, |i, _, _| rate(i, &mut rb));
    }
    (a, b)
}

#[test]
fn a_gnb_overload_split_over_two_upfs_is_capped_by_both_at_their_shares_only_with_the_fleet() {
    let (a, b) = run(false);
    assert!(cell_caps(&a).is_empty() && cell_caps(&b).is_empty(), "alone each sees 30 of the gNB's 60 kpps");
    let (a, b) = run(true);
    for (name, sim) in [("a", &a), ("b", &b)] {
        let caps = cell_caps(sim);
        assert_eq!(caps.len(), 1, "{name}: {caps:?}");
        // Its share of the gNB's 50 kpps cap: about half, never the whole.
        let whole = Limit::per_second(50_000, 1).interval_ns;
        let share = whole as f64 / caps[0].interval_ns as f64;
        assert!((0.4..0.6).contains(&share), "{name}: share {share} of the cap ({:?})", caps[0]);
    }
    assert_eq!(a.engine.hot_cells_for_fleet(0.25, 32)[0].cell, cell_of(0));
}

#[test]
fn forged_sums_need_local_evidence_and_cannot_squeeze_a_share_to_nothing() {
    let forged: N3FleetCells =
        [(cell_of(0), FleetCellLoad { demand: 1e12, offenders: 1_000_000, members: 1, by: vec!["upf-x".to_owned()] })]
            .into_iter()
            .collect();
    // Quiet devices only: no local offender, demand far under a quarter of the capacity.
    let mut quiet = Sim::new(config(), N, 1);
    let mut r = Rng(3);
    quiet.engine.set_fleet(forged.clone());
    quiet.run(300, |_, _, _| r.noisy(5.0, 0.3));
    assert!(cell_caps(&quiet).is_empty(), "{:?}", cell_caps(&quiet));
    // Local offenders and demand: the forged sum makes it cap, at no less than a quarter.
    let mut hot = Sim::new(config(), N, 1);
    let mut r = Rng(4);
    hot.engine.set_fleet(forged);
    hot.run(400, |i, t, _| if i % 10 < 3 && t > 150.0 { r.noisy(150.0, 0.05) } else { r.noisy(5.0, 0.3) });
    let caps = cell_caps(&hot);
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert_eq!(caps[0], Limit::per_second(12_500, 2_500), "a quarter of cap_pps 50000 and of burst 10000");
}

/// `sim`'s gNB cap decisions (sets, refreshes, releases) as JSON, the form the audit trail
/// writes (`n3::audit` takes `action`, `reason` and `evidence` from it; its own test checks the
/// `fleet` mark reaches the line).
fn cap_audit_lines(sim: &Sim) -> Vec<serde_json::Value> {
    sim.log
        .iter()
        .filter(|(_, d)| matches!(d, Decision::SetCellCap { .. } | Decision::ReleaseCell { .. }))
        .map(|(_, d)| serde_json::to_value(d).expect("a decision serializes"))
        .collect()
}

#[test]
fn a_gnb_cap_judged_on_the_fleet_sums_says_so_in_its_audit_line_with_the_members() {
    let (a, b) = run(true);
    for (name, sim, other) in [("a", &a, "upf-b"), ("b", &b, "upf-a")] {
        let lines = cap_audit_lines(sim);
        let set = lines.iter().find(|l| l["action"] == "set_cell_cap").unwrap_or_else(|| panic!("{name}: {lines:?}"));
        let f = &set["evidence"]["fleet"];
        assert_eq!(f["members"], serde_json::json!([other]), "{name}: {set}");
        // The fleet's demand is the sum of this member's own and the others'.
        let (own, others) = (f["local_demand_pps"].as_f64(), f["others_demand_pps"].as_f64());
        let (Some(own), Some(others)) = (own, others) else { panic!("{name}: {set}") };
        assert!(own > 0.0 && others > 0.0, "{name}: {set}");
        let demand = set["evidence"]["demand_pps"].as_f64().unwrap_or(0.0);
        assert!((demand - (own + others)).abs() < 1e-6, "{name}: demand {demand} is not {own} + {others}");
        assert!(f["share"].as_f64().is_some_and(|s| (0.25..1.0).contains(&s)), "{name}: {set}");
        assert!(f["local_offenders"].as_u64().is_some_and(|o| o > 0), "{name}: {set}");
        assert!(f["others_offenders"].as_u64().is_some_and(|o| o > 0), "{name}: {set}");
    }
}

#[test]
fn a_gnb_cap_judged_locally_has_no_fleet_mark() {
    // One UPF carrying the whole overload (600 of 2000 devices at 150 pps, shaped to 100: 60 kpps
    // left, over the gNB's 50 kpps), no fleet input: the cap is local, its line unmarked.
    let mut sim = Sim::new(config(), 2 * N, 1);
    let mut r = Rng(21);
    sim.run(400, |i, t, _| if i % 10 < 3 && t > 150.0 { r.noisy(150.0, 0.05) } else { r.noisy(5.0, 0.3) });
    let lines = cap_audit_lines(&sim);
    let set = lines.iter().find(|l| l["action"] == "set_cell_cap").unwrap_or_else(|| panic!("{lines:?}"));
    assert!(set["evidence"].get("fleet").is_none(), "{set}");
}
