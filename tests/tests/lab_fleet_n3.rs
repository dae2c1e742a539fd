//! A real G-PDU overload of one gNB split over two UPF-side guards (`labkit::fleetlab::n3split`,
//! issue 23): missed by both without fleet mode, capped by both at their shares with it, each
//! cap's audit line naming the other member. About a minute.

use labkit::assert_root;
use labkit::fleetlab::{n3split, FleetOpts};
use labkit::oracle::TempDir;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_gpdu_overload_split_over_two_upfs_is_capped_with_fleet_summaries_and_missed_without() {
    assert_root("lab_fleet_n3::a_gpdu_overload_split_over_two_upfs_is_capped_with_fleet_summaries_and_missed_without");
    let out = TempDir::new("og-lab-fleet-n3").expect("a scratch directory");
    let opts = FleetOpts {
        guard_bin: labkit::guard_bin::for_test(),
        out: out.path().to_path_buf(),
        scenario: labkit::guard_bin::workspace().join("lab/fleet/split_storm.toml"),
        verbose: true,
    };
    let r = n3split::run(&opts).expect("the N3 split lab runs");
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    for c in &r.checks {
        assert!(c.pass, "{}: {}", c.name, c.detail);
    }
    assert!(r.wall_s < 240.0, "the N3 split lab took {:.0} s", r.wall_s);
}
