//! `lab_real`: the lab scenarios against real peers nobody on this project wrote.
//!
//! - `real-n3`: osmo-ggsn (core namespace, behind the guard) and sgsnemu instances (RAN
//!   namespace) create PDP contexts over GTP-C and ping through GTP-U; benign loss is read from
//!   sgsnemu's own ping statistics.
//! - `real-n2`: libusrsctp endpoints (gNB side and AMF side, one stack per namespace over raw
//!   IPv4) carry NGAP encoded by pycrate through `guard_n2`.
//!
//! ```text
//! lab_real --scenario all --out lab-out          # both scenarios
//! lab_real --scenario real-n3 --quick            # the bounded version `cargo xtask test` runs
//! ```
//!
//! Prints one PASS/FAIL line per check, writes `<out>/<scenario>/report.md` and `report.json`,
//! exits 0 when every check passes, 1 when one fails, 2 when a scenario cannot run. Needs root.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use labkit::realpeers::{RealCheck, RealOpts};

#[derive(Parser, Debug)]
#[command(
    about = "The real-peer lab: osmo-ggsn/sgsnemu on N3, libusrsctp + pycrate NGAP on N2, through the real guard"
)]
struct Args {
    /// `all`, `real-n3` or `real-n2`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Output directory (`<out>/real-n3/`, `<out>/real-n2/`).
    #[arg(long, default_value = "lab-out")]
    out: PathBuf,
    /// The guard binary (default: target/release/guard, else target/debug/guard, of this workspace).
    #[arg(long, env = "GUARD_BIN")]
    guard_bin: Option<PathBuf>,
    /// The bounded version (fewer peers, shorter phases; under 2 minutes per scenario).
    #[arg(long)]
    quick: bool,
    /// Less progress output.
    #[arg(long, short)]
    quiet: bool,
}

type Runner = fn(&RealOpts) -> anyhow::Result<Vec<RealCheck>>;

fn main() -> ExitCode {
    let args = Args::parse();
    if !labkit::netns::is_root() {
        eprintln!("lab_real: needs root (network namespaces, XDP, raw sockets)");
        return ExitCode::from(2);
    }
    // Ctrl-C / SIGTERM: the guards of live runs stopped, their pins removed, the namespaces
    // deleted; the peers (osmo-ggsn, sgsnemu, usrsctp endpoints, dumpcap) follow by their
    // parent-death signal.
    if let Err(e) = labkit::scenario::install_signal_cleanup() {
        eprintln!("lab_real: {e:#}");
        return ExitCode::from(2);
    }
    let guard_bin = match labkit::guard_bin::built(args.guard_bin.clone()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("lab_real: {e:#}");
            return ExitCode::from(2);
        }
    };
    let all: [(&str, Runner); 2] = [("real-n3", labkit::real_n3::run), ("real-n2", labkit::real_n2::run)];
    let chosen: Vec<(&str, Runner)> =
        all.into_iter().filter(|(n, _)| args.scenario == "all" || args.scenario == *n).collect();
    if chosen.is_empty() {
        eprintln!("lab_real: unknown scenario {:?} (all, real-n3, real-n2)", args.scenario);
        return ExitCode::from(2);
    }
    let opts = RealOpts { guard_bin, out: args.out.clone(), quick: args.quick, verbose: !args.quiet };
    let mut failed = false;
    let mut broken = false;
    for (name, run) in chosen {
        eprintln!("lab_real: scenario {name}{}", if args.quick { " (quick)" } else { "" });
        match run(&opts) {
            Ok(checks) => {
                for c in &checks {
                    let word = if !c.pass {
                        "FAIL"
                    } else if c.detail.starts_with("OPEN:") {
                        "OPEN"
                    } else {
                        "PASS"
                    };
                    println!("{word} {:<10} {:<58} {}", c.scenario, c.criterion, c.detail);
                    failed |= !c.pass;
                }
                if checks.is_empty() {
                    eprintln!("lab_real: {name} reported no checks");
                    broken = true;
                }
            }
            Err(e) => {
                eprintln!("lab_real: {name} could not run: {e:#}");
                broken = true;
            }
        }
    }
    if broken {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
