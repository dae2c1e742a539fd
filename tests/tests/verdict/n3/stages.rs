//! Device stages (observe, shape, strict, quarantine), exemptions, shadow mode, the last-resort
//! cell and host caps, and the per-device / per-gNB stage cache.

use super::*;

// ---------------------------------------------------------------------------------------------
// Device stages
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn observe_passes_and_records_the_device() {
    assert_root("verdict::n3::stages::observe_passes_and_records_the_device");
    let mut g = load(&enforce_all());
    let frame = gpdu(0x20).qfi(5).build();
    for _ in 0..3 {
        g.expect("unstaged G-PDU", &frame, Verdict::PassGpdu);
    }
    // An explicit observe-stage entry changes nothing.
    g.set_stage(&DeviceKey::teid(0x20), &stage_entry(STAGE_OBSERVE, 0, 0, 60 * SEC));
    g.expect("G-PDU at stage observe", &frame, Verdict::PassGpdu);
    let d = g.teid(0x20).expect("device 0x20 in N3_DEVICES");
    assert_eq!(d.packets(), 4);
    // A device counts its T-PDUs' octets (what its byte limits count), not the frames': the
    // default G-PDU's inner IPv4 (20) + UDP (8) + 32 octets of payload.
    assert_eq!(d.bytes(), 4 * 60);
    assert_eq!(d.teid, 0x20);
    assert_eq!(d.cell, l3_v4(GNB_A));
    assert_eq!((d.bind_flags, d.bound_v4.to_ne_bytes()), (BIND_V4, UE.octets()), "the inner source is learned");
    assert_eq!(d.inner_dst, l3_v4(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(d.qfi, 5);
    assert_eq!((d.dropped(), d.spoofed, d.over_limit), (0, 0, 0));
    assert!(d.last_seen_ns > 0 && d.last_seen_ns <= monotonic_ns());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn shape_admits_exactly_the_burst_then_drops() {
    assert_root("verdict::n3::stages::shape_admits_exactly_the_burst_then_drops");
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
    assert_eq!(d.dropped(), 8, "device dropped counter");
    assert_eq!(d.packets(), 11, "dropped packets are still counted as the device's traffic");
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
    assert_root("verdict::n3::stages::strict_drops_above_its_limit");
    let mut g = load(&enforce_all());
    let teid = 0x40;
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_STRICT, 1, 1, 60 * SEC));
    let frame = gpdu(teid).build();
    g.expect("first within 1 pps", &frame, Verdict::PassGpdu);
    for _ in 0..5 {
        g.expect("above 1 pps", &frame, Verdict::DropStrict);
    }
    assert_eq!(g.teid(teid).expect("device").dropped(), 5);
    assert_eq!(g.cell(IpAddr::V4(GNB_A)).expect("cell").dropped, 5);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn quarantine_drops_until_expiry_then_decays() {
    assert_root("verdict::n3::stages::quarantine_drops_until_expiry_then_decays");
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
    assert_eq!((d.packets(), d.dropped()), (8, 5));
}

/// A never-seen device looks its stage up only when its bit in `N3_STAGED` is set
/// (`abi::staged_bit`, docs/dataplane.md "A new device's first packet"). Every stage write through
/// `N3Maps::set_stage` sets it, so a quarantined device is dropped from its very first packet. An
/// entry written behind the marks' back (straight into `N3_STAGES`, its bit clear) is what the
/// marks spare the lookup for: that device's first packet passes, and its second, from a known
/// device whose record has cached nothing, looks the entry up and is dropped.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_never_seen_device_finds_its_stage_through_its_bit() {
    assert_root("verdict::n3::stages::a_never_seen_device_finds_its_stage_through_its_bit");
    let mut g = load(&enforce_all());
    assert_eq!(g.maps.staged.count(), 0, "a fresh guard has no bit set");
    quarantine(&mut g, 0x7a, 60 * SEC);
    assert!(g.maps.staged.is_marked(device_id::fteid(0, 0x7a)));
    assert_eq!(g.maps.staged.count(), 1);
    g.expect("a never-seen quarantined device's first packet", &gpdu(0x7a).build(), Verdict::DropQuarantine);
    // A TEID whose bit is still clear, staged without `set_stage`.
    let hidden = (0x100..0x200).find(|t| !g.maps.staged.is_marked(device_id::fteid(0, *t))).expect("a clear bit");
    let e = stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC);
    g.maps.stages.insert(device_id::fteid(0, hidden), e, 0).expect("writing N3_STAGES directly");
    g.expect("a never-seen device whose bit is clear: not looked up", &gpdu(hidden).build(), Verdict::PassGpdu);
    g.expect("the same device, now known: looked up", &gpdu(hidden).build(), Verdict::DropQuarantine);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn exempt_device_and_exempt_qfi_pass_a_quarantine() {
    assert_root("verdict::n3::stages::exempt_device_and_exempt_qfi_pass_a_quarantine");
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
    assert_root("verdict::n3::stages::shadow_mode_passes_and_counts_would_drop");
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
    assert_eq!(g.teid(0x70).expect("device").dropped(), 0, "shadow drops nothing");
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
    assert_root("verdict::n3::stages::cell_cap_and_host_cap_drop_as_last_resort");
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
        assert_eq!((d.packets(), d.dropped()), (1, 1), "TEID {t:#x} after a cell-cap drop");
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
    assert_eq!(g.teid(0xa0).expect("device").dropped(), 1, "a host-cap drop counts on the device");
    // Signalling is not G-PDU traffic and is not capped.
    g.expect("Echo Request under a host cap", &GtpFrame::echo_request(1).build(), Verdict::PassSignalling);
    // Expired one clock step ago: the data plane's coarse clock lags CLOCK_MONOTONIC by up to one
    // kernel tick, so an expiry takes effect at most that late (`rate::CLOCK_STEP_NS`).
    g.write_config(&GuardConfig { host_cap_expires_ns: monotonic_ns() - CLOCK_STEP_NS, ..host });
    g.expect("expired host cap", &frames[0], Verdict::PassGpdu);
}

// ---------------------------------------------------------------------------------------------
// The per-device / per-gNB stage cache (abi::HINT_STAGE_GEN): what a record caches never hides a
// later stage write, removal or expiry.
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn stage_cache_follows_every_stage_write() {
    assert_root("verdict::n3::stages::stage_cache_follows_every_stage_write");
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
    assert_root("verdict::n3::stages::cell_cap_written_after_a_cached_miss_applies_on_the_next_packet");
    let mut g = load(&enforce_all());
    for t in 0x700..0x704 {
        g.expect("gNB A, no cap", &gpdu(t).build(), Verdict::PassGpdu);
    }
    let cap = cell_cap_entry(1, 1, 60 * SEC);
    g.maps.set_cell_stage(&l3_v4(GNB_A), &cap).expect("set cell stage");
    g.expect("gNB A, first packet under the new cap", &gpdu(0x700).build(), Verdict::PassGpdu);
    g.expect("gNB A, over the new cap", &gpdu(0x701).build(), Verdict::DropCellCap);
}

/// The controller's rebuild of `N3_STAGED` (`N3Maps::rebuild_staged`) clears the bits of removed
/// entries and keeps every live entry's: a device staged before the rebuild is still dropped
/// from its very first packet, and the bits are as many as the live entries' (less collisions).
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_rebuild_of_the_marks_clears_removed_entries_bits_and_keeps_live_ones() {
    assert_root("verdict::n3::stages::a_rebuild_of_the_marks_clears_removed_entries_bits_and_keeps_live_ones");
    let mut g = load(&enforce_all());
    let (live, removed): (Vec<u32>, Vec<u32>) = (0x900..0x940).partition(|t| t % 4 == 0);
    for t in live.iter().chain(&removed) {
        quarantine(&mut g, *t, 60 * SEC);
    }
    for t in &removed {
        assert!(g.maps.clear_stage(&DeviceKey::teid(*t)).expect("clear"), "{t:#x} was staged");
    }
    let before = g.maps.staged.count();
    let r = g.maps.rebuild_staged();
    let bits = |ts: &[u32]| -> std::collections::BTreeSet<(u32, u32)> {
        ts.iter().map(|t| guard_common::abi::staged_bit(device_id::fteid(0, *t))).collect()
    };
    let live_bits = bits(&live);
    // Clearing an entry leaves its bit (only a rebuild clears bits): before it, every entry ever
    // staged is marked, and the rebuild reports that count.
    let all_bits: std::collections::BTreeSet<(u32, u32)> = live_bits.union(&bits(&removed)).copied().collect();
    assert_eq!(before, all_bits.len() as u32, "the removed entries' bits were still set");
    assert_eq!(r.bits_before, before);
    assert_eq!(r.bits_after, live_bits.len() as u32, "{r:?}: one bit per live entry's slot");
    assert_eq!(g.maps.staged.count(), r.bits_after);
    assert_eq!(r.cleared, before - r.bits_after, "{r:?}");
    for t in &live {
        assert!(g.maps.staged.is_marked(device_id::fteid(0, *t)), "{t:#x} is staged: its bit must stay");
    }
    for t in live.iter().take(4) {
        g.expect("a never-seen staged device after the rebuild", &gpdu(*t).build(), Verdict::DropQuarantine);
    }
    // A removed device's bit is clear (unless another live key shares its slot): its first packet
    // is a new device's, not looked up.
    let clear = removed.iter().filter(|t| !g.maps.staged.is_marked(device_id::fteid(0, **t))).count();
    assert!(clear > removed.len() / 2, "{clear} of {} removed devices' bits cleared", removed.len());
}
