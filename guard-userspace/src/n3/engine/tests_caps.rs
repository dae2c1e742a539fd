//! The last-resort caps' byte form (issue 27): a level with a `capacity_rate` is judged on its
//! demand in T-PDU bits too, and a cap engaged for an overload in octets carries the level's byte
//! rate; one engaged for packets alone stays a packet cap.

use guard_common::abi::ByteLimit;

use super::sim::{cell_of, Rng, Sim};
use super::Decision;
use crate::config::{Config, Rate};

const N: usize = 1000;

/// One cell dimensioned for 100k pps: 600 devices flooding at 150 pps are shaped to 100 pps
/// each, 60k pps in all, within it. In 1400-octet T-PDUs that is 672 Mbit/s after their stages.
fn config(capacity_rate: &str) -> Config {
    let mut cfg = Config::default();
    cfg.capacity.cell.capacity_pps = 100_000;
    cfg.capacity.cell.cap_pps = 100_000;
    cfg.capacity.cell.capacity_rate = capacity_rate.parse::<Rate>().expect("rate");
    cfg.capacity.cell.cap_rate = Rate::NONE;
    cfg.capacity.host.capacity_rate = capacity_rate.parse::<Rate>().expect("rate");
    cfg.capacity.host.capacity_pps = 2_000_000;
    cfg.validate().expect("valid");
    cfg
}

fn run(cfg: Config) -> Sim {
    let mut sim = Sim::new(cfg, N, 1);
    let mut rng = Rng(27);
    let base: Vec<f64> = (0..N).map(|_| rng.range(1.0, 10.0)).collect();
    let flooders = |i: usize| i % 10 < 6;
    sim.run(150, |i, _, _| rng.noisy(base[i], 0.3));
    for i in (0..N).filter(|&i| flooders(i)) {
        sim.size[i] = 1400;
    }
    sim.run(250, |i, _, _| if flooders(i) { rng.noisy(150.0, 0.05) } else { rng.noisy(base[i], 0.3) });
    sim
}

fn cell_caps(sim: &Sim) -> Vec<(f64, Decision)> {
    sim.decisions(|d| matches!(d, Decision::SetCellCap { .. })).map(|(t, d)| (t, d.clone())).collect()
}

/// Over its capacity in octets (672 of 500 Mbit/s) but not in packets: the cell cap engages,
/// with the level's byte rate (`capacity_rate`, as no `cap_rate` is set) beside its packet
/// rate, and every refresh keeps it; the evidence names the demand in bits.
#[test]
fn a_cell_over_its_capacity_in_octets_is_capped_with_a_byte_rate() {
    let sim = run(config("500Mbit/s"));
    let caps = cell_caps(&sim);
    let first = caps.iter().find(|(_, d)| matches!(d, Decision::SetCellCap { refresh: false, .. }));
    let Some((_, Decision::SetCellCap { cell, bytes, limit, evidence, .. })) = first else {
        panic!("no cell cap: {caps:?}")
    };
    assert_eq!(*cell, cell_of(0));
    assert_eq!(bytes.bits_per_sec(), 500_000_000, "{bytes:?}");
    assert_eq!(limit.rate_per_sec(), 100_000);
    assert!(evidence.demand_pps.is_some_and(|d| d < 100_000.0), "not over in packets: {evidence:?}");
    assert!(evidence.demand_bps.is_some_and(|d| d > 600e6 && d < 750e6), "{evidence:?}");
    assert_eq!(evidence.capacity_bps, Some(500e6));
    assert!(caps.len() > 1, "refreshed");
    for (t, d) in &caps {
        let Decision::SetCellCap { bytes, .. } = d else { unreachable!() };
        assert_eq!(bytes.bits_per_sec(), 500_000_000, "at {t}: a refresh must not lift the byte rate");
    }
    // The entry the controller writes carries it.
    let (_, entry) = first.map(|(_, d)| d).and_then(|d| d.cell_entry(1)).expect("an entry");
    assert_eq!((entry.bytes, entry.tat_bytes), (ByteLimit::bits_per_second(500_000_000, 62_500_000), 0));
}

/// The same load with no `capacity_rate` (the default, and every configuration from before byte
/// limits): in packets the cell is within capacity, so no cap at all.
#[test]
fn without_a_capacity_rate_the_same_load_raises_no_cap() {
    let sim = run(config("0"));
    assert!(cell_caps(&sim).is_empty(), "{:?}", cell_caps(&sim));
    assert!(sim.decisions(|d| matches!(d, Decision::SetHostCap { .. })).next().is_none());
}
