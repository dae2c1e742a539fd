//! `real-n3`, bounded (issue 15, item 4): the guard in front of osmo-ggsn with sgsnemu instances
//! creating PDP contexts and pinging through it, one of them flooding; the peers' own statistics,
//! their Echo answers and tshark's reading of both captures are the oracles. About 80 s.
//!
//! Needs root and osmo-ggsn/sgsnemu, dumpcap, tshark (`cargo xtask setup`). It fails, never
//! skips, when any of them is missing: `run` refuses to start without them.

use labkit::oracle::TempDir;
use labkit::realpeers::RealOpts;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn real_n3_quick() {
    labkit::assert_root("real_n3::real_n3_quick");
    let out = TempDir::new("real-n3-test").expect("temp dir");
    let opts =
        RealOpts { guard_bin: labkit::guard_bin::for_test(), out: out.path().to_owned(), quick: true, verbose: true };
    let checks = labkit::real_n3::run(&opts).expect("real-n3 runs (root, osmo-ggsn, sgsnemu, dumpcap, tshark)");
    for c in &checks {
        println!("{} {:<64} {}", if c.pass { "PASS" } else { "FAIL" }, c.criterion, c.detail);
    }
    assert!(!checks.is_empty(), "real-n3 reported no checks");
    let failed: Vec<String> =
        checks.iter().filter(|c| !c.pass).map(|c| format!("{}: {}", c.criterion, c.detail)).collect();
    assert!(failed.is_empty(), "real-n3 checks failed:\n{}", failed.join("\n"));
}
