//! The N2 replay (issue 21): `guard_n2` loaded for a replay (`n2::load::load_replay`) stamps its
//! state with the time the replay wrote (`REPLAY_NOW_NS` in `.bss`), not the kernel's, and a live
//! load never does; and `guard replay --n2-config` on a capture of an INIT flood from one gNB beside
//! a quiet one gives the flooding peer, and only it, a setup stage.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use aya::maps::{Array, MapData};
use guard::n2::load::{self as n2load, LoadOpts};
use guard_common::abi::{L3Addr, GLOBAL_REPLAY_NOW, MAP_BSS};
use labkit::assert_root;
use labkit::bpf::{pin_to_current_cpu, PinScope, XDP_PASS};
use labkit::n2lab::bpf::enforce_all;
use labkit::sctp_frames::{Chunk, SctpFrame};

const GNB: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 11);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);

fn init() -> Vec<u8> {
    SctpFrame::ngap().v4(GNB, AMF).vtag(0).chunk(Chunk::init(0x1111_0001, 100)).build()
}

fn run(loaded: &mut n2load::N2Loaded, frame: &[u8]) -> u32 {
    use aya::programs::{TestRun, TestRunOptions};
    let prog = loaded.program().expect("guard_n2");
    prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })
        .expect("BPF_PROG_TEST_RUN")
        .return_value
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_n2_reads_the_replay_clock_only_in_a_replay_load() {
    assert_root("replay_n2::guard_n2_reads_the_replay_clock_only_in_a_replay_load");
    pin_to_current_cpu().expect("pin to a CPU");
    let opts = LoadOpts { max_devices: 1024, max_cells: 256, max_peers: 256 };
    let gnb = L3Addr::v4(GNB.octets());

    let scope = PinScope::new("rn2");
    let (mut loaded, maps) = n2load::load_replay(&scope.pins, &opts, &enforce_all()).expect("replay load");
    let mut clock: Array<MapData, u64> =
        Array::try_from(loaded.ebpf.take_map(MAP_BSS).expect(".bss")).expect("the .bss is one u64");
    // Two capture times far from the machine's clock: 1,000 s and 1,042.5 s on the replay's scale.
    for t in [1_000_000_000_000u64, 1_042_500_000_000] {
        clock.set(0, t, 0).unwrap_or_else(|e| panic!("writing {GLOBAL_REPLAY_NOW}: {e}"));
        assert_eq!(run(&mut loaded, &init()), XDP_PASS);
        let seen = maps.peer(&gnb).expect("N2_PEERS").expect("the peer's record").last_seen_ns;
        assert_eq!(seen, t, "guard_n2 stamped the replay's time");
    }

    let live_scope = PinScope::new("rn2l");
    let (mut live, live_maps) = n2load::load(&live_scope.pins, &opts, &enforce_all()).expect("live load");
    let mut live_clock: Array<MapData, u64> =
        Array::try_from(live.ebpf.take_map(MAP_BSS).expect(".bss")).expect("the .bss is one u64");
    live_clock.set(0, 7, 0).expect("writing the global");
    let before = guard::clock::monotonic_ns();
    assert_eq!(run(&mut live, &init()), XDP_PASS);
    let seen = live_maps.peer(&gnb).expect("N2_PEERS").expect("the peer's record").last_seen_ns;
    // The live clock is the coarse CLOCK_MONOTONIC (`clock::n2_ns`): as of the last tick, at most
    // two ticks behind (docs/dataplane.md; a tick is at most 10 ms at HZ >= 100).
    const TWO_TICKS_NS: u64 = 20_000_000;
    assert!(
        seen + TWO_TICKS_NS >= before && seen <= guard::clock::monotonic_ns(),
        "a live load reads CLOCK_MONOTONIC (coarse): {seen}, the fine clock before the run {before}"
    );
}

/// 10 s: gNB A sends one NGAP DATA chunk every 200 ms; gNB B, from 3 s on, 200 INITs a second.
fn n2_traffic() -> Vec<(u64, Vec<u8>)> {
    const T0: u64 = 1_764_936_000_000_000_000;
    let quiet = Ipv4Addr::new(10, 201, 0, 12);
    let mut v = Vec::new();
    let ue = labkit::sctp_frames::ngap::InitialUeMessage::nr(1, 0x1_0000_0001).encode();
    for k in 0..50u64 {
        let f = SctpFrame::ngap().v4(quiet, AMF).vtag(0x0a0b_0c0d).chunk(Chunk::ngap(k as u32 + 1, &ue)).build();
        v.push((T0 + k * 200_000_000, f));
    }
    for k in 0..1400u64 {
        v.push((T0 + 3_000_000_000 + k * 5_000_000, init()));
    }
    v.sort_by_key(|(t, _)| *t);
    v
}

/// `guard replay CAP --config config/guard.example.toml --n2-config config/n2.example.toml
/// [--local ...] --out OUT`.
fn example_options(cap: PathBuf, out: PathBuf, local: Vec<IpAddr>) -> guard::replay::Options {
    let root = labkit::guard_bin::workspace();
    guard::replay::Options {
        capture: cap,
        config: root.join("config/guard.example.toml"),
        compare: None,
        n2_config: Some(root.join("config/n2.example.toml")),
        local,
        out,
        pacing: guard::replay::Pacing::AsFastAsPossible,
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn n2_capture_of_an_init_flood_stages_that_peer_only() {
    assert_root("replay_n2::n2_capture_of_an_init_flood_stages_that_peer_only");
    let dir = labkit::oracle::TempDir::new("replay-n2").expect("temp dir");
    let cap = dir.path().join("n2.pcap");
    labkit::capture::write_pcap_ns(&cap, 1, &n2_traffic()).expect("capture");
    let out =
        guard::replay::replay(&example_options(cap, dir.path().join("out"), Vec::new()), &mut guard::replay::Quiet)
            .expect("replay");
    let n2 = out.n2.expect("an N2 report");
    eprintln!("{}", n2.markdown());
    assert!(n2.capture.complete);
    assert_eq!(n2.capture.frames_replayed, 50 + 1400);
    assert_eq!(n2.peers_staged, vec![format!("peer:{GNB}")], "the flooding peer, and only it");
    assert!(n2.verdicts.keys().any(|k| k.starts_with("drop")), "the setup stage dropped INITs: {:?}", n2.verdicts);
    assert!(dir.path().join("out/n2/report.md").exists() && dir.path().join("out/n2/audit.jsonl").exists());
}

/// The AMF's Initiate Tag in the INIT ACK of [`cookie_traffic`].
const AMF_TAG: u32 = 0x5eed_c0de;

/// 8 s of INITs from gNB `GNB` (200 a second: the controller gives the peer a setup stage), then,
/// at the instant of the last INIT (whose admission or refusal leaves the peer's GCRA with
/// nothing more to give at that instant), the AMF's INIT ACK to the gNB's port (tag
/// [`AMF_TAG`]), the gNB's COOKIE ECHO carrying that tag with a DATA chunk bundled (RFC 9260
/// §5.1: the cookie comes back with the INIT ACK's tag as its verification tag), and a forger's
/// COOKIE ECHO from the same address and port with a tag the AMF never issued, also with DATA.
fn cookie_traffic() -> Vec<(u64, Vec<u8>)> {
    const T0: u64 = 1_764_936_000_000_000_000;
    const MS: u64 = 1_000_000;
    let ue = labkit::sctp_frames::ngap::InitialUeMessage::nr(1, 0x1_0000_0001).encode();
    let echo = |vtag: u32| {
        SctpFrame::ngap()
            .v4(GNB, AMF)
            .vtag(vtag)
            .chunk(Chunk::cookie_echo(&[0xc0; 64]))
            .chunk(Chunk::ngap(1, &ue))
            .build()
    };
    let mut v: Vec<(u64, Vec<u8>)> = (0..1600u64).map(|k| (T0 + k * 5 * MS, init())).collect();
    let init_ack = SctpFrame::ngap().v4(AMF, GNB).vtag(0x1111_0001).chunk(Chunk::init_ack(AMF_TAG, 7, &[0xc0; 64]));
    let last = v.last().map_or(T0, |(t, _)| *t);
    v.push((last, init_ack.build()));
    v.push((last, echo(AMF_TAG)));
    v.push((last, echo(AMF_TAG ^ 0x00ff_ff00)));
    v
}

/// Item 2 of docs/replay.md's egress classifier: a capture with both directions, replayed with
/// the AMF's address (`--local`), runs the AMF's INIT ACK through `guard_n2_egress`, so under
/// `cookie_check = require` the gNB's COOKIE ECHO takes its cookie lane (passes with its DATA,
/// `pass_data`) and the forger's is limited like any setup packet of the setup-staged peer
/// (dropped), as the live guard does (`verdict::n2::setup`, a_cookie_echo_the_amf_invited...).
/// Without `--local` the direction is unknown: no egress classifier, `require` falls back to
/// `prefer`, both COOKIE ECHOs are spared for their DATA, and the report says so.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_egress_classifier_replays_cookie_check_require() {
    assert_root("replay_n2::the_egress_classifier_replays_cookie_check_require");
    let dir = labkit::oracle::TempDir::new("replay-n2-cookie").expect("temp dir");
    let cap = dir.path().join("n2-both-ways.pcap");
    labkit::capture::write_pcap_ns(&cap, 1, &cookie_traffic()).expect("capture");
    let replay = |local: Vec<IpAddr>, out: &str| {
        let o = example_options(cap.clone(), dir.path().join(out), local);
        let n2 = guard::replay::replay(&o, &mut guard::replay::Quiet).expect("replay").n2.expect("an N2 report");
        eprintln!("{}", n2.markdown());
        assert!(n2.capture.complete);
        assert_eq!(n2.peers_staged, vec![format!("peer:{GNB}")], "the INIT flood gave the gNB a setup stage");
        n2
    };
    let v = |n2: &guard::replay::n2::N2Report, k: &str| n2.verdicts.get(k).copied().unwrap_or(0);
    let e = |n2: &guard::replay::n2::N2Report, k: &str| n2.setup_events.get(k).copied().unwrap_or(0);

    let with = replay(vec![AMF.into()], "with-local");
    assert!(with.egress_classifier && with.cookie_check == "require");
    assert_eq!(with.capture.egress, 1, "the INIT ACK, and only it, went through guard_n2_egress");
    assert_eq!(with.capture.frames_replayed, 1600 + 2);
    assert_eq!(e(&with, "egress_init_ack"), 1, "the classifier recorded the AMF's tag");
    assert_eq!(e(&with, "cookie_issued"), 1, "the gNB's COOKIE ECHO carried an issued tag");
    assert_eq!(e(&with, "cookie_unissued"), 1, "the forger's did not");
    assert_eq!(v(&with, "pass_data"), 1, "the gNB's COOKIE ECHO passed on its lane, with its DATA");
    assert_eq!(v(&with, "pass_data_spared"), 0, "require: an unissued COOKIE ECHO is not spared for its DATA");

    let without = replay(Vec::new(), "without-local");
    assert!(!without.egress_classifier && without.cookie_check == "prefer");
    assert_eq!(without.capture.egress, 0);
    assert_eq!(without.capture.frames_replayed, 1600 + 3, "the INIT ACK too went through guard_n2");
    assert_eq!(e(&without, "egress_init_ack") + e(&without, "cookie_issued"), 0, "no lane without the classifier");
    assert_eq!(e(&without, "cookie_unissued"), 2);
    assert_eq!(v(&without, "pass_data_spared"), 2, "prefer: both COOKIE ECHOs spared for their DATA");
    assert!(without.markdown().contains("Direction: unknown"), "the report says the fallback");
    // The same frames before the INIT ACK, so the same INIT verdicts: the forger's COOKIE ECHO
    // is the one more drop.
    assert_eq!(with.actions.dropped, without.actions.dropped + 1, "the forged COOKIE ECHO dropped under require");
}
