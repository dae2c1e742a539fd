//! State exhaustion (issue 7), through BPF_PROG_TEST_RUN: a flood of random TEIDs from random
//! (spoofed) gNB sources — each source with a fresh new-device budget, the worst case for the
//! per-gNB limit — churns the LRU device and cell maps. Known devices must keep their service,
//! staged devices their stage, and the maps must stay within their fixed capacity.

use std::net::Ipv4Addr;

use guard_common::{
    abi::{DeviceKey, GuardConfig, Limit, PROT_ALL, STAGE_QUARANTINE, STAGE_SHAPE},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::{stage_entry, Guard, TEST_MAX_DEVICES, XDP_PASS};
use labkit::frames::GtpFrame;

const SEC: u64 = 1_000_000_000;
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const GNB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);
/// The cell map's capacity (guard-ebpf/src/maps.rs, `N3_CELLS`).
const MAX_CELLS: usize = 65_536;
const FLOOD: usize = 150_000;
const KNOWN: u32 = 500;

fn gpdu(teid: u32, gnb: Ipv4Addr) -> Vec<u8> {
    GtpFrame::gpdu(teid).outer_v4(gnb, CORE).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10)).build()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn random_teid_and_gnb_flood_leaves_known_devices_and_stages_intact() {
    assert_root("exhaustion_n3::random_teid_and_gnb_flood_leaves_known_devices_and_stages_intact");
    let cfg = GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: SEC,
        new_device: Limit::per_second(1000, 2000),
        ..Default::default()
    };
    let mut g = Guard::load(&cfg).expect("load guard_n3");
    let known: Vec<Vec<u8>> = (0..KNOWN).map(|i| gpdu(0x10_0000 + i, GNB)).collect();
    for f in &known {
        g.expect("a known device's first packet", f, Verdict::PassGpdu);
    }
    let quarantined = 0x20_0001;
    let shaped = 0x20_0002;
    g.set_stage(&DeviceKey::teid(quarantined), &stage_entry(STAGE_QUARANTINE, 0, 0, 600 * SEC));
    g.set_stage(&DeviceKey::teid(shaped), &stage_entry(STAGE_SHAPE, 1, 2, 600 * SEC));

    // xorshift: reproducible "random" TEIDs and sources.
    let mut x = 0x9e37_79b9_u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut benign_dropped = 0;
    let before = g.counters();
    for i in 0..FLOOD {
        let teid = next();
        let src = Ipv4Addr::from(0x0a00_0000 | (next() & 0x00ff_ffff));
        g.run(&gpdu(teid, src)).expect("flood frame");
        // Known devices keep talking during the flood.
        if i % 300 == 0 {
            let k = &known[(i / 300) % known.len()];
            if g.run(k).expect("known frame") != XDP_PASS {
                benign_dropped += 1;
            }
        }
    }
    let d = g.counters().since(&before);
    let benign_sent = FLOOD.div_ceil(300);
    eprintln!(
        "flood of {FLOOD} random TEIDs from random gNBs: devices {} / {TEST_MAX_DEVICES}, cells {} / {MAX_CELLS}, \
         passed {}, benign {benign_dropped} of {benign_sent} dropped",
        g.device_count(),
        g.cell_count(),
        d.verdict(Verdict::PassGpdu)
    );
    assert_eq!(benign_dropped, 0, "known devices lost service during the flood");
    // The flood reached exhaustion: the device map (an LRU hash, which never holds more than its
    // size) is full, less what the kernel keeps on its per-CPU free lists.
    assert!(g.device_count() > TEST_MAX_DEVICES as usize / 2, "the flood filled the device map");
    assert!(d.verdict(Verdict::PassGpdu) > TEST_MAX_DEVICES as u64, "the flood did churn the device map");

    // Stages live in a map the data plane never evicts from: they hold.
    g.expect("quarantined device after the flood", &gpdu(quarantined, GNB), Verdict::DropQuarantine);
    let shaped_frame = gpdu(shaped, GNB);
    let passed = (0..10).filter(|_| g.run(&shaped_frame).expect("run") == XDP_PASS).count();
    assert_eq!(passed, 2, "the shaped device still gets exactly its burst of 2");
    // Every known device still passes afterwards (its counters may have been evicted and restart).
    for f in &known {
        g.expect("a known device after the flood", f, Verdict::PassGpdu);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_full_event_ring_is_counted_and_never_stalls_the_data_plane() {
    assert_root("exhaustion_n3::a_full_event_ring_is_counted_and_never_stalls_the_data_plane");
    use guard_common::abi::{MAP_N3_EVENTS, STAT_EVENTS_LOST, STAT_EVENTS_SENT};
    // Every packet over a 1-per-minute profile wants an event; no per-device gap, no rate limit:
    // nothing protects the ring, and nobody drains it.
    let cfg = GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        observe: Limit::per_interval(60 * SEC, 1),
        event_gap_ns: 0,
        event_rate: Limit::UNLIMITED,
        ..Default::default()
    };
    let mut g = Guard::load(&cfg).expect("load guard_n3");
    let ring = g.loaded.ebpf.take_map(MAP_N3_EVENTS).expect("N3_EVENTS in the object");
    let mut ring = aya::maps::RingBuf::try_from(ring).expect("N3_EVENTS is a ring buffer");
    let frame = gpdu(0x30_0000, GNB);
    let n = 10_000;
    let before = g.counters();
    let passed = g.run_n(&frame, n);
    let d = g.counters().since(&before);
    assert_eq!(passed, n, "every packet passes while the ring is full");
    assert_eq!(d.verdict(Verdict::PassGpdu), n as u64);
    let (sent, lost) = (d.stat(STAT_EVENTS_SENT), d.stat(STAT_EVENTS_LOST));
    eprintln!("ring: {sent} events sent, {lost} lost");
    assert!(lost > 0, "the ring never filled ({sent} sent)");
    assert_eq!(sent + lost, n as u64 - 1, "every wanted event is either sent or counted as lost");
    // Draining makes room: events flow again.
    let mut drained = 0;
    while ring.next().is_some() {
        drained += 1;
    }
    assert_eq!(drained, sent, "what was sent is in the ring");
    let before = g.counters();
    g.run_n(&frame, 10);
    assert_eq!(g.counters().since(&before).stat(STAT_EVENTS_SENT), 10, "events flow again after a drain");
}
