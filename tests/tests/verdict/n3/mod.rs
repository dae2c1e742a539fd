//! Verdict tests of the N3 XDP program through BPF_PROG_TEST_RUN (DESIGN §5): crafted frames
//! (labkit's spec-written builder, not the guard's parser) go through the real program loaded in
//! the kernel, and each test checks what an operator would check: the XDP action, the verdict
//! counter that moved, and the per-device / per-gNB state in the maps.
//!
//! Every test loads its own program instance with its own pinned maps (removed on drop), so they
//! run in parallel without sharing state.

mod bytes;
mod chain;
mod cpus;
mod echo;
mod fragments;
mod sessions;
mod sources;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use guard::clock::monotonic_ns;
use guard_common::{
    abi::{
        CellCounts, CellStageEntry, DeviceKey, Event, GuardConfig, Limit, StageEntry, BIND_V4, BIND_V6,
        EVENT_DEVICE_OVER_LIMIT, EVENT_ERR_IND_LIMITED, MAP_N3_EVENTS, PROT_ALL, PROT_ANTISPOOF, PROT_MALFORMED,
        PROT_QUARANTINE, QFI_NONE, STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT,
        STAT_EVENTS_SENT, STAT_EVENTS_SUPPRESSED, STAT_MAP_UPDATE_FAILED,
    },
    parse::Malformed,
    policy::Verdict,
    rate::CLOCK_STEP_NS,
};
use labkit::assert_root;
use labkit::bpf::{cell_cap_entry, hex, l3, l3_v4, l3_v6, stage_entry, Guard, XDP_DROP, XDP_PASS};
use labkit::frames::{self, GtpFrame, EXT_PDU_SESSION_CONTAINER, EXT_UDP_PORT};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 12);
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const GNB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11);
const CORE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
const UE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);

/// Every protection enforced, every limit unlimited: only what a test adds can drop.
fn enforce_all() -> GuardConfig {
    GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() }
}

fn load(cfg: &GuardConfig) -> Guard {
    Guard::load(cfg).unwrap_or_else(|e| panic!("loading the guard: {e:#}"))
}

fn gpdu(teid: u32) -> GtpFrame {
    GtpFrame::gpdu(teid).outer_v4(GNB_A, CORE).inner_v4(UE, Ipv4Addr::new(192, 0, 2, 10))
}

fn quarantine(g: &mut Guard, teid: u32, ttl_ns: u64) {
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_QUARANTINE, 0, 0, ttl_ns));
}

// ---------------------------------------------------------------------------------------------
// GTP-U message types
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn each_message_type_has_a_verdict_and_its_cell_counter() {
    assert_root("verdict_n3::each_message_type_has_a_verdict_and_its_cell_counter");
    let mut g = load(&enforce_all());
    let gnb = IpAddr::V4(GNB_A);
    type Field = fn(&guard_common::abi::CellState) -> u64;
    let cases: Vec<(&str, GtpFrame, Verdict, Field)> = vec![
        ("G-PDU", gpdu(0x10), Verdict::PassGpdu, |c| c.gpdu),
        ("Echo Request", GtpFrame::echo_request(1), Verdict::PassSignalling, |c| c.echo_req),
        ("Echo Response", GtpFrame::echo_response(1), Verdict::PassSignalling, |c| c.echo_resp),
        ("Error Indication", GtpFrame::error_indication(0x10, IpAddr::V4(CORE)), Verdict::PassSignalling, |c| {
            c.err_ind
        }),
        ("End Marker", GtpFrame::end_marker(0x10), Verdict::PassSignalling, |c| c.end_marker),
        (
            "Supported Extension Headers Notification",
            GtpFrame::supported_ext_headers(&[EXT_PDU_SESSION_CONTAINER]),
            Verdict::PassSignalling,
            |c| c.other_msgs,
        ),
        ("Tunnel Status (253)", GtpFrame::message(253, 0x10), Verdict::PassSignalling, |c| c.other_msgs),
    ];
    for (name, f, verdict, field) in cases {
        let frame = f.outer_v4(GNB_A, CORE).build();
        let before = g.cell(gnb).unwrap_or_default();
        let d = g.expect(name, &frame, verdict);
        assert!(d.moved_malformed().is_empty(), "{name}: counted malformed {:?}", d.moved_malformed());
        let after = g.cell(gnb).unwrap_or_else(|| panic!("{name}: no N3_CELLS entry for {gnb}"));
        assert_eq!(after.packets, before.packets + 1, "{name}: cell packets");
        assert_eq!(after.bytes, before.bytes + frame.len() as u64, "{name}: cell bytes");
        assert_eq!(field(&after), field(&before) + 1, "{name}: its per-cell counter did not move: {after:?}");
        assert_eq!(after.dropped, 0, "{name}: cell dropped");
    }
    let c = g.cell(gnb).expect("cell");
    assert_eq!((c.gpdu, c.echo_req, c.echo_resp, c.err_ind, c.end_marker, c.other_msgs), (1, 1, 1, 1, 1, 2));
    // Only the G-PDU made a device; the signalling messages (TEID 0 or an End Marker) did not.
    assert_eq!(g.device_count(), 1, "only the G-PDU's TEID is a device");
    assert_eq!(g.teid(0x10).expect("device 0x10").packets, 1, "the End Marker is not counted as device traffic");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn unknown_message_type_is_malformed() {
    assert_root("verdict_n3::unknown_message_type_is_malformed");
    let mut g = load(&enforce_all());
    for t in [0u8, 3, 100, 252] {
        let frame = GtpFrame::message(t, 0x99).build();
        let d = g.expect(&format!("message type {t}, enforced"), &frame, Verdict::DropMalformed);
        assert_eq!(d.moved_malformed(), vec![(Malformed::UnknownMessageType, 1)], "type {t}");
    }
    // Not enforced: counted, passed.
    g.write_config(&GuardConfig { enabled: PROT_ALL & !PROT_MALFORMED, ..enforce_all() });
    let frame = GtpFrame::message(100, 0x99).build();
    let d = g.expect("message type 100, malformed protection off", &frame, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::UnknownMessageType, 1)]);
    assert!(d.moved_shadow().is_empty());
    // Shadow: passed, and N3_SHADOW counts the would-be drop.
    g.write_config(&GuardConfig { shadow: PROT_MALFORMED, ..enforce_all() });
    let d = g.expect("message type 100, malformed protection in shadow", &frame, Verdict::PassMalformed);
    assert_eq!(d.moved_shadow(), vec![(Verdict::DropMalformed, 1)]);
    assert_eq!(g.device_count(), 0, "a malformed packet creates no device");
}

// ---------------------------------------------------------------------------------------------
// Device stages
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn observe_passes_and_records_the_device() {
    assert_root("verdict_n3::observe_passes_and_records_the_device");
    let mut g = load(&enforce_all());
    let frame = gpdu(0x20).qfi(5).build();
    for _ in 0..3 {
        g.expect("unstaged G-PDU", &frame, Verdict::PassGpdu);
    }
    // An explicit observe-stage entry changes nothing.
    g.set_stage(&DeviceKey::teid(0x20), &stage_entry(STAGE_OBSERVE, 0, 0, 60 * SEC));
    g.expect("G-PDU at stage observe", &frame, Verdict::PassGpdu);
    let d = g.teid(0x20).expect("device 0x20 in N3_DEVICES");
    assert_eq!(d.packets, 4);
    // A device counts its T-PDUs' octets (what its byte limits count), not the frames': the
    // default G-PDU's inner IPv4 (20) + UDP (8) + 32 octets of payload.
    assert_eq!(d.bytes, 4 * 60);
    assert_eq!(d.teid, 0x20);
    assert_eq!(d.cell, l3_v4(GNB_A));
    assert_eq!((d.bind_flags, d.bound_v4.to_ne_bytes()), (BIND_V4, UE.octets()), "the inner source is learned");
    assert_eq!(d.inner_dst, l3_v4(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(d.qfi, 5);
    assert_eq!((d.dropped, d.spoofed, d.over_limit), (0, 0, 0));
    assert!(d.last_seen_ns > 0 && d.last_seen_ns <= monotonic_ns());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn shape_admits_exactly_the_burst_then_drops() {
    assert_root("verdict_n3::shape_admits_exactly_the_burst_then_drops");
    let mut g = load(&enforce_all());
    let teid = 0x30;
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_SHAPE, 10, 3, 60 * SEC));
    let frame = gpdu(teid).build();
    let t0 = Instant::now();
    let verdicts: Vec<u32> = (0..10).map(|_| g.run(&frame).expect("run")).collect();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(100), "10 runs took {took:?}: too slow for a 10 pps check");
    assert_eq!(verdicts, [[XDP_PASS; 3].as_slice(), [XDP_DROP; 7].as_slice()].concat(), "burst 3 of 10 pps");
    g.expect("one more above the shape", &frame, Verdict::DropShape);
    let d = g.teid(teid).expect("device");
    assert_eq!(d.dropped, 8, "device dropped counter");
    assert_eq!(d.packets, 11, "dropped packets are still counted as the device's traffic");
    // 100 ms later, one token more.
    std::thread::sleep(Duration::from_millis(110));
    g.expect("one token after 100 ms", &frame, Verdict::PassGpdu);
    g.expect("and no more", &frame, Verdict::DropShape);
    // Another device is not shaped.
    g.expect("an unstaged device", &gpdu(0x31).build(), Verdict::PassGpdu);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn strict_drops_above_its_limit() {
    assert_root("verdict_n3::strict_drops_above_its_limit");
    let mut g = load(&enforce_all());
    let teid = 0x40;
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_STRICT, 1, 1, 60 * SEC));
    let frame = gpdu(teid).build();
    g.expect("first within 1 pps", &frame, Verdict::PassGpdu);
    for _ in 0..5 {
        g.expect("above 1 pps", &frame, Verdict::DropStrict);
    }
    assert_eq!(g.teid(teid).expect("device").dropped, 5);
    assert_eq!(g.cell(IpAddr::V4(GNB_A)).expect("cell").dropped, 5);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn quarantine_drops_until_expiry_then_decays() {
    assert_root("verdict_n3::quarantine_drops_until_expiry_then_decays");
    let mut g = load(&enforce_all());
    let teid = 0x50;
    let ttl = Duration::from_millis(200);
    quarantine(&mut g, teid, ttl.as_nanos() as u64);
    let set = Instant::now();
    let frame = gpdu(teid).build();
    for _ in 0..5 {
        g.expect("quarantined", &frame, Verdict::DropQuarantine);
    }
    assert!(set.elapsed() < ttl, "the quarantined runs took longer than the TTL");
    g.expect("another device", &gpdu(0x51).build(), Verdict::PassGpdu);
    // The controller never comes back to lift it: the entry expires on its own.
    std::thread::sleep(ttl + Duration::from_millis(50));
    for _ in 0..3 {
        g.expect("after expiry", &frame, Verdict::PassGpdu);
    }
    let d = g.teid(teid).expect("device");
    assert_eq!((d.packets, d.dropped), (8, 5));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn exempt_device_and_exempt_qfi_pass_a_quarantine() {
    assert_root("verdict_n3::exempt_device_and_exempt_qfi_pass_a_quarantine");
    let mut g = load(&GuardConfig { exempt_qfi: 1 << 9, ..enforce_all() });
    // Group exemption: the flag overrides the stage.
    let mut e = stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC);
    e.flags = STAGE_FLAG_EXEMPT;
    g.set_stage(&DeviceKey::teid(0x60), &e);
    g.expect("exempt device, quarantine stage", &gpdu(0x60).build(), Verdict::PassExempt);
    // An exempt flag that expired is no exemption (and its stage is no longer live either).
    let mut e = stage_entry(STAGE_QUARANTINE, 0, 0, 0);
    e.flags = STAGE_FLAG_EXEMPT;
    e.expires_ns = 1;
    g.set_stage(&DeviceKey::teid(0x61), &e);
    g.expect("expired exemption", &gpdu(0x61).build(), Verdict::PassGpdu);

    // QFI exemption: QFI 9 passes a quarantined device, other QFIs and no QFI do not.
    quarantine(&mut g, 0x62, 60 * SEC);
    g.expect("quarantined, exempt QFI 9", &gpdu(0x62).qfi(9).build(), Verdict::PassExempt);
    g.expect("quarantined, QFI 8", &gpdu(0x62).qfi(8).build(), Verdict::DropQuarantine);
    g.expect("quarantined, no QFI", &gpdu(0x62).build(), Verdict::DropQuarantine);
    g.expect("unstaged, exempt QFI 9", &gpdu(0x63).qfi(9).build(), Verdict::PassExempt);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn shadow_mode_passes_and_counts_would_drop() {
    assert_root("verdict_n3::shadow_mode_passes_and_counts_would_drop");
    let mut g = load(&GuardConfig { shadow: PROT_ALL, ..enforce_all() });
    quarantine(&mut g, 0x70, 60 * SEC);
    g.set_stage(&DeviceKey::teid(0x71), &stage_entry(STAGE_STRICT, 1, 1, 60 * SEC));
    let q = gpdu(0x70).build();
    for _ in 0..3 {
        let d = g.expect("quarantined, shadow", &q, Verdict::PassGpdu);
        assert_eq!(d.moved_shadow(), vec![(Verdict::DropQuarantine, 1)]);
    }
    let s = gpdu(0x71).build();
    let d = g.expect("strict, first", &s, Verdict::PassGpdu);
    assert!(d.moved_shadow().is_empty());
    let d = g.expect("strict, above, shadow", &s, Verdict::PassGpdu);
    assert_eq!(d.moved_shadow(), vec![(Verdict::DropStrict, 1)]);
    assert_eq!(g.teid(0x70).expect("device").dropped, 0, "shadow drops nothing");
    // Shadow on one protection only: the others still enforce.
    g.write_config(&GuardConfig { shadow: PROT_QUARANTINE, ..enforce_all() });
    let d = g.expect("quarantine in shadow", &q, Verdict::PassGpdu);
    assert_eq!(d.moved_shadow(), vec![(Verdict::DropQuarantine, 1)]);
    g.expect("strict still enforced", &s, Verdict::DropStrict);
    // A protection not enabled is not even counted.
    g.write_config(&GuardConfig { enabled: PROT_ALL & !PROT_QUARANTINE, ..enforce_all() });
    let d = g.expect("quarantine disabled", &q, Verdict::PassGpdu);
    assert!(d.moved_shadow().is_empty());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn cell_cap_and_host_cap_drop_as_last_resort() {
    assert_root("verdict_n3::cell_cap_and_host_cap_drop_as_last_resort");
    let mut g = load(&enforce_all());
    // Cell cap on gNB A: 10 pps, burst 2, over all its devices together.
    let cap = cell_cap_entry(10, 2, 60 * SEC);
    g.maps.set_cell_stage(&l3_v4(GNB_A), &cap).expect("set cell stage");
    g.expect("gNB A, device 1", &gpdu(0x80).build(), Verdict::PassGpdu);
    g.expect("gNB A, device 2", &gpdu(0x81).build(), Verdict::PassGpdu);
    for t in 0x82..0x86 {
        g.expect("gNB A above its cap", &gpdu(t).build(), Verdict::DropCellCap);
    }
    let b = |t| gpdu(t).outer_v4(GNB_B, CORE).build();
    for t in 0x90..0x94 {
        g.expect("gNB B has no cap", &b(t), Verdict::PassGpdu);
    }
    assert_eq!(g.cell(IpAddr::V4(GNB_A)).expect("cell A").dropped, 4);
    // "dropped: packets dropped for this device, any reason" (abi::DeviceState).
    for t in 0x82..0x86 {
        let d = g.teid(t).expect("a device dropped by the cell cap is still a known device");
        assert_eq!((d.packets, d.dropped), (1, 1), "TEID {t:#x} after a cell-cap drop");
    }
    // An expired cap no longer applies.
    g.maps.set_cell_stage(&l3_v4(GNB_A), &CellStageEntry { expires_ns: 1, ..cap }).expect("set cell stage");
    g.expect("gNB A, expired cap", &gpdu(0x86).build(), Verdict::PassGpdu);

    // Host cap: 10 pps burst 3 over everything, while live.
    let host = GuardConfig {
        host_cap: Limit::per_second(10, 3),
        host_cap_expires_ns: monotonic_ns() + 60 * SEC,
        ..enforce_all()
    };
    g.write_config(&host);
    let frames = [gpdu(0xa0).build(), b(0xa1), gpdu(0xa2).outer_v6(GNB_V6, CORE_V6).build()];
    for f in &frames {
        g.expect("within the host cap", f, Verdict::PassGpdu);
    }
    for f in &frames {
        g.expect("above the host cap", f, Verdict::DropHostCap);
    }
    assert_eq!(g.teid(0xa0).expect("device").dropped, 1, "a host-cap drop counts on the device");
    // Signalling is not G-PDU traffic and is not capped.
    g.expect("Echo Request under a host cap", &GtpFrame::echo_request(1).build(), Verdict::PassSignalling);
    // Expired one clock step ago: the data plane's coarse clock lags CLOCK_MONOTONIC by up to one
    // kernel tick, so an expiry takes effect at most that late (`rate::CLOCK_STEP_NS`).
    g.write_config(&GuardConfig { host_cap_expires_ns: monotonic_ns() - CLOCK_STEP_NS, ..host });
    g.expect("expired host cap", &frames[0], Verdict::PassGpdu);
}

// ---------------------------------------------------------------------------------------------
// Anti-spoofing, new-device limit, signalling limits
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn antispoof_learns_the_first_inner_source() {
    assert_root("verdict_n3::antispoof_learns_the_first_inner_source");
    let mut g = load(&enforce_all());
    let teid = 0xb0;
    let good = gpdu(teid).build();
    let spoof = gpdu(teid).inner_v4(Ipv4Addr::new(10, 45, 0, 99), Ipv4Addr::new(192, 0, 2, 10)).build();
    g.expect("first G-PDU learns", &good, Verdict::PassGpdu);
    assert_eq!(g.teid(teid).expect("device").bound_v4.to_ne_bytes(), UE.octets());
    g.expect("another inner source", &spoof, Verdict::DropSpoof);
    g.expect("another inner source again", &spoof, Verdict::DropSpoof);
    g.expect("the learned source still passes", &good, Verdict::PassGpdu);
    let d = g.teid(teid).expect("device");
    assert_eq!((d.spoofed, d.dropped, d.bound_v4.to_ne_bytes()), (2, 2, UE.octets()));
    // IPv6 UE on its own TEID learns a v6 binding (its /64); per family, so an IPv4 source on
    // the same session (IPv4v6, TS 23.501 §5.8.2.1) learns its own, and a second IPv4 source or
    // another /64 is then a spoof.
    let ue6: Ipv6Addr = "2001:db8:45::2".parse().expect("addr");
    let v6 = gpdu(0xb1).inner_v6(ue6, "2001:db8::10".parse().expect("addr")).build();
    g.expect("v6 UE learns", &v6, Verdict::PassGpdu);
    let d = g.teid(0xb1).expect("device");
    assert_eq!((d.bind_flags, d.bound_v6), (BIND_V6, 0x2001_0db8_0045_0000));
    g.expect("v4 source on a v6-bound TEID: IPv4v6", &gpdu(0xb1).build(), Verdict::PassGpdu);
    let v4b = gpdu(0xb1).inner_v4(Ipv4Addr::new(10, 45, 0, 99), Ipv4Addr::new(192, 0, 2, 10)).build();
    g.expect("a second v4 source", &v4b, Verdict::DropSpoof);
    let other64 =
        gpdu(0xb1).inner_v6("2001:db8:46::2".parse().expect("addr"), "2001:db8::10".parse().expect("addr")).build();
    g.expect("another /64", &other64, Verdict::DropSpoof);
    // Shadow: passes, counted as would-drop and on the device.
    g.write_config(&GuardConfig { shadow: PROT_ANTISPOOF, ..enforce_all() });
    let d = g.expect("spoof in shadow", &spoof, Verdict::PassGpdu);
    assert_eq!(d.moved_shadow(), vec![(Verdict::DropSpoof, 1)]);
    assert_eq!(g.teid(teid).expect("device").spoofed, 3);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn new_device_limit_caps_a_teid_scan_per_gnb() {
    assert_root("verdict_n3::new_device_limit_caps_a_teid_scan_per_gnb");
    let mut g = load(&GuardConfig { new_device: Limit::per_second(5, 5), ..enforce_all() });
    // A random-TEID scan: 100 distinct pseudo-random TEIDs from gNB A.
    let mut x = 0x2545_f491_u32;
    let teids: Vec<u32> = (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .collect();
    let frames: Vec<Vec<u8>> = teids.iter().map(|&t| gpdu(t).build()).collect();
    let before = g.counters();
    let t0 = Instant::now();
    let actions: Vec<u32> = frames.iter().map(|f| g.run(f).expect("run")).collect();
    let took = t0.elapsed();
    let d = g.counters().since(&before);
    // 5 pps: one more token per 200 ms; the scan must be faster than that for an exact count.
    assert!(took < Duration::from_millis(200), "the scan took {took:?}");
    let admitted: Vec<u32> = teids.iter().zip(&actions).filter(|(_, &a)| a == XDP_PASS).map(|(&t, _)| t).collect();
    assert_eq!(admitted, teids[..5].to_vec(), "the first 5 (the burst) are admitted, no other");
    assert_eq!(d.verdict(Verdict::PassGpdu), 5);
    assert_eq!(d.verdict(Verdict::DropNewDevice), 95);
    for (i, &t) in teids.iter().enumerate() {
        assert_eq!(g.teid(t).is_some(), i < 5, "TEID {t:#x} (#{i}) in N3_DEVICES");
    }
    assert_eq!(g.device_count(), 5, "dropped TEIDs are not inserted");
    let c = g.cell(IpAddr::V4(GNB_A)).expect("cell A");
    assert_eq!((c.new_devices, c.new_devices_limited, c.dropped), (5, 95, 95));
    // Known devices are not new: they keep passing.
    g.expect("an admitted TEID again", &frames[0], Verdict::PassGpdu);
    // A TEID the controller staged is known, and not subject to the limit.
    g.set_stage(&DeviceKey::teid(0xc0), &stage_entry(STAGE_OBSERVE, 0, 0, 60 * SEC));
    g.expect("a staged, never seen TEID", &gpdu(0xc0).build(), Verdict::PassGpdu);
    assert!(g.teid(0xc0).is_some(), "the staged TEID is now a device");
    quarantine(&mut g, 0xc1, 60 * SEC);
    g.expect("a quarantined, never seen TEID", &gpdu(0xc1).build(), Verdict::DropQuarantine);
    // Another gNB has its own budget.
    let other: Vec<Vec<u8>> = (0..8u32).map(|i| gpdu(0xd0 + i).outer_v4(GNB_B, CORE).build()).collect();
    let passed = other.iter().filter(|f| g.run(f).expect("run") == XDP_PASS).count();
    assert_eq!(passed, 5, "gNB B admits its own burst of 5");
    let cb = g.cell(IpAddr::V4(GNB_B)).expect("cell B");
    assert_eq!((cb.new_devices, cb.new_devices_limited), (5, 3));
}

/// A gNB's per-packet counters live in a hot slot that a known device caches (owner in
/// `N3_CELL_HOT`, counts per CPU in `N3_CELL_PCPU`; `guard-ebpf/src/cells.rs`). The counts must
/// follow the device to a new gNB, and a slot taken over by another gNB must stop counting for
/// the old one: the old owner claims a new slot.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn gnb_counters_follow_a_handover_and_a_taken_over_slot() {
    assert_root("verdict_n3::gnb_counters_follow_a_handover_and_a_taken_over_slot");
    let mut g = load(&enforce_all());
    let from_a = gpdu(0x51).build();
    let from_b = gpdu(0x51).outer_v4(GNB_B, CORE).build();
    for _ in 0..3 {
        g.expect("the device from gNB A", &from_a, Verdict::PassGpdu);
    }
    let a = g.cell(IpAddr::V4(GNB_A)).expect("cell A");
    assert_eq!((a.packets, a.gpdu), (3, 3), "gNB A counts its G-PDUs");

    // Handover: the same TEID now arrives from gNB B. B counts it; A's counts stay.
    for _ in 0..2 {
        g.expect("the device from gNB B", &from_b, Verdict::PassGpdu);
    }
    let b = g.cell(IpAddr::V4(GNB_B)).expect("cell B");
    assert_eq!((b.packets, b.gpdu), (2, 2), "gNB B counts the handed-over device");
    assert_eq!(g.cell(IpAddr::V4(GNB_A)).expect("cell A").packets, 3, "gNB A no longer counts it");
    assert_eq!(g.teid(0x51).expect("device").cell, l3_v4(GNB_B), "the device's last gNB");

    // Another gNB (C) takes over B's slot while B is live: as a claim would when B's slot is
    // reused. B's next G-PDU must not count in C's slot, and B counts again in a slot of its own.
    let gnb_c = l3_v4(Ipv4Addr::new(10, 200, 0, 13));
    let rec_b = g.maps.cells.get(&l3_v4(GNB_B), 0).expect("B's record");
    let mut taken = g.maps.cell_hot.get(&rec_b.slot, 0).expect("B's slot");
    assert_eq!(taken.owner, l3_v4(GNB_B), "B's record points at its own slot");
    // A claim by a new owner: the owner and a new epoch (which retires every CPU's counts of B).
    taken.owner = gnb_c;
    taken.epoch += 1;
    taken.last_seen_ns = monotonic_ns();
    g.maps.cell_hot.set(rec_b.slot, taken, 0).expect("writing the slot");
    g.expect("the device from gNB B after the takeover", &from_b, Verdict::PassGpdu);
    let c_slot = g.maps.cell_hot.get(&rec_b.slot, 0).expect("C's slot");
    assert_eq!((c_slot.owner, c_slot.epoch), (gnb_c, taken.epoch), "C's slot is untouched");
    let c_counts = CellCounts::total(c_slot.epoch, &g.cell_counts(rec_b.slot));
    assert_eq!(c_counts.packets, 0, "B's packet did not count in C's slot");
    let rec_b2 = g.maps.cells.get(&l3_v4(GNB_B), 0).expect("B's record");
    assert_ne!(rec_b2.slot, rec_b.slot, "B claimed another slot");
    let b = g.cell(IpAddr::V4(GNB_B)).expect("cell B");
    assert_eq!((b.packets, b.gpdu), (1, 1), "B counts again from zero in its new slot");
    assert_eq!(g.teid(0x51).expect("device").cell_slot, rec_b2.slot, "the device caches B's new slot");
    g.expect("the device from gNB B again", &from_b, Verdict::PassGpdu);
    assert_eq!(g.cell(IpAddr::V4(GNB_B)).expect("cell B").packets, 2, "the cached slot counts");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn error_indication_is_limited_per_gnb_and_echo_responses_never() {
    assert_root("verdict_n3::error_indication_is_limited_per_gnb_and_echo_responses_never");
    // Echo Requests: verdict_n3_echo.rs (never limited below the host rate, per path above it).
    let per_min = Limit::per_interval(60 * SEC, 2);
    let mut g = load(&GuardConfig { err_ind: per_min, ..enforce_all() });
    // Echo Responses are not limited.
    for _ in 0..4 {
        g.expect("echo response", &GtpFrame::echo_response(7).build(), Verdict::PassSignalling);
    }
    let ei = GtpFrame::error_indication(0x1234, IpAddr::V4(GNB_A)).build();
    g.expect("error indication 1", &ei, Verdict::PassSignalling);
    g.expect("error indication 2", &ei, Verdict::PassSignalling);
    let d = g.expect("error indication 3", &ei, Verdict::DropErrInd);
    assert_eq!(d.stat(STAT_EVENTS_SENT), 1, "an EVENT_ERR_IND_LIMITED is sent");
    let ei_b = GtpFrame::error_indication(0x1234, IpAddr::V4(GNB_A)).outer_v4(GNB_B, CORE).build();
    g.expect("error indication from gNB B", &ei_b, Verdict::PassSignalling);
    let c = g.cell(IpAddr::V4(GNB_A)).expect("cell A");
    assert_eq!((c.echo_resp, c.err_ind, c.dropped), (4, 3, 1));
    // The event names the limit that fired.
    let mut ring = take_ring(&mut g);
    let kinds: Vec<u32> = drain(&mut ring).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EVENT_ERR_IND_LIMITED]);
}

// ---------------------------------------------------------------------------------------------
// Encapsulations and extension headers
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn vlan_qinq_and_ipv6_outer_get_the_same_verdicts() {
    assert_root("verdict_n3::vlan_qinq_and_ipv6_outer_get_the_same_verdicts");
    let mut g = load(&enforce_all());
    let (q, ok) = (0xe0, 0xe1);
    quarantine(&mut g, q, 60 * SEC);
    type Encap = fn(GtpFrame) -> GtpFrame;
    let encaps: [(&str, Encap); 6] = [
        ("plain IPv4", |f| f),
        ("802.1Q", |f| f.vlan(100)),
        ("QinQ", |f| f.qinq(10, 20)),
        ("IPv6 outer", |f| f.outer_v6(GNB_V6, CORE_V6)),
        ("802.1Q + IPv6 outer", |f| f.vlan(200).outer_v6(GNB_V6, CORE_V6)),
        ("QinQ + IPv6 outer", |f| f.qinq(1, 2).outer_v6(GNB_V6, CORE_V6)),
    ];
    for (name, encap) in encaps {
        g.expect(&format!("{name}: quarantined"), &encap(gpdu(q).qfi(3)).build(), Verdict::DropQuarantine);
        g.expect(&format!("{name}: other device"), &encap(gpdu(ok).qfi(3)).build(), Verdict::PassGpdu);
        g.expect(&format!("{name}: echo"), &encap(GtpFrame::echo_request(1)).build(), Verdict::PassSignalling);
        g.expect(&format!("{name}: bad version"), &encap(gpdu(ok).gtp_version(2)).build(), Verdict::DropMalformed);
    }
    // IPv4 outer with options too.
    g.expect("IPv4 options: quarantined", &gpdu(q).ipv4_options(&[0x94, 4, 0, 0]).build(), Verdict::DropQuarantine);
    let d = g.teid(ok).expect("device");
    assert_eq!(d.packets, 6);
    assert_eq!(d.cell, l3_v6(GNB_V6), "the last gNB seen was the IPv6 one");
    assert_eq!(d.qfi, 3);
    assert!(g.cell(IpAddr::V6(GNB_V6)).is_some(), "an IPv6 gNB is a cell");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn extension_headers_qfi_chains_and_malformed_chains() {
    assert_root("verdict_n3::extension_headers_qfi_chains_and_malformed_chains");
    let mut g = load(&enforce_all());
    g.expect("no extension header", &gpdu(0xf0).build(), Verdict::PassGpdu);
    assert_eq!(g.teid(0xf0).expect("device").qfi, QFI_NONE, "no PDU Session Container: QFI_NONE");
    for qfi in [1u8, 9, 63] {
        g.expect(&format!("QFI {qfi}"), &gpdu(0xf1).qfi(qfi).build(), Verdict::PassGpdu);
        assert_eq!(g.teid(0xf1).expect("device").qfi, u32::from(qfi), "device.qfi is the QFI sent");
    }
    g.expect("DL PDU session container", &gpdu(0xf1).pdu_session(0, 7).seq(3).npdu(1).build(), Verdict::PassGpdu);
    assert_eq!(g.teid(0xf1).expect("device").qfi, 7);
    // Two chained headers, the container second.
    let two = gpdu(0xf2).ext_header(EXT_UDP_PORT, &[0x08, 0x68]).qfi(12).build();
    g.expect("UDP Port + PDU Session Container", &two, Verdict::PassGpdu);
    assert_eq!(g.teid(0xf2).expect("device").qfi, 12);
    // A longer container (two units) still yields the QFI.
    g.expect(
        "two-unit container",
        &gpdu(0xf3).ext_header(EXT_PDU_SESSION_CONTAINER, &[0x10, 0x2a, 1, 2, 3, 4]).build(),
        Verdict::PassGpdu,
    );
    assert_eq!(g.teid(0xf3).expect("device").qfi, 0x2a);
    // A 7-unit container (QoS Monitoring timestamps, TS 38.415) before and after a UDP Port
    // header: the next type is read from each header's last unit, and the T-PDU is found after
    // the chain.
    let stamps = [0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324_2526_2728];
    for (teid, f) in [
        (0xf6, gpdu(0xf6).pdu_session_ul_qmp(21, stamps).udp_port_ext(2152)),
        (0xf7, gpdu(0xf7).udp_port_ext(2152).pdu_session_ul_qmp(21, stamps)),
    ] {
        g.expect(&format!("7-unit container, TEID {teid:#x}"), &f.build(), Verdict::PassGpdu);
        let d = g.teid(teid).expect("device");
        assert_eq!(d.qfi, 21, "TEID {teid:#x}: QFI from the multi-unit container");
        assert_eq!(d.inner_dst, l3_v4(Ipv4Addr::new(192, 0, 2, 10)), "TEID {teid:#x}: the T-PDU after the chain");
    }
    // Eight headers: the longest chain accepted.
    let eight = (0..7).fold(gpdu(0xf4), |f, _| f.ext_header(EXT_UDP_PORT, &[0, 0])).qfi(4).build();
    g.expect("8 extension headers", &eight, Verdict::PassGpdu);
    assert_eq!(g.teid(0xf4).expect("device").qfi, 4);

    let malformed: [(&str, Vec<u8>, Malformed); 5] = [
        (
            "zero-length extension",
            gpdu(0xf5).zero_length_ext(EXT_PDU_SESSION_CONTAINER).build(),
            Malformed::ExtZeroLength,
        ),
        (
            "zero-length second extension",
            gpdu(0xf5).qfi(1).zero_length_ext(EXT_UDP_PORT).build(),
            Malformed::ExtZeroLength,
        ),
        (
            "extension overruns the message",
            gpdu(0xf5).ext_overrun(EXT_PDU_SESSION_CONTAINER, 200).build(),
            Malformed::ExtOverrun,
        ),
        (
            "9 extension headers",
            (0..8).fold(gpdu(0xf5), |f, _| f.ext_header(EXT_UDP_PORT, &[0, 0])).qfi(4).build(),
            Malformed::ExtChainTooLong,
        ),
        (
            "extension overruns a short GTP length",
            gpdu(0xf5).qfi(1).no_tpdu().gtp_length(6).build(),
            Malformed::ExtOverrun,
        ),
    ];
    for (name, frame, reason) in malformed {
        let d = g.expect(name, &frame, Verdict::DropMalformed);
        assert_eq!(d.moved_malformed(), vec![(reason, 1)], "{name}");
    }
    assert!(g.teid(0xf5).is_none(), "malformed packets create no device");
}

// ---------------------------------------------------------------------------------------------
// Not GTP-U, truncations, malformed lengths
// ---------------------------------------------------------------------------------------------

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 200, 0, 11, 0, 0, 0, 0, 0, 0, 10, 200, 0, 1]);
    f
}

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// Set the IPv4 flags/fragment-offset word of a plain (untagged) frame and fix the checksum.
/// An IPv4 packet (no Ethernet header) with its flags / fragment offset word set to `word` and
/// the header checksum recomputed.
fn set_frag_ip(p: &[u8], word: u16) -> Vec<u8> {
    let mut f = p.to_vec();
    f[6..8].copy_from_slice(&word.to_be_bytes());
    f[10..12].copy_from_slice(&[0, 0]);
    let c = frames::internet_checksum(&f[..20]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn non_gtp_passes_untouched_and_creates_no_state() {
    assert_root("verdict_n3::non_gtp_passes_untouched_and_creates_no_state");
    let mut g = load(&enforce_all());
    // Quarantining TEID 0x100 must not matter to anything below.
    quarantine(&mut g, 0x100, 60 * SEC);
    let tcp = frames::ipv4_packet(
        GNB_A,
        CORE,
        6,
        64,
        0,
        &[],
        &[0x08, 0x68, 0x08, 0x68, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 2, 0, 0, 0, 0, 0, 0],
    );
    let icmp6 = frames::ipv6_packet(GNB_V6, CORE_V6, 58, 255, &[128, 0, 0, 0, 0, 1, 0, 1]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ARP", arp()),
        ("IPv4 TCP to port 2152", eth(0x0800, &tcp)),
        ("ICMPv6", eth(0x86dd, &icmp6)),
        ("LLDP", eth(0x88cc, &[0; 46])),
        ("UDP to another port", gpdu(0x100).udp_ports(2152, 2153).build()),
        ("UDP to another port, IPv6", gpdu(0x100).udp_ports(2152, 4789).outer_v6(GNB_V6, CORE_V6).build()),
        // Fragments of GTP-U datagrams are judged (verdict_n3_fragments.rs); a later fragment of
        // another protocol is not the guard's business.
        ("IPv4 later fragment of TCP", eth(0x0800, &set_frag_ip(&tcp, 0x0010))),
        ("802.1Q ARP", {
            let mut f = arp();
            f.splice(12..12, [0x81, 0x00, 0, 100]);
            f
        }),
    ];
    for (name, frame) in &cases {
        let d = g.expect(name, frame, Verdict::PassNotGtp);
        assert!(d.moved_malformed().is_empty(), "{name}: malformed {:?}", d.moved_malformed());
        assert!(d.moved_shadow().is_empty(), "{name}");
    }
    assert_eq!(g.device_count(), 0, "non-GTP traffic created device state");
    assert_eq!(g.cell_count(), 0, "non-GTP traffic created cell state");
}

/// Where each layer of a frame ends: (end of L2, end of L3 header, end of UDP header), and the
/// malformed reasons for a cut inside L2 and L3.
struct Layout {
    l2: usize,
    l3: usize,
    udp: usize,
    l2_reason: Malformed,
    l3_reason: Malformed,
}

fn expected_truncation_reason(n: usize, lay: &Layout) -> Malformed {
    if n < 14 {
        Malformed::EthTruncated
    } else if n < lay.l2 {
        lay.l2_reason
    } else if n < lay.l3 {
        lay.l3_reason
    } else if n < lay.udp {
        Malformed::UdpTruncated
    } else {
        // The UDP Length still describes the whole datagram.
        Malformed::GtpTruncated
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn truncation_at_every_offset_has_a_defined_verdict() {
    assert_root("verdict_n3::truncation_at_every_offset_has_a_defined_verdict");
    let mut g = load(&enforce_all());
    let v4 = |tags: usize, opts: usize| Layout {
        l2: 14 + 4 * tags,
        l3: 14 + 4 * tags + 20 + opts,
        udp: 14 + 4 * tags + 20 + opts + 8,
        l2_reason: Malformed::VlanTruncated,
        l3_reason: Malformed::Ipv4Truncated,
    };
    let v6 = |tags: usize| Layout {
        l2: 14 + 4 * tags,
        l3: 14 + 4 * tags + 40,
        udp: 14 + 4 * tags + 48,
        l2_reason: Malformed::VlanTruncated,
        l3_reason: Malformed::Ipv6Truncated,
    };
    let cases: Vec<(&str, Vec<u8>, Layout, Verdict)> = vec![
        ("IPv4 G-PDU + PDU session container", gpdu(0x200).qfi(9).build(), v4(0, 0), Verdict::PassGpdu),
        ("802.1Q IPv4 G-PDU", gpdu(0x201).vlan(100).qfi(1).build(), v4(1, 0), Verdict::PassGpdu),
        (
            "QinQ IPv4 G-PDU, 2 ext headers",
            gpdu(0x202).qinq(1, 2).ext_header(EXT_UDP_PORT, &[8, 0x68]).qfi(2).build(),
            v4(2, 0),
            Verdict::PassGpdu,
        ),
        ("IPv4 with options", gpdu(0x203).ipv4_options(&[0x94, 4, 0, 0]).build(), v4(0, 4), Verdict::PassGpdu),
        (
            "IPv6 outer G-PDU, IPv6 UE",
            gpdu(0x204)
                .outer_v6(GNB_V6, CORE_V6)
                .inner_v6("2001:db8:45::2".parse().expect("addr"), "2001:db8::1".parse().expect("addr"))
                .qfi(5)
                .build(),
            v6(0),
            Verdict::PassGpdu,
        ),
        ("802.1Q IPv6 outer", gpdu(0x205).vlan(7).outer_v6(GNB_V6, CORE_V6).qfi(5).build(), v6(1), Verdict::PassGpdu),
        ("Echo Request", GtpFrame::echo_request(9).build(), v4(0, 0), Verdict::PassSignalling),
    ];
    let mut checked = 0;
    for (name, full, lay, full_verdict) in &cases {
        for n in 0..=full.len() {
            let frame = &full[..n];
            let what = format!("{name} cut to {n} of {} bytes", full.len());
            if n < 14 {
                // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header (EINVAL); a
                // NIC never delivers one either. Anything else from the kernel is a failure.
                let before = g.counters();
                match g.run(frame) {
                    Err(e) => assert!(format!("{e:#}").contains("Invalid argument"), "{what}: {e:#}"),
                    Ok(a) => {
                        assert_eq!(a, XDP_PASS, "{what}");
                        let d = g.counters().since(&before);
                        assert_eq!(d.moved_malformed(), vec![(Malformed::EthTruncated, 1)], "{what}");
                    }
                }
                continue;
            }
            if n == full.len() {
                let d = g.expect(&what, frame, *full_verdict);
                assert!(d.moved_malformed().is_empty(), "{what}: {:?}", d.moved_malformed());
                continue;
            }
            let reason = expected_truncation_reason(n, lay);
            let verdict = if reason.is_gtp() { Verdict::DropMalformed } else { Verdict::PassMalformed };
            let d = g.expect(&what, frame, verdict);
            assert_eq!(
                d.moved_malformed(),
                vec![(reason, 1)],
                "{what}: exactly one malformed counter, {}\nframe {}",
                reason.name(),
                hex(frame)
            );
            assert_eq!(d.stat(STAT_MAP_UPDATE_FAILED), 0, "{what}");
            checked += 1;
        }
    }
    println!("{checked} truncated frames checked");
    // Only the complete G-PDUs made devices.
    assert_eq!(g.device_count(), 6);
}

/// The UDP datagram length of a plain IPv4 frame.
fn f_len_udp(f: &[u8]) -> usize {
    f.len() - 34
}

/// Make the IPv4 Total Length of a plain IPv4 frame cover the whole frame; fix the checksum.
fn set_ip_total(mut f: Vec<u8>) -> Vec<u8> {
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = frames::internet_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Set the UDP Length of a plain IPv4 frame.
fn set_udp_len(mut f: Vec<u8>, len: u16) -> Vec<u8> {
    f[38..40].copy_from_slice(&len.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn malformed_lengths_and_header_fields() {
    assert_root("verdict_n3::malformed_lengths_and_header_fields");
    let mut g = load(&enforce_all());
    let ok = gpdu(0x300).qfi(1).build();
    let udp_len = (ok.len() - 34) as u16;
    let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
        ("GTP length > UDP payload", gpdu(0x300).gtp_length(9999).build(), Malformed::GtpLengthMismatch),
        (
            "GTP length one past the UDP payload",
            {
                let g = gpdu(0x300).qfi(1);
                let l = g.build_gtp().len() as u16 - 8 + 1;
                g.gtp_length(l).build()
            },
            Malformed::GtpLengthMismatch,
        ),
        ("UDP length 4", set_udp_len(ok.clone(), 4), Malformed::UdpBadLength),
        ("UDP length 0", set_udp_len(ok.clone(), 0), Malformed::UdpBadLength),
        ("UDP length past the frame", set_udp_len(ok.clone(), udp_len + 1), Malformed::GtpTruncated),
        ("UDP length 8: no GTP header", set_udp_len(ok.clone(), 8), Malformed::GtpLengthMismatch),
        ("GTP version 0", gpdu(0x300).gtp_version(0).build(), Malformed::GtpBadVersion),
        (
            "GTP version 2 (GTPv2-C on the user plane port)",
            gpdu(0x300).gtp_version(2).build(),
            Malformed::GtpBadVersion,
        ),
        ("PT = 0 (GTP')", gpdu(0x300).protocol_type(false).build(), Malformed::GtpBadProtocolType),
        ("S flag, GTP length 2", GtpFrame::echo_request(1).gtp_length(2).build(), Malformed::GtpOptionalTruncated),
    ];
    // The gNB is known (one valid G-PDU), so its malformed traffic is charged to it.
    g.expect("a valid G-PDU makes the gNB known", &ok, Verdict::PassGpdu);
    let before = g.cell(IpAddr::V4(GNB_A)).expect("cell of GNB_A").malformed;
    for (name, frame, reason) in &cases {
        let d = g.expect(name, frame, Verdict::DropMalformed);
        assert_eq!(d.moved_malformed(), vec![(*reason, 1)], "{name}");
    }
    let after = g.cell(IpAddr::V4(GNB_A)).expect("cell of GNB_A").malformed;
    // Every case is sent by GNB_A: all are charged to it.
    assert_eq!(after - before, cases.len() as u64, "malformed GTP-U counted per gNB");
    // Shorter GTP length than the UDP payload (trailing padding) is fine, and so is a G-PDU with
    // no T-PDU or a non-IP T-PDU (Ethernet / unstructured PDU sessions).
    let mut f = gpdu(0x301).build();
    f.extend_from_slice(&[0; 6]);
    let f = set_udp_len(set_ip_total(f), (f_len_udp(&gpdu(0x301).build()) + 6) as u16);
    g.expect("UDP payload longer than the GTP message", &f, Verdict::PassGpdu);
    // A short message padded to the 60-byte Ethernet minimum: the padding is beyond the UDP
    // datagram and must be ignored.
    let mut echo = GtpFrame::echo_request(3).build();
    assert!(echo.len() < 60);
    echo.resize(60, 0);
    g.expect("Echo Request with Ethernet padding", &echo, Verdict::PassSignalling);
    let mut em = GtpFrame::end_marker(0x304).vlan(5).build();
    em.resize(64, 0);
    g.expect("802.1Q End Marker with Ethernet padding", &em, Verdict::PassSignalling);
    g.expect("G-PDU without T-PDU", &gpdu(0x302).no_tpdu().build(), Verdict::PassGpdu);
    g.expect("non-IP T-PDU", &gpdu(0x303).tpdu_raw(&[0x00, 0x11, 0x22, 0x33, 0x44]).build(), Verdict::PassGpdu);
    assert_eq!(g.teid(0x303).expect("device").bind_flags, 0);
    // A T-PDU that starts like IPv4 but is cut short is not IP either (an Unstructured session,
    // TS 23.501 §5.6.10.3): never malformed (it used to be `inner_truncated`).
    let cut = gpdu(0x305).tpdu_raw(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]).build();
    let d = g.expect("T-PDU starting 0x45, 12 octets", &cut, Verdict::PassGpdu);
    assert!(d.moved_malformed().is_empty());
    assert_eq!(g.teid(0x305).expect("device").non_ip, 1);
    // Below GTP-U: passed for the kernel to drop, whatever the malformed protection says.
    let mut bad_ip = ok.clone();
    bad_ip[14] = 0x55;
    let d = g.expect("IPv4 version 5", &bad_ip, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::Ipv4BadVersion, 1)]);
    let mut bad_ihl = ok.clone();
    bad_ihl[14] = 0x44;
    let d = g.expect("IPv4 IHL 4", &bad_ihl, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::Ipv4BadIhl, 1)]);
    let triple = gpdu(0x300).vlan(1).vlan(2).vlan(3).build();
    let d = g.expect("three VLAN tags", &triple, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::VlanTooDeep, 1)]);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn unwritten_config_passes_everything() {
    assert_root("verdict_n3::unwritten_config_passes_everything");
    // All-zero config: what a map that was never written holds.
    let mut g = load(&GuardConfig::default());
    quarantine(&mut g, 0x400, 60 * SEC);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("quarantined G-PDU", gpdu(0x400).build()),
        ("G-PDU", gpdu(0x401).build()),
        ("unknown message type", GtpFrame::message(100, 1).build()),
        ("bad GTP version", gpdu(0x401).gtp_version(2).build()),
        ("Echo Request", GtpFrame::echo_request(1).build()),
    ];
    for (name, f) in &cases {
        let (a, d) = g.run_delta(f);
        assert_eq!(a, XDP_PASS, "{name}: unconfigured guard must pass");
        assert!(d.verdicts.iter().enumerate().all(|(i, &n)| n == 0 || !Verdict::ALL[i].is_drop()), "{name}: {d:?}");
    }
    assert_eq!(g.device_count(), 0);
    // Configured with a port but nothing enabled: still nothing drops.
    g.write_config(&GuardConfig { gtpu_port: 2152, ..Default::default() });
    for (name, f) in &cases {
        let (a, d) = g.run_delta(f);
        assert_eq!(a, XDP_PASS, "{name}: nothing enabled must pass");
        assert!(d.verdicts.iter().enumerate().all(|(i, &n)| n == 0 || !Verdict::ALL[i].is_drop()), "{name}: {d:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

fn take_ring(g: &mut Guard) -> aya::maps::RingBuf<aya::maps::MapData> {
    let m = g.loaded.ebpf.take_map(MAP_N3_EVENTS).expect("N3_EVENTS in the object");
    aya::maps::RingBuf::try_from(m).expect("N3_EVENTS is a ring buffer")
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<Event>(), "event record size");
        // SAFETY: the record is an `Event` (checked size); any bit pattern is a valid Event.
        out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
    }
    out
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn over_limit_events_one_per_gap_and_rate_limited() {
    assert_root("verdict_n3::over_limit_events_one_per_gap_and_rate_limited");
    let gap = Duration::from_millis(300);
    let cfg = GuardConfig { observe: Limit::per_second(10, 1), event_gap_ns: gap.as_nanos() as u64, ..enforce_all() };
    let mut g = load(&cfg);
    let mut ring = take_ring(&mut g);
    let teid = 0x500;
    let frame = gpdu(teid).build();
    let before = g.counters();
    let t0 = Instant::now();
    assert_eq!(g.run_n(&frame, 20), 20, "the observe limit never drops");
    assert!(t0.elapsed() < Duration::from_millis(100), "20 runs took {:?}", t0.elapsed());
    let d = g.counters().since(&before);
    assert_eq!(d.stat(STAT_EVENTS_SENT), 1, "one event per gap window");
    let dev = g.teid(teid).expect("device");
    assert_eq!(dev.over_limit, 19);
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = ev[0];
    assert_eq!(e.kind, EVENT_DEVICE_OVER_LIMIT);
    assert_eq!(e.device, DeviceKey::teid(teid));
    assert_eq!(e.cell, l3_v4(GNB_A));
    assert_eq!(e.stage, STAGE_OBSERVE);
    assert_eq!((e.packets, e.over_limit), (2, 1), "the event fired on the first packet over the limit");
    assert_eq!(e.bytes, 2 * 60, "the device's T-PDU octets (inner IPv4 20 + UDP 8 + 32)");
    // The next gap window: one more event, carrying the device's stage.
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_SHAPE, 1000, 1000, 60 * SEC));
    std::thread::sleep(gap + Duration::from_millis(20));
    assert_eq!(g.run_n(&frame, 10), 10);
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].kind, ev[0].stage), (EVENT_DEVICE_OVER_LIMIT, STAGE_SHAPE));
    assert_eq!(g.counters().since(&before).stat(STAT_EVENTS_SENT), 2);

    // A tiny event rate (1 per minute, per CPU) with no per-device gap: the rest is suppressed.
    g.write_config(&GuardConfig {
        observe: Limit::per_interval(60 * SEC, 1),
        event_gap_ns: 0,
        event_rate: Limit::per_interval(60 * SEC, 1),
        ..enforce_all()
    });
    let before = g.counters();
    for t in [0x510, 0x511] {
        assert_eq!(g.run_n(&gpdu(t).build(), 5), 5);
    }
    let d = g.counters().since(&before);
    // 2 devices x 4 packets over the limit = 8 events wanted.
    assert_eq!(d.stat(STAT_EVENTS_SENT), 1, "{d:?}");
    assert_eq!(d.stat(STAT_EVENTS_SUPPRESSED), 7, "{d:?}");
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].device, ev[0].cell), (DeviceKey::teid(0x510), l3(IpAddr::V4(GNB_A))));
}

// ---------------------------------------------------------------------------------------------
// The per-device / per-gNB stage cache (abi::HINT_STAGE_GEN): what a record caches never hides a
// later stage write, removal or expiry.
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn stage_cache_follows_every_stage_write() {
    assert_root("verdict_n3::stage_cache_follows_every_stage_write");
    let mut g = load(&enforce_all());
    let teid = 0x600;
    let key = DeviceKey::teid(teid);
    let frame = gpdu(teid).build();
    // Known, no stage: the record caches "no entry" at the current generation.
    for _ in 0..3 {
        g.expect("no stage", &frame, Verdict::PassGpdu);
    }
    assert_eq!(g.teid(teid).expect("device").stage_cache_until_ns, 0);
    // Quarantined while the cache says "no stage": applies on the very next packet.
    quarantine(&mut g, teid, 60 * SEC);
    g.expect("quarantined after a cached miss", &frame, Verdict::DropQuarantine);
    let q = g.maps.stage(&key).expect("read stage").expect("stage").expires_ns;
    assert_eq!(g.teid(teid).expect("device").stage_cache_until_ns, q, "the quarantine is cached");
    g.expect("quarantined, from the cache", &frame, Verdict::DropQuarantine);
    // Shadow mode still counts instead of dropping when the quarantine comes from the cache.
    g.write_config(&GuardConfig { shadow: PROT_QUARANTINE, ..enforce_all() });
    let d = g.expect("quarantine in shadow, cached", &frame, Verdict::PassGpdu);
    assert_eq!(d.moved_shadow(), vec![(Verdict::DropQuarantine, 1)]);
    g.write_config(&enforce_all());
    // Rewritten to a rate stage: the GCRA in the entry applies from the next packet.
    g.set_stage(&key, &stage_entry(STAGE_SHAPE, 1, 2, 60 * SEC));
    g.expect("shaped, within burst", &frame, Verdict::PassGpdu);
    g.expect("shaped, within burst", &frame, Verdict::PassGpdu);
    g.expect("shaped, over", &frame, Verdict::DropShape);
    // The shape is cached too: its GCRA state moves in the device's record, not in the entry.
    let d = g.teid(teid).expect("device");
    assert_eq!((d.stage_cache_stage, d.stage_cache_interval_ns), (STAGE_SHAPE, SEC), "the shape is cached");
    assert!(d.stage_tat > monotonic_ns(), "the record's GCRA state is ahead of now after the burst");
    assert_eq!(g.maps.stage(&key).expect("read stage").expect("stage").tat, 0, "the entry's own is untouched");
    // A new limit for the same stage replaces the generation and applies on the next packet,
    // from a fresh GCRA state (the old limit's debt is not carried over).
    let before = g_hint(&g);
    g.set_stage(&key, &stage_entry(STAGE_SHAPE, 1000, 1000, 60 * SEC));
    assert_ne!(g_hint(&g), before, "a limit change replaces the generation");
    for _ in 0..5 {
        g.expect("shaped at the new limit", &frame, Verdict::PassGpdu);
    }
    // Quarantined again, then unpinned: the removal is seen on the next packet.
    quarantine(&mut g, teid, 60 * SEC);
    g.expect("quarantined again", &frame, Verdict::DropQuarantine);
    assert!(g.maps.clear_stage(&key).expect("clear stage"));
    g.expect("unpinned", &frame, Verdict::PassGpdu);
    // A cached quarantine expires at the entry's expiry, with no write in between.
    quarantine(&mut g, teid, 300_000_000);
    g.expect("short quarantine", &frame, Verdict::DropQuarantine);
    g.expect("short quarantine, cached", &frame, Verdict::DropQuarantine);
    std::thread::sleep(Duration::from_millis(400));
    g.expect("cached quarantine expired", &frame, Verdict::PassGpdu);
    // A refresh (same stage, later expiry) keeps the generation, so other devices keep their
    // cached "no stage"; the device itself finds the later expiry once its cached one has passed.
    quarantine(&mut g, teid, 300_000_000);
    g.expect("quarantined, short", &frame, Verdict::DropQuarantine);
    let before = g_hint(&g);
    quarantine(&mut g, teid, 60 * SEC);
    assert_eq!(g_hint(&g), before, "a refresh keeps the stage generation");
    g.expect("refreshed, cached expiry still ahead", &frame, Verdict::DropQuarantine);
    std::thread::sleep(Duration::from_millis(400));
    g.expect("refreshed quarantine outlives its first cached expiry", &frame, Verdict::DropQuarantine);
    assert!(g.maps.clear_stage(&key).expect("clear stage"));
    assert_ne!(g_hint(&g), before, "a removal replaces the generation");
    g.expect("unpinned after the refresh", &frame, Verdict::PassGpdu);
    // An exempt entry is never cached as a quarantine.
    g.set_stage(&key, &StageEntry { flags: STAGE_FLAG_EXEMPT, ..stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC) });
    g.expect("exempt", &frame, Verdict::PassExempt);
    g.expect("exempt, again", &frame, Verdict::PassExempt);
}

/// `N3_HINTS[HINT_STAGE_GEN]`: the device-stage generation the data plane caches against.
fn g_hint(g: &Guard) -> u64 {
    g.maps.hints.get(&guard_common::abi::HINT_STAGE_GEN, 0).expect("reading N3_HINTS")
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn cell_cap_written_after_a_cached_miss_applies_on_the_next_packet() {
    assert_root("verdict_n3::cell_cap_written_after_a_cached_miss_applies_on_the_next_packet");
    let mut g = load(&enforce_all());
    for t in 0x700..0x704 {
        g.expect("gNB A, no cap", &gpdu(t).build(), Verdict::PassGpdu);
    }
    let cap = cell_cap_entry(1, 1, 60 * SEC);
    g.maps.set_cell_stage(&l3_v4(GNB_A), &cap).expect("set cell stage");
    g.expect("gNB A, first packet under the new cap", &gpdu(0x700).build(), Verdict::PassGpdu);
    g.expect("gNB A, over the new cap", &gpdu(0x701).build(), Verdict::DropCellCap);
}
