//! Who may send: anti-spoofing's UE binding, the new-device limit per gNB, gNB counters across a
//! handover, and the signalling limits (Error Indication; Echo Responses never).

use super::*;

// ---------------------------------------------------------------------------------------------
// Anti-spoofing, new-device limit, signalling limits
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn antispoof_learns_the_first_inner_source() {
    assert_root("verdict::n3::admission::antispoof_learns_the_first_inner_source");
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
    // The spoofs it dropped are counted as spoofs only: not as the device's packets or drops, so
    // a forger holding the device's TEID cannot raise its rate or drop ratio towards a stage.
    assert_eq!((d.spoofed, d.packets(), d.dropped(), d.bound_v4.to_ne_bytes()), (2, 2, 0, UE.octets()));
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
    let d = g.teid(teid).expect("device");
    assert_eq!((d.spoofed, d.packets()), (3, 3), "in shadow the spoof reaches the UPF, as the device's packet");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn new_device_limit_caps_a_teid_scan_per_gnb() {
    assert_root("verdict::n3::admission::new_device_limit_caps_a_teid_scan_per_gnb");
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
    assert_root("verdict::n3::admission::gnb_counters_follow_a_handover_and_a_taken_over_slot");
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
    assert_root("verdict::n3::admission::error_indication_is_limited_per_gnb_and_echo_responses_never");
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
