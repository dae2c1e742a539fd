//! The volume form of bulk (mis)provisioning (T5, issue 27 item 2): a configured group whose
//! members all start sending larger T-PDUs at their old packet rate (a new payload at the old
//! period) is flagged as a cohort, by volume; one member doing it alone is not.

use super::sim::{Rng, Sim};
use super::{Decision, Reason};
use crate::config::{Config, GroupSection};

const N: usize = 1000;
const MEMBERS: usize = 200;

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.groups.push(GroupSection {
        name: "meters".into(),
        id: 9,
        teids: vec!["1-200".parse().expect("range")],
        ue_prefixes: vec![],
        expected_pps: Some(10.0),
        expected_period: None,
        expected_burst: Some(20),
        servers: vec!["198.51.100.10".parse().expect("prefix")],
        exempt: false,
    });
    cfg.validate().expect("valid");
    cfg
}

/// Every device sends ~10 pps of 100-octet T-PDUs (8 kbit/s, its byte profile once learned).
/// 600-octet ones at the same packet rate are 6x its octets: over the cohort's volume factor (4),
/// under the shape trigger (8), so one member alone is neither a flood nor a cohort; all members
/// at once are flagged by volume and isolated with a byte rate.
#[test]
fn a_group_that_changes_volume_at_once_is_a_cohort_and_one_member_is_not() {
    let mut sim = Sim::new(config(), N, 10);
    let mut rng = Rng(31);
    sim.run(300, |_, _, _| rng.noisy(10.0, 0.1));
    sim.size[0] = 600;
    sim.run(100, |_, _, _| rng.noisy(10.0, 0.1));
    assert_eq!(sim.decisions(|d| matches!(d, Decision::FlagCohort { .. })).count(), 0, "one member is not a cohort");
    assert!(sim.staged().is_empty(), "6x in octets alone is no flood: {:?}", sim.staged());
    for i in 0..MEMBERS {
        sim.size[i] = 600;
    }
    sim.run(120, |_, _, _| rng.noisy(10.0, 0.1));
    let flags: Vec<(f64, &Decision)> = sim.decisions(|d| matches!(d, Decision::FlagCohort { .. })).collect();
    assert_eq!(flags.len(), 1, "{flags:?}");
    let (_, Decision::FlagCohort { group, evidence, .. }) = flags[0] else { panic!("not a cohort flag") };
    assert_eq!(*group, 9);
    assert!(evidence.volume_changes.is_some_and(|n| n >= 60), "{evidence:?}");
    assert_eq!((evidence.new_destinations, evidence.period_changes), (Some(0), Some(0)), "{evidence:?}");
    // Members are isolated, each with a byte rate (its own byte profile); nobody else is staged.
    let isolated = sim.staged();
    assert!(isolated.len() >= 150 && isolated.iter().all(|&i| i < MEMBERS), "{} isolated", isolated.len());
    let shapes: Vec<_> = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::CohortDeviation, refresh: false, .. }))
        .filter_map(|(_, d)| match d {
            Decision::SetDeviceStage { bytes, .. } => Some(bytes.bits_per_sec()),
            _ => None,
        })
        .collect();
    assert!(!shapes.is_empty());
    assert!(shapes.iter().all(|&b| (6_000..=12_000).contains(&b)), "byte rates {shapes:?}");
}
