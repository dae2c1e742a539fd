//! Verdict tests of the last-resort caps' byte form (issue 27) through BPF_PROG_TEST_RUN, on the
//! injectable clock (`guard_n3_replay`, `Guard::load_replay`): a per-gNB cap (`N3_CELL_STAGES`)
//! and the host cap (`N3_CONFIG`) with a byte rate beside the packet rate. Each packet's time
//! is set, not slept, so the counts are exact: a 1400-octet T-PDU at 100 kbit/s costs 112 ms.

use std::net::Ipv4Addr;

use guard_common::{
    abi::{ByteLimit, CellStageEntry, GuardConfig, Limit, CELL_STAGE_CAP},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::{l3_v4, Guard, XDP_DROP, XDP_PASS};
use labkit::frames::GtpFrame;

use super::enforce_all;

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const GNB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 21);
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const UE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);
/// The replayed time of the first packet: far from the machine's clock, on purpose.
const T0: u64 = 1_000 * SEC;
/// 100 kbit/s with a burst of 2800 octets: two 1400-octet T-PDUs and the one that crosses it.
const BPS: u64 = 100_000;
const BURST: u64 = 2_800;

/// A G-PDU of `teid` whose T-PDU is `tpdu` octets (IPv4 20 + UDP 8 + payload).
fn gpdu(teid: u32, tpdu: usize) -> Vec<u8> {
    GtpFrame::gpdu(teid).outer_v4(GNB, CORE).inner_v4(UE, Ipv4Addr::new(192, 0, 2, 10)).payload_len(tpdu - 28).build()
}

fn load(cfg: &GuardConfig) -> Guard {
    let mut g = Guard::load_replay(cfg).unwrap_or_else(|e| panic!("loading guard_n3_replay: {e:#}"));
    g.set_clock(T0);
    g
}

/// A cap on the gNB at `pps` (burst = one second of it) and `bytes`, live for a minute from T0.
fn cell_cap(pps: u64, bytes: ByteLimit) -> CellStageEntry {
    let l = Limit::per_second(pps, pps);
    CellStageEntry {
        stage: CELL_STAGE_CAP,
        interval_ns: l.interval_ns,
        tau_ns: l.tau_ns,
        expires_ns: T0 + 60 * SEC,
        set_ns: T0,
        bytes,
        ..Default::default()
    }
}

/// Sends `frame` every `every_ns` for `span_ns` from `from`; the passes.
fn paced(g: &mut Guard, frame: &[u8], from: u64, every_ns: u64, span_ns: u64) -> u64 {
    let mut passed = 0;
    let mut t = from;
    while t < from + span_ns {
        g.set_clock(t);
        passed += u64::from(g.run(frame).expect("run") == XDP_PASS);
        t += every_ns;
    }
    passed
}

/// 1400-octet T-PDUs at a packet rate far inside the cell cap's (1000 pps) are cut by its byte
/// rate: its burst and the packet that crosses it at one instant, one more per 112 ms, and over
/// 10 s of 1.12 Mbit/s offered, 100 kbit/s and the burst delivered (to the packet). Refused
/// packets count `drop_cell_cap`.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_cell_cap_with_a_byte_rate_cuts_large_packets_at_a_benign_packet_rate() {
    assert_root("verdict::n3::caps::a_cell_cap_with_a_byte_rate_cuts_large_packets_at_a_benign_packet_rate");
    let mut g = load(&enforce_all());
    g.maps.set_cell_stage(&l3_v4(GNB), &cell_cap(1000, ByteLimit::bits_per_second(BPS, BURST))).expect("cell cap");
    let big = gpdu(0x500, 1400);
    let v: Vec<u32> = (0..6).map(|_| g.run(&big).expect("run")).collect();
    assert_eq!(v, [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP]);
    g.set_clock(T0 + 111 * MS);
    g.expect("111 ms later: not yet", &big, Verdict::DropCellCap);
    g.set_clock(T0 + 112 * MS);
    g.expect("112 ms later: one packet's octets", &big, Verdict::PassGpdu);
    g.expect("and no more", &big, Verdict::DropCellCap);
    // Ten seconds of one packet every 10 ms (1.12 Mbit/s), from a second later (the backlog
    // gone): the burst (2800 octets) plus 10 s at 100 kbit/s (125,000), plus the packet that
    // crosses the burst: 92 packets of 1400.
    let passed = paced(&mut g, &big, T0 + 2 * SEC, 10 * MS, 10 * SEC);
    let want = (BURST + 10 * BPS / 8) / 1400 + 1;
    assert!(passed.abs_diff(want) <= 1, "{passed} passed, {want} expected");
    let d = g.teid(0x500).expect("device");
    assert_eq!(d.dropped(), d.packets() - passed - 4, "every refused packet counted against the device");
}

/// A cell cap without a byte rate is the packet cap as before, whatever the packets' size: a
/// burst of five at 5 pps, large or small.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_cell_cap_without_a_byte_rate_counts_packets_only() {
    assert_root("verdict::n3::caps::a_cell_cap_without_a_byte_rate_counts_packets_only");
    let mut g = load(&enforce_all());
    g.maps.set_cell_stage(&l3_v4(GNB), &cell_cap(5, ByteLimit::UNLIMITED)).expect("cell cap");
    for (i, len) in [1400usize, 60].into_iter().enumerate() {
        g.set_clock(T0 + 10 * SEC * i as u64);
        let f = gpdu(0x600 + i as u32, len);
        let v: Vec<u32> = (0..8).map(|_| g.run(&f).expect("run")).collect();
        assert_eq!(v, [[XDP_PASS; 5].as_slice(), [XDP_DROP; 3].as_slice()].concat(), "{len}-octet T-PDUs");
    }
}

/// The host cap's byte form: a byte rate alone (no packet rate) caps every gNB's large T-PDUs
/// (`drop_host_cap`) while it is live, and nothing from its expiry on.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_host_cap_has_a_byte_form() {
    assert_root("verdict::n3::caps::the_host_cap_has_a_byte_form");
    let cfg = GuardConfig {
        host_cap: Limit::UNLIMITED,
        host_cap_bytes: ByteLimit::bits_per_second(BPS, BURST),
        host_cap_expires_ns: T0 + 60 * SEC,
        ..enforce_all()
    };
    let mut g = load(&cfg);
    let big = gpdu(0x700, 1400);
    let v: Vec<u32> = (0..5).map(|_| g.run(&big).expect("run")).collect();
    assert_eq!(v, [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]);
    g.expect("over the host's byte rate", &big, Verdict::DropHostCap);
    let passed = paced(&mut g, &big, T0 + 2 * SEC, 10 * MS, 10 * SEC);
    let want = (BURST + 10 * BPS / 8) / 1400 + 1;
    assert!(passed.abs_diff(want) <= 1, "{passed} passed, {want} expected");
    g.set_clock(T0 + 60 * SEC);
    assert_eq!(g.run_n(&big, 50), 50, "the host cap expired");
}
