//! What chaining costs guard_n3 per packet (issue 22), by BPF_PROG_TEST_RUN with a large repeat
//! (DESIGN §5), rounds interleaved so machine noise hits every variant alike; prints medians.
//! Not an assertion of a budget (timings vary by machine): run it and read it.
//!
//! - `unset`: no next program (`N3_CHAIN` flag clear): the one array read this change adds;
//! - `linked`: the next program is `tests/peers/xdp_pass.c` (returns XDP_PASS): the tail call;
//! - `base`: the object given in `GUARD_BASE_OBJ` (e.g. built from the commit before chaining),
//!   when set: the same frame through the program without any of this.
//!
//! `GUARD_BASE_OBJ=/path/to/guard-ebpf cargo test -p guard-tests --test cost_chain -- --ignored --nocapture`

use std::net::Ipv4Addr;

use guard::n3::chain;
use guard_common::abi::{GuardConfig, PROT_ALL, STAT_CHAIN_MISS};
use labkit::assert_root;
use labkit::bench::{median, progs::time_run};
use labkit::bpf::{Guard, PinScope, TEST_MAX_DEVICES, XDP_PASS};
use labkit::frames::GtpFrame;
use labkit::xdpprog::Pinned;

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 21;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn chaining_cost_per_packet() {
    assert_root("cost_chain::chaining_cost_per_packet");
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: 1_000_000_000, ..Default::default() };
    let mut g = Guard::load(&cfg).unwrap_or_else(|e| panic!("loading the guard: {e:#}"));
    let next = Pinned::load("xdp_pass").unwrap_or_else(|e| panic!("loading xdp_pass: {e:#}"));
    let frame = GtpFrame::gpdu(0x77)
        .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
        .build();
    // A known device: its record and binding exist, as for nearly every packet in real traffic.
    for _ in 0..16 {
        assert_eq!(g.run(&frame).expect("run"), XDP_PASS);
    }
    let base_obj = std::env::var_os("GUARD_BASE_OBJ").map(|p| std::fs::read(&p).expect("reading GUARD_BASE_OBJ"));
    let base_scope = PinScope::new("cb");
    let mut base = base_obj.as_ref().map(|o| {
        guard::n3::load::load_object(&base_scope.pins, TEST_MAX_DEVICES, &cfg, o)
            .unwrap_or_else(|e| panic!("loading GUARD_BASE_OBJ: {e:#}"))
    });
    if let Some(b) = base.as_mut() {
        for _ in 0..16 {
            time_run(b.program().expect("base"), &frame, 1).expect("run");
        }
    }
    // Each round runs the variants in a rotated order (a fixed order would charge a drift in
    // the machine's load to whichever runs last); the differences are taken within a round.
    // The minimal XDP program (`xdp_baseline`: XDP_PASS), measured in the same rounds: the
    // figures are reported as ratios to it too, machines being noisy (DESIGN §5).
    let mut refs = labkit::bench::progs::RefProgs::load(64).expect("reference programs");
    let (mut unset, mut linked, mut based, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // XDP_PASS comes back with the tail call or without it: that the linked rounds did hand every
    // packet on is shown by the guard's own count of tail calls that returned (none, below).
    let before = g.counters();
    for round in 0..ROUNDS {
        let mut t = [0f64; 4];
        for k in 0..4 {
            let v = (round + k) % 4;
            match v {
                0 => {
                    chain::clear_next(&g.scope.pins).expect("clear");
                    t[0] = time_run(g.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run").kernel_ns;
                }
                1 => {
                    chain::set_next(&g.scope.pins, &next.prog()).expect("set");
                    let r = time_run(g.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run");
                    assert_eq!(r.action, XDP_PASS);
                    t[1] = r.kernel_ns;
                }
                3 => {
                    let p = refs.prog(labkit::bench::progs::BASELINE).expect("xdp_baseline");
                    t[3] = time_run(p, &frame, REPEAT).expect("run").kernel_ns;
                }
                _ => {
                    if let Some(b) = base.as_mut() {
                        t[2] = time_run(b.program().expect("base"), &frame, REPEAT).expect("run").kernel_ns;
                    }
                }
            }
        }
        unset.push(t[0]);
        linked.push(t[1]);
        floor.push(t[3]);
        if base.is_some() {
            based.push(t[2]);
        }
    }
    let stat = chain::read_config(&g.scope.pins).expect("chain");
    assert_ne!(stat.next_id, 0);
    let d = g.counters().since(&before);
    assert_eq!(d.stat(STAT_CHAIN_MISS), 0, "a linked run's tail call came back: xdp_pass was not reached");
    assert!(
        d.verdict(guard_common::policy::Verdict::PassGpdu) >= u64::from(REPEAT) * ROUNDS as u64 * 2,
        "every round ran"
    );
    println!("guard_n3, known device G-PDU, median of {ROUNDS} rounds x {REPEAT} runs (kernel ns/run):");
    println!("  next unset:   {:.1}  (all rounds: {unset:?})", median(&unset));
    println!("  next linked:  {:.1}  (xdp_pass as next; all rounds: {linked:?})", median(&linked));
    let diff = |a: &[f64], b: &[f64]| median(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
    println!("  linked - unset, per round: median {:+.1}", diff(&linked, &unset));
    let ratio = |a: &[f64]| median(&a.iter().zip(&floor).map(|(x, y)| x / y.max(1.0)).collect::<Vec<_>>());
    println!(
        "  xdp_baseline: {:.1}; ratios: unset {:.2}x, linked {:.2}x",
        median(&floor),
        ratio(&unset),
        ratio(&linked)
    );
    if !based.is_empty() {
        println!("  base object:  {:.1}  (GUARD_BASE_OBJ; all rounds: {based:?})", median(&based));
        println!("  unset - base, per round: median {:+.1}; base {:.2}x", diff(&unset, &based), ratio(&based));
    }
}
