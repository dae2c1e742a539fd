//! Part 1, multi-core: does a second CPU double the guard's packets per second? The same case
//! timed with one BPF_PROG_TEST_RUN loop on CPU 0 alone, then with loops on CPU 0 and CPU 1 at
//! once (each thread pinned with `sched_setaffinity`), each CPU on its own device, as RSS by TEID
//! spreads the sessions of a gNB over the receive queues. Shared state that every CPU writes (a
//! gNB's counters, a limiter) bounces its cache line between the CPUs and shows here as a ratio
//! below 2; `xdp_baseline` measured the same way is the reference (it shares nothing).

use std::net::Ipv4Addr;
use std::sync::Barrier;

use anyhow::{anyhow, bail, Context, Result};
use aya::programs::Xdp;
use guard::{n3::load, n3::maps::N3Maps};
use guard_common::{
    abi::{DeviceKey, GuardConfig, Limit, STAGE_QUARANTINE, STAGE_SHAPE},
    policy::Verdict,
};

use crate::affinity;
use crate::bench::progs::{self, time_run, RefProgs};
use crate::bench::{goal_row, median, minimum, num, ratio, Table};
use crate::bpf::{stage_entry, PinScope};
use crate::frames::GtpFrame;

const HOUR_NS: u64 = 3600 * 1_000_000_000;
/// Runs per BPF_PROG_TEST_RUN call, and calls per thread per measurement: ~0.1 s of packets per
/// thread, long enough that the two loops overlap for all but the edges of a call.
const REPEAT: u32 = 200_000;
const CALLS: usize = 5;

const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 200, 7, 1);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 200, 7, 2);
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

/// What runs on each CPU.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prog {
    Baseline,
    Guard,
}

struct Case {
    name: &'static str,
    prog: Prog,
    /// Run with [`GNB_SCAN`]'s new-device budget spent: every run is a never-seen TEID over it.
    scan: bool,
    /// The frame CPU 0 runs (alone and together) and the one CPU 1 runs together with it.
    frames: [Vec<u8>; 2],
    /// Shown in the goal's row under this short name (the reference is not).
    goal: Option<&'static str>,
}

fn gpdu(teid: u32, gnb: Ipv4Addr) -> Vec<u8> {
    GtpFrame::gpdu(teid).outer_v4(gnb, CORE).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10)).build()
}

const T_KNOWN: [u32; 4] = [0x0a00_0001, 0x0a00_0002, 0x0a00_0003, 0x0a00_0004];
const T_UNDER: [u32; 2] = [0x0b00_0001, 0x0b00_0002];
const T_OVER: [u32; 2] = [0x0b00_0003, 0x0b00_0004];
const T_QUAR: [u32; 4] = [0x0c00_0001, 0x0c00_0002, 0x0c00_0003, 0x0c00_0004];
const T_SCAN: [u32; 2] = [0x0d00_0001, 0x0d00_0002];
/// The gNB whose new-device budget the spoofed-TEID case spends (no other case uses it).
const GNB_SCAN: Ipv4Addr = Ipv4Addr::new(10, 200, 7, 9);

fn cases() -> Vec<Case> {
    let c = |name, prog, a: Vec<u8>, b: Vec<u8>, goal| Case { name, prog, scan: false, frames: [a, b], goal };
    vec![
        c("xdp_baseline (reference: XDP_PASS)", Prog::Baseline, gpdu(1, GNB_A), gpdu(2, GNB_A), None),
        c(
            "known device, stage 0, two devices of one gNB",
            Prog::Guard,
            gpdu(T_KNOWN[0], GNB_A),
            gpdu(T_KNOWN[1], GNB_A),
            Some("known, one gNB"),
        ),
        c(
            "known device, stage 0, devices of two gNBs",
            Prog::Guard,
            gpdu(T_KNOWN[2], GNB_A),
            gpdu(T_KNOWN[3], GNB_B),
            Some("known, two gNBs"),
        ),
        c(
            "shaped device (stage 1), under its rate, one gNB",
            Prog::Guard,
            gpdu(T_UNDER[0], GNB_A),
            gpdu(T_UNDER[1], GNB_A),
            Some("shaped, under"),
        ),
        c(
            "shaped device (stage 1), over its rate (drop_shape), one gNB",
            Prog::Guard,
            gpdu(T_OVER[0], GNB_A),
            gpdu(T_OVER[1], GNB_A),
            Some("shaped, over"),
        ),
        c(
            "quarantined device, one gNB",
            Prog::Guard,
            gpdu(T_QUAR[0], GNB_A),
            gpdu(T_QUAR[1], GNB_A),
            Some("quarantined, one gNB"),
        ),
        c(
            "quarantined device, two gNBs",
            Prog::Guard,
            gpdu(T_QUAR[2], GNB_A),
            gpdu(T_QUAR[3], GNB_B),
            Some("quarantined, two gNBs"),
        ),
        Case {
            scan: true,
            ..c(
                "new TEID over its gNB's new-device budget (spoofed-TEID flood), one gNB",
                Prog::Guard,
                gpdu(T_SCAN[0], GNB_SCAN),
                gpdu(T_SCAN[1], GNB_SCAN),
                None,
            )
        },
    ]
}

/// Kernel ns per run on each CPU of `cpus` (median of its calls), the loops started together.
fn measure(prog: &Xdp, frames: &[Vec<u8>; 2], cpus: &[usize], repeat: u32) -> Result<Vec<f64>> {
    let barrier = Barrier::new(cpus.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .enumerate()
            .map(|(i, &cpu)| {
                let (barrier, frame) = (&barrier, &frames[i]);
                s.spawn(move || -> Result<f64> {
                    affinity::pin_to_cpu(cpu).with_context(|| format!("pinning a bench thread to CPU {cpu}"))?;
                    barrier.wait();
                    let mut ns = Vec::with_capacity(CALLS);
                    for _ in 0..CALLS {
                        ns.push(time_run(prog, frame, repeat)?.kernel_ns);
                    }
                    Ok(median(&ns))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().map_err(|_| anyhow!("a bench thread panicked"))?).collect()
    })
}

fn verdict_counts(maps: &N3Maps) -> Result<Vec<u64>> {
    Ok(maps.verdicts()?.iter().map(|(_, c)| c.packets).collect())
}

/// Per case: ns per packet on CPU 0 alone, ns per packet per CPU with both CPUs, throughput
/// ratio, per round.
#[derive(Default)]
struct Samples {
    one: Vec<f64>,
    two: Vec<f64>,
    ratio: Vec<f64>,
    moved: Vec<u64>,
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().filter(|x| x.is_finite()).fold(f64::NEG_INFINITY, f64::max)
}

/// The multi-core table and its goal row. `default` is the shipped configuration (run with its
/// stage-0 profile limit out of reach, as part 1's main table).
pub fn multicore_part(default: &GuardConfig, rounds: usize, quick: bool) -> Result<(Table, Vec<String>)> {
    if affinity::ncpus() < 2 {
        bail!("needs two online CPUs, this machine has {}", affinity::ncpus());
    }
    let scope = PinScope::new("bmc");
    let mut within = *default;
    within.observe = Limit::per_second(1_000_000_000_000, 1_000_000_000);
    let mut n3 = load::load(&scope.pins, 4096, &within)
        .with_context(|| format!("loading guard_n3, pins in {}", scope.pins.path().display()))?;
    let mut maps = N3Maps::from_ebpf_ref(&mut n3.ebpf).context("opening the N3 maps")?;
    let mut refs = RefProgs::load(64)?;
    for t in T_QUAR {
        maps.set_stage(&DeviceKey::teid(t), &stage_entry(STAGE_QUARANTINE, 0, 0, HOUR_NS))?;
    }
    for t in T_OVER {
        maps.set_stage(&DeviceKey::teid(t), &stage_entry(STAGE_SHAPE, 1000, 100, HOUR_NS))?;
    }
    for t in T_UNDER {
        maps.set_stage(&DeviceKey::teid(t), &stage_entry(STAGE_SHAPE, 1_000_000_000, 1_000_000, HOUR_NS))?;
    }
    let cases = cases();
    let repeat = if quick { REPEAT / 4 } else { REPEAT };
    let rounds = rounds * 2;
    let guard = n3.program().context("guard_n3")?;
    // Warm-up: every device has its record (and its gNB its slot) before it is timed, inserted
    // on the CPU that runs it (`frames[i]` on CPU i, by `measure`'s pinned threads), as under RSS
    // by TEID the CPU of a session's first packet is the CPU of the rest: that CPU owns the record
    // and counts it with plain adds (`DeviceState::owner`).
    for c in cases.iter().filter(|c| c.prog == Prog::Guard && !c.scan) {
        measure(guard, &c.frames, &[0, 1], 1)?;
    }
    let guard: &Xdp = guard;
    let baseline: &Xdp = refs.prog(progs::BASELINE)?;
    println!(
        "bench: part 1, multi-core: {} cases, {rounds} rounds, {CALLS} calls of {repeat} runs per CPU per measurement",
        cases.len()
    );
    let mut samples: Vec<Samples> = cases.iter().map(|_| Samples::default()).collect();
    for r in 0..rounds {
        for j in 0..cases.len() {
            let ci = (j + r) % cases.len();
            let c = &cases[ci];
            let prog = match c.prog {
                Prog::Baseline => baseline,
                Prog::Guard => guard,
            };
            if c.scan {
                // One new device per hour from this gNB: the first never-seen TEID spends the
                // budget, the timed ones are over it on every run (dropped, not inserted).
                let mut cfg = within;
                cfg.new_device = Limit { interval_ns: HOUR_NS, tau_ns: 0 };
                maps.write_config(&cfg)?;
                time_run(guard, &gpdu(0x0dff_0001, GNB_SCAN), 1)?;
            }
            let before = verdict_counts(&maps)?;
            // Alternate which comes first, so a drift in the machine's state over a round does
            // not favour one of the two.
            let (one, two) = if r % 2 == 0 {
                let one = measure(prog, &c.frames, &[0], repeat)?;
                (one, measure(prog, &c.frames, &[0, 1], repeat)?)
            } else {
                let two = measure(prog, &c.frames, &[0, 1], repeat)?;
                (measure(prog, &c.frames, &[0], repeat)?, two)
            };
            let after = verdict_counts(&maps)?;
            if c.scan {
                maps.write_config(&within)?;
            }
            let s = &mut samples[ci];
            s.moved.resize(after.len(), 0);
            for (m, (a, b)) in s.moved.iter_mut().zip(after.iter().zip(&before)) {
                *m += a.saturating_sub(*b);
            }
            let pps1 = ratio(1e9, one[0]);
            let pps2 = ratio(1e9, two[0]) + ratio(1e9, two[1]);
            s.one.push(one[0]);
            s.two.push((two[0] + two[1]) / 2.0);
            s.ratio.push(ratio(pps2, pps1));
        }
    }

    let mut t = Table::new(
        "Multi-core: packets per second with two CPUs against one (BPF_PROG_TEST_RUN on CPU 0, then on CPUs 0 and 1 at once)",
        &[
            "case",
            "verdict",
            "1 CPU: ns/pkt (min / median)",
            "2 CPUs: ns/pkt per CPU (min / median)",
            "2-CPU / 1-CPU throughput (median)",
            "range over rounds",
            "from the minima",
        ],
    );
    let mut goal = Vec::new();
    let mut worst = f64::INFINITY;
    for (c, s) in cases.iter().zip(&samples) {
        let verdict = if c.prog == Prog::Guard {
            Verdict::ALL
                .iter()
                .zip(&s.moved)
                .filter(|(_, n)| **n > 0)
                .max_by_key(|(_, n)| **n)
                .map(|(v, _)| v.name().to_owned())
                .unwrap_or_else(|| "?".into())
        } else {
            "XDP_PASS".into()
        };
        let m = median(&s.ratio);
        t.row(vec![
            c.name.into(),
            verdict,
            format!("{} / {}", num(minimum(&s.one), 1), num(median(&s.one), 1)),
            format!("{} / {}", num(minimum(&s.two), 1), num(median(&s.two), 1)),
            format!("{}x", num(m, 2)),
            format!("{}x – {}x", num(minimum(&s.ratio), 2), num(max(&s.ratio), 2)),
            format!("{}x", num(2.0 * ratio(minimum(&s.one), minimum(&s.two)), 2)),
        ]);
        if let Some(g) = c.goal {
            goal.push(format!("{g} {}x", num(m, 2)));
            worst = worst.min(m);
        }
    }
    t.note(format!(
        "Each CPU runs its own device (as RSS by TEID spreads one gNB's sessions over the receive queues), whose record it inserted (so it counts the device with plain adds, `DeviceState::owner`): a frame repeated {repeat} times per BPF_PROG_TEST_RUN call, {CALLS} calls per thread, threads pinned with sched_setaffinity and started together; ns = the kernel's mean per run (preemption excluded), median of the calls. Throughput ratio = (1/ns on CPU 0 + 1/ns on CPU 1, both running) / (1/ns on CPU 0 alone); 2.00x is perfect scaling. {rounds} rounds, cases rotated, the order of the two measurements alternated per round; min and median over rounds. \"from the minima\" = 2 × (1-CPU minimum) / (2-CPU minimum): the least disturbed runs of each, which load elsewhere on the machine moves least."
    ));
    t.note("Configuration as the main table (shipped defaults, stage-0 profile limit out of reach); shaped: 10⁹ pps (under) or 1000 pps (over), each device its own stage. The machine is shared and hyper-threads or a neighbour's load on the other CPU slow both loops alike: this table is only meaningful from a quiet machine, and the reference row shows how far the machine itself scales.");
    let goal = goal_row(
        "two CPUs ≥ 1.8x one (known, shaped, quarantined; one gNB and two)",
        goal.join(", "),
        worst >= 1.8,
        || {
            "see the multi-core table: a ratio below the reference row's is shared state written per packet; one at the reference's is the machine".to_owned()
        },
    );
    drop(refs);
    drop(maps);
    drop(n3);
    drop(scope);
    Ok((t, goal))
}
