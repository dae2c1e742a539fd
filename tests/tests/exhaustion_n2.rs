//! State exhaustion of the N2 program `guard_n2` (issue 7), through BPF_PROG_TEST_RUN: a flood
//! of INITs and of DATA (InitialUEMessages with random cells and random 5G-S-TMSIs, UplinkNAS
//! transports) from thousands of random, spoofed SCTP sources. Every source is a fresh peer
//! entry, every InitialUEMessage a fresh cell and device: the worst case for the LRU maps
//! `N2_PEERS`, `N2_CELLS` and `N2_DEVICES` (capacities set at load, guard-ebpf/src/maps_n2.rs).
//! Known peers must keep their service (their DATA passes, DESIGN §2: never drop DATA below the
//! top stage), staged peers their stage (`N2_PEER_STAGES` is userspace-owned, never evicted),
//! and the maps must stay within their fixed capacity. With the allow-list enforced, the same
//! flood must create no state at all (docs/n2.md §1).

use std::net::Ipv4Addr;

use guard_common::{
    abi::{L3Addr, Limit, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT},
    abi_n2::{
        N2Config, MAP_N2_EVENTS, N2_PROT_ALL, N2_STAT_EVENTS_LOST, N2_STAT_EVENTS_SENT, N2_STAT_MAP_UPDATE_FAILED,
    },
    policy_n2::N2Verdict,
};
use labkit::assert_root;
use labkit::bpf::{hex, peer_stage_entry as stage_entry, XDP_DROP, XDP_PASS};
use labkit::n2lab::bpf::{enforce_all, N2Guard, TEST_OPTS};
use labkit::sctp_frames::{
    ngap::{self, FiveGSTmsi, InitialUeMessage},
    Chunk, SctpFrame,
};

const SEC: u64 = 1_000_000_000;
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
const FLOOD: usize = 150_000;
/// Known gNBs, each with an established association (10.100.1.1 ..).
const KNOWN: u8 = 40;

fn known(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 100, 1, 1 + i)
}

fn l3(a: Ipv4Addr) -> L3Addr {
    L3Addr::v4(a.octets())
}

fn init(src: Ipv4Addr) -> Vec<u8> {
    SctpFrame::ngap().v4(src, AMF).vtag(0).chunk(Chunk::init(0x5150_0000, 1)).build()
}

fn uplink(src: Ipv4Addr, tsn: u32) -> Vec<u8> {
    let nas = ngap::service_request(FiveGSTmsi { set_id: 1, pointer: 1, tmsi: tsn });
    SctpFrame::ngap()
        .v4(src, AMF)
        .vtag(0x0a0b_0c0d)
        .chunk(Chunk::sack(tsn, &[], &[]))
        .chunk(Chunk::ngap(tsn, &ngap::uplink_nas_transport(9, 7, &nas, 0x10)))
        .build()
}

/// An InitialUEMessage with a 5G-S-TMSI in cell `nci`.
fn initial_ue(src: Ipv4Addr, nci: u64, tmsi: u32) -> Vec<u8> {
    let ue = InitialUeMessage::nr(7, nci).s_tmsi(1, 1, tmsi).encode();
    SctpFrame::ngap().v4(src, AMF).vtag(0x0a0b_0c0d).chunk(Chunk::ngap(1, &ue)).build()
}

/// Where `needle` sits in `hay` (to patch template frames instead of re-encoding 150,000).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap_or_else(|| panic!("{} in {}", hex(needle), hex(hay)))
}

/// xorshift32: reproducible "random" sources, cells and identities.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// A spoofed source in 10.0.0.0/8 outside the known gNBs' /24.
fn spoofed(r: &mut Rng) -> [u8; 4] {
    let mut a = (0x0a00_0000 | (r.next() & 0x00ff_ffff)).to_be_bytes();
    if a[1] == 100 && a[2] == 1 {
        a[2] = 2;
    }
    a
}

/// The flood's frames, built from three templates: the IP source (octets 26-29 of an untagged
/// IPv4 frame), the NR Cell Identity and the 5G-TMSI are patched in. The guard does not verify
/// the IPv4 or SCTP checksums (the receiving stack does), so the patch needs no re-sum.
struct Flood {
    init: Vec<u8>,
    data: Vec<u8>,
    ue: Vec<u8>,
    ue_nci_at: usize,
    ue_tmsi_at: usize,
    rng: Rng,
}

impl Flood {
    fn new() -> Flood {
        let (nci, tmsi) = (0x9_8765_4321_u64, 0xa1b2_c3d4_u32);
        let ue = initial_ue(Ipv4Addr::new(10, 9, 9, 9), nci, tmsi);
        Flood {
            init: init(Ipv4Addr::new(10, 9, 9, 9)),
            data: uplink(Ipv4Addr::new(10, 9, 9, 9), 5),
            ue_nci_at: find(&ue, &(nci << 4).to_be_bytes()[3..8]),
            ue_tmsi_at: find(&ue, &tmsi.to_be_bytes()),
            ue,
            rng: Rng(0x9e37_79b9),
        }
    }

    /// Packet `i`: an INIT, an UplinkNASTransport or an InitialUEMessage from a random source.
    fn frame(&mut self, i: usize) -> Vec<u8> {
        let mut f = match i % 3 {
            0 => self.init.clone(),
            1 => self.data.clone(),
            _ => {
                let mut f = self.ue.clone();
                let nci = (u64::from(self.rng.next()) << 4) & 0xf_ffff_fff0;
                f[self.ue_nci_at..self.ue_nci_at + 5].copy_from_slice(&(nci << 4).to_be_bytes()[3..8]);
                f[self.ue_tmsi_at..self.ue_tmsi_at + 4].copy_from_slice(&self.rng.next().to_be_bytes());
                f
            }
        };
        let src = spoofed(&mut self.rng);
        f[26..30].copy_from_slice(&src);
        f
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn spoofed_init_and_data_flood_leaves_known_peers_and_stages_intact() {
    assert_root("exhaustion_n2::spoofed_init_and_data_flood_leaves_known_peers_and_stages_intact");
    // Stage-0 setup profile of 10/s (burst 20) per peer: exceeding it is evidence, never a drop.
    let cfg = N2Config { setup_observe: Limit::per_second(10, 20), ..enforce_all() };
    let mut g = N2Guard::load(&cfg, TEST_OPTS).expect("load guard_n2");
    let opts = g.opts;
    // The known gNBs' associations: each sends an InitialUEMessage of a known device and an
    // UplinkNASTransport.
    for i in 0..KNOWN {
        let (a, b) = (initial_ue(known(i), 0x1000 + u64::from(i), 0x7700_0000 + u32::from(i)), uplink(known(i), 1));
        for f in [a, b] {
            assert_eq!(g.run(&f).expect("run"), XDP_PASS, "known gNB {i} before the flood");
        }
    }
    // Three staged peers: quarantined (stage 3), setup-limited (stage 1, 1/s burst 2), strict
    // (stage 2, 1/s burst 1), each for 10 minutes.
    let (quarantined, shaped, strict) = (known(0), known(1), known(2));
    let e = |a, s, pps, burst| (a, stage_entry(s, pps, burst, 600 * SEC));
    for (a, st) in [e(quarantined, STAGE_QUARANTINE, 0, 0), e(shaped, STAGE_SHAPE, 1, 2), e(strict, STAGE_STRICT, 1, 1)]
    {
        g.maps.set_peer_stage(&l3(a), &st).expect("N2_PEER_STAGES");
    }

    let mut flood = Flood::new();
    let mut benign_sent = 0u64;
    let mut benign_dropped = Vec::new();
    let before = g.counters().expect("counters");
    for i in 0..FLOOD {
        let f = flood.frame(i);
        g.run(&f).expect("flood frame");
        // The known, unstaged gNBs keep talking during the flood: DATA with an InitialUEMessage
        // of their known device, and SACK + UplinkNASTransport.
        if i % 250 == 0 {
            let k = 3 + ((i / 250) % usize::from(KNOWN - 3)) as u8;
            let f = if i % 500 == 0 {
                initial_ue(known(k), 0x1000 + u64::from(k), 0x7700_0000 + u32::from(k))
            } else {
                uplink(known(k), i as u32)
            };
            benign_sent += 1;
            if g.run(&f).expect("known frame") != XDP_PASS {
                benign_dropped.push(k);
            }
        }
    }
    let d = g.counters().expect("counters").since(&before);
    let (peers, cells, devices) = (g.peer_count(), g.cell_count(), g.device_count());
    eprintln!(
        "flood of {FLOOD} INIT / DATA packets from random sources: peers {peers} / {}, cells {cells} / {}, devices \
         {devices} / {}; verdicts {:?}; benign {} of {benign_sent} dropped",
        opts.max_peers,
        opts.max_cells,
        opts.max_devices,
        d.moved_verdicts(),
        benign_dropped.len()
    );
    assert!(benign_dropped.is_empty(), "known gNBs lost DATA during the flood: {benign_dropped:?}");
    // The flood reached exhaustion: each map (an LRU hash, which never holds more than its size)
    // is full, less what the kernel keeps on its per-CPU free lists.
    assert!(peers > opts.max_peers as usize / 2, "the flood filled the peer map");
    assert!(cells > opts.max_cells as usize / 2, "the flood filled the cell map");
    assert!(devices > opts.max_devices as usize / 2, "the flood filled the device map");
    // The flood did churn every map: far more fresh keys than room.
    assert_eq!(d.verdict(N2Verdict::PassSetup), FLOOD.div_ceil(3) as u64, "every spoofed INIT is a setup at stage 0");
    assert!(FLOOD as u64 / 3 > 4 * u64::from(opts.max_peers.max(opts.max_cells).max(opts.max_devices)));
    // LRU maps evict; inserting never fails and nothing fails open.
    assert_eq!(d.stat(N2_STAT_MAP_UPDATE_FAILED), 0, "a map insert failed");
    assert_eq!(d.verdict(N2Verdict::PassFailOpen), 0);

    // The stages hold after the flood.
    for f in [init(quarantined), uplink(quarantined, 9)] {
        let (a, dd) = g.run_delta(&f).expect("run");
        assert_eq!((a, dd.moved_verdicts()), (XDP_DROP, vec![(N2Verdict::DropQuarantine, 1)]), "quarantined peer");
    }
    let shaped_init = init(shaped);
    let passed = (0..10).filter(|_| g.run(&shaped_init).expect("run") == XDP_PASS).count();
    assert_eq!(passed, 2, "the setup-limited peer still gets exactly its burst of 2 INITs");
    let strict_init = init(strict);
    let passed = (0..10).filter(|_| g.run(&strict_init).expect("run") == XDP_PASS).count();
    assert_eq!(passed, 1, "the strict peer still gets exactly its burst of 1 INIT");
    for a in [shaped, strict] {
        let (act, dd) = g.run_delta(&uplink(a, 77)).expect("run");
        assert_eq!(
            (act, dd.moved_verdicts()),
            (XDP_PASS, vec![(N2Verdict::PassData, 1)]),
            "a staged peer's DATA passes"
        );
    }
    // Every known gNB's association still carries DATA and its InitialUEMessages are counted on
    // their cell and device again (their counters may have been evicted and restart).
    for k in 3..KNOWN {
        let (a, dd) =
            g.run_delta(&initial_ue(known(k), 0x1000 + u64::from(k), 0x7700_0000 + u32::from(k))).expect("run");
        assert_eq!((a, dd.moved_verdicts()), (XDP_PASS, vec![(N2Verdict::PassData, 1)]), "known gNB {k} after");
        assert!(g.peer(&l3(known(k))).ue_walked >= 1, "known gNB {k}'s InitialUEMessage walked");
    }
    let dev = g.maps.device(&guard_common::abi_n2::N2DeviceKey::five_g_s_tmsi(1, 1, 0x7700_0000 + 5)).expect("map");
    assert!(dev.is_some_and(|d| d.attempts >= 1), "a known device is counted after the flood");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn with_the_allow_list_a_spoofed_flood_creates_no_state() {
    assert_root("exhaustion_n2::with_the_allow_list_a_spoofed_flood_creates_no_state");
    let mut g = N2Guard::load(&N2Config { enabled: N2_PROT_ALL, ..enforce_all() }, TEST_OPTS).expect("load");
    for i in 0..KNOWN {
        g.maps.allow_peer(&l3(known(i))).expect("N2_ALLOW");
        assert_eq!(g.run(&uplink(known(i), 1)).expect("run"), XDP_PASS);
    }
    let mut flood = Flood::new();
    let before = g.counters().expect("counters");
    let n = 30_000;
    for i in 0..n {
        g.run(&flood.frame(i)).expect("flood frame");
        if i % 100 == 0 {
            let k = (i / 100) as u8 % KNOWN;
            assert_eq!(g.run(&uplink(known(k), i as u32)).expect("run"), XDP_PASS, "allowed gNB {k}");
        }
    }
    let d = g.counters().expect("counters").since(&before);
    assert_eq!(d.verdict(N2Verdict::DropNotAllowed), n as u64, "every spoofed packet is refused");
    assert_eq!(g.peer_count(), usize::from(KNOWN), "only the allowed peers have state");
    assert_eq!((g.cell_count(), g.device_count()), (0, 0), "no cell or device state from refused packets");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_full_event_ring_is_counted_and_never_stalls_the_data_plane() {
    assert_root("exhaustion_n2::a_full_event_ring_is_counted_and_never_stalls_the_data_plane");
    // Every INIT over a 1-per-minute profile wants an event; no per-peer gap, no rate limit:
    // nothing protects the ring, and nobody drains it.
    let cfg = N2Config {
        setup_observe: Limit::per_interval(60 * SEC, 1),
        event_gap_ns: 0,
        event_rate: Limit::UNLIMITED,
        ..enforce_all()
    };
    let mut g = N2Guard::load(&cfg, TEST_OPTS).expect("load");
    let ring = g.loaded.ebpf.take_map(MAP_N2_EVENTS).expect("N2_EVENTS in the object");
    let mut ring = aya::maps::RingBuf::try_from(ring).expect("N2_EVENTS is a ring buffer");
    let f = init(known(0));
    let n = 5_000u64;
    let before = g.counters().expect("counters");
    for _ in 0..n {
        assert_eq!(g.run(&f).expect("run"), XDP_PASS, "INITs at stage 0 pass while the ring is full");
    }
    let d = g.counters().expect("counters").since(&before);
    assert_eq!(d.verdict(N2Verdict::PassSetup), n);
    let (sent, lost) = (d.stat(N2_STAT_EVENTS_SENT), d.stat(N2_STAT_EVENTS_LOST));
    eprintln!("N2 ring: {sent} events sent, {lost} lost");
    assert!(lost > 0, "the ring never filled ({sent} sent)");
    assert_eq!(sent + lost, n - 1, "every wanted event is either sent or counted as lost");
    let mut drained = 0;
    while ring.next().is_some() {
        drained += 1;
    }
    assert_eq!(drained, sent, "what was sent is in the ring");
    let before = g.counters().expect("counters");
    for _ in 0..10 {
        g.run(&f).expect("run");
    }
    assert_eq!(g.counters().expect("counters").since(&before).stat(N2_STAT_EVENTS_SENT), 10, "events flow again");
}
