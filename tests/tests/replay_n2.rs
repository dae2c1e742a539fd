//! The N2 replay (issue 21): `guard_n2` loaded for a replay (`n2::load::load_replay`) stamps its
//! state with the time the replay wrote (`REPLAY_NOW_NS` in `.bss`), not the kernel's, and a live
//! load never does; and `guard replay --n2-config` on a capture of an INIT flood from one gNB beside
//! a quiet one gives the flooding peer, and only it, a setup stage.

use std::net::Ipv4Addr;

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

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn n2_capture_of_an_init_flood_stages_that_peer_only() {
    assert_root("replay_n2::n2_capture_of_an_init_flood_stages_that_peer_only");
    let dir = labkit::oracle::TempDir::new("replay-n2").expect("temp dir");
    let cap = dir.path().join("n2.pcap");
    labkit::capture::write_pcap_ns(&cap, 1, &n2_traffic()).expect("capture");
    let root = labkit::guard_bin::workspace();
    let o = guard::replay::Options {
        capture: cap,
        config: root.join("config/guard.example.toml"),
        compare: None,
        n2_config: Some(root.join("config/n2.example.toml")),
        out: dir.path().join("out"),
        pacing: guard::replay::Pacing::AsFastAsPossible,
    };
    let out = guard::replay::replay(&o, &mut guard::replay::Quiet).expect("replay");
    let n2 = out.n2.expect("an N2 report");
    eprintln!("{}", n2.markdown());
    assert!(n2.capture.complete);
    assert_eq!(n2.capture.frames_replayed, 50 + 1400);
    assert_eq!(n2.peers_staged, vec![format!("peer:{GNB}")], "the flooding peer, and only it");
    assert!(n2.verdicts.keys().any(|k| k.starts_with("drop")), "the setup stage dropped INITs: {:?}", n2.verdicts);
    assert!(dir.path().join("out/n2/report.md").exists() && dir.path().join("out/n2/audit.jsonl").exists());
}
