//! Peer stages: INIT-flood staging, DATA never dropped below stage 3 (DESIGN §2), whole-peer
//! quarantine, the allow-list, and InitialUEMessage counting per cell and device.

use super::*;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn init_flood_staging_limits_only_the_staged_source() {
    assert_root("verdict::n2::stages::init_flood_staging_limits_only_the_staged_source");
    // Stage-0 evidence: more than 5 setups/s (burst 5) per peer is counted, not dropped.
    let cfg = N2Config { setup_observe: guard_common::abi::Limit::per_second(5, 5), ..enforce_all() };
    let mut g = load(&cfg);
    // Stage 1 on A: 10 setups/s, burst 3.
    g.stage(GNB_A, &stage_entry(STAGE_SHAPE, 10, 3, 60 * SEC));
    let (fa, fb) = (init(GNB_A), init(GNB_B));
    let t0 = Instant::now();
    let a: Vec<u32> = (0..20).map(|_| g.run(&fa).expect("run")).collect();
    let b: Vec<u32> = (0..20).map(|_| g.run(&fb).expect("run")).collect();
    assert!(t0.elapsed() < Duration::from_millis(100), "too slow for a 10/s check");
    assert_eq!(a, [[XDP_PASS; 3].as_slice(), [XDP_DROP; 17].as_slice()].concat(), "A: the burst of 3, then drops");
    assert_eq!(b, vec![XDP_PASS; 20], "B is not staged: its INITs all pass");
    g.expect("A: COOKIE ECHO is a setup too", &cookie_echo(GNB_A), N2Verdict::DropSetupLimit);
    g.expect("A: INIT again", &fa, N2Verdict::DropSetupLimit);
    g.expect("B: INIT", &fb, N2Verdict::PassSetup);
    let pa = g.peer(GNB_A);
    assert_eq!((pa.setups, pa.setup_dropped, pa.dropped), (22, 19, 19));
    let pb = g.peer(GNB_B);
    assert_eq!((pb.setups, pb.setup_dropped, pb.dropped), (21, 0, 0));
    assert_eq!(pb.setup_over_limit, 16, "B's evidence: 21 setups against a burst of 5");
    // 100 ms later one more token.
    std::thread::sleep(Duration::from_millis(110));
    g.expect("A: one token after 100 ms", &fa, N2Verdict::PassSetup);
    g.expect("A: and no more", &fa, N2Verdict::DropSetupLimit);
    // Stage 2 (strict): 1/s, burst 1.
    g.stage(GNB_A, &stage_entry(STAGE_STRICT, 1, 1, 60 * SEC));
    g.expect("A strict: first", &fa, N2Verdict::PassSetup);
    g.expect("A strict: second", &fa, N2Verdict::DropSetupStrict);
    // Non-setup control chunks are not the setup limit's business.
    g.expect("A strict: HEARTBEAT", &from(GNB_A).chunk(Chunk::heartbeat(&[1; 8])).build(), N2Verdict::PassControl);
    // Shadow: counted, passed.
    g.maps.write_config(&N2Config { shadow: N2_PROT_SETUP_STRICT, ..cfg }).expect("cfg");
    let d = g.expect("A strict, shadow", &fa, N2Verdict::PassSetup);
    assert_eq!(d.moved_shadow(), vec![(N2Verdict::DropSetupStrict, 1)]);
    // An exempt entry and an expired entry do nothing.
    let mut e = stage_entry(STAGE_STRICT, 1, 1, 60 * SEC);
    e.flags = STAGE_FLAG_EXEMPT;
    g.stage(GNB_B, &e);
    for _ in 0..3 {
        g.expect("B exempt", &fb, N2Verdict::PassSetup);
    }
    let mut e = stage_entry(STAGE_SHAPE, 1, 1, 0);
    e.expires_ns = 1;
    g.stage(GNB_B, &e);
    for _ in 0..3 {
        g.expect("B expired stage", &fb, N2Verdict::PassSetup);
    }
    g.stage(GNB_B, &stage_entry(STAGE_OBSERVE, 0, 0, 60 * SEC));
    g.expect("B observe stage", &fb, N2Verdict::PassSetup);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn data_always_passes_at_stages_0_to_2() {
    assert_root("verdict::n2::stages::data_always_passes_at_stages_0_to_2");
    let mut g = load(&enforce_all());
    for (stage, drop) in [(STAGE_SHAPE, N2Verdict::DropSetupLimit), (STAGE_STRICT, N2Verdict::DropSetupStrict)] {
        g.stage(GNB_A, &stage_entry(stage, 1, 1, 60 * SEC));
        // Exhaust the setup budget.
        let _ = g.run(&init(GNB_A));
        g.expect("INIT above the limit", &init(GNB_A), drop);
        for i in 0..20 {
            g.expect("DATA at the setup limit", &uplink(GNB_A, i), N2Verdict::PassData);
        }
        let sack_data = from(GNB_A)
            .chunk(Chunk::sack(5, &[], &[]))
            .chunk(Chunk::ngap(6, &InitialUeMessage::nr(3, 4).encode()))
            .build();
        g.expect("SACK + DATA at the setup limit", &sack_data, N2Verdict::PassData);
        // Spared, and still measured: its InitialUEMessage is counted on the peer and the device.
        let ce_data = from(GNB_A)
            .chunk(Chunk::cookie_echo(&[5; 32]))
            .chunk(Chunk::ngap(1, &ngap::ng_setup_request(1, "a")))
            .chunk(Chunk::ngap(2, &InitialUeMessage::nr(77, 4).encode()))
            .build();
        g.expect("COOKIE ECHO + DATA at the setup limit", &ce_data, N2Verdict::PassDataSpared);
        g.expect("SACK", &from(GNB_A).chunk(Chunk::sack(9, &[], &[])).build(), N2Verdict::PassControl);
        g.expect("HEARTBEAT ACK", &from(GNB_A).chunk(Chunk::heartbeat_ack(&[2; 8])).build(), N2Verdict::PassControl);
        g.expect("COOKIE ECHO alone is still limited", &cookie_echo(GNB_A), drop);
    }
    let p = g.peer(GNB_A);
    assert_eq!(p.setup_spared, 2);
    assert_eq!(p.dropped, 4, "only the setup-only packets were dropped");
    assert_eq!(p.chunks[CHUNK_CLASS_DATA], 2 * 23);
    assert_eq!(p.ue_walked, 4, "the InitialUEMessages of the passed and of the spared packets");
    let spared = N2DeviceKey::ran_ue(&L3Addr::v4(GNB_A.octets()), 77).expect("v4");
    let d = g.maps.device(&spared).expect("map").expect("the spared packet's device");
    assert_eq!(d.attempts, 2);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn whole_peer_quarantine_drops_everything_from_that_peer() {
    assert_root("verdict::n2::stages::whole_peer_quarantine_drops_everything_from_that_peer");
    let mut g = load(&enforce_all());
    let ttl = Duration::from_millis(300);
    g.stage(GNB_A, &stage_entry(STAGE_QUARANTINE, 0, 0, ttl.as_nanos() as u64));
    let set = Instant::now();
    let frames = [
        ("DATA", uplink(GNB_A, 1)),
        (
            "SACK + DATA",
            from(GNB_A).chunk(Chunk::sack(1, &[], &[])).chunk(Chunk::ngap(2, &[0x00, 46, 0x40, 0])).build(),
        ),
        ("INIT", init(GNB_A)),
        ("HEARTBEAT", from(GNB_A).chunk(Chunk::heartbeat(&[1; 8])).build()),
        ("ABORT", from(GNB_A).chunk(Chunk::abort(true)).build()),
    ];
    for (name, f) in &frames {
        g.expect(name, f, N2Verdict::DropQuarantine);
    }
    assert!(set.elapsed() < ttl);
    g.expect("another peer", &uplink(GNB_B, 1), N2Verdict::PassData);
    assert_eq!(g.peer(GNB_A).dropped, 5);
    // Shadow.
    g.maps.write_config(&N2Config { shadow: N2_PROT_QUARANTINE, ..enforce_all() }).expect("cfg");
    let d = g.expect("quarantine in shadow", &frames[0].1, N2Verdict::PassData);
    assert_eq!(d.moved_shadow(), vec![(N2Verdict::DropQuarantine, 1)]);
    g.maps.write_config(&enforce_all()).expect("cfg");
    // The entry expires on its own.
    std::thread::sleep(ttl + Duration::from_millis(50));
    for (name, f) in &frames {
        let v = match *name {
            "INIT" => N2Verdict::PassSetup,
            "HEARTBEAT" | "ABORT" => N2Verdict::PassControl,
            _ => N2Verdict::PassData,
        };
        g.expect(&format!("{name} after expiry"), f, v);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn allow_list_drops_unknown_peers_without_state() {
    assert_root("verdict::n2::stages::allow_list_drops_unknown_peers_without_state");
    let cfg = N2Config { enabled: N2_PROT_ALL, ..enforce_all() };
    let mut g = load(&cfg);
    g.maps.allow_peer(&L3Addr::v4(GNB_A.octets())).expect("allow");
    g.expect("allowed INIT", &init(GNB_A), N2Verdict::PassSetup);
    g.expect("allowed DATA", &uplink(GNB_A, 1), N2Verdict::PassData);
    g.expect("INIT from an unknown peer", &init(GNB_B), N2Verdict::DropNotAllowed);
    g.expect("DATA from an unknown peer", &uplink(GNB_B, 1), N2Verdict::DropNotAllowed);
    assert!(g.maps.peer(&L3Addr::v4(GNB_B.octets())).expect("map").is_none(), "no state for refused peers");
    // Shadow: passes, counted, and the peer is then tracked.
    g.maps.write_config(&N2Config { shadow: N2_PROT_ALLOWLIST, ..cfg }).expect("cfg");
    let d = g.expect("unknown peer, shadow", &init(GNB_B), N2Verdict::PassSetup);
    assert_eq!(d.moved_shadow(), vec![(N2Verdict::DropNotAllowed, 1)]);
    // Removed from the list: refused again.
    g.maps.write_config(&cfg).expect("cfg");
    g.maps.disallow_peer(&L3Addr::v4(GNB_A.octets())).expect("disallow");
    g.expect("A after removal", &uplink(GNB_A, 2), N2Verdict::DropNotAllowed);
}

/// What `guard run` writes from `[dataplane] allow` (`N2Maps::set_allow`): the list as configured,
/// and nothing else. `N2_ALLOW` is pinned and outlives a restart, so a gNB taken off the list
/// must leave the map as well, or it would still be admitted.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_allow_list_is_the_configured_one_after_a_restart() {
    assert_root("verdict::n2::stages::the_allow_list_is_the_configured_one_after_a_restart");
    let cfg = N2Config { enabled: N2_PROT_ALL, ..enforce_all() };
    let mut g = load(&cfg);
    let (a, b) = (L3Addr::v4(GNB_A.octets()), L3Addr::v4(GNB_B.octets()));
    assert_eq!(g.maps.set_allow(&[a, b]).expect("allow A and B"), vec![]);
    g.expect("A listed", &uplink(GNB_A, 1), N2Verdict::PassData);
    g.expect("B listed", &uplink(GNB_B, 1), N2Verdict::PassData);
    // The next start's configuration lists A alone.
    assert_eq!(g.maps.set_allow(&[a]).expect("allow A"), vec![b], "B is removed");
    assert_eq!(g.maps.allowed(), vec![a]);
    g.expect("A still listed", &uplink(GNB_A, 2), N2Verdict::PassData);
    g.expect("B no longer listed", &uplink(GNB_B, 2), N2Verdict::DropNotAllowed);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn initial_ue_messages_count_per_cell_and_device() {
    assert_root("verdict::n2::stages::initial_ue_messages_count_per_cell_and_device");
    let mut g = load(&enforce_all());
    let nci = 0x9_8765_4321u64;
    let cell = N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: nci };
    // 1. Registered device: FiveG-S-TMSI IE, protected Service Request.
    let t = tmsi(0x155, 0x2a, 0xdead_beef);
    let m = InitialUeMessage::nr(1001, nci).s_tmsi(t.set_id, t.pointer, t.tmsi).nas(ngap::service_request(t));
    g.expect("InitialUE with 5G-S-TMSI", &from(GNB_A).chunk(Chunk::ngap(1, &m.encode())).build(), N2Verdict::PassData);
    let dev = N2DeviceKey::five_g_s_tmsi(0x155, 0x2a, 0xdead_beef);
    let d = g.maps.device(&dev).expect("map").expect("device by 5G-S-TMSI");
    assert_eq!((d.attempts, d.service_requests, d.registration_requests), (1, 1, 0));
    assert_eq!((d.cell, d.ran_ue_id, d.nas_msg, d.rrc_cause), (cell, 1001, 0x4c, 3));
    assert_eq!(d.peer, L3Addr::v4(GNB_A.octets()));
    // 2. A new device: SUCI, no S-TMSI: identified by (peer, RAN-UE-NGAP-ID).
    let m = InitialUeMessage::nr(0x0012_3456, nci);
    g.expect("InitialUE with SUCI", &from(GNB_A).chunk(Chunk::ngap(2, &m.encode())).build(), N2Verdict::PassData);
    let key = N2DeviceKey::ran_ue(&L3Addr::v4(GNB_A.octets()), 0x0012_3456).expect("v4");
    let d = g.maps.device(&key).expect("map").expect("device by RAN-UE-NGAP-ID");
    assert_eq!((d.attempts, d.registration_requests), (1, 1));
    // 3. 5G-GUTI in a plain Registration Request: the same identity as its 5G-S-TMSI.
    let m = InitialUeMessage::nr(1002, nci).nas(ngap::registration_request_guti(&PLMN_00101, 0xca, t));
    g.expect("InitialUE with a 5G-GUTI", &from(GNB_A).chunk(Chunk::ngap(3, &m.encode())).build(), N2Verdict::PassData);
    let d = g.maps.device(&dev).expect("map").expect("device");
    assert_eq!((d.attempts, d.registration_requests, d.service_requests), (2, 1, 1));
    // 4. Two InitialUEMessages bundled in one packet, one an emergency call, on an E-UTRA cell.
    let e = InitialUeMessage::nr(7, 0).cell(Cell::Eutra(0x0abc_def1)).cause(ngap::CAUSE_EMERGENCY);
    let f = from(GNB_B)
        .chunk(Chunk::ngap(1, &e.encode()))
        .chunk(Chunk::ngap(2, &InitialUeMessage::nr(8, nci).s_tmsi(1, 1, 1).encode()))
        .build();
    g.expect("two InitialUEs", &f, N2Verdict::PassData);
    let c = g.maps.cell(&cell).expect("map").expect("NR cell");
    assert_eq!((c.initial_ue, c.registration_requests, c.service_requests, c.with_s_tmsi), (4, 3, 1, 3));
    assert_eq!((c.tac, c.last_peer, c.priority), (1, L3Addr::v4(GNB_B.octets()), 0));
    let ecell = N2CellKey { kind: CELL_KIND_EUTRA, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0x0abc_def1 };
    let c = g.maps.cell(&ecell).expect("map").expect("E-UTRA cell");
    assert_eq!((c.initial_ue, c.priority), (1, 1));
    assert_eq!(g.peer(GNB_A).ue_walked, 3);
    assert_eq!(g.peer(GNB_B).ue_walked, 2);
    // 5. S1AP on 36412: eNB, S-TMSI, E-UTRAN CGI.
    let s = SctpFrame::s1ap()
        .v4(GNB_B, AMF)
        .chunk(Chunk::s1ap(1, &s1ap::initial_ue_message(0x42, 0x0123_4567, 7, Some((0x11, 0xcafe_f00d)))))
        .build();
    g.expect("S1AP Initial UE Message", &s, N2Verdict::PassData);
    let d = g.maps.device(&N2DeviceKey::s_tmsi(0x11, 0xcafe_f00d)).expect("map").expect("S1AP device");
    assert_eq!((d.attempts, d.registration_requests, d.ran_ue_id, d.rrc_cause), (1, 1, 0x42, 3));
    let ecell = N2CellKey { kind: CELL_KIND_EUTRA, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0x0123_4567 };
    assert_eq!(g.maps.cell(&ecell).expect("map").expect("S1AP cell").tac, 7);
    assert_eq!(g.peer(GNB_B).flags, PEER_FLAG_NGAP | PEER_FLAG_S1AP);
    // 6. A quarantined peer's InitialUEs are dropped and not counted.
    g.stage(GNB_A, &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    g.expect(
        "quarantined InitialUE",
        &from(GNB_A).chunk(Chunk::ngap(9, &InitialUeMessage::nr(1, nci).encode())).build(),
        N2Verdict::DropQuarantine,
    );
    assert_eq!(g.maps.cell(&cell).expect("map").expect("cell").initial_ue, 4);
    // 7. An undecodable InitialUEMessage passes; only a counter moves.
    let d = g.expect(
        "garbage InitialUE",
        &from(GNB_B).chunk(Chunk::ngap(3, &[0x00, 15, 0x40, 0x7f, 0, 0, 9])).build(),
        N2Verdict::PassData,
    );
    assert_eq!(d.stat(N2_STAT_NGAP_UNPARSED), 1);
}
