//! What the replay clock (issue 21, guard-ebpf `clock.rs`) costs the live programs: printed, not
//! asserted (timings vary by machine; DESIGN §5).
//!
//! - the verifier's processed instructions (`verified_insns`) of `guard_n3` (whose code the replay
//!   clock leaves alone: the replay has its own twin, `guard_n3_replay`) and `guard_n2` (the
//!   replay branch pruned: `REPLAY_CLOCK` is frozen `.rodata`), in a live load and a replay's,
//!   and of the object in `GUARD_BASE_OBJ` (built from main before the replay clock) when set;
//! - BPF_PROG_TEST_RUN of a known device's G-PDU, this build against the base object, rounds
//!   interleaved so machine noise hits both alike, as ratios to the minimal XDP program.
//!
//! `GUARD_BASE_OBJ=/path/to/guard-ebpf cargo test -p guard-tests --test replay_cost -- --ignored --nocapture`

use std::net::Ipv4Addr;

use aya::{programs::Xdp, EbpfLoader};
use guard_common::abi::{n2::PROG_N2, GuardConfig, Limit, GLOBAL_REPLAY_CLOCK, PROG_N3, PROG_N3_REPLAY, PROT_ALL};
use labkit::assert_root;
use labkit::bench::{median, progs::time_run};
use labkit::bpf::{Guard, PinScope, XDP_PASS};
use labkit::frames::GtpFrame;

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 15;

/// The object's programs loaded (not attached) with pins in `scope`; `replay` sets the clock
/// global and takes `guard_n3_replay`. Returns the processed-instruction counts of the N3
/// program and guard_n2.
fn verified(obj: &[u8], scope: &PinScope, replay: bool) -> (u32, u32) {
    scope.pins.create().expect("pin directory");
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(scope.pins.path());
    if replay {
        loader.override_global(GLOBAL_REPLAY_CLOCK, &1u8, true);
    }
    let mut ebpf = loader.load(obj).expect("loading the object");
    let mut count = |name: &str| {
        let p: &mut Xdp = ebpf.program_mut(name).expect("program").try_into().expect("XDP");
        p.load().unwrap_or_else(|e| panic!("verifying {name}: {e}"));
        p.info().expect("program info").verified_instruction_count().unwrap_or(0)
    };
    let n3 = count(if replay { PROG_N3_REPLAY } else { PROG_N3 });
    let n2 = count(PROG_N2);
    (n3, n2)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn replay_clock_cost() {
    assert_root("replay_cost::replay_clock_cost");
    let this = guard::bpf::object::object();
    let base_obj = std::env::var_os("GUARD_BASE_OBJ").map(|p| std::fs::read(&p).expect("reading GUARD_BASE_OBJ"));
    println!("verifier, processed instructions (guard_n3 or guard_n3_replay, guard_n2):");
    let live = verified(this, &PinScope::new("rcl"), false);
    let replay = verified(this, &PinScope::new("rcr"), true);
    println!("  this build, live load    {live:?}");
    println!("  this build, replay load  {replay:?}");
    if let Some(b) = &base_obj {
        println!("  base object (main)       {:?}", verified(b, &PinScope::new("rcb"), false));
    }

    let cfg = GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: 1_000_000_000,
        observe: Limit::per_second(1_000_000_000, 1_000_000_000),
        ..Default::default()
    };
    let frame = GtpFrame::gpdu(0x77)
        .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
        .build();
    let mut g = Guard::load(&cfg).unwrap_or_else(|e| panic!("loading the guard: {e:#}"));
    for _ in 0..16 {
        assert_eq!(g.run(&frame).expect("run"), XDP_PASS);
    }
    let base_scope = PinScope::new("rcc");
    let mut base = base_obj.as_ref().map(|obj| {
        base_scope.pins.create().expect("pin directory");
        let mut ebpf =
            EbpfLoader::new().default_map_pin_directory(base_scope.pins.path()).load(obj).expect("loading the base");
        xdp(&mut ebpf).load().expect("verifying the base's guard_n3");
        let mut maps = guard::n3::maps::N3Maps::from_ebpf_ref(&mut ebpf).expect("the base's maps");
        // Same schema as this build (the replay clock adds no map and changes no record).
        maps.write_config(&cfg).expect("the base's config");
        ebpf
    });
    if let Some(b) = base.as_mut() {
        for _ in 0..16 {
            assert_eq!(time_run(xdp(b), &frame, 1).expect("run").action, XDP_PASS);
        }
    }
    let mut refs = labkit::bench::progs::RefProgs::load(64).expect("reference programs");
    let mut t: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        for k in 0..3 {
            let v = (round + k) % 3;
            let ns = match v {
                0 => time_run(g.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run").kernel_ns,
                1 => match base.as_mut() {
                    Some(b) => time_run(xdp(b), &frame, REPEAT).expect("run").kernel_ns,
                    None => continue,
                },
                _ => {
                    let p = refs.prog(labkit::bench::progs::BASELINE).expect("xdp_baseline");
                    time_run(p, &frame, REPEAT).expect("run").kernel_ns
                }
            };
            t[v].push(ns);
        }
    }
    let floor = &t[2];
    let ratio = |a: &[f64]| median(&a.iter().zip(floor).map(|(x, y)| x / y.max(1.0)).collect::<Vec<_>>());
    println!("guard_n3, known device G-PDU, median of {ROUNDS} rounds x {REPEAT} runs (kernel ns/run):");
    println!("  this build (guard_n3)                {:.1}  ({:.2}x the floor)", median(&t[0]), ratio(&t[0]));
    if !t[1].is_empty() {
        println!("  base object (main)                   {:.1}  ({:.2}x the floor)", median(&t[1]), ratio(&t[1]));
    }
    println!("  xdp_baseline (floor)                 {:.1}", median(floor));
}

fn xdp(e: &mut aya::Ebpf) -> &mut Xdp {
    e.program_mut(PROG_N3).expect("guard_n3").try_into().expect("guard_n3 is XDP")
}
