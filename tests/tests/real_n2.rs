//! The real-n2 lab scenario, bounded (issue 15 item 4): libusrsctp gNBs and AMF (one stack per
//! namespace over raw IPv4) carrying pycrate-encoded NGAP through the real `guard run
//! --n2-iface`; the registration storm, the forged INIT flood and the tshark capture oracle.
//! Every check must pass (the flood's time to association is reported OPEN, issue 18's target).
//! A missing tool (tshark, dumpcap, cc, libusrsctp, the pycrate venv) fails the test.

use std::path::PathBuf;

use labkit::assert_root;
use labkit::realpeers::RealOpts;

/// A uniquely named output directory, removed on drop (also when the test panics).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn real_sctp_stacks_through_the_guard_quick() {
    assert_root("real_n2::real_sctp_stacks_through_the_guard_quick");
    let out = TempDir(std::env::temp_dir().join(format!("og-real-n2-{}", labkit::netns::unique_name("rn2"))));
    let opts = RealOpts { guard_bin: labkit::guard_bin::for_test(), out: out.0.clone(), quick: true, verbose: true };
    let t0 = std::time::Instant::now();
    let checks = labkit::real_n2::run(&opts).unwrap_or_else(|e| panic!("real-n2 could not run: {e:#}"));
    for c in &checks {
        let word = if !c.pass {
            "FAIL"
        } else if c.detail.starts_with("OPEN:") {
            "OPEN"
        } else {
            "PASS"
        };
        eprintln!("{word} {}: {}", c.criterion, c.detail);
    }
    assert!(checks.iter().filter(|c| !c.detail.starts_with("OPEN:")).count() >= 8, "too few checks: {checks:#?}");
    let failed: Vec<String> =
        checks.iter().filter(|c| !c.pass).map(|c| format!("{}: {}", c.criterion, c.detail)).collect();
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
    assert!(out.0.join("real-n2/report.md").exists() && out.0.join("real-n2/report.json").exists());
    assert!(t0.elapsed().as_secs() < 120, "the quick scenario took {:.0} s", t0.elapsed().as_secs_f64());
}
