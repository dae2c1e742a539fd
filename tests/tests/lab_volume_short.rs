//! The volume flood end to end, short (issue 27; the full scenario is
//! `lab/scenarios/10_volume_flood.toml`, `cargo xtask lab --scenario volume-flood`): through a
//! real veth lab with the real `guard` binary, a few devices send 1400-octet T-PDUs at a packet
//! rate well inside the packet profile, beside benign meters and sessions of small packets. About
//! 30 s.
//!
//! What makes it a test of the byte path and nothing else: the uploaders' packet rate (15-25 pps)
//! is under the stage-0 packet profile (200 pps) and under the shape and strict stages' packet
//! rates (60 and 50 pps here, where the lab's base ladder has 5 and 1), and quarantine is out of reach
//! within the run. So the engine can only find them by their octets (16 kbit/s byte profile,
//! they send 170-280 kbit/s), and the only thing that can cut them is the stages' byte rate. The
//! checks: each uploader staged first for `volume_flood`, over 80% of its octets dropped from
//! onset + 5 s, benign delivery ≥ 99%, no benign device staged, no cell or host stage.

use labkit::assert_root;
use labkit::population::{Class, Profile};
use labkit::short_lab::{run_short, short_scenario};

const SHORT: &str = r#"
name = "short_volume_flood"
title = "Short volume flood (test)"
duration_s = 14
onset_s = 5
gnbs = 2
seed = 27

[guard.dataplane]
observe = { pps = 200, burst = 400, rate = "16kbit/s" }

[guard.ladder.shape]
rate_pps = 60
burst = 60

[guard.ladder.strict]
rate_pps = 50
burst = 50

[guard.ladder.quarantine]
escalate_windows = 1000

[expect]
benign_delivery = 0.99
no_benign_staged = true
no_cell_or_host_stage = true

[[expect.population]]
name = "uploaders"
staged_reason = "volume_flood"
octets_dropped = 0.8

[[population]]
name = "meters"
count = 160
teid_base = 0x00100000
ue_base = "10.45.0.0"
profile = { kind = "periodic", period_s = [0.5, 1.5], jitter = 0.1, burst = [1, 3] }

[[population]]
name = "people"
count = 40
teid_base = 0x00200000
ue_base = "10.46.0.0"
dst = "203.0.113.80"
profile = { kind = "session", rate_pps = [4, 12], on_s = [1, 2], off_s = [1, 3] }

[[population]]
name = "uploaders"
count = 8
class = "attack"
teid_base = 0x00300000
ue_base = "10.47.0.0"
dst = "192.0.2.200"
start_s = 5
payload = 1372
profile = { kind = "flood", pps = [15, 25] }
"#;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_volume_flood_is_staged_by_its_octets_and_cut_by_the_byte_rate() {
    assert_root("lab_volume_short::a_volume_flood_is_staged_by_its_octets_and_cut_by_the_byte_rate");
    let (sc, plan) = short_scenario(SHORT);
    // The premise: every uploader's packet rate is inside every packet limit of the run.
    for d in plan.devices.iter().filter(|d| d.class == Class::Attack) {
        for s in &d.segments {
            if let Profile::Flood { pps } = &s.profile {
                assert!(pps.max() < 50.0, "an uploader at {pps:?} pps would meet a packet limit");
            }
        }
    }
    let run = run_short(&sc, &plan, "lab-volume-short", false);
    let gs = &run.scores;

    assert!(gs.benign_sent > 1000 && gs.attack_sent > 500, "too little traffic: {gs:?}");
    let up = gs.populations.iter().find(|p| p.name == "uploaders").expect("the uploaders' score");
    assert_eq!(up.tpdu_octets, Some(1400), "1400-octet T-PDUs");
    run.assert_checks(6);
    // And the numbers behind them, directly.
    assert_eq!(up.staged_by_reason.get("volume_flood").copied(), Some(up.devices), "{:?}", up.staged_by_reason);
    assert!(gs.benign_staged.is_empty(), "{:?}", gs.benign_staged);
    assert!(gs.benign_delivery.is_some_and(|x| x >= 0.99), "{gs:?}");
    assert!(gs.max_device_stage < 3, "quarantine drops everything, whatever the byte rate: {gs:?}");
    assert_eq!((gs.max_cell_stage, gs.max_host_stage), (0, 0));
    let (sent, delivered) = up.octets_after().expect("one T-PDU size");
    assert!(delivered * 5 <= sent, "{delivered} of {sent} octets delivered from onset + 5 s");
}
