//! What a stage lets a device through (`ladder::stage_limit`): the ladder's rates, and for a group
//! member its group's declared rate at shape and the same fraction of it at strict that the
//! ladder's strict rate is of its shape rate. Written for mutants `cargo xtask mutants --scope
//! engine` showed surviving (issue 24).

use guard_common::abi::{STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};

use super::ladder::stage_limit;
use crate::config::{Config, GroupSection, TeidRange};

fn with_group(expected_pps: f64, expected_burst: Option<u64>) -> Config {
    let mut c = Config::default();
    c.ladder.shape.rate_pps = 100;
    c.ladder.shape.burst = 200;
    c.ladder.strict.rate_pps = 10;
    c.ladder.strict.burst = 20;
    c.groups = vec![GroupSection {
        name: "meters".into(),
        id: 1,
        teids: vec![TeidRange { first: 1, last: 100 }],
        ue_prefixes: vec![],
        expected_pps: Some(expected_pps),
        expected_period: None,
        expected_burst,
        servers: vec![],
        exempt: false,
    }];
    c
}

#[test]
fn a_device_outside_groups_gets_the_ladders_rates() {
    let c = with_group(2.0, None);
    let (shape, pps) = stage_limit(&c, STAGE_SHAPE, None);
    assert_eq!((shape.rate_per_sec(), shape.burst(), pps), (100, 200, 100.0));
    let (strict, pps) = stage_limit(&c, STAGE_STRICT, None);
    assert_eq!((strict.rate_per_sec(), strict.burst(), pps), (10, 20, 10.0));
    assert_eq!(stage_limit(&c, STAGE_QUARANTINE, None).1, 0.0, "quarantine lets nothing through");
}

#[test]
fn a_group_member_is_held_to_its_groups_rate_and_the_strict_fraction_of_it() {
    let c = with_group(2.0, Some(6));
    let (shape, pps) = stage_limit(&c, STAGE_SHAPE, Some(0));
    assert_eq!((pps, shape.burst()), (2.0, 6));
    assert_eq!(shape.interval_ns, 500_000_000, "2 pps");
    // Strict is 10/100 of shape on the ladder: 0.2 pps, and the burst scaled alike (6 × 20/200,
    // at least one packet).
    let (strict, pps) = stage_limit(&c, STAGE_STRICT, Some(0));
    assert!((pps - 0.2).abs() < 1e-9, "{pps}");
    assert_eq!((strict.interval_ns, strict.burst()), (5_000_000_000, 1));
    let c = with_group(2.0, Some(60));
    assert_eq!(stage_limit(&c, STAGE_STRICT, Some(0)).0.burst(), 6);
    let c = with_group(2.0, None);
    assert_eq!(stage_limit(&c, STAGE_STRICT, Some(0)).0.burst(), 20, "no declared burst: the ladder's");
}
