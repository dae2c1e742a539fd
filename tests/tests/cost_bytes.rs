//! What byte limits (issue 27) cost guard_n3 per packet, by BPF_PROG_TEST_RUN with a large repeat
//! (DESIGN §5), rounds interleaved so machine noise hits every variant alike; prints medians.
//! Not an assertion of a budget (timings vary by machine): run it and read it.
//!
//! A known device's G-PDU through:
//! - `none`: this build, no byte limit configured: the common path, whose growth issue 27 caps
//!   at 5% (it pays one compare);
//! - `profile`: this build with a byte profile (`observe_bytes`, 100 Mbit/s: never exceeded);
//! - `shaped`: this build, the device under a shape stage with a packet rate and a byte rate
//!   (10^9 pps, 100 Gbit/s: never exceeded, whatever the machine's speed), from its record's
//!   stage cache;
//! - `base`: the object given in `GUARD_BASE_OBJ` (built from the commit before byte limits,
//!   schema 6), when set: the same frame without any of this. Its `N3_CONFIG` record is the
//!   prefix of this build's (`observe_bytes` was appended), so it is written as those octets.
//!
//! `GUARD_BASE_OBJ=/path/to/guard-ebpf cargo test -p guard-tests --test cost_bytes -- --ignored --nocapture`

use std::net::Ipv4Addr;

use aya::{maps::Array, programs::Xdp, EbpfLoader};
use guard_common::abi::{
    ByteLimit, DeviceKey, GuardConfig, Limit, StageEntry, MAP_N3_CONFIG, PROG_N3, PROT_ALL, STAGE_SHAPE,
};
use labkit::assert_root;
use labkit::bench::{median, progs::time_run};
use labkit::bpf::{stage_entry, Guard, PinScope, XDP_PASS};
use labkit::frames::GtpFrame;

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 21;
/// `size_of::<GuardConfig>()` of schema 6: this build's record less `observe_bytes`.
const BASE_CONFIG_LEN: usize = core::mem::size_of::<GuardConfig>() - core::mem::size_of::<ByteLimit>();

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn byte_limit_cost_per_packet() {
    assert_root("cost_bytes::byte_limit_cost_per_packet");
    let cfg = GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: 1_000_000_000,
        observe: Limit::per_second(200, 400),
        ..Default::default()
    };
    let with_profile = GuardConfig { observe_bytes: ByteLimit::bits_per_second(100_000_000, 1_000_000), ..cfg };
    let load = |c: &GuardConfig| Guard::load(c).unwrap_or_else(|e| panic!("loading the guard: {e:#}"));
    let (mut none, mut profile, mut shaped) = (load(&cfg), load(&with_profile), load(&cfg));
    let frame = GtpFrame::gpdu(0x77)
        .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
        .build();
    shaped.set_stage(
        &DeviceKey::teid(0x77),
        &StageEntry {
            bytes: ByteLimit::bits_per_second(100_000_000_000, 1 << 30),
            ..stage_entry(STAGE_SHAPE, 1_000_000_000, 1_000_000_000, 3600 * 1_000_000_000)
        },
    );
    // A known device: its record and binding exist, as for nearly every packet in real traffic.
    for g in [&mut none, &mut profile, &mut shaped] {
        for _ in 0..16 {
            assert_eq!(g.run(&frame).expect("run"), XDP_PASS);
        }
    }
    let base_scope = PinScope::new("cbb");
    let mut base = std::env::var_os("GUARD_BASE_OBJ").map(|p| {
        let obj = std::fs::read(&p).expect("reading GUARD_BASE_OBJ");
        base_scope.pins.create().expect("pin directory");
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(base_scope.pins.path())
            .load(&obj)
            .expect("loading GUARD_BASE_OBJ");
        xdp(&mut ebpf).load().expect("verifying GUARD_BASE_OBJ's guard_n3");
        // SAFETY: `GuardConfig` is `#[repr(C)]`, integers only, no padding (size-asserted).
        let bytes = unsafe {
            std::slice::from_raw_parts((&cfg as *const GuardConfig).cast::<u8>(), core::mem::size_of::<GuardConfig>())
        };
        let mut m: Array<_, [u8; BASE_CONFIG_LEN]> =
            Array::try_from(ebpf.map_mut(MAP_N3_CONFIG).expect("N3_CONFIG")).expect("schema-6 N3_CONFIG");
        m.set(0, <[u8; BASE_CONFIG_LEN]>::try_from(&bytes[..BASE_CONFIG_LEN]).expect("prefix"), 0).expect("config");
        ebpf
    });
    if let Some(b) = base.as_mut() {
        for _ in 0..16 {
            time_run(xdp(b), &frame, 1).expect("run");
        }
    }
    let mut refs = labkit::bench::progs::RefProgs::load(64).expect("reference programs");
    let mut t: [Vec<f64>; 5] = Default::default();
    for round in 0..ROUNDS {
        for k in 0..5 {
            let v = (round + k) % 5;
            let ns = match v {
                0 => time_run(none.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run").kernel_ns,
                1 => time_run(profile.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run").kernel_ns,
                2 => time_run(shaped.loaded.program().expect("guard_n3"), &frame, REPEAT).expect("run").kernel_ns,
                3 => match base.as_mut() {
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
    assert_eq!(shaped.teid(0x77).expect("device").dropped(), 0, "the shape never drops here");
    let floor = &t[4];
    let ratio = |a: &[f64]| median(&a.iter().zip(floor).map(|(x, y)| x / y.max(1.0)).collect::<Vec<_>>());
    let diff = |a: &[f64], b: &[f64]| median(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
    println!("guard_n3, known device G-PDU, median of {ROUNDS} rounds x {REPEAT} runs (kernel ns/run):");
    for (name, v) in [("no byte limit", &t[0]), ("byte profile", &t[1]), ("shaped, both limits", &t[2])] {
        println!("  {name:<22} {:.1}  ({:.2}x the floor; all rounds: {v:?})", median(v), ratio(v));
    }
    println!("  xdp_baseline (floor)   {:.1}", median(floor));
    if !t[3].is_empty() {
        let b = &t[3];
        println!("  base object (schema 6) {:.1}  ({:.2}x the floor; all rounds: {b:?})", median(b), ratio(b));
        println!(
            "  per round, medians: none - base {:+.1}, profile - base {:+.1}, shaped - none {:+.1}",
            diff(&t[0], b),
            diff(&t[1], b),
            diff(&t[2], &t[0])
        );
    }
}

fn xdp(e: &mut aya::Ebpf) -> &mut Xdp {
    e.program_mut(PROG_N3).expect("guard_n3").try_into().expect("guard_n3 is XDP")
}
