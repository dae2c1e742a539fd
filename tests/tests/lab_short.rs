//! The lab end to end, short: a small infected-flood scenario through a real veth lab, with the
//! real `guard` binary as a subprocess (`guard --netns CORE run ...`), real packets from the RAN
//! namespace's raw socket and the sink's counts; then the scores are asserted. The naive cell cap
//! runs on the same schedule for the side-by-side check. About 35 s.
//!
//! Also: the frames every shipped scenario sends (templates, including the random-TEID scan's
//! rewritten TEIDs) are dissected by tshark, so the lab's traffic stays oracle-checked.

use std::net::{IpAddr, Ipv6Addr};

use labkit::oracle::{tshark_fields, TempDir};
use labkit::pcap::write_pcap;
use labkit::population::{scan_teid, EdgeKind, MSG_ECHO_REQUEST, MSG_ERROR_INDICATION, TEID_OFFSET_V4};
use labkit::scenario::{scenario_files, Scenario};
use labkit::short_lab::{run_short, short_scenario, SHORT_FLOOD_POPULATIONS};
use labkit::{assert_root, Lab};

/// The short flood's header and checks; its devices are `SHORT_FLOOD_POPULATIONS` (200 devices; at
/// 5 s, 5% of the meters (8) flood at 400 pps each). Time is as in the full lab (200 ms ticks, 4 s
/// warm-up); the run just ends sooner.
const SHORT: &str = r#"
name = "short_flood"
title = "Short infected flood (test)"
duration_s = 13
onset_s = 5
gnbs = 2
seed = 11

[expect]
benign_delivery = 0.99
no_benign_staged = true
no_cell_or_host_stage = true
mitigate_within_s = 5
attack_dropped = 0.95
naive_worse_by = 0.05

"#;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn short_flood_end_to_end() {
    assert_root("lab_short::short_flood_end_to_end");
    let (sc, plan) = short_scenario(&format!("{SHORT}{SHORT_FLOOD_POPULATIONS}"));
    let run = run_short(&sc, &plan, "lab-short", true);
    let (g, gs, ns) = (&run.guard, &run.scores, run.naive.as_ref().expect("the naive run"));

    // Every device sent, and the sink saw traffic of every device (an attacker's too: its flood
    // passes until the controller stages it).
    assert_eq!(g.device_sent.len(), plan.devices.len());
    for (i, (&sent, &delivered)) in g.device_sent.iter().zip(&g.device_delivered).enumerate() {
        assert!(
            sent > 0 && delivered > 0,
            "device {i} ({}): sent {sent}, delivered {delivered}",
            plan.devices[i].population
        );
    }
    assert!(gs.benign_sent > 1000 && gs.attack_sent > 10_000, "too little traffic: {gs:?}");
    // The guard's audit log was read and records the flood decisions.
    assert!(
        g.audit.iter().any(|a| a.action == "set_device_stage" && a.reason == "flood"),
        "no flood decision in the audit log: {:?}",
        g.audit
    );
    assert_eq!(gs.attack_devices_staged, gs.attack_devices, "every flooding device is staged");
    assert!(gs.max_device_stage >= 1);
    assert!(gs.guard_cpu_s.is_some(), "controller CPU was measured");

    run.assert_checks(6);
    // And the numbers behind them, directly.
    assert!(gs.benign_delivery.is_some_and(|x| x >= 0.99), "{gs:?}");
    assert!(gs.benign_staged.is_empty(), "{:?}", gs.benign_staged);
    assert_eq!((gs.max_cell_stage, gs.max_host_stage), (0, 0));
    assert!(gs.attack_dropped_after_grace.is_some_and(|x| x >= 0.95), "{gs:?}");
    assert!(gs.time_to_mitigate_s.is_some_and(|t| t <= 5.0), "{gs:?}");
    assert!(ns.benign_delivery.unwrap_or(1.0) + 0.05 <= gs.benign_delivery.unwrap_or(0.0), "naive {ns:?}");
}

fn num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn every_scenario_sends_frames_tshark_agrees_with() {
    assert_root("lab_short::every_scenario_sends_frames_tshark_agrees_with");
    let dir = labkit::guard_bin::workspace().join("lab/scenarios");
    let files = scenario_files(&dir).expect("scenario files");
    assert!(files.len() >= 7, "the seven scenarios of issue 4: {files:?}");
    let tmp = TempDir::new("lab-tshark").expect("temp dir");
    for f in files {
        let sc = Scenario::load(&f).expect("scenario loads");
        let plan = sc.plan().expect("plan");
        let lab = Lab::builder().gnbs(plan.gnbs).build().expect("lab");
        let templates = plan.templates(&lab);
        let bases = plan.bases(&lab);
        let mut frames = Vec::new();
        // Per frame: TEID, message type, outer source and destination, and the inner source
        // (`None`: no inner IP source to check; a non-IP T-PDU may read as anything).
        let mut want: Vec<(u64, u64, String, String, Option<IpAddr>)> = Vec::new();
        for (i, v) in plan.variants.iter().enumerate() {
            let d = &plan.devices[v.device];
            let gnb = lab.gnb_v4[d.gnb].to_string();
            let core = d.n3.to_string();
            let ue = Some(IpAddr::V4(d.ue));
            match (d.edge, &bases[i]) {
                (Some(EdgeKind::Echo), _) => want.push((0, u64::from(MSG_ECHO_REQUEST), gnb, core, None)),
                (Some(EdgeKind::ErrInd), _) => want.push((0, u64::from(MSG_ERROR_INDICATION), gnb, core, None)),
                (Some(EdgeKind::Scan), _) => {
                    let t = scan_teid(i as u32 + 1);
                    let mut f = templates[i].clone();
                    f[TEID_OFFSET_V4..TEID_OFFSET_V4 + 4].copy_from_slice(&t.to_be_bytes());
                    frames.push(f);
                    want.push((u64::from(t), 255, gnb, core, ue));
                    continue;
                }
                (None, None) => want.push((u64::from(d.teid), 255, gnb, core, ue)),
                // A session variant (issue 17): its first G-PDUs (the Router Solicitation, both
                // families, framed and forged sources), one a second, across privacy rotations.
                (None, Some(base)) => {
                    for k in 0..12u64 {
                        let t = d.segments[v.segment].from_s + k as f64;
                        let (pkt, f) = plan.variant_frame(base, i, k, t);
                        frames.push(f);
                        want.push((u64::from(d.teid), 255, gnb.clone(), core.clone(), pkt.src()));
                    }
                    continue;
                }
            }
            frames.push(templates[i].clone());
        }
        let pcap = tmp.join(&format!("{}.pcap", sc.name));
        write_pcap(&pcap, &frames).expect("pcap");
        let rows =
            tshark_fields(&pcap, &["gtp.teid", "gtp.message", "ip.src", "ipv6.src", "ip.dst", "udp.dstport"], None)
                .expect("tshark");
        assert_eq!(rows.len(), frames.len(), "{}", sc.name);
        for (row, (teid, msg, outer, core, inner)) in rows.iter().zip(&want) {
            let col = |k: usize| row.get(k).map(String::as_str).unwrap_or("");
            let ctx = format!("{}: {row:?}", sc.name);
            assert_eq!(num(col(0)), Some(*teid), "TEID, {ctx}");
            assert_eq!(num(col(1)), Some(*msg), "message type, {ctx}");
            let srcs: Vec<&str> = col(2).split(',').collect();
            assert_eq!(srcs.first().copied(), Some(outer.as_str()), "outer source (the gNB), {ctx}");
            assert_eq!(col(4).split(',').next(), Some(core.as_str()), "outer destination (the N3 address), {ctx}");
            match inner {
                Some(IpAddr::V4(a)) => assert_eq!(srcs.get(1), Some(&a.to_string().as_str()), "inner source, {ctx}"),
                Some(IpAddr::V6(a)) => {
                    let got: Option<Ipv6Addr> = col(3).split(',').next().and_then(|s| s.parse().ok());
                    assert_eq!(got, Some(*a), "inner IPv6 source, {ctx}");
                }
                None => {}
            }
            assert!(col(5).split(',').any(|p| p == "2152"), "UDP 2152, {ctx}");
        }
    }
}
