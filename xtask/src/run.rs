//! The build, test, lab, bench and lint steps.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    eprintln!("[xtask] {what}");
    let status = cmd.status().with_context(|| format!("start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

pub fn build() -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "guard-userspace"]);
    run(c, "building the XDP object (Debian rustc 1.96 + bpf-linker) and the guard binary")?;
    eprintln!("[xtask] built {}", root().join("target/release/guard").display());
    Ok(())
}

pub fn test(args: &[String]) -> Result<()> {
    if !crate::prereqs::is_root() {
        bail!("the verdict and end-to-end tests load XDP programs and create network namespaces: run as root");
    }
    lint()?;
    let mut c = cargo();
    // Test binaries use unique namespace, link and pin names, so parallel runs do not collide.
    // Tests that need root or the lab's tools are `#[ignore = "needs root ..."]`, so a plain
    // `cargo test` as an unprivileged user reports them as ignored, never as passed; here they
    // are opted in (`--include-ignored`). None skips: a test that lacks root or a tool fails.
    c.args(["test", "--workspace", "--no-fail-fast"]);
    let (before, after) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    c.args(before).arg("--").arg("--include-ignored").args(after);
    run(c, "running all tests (host, BPF_PROG_TEST_RUN verdicts, veth end-to-end)")?;
    // The fuzz smoke and the package check are part of the test command (issues 7, 20); skip
    // them when a filter was given.
    if args.is_empty() {
        let deb = crate::package::build()?;
        crate::package::check(&deb)?;
        fuzz(60, &[])?;
    }
    Ok(())
}

/// Run each cargo-fuzz target of `guard-common/fuzz` for `secs` seconds.
pub fn fuzz(secs: u64, only: &[String]) -> Result<()> {
    let dir = root().join("guard-common");
    let targets: Vec<String> = if only.is_empty() {
        let out = cargo().current_dir(&dir).args(["fuzz", "list"]).output().context("run `cargo fuzz list`")?;
        if !out.status.success() {
            bail!("cargo fuzz list failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else {
        only.to_vec()
    };
    if targets.is_empty() {
        bail!("no fuzz targets found in {}", dir.join("fuzz").display());
    }
    for t in &targets {
        let mut c = cargo();
        // cargo-fuzz passes -Z flags (sanitizer coverage): RUSTC_BOOTSTRAP lets the stable
        // toolchain accept them. `-s none`: no ASan runtime needed; the parsers are safe Rust,
        // so a panic (failed assertion, overflow, out-of-bounds) is what the fuzzer finds.
        c.current_dir(&dir).env("RUSTC_BOOTSTRAP", "1").args(["fuzz", "run", t, "-s", "none"]);
        // Seed from the hostile-input corpus of the target's protocol (`n3_parse` →
        // tests/corpus/n3), after the fuzzer's own writable corpus directory so the seeds are
        // read but never written to.
        let seeds = root().join("tests/corpus").join(t.split('_').next().unwrap_or(t));
        if seeds.is_dir() {
            let own = dir.join("fuzz/corpus").join(t);
            std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
            c.arg(own).arg(seeds);
        }
        c.args(["--", &format!("-max_total_time={secs}"), "-print_final_stats=1"]);
        run(c, &format!("fuzzing {t} for {secs} s (a crash input is saved under guard-common/fuzz/artifacts/{t}/)"))?;
    }
    Ok(())
}

pub fn lab(scenario: &str, out: &str, modes: &str) -> Result<()> {
    // The lab drives the real `guard` binary as a subprocess, so it must be built (and current)
    // before the lab starts. One cargo invocation builds the guard and every lab binary the scenario runs: cargo then
    // schedules both packages' crates over the cores together (the guard's own long serial steps,
    // its XDP object and its link, beside the lab's plotting crates), which two invocations in a
    // row cannot. The `cargo run`s below then find them built.
    let mut c = cargo();
    c.args(["build", "--release", "-p", "guard-userspace", "-p", "guard-tests", "--bin", "guard"]);
    for bin in lab_bins(scenario) {
        c.args(["--bin", bin]);
    }
    run(c, "building the guard and the lab binaries (release)")?;
    let guard = root().join("target/release/guard");
    // N3 scenarios run in `lab`, the N2 (SCTP/NGAP) ones (`n2_*`) in `lab_n2`, the real-peer ones
    // (`real-n3`, `real-n2`) in `lab_real`; `all` runs all three and fails if any fails, after
    // each has written its report.
    if scenario == "fleet" {
        return fleet_lab(out, &guard);
    }
    if scenario == "fleet-n3" {
        return fleet_n3_lab(out, &guard);
    }
    let is_real = scenario.starts_with("real-");
    let is_n2 = scenario.starts_with("n2_") || scenario.contains("/n2_");
    if is_real {
        return real_lab(scenario, out, &guard, false);
    }
    if scenario == "default" {
        // One of each kind of threat the guard answers, and the real peers in their bounded form.
        let n3 = n3_lab(DEFAULT_N3, out, modes, &guard);
        let n2 = n2_lab("n2_storm", out, &guard);
        let real = real_lab("all", out, &guard, true);
        return n3.and(n2).and(real);
    }
    let n3 = if scenario == "all" || !is_n2 { n3_lab(scenario, out, modes, &guard) } else { Ok(()) };
    let n2 = if scenario == "all" || is_n2 { n2_lab(scenario, out, &guard) } else { Ok(()) };
    let real = if scenario == "all" { real_lab(scenario, out, &guard, false) } else { Ok(()) };
    let fleet = if scenario == "all" { fleet_lab(out, &guard) } else { Ok(()) };
    let fleet_n3 = if scenario == "all" { fleet_n3_lab(out, &guard) } else { Ok(()) };
    n3.and(n2).and(real).and(fleet).and(fleet_n3)
}

/// The lab binaries `lab --scenario <scenario>` runs (a scenario list, `default` or `all`).
fn lab_bins(scenario: &str) -> Vec<&'static str> {
    match scenario {
        "fleet" | "fleet-n3" => vec!["lab_fleet"],
        s if s.starts_with("real-") => vec!["lab_real"],
        "default" => vec!["lab", "lab_n2", "lab_real"],
        "all" => vec!["lab", "lab_n2", "lab_real", "lab_fleet"],
        s if s.starts_with("n2_") || s.contains("/n2_") => vec!["lab_n2"],
        _ => vec!["lab"],
    }
}

/// The fleet lab (issue 23): `lab_fleet`, report in `<out>/fleet/`.
fn fleet_lab(out: &str, guard: &std::path::Path) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab_fleet", "--", "--out", out])
        .arg("--guard-bin")
        .arg(guard);
    run(
        c,
        &format!(
            "running the fleet lab (3-member etcd cluster, two AMF-side guards, a split storm): report in {out}/fleet/report.md"
        ),
    )
}

/// The fleet lab's N3 split (issue 23): `lab_fleet --n3-split`, report in `<out>/fleet-n3/`.
fn fleet_n3_lab(out: &str, guard: &std::path::Path) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab_fleet", "--", "--n3-split", "--out", out])
        .arg("--guard-bin")
        .arg(guard);
    run(
        c,
        &format!(
            "running the fleet lab's N3 split (3-member etcd cluster, two UPF-side guards, one gNB overloaded over both, with and without [fleet]): report in {out}/fleet-n3/report.md"
        ),
    )
}

/// The N3 scenarios of `cargo xtask lab`'s default set.
const DEFAULT_N3: &str = "2_infected_flood,4_deliberate_triggering,8_forgery";

fn n3_lab(scenario: &str, out: &str, modes: &str, guard: &std::path::Path) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab", "--", "--scenario", scenario, "--out", out])
        .args(["--modes", modes])
        .env("GUARD_BIN", guard);
    run(c, &format!("running the N3 (GTP-U) lab: scenario {scenario}, report in {out}/report.md"))
}

fn n2_lab(scenario: &str, out: &str, guard: &std::path::Path) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab_n2", "--", "--scenario", scenario, "--out", out])
        .arg("--guard-bin")
        .arg(guard);
    run(c, &format!("running the N2 (SCTP/NGAP) lab: scenario {scenario}, report in {out}/n2/report.md"))
}

fn real_lab(scenario: &str, out: &str, guard: &std::path::Path, quick: bool) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab_real", "--", "--scenario", scenario, "--out", out])
        .env("GUARD_BIN", guard);
    if quick {
        c.arg("--quick");
    }
    run(
        c,
        &format!(
            "running the real-peer lab (osmo-ggsn/sgsnemu, libusrsctp + pycrate): scenario {scenario}, reports in {out}/real-*/"
        ),
    )
}

pub fn bench(args: &[String]) -> Result<()> {
    if !crate::prereqs::is_root() {
        bail!("the benchmark loads XDP programs and creates network namespaces: run as root");
    }
    // The controller part runs the real `guard` binary, which must sit next to `bench`.
    let mut c = cargo();
    c.args(["build", "--release", "-p", "guard-userspace", "-p", "guard-tests", "--bin", "guard", "--bin", "bench"]);
    run(c, "building the guard and the benchmark (release)")?;
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "bench"]);
    // `cargo xtask bench --quick` (or --skip-wire, --skip-scale, --no-write) for development.
    let args = crate::ab::resolve(args)?;
    c.arg("--").args(&args);
    run(c, "benchmarking: per-packet cost, veth flood vs nftables, scale and controller (writes BENCHMARKS.md)")
}

pub fn lint() -> Result<()> {
    let mut c = cargo();
    c.args(["fmt", "--all", "--check"]);
    run(c, "cargo fmt --check (host crates)")?;
    // guard-ebpf is its own workspace (BPF target): format-check it separately.
    let mut c = cargo();
    c.current_dir(root().join("guard-ebpf")).args(["fmt", "--check"]);
    run(c, "cargo fmt --check (guard-ebpf)")?;
    let mut c = cargo();
    c.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(c, "cargo clippy --all-targets -D warnings")
}
