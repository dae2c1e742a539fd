//! Every SCTP chunk type and bundle (RFC 9260 §3.2), truncation at every offset, malformed SCTP,
//! non-N2 traffic, and the verifier's cost of `guard_n2`.

use super::*;

// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn every_chunk_type_has_a_verdict_and_its_peer_counter() {
    assert_root("verdict::n2::chunks::every_chunk_type_has_a_verdict_and_its_peer_counter");
    let mut g = load(&enforce_all());
    let ue = InitialUeMessage::nr(1, 0x1_0000_0001).encode();
    let cases: Vec<(&str, SctpFrame, N2Verdict, usize)> = vec![
        ("DATA (NGAP)", from(GNB_A).chunk(Chunk::ngap(1, &ue)), N2Verdict::PassData, CHUNK_CLASS_DATA),
        ("INIT", from(GNB_A).vtag(0).chunk(Chunk::init(0xabcd, 1)), N2Verdict::PassSetup, CHUNK_CLASS_INIT),
        (
            "INIT ACK",
            from(GNB_A).chunk(Chunk::init_ack(0xabcd, 1, &[1; 24])),
            N2Verdict::PassControl,
            CHUNK_CLASS_INIT_ACK,
        ),
        ("SACK", from(GNB_A).chunk(Chunk::sack(10, &[(2, 3)], &[9])), N2Verdict::PassControl, CHUNK_CLASS_SACK),
        ("HEARTBEAT", from(GNB_A).chunk(Chunk::heartbeat(&[7; 12])), N2Verdict::PassControl, CHUNK_CLASS_HEARTBEAT),
        (
            "HEARTBEAT ACK",
            from(GNB_A).chunk(Chunk::heartbeat_ack(&[7; 12])),
            N2Verdict::PassControl,
            CHUNK_CLASS_HEARTBEAT_ACK,
        ),
        ("ABORT", from(GNB_A).chunk(Chunk::abort(false)), N2Verdict::PassControl, CHUNK_CLASS_ABORT),
        ("SHUTDOWN", from(GNB_A).chunk(Chunk::shutdown(10)), N2Verdict::PassControl, CHUNK_CLASS_SHUTDOWN),
        ("SHUTDOWN ACK", from(GNB_A).chunk(Chunk::shutdown_ack()), N2Verdict::PassControl, CHUNK_CLASS_SHUTDOWN),
        (
            "SHUTDOWN COMPLETE",
            from(GNB_A).chunk(Chunk::shutdown_complete()),
            N2Verdict::PassControl,
            CHUNK_CLASS_SHUTDOWN,
        ),
        ("ERROR", from(GNB_A).chunk(Chunk::error()), N2Verdict::PassControl, CHUNK_CLASS_ERROR),
        ("COOKIE ECHO", from(GNB_A).chunk(Chunk::cookie_echo(&[3; 40])), N2Verdict::PassSetup, CHUNK_CLASS_COOKIE_ECHO),
        ("COOKIE ACK", from(GNB_A).chunk(Chunk::cookie_ack()), N2Verdict::PassControl, CHUNK_CLASS_COOKIE_ACK),
        (
            "FORWARD-TSN (192)",
            from(GNB_A).chunk(Chunk::raw(192, 0, &[0, 0, 0, 9])),
            N2Verdict::PassControl,
            CHUNK_CLASS_OTHER,
        ),
    ];
    for (name, f, verdict, class) in cases {
        let frame = f.build();
        let before = g.peer(GNB_A);
        let d = g.expect(name, &frame, verdict);
        assert!(d.moved_malformed().is_empty(), "{name}: {:?}", d.moved_malformed());
        let after = g.peer(GNB_A);
        assert_eq!(after.packets, before.packets + 1, "{name}");
        assert_eq!(after.bytes, before.bytes + frame.len() as u64, "{name}");
        assert_eq!(after.chunks[class], before.chunks[class] + 1, "{name}: chunk class {class}: {after:?}");
        assert_eq!(after.chunks.iter().sum::<u64>(), before.chunks.iter().sum::<u64>() + 1, "{name}");
    }
    let p = g.peer(GNB_A);
    assert_eq!(p.procs[PROC_INITIAL_UE], 1);
    assert_eq!(p.setups, 2, "INIT and COOKIE ECHO are setups");
    assert_eq!(p.flags, PEER_FLAG_NGAP);
    assert_eq!(p.dropped, 0);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn bundles_are_walked_and_counted() {
    assert_root("verdict::n2::chunks::bundles_are_walked_and_counted");
    let mut g = load(&enforce_all());
    let nas = ngap::service_request(tmsi(3, 4, 5));
    let f = from(GNB_A)
        .chunk(Chunk::sack(41, &[], &[]))
        .chunk(Chunk::ngap(42, &ngap::uplink_nas_transport(1, 2, &nas, 0x22)))
        .build();
    g.expect("SACK + DATA", &f, N2Verdict::PassData);
    let f = from(GNB_A)
        .chunk(Chunk::cookie_echo(&[9; 36]))
        .chunk(Chunk::ngap(1, &ngap::ng_setup_request(0x102, "gnb-a")))
        .build();
    g.expect("COOKIE ECHO + DATA (NGSetupRequest)", &f, N2Verdict::PassData);
    let f = from(GNB_A)
        .chunk(Chunk::ngap(2, &InitialUeMessage::nr(9, 0x33).encode()))
        .chunk(Chunk::ngap(3, &ngap::initial_context_setup_response(7, 8)))
        .chunk(Chunk::ngap(4, &ngap::ue_context_release_request(7, 8)))
        .chunk(Chunk::data(5, 0, 0, 46, b"not NGAP: PPID 46 (Diameter)"))
        .build();
    g.expect("four DATA chunks", &f, N2Verdict::PassData);
    let p = g.peer(GNB_A);
    assert_eq!(p.chunks[CHUNK_CLASS_SACK], 1);
    assert_eq!(p.chunks[CHUNK_CLASS_COOKIE_ECHO], 1);
    assert_eq!(p.chunks[CHUNK_CLASS_DATA], 6);
    assert_eq!(
        p.procs,
        [1, 1, 1, 1, 0, 1, 0, 0],
        "initial UE, uplink NAS, NG setup, UE context release request, successful outcome"
    );
    assert_eq!(p.setups, 1);
    // A fragment that does not begin a message is not a PDU; a middle fragment is not counted.
    let frag = from(GNB_A).chunk(Chunk::ngap(6, &[0x00, 15, 0x40, 0x30]).flags(0x00)).build();
    g.expect("DATA middle fragment", &frag, N2Verdict::PassData);
    assert_eq!(g.peer(GNB_A).procs, p.procs);
    // Twenty chunks: sixteen (MAX_CHUNKS) are walked, the walk is cut (counted), the packet
    // passes.
    let mut many = from(GNB_A);
    for i in 0..20 {
        many = many.chunk(Chunk::ngap(100 + i, &ngap::uplink_nas_transport(1, 2, &nas, 0x22)));
    }
    let d = g.expect("twenty DATA chunks", &many.build(), N2Verdict::PassData);
    assert_eq!(d.stat(N2_STAT_WALK_CUT), 1);
    // IPv6 and a VLAN tag.
    let v6 = SctpFrame::ngap()
        .v6("fd00:100::11".parse().expect("v6"), "fd00:100::1".parse().expect("v6"))
        .vlan(42)
        .chunk(Chunk::sack(1, &[], &[]))
        .chunk(Chunk::ngap(7, &InitialUeMessage::nr(77, 0x44).encode()))
        .build();
    g.expect("IPv6 + VLAN SACK + DATA", &v6, N2Verdict::PassData);
    let p6 = g.maps.peer(&L3Addr::v6("fd00:100::11".parse::<Ipv6Addr>().expect("v6").octets())).expect("map");
    assert_eq!(p6.expect("v6 peer").procs[PROC_INITIAL_UE], 1);
    // Ethernet padding after the IP packet is not a chunk.
    let padded = from(GNB_A).chunk(Chunk::cookie_ack()).trailer(&[0; 10]).build();
    let d = g.expect("COOKIE ACK + Ethernet padding", &padded, N2Verdict::PassControl);
    assert!(d.moved_malformed().is_empty());
}

/// Where each layer ends in a built frame.
struct Layout {
    l2: usize,
    l3: usize,
    v6: bool,
}

fn expected_truncation(n: usize, lay: &Layout) -> N2Malformed {
    if n < 14 {
        N2Malformed::EthTruncated
    } else if n < lay.l2 {
        N2Malformed::VlanTruncated
    } else if n < lay.l3 {
        if lay.v6 {
            N2Malformed::Ipv6Truncated
        } else {
            N2Malformed::Ipv4Truncated
        }
    } else {
        // The common header is cut, or the IP length runs past the frame.
        N2Malformed::SctpTruncated
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn truncation_at_every_offset_has_a_defined_verdict() {
    assert_root("verdict::n2::chunks::truncation_at_every_offset_has_a_defined_verdict");
    let mut g = load(&enforce_all());
    let v4 = |tags: usize| Layout { l2: 14 + 4 * tags, l3: 14 + 4 * tags + 20, v6: false };
    let ue = InitialUeMessage::nr(5, 0xabc).s_tmsi(1, 2, 3).encode();
    let cases: Vec<(&str, Vec<u8>, Layout, N2Verdict)> = vec![
        ("InitialUEMessage", from(GNB_A).chunk(Chunk::ngap(1, &ue)).build(), v4(0), N2Verdict::PassData),
        ("INIT", init(GNB_A), v4(0), N2Verdict::PassSetup),
        (
            "VLAN COOKIE ECHO + DATA",
            from(GNB_A).vlan(9).chunk(Chunk::cookie_echo(&[1; 20])).chunk(Chunk::ngap(1, &ue)).build(),
            v4(1),
            N2Verdict::PassData,
        ),
        (
            "IPv6 SACK + DATA",
            SctpFrame::ngap()
                .v6("fd00:100::11".parse().expect("v6"), "fd00:100::1".parse().expect("v6"))
                .chunk(Chunk::sack(3, &[(1, 1)], &[]))
                .chunk(Chunk::ngap(4, &ngap::uplink_nas_transport(1, 2, &[0x7e, 0, 0x45], 3)))
                .build(),
            Layout { l2: 14, l3: 54, v6: true },
            N2Verdict::PassData,
        ),
    ];
    let mut checked = 0;
    for (name, full, lay, full_verdict) in &cases {
        for n in 0..=full.len() {
            let frame = &full[..n];
            let what = format!("{name} cut to {n} of {} bytes", full.len());
            if n < 14 {
                // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header.
                match g.run(frame) {
                    Err(e) => assert!(e.contains("Invalid argument"), "{what}: {e}"),
                    Ok(a) => assert_eq!(a, XDP_PASS, "{what}"),
                }
                continue;
            }
            if n == full.len() {
                let d = g.expect(&what, frame, *full_verdict);
                assert!(d.moved_malformed().is_empty(), "{what}");
                continue;
            }
            let reason = expected_truncation(n, lay);
            let v = if reason.is_sctp() { N2Verdict::DropMalformed } else { N2Verdict::PassMalformed };
            let d = g.expect(&what, frame, v);
            assert_eq!(d.moved_malformed(), vec![(reason, 1)], "{what}\nframe {}", hex(frame));
            checked += 1;
        }
    }
    println!("{checked} truncated frames checked");
    // Only the complete frames counted NGAP.
    assert_eq!(g.peer(GNB_A).procs[PROC_INITIAL_UE], 2);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn malformed_sctp_reasons_enforced_off_and_shadow() {
    assert_root("verdict::n2::chunks::malformed_sctp_reasons_enforced_off_and_shadow");
    let mut g = load(&enforce_all());
    let cases: Vec<(&str, Vec<u8>, N2Malformed)> = vec![
        ("no chunks", from(GNB_A).build(), N2Malformed::NoChunks),
        ("chunk length 2", from(GNB_A).chunk(Chunk::cookie_ack().length(2)).build(), N2Malformed::ChunkTooShort),
        ("DATA length 12", from(GNB_A).chunk(Chunk::raw(0, 3, &[0; 8])).build(), N2Malformed::ChunkTooShort),
        ("INIT length 16", from(GNB_A).vtag(0).chunk(Chunk::raw(1, 0, &[1; 12])).build(), N2Malformed::ChunkTooShort),
        (
            "chunk past the end",
            from(GNB_A).chunk(Chunk::cookie_echo(&[1; 8]).length(200)).build(),
            N2Malformed::ChunkOverrun,
        ),
        (
            "2 octets after the last chunk",
            from(GNB_A).chunk(Chunk::cookie_ack()).chunk(Chunk::raw(11, 0, &[]).length(4).no_pad()).build()[..]
                .split_at(0)
                .1
                .to_vec(),
            N2Malformed::NoChunks,
        ),
        (
            "INIT + HEARTBEAT",
            from(GNB_A).vtag(0).chunk(Chunk::init(5, 5)).chunk(Chunk::heartbeat(&[1; 4])).build(),
            N2Malformed::InitBundled,
        ),
        (
            "INIT with a verification tag",
            from(GNB_A).vtag(77).chunk(Chunk::init(5, 5)).build(),
            N2Malformed::InitBadVtag,
        ),
    ];
    // The "2 octets" case built by hand: a COOKIE ACK then 2 stray octets inside the IP length.
    let mut stray = from(GNB_A).chunk(Chunk::cookie_ack()).chunk(Chunk::raw(11, 0, &[])).build();
    stray.truncate(stray.len() - 2);
    let total = (stray.len() - 14) as u16;
    stray[16..18].copy_from_slice(&total.to_be_bytes());
    stray[24..26].copy_from_slice(&[0, 0]);
    let c = labkit::frames::internet_checksum(&stray[14..34]);
    stray[24..26].copy_from_slice(&c.to_be_bytes());
    let mut cases: Vec<_> = cases.into_iter().filter(|c| c.0 != "2 octets after the last chunk").collect();
    cases.push(("2 octets after the last chunk", stray, N2Malformed::ChunkTruncated));
    for (name, f, reason) in &cases {
        let d = g.expect(name, f, N2Verdict::DropMalformed);
        assert_eq!(d.moved_malformed(), vec![(*reason, 1)], "{name}");
    }
    assert_eq!(g.maps.peers().len(), 0, "malformed packets create no peer");
    // A known peer counts them.
    g.expect("a good packet", &uplink(GNB_A, 1), N2Verdict::PassData);
    g.expect("malformed again", &cases[0].1, N2Verdict::DropMalformed);
    assert_eq!((g.peer(GNB_A).malformed, g.peer(GNB_A).dropped), (1, 1));
    // Off: counted, passed.
    g.maps.write_config(&N2Config { enabled: N2_PROT_ALL & !N2_PROT_MALFORMED, ..enforce_all() }).expect("cfg");
    let d = g.expect("malformed, protection off", &cases[1].1, N2Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(N2Malformed::ChunkTooShort, 1)]);
    assert!(d.moved_shadow().is_empty());
    // Shadow: passed, counted as would-drop.
    g.maps.write_config(&N2Config { shadow: N2_PROT_MALFORMED, ..enforce_all() }).expect("cfg");
    let d = g.expect("malformed, shadow", &cases[1].1, N2Verdict::PassMalformed);
    assert_eq!(d.moved_shadow(), vec![(N2Verdict::DropMalformed, 1)]);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn non_n2_passes_untouched() {
    assert_root("verdict::n2::chunks::non_n2_passes_untouched");
    let mut g = load(&enforce_all());
    g.stage(GNB_A, &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    let udp = labkit::GtpFrame::gpdu(1).outer_v4(GNB_A, AMF).build();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("GTP-U/UDP from a quarantined peer", udp),
        ("SCTP to another port (Diameter 3868)", from(GNB_A).ports(3868, 3868).chunk(Chunk::cookie_ack()).build()),
        ("SCTP from 38412 to another port", from(GNB_A).ports(38412, 5000).chunk(Chunk::cookie_ack()).build()),
        ("LLDP", {
            let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0, 1, 0x88, 0xcc];
            f.extend_from_slice(&[0; 46]);
            f
        }),
    ];
    // IP fragments of SCTP are N2 now (issue 18 item 3): tests/tests/verdict_n2_setup.rs.
    for (name, f) in &cases {
        let d = g.expect(name, f, N2Verdict::PassNotN2);
        assert!(d.moved_malformed().is_empty(), "{name}");
    }
    assert_eq!(g.maps.peers().len(), 0);
    // No config written (ports 0): nothing is N2.
    g.maps.write_config(&N2Config::default()).expect("cfg");
    g.expect("no config", &init(GNB_A), N2Verdict::PassNotN2);
}

/// The verifier's cost of `guard_n2` (`bpf_prog_info.verified_insns`), printed for docs/n2.md §3
/// and held well below the kernel's 1,000,000-instruction limit: the InitialUEMessage walk is the
/// part that grows with its bounds (`MAX_UE_MSGS`, `MAX_IES`), and a bound raised carelessly
/// multiplies it.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_n2_verifies_within_budget() {
    assert_root("verdict::n2::chunks::guard_n2_verifies_within_budget");
    let mut g = load(&enforce_all());
    let info = g.loaded.program().expect("guard_n2").info().expect("bpf_prog_info");
    let n = info.verified_instruction_count().expect("kernel reports verified_insns (5.16+)");
    eprintln!("guard_n2: {n} instructions processed by the verifier");
    assert!(n > 0 && n < 500_000, "guard_n2 verified in {n} instructions: keep it under half the 1M limit");
}
