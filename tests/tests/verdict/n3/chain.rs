//! Chained verdicts through BPF_PROG_TEST_RUN (issue 22, docs/operations.md "Sharing the NIC with
//! an XDP UPF"), with XDP programs nobody on the project wrote the data path of: `tests/peers/
//! xdp_upf.c` (counts every packet and each G-PDU's TEID, drops UDP to 9999) and `xdp_root.c`
//! (tail-calls slot 1, then slot 2), compiled with clang and loaded and pinned with bpftool.
//!
//! - the guard first: a quarantined device is dropped by the guard and never counted by the next
//!   program; other traffic reaches it and its own verdict holds; an empty slot (the next
//!   program's pin removed) passes, counted; a re-pinned program is linked again;
//! - the guard inside a root's program array: the same, run from the root; detached, the root
//!   goes on to the UPF alone.

use std::net::Ipv4Addr;

use guard::n3::chain::{self, IntoSlot, NextState};
use guard_common::abi::{GuardConfig, PROT_ALL, STAGE_QUARANTINE, STAT_CHAIN_MISS};
use guard_common::policy::Verdict;
use labkit::assert_root;
use labkit::bpf::{stage_entry, Guard, XDP_DROP, XDP_PASS};
use labkit::frames::GtpFrame;
use labkit::xdpprog::Pinned;

const SEC: u64 = 1_000_000_000;
const GNB: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const UE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);
const QUARANTINED: u32 = 0x0bad;
const BENIGN: u32 = 0x0900d;

fn load() -> Guard {
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() };
    let mut g = Guard::load(&cfg).unwrap_or_else(|e| panic!("loading the guard: {e:#}"));
    g.set_stage(&guard_common::abi::DeviceKey::teid(QUARANTINED), &stage_entry(STAGE_QUARANTINE, 0, 0, 3600 * SEC));
    g
}

fn gpdu(teid: u32) -> Vec<u8> {
    GtpFrame::gpdu(teid).outer_v4(GNB, CORE).inner_v4(UE, Ipv4Addr::new(192, 0, 2, 10)).build()
}

/// UDP to 9999: not GTP-U for the guard (it passes), dropped by the UPF.
fn udp_9999() -> Vec<u8> {
    GtpFrame::gpdu(1).outer_v4(GNB, CORE).udp_ports(40000, 9999).build()
}

fn upf() -> Pinned {
    Pinned::load("xdp_upf").unwrap_or_else(|e| panic!("loading tests/peers/xdp_upf.c with bpftool: {e:#}"))
}

fn seen(u: &Pinned) -> u64 {
    u.counter("upf_counts", 0)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_first_drops_never_reach_the_next_program_and_its_verdict_stands() {
    assert_root("verdict::n3::chain::guard_first_drops_never_reach_the_next_program_and_its_verdict_stands");
    let mut g = load();
    let u = upf();

    // No next program configured: passes as before, no miss counted (the tail call is not tried).
    let (a, d) = g.run_delta(&gpdu(BENIGN));
    assert_eq!((a, d.stat(STAT_CHAIN_MISS)), (XDP_PASS, 0), "without a next program");

    let st = chain::set_next(&g.scope.pins, &u.prog()).unwrap_or_else(|e| panic!("guard chain set: {e:#}"));
    assert!(matches!(st, NextState::Linked { id, .. } if id == u.id()), "{st:?}");

    // Quarantined: the guard drops it, the UPF never sees it.
    let before = seen(&u);
    let (a, d) = g.run_delta(&gpdu(QUARANTINED));
    assert_eq!(a, XDP_DROP, "quarantined device");
    assert_eq!(d.verdict(Verdict::DropQuarantine), 1);
    assert_eq!(seen(&u), before, "the next program saw a packet the guard dropped");
    assert_eq!(u.hash_u32("upf_teids", QUARANTINED), 0, "the next program counted the quarantined TEID");

    // Benign: the guard passes it and hands it on; the UPF counts it and its PASS stands.
    let (a, d) = g.run_delta(&gpdu(BENIGN));
    assert_eq!((a, d.verdict(Verdict::PassGpdu), d.stat(STAT_CHAIN_MISS)), (XDP_PASS, 1, 0), "benign G-PDU");
    assert_eq!(seen(&u), before + 1, "the next program got the benign G-PDU");
    assert_eq!(u.hash_u32("upf_teids", BENIGN), 1);

    // Not GTP-U: the guard passes it, the UPF drops it (its own verdict).
    let dropped = u.counter("upf_counts", 1);
    let (a, d) = g.run_delta(&udp_9999());
    assert_eq!((a, d.verdict(Verdict::PassNotGtp)), (XDP_DROP, 1), "UDP to 9999: the next program's drop stands");
    assert_eq!(u.counter("upf_counts", 1), dropped + 1);

    // The UPF unpins its program: the next tick empties the slot; packets pass, counted as misses.
    u.unpin_prog();
    let st = chain::sync_next(&g.scope.pins).expect("sync");
    assert_eq!(st, NextState::Gone { cleared: true });
    assert_eq!(chain::slot_prog_id(&g.scope.pins.map_path("N3_NEXT"), 0).expect("slot"), None);
    let n = seen(&u);
    let (a, d) = g.run_delta(&udp_9999());
    assert_eq!((a, d.stat(STAT_CHAIN_MISS)), (XDP_PASS, 1), "empty slot: passes, counted");
    assert_eq!(seen(&u), n, "a removed program kept running");
    let (a, _) = g.run_delta(&gpdu(QUARANTINED));
    assert_eq!(a, XDP_DROP, "the guard still drops with the slot empty");
    assert_eq!(chain::sync_next(&g.scope.pins).expect("sync"), NextState::Gone { cleared: false }, "said once");

    // Pinned again (the UPF restarted: a new program, new maps): linked at the next tick.
    u.reload("xdp_upf").expect("reloading the UPF");
    let st = chain::sync_next(&g.scope.pins).expect("sync");
    assert!(matches!(st, NextState::Linked { id, changed: true, .. } if id == u.id()), "{st:?}");
    let (a, d) = g.run_delta(&udp_9999());
    assert_eq!((a, d.stat(STAT_CHAIN_MISS)), (XDP_DROP, 0), "the re-pinned program's verdict");
    assert_eq!(seen(&u), 1);

    // guard chain clear: back to passing, no miss counted.
    chain::clear_next(&g.scope.pins).expect("clear");
    let (a, d) = g.run_delta(&udp_9999());
    assert_eq!((a, d.stat(STAT_CHAIN_MISS)), (XDP_PASS, 0), "cleared");
    assert_eq!(seen(&u), 1, "a cleared next program still got packets");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_next_program_of_another_type_is_refused() {
    assert_root("verdict::n3::chain::a_next_program_of_another_type_is_refused");
    let g = load();
    let missing = g.scope.pins.path().join("no-such-program");
    let e = chain::set_next(&g.scope.pins, &missing).expect_err("a missing pin");
    assert!(e.to_string().contains("no such pin"), "{e}");
    // A map is not a program.
    let e = chain::set_next(&g.scope.pins, &g.scope.pins.map_path("N3_CONFIG")).expect_err("a map");
    assert!(e.to_string().contains("not a pinned BPF program"), "{e}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_inside_a_root_array_drops_before_the_upf_and_detaches_to_leave_the_root_running() {
    assert_root(
        "verdict::n3::chain::guard_inside_a_root_array_drops_before_the_upf_and_detaches_to_leave_the_root_running",
    );
    let mut g = load();
    let u = upf();
    let root = Pinned::load("xdp_root").unwrap_or_else(|e| panic!("loading tests/peers/xdp_root.c: {e:#}"));
    let jmp = root.map("root_jmp");
    // The operator's arrangement: the UPF in slot 2 of its root's array.
    labkit::xdpprog::bpftool(&[
        "map",
        "update",
        "pinned",
        &jmp.display().to_string(),
        "key",
        "2",
        "0",
        "0",
        "0",
        "value",
        "pinned",
        &u.prog().display().to_string(),
    ])
    .expect("putting the UPF in slot 2");

    // A slot that holds another program is refused, and left as it was.
    let taken = IntoSlot { array: jmp.clone(), slot: 2 };
    let e = g.loaded.place_into(&taken).expect_err("slot 2 holds the UPF");
    assert!(e.to_string().contains("does not replace another program"), "{e}");
    assert_eq!(chain::slot_prog_id(&jmp, 2).expect("slot 2"), Some(u.id()));
    let outside = IntoSlot { array: jmp.clone(), slot: 4 };
    assert!(g.loaded.place_into(&outside).is_err(), "slot 4 of a 4-slot array");

    // [attach] into = "<root_jmp>:1", [attach] next = the UPF: root → guard → UPF.
    let into = IntoSlot { array: jmp.clone(), slot: 1 };
    g.loaded.place_into(&into).unwrap_or_else(|e| panic!("placing the guard in slot 1: {e:#}"));
    chain::set_next(&g.scope.pins, &u.prog()).expect("next = the UPF");

    let run = |f: &[u8]| root.run(f).unwrap_or_else(|e| panic!("running the root: {e:#}"));
    let before = (root.counter("root_counts", 0), seen(&u));
    assert_eq!(run(&gpdu(QUARANTINED)), XDP_DROP, "quarantined, run from the root");
    assert_eq!(u.hash_u32("upf_teids", QUARANTINED), 0, "the UPF saw a packet the guard dropped");
    assert_eq!(run(&gpdu(BENIGN)), XDP_PASS, "benign, from the root");
    assert_eq!(u.hash_u32("upf_teids", BENIGN), 1, "the UPF got the benign G-PDU through the guard");
    assert_eq!(run(&udp_9999()), XDP_DROP, "the UPF's own drop stands");
    assert_eq!((root.counter("root_counts", 0), seen(&u)), (before.0 + 3, before.1 + 2));
    let v = g.counters();
    assert_eq!((v.verdict(Verdict::DropQuarantine), v.verdict(Verdict::PassGpdu)), (1, 1), "the guard judged them");

    // A restart or upgrade swaps the guard's program in the slot (atomically) and nothing else.
    g.loaded.upgrade_into(&into).unwrap_or_else(|e| panic!("upgrade in the slot: {e:#}"));
    assert_eq!(chain::slot_prog_id(&jmp, 2).expect("slot 2"), Some(u.id()), "the UPF's slot untouched");

    // Detach: only the guard's slot is emptied; the root goes on to the UPF alone.
    let d = guard::n3::load::detach_chained(&g.scope.pins, false, Some(&into)).expect("detach");
    assert!(d.slot, "the guard left its slot");
    assert_eq!(chain::slot_prog_id(&jmp, 1).expect("slot 1"), None);
    assert_eq!(chain::slot_prog_id(&jmp, 2).expect("slot 2"), Some(u.id()));
    assert_eq!(run(&gpdu(QUARANTINED)), XDP_PASS, "without the guard, the root runs the UPF alone");
    assert_eq!(u.hash_u32("upf_teids", QUARANTINED), 1, "the UPF got it without the guard");
    assert_eq!(root.counter("root_counts", 1), 0, "the UPF slot always took over");
}
