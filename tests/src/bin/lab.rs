//! `cargo xtask lab --scenario all|NAME --out DIR`: the overload guard's demo and acceptance run.
//!
//! For each scenario (`lab/scenarios/*.toml`) the same seeded traffic schedule is replayed through
//! a fresh veth lab three times: with no guard, with a naive cell-wide cap, and with the guard.
//! The lab scores each run, writes `report.md`, `report.json` and a timeline plot per scenario
//! into the output directory, prints one PASS/FAIL line per acceptance criterion and exits
//! non-zero if any fails. Needs root (namespaces, XDP) and the `guard` binary (`--guard-bin`,
//! default `target/release/guard` of this workspace).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use labkit::population::Plan;
use labkit::report::{write_report, ScenarioReport};
use labkit::scenario::{find_scenario, run_mode, scenario_files, Mode, RunOpts, Scenario};
use labkit::score::{checks, score, Check};

#[derive(Parser, Debug)]
#[command(name = "lab", about = "Run the overload guard's lab scenarios and write the report")]
struct Args {
    /// `all`, a scenario name (file stem in --scenario-dir, with or without its number, or the
    /// file's `name`; `-` for `_` is fine), a path to a scenario file, or several
    /// of these comma-separated.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Output directory for report.md, report.json, plots and per-run files.
    #[arg(long, default_value = "lab-out")]
    out: PathBuf,
    /// The guard binary (default: target/release/guard, else target/debug/guard, of this workspace).
    #[arg(long, env = "GUARD_BIN")]
    guard_bin: Option<PathBuf>,
    /// Modes to run, comma-separated: off, naive_cell_cap, guard.
    #[arg(long, default_value = "off,naive_cell_cap,guard", value_delimiter = ',')]
    modes: Vec<String>,
    /// Directory of scenario files.
    #[arg(long)]
    scenario_dir: Option<PathBuf>,
    /// Less progress output.
    #[arg(long, short)]
    quiet: bool,
}

fn main() {
    match real_main() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("lab: {e:#}");
            std::process::exit(2);
        }
    }
}

fn real_main() -> Result<bool> {
    let args = Args::parse();
    if !labkit::netns::is_root() {
        bail!("the lab creates network namespaces and attaches XDP programs: run it as root");
    }
    let guard_bin = labkit::guard_bin::built(args.guard_bin.clone())?;
    let modes: Vec<Mode> = args.modes.iter().map(|m| Mode::parse(m)).collect::<Result<_>>()?;
    let dir = args.scenario_dir.clone().unwrap_or_else(|| labkit::guard_bin::workspace().join("lab/scenarios"));
    // `all`, a path, a name, or several of them comma-separated (one report for all).
    let mut files = Vec::new();
    for one in args.scenario.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if one == "all" {
            files.extend(scenario_files(&dir)?);
        } else if Path::new(one).is_file() {
            files.push(PathBuf::from(one));
        } else {
            let Some(p) = find_scenario(&dir, one)? else {
                let names: Vec<String> = scenario_files(&dir)?
                    .iter()
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect();
                bail!("no scenario {one:?} in {} (have: {})", dir.display(), names.join(", "));
            };
            files.push(p);
        }
    }
    if files.is_empty() {
        bail!("no scenario files in {}", dir.display());
    }
    labkit::scenario::install_signal_cleanup()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let opts = RunOpts { guard_bin: guard_bin.clone(), out: args.out.clone(), verbose: !args.quiet };
    eprintln!("lab: guard binary {}, {} scenario(s), modes {:?}", guard_bin.display(), files.len(), args.modes);
    let t0 = Instant::now();
    let mut reports = Vec::new();
    for f in &files {
        let sc = Scenario::load(f)?;
        let plan: Plan = sc.plan()?;
        let mut runs = Vec::new();
        let mut errors: Vec<Check> = Vec::new();
        for &m in &modes {
            let t = Instant::now();
            match run_mode(&sc, &plan, m, &opts) {
                Ok(r) => {
                    let s = score(&sc, &plan, &r);
                    eprintln!(
                        "lab: {:<22} {:<15} benign {:>8}  attack dropped {:>8}  mitigated {:>7}  benign staged {:>3}  stages d/c/h {}/{}/{}  ({:.1} s)",
                        sc.name,
                        m.name(),
                        s.benign_delivery.map_or("-".into(), |x| format!("{:.2}%", 100.0 * x)),
                        s.attack_dropped.map_or("-".into(), |x| format!("{:.2}%", 100.0 * x)),
                        s.time_to_mitigate_s.map_or("-".into(), |x| format!("{x:.1} s")),
                        s.benign_staged.len(),
                        s.max_device_stage,
                        s.max_cell_stage,
                        s.max_host_stage,
                        t.elapsed().as_secs_f64()
                    );
                    runs.push(r);
                }
                Err(e) => {
                    eprintln!("lab: {} / {} failed: {e:#}", sc.name, m.name());
                    errors.push(Check {
                        scenario: sc.name.clone(),
                        criterion: format!("{} run completes", m.name()),
                        pass: false,
                        detail: format!("{e:#}"),
                    });
                }
            }
        }
        let scores: Vec<_> = runs.iter().map(|r| score(&sc, &plan, r)).collect();
        let g = scores.iter().find(|s| s.mode == Mode::Guard);
        let n = scores.iter().find(|s| s.mode == Mode::NaiveCellCap);
        let mut cs = errors;
        if let Some(g) = g {
            cs.extend(checks(&sc, g, n));
        }
        reports.push(ScenarioReport::new(sc, plan, runs, scores, cs));
    }
    let runtime = t0.elapsed().as_secs_f64();
    write_report(&args.out, &mut reports, runtime)?;
    let mut ok = true;
    println!();
    for c in reports.iter().flat_map(|r| r.checks.iter()) {
        ok &= c.pass;
        println!("{} {}: {} ({})", if c.pass { "PASS" } else { "FAIL" }, c.scenario, c.criterion, c.detail);
    }
    println!(
        "\nlab: {} in {:.0} s; report in {}",
        if ok { "all criteria PASS" } else { "some criteria FAIL" },
        runtime,
        args.out.join("report.md").display()
    );
    Ok(ok)
}
