//! `lab_fleet`: the fleet lab (issue 23, `cargo xtask lab --scenario fleet`): a three-member etcd
//! cluster and two AMF-side guards; a registration storm split evenly over them, missed without
//! fleet mode and answered with it; an operator pin across hosts; etcd members and a guard killed.
//! See `labkit::fleetlab` for the steps. Writes `<out>/fleet/report.{md,json}`; exits 0 when every
//! check passes, 1 when one fails, 2 when the lab cannot run.
//!
//! With `--n3-split` (`cargo xtask lab --scenario fleet-n3`) it runs the N3 split instead
//! (`labkit::fleetlab::n3split`: a G-PDU overload of one gNB split over two UPF-side guards, with
//! and without `[fleet]`) and writes `<out>/fleet-n3/report.{md,json}`.
//!
//! ```text
//! lab_fleet --out lab-out [--guard-bin target/release/guard] [--scenario lab/fleet/split_storm.toml] [--n3-split]
//! ```
//!
//! Needs root (namespaces, XDP, bpffs) and Debian's etcd-server and etcd-client. Everything it
//! creates is removed on exit, on a failed check, on a panic and on Ctrl-C.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use labkit::fleetlab::{run, FleetOpts, FleetReport, Load};

#[derive(Parser, Debug)]
#[command(
    about = "The fleet lab: a storm split over two AMF-side guards, with and without fleet mode, and etcd faults"
)]
struct Args {
    /// Output directory: `<out>/fleet/report.{md,json}` and the guards' files.
    #[arg(long, default_value = "lab-out")]
    out: PathBuf,
    /// The guard binary (default: target/release/guard, else target/debug/guard, of this workspace).
    #[arg(long)]
    guard_bin: Option<PathBuf>,
    /// The scenario (default: lab/fleet/split_storm.toml of this workspace).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Run the N3 split (a G-PDU overload of one gNB over two UPF-side guards, with and without
    /// `[fleet]`) instead: `<out>/fleet-n3/report.{md,json}`.
    #[arg(long)]
    n3_split: bool,
}

fn load_row(what: &str, l: &Load) -> String {
    format!(
        "| {what} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} |\n",
        l.window_s, l.requests_per_s, l.puts_per_s, l.received_bytes_per_s, l.sent_bytes_per_s
    )
}

/// `report.md`.
pub fn markdown(r: &FleetReport) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Fleet lab: {} ({:.0} s)\n", r.scenario, r.wall_s);
    let _ = writeln!(m, "| check | result | detail |\n|---|---|---|");
    for c in &r.checks {
        let _ =
            writeln!(m, "| {} | {} | {} |", c.name, if c.pass { "PASS" } else { "FAIL" }, c.detail.replace('|', "/"));
    }
    let _ = writeln!(m, "\n## The split storm\n\n| run | guard | responses | highest level | first response after onset | devices listed (infected here) | fleet-hot cells |\n|---|---|---|---|---|---|---|");
    for (run, answers) in [("without fleet mode", &r.without_fleet), ("with fleet mode", &r.with_fleet)] {
        for (i, a) in answers.iter().enumerate() {
            let _ = writeln!(
                m,
                "| {run} | {} | {} | {} | {} | {} ({} of {}) | {} |",
                i + 1,
                a.responses,
                a.max_level,
                a.first_s.map_or("-".to_owned(), |s| format!("{s:.1} s")),
                a.listed,
                a.listed_infected,
                a.infected_here,
                a.fleet_hot_cells
            );
        }
    }
    let _ = write!(
        m,
        "\n## etcd load, two guards (summed over the three members' /metrics)\n\n\
         | window | s | gRPC messages received/s | puts/s | bytes received/s | bytes sent/s |\n|---|---|---|---|---|---|\n{}{}",
        load_row("idle (connected, no traffic)", &r.load_idle),
        load_row("split storm (both publishing)", &r.load_storm)
    );
    let _ = writeln!(
        m,
        "\nA killed guard's keys left etcd {} after SIGKILL. Pin delays across hosts: {}.",
        r.guard_kill_expiry_s.map_or("never".to_owned(), |s| format!("{s:.2} s")),
        r.pin_delays_s.iter().map(|(u, s)| format!("{u} {:.0} ms", s * 1000.0)).collect::<Vec<_>>().join(", ")
    );
    let secs = |v: &[Option<f64>]| {
        v.iter().map(|d| d.map_or("never".to_owned(), |s| format!("{s:.2} s"))).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(
        m,
        "
Device back-off lists: each guard's list held by the other after {} (guard 1 to 2, 2 to 1);          devices moved to guard 2 listed there as guard 1's {}; a 5G-S-TMSI pin on the hooks after {},          its unpin after {}.",
        secs(&r.backoff_held_s),
        r.moved_listed_s
            .iter()
            .map(|(d, s)| format!("{d} {}", s.map_or("never".to_owned(), |s| format!("{s:.2} s"))))
            .collect::<Vec<_>>()
            .join(", "),
        secs(&r.tmsi_pin_s),
        secs(&r.tmsi_unpin_s)
    );
    m
}

fn main_inner(args: &Args) -> Result<bool> {
    if !labkit::netns::is_root() {
        bail!("lab_fleet needs root (network namespaces, XDP, bpffs)");
    }
    let guard_bin = labkit::guard_bin::built(args.guard_bin.clone())?;
    let scenario =
        args.scenario.clone().unwrap_or_else(|| labkit::guard_bin::workspace().join("lab/fleet/split_storm.toml"));
    labkit::n2lab::stop_on_signals()?;
    let opts = FleetOpts { guard_bin, out: args.out.clone(), scenario, verbose: true };
    if args.n3_split {
        let r = labkit::fleetlab::n3split::run(&opts)?;
        let dir = args.out.join("fleet-n3");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&r)?).context("report.json")?;
        let md = labkit::fleetlab::n3split::markdown(&r);
        std::fs::write(dir.join("report.md"), &md).context("report.md")?;
        print!("{md}");
        println!("report: {}", dir.join("report.md").display());
        return Ok(r.pass());
    }
    let r = run(&opts)?;
    let dir = args.out.join("fleet");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&r)?).context("report.json")?;
    let md = markdown(&r);
    std::fs::write(dir.join("report.md"), &md).context("report.md")?;
    print!("{md}");
    println!("report: {}", dir.join("report.md").display());
    Ok(r.pass())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lab_fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}
