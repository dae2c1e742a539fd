//! Verdict tests of the N2 XDP program `guard_n2` through BPF_PROG_TEST_RUN (DESIGN §5): frames
//! from labkit's spec-written SCTP/NGAP builder (`labkit::sctp_frames`, not the guard's parser) go
//! through the real program, and each test checks the XDP action, the verdict counter that moved,
//! and the per-peer / per-cell / per-device state in the maps.
//!
//! The rule under test throughout (DESIGN §2): below stage 3 only association setup is limited,
//! and a packet carrying DATA is never dropped.

mod setup;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use guard::n2::{self, LoadOpts, N2Loaded, N2Maps};
use guard_common::{
    abi::{n2::N2StageEntry, L3Addr, STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT},
    abi_n2::*,
    parse::n2::N2Malformed,
    policy_n2::N2Verdict,
};
use labkit::assert_root;
use labkit::bpf::{hex, peer_stage_entry as stage_entry, pin_to_current_cpu, PinScope, XDP_DROP, XDP_PASS};
use labkit::sctp_frames::{
    ngap::{self, Cell, FiveGSTmsi, InitialUeMessage, PLMN_00101},
    s1ap, Chunk, SctpFrame,
};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 12);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);

fn enforce_all() -> N2Config {
    N2Config {
        ngap_port: NGAP_PORT as u32,
        s1ap_port: S1AP_PORT as u32,
        enabled: N2_PROT_ALL & !N2_PROT_ALLOWLIST,
        event_gap_ns: SEC,
        ..Default::default()
    }
}

/// Counter snapshot: verdicts, shadow, malformed, stats (packets, summed over CPUs).
#[derive(Clone, Debug, Default)]
struct Delta {
    verdicts: Vec<u64>,
    shadow: Vec<u64>,
    malformed: Vec<u64>,
    stats: Vec<u64>,
}

impl Delta {
    fn since(&self, b: &Delta) -> Delta {
        let d = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, b)| a.wrapping_sub(*b)).collect();
        Delta {
            verdicts: d(&self.verdicts, &b.verdicts),
            shadow: d(&self.shadow, &b.shadow),
            malformed: d(&self.malformed, &b.malformed),
            stats: d(&self.stats, &b.stats),
        }
    }
    fn moved_verdicts(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL.iter().map(|&v| (v, self.verdicts[v as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn moved_shadow(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL.iter().map(|&v| (v, self.shadow[v as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn moved_malformed(&self) -> Vec<(N2Malformed, u64)> {
        N2Malformed::ALL.iter().map(|&m| (m, self.malformed[m as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn stat(&self, i: u32) -> u64 {
        self.stats[i as usize]
    }
}

/// `guard_n2` loaded with its maps pinned in a fresh directory (removed on drop).
struct G {
    maps: N2Maps,
    loaded: N2Loaded,
    _scope: PinScope,
}

fn load(cfg: &N2Config) -> G {
    pin_to_current_cpu().expect("pin to a CPU");
    let scope = PinScope::new("n2");
    let opts = LoadOpts { max_devices: 4096, max_cells: 1024, max_peers: 1024 };
    let (loaded, maps) = n2::load(&scope.pins, &opts, cfg).unwrap_or_else(|e| panic!("loading guard_n2: {e}"));
    G { maps, loaded, _scope: scope }
}

impl G {
    fn run(&mut self, frame: &[u8]) -> Result<u32, String> {
        let prog = self.loaded.program().map_err(|e| e.to_string())?;
        use aya::programs::{TestRun, TestRunOptions};
        prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).map(|r| r.return_value).map_err(
            |e| {
                // The whole chain: aya's message, then the kernel's errno (e.g. "Invalid argument").
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                s
            },
        )
    }

    fn counters(&self) -> Delta {
        let m = &self.maps;
        Delta {
            verdicts: m.verdicts().expect("N2_VERDICTS").iter().map(|(_, c)| c.packets).collect(),
            shadow: m.shadow().expect("N2_SHADOW").iter().map(|(_, c)| c.packets).collect(),
            malformed: m.malformed().expect("N2_MALFORMED").iter().map(|(_, c)| c.packets).collect(),
            stats: m.stats().expect("N2_STATS").iter().map(|c| c.packets).collect(),
        }
    }

    #[track_caller]
    fn expect(&mut self, what: &str, frame: &[u8], expected: N2Verdict) -> Delta {
        let before = self.counters();
        let action = self.run(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
        let d = self.counters().since(&before);
        let want = if expected.is_drop() { XDP_DROP } else { XDP_PASS };
        assert_eq!(
            action,
            want,
            "{what}: action {action} for {}; verdicts {:?} malformed {:?}\nframe {}",
            expected.name(),
            d.moved_verdicts(),
            d.moved_malformed(),
            hex(frame)
        );
        assert_eq!(
            d.moved_verdicts(),
            vec![(expected, 1)],
            "{what}: malformed {:?}\nframe {}",
            d.moved_malformed(),
            hex(frame)
        );
        d
    }

    fn peer(&self, a: Ipv4Addr) -> N2PeerState {
        self.maps.peer(&L3Addr::v4(a.octets())).expect("N2_PEERS").unwrap_or_default()
    }

    fn stage(&mut self, a: Ipv4Addr, e: &N2StageEntry) {
        self.maps.set_peer_stage(&L3Addr::v4(a.octets()), e).expect("N2_PEER_STAGES");
    }
}

fn from(a: Ipv4Addr) -> SctpFrame {
    SctpFrame::ngap().v4(a, AMF).vtag(0x0a0b_0c0d)
}

fn init(a: Ipv4Addr) -> Vec<u8> {
    from(a).vtag(0).chunk(Chunk::init(0x1111_0000 | u32::from(a.octets()[3]), 100)).build()
}

fn cookie_echo(a: Ipv4Addr) -> Vec<u8> {
    from(a).chunk(Chunk::cookie_echo(&[0xc0; 32])).build()
}

fn uplink(a: Ipv4Addr, tsn: u32) -> Vec<u8> {
    let nas = ngap::deregistration_request(FiveGSTmsi { set_id: 1, pointer: 1, tmsi: 7 });
    from(a).chunk(Chunk::ngap(tsn, &ngap::uplink_nas_transport(5, 6, &nas, 0x10))).build()
}

fn tmsi(set_id: u16, pointer: u8, tmsi: u32) -> FiveGSTmsi {
    FiveGSTmsi { set_id, pointer, tmsi }
}

// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn every_chunk_type_has_a_verdict_and_its_peer_counter() {
    assert_root("verdict_n2::every_chunk_type_has_a_verdict_and_its_peer_counter");
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
    assert_root("verdict_n2::bundles_are_walked_and_counted");
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
    assert_root("verdict_n2::truncation_at_every_offset_has_a_defined_verdict");
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
    assert_root("verdict_n2::malformed_sctp_reasons_enforced_off_and_shadow");
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
    assert_root("verdict_n2::non_n2_passes_untouched");
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

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn init_flood_staging_limits_only_the_staged_source() {
    assert_root("verdict_n2::init_flood_staging_limits_only_the_staged_source");
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
    assert_root("verdict_n2::data_always_passes_at_stages_0_to_2");
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
        let ce_data = from(GNB_A)
            .chunk(Chunk::cookie_echo(&[5; 32]))
            .chunk(Chunk::ngap(1, &ngap::ng_setup_request(1, "a")))
            .build();
        g.expect("COOKIE ECHO + DATA at the setup limit", &ce_data, N2Verdict::PassDataSpared);
        g.expect("SACK", &from(GNB_A).chunk(Chunk::sack(9, &[], &[])).build(), N2Verdict::PassControl);
        g.expect("HEARTBEAT ACK", &from(GNB_A).chunk(Chunk::heartbeat_ack(&[2; 8])).build(), N2Verdict::PassControl);
        g.expect("COOKIE ECHO alone is still limited", &cookie_echo(GNB_A), drop);
    }
    let p = g.peer(GNB_A);
    assert_eq!(p.setup_spared, 2);
    assert_eq!(p.dropped, 4, "only the setup-only packets were dropped");
    assert_eq!(p.chunks[CHUNK_CLASS_DATA], 2 * 22);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn whole_peer_quarantine_drops_everything_from_that_peer() {
    assert_root("verdict_n2::whole_peer_quarantine_drops_everything_from_that_peer");
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
    assert_root("verdict_n2::allow_list_drops_unknown_peers_without_state");
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

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn initial_ue_messages_count_per_cell_and_device() {
    assert_root("verdict_n2::initial_ue_messages_count_per_cell_and_device");
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

/// The verifier's cost of `guard_n2` (`bpf_prog_info.verified_insns`), printed for docs/n2.md §3
/// and held well below the kernel's 1,000,000-instruction limit: the InitialUEMessage walk is the
/// part that grows with its bounds (`MAX_UE_MSGS`, `MAX_IES`), and a bound raised carelessly
/// multiplies it.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_n2_verifies_within_budget() {
    assert_root("verdict_n2::guard_n2_verifies_within_budget");
    let mut g = load(&enforce_all());
    let info = g.loaded.program().expect("guard_n2").info().expect("bpf_prog_info");
    let n = info.verified_instruction_count().expect("kernel reports verified_insns (5.16+)");
    eprintln!("guard_n2: {n} instructions processed by the verifier");
    assert!(n > 0 && n < 500_000, "guard_n2 verified in {n} instructions: keep it under half the 1M limit");
}
