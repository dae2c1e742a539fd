//! The N2 storm controller on the real data plane: InitialUEMessages from labkit's builder go
//! through `guard_n2` (BPF_PROG_TEST_RUN), which counts them per cell and device in its maps; the
//! controller (`guard::n2::controller::N2Controller`) samples those maps with a test clock (one
//! tick per round, no sleeping), and its responses reach an exec hook and the audit log.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aya::programs::{TestRun, TestRunOptions};
use guard::audit::{read_audit, AuditLog};
use guard::config::n2::{N2Dataplane, N2File};
use guard::n2::controller::N2Controller;
use guard::n2::engine::{n2_device_str, N2Settings, ResponseAction, LEVEL_BARRING, LEVEL_DEVICES, LEVEL_OVERLOAD};
use guard::n2::hook::HookSpec;
use guard::n2::metrics::N2Metrics;
use guard::n2::{self, LoadOpts};
use guard_common::abi_n2::N2DeviceKey;
use labkit::assert_root;
use labkit::bpf::{pin_to_current_cpu, PinScope, XDP_PASS};
use labkit::netns::unique_name;
use labkit::sctp_frames::{ngap::InitialUeMessage, Chunk, SctpFrame};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 12);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);

/// A temporary directory, removed on drop (also when a test panics).
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Cells 0-2 on gNB A, 3-5 on gNB B.
fn initial_ue(cell: u64, ran_ue_id: u32, tmsi: u32) -> Vec<u8> {
    let gnb = if cell < 3 { GNB_A } else { GNB_B };
    let m = InitialUeMessage::nr(ran_ue_id, 0x100 + cell).s_tmsi(1, 1, tmsi).encode();
    SctpFrame::ngap().v4(gnb, AMF).vtag(7).chunk(Chunk::ngap(ran_ue_id, &m)).build()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_storm_controller_answers_a_storm_measured_by_the_data_plane() {
    assert_root("n2_controller::the_storm_controller_answers_a_storm_measured_by_the_data_plane");
    pin_to_current_cpu().expect("pin to a CPU");
    let tmp = Tmp(std::env::temp_dir().join(unique_name("og-n2ctl")));
    std::fs::create_dir_all(&tmp.0).expect("tmp dir");
    let hook_out = tmp.0.join("hook.jsonl");
    let audit_path = tmp.0.join("audit.jsonl");

    let scope = PinScope::new("n2ctl");
    let dp = N2Dataplane::default();
    let opts = LoadOpts { max_devices: 8192, max_cells: 64, max_peers: 16 };
    let (mut loaded, mut maps) = n2::load(&scope.pins, &opts, &dp.config().expect("config")).expect("load guard_n2");

    // Smaller thresholds than the defaults so that the test runs in a few hundred rounds.
    let detect = N2Settings {
        warmup_windows: 5,
        device_window_s: 20.0,
        persist_windows: 2,
        min_offenders_barring: 20,
        min_offenders_overload: 50,
        escalate_windows: 3,
        quiet_windows: 5,
        refresh_s: 0.0,
        ..N2Settings::default()
    };
    let script = format!("cat >> {}", hook_out.display());
    let file = N2File {
        detect,
        hook: Some(HookSpec::Exec { command: vec!["/bin/sh".into(), "-c".into(), script], timeout_ms: 5000 }),
        ..N2File::default()
    };
    let mut ctl = N2Controller::new(&file, AuditLog::open(&audit_path).expect("audit"), N2Metrics::default())
        .expect("controller");

    let prog = loaded.program().expect("guard_n2");
    let run = |frame: &[u8]| {
        let r = prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).expect("test run");
        assert_eq!(r.return_value, XDP_PASS, "InitialUEMessages are never dropped");
    };
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut bg = 0u32;
    let mut responses = Vec::new();
    let mut round = 0u64;
    let mut step = |storm: bool, ctl: &mut N2Controller, responses: &mut Vec<_>| {
        round += 1;
        // Background: one new device per cell per round (a baseline of 1/s per cell).
        for cell in 0..6 {
            bg += 1;
            run(&initial_ue(cell, bg, 0x1000_0000 + bg));
        }
        // The storm: 60 devices in cells 0 and 1 (gNB A), each registering every 4 rounds.
        if storm {
            for i in 0..60u32 {
                if (u64::from(i) + round) % 4 == 0 {
                    run(&initial_ue(u64::from(i % 2), 50_000 + i, i));
                }
            }
        }
        responses.extend(ctl.tick(&mut maps, round * SEC, wall));
    };
    for _ in 0..30 {
        step(false, &mut ctl, &mut responses);
    }
    assert!(responses.is_empty(), "quiet background: {responses:?}");
    for _ in 0..90 {
        step(true, &mut ctl, &mut responses);
    }
    let seen: Vec<(ResponseAction, u8)> = responses.iter().map(|r| (r.action, r.level)).collect();
    assert_eq!(
        seen,
        vec![
            (ResponseAction::Advise, LEVEL_DEVICES),
            (ResponseAction::Advise, LEVEL_BARRING),
            (ResponseAction::OverloadStart, LEVEL_OVERLOAD)
        ],
        "the controller's view: {:?}",
        ctl.engine().status()
    );
    // The devices are the storm's, identified by the 5G-S-TMSI the data plane read.
    let want: std::collections::BTreeSet<String> =
        (0..60).map(|i| n2_device_str(&N2DeviceKey::five_g_s_tmsi(1, 1, i))).collect();
    let got: std::collections::BTreeSet<String> = responses[0].devices.iter().map(|d| d.id.clone()).collect();
    assert_eq!(got, want);
    let o = responses[2].overload.as_ref().expect("overload");
    assert_eq!(o.gnbs, vec![GNB_A.to_string()], "gNB B is not part of the storm");
    let barring = &responses[1].access_barring;
    assert!(!barring.is_empty(), "the barring advice names cells");
    assert!(barring.iter().all(|b| b.gnb == GNB_A.to_string()), "only gNB A's cells are barred: {barring:?}");

    // The storm ends: overload stop, then back down to clear.
    responses.clear();
    for _ in 0..20 {
        step(false, &mut ctl, &mut responses);
    }
    let seen: Vec<ResponseAction> = responses.iter().map(|r| r.action).collect();
    assert_eq!(seen, vec![ResponseAction::OverloadStop, ResponseAction::Advise, ResponseAction::Clear]);

    // Every response reached the hook as one JSON line, and the audit log.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&hook_out)
        .expect("hook output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let actions: Vec<&str> = lines.iter().filter_map(|v| v["action"].as_str()).collect();
    assert_eq!(actions, ["advise", "advise", "overload_start", "overload_stop", "advise", "clear"]);
    assert!(lines.iter().all(|v| v["version"] == 1 && v["schema"] == "overload-guard/n2-response"));
    let audit = read_audit(&audit_path).expect("audit");
    assert_eq!(audit.iter().filter(|r| r["action"] == "n2_overload_start").count(), 1);
    assert!(audit.iter().any(|r| r["action"] == "n2_classified" && r["reason"] == "registration_storm"));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_init_flood_is_staged_by_the_controller_and_shed_by_the_data_plane() {
    assert_root("n2_controller::an_init_flood_is_staged_by_the_controller_and_shed_by_the_data_plane");
    pin_to_current_cpu().expect("pin to a CPU");
    let tmp = Tmp(std::env::temp_dir().join(unique_name("og-n2setup")));
    std::fs::create_dir_all(&tmp.0).expect("tmp dir");
    let audit_path = tmp.0.join("audit.jsonl");
    let scope = PinScope::new("n2setup");
    let dp = N2Dataplane::default();
    let opts = LoadOpts { max_devices: 1024, max_cells: 64, max_peers: 16 };
    let (mut loaded, mut maps) = n2::load(&scope.pins, &opts, &dp.config().expect("config")).expect("load guard_n2");
    let mut ctl =
        N2Controller::new(&N2File::default(), AuditLog::open(&audit_path).expect("audit"), N2Metrics::default())
            .expect("controller");
    let prog = loaded.program().expect("guard_n2");
    let run = |frame: &[u8]| {
        prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).expect("test run").return_value
    };
    let gnb_c = Ipv4Addr::new(10, 100, 0, 13);
    let init = SctpFrame::ngap().v4(gnb_c, AMF).vtag(0).chunk(Chunk::init(0x5555, 1)).build();
    let data = initial_ue(0, 1, 1);
    let data_c = {
        let m = InitialUeMessage::nr(9, 0x100).encode();
        SctpFrame::ngap().v4(gnb_c, AMF).vtag(7).chunk(Chunk::ngap(9, &m)).build()
    };
    // The stage entries' expiry is compared with the data plane's clock: the test clock starts
    // from CLOCK_MONOTONIC and advances one second per round.
    let base = guard::clock::monotonic_ns();
    let peer_c = guard_common::abi::L3Addr::v4(gnb_c.octets());
    let mut drops_per_round = Vec::new();
    for round in 1..=20u64 {
        // 50 INITs per round from gNB C (well above the stage-0 profile of 10/s, burst 20).
        let drops = (0..50).filter(|_| run(&init) != XDP_PASS).count();
        drops_per_round.push(drops);
        // gNB A's traffic and gNB C's own DATA are never touched.
        assert_eq!(run(&data), XDP_PASS);
        assert_eq!(run(&data_c), XDP_PASS, "DATA of a setup-limited peer passes");
        ctl.tick(&mut maps, base + round * SEC, SystemTime::now());
    }
    // Rounds 1-4: evidence only (the first sample, then `trigger_windows` of it).
    assert!(drops_per_round[..4].iter().all(|d| *d == 0), "{drops_per_round:?}");
    assert!(drops_per_round[4..].iter().all(|d| *d > 0), "{drops_per_round:?}");
    let e = maps.peer_stage(&peer_c).expect("map").expect("gNB C staged");
    assert_eq!(e.stage, guard_common::abi::STAGE_STRICT, "escalated after 10 windows of drops at stage 1");
    assert!(maps.peer_stage(&guard_common::abi::L3Addr::v4(GNB_A.octets())).expect("map").is_none());
    let audit = read_audit(&audit_path).expect("audit");
    let stages: Vec<u64> = audit
        .iter()
        .filter(|r| r["action"] == "n2_set_peer_stage")
        .filter_map(|r| r["detail"]["stage"].as_u64())
        .collect();
    assert_eq!(stages, vec![1, 2]);
    assert_eq!(ctl.setup_ladder().stage_of(&peer_c), guard_common::abi::STAGE_STRICT);
}

/// Fleet mode's known gNBs on the real data plane (docs/fleet.md "Known gNB addresses"): gNB A
/// sends an NG Setup and the AMF talks to its association (a SACK through the egress classifier,
/// `N2_ASSOC`); gNB B sends an NG Setup the AMF never answers (what a forger spoofing B's address
/// can do). The controller learns A alone, publishes it in its mailbox, and its setup ladder
/// treats A and the fleet's addresses as known, B not. Without the mailbox nothing is learned.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_controller_learns_a_gnb_from_a_real_session_and_takes_the_fleets() {
    use guard::n2::fleet_link::GnbExchange;
    use guard_common::abi::L3Addr;
    assert_root("n2_controller::the_controller_learns_a_gnb_from_a_real_session_and_takes_the_fleets");
    pin_to_current_cpu().expect("pin to a CPU");
    let tmp = Tmp(std::env::temp_dir().join(unique_name("og-n2gnbs")));
    std::fs::create_dir_all(&tmp.0).expect("tmp dir");
    let scope = PinScope::new("n2gnbs");
    let dp = N2Dataplane::default();
    let opts = LoadOpts { max_devices: 1024, max_cells: 64, max_peers: 16 };
    let (mut loaded, mut maps) = n2::load(&scope.pins, &opts, &dp.config().expect("config")).expect("load guard_n2");
    let controller = |name: &str| {
        N2Controller::new(&N2File::default(), AuditLog::open(&tmp.0.join(name)).expect("audit"), N2Metrics::default())
            .expect("controller")
    };
    let gnbs = std::sync::Arc::new(GnbExchange::new(16, 4));
    let mut ctl = controller("audit.jsonl").with_gnbs(gnbs.clone());
    let mut alone = controller("alone.jsonl");
    let setup = |gnb: Ipv4Addr| {
        let pdu = labkit::sctp_frames::ngap::ng_setup_request(u32::from(gnb.octets()[3]), "gnb");
        SctpFrame::ngap().v4(gnb, AMF).vtag(7).chunk(Chunk::ngap(1, &pdu)).build()
    };
    let prog = loaded.program().expect("guard_n2");
    for gnb in [GNB_A, GNB_B] {
        let r = prog.test_run(TestRunOptions { data_in: Some(&setup(gnb)), ..Default::default() }).expect("test run");
        assert_eq!(r.return_value, XDP_PASS, "an NG Setup passes");
    }
    // The AMF's SACK to gNB A's association (egress).
    let sack = SctpFrame::ngap().v4(AMF, GNB_A).vtag(7).chunk(Chunk::sack(1, &[], &[])).build();
    let egress = loaded.egress_program().expect("guard_n2_egress");
    egress.test_run(TestRunOptions { data_in: Some(&sack), ..Default::default() }).expect("test run egress");
    let (a, b, c) =
        (L3Addr::v4(GNB_A.octets()), L3Addr::v4(GNB_B.octets()), L3Addr::v4(Ipv4Addr::new(10, 100, 0, 99).octets()));
    // Another member's list: gNB C, learned there.
    gnbs.set_list("amf-2", vec![c], std::time::Instant::now(), Duration::from_secs(60));
    let now = guard::clock::monotonic_ns();
    ctl.tick(&mut maps, now, SystemTime::now());
    alone.tick(&mut maps, now, SystemTime::now());
    assert_eq!(gnbs.outgoing(), vec![a], "A learned and published; B (no association) not");
    let l = ctl.setup_ladder();
    assert!(l.knows(&a) && l.knows(&c) && !l.knows(&b), "own and the fleet's learned gNBs are known, B not");
    let l = alone.setup_ladder();
    assert!(!l.knows(&a) && !l.knows(&c), "without fleet mode the ladder is as before");
}
