//! `guard replay` against the live guard (issue 21). N3: the short lab scenario (an infected flood;
//! the one `lab_short.rs` scores) runs live with dumpcap on the RAN side of the veth, recording
//! every frame the RAN sent before the guard saw it; then that capture is replayed with the live
//! run's own configuration file. The replay must stage the devices the live guard staged, and no
//! benign one, at stages within one step of the live ones (tick alignment: docs/replay.md,
//! "Limits"). About 25 s. N2: the same with the N2 lab's registration storm (~60 s).

use std::collections::BTreeMap;

use guard::replay::{self, Options, Pacing, Quiet};
use labkit::assert_root;
use labkit::oracle::TempDir;
use labkit::replay_check;
use labkit::scenario::{run_mode_captured, Mode, RunOpts, Scenario};

/// The short flood of `lab_short.rs` (its devices: `SHORT_FLOOD_POPULATIONS`), a second shorter.
const SHORT: &str = r#"
name = "replay_flood"
title = "Short infected flood, captured (test)"
duration_s = 12
onset_s = 5
gnbs = 2
seed = 11

[expect]
benign_delivery = 0.99
no_benign_staged = true
no_cell_or_host_stage = true
mitigate_within_s = 5
attack_dropped = 0.95

"#;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn lab_capture_replays_to_the_live_decisions() {
    assert_root("replay_lab::lab_capture_replays_to_the_live_decisions");
    let sc = Scenario::parse(&format!("{SHORT}{}", labkit::short_lab::SHORT_FLOOD_POPULATIONS))
        .expect("the scenario parses");
    let plan = sc.plan().expect("plan");
    let out = TempDir::new("replay-lab").expect("temp dir");
    let opts = RunOpts { guard_bin: labkit::guard_bin::for_test(), out: out.path().to_owned(), verbose: true };
    let capture = out.path().join("ran.pcapng");
    let live = run_mode_captured(&sc, &plan, Mode::Guard, &opts, Some(&capture)).expect("the live run");
    let config = live.config_path.clone().expect("the live run's configuration file");

    // What the live guard staged: device -> highest stage (engine decisions, not refreshes).
    let live_staged: BTreeMap<String, u64> =
        replay_check::live_staged(&live.audit).into_iter().map(|(d, s)| (d, s.stage)).collect();
    assert!(!live_staged.is_empty(), "the live guard staged nothing: the comparison would prove nothing");

    let o = Options {
        capture: capture.clone(),
        config,
        compare: None,
        n2_config: None,
        local: Vec::new(),
        out: out.path().join("replay"),
        pacing: Pacing::AsFastAsPossible,
    };
    let r = replay::replay(&o, &mut Quiet).expect("the replay").report;
    assert!(r.capture.complete, "the capture was read to its end: {:?}", r.capture.error);
    let replay_staged: BTreeMap<String, u64> =
        replay_check::replay_staged(&r).into_iter().map(|(d, s)| (d, s.stage)).collect();
    eprintln!(
        "live: {} frames sent, staged {live_staged:?}\nreplay: {} frames read, staged {replay_staged:?}",
        live.device_sent.iter().sum::<u64>(),
        r.capture.frames_read
    );
    for a in live.audit.iter().filter(|a| !a.refresh).take(12) {
        eprintln!("  live   {:7.3} s  {} {} {} {:?}", a.t_s, a.action, a.target, a.reason, a.stage);
    }
    for d in r.decisions.iter().take(12) {
        eprintln!("  replay {:7.3} s  {} {} {}", d.t_s, d.action, d.target, d.reason);
    }
    assert_eq!(
        replay_staged.keys().collect::<Vec<_>>(),
        live_staged.keys().collect::<Vec<_>>(),
        "the replay stages the devices the live guard staged, and only those"
    );
    for (dev, live_stage) in &live_staged {
        let s = replay_staged[dev];
        assert!(s.abs_diff(*live_stage) <= 1, "{dev}: live reached stage {live_stage}, the replay {s}");
    }
    // Timing: the live audit's times count from the first slot sent, the replay's from the
    // capture's first frame (dumpcap started with the lab, before the guard): shift by the first
    // GTP-U frame's time in the capture (tshark says where it is).
    let rows = labkit::oracle::tshark_fields(&capture, &["frame.time_relative"], Some("gtp")).expect("tshark");
    let first_gtp: f64 = rows.first().and_then(|r| r.first()).and_then(|t| t.parse().ok()).expect("a GTP-U frame");
    let first = |v: &mut dyn Iterator<Item = f64>| v.fold(f64::INFINITY, f64::min);
    let live_t = first(&mut live.audit.iter().filter(|a| a.action == "set_device_stage").map(|a| a.t_s));
    let replay_t = first(&mut r.decisions.iter().filter(|d| d.action == "set_device_stage").map(|d| d.t_s - first_gtp));
    eprintln!("first stage: live {live_t:.3} s, replay {replay_t:.3} s after the first G-PDU");
    // A tick (200 ms) of alignment, and the live sender's own lateness against its schedule.
    assert!((live_t - replay_t).abs() <= 0.5, "first stage live at {live_t:.3} s, replayed at {replay_t:.3} s");
    let attack = plan.devices.iter().filter(|d| d.class == labkit::population::Class::Attack).count();
    assert_eq!(replay_staged.len(), attack, "exactly the flooding devices");
}

/// The N2 lab's registration storm (`lab/scenarios/n2_storm.toml`, ~30 s) run live with dumpcap on
/// the RAN side of the N2 veth, then replayed with the run's own `guard.toml` and `n2.toml`: the
/// replay's N2 controller answers the storm as the live one did (its first response, the same
/// action on the same gNB; no gNB's setups limited in either), without calling the hook.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn n2_lab_capture_replays_to_the_live_responses() {
    assert_root("replay_lab::n2_lab_capture_replays_to_the_live_responses");
    use labkit::n2lab::{run_scenario_captured, spec::N2Scenario, RunOpts as N2RunOpts};
    let sc = N2Scenario::read(&labkit::guard_bin::workspace().join("lab/scenarios/n2_storm.toml"))
        .expect("the storm scenario parses");
    let out = TempDir::new("replay-lab-n2").expect("temp dir");
    let opts = N2RunOpts { guard_bin: labkit::guard_bin::for_test(), out: out.path().to_owned(), verbose: true };
    let capture = out.path().join("ran-n2.pcapng");
    let live = run_scenario_captured(&sc, &opts, Some(&capture)).expect("the live N2 run");
    let live_audit = replay_check::read_jsonl(&live.dir.join("audit.jsonl"));
    let o = Options {
        capture,
        config: live.dir.join("guard.toml"),
        compare: None,
        n2_config: Some(live.dir.join("n2.toml")),
        local: Vec::new(),
        out: out.path().join("replay"),
        pacing: Pacing::AsFastAsPossible,
    };
    let n2 = replay::replay(&o, &mut Quiet).expect("the replay").n2.expect("an N2 report");
    assert!(n2.capture.complete, "{:?}", n2.capture.error);
    let (lr, rr) = (replay_check::n2_responses(&live_audit), replay_check::n2_responses(&n2.decisions));
    eprintln!("live responses:   {lr:?}\nreplay responses: {rr:?}\nlive hook: {:?}", live.responses.len());
    assert!(!lr.is_empty(), "the live guard answered the storm");
    assert_eq!(rr.first(), lr.first(), "the replay's first response is the live one");
    assert_eq!(
        replay_check::distinct(&rr),
        replay_check::distinct(&lr),
        "the same kinds of response on the same targets"
    );
    // The storm is registrations in DATA on established associations, not association setup:
    // neither run may limit a gNB's setups (that would answer a device storm by cutting its
    // gNB's re-establishment).
    let staged = |v: &[serde_json::Value]| replay_check::n2_peer_stages(v).into_keys().collect::<Vec<_>>();
    assert!(staged(&live_audit).is_empty(), "no peer given a setup stage live: {:?}", staged(&live_audit));
    assert!(staged(&n2.decisions).is_empty(), "no peer given a setup stage replayed: {:?}", staged(&n2.decisions));
    assert!(
        !n2.decisions.iter().any(|d| d["action"] == "n2_hook_failed"),
        "a replay never calls the hook, so it never fails"
    );
}
