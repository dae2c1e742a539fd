//! Per-gNB state a forger cannot multiply or turn against a real gNB (issue 16, item 2), through
//! the real `guard_n3` by BPF_PROG_TEST_RUN with G-PDUs crafted by scapy (an encoder this project
//! did not write) and read back by tshark, built once for the whole file:
//!
//! - a source the guard does not know gets a record of its own only within the host's budget for
//!   new sources; the rest share one record and one new-device budget, so a TEID scan rotating
//!   its source address gets one budget in all, not one per address;
//! - a known gNB keeps its own budget while that happens;
//! - an established session whose record was evicted is re-admitted without any new-device
//!   budget, even when its gNB's budget has been emptied by a scan forged with its address;
//! - an established session vouches for a gNB the guard has not seen (a handover), whatever the
//!   new-source budget says.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use guard_common::{
    abi::{device_id, GuardConfig, Limit, ESTABLISHED_PACKETS, PROT_ALL},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::{l3_v4, Guard};
use labkit::sessions::{scapy_gpdus, SessionFrame, Tpdu};

const SEC: u64 = 1_000_000_000;
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);
const GNB_C: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 13);

/// Budgets that refill once an hour, so the test's own pace cannot hand out tokens.
fn hourly(burst: u64) -> Limit {
    Limit::per_interval(3600 * SEC, burst)
}

fn config(new_gnb: u64, unknown_new: u64, per_gnb_new: u64) -> GuardConfig {
    GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: SEC,
        new_device: hourly(per_gnb_new),
        new_gnb: hourly(new_gnb),
        unknown_new_device: hourly(unknown_new),
        ..Default::default()
    }
}

/// The forged sources of a rotating scan: 10.99.x.y.
fn scan_source(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, (i >> 8) as u8, i as u8)
}

/// Every (outer source, TEID) a test here sends, built by one scapy run.
fn frames() -> &'static HashMap<(Ipv4Addr, u32), Vec<u8>> {
    static FRAMES: OnceLock<HashMap<(Ipv4Addr, u32), Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut pairs: Vec<(Ipv4Addr, u32)> = (0..300).map(|i| (scan_source(i), 0x5000_0000 + i)).collect();
        pairs.extend([0x10, 0x11, 0x200].map(|t| (GNB_A, t)));
        pairs.extend((0..19).map(|t| (GNB_A, 0x100 + t)));
        pairs.extend((0..50).map(|t| (GNB_A, 0x6000_0000 + t)));
        pairs.extend([(GNB_C, 0x10), (Ipv4Addr::new(10, 200, 0, 14), 0x99)]);
        pairs.extend((0..100).map(|i| (scan_source(i), 0x10)));
        let core: &'static str = Box::leak(CORE.to_string().into_boxed_str());
        let specs: Vec<SessionFrame> = pairs
            .iter()
            .map(|(src, teid)| SessionFrame {
                gnb: Box::leak(src.to_string().into_boxed_str()),
                local: core,
                teid: *teid,
                tpdu: Tpdu::V4("10.45.0.2", "192.0.2.10"),
            })
            .collect();
        let built = scapy_gpdus(&specs).expect("scapy builds and tshark reads the G-PDUs");
        pairs.into_iter().zip(built).collect()
    })
}

fn gpdu(src: Ipv4Addr, teid: u32) -> Vec<u8> {
    frames().get(&(src, teid)).cloned().unwrap_or_else(|| panic!("no G-PDU ({src}, {teid:#x}) was built"))
}

fn verdict(g: &mut Guard, frame: &[u8]) -> Verdict {
    let (_, d) = g.run_delta(frame);
    let moved = d.moved_verdicts();
    assert_eq!(moved.len(), 1, "one verdict per frame: {moved:?}");
    moved[0].0
}

/// A scan: one G-PDU per (forged source, TEID), the sources rotating over 10.99.x.y.
fn rotating_scan(g: &mut Guard, n: u32) -> (usize, usize) {
    let (mut pass, mut drop) = (0, 0);
    for i in 0..n {
        match verdict(g, &gpdu(scan_source(i), 0x5000_0000 + i)) {
            Verdict::PassGpdu => pass += 1,
            Verdict::DropNewDevice => drop += 1,
            v => panic!("scan packet {i}: {v:?}"),
        }
    }
    (pass, drop)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_scan_rotating_its_source_gets_one_budget_and_a_known_gnb_keeps_its_own() {
    assert_root("verdict::n3::sources::a_scan_rotating_its_source_gets_one_budget_and_a_known_gnb_keeps_its_own");
    // 3 records for new sources, 10 new devices for all unknown sources together, 20 per gNB.
    let mut g = Guard::load(&config(3, 10, 20)).expect("load guard_n3");
    // gNB A is known before the scan: its first device got it a record.
    assert_eq!(verdict(&mut g, &gpdu(GNB_A, 0x10)), Verdict::PassGpdu);
    assert!(g.cell(IpAddr::V4(GNB_A)).is_some(), "gNB A has its record");
    // 300 forged sources, one never-seen TEID each: under the old per-source budgets every one
    // would pass. Now: 2 more sources get records (with their own budgets: 1 device each), and
    // the 298 others share 10 new devices.
    let (pass, drop) = rotating_scan(&mut g, 300);
    assert_eq!((pass, drop), (2 + 10, 288), "one shared budget for the unknown sources");
    assert_eq!(g.cell_count(), 3, "per-gNB state is bounded by the new-source budget");
    // The known gNB's own new sessions are untouched by the scan.
    for t in 0..19 {
        assert_eq!(verdict(&mut g, &gpdu(GNB_A, 0x100 + t)), Verdict::PassGpdu, "gNB A's new device {t}");
    }
    assert_eq!(verdict(&mut g, &gpdu(GNB_A, 0x200)), Verdict::DropNewDevice, "gNB A's own budget of 20 still applies");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_evicted_established_session_is_readmitted_when_its_gnb_budget_is_empty() {
    assert_root("verdict::n3::sources::an_evicted_established_session_is_readmitted_when_its_gnb_budget_is_empty");
    let mut g = Guard::load(&config(10, 10, 5)).expect("load guard_n3");
    // An established session (ESTABLISHED_PACKETS G-PDUs) and a one-packet device on gNB A.
    let real = gpdu(GNB_A, 0x10);
    for i in 0..ESTABLISHED_PACKETS {
        assert_eq!(verdict(&mut g, &real), Verdict::PassGpdu, "packet {i}");
    }
    assert_eq!(verdict(&mut g, &gpdu(GNB_A, 0x11)), Verdict::PassGpdu);
    // Both records evicted (as a full LRU would); then a scan forged with A's own address
    // empties A's new-device budget (5; two were spent).
    for k in [0x10u32, 0x11] {
        g.maps.devices.remove(&device_id::fteid(0, k)).expect("evict");
    }
    let mut scan_pass = 0;
    for t in 0..50u32 {
        if verdict(&mut g, &gpdu(GNB_A, 0x6000_0000 + t)) == Verdict::PassGpdu {
            scan_pass += 1;
        }
    }
    assert_eq!(scan_pass, 3, "the forged scan spends A's remaining budget");
    // The established session comes back: re-admitted, not dropped.
    assert_eq!(verdict(&mut g, &real), Verdict::PassGpdu, "the evicted established session");
    assert_eq!(g.cell(IpAddr::V4(GNB_A)).map(|c| c.readmitted), Some(1));
    assert!(g.teid(0x10).is_some(), "and tracked again");
    // The one-packet device never established itself: charged as new, and the budget is empty.
    assert_eq!(verdict(&mut g, &gpdu(GNB_A, 0x11)), Verdict::DropNewDevice);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_established_session_vouches_for_a_new_gnb_when_the_new_source_budget_is_spent() {
    assert_root(
        "verdict::n3::sources::an_established_session_vouches_for_a_new_gnb_when_the_new_source_budget_is_spent",
    );
    let mut g = Guard::load(&config(2, 5, 100)).expect("load guard_n3");
    let on_a = gpdu(GNB_A, 0x10);
    for _ in 0..ESTABLISHED_PACKETS {
        assert_eq!(verdict(&mut g, &on_a), Verdict::PassGpdu);
    }
    // A rotating scan spends the new-source budget (A took 1 of 2) and the shared one.
    let _ = rotating_scan(&mut g, 50);
    assert_eq!(g.cell_count(), 2, "A and one forged source");
    // Handover: the established session now comes from gNB C, never seen before.
    assert_eq!(verdict(&mut g, &gpdu(GNB_C, 0x10)), Verdict::PassGpdu, "the session passes from its new gNB");
    let c = g.cell(IpAddr::V4(GNB_C)).expect("C has a record of its own: vouched by the established session");
    assert_eq!(c.gpdu, 1);
    // A device that is not established does not vouch: it gets the unknown sources' share.
    assert_eq!(
        verdict(&mut g, &gpdu(Ipv4Addr::new(10, 200, 0, 14), 0x99)),
        Verdict::DropNewDevice,
        "a new device from another unknown source, the shared budget spent"
    );
    assert!(g.maps.cells.get(&l3_v4(Ipv4Addr::new(10, 200, 0, 14)), 0).is_err(), "and no record for it");
}

/// A forger who made one session of its own established (8 G-PDUs from a known source) and then
/// sends it from source after source: each source is vouched for, and before, each got a record
/// of its own outside the new-source budget (and with it a fresh new-device burst), unbounded:
/// N3_CELLS churned at line rate and every forged source a new-device budget of its own. Now a
/// vouched source draws on `new_gnb` with ten times its burst, and past that is judged as any
/// new source; the session's packets pass from every source as before.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_established_session_vouches_for_a_bounded_number_of_new_sources() {
    assert_root("verdict::n3::sources::an_established_session_vouches_for_a_bounded_number_of_new_sources");
    // new_gnb: 2 an hour (interval 3600 s, burst 2); vouched: a burst tolerance of 10 x 3600 s
    // + one interval, so 11 records after A's: 12 in all.
    let mut g = Guard::load(&config(2, 5, 100)).expect("load guard_n3");
    let on_a = gpdu(GNB_A, 0x10);
    for _ in 0..ESTABLISHED_PACKETS {
        assert_eq!(verdict(&mut g, &on_a), Verdict::PassGpdu);
    }
    for i in 0..100 {
        assert_eq!(
            verdict(&mut g, &gpdu(scan_source(i), 0x10)),
            Verdict::PassGpdu,
            "the session passes from source {i}"
        );
    }
    let n = g.cell_count();
    assert_eq!(n, 12, "A's record and the vouched ones within the deeper burst, not one per source");
}
