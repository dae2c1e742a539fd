//! The build, test, lab, bench and lint steps.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

fn root() -> PathBuf {
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
    c.args(["test", "--workspace", "--no-fail-fast"]).args(args);
    run(c, "running all tests (host, BPF_PROG_TEST_RUN verdicts, veth end-to-end)")
}

pub fn lab(scenario: &str, out: &str) -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "lab", "--", "--scenario", scenario, "--out", out]);
    run(c, &format!("running the lab: scenario {scenario}, report in {out}/"))
}

pub fn bench() -> Result<()> {
    let mut c = cargo();
    c.args(["run", "--release", "-p", "guard-tests", "--bin", "bench"]);
    run(c, "benchmarking (guard vs minimal XDP, guard vs nftables)")
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
