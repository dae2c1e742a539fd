//! `cargo xtask mutants [--scope common|engine|config|all] [--file F]..`: cargo-mutants over the pure
//! code, to show the tests bite (issue 24). Not part of `cargo xtask test` (too slow for CI).
//!
//! - `common`: guard-common's parsers, per-packet policy and rate limiter, the code the kernel
//!   runs, with its host tests (unit and property tests; fast, no root).
//! - `engine`: guard-userspace's escalation ladders (N3, N2) and the cell/host capacity decision
//!   with the engines' unit tests (`--lib engine`: the process tests need root and minutes each).
//! - `config`: the configuration's validation with its unit tests (`--lib config`).
//!
//! The summary (caught / missed / timeout / unviable) and every surviving mutant are printed;
//! cargo-mutants' own report stays in `target/mutants/<scope>/mutants.out/`. docs/testing.md
//! records the latest score and a one-line reason for each survivor.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run::root;

const COMMON: &[&str] = &[
    "guard-common/src/parse/gtpu.rs",
    "guard-common/src/policy/mod.rs",
    "guard-common/src/policy/n3.rs",
    "guard-common/src/rate.rs",
    "guard-common/src/policy/n2.rs",
    "guard-common/src/parse/sctp.rs",
];

/// The ladders of both sides and the cell/host capacity decision, with the engines' unit tests
/// (the paths the restructure of issue 26 gave them; a stale path would mutate nothing, so `run`
/// checks each).
const ENGINE: &[&str] = &[
    "guard-userspace/src/n3/engine/ladder.rs",
    "guard-userspace/src/n3/engine/capacity.rs",
    "guard-userspace/src/n2/engine/ladder.rs",
];

/// The configuration's validation, file by section, with the configuration's unit tests (the
/// table of rules in `config/tests.rs`).
const CONFIG: &[&str] = &[
    "guard-userspace/src/config/mod.rs",
    "guard-userspace/src/config/guard.rs",
    "guard-userspace/src/config/dataplane.rs",
    "guard-userspace/src/config/ladder.rs",
    "guard-userspace/src/config/classify.rs",
    "guard-userspace/src/config/groups.rs",
    "guard-userspace/src/config/n2.rs",
    "guard-userspace/src/config/fleet.rs",
];

/// The cargo profile the mutants are built with: the test profile without debug information, so
/// that each mutant's rebuild of guard-userspace links in seconds (a mutant is one incremental
/// rebuild of the crate and one run of the filtered tests).
const PROFILE: &str = "mutation";

fn run_scope(name: &str, package: &str, files: &[String], test_args: &[&str]) -> Result<()> {
    let out = root().join("target/mutants").join(name);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!("[mutants] {name}: {} ({} files)", package, files.len());
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).args(["mutants", "--package", package, "--output"]).arg(&out);
    c.args(["--timeout", "120", "--jobs", "1", "--no-shuffle", "--colors", "never"]);
    c.args(["--profile", PROFILE]);
    for f in files {
        c.args(["--file", f]);
    }
    if !test_args.is_empty() {
        c.arg("--").args(test_args);
    }
    // cargo-mutants exits 2 when mutants survive, 3 on timeouts: the score is the result here.
    let status = c.status().context("running cargo mutants (cargo install cargo-mutants)")?;
    if !matches!(status.code(), Some(0 | 2 | 3)) {
        bail!("cargo mutants failed ({status})");
    }
    let dir = out.join("mutants.out");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let count = |f: &str| read(f).lines().filter(|l| !l.trim().is_empty()).count();
    let (caught, missed, timeout, unviable) =
        (count("caught.txt"), count("missed.txt"), count("timeout.txt"), count("unviable.txt"));
    // A mutant whose tests hang until the timeout (120 s against a suite of seconds) made the
    // suite fail: it is detected, as PIT and Stryker count it, and reported apart.
    let viable = caught + missed + timeout;
    let detected = caught + timeout;
    let score = if viable == 0 { 0.0 } else { 100.0 * detected as f64 / viable as f64 };
    eprintln!(
        "[mutants] {name}: {caught} caught, {missed} missed, {timeout} timeout, {unviable} unviable: {score:.1}% of the viable detected (caught or timed out)"
    );
    for l in read("timeout.txt").lines() {
        eprintln!("[mutants] timed out: {l}");
    }
    for l in read("missed.txt").lines() {
        eprintln!("[mutants] survived: {l}");
    }
    Ok(())
}

pub fn run(scope: &str, files: &[String]) -> Result<()> {
    let pick = |def: &[&str]| -> Vec<String> {
        if files.is_empty() {
            def.iter().map(|s| (*s).to_owned()).collect()
        } else {
            files.to_vec()
        }
    };
    for f in COMMON.iter().chain(ENGINE).chain(CONFIG).map(|s| (*s).to_owned()).chain(files.iter().cloned()) {
        if !root().join(&f).is_file() {
            bail!("{f}: no such file (a mutation run over a missing file would mutate nothing)");
        }
    }
    match scope {
        "common" => run_scope("common", "guard-common", &pick(COMMON), &[]),
        // The test filter keeps each mutant to the tests that judge its code: the engines' tests
        // (seconds) for the ladders, the configuration's (milliseconds) for validation. The
        // score is then a lower bound: other tests of the library could only catch more.
        "engine" => run_scope("engine", "guard-userspace", &pick(ENGINE), &["--lib", "engine"]),
        "config" => run_scope("config", "guard-userspace", &pick(CONFIG), &["--lib", "config"]),
        "all" => {
            run_scope("common", "guard-common", &pick(COMMON), &[])?;
            run_scope("engine", "guard-userspace", &pick(ENGINE), &["--lib", "engine"])?;
            run_scope("config", "guard-userspace", &pick(CONFIG), &["--lib", "config"])
        }
        other => bail!("unknown scope {other:?} (common, engine, config, all)"),
    }
}
