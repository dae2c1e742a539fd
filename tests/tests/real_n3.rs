//! `real-n3`, bounded (issue 15, item 4): the guard in front of osmo-ggsn with sgsnemu instances
//! creating PDP contexts and pinging through it, one of them flooding; the peers' own statistics,
//! their Echo answers and tshark's reading of both captures are the oracles. About 80 s.
//!
//! The same run is issue 21's real-peer replay check (item 5): its RAN-side capture (dumpcap on
//! the RAN end of the N3 veth: what the sgsnemu instances sent before the guard saw it, and the
//! GGSN's replies) replayed by `guard replay` with the run's own guard.toml and the GGSN's address
//! as the host's own (`--local`: its replies never reach the guard's XDP program) must stage the
//! TEIDs the live guard staged, at the same stages, first staged within tick alignment of the
//! live times, and nothing else. A few seconds more; the lab is not run twice.
//!
//! Needs root and osmo-ggsn/sgsnemu, dumpcap, tshark (`cargo xtask setup`). It fails, never
//! skips, when any of them is missing: `run` refuses to start without them.

use guard::replay::{self, Options, Pacing, Quiet};
use labkit::oracle::TempDir;
use labkit::realpeers::RealOpts;
use labkit::replay_check::{self, n3_differences, TimeTolerance};

/// How far the replayed first stage of a device may be from the live one. Later: the ticks' phase
/// (the live ticks start with `guard run`, the replay's with the capture's first frame: less than
/// a tick) and a decision on the next tick (docs/replay.md, "Tick alignment"), with 50 ms of
/// margin. Earlier: the same, and the live guard's own lateness on a loaded machine (its
/// controller thread waiting for one of the 2 CPUs the flood's sender and XDP also use), which a
/// replay does not have: up to 1 s more, half the lab's own onset-to-stage target (2 s).
const FIRST_STAGE: TimeTolerance = TimeTolerance { early_s: 2.0 * TICK_S + 0.05 + 1.0, late_s: 2.0 * TICK_S + 0.05 };
/// The controller's tick in the lab's base configuration (`tests/src/scenario/config.rs`).
const TICK_S: f64 = 0.2;

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
    let replayed = replay_the_run(&out.path().join(labkit::real_n3::SCENARIO));
    assert!(!checks.is_empty(), "real-n3 reported no checks");
    let failed: Vec<String> =
        checks.iter().filter(|c| !c.pass).map(|c| format!("{}: {}", c.criterion, c.detail)).collect();
    assert!(failed.is_empty(), "real-n3 checks failed:\n{}", failed.join("\n"));
    assert!(
        replayed.is_empty(),
        "the replay of the run's capture differs from the live guard:\n{}",
        replayed.join("\n")
    );
}

/// Replay the run in `dir` (its `ran.pcap`, `guard.toml`, `audit.jsonl`, `report.json`) and
/// return how its staged devices differ from the live guard's (empty: they agree).
fn replay_the_run(dir: &std::path::Path) -> Vec<String> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report.json")).expect("JSON");
    let ggsn: std::net::IpAddr =
        report["ggsn"].as_str().and_then(|s| s.parse().ok()).expect("report.json names the GGSN's address");
    let o = Options {
        capture: dir.join("ran.pcap"),
        config: dir.join("guard.toml"),
        compare: None,
        n2_config: None,
        local: vec![ggsn],
        out: dir.join("replay"),
        pacing: Pacing::AsFastAsPossible,
    };
    let t0 = std::time::Instant::now();
    let r = replay::replay(&o, &mut Quiet).expect("the replay of the run's RAN capture").report;
    assert!(r.capture.complete, "the capture was read to its end: {:?}", r.capture.error);
    let live = replay_check::live_staged_file(&dir.join("audit.jsonl"));
    let rep = replay_check::replay_staged(&r);
    println!(
        "replay: {} frames read, {} replayed, {} sent by the GGSN (not replayed), in {:.1} s",
        r.capture.frames_read,
        r.capture.frames_replayed,
        r.capture.egress,
        t0.elapsed().as_secs_f64()
    );
    for (dev, l) in &live {
        let rp = rep.get(dev);
        println!(
            "  {dev}: live stage {} at {:.3}; replay stage {:?} at {:+.3} s from live",
            l.stage,
            l.first_unix_s,
            rp.map(|r| r.stage),
            rp.map_or(f64::NAN, |r| r.first_unix_s - l.first_unix_s)
        );
    }
    assert!(!live.is_empty(), "the live guard staged nothing: the comparison would prove nothing");
    assert!(r.capture.egress > 0, "the GGSN's replies were told apart by --local");
    let mut diff = n3_differences(&live, &rep, 0, FIRST_STAGE);
    // What guard_n3 let through: live, the frames to the GGSN on the CORE side of the veth
    // (dumpcap behind the guard's XDP program, read by tshark); replayed, the frames it passed.
    // They may differ by what the flood sends between the live and the replayed first stage,
    // and in a tick more.
    let rows =
        labkit::oracle::tshark_fields(&dir.join("core.pcap"), &["frame.number"], Some(&format!("ip.dst == {ggsn}")))
            .expect("tshark on the CORE capture");
    let live_passed = rows.len() as u64;
    let plan = &report["plan"];
    let flood_pps = plan["flood_pps"].as_u64().unwrap_or(0) * plan["flood_contexts"].as_u64().unwrap_or(0);
    let apart_s = live
        .iter()
        .filter_map(|(d, l)| Some((rep.get(d)?.first_unix_s - l.first_unix_s).abs()))
        .fold(0.0, f64::max)
        .min(FIRST_STAGE.early_s);
    let slack = (flood_pps as f64 * (apart_s + TICK_S)) as u64;
    println!(
        "passed to the GGSN: live {live_passed} (CORE capture), replay {} (tolerance {slack}: {flood_pps}/s for \
         {apart_s:.3} s between the first stages and a tick); replay dropped {}",
        r.actions.passed, r.actions.dropped
    );
    if live_passed == 0 || live_passed.abs_diff(r.actions.passed) > slack {
        diff.push(format!("passed: live {live_passed}, replay {} (tolerance {slack})", r.actions.passed));
    }
    diff
}
