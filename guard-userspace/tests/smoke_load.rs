//! The embedded XDP object passes the verifier, and a frame that is not GTP-U passes untouched.
use aya::programs::{TestRun, TestRunOptions};
use guard::n3::load;
use guard_common::abi::GuardConfig;

mod common;
use common::Pins;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn program_loads_and_passes_non_gtp() {
    labkit::netns::assert_root("smoke_load::program_loads_and_passes_non_gtp");
    let pins = Pins::new("smoke");
    let mut l = load::load(&pins.0, 4096, &GuardConfig { gtpu_port: 2152, ..Default::default() }).expect("load");
    let frame = [0u8; 60];
    let r = l
        .program()
        .expect("prog")
        .test_run(TestRunOptions { data_in: Some(&frame), ..Default::default() })
        .expect("run");
    assert_eq!(r.return_value, 2, "XDP_PASS for a non-IP frame");
}
