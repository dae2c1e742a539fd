//! The embedded XDP object passes the verifier and runs on a minimal frame.
use aya::programs::{TestRun, TestRunOptions};
use guard::{loader, pins::PinDir};
use guard_common::abi::GuardConfig;

#[test]
fn program_loads_and_runs() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let base = std::path::PathBuf::from(format!("/sys/fs/bpf/og-smoke-{}", std::process::id()));
    let pins = PinDir::new(&base, "t");
    let mut l = loader::load(&pins, 4096, &GuardConfig { gtpu_port: 2152, ..Default::default() }).expect("load");
    let frame = [0u8; 60];
    let r = l.program().expect("prog").test_run(TestRunOptions { data_in: Some(&frame), ..Default::default() }).expect("run");
    assert_eq!(r.return_value, 2, "XDP_PASS for a non-IP frame");
    drop(l);
    pins.purge().expect("purge");
    let _ = std::fs::remove_dir(&base);
}
