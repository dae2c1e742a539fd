//! `lab_n2`: the N2 lab (issue 5). Runs N2 scenarios (`lab/scenarios/n2_*.toml`) end to end:
//! unique network namespaces and veth pairs, the real `guard run --n2-iface` with its response
//! hook recorded, a RAN side that plays gNB associations carrying NGAP on the wire, and a capture
//! of what got past XDP. Prints a PASS/FAIL table and writes `<out>/n2/report.md` and
//! `report.json`. Exits 0 when every check passes, 1 when one fails, 2 when a scenario cannot run.
//!
//! ```text
//! lab_n2 --scenario all --out lab-out              # every n2_*.toml, about 1.5 minutes
//! lab_n2 --scenario n2_storm --out lab-out --guard-bin target/release/guard
//! ```
//!
//! Needs root (namespaces, XDP) and the `guard` binary (`--guard-bin`; default
//! `target/release/guard`, else `target/debug/guard`, of this workspace). Everything it creates
//! is removed on exit, on a failed check, on a panic and on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use labkit::n2lab::{
    run_scenario,
    spec::N2Scenario,
    summary::{Failed, Report},
    RunOpts, INTERRUPTED,
};

#[derive(Parser, Debug)]
#[command(about = "The N2 lab: signalling-storm, flash-crowd and INIT-flood scenarios against the real guard")]
struct Args {
    /// `all`, a scenario name (`n2_storm`, or `storm`), or a path to a scenario file.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Output directory: `<out>/n2/report.{md,json}` and one directory per scenario.
    #[arg(long, default_value = "lab-out")]
    out: PathBuf,
    /// The guard binary (default: target/release/guard, else target/debug/guard, of this workspace).
    #[arg(long)]
    guard_bin: Option<PathBuf>,
    /// Where scenario names are looked up.
    #[arg(long)]
    scenarios_dir: Option<PathBuf>,
    /// Less progress output.
    #[arg(long)]
    quiet: bool,
}

fn scenario_files(arg: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    if arg == "all" {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "toml")
                    && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("n2_"))
            })
            .collect();
        v.sort();
        if v.is_empty() {
            bail!("no n2_*.toml in {}", dir.display());
        }
        return Ok(v);
    }
    let p = PathBuf::from(arg);
    if p.is_file() {
        return Ok(vec![p]);
    }
    for name in [format!("{arg}.toml"), format!("n2_{arg}.toml")] {
        let f = dir.join(name);
        if f.is_file() {
            return Ok(vec![f]);
        }
    }
    bail!("no scenario {arg:?} (a path, or a name in {})", dir.display())
}

fn run(args: &Args) -> Result<bool> {
    if !labkit::netns::is_root() {
        bail!("lab_n2 needs root (network namespaces, XDP, bpffs)");
    }
    let guard_bin = labkit::guard_bin::built(args.guard_bin.clone())?;
    let dir = args.scenarios_dir.clone().unwrap_or_else(|| labkit::guard_bin::workspace().join("lab/scenarios"));
    let files = scenario_files(&args.scenario, &dir)?;
    // Parse them all first: a typo fails before anything is set up.
    let scenarios = files.iter().map(|f| N2Scenario::read(f)).collect::<Result<Vec<_>>>()?;
    labkit::n2lab::stop_on_signals()?;
    let opts = RunOpts { guard_bin: guard_bin.clone(), out: args.out.clone(), verbose: !args.quiet };
    eprintln!("lab_n2: guard binary {}, {} scenario(s)", guard_bin.display(), scenarios.len());
    let t0 = Instant::now();
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for s in &scenarios {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        eprintln!("lab_n2: {} ({}): {}", s.name, s.threat, s.title);
        match run_scenario(s, &opts) {
            Ok(r) => {
                eprintln!("lab_n2: {} {} in {:.1} s", s.name, if r.pass() { "PASS" } else { "FAIL" }, r.wall_s);
                done.push(r);
            }
            Err(e) => {
                eprintln!("lab_n2: {} could not run: {e:#}", s.name);
                failed.push(Failed { name: s.name.clone(), error: format!("{e:#}") });
            }
        }
    }
    let report = Report::new(&guard_bin, t0.elapsed().as_secs_f64(), done, failed);
    let out = args.out.join("n2");
    report.write(&out)?;
    print!("{}", report.table());
    println!("report: {}", out.join("report.md").display());
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(report.pass)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lab_n2: {e:#}");
            ExitCode::from(2)
        }
    }
}
