//! Part 1 of `cargo xtask bench`, per packet, BPF_PROG_TEST_RUN: `guard_n3` (and `guard_n2`)
//! against two reference programs measured in the same run, `xdp_baseline` (XDP_PASS) and
//! `xdp_floor` (parse to the TEID, one hash lookup, two atomic adds), plus operation probes that
//! price a clock read, a lookup, an atomic add, so the guard's cost can be accounted for.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::programs::Xdp;
use guard::{n2, n3::load, n3::maps::N3Maps};
use guard_common::{
    abi::{DeviceKey, GuardConfig, Limit, STAGE_QUARANTINE, STAGE_SHAPE},
    abi_n2::N2Config,
    policy::Verdict,
};

use crate::bench::progs::{self, time_run, RefProgs};
use crate::bench::{goal_row, median, minimum, num, ratio, Table};
use crate::bpf::{action_name, stage_entry, PinScope};
use crate::frames::GtpFrame;
use crate::sctp_frames::{ngap::InitialUeMessage, Chunk, SctpFrame};

const SEC_NS: u64 = 1_000_000_000;
const HOUR_NS: u64 = 3600 * SEC_NS;
const REPEAT: u32 = 1_000_000;
/// `N3_DEVICES`' capacity in part 1 (and `xdp_floor_new`'s, the first packet's floor).
const DEVICES: u32 = 4096;

const T_KNOWN: u32 = 0x0001_0001;
const T_OVER: u32 = 0x0001_0002;
const T_SHAPED_UNDER: u32 = 0x0003_0003;
const T_SHAPED_OVER: u32 = 0x0003_0004;
const T_QUARANTINED: u32 = 0x0002_0002;
const T_NEW: u32 = 0x0006_0006;
const T_PSC: u32 = 0x0004_0004;
const T_V6: u32 = 0x0005_0005;
/// The gNB whose new-device budget the bench exhausts (no other case uses it).
const GNB_SCAN: Ipv4Addr = Ipv4Addr::new(10, 200, 9, 9);

/// The defaults with the stage-0 profile limit out of reach: one frame repeated millions of times
/// a second would otherwise always take the over-limit (evidence) path, which a real device at
/// stage 0 rarely does.
fn within_profile_config(default: &GuardConfig) -> GuardConfig {
    let mut c = *default;
    c.observe = Limit::per_second(1_000_000_000_000, 1_000_000_000);
    c
}

/// The program under test in one case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    N3,
    N2,
}

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    target: Target,
    /// Run with the default configuration instead of the within-profile one.
    default_cfg: bool,
    /// Exhaust the new-device budget of [`GNB_SCAN`] first.
    scan: bool,
}

fn gpdu(t: u32) -> GtpFrame {
    GtpFrame::gpdu(t).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
}

fn cases() -> Vec<Case> {
    let c = |name, frame, target| Case { name, frame, target, default_cfg: false, scan: false };
    vec![
        c("G-PDU, known device, stage 0 (within its profile)", gpdu(T_KNOWN).build(), Target::N3),
        Case {
            default_cfg: true,
            ..c("G-PDU, known device, stage 0, over its profile (evidence path)", gpdu(T_OVER).build(), Target::N3)
        },
        c("G-PDU, shaped device (stage 1), under its rate", gpdu(T_SHAPED_UNDER).build(), Target::N3),
        c("G-PDU, shaped device (stage 1), over its rate", gpdu(T_SHAPED_OVER).build(), Target::N3),
        c("G-PDU, quarantined device", gpdu(T_QUARANTINED).build(), Target::N3),
        Case {
            scan: true,
            ..c(
                "G-PDU, new TEID over its gNB's new-device budget (spoofed-TEID flood)",
                gpdu(T_NEW).outer_v4(GNB_SCAN, Ipv4Addr::new(10, 200, 0, 1)).build(),
                Target::N3,
            )
        },
        c("GTP-U with a PDU Session Container (QFI 9), known device", gpdu(T_PSC).qfi(9).build(), Target::N3),
        c(
            "G-PDU, IPv6 outer, known device",
            gpdu(T_V6)
                .outer_v6(
                    Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11),
                    Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1),
                )
                .build(),
            Target::N3,
        ),
        // The same device as the first row, tagged as on a parent that carries N3 on VLAN 310
        // (IEEE 802.1Q §9.6): the full parser instead of the fixed-offset one (docs/dataplane.md,
        // "VLAN interfaces").
        c("G-PDU, 802.1Q-tagged (VLAN 310), known device", gpdu(T_KNOWN).vlan(310).build(), Target::N3),
        c("not GTP-U (IPv4/UDP to port 53): pass-through", gpdu(1).udp_ports(40000, 53).build(), Target::N3),
        c("SCTP DATA with NGAP InitialUEMessage (guard_n2)", n2_initial_ue_frame(), Target::N2),
    ]
}

/// N2's measured frame: one SCTP DATA chunk carrying an NGAP InitialUEMessage (NR cell, a
/// Registration Request with a SUCI, no 5G-S-TMSI: five IEs), from a gNB to the AMF; also the
/// A/B's N2 case (`bench::ab`).
pub(crate) fn n2_initial_ue_frame() -> Vec<u8> {
    SctpFrame::ngap()
        .v4(Ipv4Addr::new(10, 100, 0, 11), Ipv4Addr::new(10, 100, 0, 1))
        .chunk(Chunk::ngap(1, &InitialUeMessage::nr(1, 0x1_0000_0001).encode()))
        .build()
}

/// `guard_n2`'s configuration in the bench: NGAP and S1AP ports, every protection but the
/// allow-list on.
pub(crate) fn n2_bench_config() -> N2Config {
    crate::n2lab::bpf::enforce_all()
}

/// The guard under test (N3, and N2 if it loads) with the reference programs.
struct Progs {
    refs: RefProgs,
    n3: load::Loaded,
    n2: Option<(n2::N2Loaded, n2::N2Maps)>,
}

impl Progs {
    fn get(&mut self, name: &str, target: Target) -> Result<&mut Xdp> {
        match name {
            "guard" => match target {
                Target::N3 => self.n3.program().context("guard_n3"),
                Target::N2 => match self.n2.as_mut() {
                    Some((l, _)) => l.program().context("guard_n2"),
                    None => bail!("guard_n2 is not loaded"),
                },
            },
            other => self.refs.prog(other),
        }
    }
}

/// The programs timed side by side on every frame.
const SIDE: [&str; 4] = [progs::BASELINE, progs::FLOOR, progs::PARSE_ONLY, "guard"];

/// Medians (kernel ns per run) of [`SIDE`] on one frame, rotating the order every round.
/// One interleaved round of the four programs on `frame`, starting with program `r % 4`: kernel
/// ns per program (in `SIDE` order) and the guard's XDP action.
fn round(p: &mut Progs, frame: &[u8], target: Target, r: usize, repeat: u32) -> Result<([f64; 4], u32)> {
    let mut ns = [0.0; 4];
    let mut action = 0;
    for k in 0..SIDE.len() {
        let i = (r + k) % SIDE.len();
        let t = time_run(p.get(SIDE[i], target)?, frame, repeat)?;
        ns[i] = t.kernel_ns;
        if i == 3 {
            action = t.action;
        }
    }
    Ok((ns, action))
}

fn verdict_counts(maps: &N3Maps) -> Result<Vec<u64>> {
    Ok(maps.verdicts()?.iter().map(|(_, c)| c.packets).collect())
}

/// `guard_n2`'s verdict counters (packets), empty when it is not loaded.
fn n2_counts(p: &Progs) -> Vec<u64> {
    p.n2.as_ref()
        .and_then(|(_, m)| m.verdicts().ok())
        .map(|v| v.iter().map(|(_, c)| c.packets).collect())
        .unwrap_or_default()
}

/// The verdict (named by `names`, in counter order) that moved most between two snapshots.
fn dominant<'a>(names: impl Iterator<Item = &'a str>, before: &[u64], after: &[u64]) -> Option<String> {
    names
        .zip(before.iter().zip(after))
        .map(|(v, (b, a))| (v, a.saturating_sub(*b)))
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map(|(v, _)| v.to_owned())
}

/// `guard_n2` with NGAP and S1AP ports and every protection but the allow-list on, or why it
/// could not be loaded.
fn load_n2(scope: &PinScope) -> Result<(n2::N2Loaded, n2::N2Maps), String> {
    let cfg = n2_bench_config();
    let opts = n2::LoadOpts { max_devices: 4096, max_cells: 1024, max_peers: 1024 };
    match n2::load(&scope.pins, &opts, &cfg) {
        Ok(loaded) => Ok(loaded),
        Err(e) => {
            // The verifier log is long; its last line says what failed.
            let full = format!("{e}");
            let first = full.lines().next().unwrap_or("").to_owned();
            let last = full.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            Err(if first == last { first } else { format!("{first} … {last}") })
        }
    }
}

const COST_HEADERS: [&str; 9] = [
    "case",
    "verdict",
    "baseline ns",
    "floor ns",
    "parse-only ns",
    "guard ns",
    "guard / baseline",
    "guard / floor",
    "guard − floor ns",
];

/// Part 1: the tables and the goals' rows. `default` is the shipped configuration (the cases that
/// run with it; the others run with its stage-0 profile limit out of reach).
pub fn cost_part(default: &GuardConfig, rounds: usize, quick: bool) -> Result<(Vec<Table>, Vec<Vec<String>>)> {
    let scope = PinScope::new("bcst");
    let within = within_profile_config(default);
    let mut n3 = load::load(&scope.pins, DEVICES, &within)
        .with_context(|| format!("loading guard_n3, pins in {}", scope.pins.path().display()))?;
    let mut maps = N3Maps::from_ebpf_ref(&mut n3.ebpf).context("opening the N3 maps")?;
    let n2_scope = PinScope::new("bcn2");
    let n2 = load_n2(&n2_scope);
    let n2_reason = n2.as_ref().err().cloned();
    if let Some(r) = &n2_reason {
        println!("bench: guard_n2 not measured: {r}");
    }
    let refs = RefProgs::load_sized(1024, DEVICES)?;
    let mut p = Progs { refs, n3, n2: n2.ok() };
    let cases = cases();
    p.refs.floor_insert(
        [T_KNOWN, T_OVER, T_SHAPED_UNDER, T_SHAPED_OVER, T_QUARANTINED, T_NEW, T_PSC, T_V6, 1].into_iter(),
    )?;

    maps.set_stage(&DeviceKey::teid(T_QUARANTINED), &stage_entry(STAGE_QUARANTINE, 0, 0, HOUR_NS))?;
    maps.set_stage(&DeviceKey::teid(T_SHAPED_OVER), &stage_entry(STAGE_SHAPE, 1000, 100, HOUR_NS))?;
    maps.set_stage(&DeviceKey::teid(T_SHAPED_UNDER), &stage_entry(STAGE_SHAPE, 1_000_000_000, 1_000_000, HOUR_NS))?;
    let repeat = if quick { REPEAT / 4 } else { REPEAT };
    // The main table: four times the rounds at a quarter of the runs each (the same time). This
    // machine drifts between a faster and a slower state for seconds at a time; short rounds that
    // go over every case let each row's median sample those states alike.
    let (case_rounds, case_repeat) = (rounds * 4, repeat / 4);
    // Warm-up: every known device has its entry before it is timed.
    for c in cases.iter().filter(|c| c.target == Target::N3 && !c.scan) {
        time_run(p.get("guard", Target::N3)?, &c.frame, 1)?;
    }

    println!("bench: part 1: {} cases, {case_rounds} rounds of {case_repeat} runs", cases.len());
    let mut t1 = Table::new(
        &format!(
            "Per-packet cost, one frame repeated {case_repeat} times per round, {case_rounds} rounds, ratio against references measured in the same run"
        ),
        &COST_HEADERS,
    );
    // Rounds go over every case (in a rotated order) before the next round starts, so a change in
    // the machine's state during the part (frequency, a neighbour on the sibling thread) is spread
    // over all rows instead of landing on whichever case ran then.
    let mut samples: Vec<[Vec<f64>; 4]> = cases.iter().map(|_| Default::default()).collect();
    let mut moved: Vec<Vec<u64>> = vec![Vec::new(); cases.len()];
    let mut actions = vec![0u32; cases.len()];
    for r in 0..case_rounds {
        for j in 0..cases.len() {
            let ci = (j + r) % cases.len();
            let c = &cases[ci];
            if c.target == Target::N2 && n2_reason.is_some() {
                continue;
            }
            if c.default_cfg {
                maps.write_config(default)?;
            }
            if c.scan {
                let mut cfg = within;
                // One new device per hour from this gNB: the first never-seen TEID uses the budget,
                // the timed one is over it on every run.
                cfg.new_device = Limit { interval_ns: HOUR_NS, tau_ns: 0 };
                maps.write_config(&cfg)?;
                let junk = gpdu(0x0fff_0001).outer_v4(GNB_SCAN, Ipv4Addr::new(10, 200, 0, 1)).build();
                time_run(p.get("guard", Target::N3)?, &junk, 1)?;
            }
            let before = match c.target {
                Target::N3 => verdict_counts(&maps)?,
                Target::N2 => n2_counts(&p),
            };
            let (ns, action) = round(&mut p, &c.frame, c.target, r, case_repeat)?;
            let after = match c.target {
                Target::N3 => verdict_counts(&maps)?,
                Target::N2 => n2_counts(&p),
            };
            for (i, v) in ns.into_iter().enumerate() {
                samples[ci][i].push(v);
            }
            moved[ci].resize(after.len(), 0);
            for (m, (a, b)) in moved[ci].iter_mut().zip(after.iter().zip(&before)) {
                *m += a.saturating_sub(*b);
            }
            actions[ci] = action;
            if c.default_cfg || c.scan {
                maps.write_config(&within)?;
            }
        }
    }
    if maps.device(&DeviceKey::teid(T_NEW))?.is_some() {
        println!("bench: note: the over-budget TEID was inserted (the budget refilled during the run)");
    }
    let mut res: Vec<[f64; 4]> = Vec::new();
    // The least disturbed round of each program and case: issue 19 asks for the minimum beside
    // the median (the machine drifts between a faster and a slower state within a run).
    let mins: Vec<[f64; 4]> = samples.iter().map(|s| s.each_ref().map(|v| minimum(v))).collect();
    let mut t_min = Table::new(
        "Per-packet cost, minimum over the same rounds",
        &["case", "baseline ns", "floor ns", "guard ns", "guard / baseline", "guard / floor"],
    );
    for (ci, c) in cases.iter().enumerate() {
        if c.target == Target::N2 {
            if let Some(r) = &n2_reason {
                t1.row(vec![
                    c.name.into(),
                    format!("not measured: {r}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                res.push([f64::NAN; 4]);
                continue;
            }
        }
        let m = samples[ci].each_ref().map(|v| median(v));
        let zero = vec![0; moved[ci].len()];
        let verdict = match c.target {
            Target::N3 => dominant(Verdict::ALL.iter().map(|v| v.name()), &zero, &moved[ci]),
            Target::N2 => dominant(guard_common::policy_n2::N2Verdict::ALL.iter().map(|v| v.name()), &zero, &moved[ci]),
        }
        .unwrap_or_else(|| action_name(actions[ci]).to_owned());
        t1.row(vec![
            c.name.into(),
            verdict,
            num(m[0], 1),
            num(m[1], 1),
            num(m[2], 1),
            num(m[3], 1),
            format!("{}x", num(ratio(m[3], m[0]), 2)),
            format!("{}x", num(ratio(m[3], m[1]), 2)),
            num(m[3] - m[1], 1),
        ]);
        let lo = mins[ci];
        t_min.row(vec![
            c.name.into(),
            num(lo[0], 1),
            num(lo[1], 1),
            num(lo[3], 1),
            format!("{}x", num(ratio(lo[3], lo[0]), 2)),
            format!("{}x", num(ratio(lo[3], lo[1]), 2)),
        ]);
        res.push(m);
    }
    t_min.note("The same samples as the table above, each program's and case's fastest round instead of the median (each round's figure is already the kernel's mean over its runs). A ratio of minima compares the least disturbed runs of both programs; the goals are judged on the medians.");
    t1.note("ns = the kernel's mean per run (BPF_PROG_TEST_RUN `duration`, integer ns, preemption excluded), median of rounds (each round times the four programs in a rotated order, and goes over every case, also rotated, before the next). baseline = `xdp_baseline` (returns XDP_PASS); floor = `xdp_floor`: the least any per-device guard must do (parse Ethernet/IPv4-or-IPv6/UDP to the TEID, one hash lookup, two atomic adds); parse-only = `xdp_parse_only` (the guard's own full parser, then XDP_PASS). All in `guard-ebpf/src/baseline.rs`.");
    t1.note("Configuration: the shipped defaults, except that the stage-0 profile limit (`observe`) is out of reach in every row but the \"over its profile\" one: a frame repeated millions of times a second is otherwise always over it. Shaped: 1000 pps (over) or 10⁹ pps (under). The new-TEID row exhausts its gNB's new-device budget first: every run is a never-seen TEID, dropped and not inserted.");
    t1.note("The floor and the guard do different work on non-G-PDU rows (the floor stops at the port or protocol check); there the ratio only says how cheap the pass-through is. The floor reads no VLAN tag either: on the 802.1Q-tagged row it stops at the EtherType, so compare that row with the untagged known device's instead.");

    // The first packet of a new device: every run a never-seen TEID, admitted and inserted.
    let (t_new, m_new) =
        new_devices(&mut p, &mut maps, &within, rounds.min(3), if quick { 20_000 } else { 50_000 }, DEVICES)?;
    maps.write_config(&within)?;

    // Where the nanoseconds go.
    let (prices, t_ops) = op_prices(&mut p, &cases[0].frame, rounds, repeat)?;
    let mut t_acc = Table::new(
        "Where the nanoseconds go (above `xdp_baseline`), from the operation prices",
        &[
            "path",
            "measured ns",
            "parse ns",
            "clock (jiffies)",
            "LRU hits (N3: 8-byte key; N2: 16–24)",
            "hash hits",
            "hash misses",
            "per-CPU/array slots",
            "atomic adds",
            "BPF-to-BPF calls",
            "rest (branches, compares, copies) ns",
        ],
    );
    let stage0 = res[0];
    let quar = res[4];
    let parse_ns = stage0[2] - stage0[0];
    // The floor's parse is shorter than the shared parser; its remainder is that lean parse.
    t_acc.row(explain(&prices, &PATH_FLOOR, stage0[1] - stage0[0], 0.0));
    t_acc.row(explain(&prices, &PATH_STAGE0, stage0[3] - stage0[0], parse_ns));
    t_acc.row(explain(&prices, &PATH_QUARANTINE, quar[3] - quar[0], quar[2] - quar[0]));
    let n2_at = cases.iter().position(|c| c.target == Target::N2).and_then(|i| res.get(i)).filter(|m| !m[3].is_nan());
    if let Some(m) = n2_at {
        // No parse-only program for N2: its parse is in "rest".
        t_acc.row(explain(&prices, &PATH_N2, m[3] - m[0], 0.0));
    }
    t_acc.note("Operation counts are read off `guard-ebpf/src/n3/` for each path (TEID key mode, anti-spoofing in shadow: compared, not counted); prices from the probe table. parse = `xdp_parse_only` − baseline on the same frame. \"rest\" is what the counted operations do not explain: the bounds-checked parser's share is in \"parse\", so this is the policy's branches, the 20-byte address compares (the device's cached gNB and its slot's owner, the anti-spoofing binding) and copies into the device record, GCRA arithmetic (the call of the BPF subprogram `policy` is priced in its own column). The floor row's rest is its lean parse. guard_n2's row (counted off `guard-ebpf/src/n2/` for the bench's frame: one DATA chunk, an InitialUEMessage of five IEs) has no parse-only program to compare, so its rest is its whole parse as well: the SCTP chunk walk, the APER walk of the IEs and the NAS header, and the copies into its cell and device records; its LRU hits are priced at a 20-byte key's.");

    let mut tables = vec![t1, t_min, t_new, t_ops, t_acc];
    // Where the time goes, by symbol: N3's common path, and N2's DATA with an InitialUEMessage
    // (issue 19 asks for ≤ 250 ns or a measured account of what bounds it).
    let n2 = cases.iter().find(|c| c.target == Target::N2).map(|c| c.frame.clone());
    let profiles = [
        (Target::N3, "guard_n3 (known device, stage 0)", Some(cases[0].frame.clone())),
        (Target::N2, "guard_n2 (SCTP DATA with an NGAP InitialUEMessage)", n2),
    ];
    for (target, what, frame) in profiles {
        let Some(frame) = frame else { continue };
        match perf_profile(&mut p, target, what, &frame, repeat) {
            Ok(t) => tables.push(t),
            Err(e) => println!("bench: no perf profile of {what}: {e:#}"),
        }
    }

    let mut goals = Vec::new();
    let lookups = [
        format!(
            "one LRU hit on an 8-byte key ({} ns; the gNB's counters through the slot the device caches, \"no stage\" and \"no cell cap\" cached too, so no other hash lookup)",
            num(prices.lru8, 0)
        ),
        format!(
            "one LRU hit on an 8-byte key ({} ns; the gNB's counters through the slot the device caches, the quarantine cached in the device record)",
            num(prices.lru8, 0)
        ),
    ];
    for ((name, m, lo), lk) in
        [("known device, stage 0", stage0, mins[0]), ("quarantine drop path", quar, mins[4])].into_iter().zip(lookups)
    {
        let r = ratio(m[3], m[1]);
        goals.push(goal_row(
            format!("per-packet cost ≤ 2x floor: {name}"),
            format!(
                "{} ns vs floor {} ns = {}x (minima: {} vs {} ns = {}x; net of xdp_baseline's {} ns, the test run's own cost per run, in both: {}x)",
                num(m[3], 1),
                num(m[1], 1),
                num(r, 2),
                num(lo[3], 1),
                num(lo[1], 1),
                num(ratio(lo[3], lo[1]), 2),
                num(m[0], 1),
                num(ratio(m[3] - m[0], m[1] - m[0]), 2)
            ),
            r <= 2.0,
            || {
                format!(
                    "the guard's full parser costs {} ns (parse-only − baseline) where the floor's lean one costs a few; then {lk}, where the floor does one hash lookup on a 4-byte key; then the policy's compares and stores (\"rest\" in \"Where the nanoseconds go\") and its call (a BPF subprogram: \"BPF-to-BPF calls\" there; see also the perf profile)",
                    num(m[2] - m[0], 0),
                )
            },
        ));
    }

    goals.extend(other_goals(&cases, &res, m_new));

    drop(p);
    drop(maps);
    drop(n2_scope);
    drop(scope);
    Ok((tables, goals))
}

/// The rest of issue 19's per-packet goals, each from this run's medians: a new device's first
/// packet, IPv6 outer, the pass-through of what is not GTP-U, and N2's DATA with an
/// InitialUEMessage. `res[i]` is case `i`'s (baseline, floor, parse-only, guard).
fn other_goals(cases: &[Case], res: &[[f64; 4]], new: [f64; 4]) -> Vec<Vec<String>> {
    let at = |name: &str| cases.iter().position(|c| c.name.starts_with(name)).and_then(|i| res.get(i)).copied();
    let row = |goal: &str, measured: String, met: bool, why: &str| goal_row(goal, measured, met, || why.to_owned());
    let mut g = Vec::new();
    let r = ratio(new[2], new[1]);
    g.push(row(
        "new device (first packet) ≤ 3x floor",
        format!("{} ns vs floor {} ns = {}x", num(new[2], 1), num(new[1], 1), num(r, 2)),
        r <= 3.0,
        "random accesses into tables too large to stay in cache, ~50 ns each here: the device's miss in N3_DEVICES, its N3_SEEN bit (is it an established session; 512 KiB), its gNB's record, then the insert into N3_DEVICES, which on a full map evicts (the LRU lists, the evicted record unlinked from its bucket); its N3_STAGES lookup only if its N3_STAGED bit is set (docs/dataplane.md, \"A new device's first packet\"). The floor's lookup misses in a small map that stays in cache, and it inserts nothing",
    ));
    // Not the goal: the same first packets against a floor that inserts and evicts as any
    // per-device guard must, so that what is left is the guard's own work.
    let r = ratio(new[2], new[3]);
    g.push(row(
        "new device (first packet) ≤ 3x a floor that inserts (`xdp_floor_new`; beside the issue's goal above, not instead of it)",
        format!(
            "{} ns vs inserting floor {} ns = {}x ({}x with xdp_baseline's {} ns of per-call overhead taken out of both)",
            num(new[2], 1),
            num(new[3], 1),
            num(r, 2),
            num(ratio(new[2] - new[0], new[3] - new[0]), 2),
            num(new[0], 1)
        ),
        r <= 3.0,
        "the floor's miss, insert (with its eviction) and second lookup are the guard's too; what the guard adds: its gNB's record (the new-device budget), its N3_SEEN bit (is it an established session; 512 KiB), its N3_STAGED bit, a 328-byte record copied into the map where the floor's is 16 bytes, then the known device's path (docs/dataplane.md, \"A new device's first packet\")",
    ));
    if let Some(m) = at("G-PDU, IPv6 outer") {
        let r = ratio(m[3], m[1]);
        g.push(row(
            "IPv6 outer ≤ 2.5x floor",
            format!("{} ns vs floor {} ns = {}x", num(m[3], 1), num(m[1], 1), num(r, 2)),
            r <= 2.5,
            "the common IPv6 frame (untagged or one VLAN tag, Next Header UDP) takes the fixed-offset parse as IPv4 does (an IPv6 extension header or a second tag takes the full parser), ~2 ns more than IPv4's (BENCHMARKS.md §11); what remains is the known device's path as for IPv4 (its row above: one LRU hit, the policy's compares, stores and call), with 16-octet outer and inner addresses to read, compare and copy",
        ));
    }
    if let Some(m) = at("not GTP-U") {
        let r = ratio(m[3], m[0]);
        g.push(row(
            "pass-through (not GTP-U) ≤ 1.2x the minimal program",
            format!("{} ns vs xdp_baseline {} ns = {}x", num(m[3], 1), num(m[0], 1), num(r, 2)),
            r <= 1.2,
            "the minimal program reads nothing; the guard reads its configuration, parses to the UDP port on the fixed-offset path (no per-CPU scratch slot, nothing written), counts the verdict per CPU and checks whether a next program is chained: ~4 ns of work is this design's bound, and 1.2x of 5 ns is 1 ns, below the kernel's integer-ns resolution (BENCHMARKS.md §11)",
        ));
    }
    if let Some(m) = at("SCTP DATA with NGAP").filter(|m| !m[3].is_nan()) {
        g.push(row(
            "N2: SCTP DATA with an NGAP InitialUEMessage ≤ 250 ns",
            format!("{} ns", num(m[3], 1)),
            m[3] <= 250.0,
            "\"Where the nanoseconds go\", guard_n2's row: its 6 BPF subprogram calls and returns (the verifier's budget, docs/n2.md §3: the frame parse, one per SCTP chunk, the policy, and per InitialUEMessage its bpf_loop callback, its IE walk and its accounting), the peer, cell and device LRU hits (20-, 16- and 24-octet keys) and two misses (is the source another path of a multi-homed peer, is the peer staged), then the SCTP, APER and NAS parse and the accounting in \"rest\". Calls and lookups are what a CPU whose returns go through a thunk (SRSO Safe RET, retpolines: \"Price of one operation\") pays most for; on an Intel Xeon without them the program met the goal, at 186 ns with ~20 calls (§25)",
        ));
    }
    g
}

/// Where `guard_n3`'s time goes by symbol, sampled by `perf record` (cpu-clock, this CPU only)
/// while the known-device stage-0 frame runs in a loop. JIT-ed BPF code shows as `bpf_prog_*`
/// (the program and its subprogram), helpers and map code under their kernel names.
fn perf_profile(p: &mut Progs, target: Target, what: &str, frame: &[u8], repeat: u32) -> Result<Table> {
    // Only this thread is sampled: the CPU is shared with whatever else runs on the machine.
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // Removed on drop, on every way out (an error of a run below included).
    let dir = crate::oracle::TempDir::new("og-bench-perf")?;
    let data = dir.path().join("perf.data");
    let secs = 2;
    // `perf record` is killed and reaped on drop, should a run below fail while it records.
    let mut child = std::process::Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-c", "20000", "-t", &tid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(crate::netns::Reaped)
        .context("starting `perf record` (is perf installed?)")?;
    let t0 = Instant::now();
    // Bounded: as long as perf records, and never past 10 s.
    while t0.elapsed() < Duration::from_millis(secs * 1000 + 300) {
        time_run(p.get("guard", target)?, frame, repeat / 4)?;
    }
    let st = child.0.wait().context("waiting for perf record")?;
    if !st.success() {
        bail!("perf record failed ({st})");
    }
    let out = std::process::Command::new("perf")
        .args(["report", "--stdio", "-q", "--sort", "sym", "--percent-limit", "1", "-i"])
        .arg(&data)
        .output()
        .context("perf report")?;
    drop(dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut t = Table::new(&format!("perf profile of {what}, by symbol"), &["share of samples", "symbol"]);
    for l in text.lines() {
        let l = l.trim();
        let Some((pct, rest)) = l.split_once('%') else { continue };
        let sym = rest.trim().trim_start_matches("[k]").trim_start_matches("[.]").trim();
        t.row(vec![format!("{}%", pct.trim()), sym.to_owned()]);
    }
    if t.rows.is_empty() {
        bail!("perf report printed nothing");
    }
    t.note(format!("`perf record -e cpu-clock -c 20000 -t <the bench thread>` (a sample every 20 µs of its CPU time, kernel included) during BPF_PROG_TEST_RUN loops of {what} on its frame; symbols ≥ 1%. `bpf_prog_<tag>_<name>` is JIT-ed BPF (for guard_n3 the program, with the parse inlined, and its subprogram `policy`; for guard_n2 the program and its subprograms: `chunk_step` per SCTP chunk, `policy`, and per InitialUEMessage the `bpf_loop` callback `ue_loop_step`, `parse_ue` with its IE walk inline, `account_ue`); kernel symbols are the helpers and map code it calls; the test-run loop's own overhead (bpf_test_run, timer) is what `xdp_baseline` costs."));
    Ok(t)
}

mod first;
mod prices;
use first::new_devices;
use prices::*;
