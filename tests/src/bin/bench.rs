//! `cargo xtask bench`: the guard's cost, measured (not asserted), written to BENCHMARKS.md.
//!
//! 1. Per packet, BPF_PROG_TEST_RUN: `guard_n3` (and `guard_n2`) against two reference programs
//!    measured in the same run, `xdp_baseline` (XDP_PASS) and `xdp_floor` (parse to the TEID, one
//!    hash lookup, two atomic adds), plus operation probes that price a clock read, a lookup, an
//!    atomic add, so the guard's cost can be accounted for ([`labkit::bench::cost`]); then the
//!    same cases on CPU 0 alone and on CPUs 0 and 1 at once ([`labkit::bench::multicore`]).
//! 2. Flood throughput on the lab's veth pair: no filter, the guard, an nftables meter keyed on
//!    the TEID, from a paced AF_PACKET sender ([`labkit::bench::wire`]); then the same filters
//!    on one core fed by an XDP live-frames sender, which the filters rather than the sender
//!    bound ([`labkit::bench::live`]).
//! 3. Scale: 1M and 10M devices, a spoofed-TEID flood, the controller at 1M devices
//!    ([`labkit::bench::scale`]).
//!
//! Needs root. Options: `--quick` (fewer rounds, shorter steps, no 10M map), `--no-write`,
//! `--out PATH`, `--skip-wire`, `--skip-scale`, `--only-controller` (part 3's controller run
//! alone), `--only-live` (part 2's live-frames flood alone), `--only-multicore` (part 1's
//! multi-core table alone); the `--only` runs print, not write. `--ab LABEL=OBJECT` (repeatable):
//! the A/B of `guard_n3`'s common path and first packet between this build and those objects, printed alone
//! (`--only-first-packet`: the first packet's alone)
//! ([`labkit::bench::ab`]; `cargo xtask bench --ab REV` builds the objects from commits).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use guard::config::Config;
use guard_common::abi::GuardConfig;
use labkit::affinity::{self, pin_to_current_cpu};
use labkit::bench::{cost, live, multicore, scale, sys, wire, Table};

pub struct Args {
    pub quick: bool,
    pub write: bool,
    pub out: PathBuf,
    pub wire: bool,
    pub scale: bool,
    pub only_controller: bool,
    pub only_live: bool,
    pub only_multicore: bool,
    /// With `--ab`: only the first-packet A/B.
    pub only_first_packet: bool,
    /// `--ab LABEL=OBJECT`: objects to compare with this build.
    pub ab: Vec<(String, PathBuf)>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        quick: false,
        write: true,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md"),
        wire: true,
        scale: true,
        only_controller: false,
        only_live: false,
        only_multicore: false,
        only_first_packet: false,
        ab: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--no-write" => a.write = false,
            "--skip-wire" => a.wire = false,
            "--skip-scale" => a.scale = false,
            "--only-controller" => a.only_controller = true,
            "--only-live" => a.only_live = true,
            "--only-multicore" => a.only_multicore = true,
            "--only-first-packet" => a.only_first_packet = true,
            "--ab" => {
                let v = it.next().context("--ab needs LABEL=OBJECT")?;
                let (label, obj) = v.split_once('=').context("--ab needs LABEL=OBJECT")?;
                a.ab.push((label.to_owned(), PathBuf::from(obj)));
            }
            "--out" => a.out = PathBuf::from(it.next().context("--out needs a path")?),
            "-h" | "--help" => {
                println!("usage: bench [--quick] [--no-write] [--out PATH] [--skip-wire] [--skip-scale] [--only-controller] [--only-live] [--only-multicore] [--ab LABEL=OBJECT ... [--only-first-packet]]  (needs root)");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(a)
}

/// The line after which BENCHMARKS.md holds hand-run measurements that `cargo xtask bench` keeps.
const HAND_MEASURED: &str = "<!-- Measured by hand (commands given): kept as is by cargo xtask bench. -->";

fn main() -> ExitCode {
    if !labkit::netns::is_root() {
        eprintln!(
            "bench: needs root (CAP_BPF and CAP_NET_ADMIN: it loads XDP programs, creates network \
             namespaces and nftables rules). Run `sudo -E cargo xtask bench`."
        );
        return ExitCode::from(2);
    }
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The shipped defaults (`Config::default()`): what a user gets without a config file.
fn default_config() -> GuardConfig {
    Config::default().dataplane(affinity::ncpus() as u32)
}

fn run(args: &Args) -> Result<()> {
    // On Ctrl-C or SIGTERM: the namespaces, and the controller run's `guard` child and pins
    // (registered by `scale::controller`).
    labkit::scenario::install_signal_cleanup()?;
    let started = Instant::now();
    let load_before = sys::loadavg();
    let rounds = if args.quick { 3 } else { 5 };
    let mut report = String::new();
    let mut summary = Vec::new();

    if !args.ab.is_empty() {
        return ab(args);
    }
    if args.only_controller || args.only_live || args.only_multicore {
        if args.only_multicore {
            println!("bench: --only-multicore: part 1's multi-core table alone");
            part(&mut report, &mut summary, "multi-core", multicore_part(rounds, args.quick));
        }
        if args.only_controller {
            println!("bench: --only-controller: part 3's controller run alone");
            part(&mut report, &mut summary, "controller", scale::controller_part(&default_config(), args.quick));
        }
        if args.only_live {
            println!("bench: --only-live: part 2's live-frames flood alone");
            part(&mut report, &mut summary, "live-frames flood", live::live_part(&default_config(), args.quick));
        }
        println!("\n{}", goals_table(summary).text());
        return Ok(());
    }
    let affinity = Affinity::save()?;
    let cpu = pin_to_current_cpu()?;
    println!("bench: part 1: BPF_PROG_TEST_RUN on CPU {cpu}, {rounds} interleaved rounds, medians");
    let part1 = cost::cost_part(&default_config(), rounds, args.quick);
    affinity.restore()?;
    let (tables, goals) = part1?;
    summary.extend(goals);
    report.push_str("## 1. Per-packet cost (BPF_PROG_TEST_RUN)\n\n");
    for t in &tables {
        println!("\n{}", t.text());
        report.push_str(&t.markdown());
    }
    part(&mut report, &mut summary, "multi-core", multicore_part(rounds, args.quick));

    report.push_str("## 2. Flood throughput on veth\n\n");
    if args.wire {
        part(&mut report, &mut summary, "flood throughput", wire::flood_part(&default_config(), args.quick));
        part(&mut report, &mut summary, "live-frames flood", live::live_part(&default_config(), args.quick));
    } else {
        report.push_str("Not run (`--skip-wire`).\n\n");
    }

    report.push_str("## 3. Scale\n\n");
    if args.scale {
        part(&mut report, &mut summary, "scale", scale::scale_part(&default_config(), args.quick));
    } else {
        report.push_str("Not run (`--skip-scale`).\n\n");
    }

    let g = goals_table(summary);
    println!("\n{}", g.text());
    let took = started.elapsed();
    let load_after = sys::loadavg();
    println!("\nbench: done in {:.0} s (load average before {load_before}, after {load_after})", took.as_secs_f64());

    if args.write {
        let mut doc = document(&g.markdown(), &report, args, took, &load_before, &load_after);
        // Measurements this binary does not make (run by hand, with their commands) live below
        // HAND_MEASURED in the file and are carried over, not lost to a regeneration.
        if let Some(kept) =
            std::fs::read_to_string(&args.out).ok().and_then(|old| old.find(HAND_MEASURED).map(|i| old[i..].to_owned()))
        {
            doc.push('\n');
            doc.push_str(&kept);
        }
        std::fs::write(&args.out, doc).with_context(|| format!("writing {}", args.out.display()))?;
        println!("bench: wrote {}", args.out.display());
    }
    Ok(())
}

/// `--ab`: this build's `guard_n3` and `guard_n2` against the given objects, on one CPU, printed
/// (Markdown too, for BENCHMARKS.md's hand-run section).
fn ab(args: &Args) -> Result<()> {
    let mut builds =
        vec![labkit::bench::ab::Build { label: "this build".into(), object: guard::bpf::object::object().to_vec() }];
    for (label, path) in &args.ab {
        let object = std::fs::read(path).with_context(|| format!("reading the object {}", path.display()))?;
        builds.push(labkit::bench::ab::Build { label: label.clone(), object });
    }
    let affinity = Affinity::save()?;
    let cpu = pin_to_current_cpu()?;
    let (rounds, repeat) = if args.quick { (9, 100_000) } else { (31, 500_000) };
    println!(
        "bench: A/B of guard_n3 and guard_n2 on CPU {cpu}: {} builds, {rounds} interleaved rounds, repeat {repeat}",
        builds.len()
    );
    let load_before = sys::loadavg();
    // The first packet: each round inserts `n` devices per build (repeat 1 each).
    let (first_rounds, n) = if args.quick { (5, 10_000) } else { (11, 20_000) };
    let first = labkit::bench::ab::ab_first_packet(&default_config(), &builds, first_rounds, n, 4096);
    let keys = labkit::bench::ab::key_size_part(rounds, repeat / 5);
    if args.only_first_packet {
        affinity.restore()?;
        for t in [first?, keys?] {
            println!("\n{}\n{}", t.text(), t.markdown());
        }
        println!("bench: load average before {load_before}, after {}", sys::loadavg());
        return Ok(());
    }
    let n3 = labkit::bench::ab::ab_part(&default_config(), &builds, rounds, repeat);
    let n3_ue = labkit::bench::ab::ab_ue_part(&default_config(), &builds, rounds, repeat);
    let n3_local = labkit::bench::ab::ab_local_part(&default_config(), &builds, rounds, repeat);
    // N2's frame walks an InitialUEMessage: several times N3's cost, so a fifth of the repeat.
    let n2 = labkit::bench::ab::ab_n2_part(&builds, rounds, (repeat / 5).max(1));
    affinity.restore()?;
    for t in [n3?, n3_ue?, n3_local?, first?, keys?, n2?] {
        println!("\n{}\n{}", t.text(), t.markdown());
    }
    println!("bench: load average before {load_before}, after {}", sys::loadavg());
    Ok(())
}

/// Part 1's multi-core table (its threads pin themselves to CPUs 0 and 1).
fn multicore_part(rounds: usize, quick: bool) -> PartResult {
    let (t, goal) = multicore::multicore_part(&default_config(), rounds, quick)?;
    Ok((vec![t], vec![goal]))
}

/// The summary table of the goals, one row per goal a part measured.
fn goals_table(rows: Vec<Vec<String>>) -> Table {
    let mut g = Table::new("The issue's goals, measured", &["goal", "measured", "met", "why, where missed"]);
    for row in rows {
        g.row(row);
    }
    g
}

type PartResult = Result<(Vec<Table>, Vec<Vec<String>>)>;

/// Print and record a part's tables and goal rows; a part that failed is recorded as not
/// measured, with the reason, and the others still run.
fn part(report: &mut String, summary: &mut Vec<Vec<String>>, name: &str, r: PartResult) {
    match r {
        Ok((tables, goals)) => {
            summary.extend(goals);
            for t in &tables {
                println!("\n{}", t.text());
                report.push_str(&t.markdown());
            }
        }
        Err(e) => {
            println!("\nbench: {name}: not measured: {e:#}");
            report.push_str(&format!("Not measured: {e:#}\n\n"));
            summary.push(vec![name.into(), format!("not measured: {e:#}"), "-".into(), String::new()]);
        }
    }
}

/// The calling thread's CPU affinity, to undo the pinning the test runs need before the later
/// parts spawn their threads.
struct Affinity(libc::cpu_set_t);

impl Affinity {
    fn save() -> Result<Affinity> {
        // SAFETY: cpu_set_t is plain old data; the kernel writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
            }
            Ok(Affinity(set))
        }
    }

    fn restore(&self) -> Result<()> {
        // SAFETY: a valid cpu_set_t of the right size.
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
        Ok(())
    }
}

fn document(goals: &str, report: &str, args: &Args, took: Duration, load_before: &str, load_after: &str) -> String {
    let mut d = String::new();
    let cmd = if args.quick { "cargo xtask bench --quick" } else { "cargo xtask bench" };
    let _ = writeln!(d, "# Benchmarks\n");
    let _ = writeln!(
        d,
        "Measured, not asserted, by `{cmd}` (as root; `tests/src/bin/bench.rs`, run with \
         `cargo run --release -p guard-tests --bin bench`). Every number below comes from one \
         run of that command, which rewrites this file.\n"
    );
    let _ = writeln!(d, "- date: {} (UTC)", sys::now_utc());
    let _ =
        writeln!(d, "- machine: {} ({} online CPUs, {} RAM)", sys::cpu_model(), affinity::ncpus(), sys::mem_total());
    let _ = writeln!(d, "- kernel: {}", sys::kernel_release());
    let _ = writeln!(d, "- command: `{cmd}`; wall time {:.0} s", took.as_secs_f64());
    let _ = writeln!(
        d,
        "- load average (1/5/15 min) before: {load_before}; after: {load_after}. The machine is shared: \
         other builds and tests may have run at the same time, which is why costs are ratios \
         against references measured in the same run.\n"
    );
    let _ = writeln!(
        d,
        "BPF_PROG_TEST_RUN reuses one frame, so its state is hot in cache; the scale section \
         gives every run a different device. veth runs XDP on a copy of the skb, which a real NIC \
         driver does not: only the relative veth figures carry over to hardware.\n"
    );
    d.push_str("## Summary\n\n");
    d.push_str(goals);
    d.push_str(report);
    d
}
