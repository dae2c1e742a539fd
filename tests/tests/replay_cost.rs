//! What the replay clock (issue 21, guard-ebpf `clock.rs`) costs the live programs: printed, not
//! asserted (timings vary by machine; DESIGN §5).
//!
//! - the verifier's processed instructions (`verified_insns`) of `guard_n3` (whose code the replay
//!   clock leaves alone: the replay has its own twin, `guard_n3_replay`) and `guard_n2` (the
//!   replay branch pruned: `REPLAY_CLOCK` is frozen `.rodata`), in a live load and a replay's,
//!   and of the object in `GUARD_BASE_OBJ` (built from main before the replay clock) when set;
//! - BPF_PROG_TEST_RUN of a known device's G-PDU (and the bench's other common-path cases), this
//!   build against the base object, by the bench's A/B (`labkit::bench::ab`): rounds interleaved
//!   so machine noise hits both alike, per-round differences.
//!
//! `GUARD_BASE_OBJ=/path/to/guard-ebpf cargo test -p guard-tests --test replay_cost -- --ignored --nocapture`

use aya::{programs::Xdp, EbpfLoader};
use guard_common::abi::{n2::PROG_N2, GuardConfig, GLOBAL_REPLAY_CLOCK, PROG_N3, PROG_N3_REPLAY, PROT_ALL};
use labkit::assert_root;
use labkit::bench::ab::{ab_part, Build};
use labkit::bpf::PinScope;

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
        println!("  base object, replay load {:?}", verified(b, &PinScope::new("rcbr"), true));
    }

    // The per-packet A/B is the bench's (`labkit::bench::ab`, `cargo xtask bench --ab`): this
    // build's guard_n3 against the base object, interleaved rounds, per-round differences.
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: 1_000_000_000, ..Default::default() };
    let mut builds = vec![Build { label: "this build".into(), object: guard::bpf::object::object().to_vec() }];
    if let Some(b) = base_obj {
        builds.push(Build { label: "base object (main)".into(), object: b });
    }
    let t = ab_part(&cfg, &builds, ROUNDS, REPEAT).expect("the A/B");
    println!("{}", t.text());
}
