//! The fleet lab (issue 23, `cargo xtask lab --scenario fleet`) as a test: a three-member etcd
//! cluster in a namespace of its own and two AMF-side guards (`labkit::fleetlab`), about two
//! minutes. A registration storm split evenly over the two guards is missed by both without
//! fleet mode and answered by both with it (each listing only its own devices); a guard killed
//! mid-storm has its summary expire within its lease; a pin typed on one host is in force on the
//! other within 2 s; one etcd member (the leader) killed changes nothing, two leave both guards
//! enforcing locally, restoring them converges.

use labkit::assert_root;
use labkit::fleetlab::{run, FleetOpts};
use labkit::oracle::TempDir;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_split_storm_is_answered_with_fleet_summaries_and_etcd_faults_are_survived() {
    assert_root("lab_fleet_short::a_split_storm_is_answered_with_fleet_summaries_and_etcd_faults_are_survived");
    let out = TempDir::new("og-lab-fleet").expect("a scratch directory");
    let opts = FleetOpts {
        guard_bin: labkit::guard_bin::for_test(),
        out: out.path().to_path_buf(),
        scenario: labkit::guard_bin::workspace().join("lab/fleet/split_storm.toml"),
        verbose: true,
    };
    let r = run(&opts).expect("the fleet lab runs");
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    for c in &r.checks {
        assert!(c.pass, "{}: {}", c.name, c.detail);
    }
    assert!(r.checks.len() >= 12, "every step ran: {:?}", r.checks.iter().map(|c| &c.name).collect::<Vec<_>>());
    assert!(r.wall_s < 300.0, "the fleet lab took {:.0} s", r.wall_s);
}
