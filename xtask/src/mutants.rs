//! `cargo xtask mutants [--scope common|engine|engine-n3|engine-n2|config|kernel|all] [--file F]..`: cargo-mutants over the pure
//! code, to show the tests bite (issue 24). Not part of `cargo xtask test` (too slow for CI).
//!
//! - `common`: guard-common's parsers, per-packet policy and rate limiter, the code the kernel
//!   runs, with its host tests (unit and property tests; fast, no root).
//! - `engine`: guard-userspace's escalation ladders (N3, N2) and the cell/host capacity decision
//!   with the engines' unit tests (`--lib engine`: the process tests need root and minutes each).
//! - `config`: the configuration's validation with its unit tests and the fleet codecs' (`--lib config
//!   fleet::`: they hold `[fleet]`'s value-size bounds to the values).
//! - `kernel`: guard-common's N3 policy and GCRA compiled into the XDP object, judged by the
//!   BPF_PROG_TEST_RUN verdict suite as root, one shard at a time.
//!
//! Each scope says how it runs (`Runner`); `command` is the cargo-mutants line, tested below.
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

/// The ladders of both sides and the cell/host capacity decision, with each engine's unit tests
/// (the paths the restructure of issue 26 gave them; a stale path would mutate nothing, so `run`
/// checks each). N3's and N2's are two runs, each with its own engine's tests only (seconds
/// each, and most of a mutant's time).
const ENGINE_N3: &[&str] = &["guard-userspace/src/n3/engine/ladder.rs", "guard-userspace/src/n3/engine/capacity.rs"];
const ENGINE_N2: &[&str] = &["guard-userspace/src/n2/engine/ladder.rs"];

/// The guard-common code that runs in the kernel on every G-PDU (the N3 policy's decisions, the
/// GCRA), judged by the BPF_PROG_TEST_RUN verdict tests: each mutant is compiled into the XDP
/// object (guard-userspace's build script rebuilds it from guard-common) and the verdict tests
/// run crafted frames through it as root. A few minutes per mutant, so it runs a shard
/// (`--shard K/N`, round-robin over both files; default 1/40) rather than all of them.
const KERNEL: &[&str] = &["guard-common/src/policy/n3.rs", "guard-common/src/rate.rs"];
const KERNEL_TESTS: &[&str] = &["--test-package=guard-tests", "--cargo-test-arg=--test=verdict"];

/// The configuration's tests, and the fleet codecs' (milliseconds; `[fleet]`'s value-size bounds
/// are judged against the values they bound there).
const CONFIG_TESTS: &[&str] = &["--lib", "config", "fleet::"];

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

/// A copy of the workspace's files (tracked and untracked, not ignored) at `dir`, for a run over
/// guard-userspace: without its dev-dependency on guard-tests. The library's unit tests do not
/// use it, but cargo builds a package's dev-dependencies for its unit tests too, and guard-tests
/// depends on guard-userspace: every mutant would rebuild the crate, then guard-tests, then the
/// crate's tests (measured: 98 s a mutant against ~5 s). The copy keeps one path, so its
/// incremental build state carries over from run to run.
fn prepare_tree(dir: &std::path::Path, keep_lab_kit: bool) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let out = Command::new("git")
        .current_dir(root())
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .context("git ls-files")?;
    if !out.status.success() {
        bail!("git ls-files failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    for f in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = std::path::Path::new(std::str::from_utf8(f).context("a file name that is not UTF-8")?);
        let from = root().join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    if keep_lab_kit {
        return Ok(());
    }
    let manifest = dir.join("guard-userspace/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("guard-tests =")).collect();
    if kept.len() + 1 != text.lines().count() {
        bail!("{}: expected one `guard-tests =` dev-dependency line to drop", manifest.display());
    }
    std::fs::write(&manifest, kept.join("\n") + "\n").with_context(|| format!("writing {}", manifest.display()))
}

/// Where and how a scope's mutants are built and judged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Runner {
    /// cargo-mutants in the workspace, one job at a time: guard-common with its host tests.
    Workspace,
    /// In place in a copy of the tree without guard-userspace's dev-dependency on the lab kit
    /// (`prepare_tree`), its build in a target directory of its own that persists between runs.
    Userspace,
    /// The kernel code judged by the BPF_PROG_TEST_RUN verdict suite (guard-tests, as root): in
    /// place in a copy with the lab kit and a build of its own (the XDP object's build-std is
    /// minutes from scratch), the baseline run here first, a long timeout, a shard.
    Verdicts,
}

impl Runner {
    /// The tree copy and its build directory under `target/mutants/`, for the in-place runners.
    fn tree(self) -> Option<(&'static str, &'static str)> {
        match self {
            Runner::Workspace => None,
            Runner::Userspace => Some(("tree", "build")),
            Runner::Verdicts => Some(("tree-kernel", "build-kernel")),
        }
    }

    /// Seconds before a mutant's tests count as hung (and so as detected). The verdict suite runs
    /// ~1-2 min on a busy machine: a mutant must not count as detected because the machine was slow.
    fn timeout_s(self) -> u32 {
        if self == Runner::Verdicts {
            900
        } else {
            120
        }
    }
}

/// One mutation run: what is mutated and which tests judge it.
struct Scope<'a> {
    name: &'a str,
    package: &'a str,
    files: &'a [String],
    test_args: &'a [&'a str],
    runner: Runner,
    shard: Option<&'a str>,
}

fn run_scope(name: &str, package: &str, files: &[String], test_args: &[&str], iterate: bool) -> Result<()> {
    let runner = if package == "guard-userspace" { Runner::Userspace } else { Runner::Workspace };
    run_one(&Scope { name, package, files, test_args, runner, shard: None }, iterate)
}

/// The `cargo mutants` command line of scope `s`, run in `dir` (the workspace or the scope's
/// tree copy), its report in `out`. Pure: what each runner passes is tested below.
fn command(s: &Scope, dir: &std::path::Path, out: &std::path::Path, iterate: bool) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(dir).arg("mutants");
    match s.runner {
        Runner::Workspace => {}
        Runner::Userspace => {
            c.arg("--in-place");
        }
        // cargo-mutants 27.1 runs the baseline on the mutated package's tests, not on
        // `--test-package`'s: the baseline is run by `run` (the verdict tests must pass
        // unmutated, or every mutant would count as caught) and skipped there.
        Runner::Verdicts => {
            c.args(["--in-place", "--baseline", "skip"]);
        }
    }
    c.args(["--package", s.package, "--output"]).arg(out);
    // One job (`--in-place` runs one anyway): the tests of a mutant must not share two cores
    // with another mutant's build, or timeouts would measure the machine.
    if s.runner == Runner::Workspace {
        c.args(["--jobs", "1"]);
    }
    c.args(["--timeout", &s.runner.timeout_s().to_string(), "--no-shuffle", "--colors", "never"]);
    c.args(["--profile", PROFILE]);
    if iterate {
        c.arg("--iterate");
    }
    if let Some(k) = s.shard {
        c.args(["--shard", k, "--sharding", "round-robin"]);
    }
    for f in s.files {
        c.args(["--file", f]);
    }
    // Options (`--lib`) for the build too: cargo-mutants builds with `cargo test --no-run`, which
    // would otherwise build every integration test per mutant. Test-name filters are for the run.
    for a in s.test_args {
        if let Some(p) = a.strip_prefix("--test-package=") {
            // Two words: cargo-mutants 27.1 ignores the `=` form of this one.
            c.args(["--test-package", p]);
        } else if a.starts_with("--cargo-test-arg") {
            c.arg(a);
        } else if a.starts_with("--") {
            c.arg(format!("--cargo-arg={a}"));
        }
    }
    let filters: Vec<&&str> = s.test_args.iter().filter(|a| !a.starts_with("--")).collect();
    if s.runner == Runner::Verdicts {
        // The verdict tests are `#[ignore = "needs root"]`: run them (`cargo xtask` runs as root).
        c.args(["--", "--", "--include-ignored"]);
    } else if !filters.is_empty() {
        // After the second `--`, to the test binary: cargo test takes one TESTNAME, libtest any
        // number of filters.
        c.args(["--", "--"]).args(filters);
    }
    c
}

fn run_one(s: &Scope, iterate: bool) -> Result<()> {
    let name = s.name;
    let out = root().join("target/mutants").join(name);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!("[mutants] {name}: {} ({} files)", s.package, s.files.len());
    let (mut dir, mut target_dir) = (root(), None);
    if let Some((tree, build)) = s.runner.tree() {
        let (tree, build) = (root().join("target/mutants").join(tree), root().join("target/mutants").join(build));
        prepare_tree(&tree, s.runner == Runner::Verdicts)?;
        if s.runner == Runner::Verdicts {
            eprintln!("[mutants] {name}: baseline: the verdict tests on the unmutated tree");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&tree)
                .env("CARGO_TARGET_DIR", &build)
                .args([
                    "test",
                    "--profile",
                    PROFILE,
                    "-p",
                    "guard-tests",
                    "--test",
                    "verdict",
                    "--",
                    "--include-ignored",
                ])
                .status()
                .context("running the verdict tests")?;
            if !status.success() {
                bail!("the verdict tests fail on the unmutated tree ({status}): no mutant can be judged");
            }
        }
        (dir, target_dir) = (tree, Some(build));
    }
    let mut c = command(s, &dir, &out, iterate);
    if let Some(build) = target_dir {
        c.env("CARGO_TARGET_DIR", build);
    }
    let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    eprintln!("[mutants] {name}: cargo {}", args.join(" "));
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
    // With `--iterate`, cargo-mutants skips what earlier runs caught or found unviable (one list,
    // `previously_caught.txt`): the score below is this run's; add the earlier run's counts to it.
    let earlier = count("previously_caught.txt");
    if earlier > 0 {
        eprintln!("[mutants] {name}: {earlier} mutants caught or unviable in earlier runs, not tested again");
    }
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

fn engine_n3(files: Vec<String>, iterate: bool) -> Result<()> {
    run_scope("engine-n3", "guard-userspace", &files, &["--lib", "n3::engine"], iterate)
}

fn engine_n2(files: Vec<String>, iterate: bool) -> Result<()> {
    run_scope("engine-n2", "guard-userspace", &files, &["--lib", "n2::engine"], iterate)
}

fn engine(iterate: bool) -> Result<()> {
    let own = |def: &[&str]| def.iter().map(|s| (*s).to_owned()).collect();
    engine_n3(own(ENGINE_N3), iterate)?;
    engine_n2(own(ENGINE_N2), iterate)
}

pub fn run(scope: &str, files: &[String], iterate: bool, shard: Option<&str>) -> Result<()> {
    let pick = |def: &[&str]| -> Vec<String> {
        if files.is_empty() {
            def.iter().map(|s| (*s).to_owned()).collect()
        } else {
            files.to_vec()
        }
    };
    for f in COMMON
        .iter()
        .chain(ENGINE_N3)
        .chain(ENGINE_N2)
        .chain(CONFIG)
        .chain(KERNEL)
        .map(|s| (*s).to_owned())
        .chain(files.iter().cloned())
    {
        if !root().join(&f).is_file() {
            bail!("{f}: no such file (a mutation run over a missing file would mutate nothing)");
        }
    }
    match scope {
        "common" => run_scope("common", "guard-common", &pick(COMMON), &[], iterate),
        // The test filter keeps each mutant to the tests that judge its code: the engines' tests
        // (seconds) for the ladders, the configuration's (milliseconds) for validation, with the
        // fleet codecs' (`fleet::`: they hold `[fleet]`'s value-size bounds to the values). The
        // score is then a lower bound: other tests of the library could only catch more.
        "engine" if files.is_empty() => engine(iterate),
        // `--file` narrows a scope to those files (a survivor's file after a fix, say).
        "engine-n3" => engine_n3(pick(ENGINE_N3), iterate),
        "engine-n2" => engine_n2(pick(ENGINE_N2), iterate),
        "engine" => run_scope("engine", "guard-userspace", files, &["--lib", "engine"], iterate),
        "config" => run_scope("config", "guard-userspace", &pick(CONFIG), CONFIG_TESTS, iterate),
        "kernel" => {
            if !crate::prereqs::is_root() {
                bail!("the kernel scope runs the BPF_PROG_TEST_RUN verdict tests: run it as root");
            }
            let files = pick(KERNEL);
            let scope = Scope {
                name: "kernel",
                package: "guard-common",
                files: &files,
                test_args: KERNEL_TESTS,
                runner: Runner::Verdicts,
                shard: Some(shard.unwrap_or("1/40")),
            };
            run_one(&scope, iterate)
        }
        "all" => {
            run_scope("common", "guard-common", &pick(COMMON), &[], iterate)?;
            engine(iterate)?;
            run_scope("config", "guard-userspace", &pick(CONFIG), CONFIG_TESTS, iterate)
        }
        other => bail!("unknown scope {other:?} (common, engine, engine-n3, engine-n2, config, kernel, all)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &Scope, iterate: bool) -> String {
        let c = command(s, std::path::Path::new("/w"), std::path::Path::new("/o"), iterate);
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_kernel_scope_runs_the_verdict_suite_as_root_with_its_own_baseline() {
        let files = vec!["guard-common/src/rate.rs".to_owned()];
        let s = Scope {
            name: "kernel",
            package: "guard-common",
            files: &files,
            test_args: KERNEL_TESTS,
            runner: Runner::Verdicts,
            shard: Some("3/40"),
        };
        assert_eq!(
            args(&s, false),
            "mutants --in-place --baseline skip --package guard-common --output /o --timeout 900 --no-shuffle \
             --colors never --profile mutation --shard 3/40 --sharding round-robin --file guard-common/src/rate.rs \
             --test-package guard-tests --cargo-test-arg=--test=verdict -- -- --include-ignored"
        );
    }

    #[test]
    fn userspace_scopes_build_the_library_alone_and_filter_its_tests() {
        let files = vec!["guard-userspace/src/config/mod.rs".to_owned()];
        let s = Scope {
            name: "config",
            package: "guard-userspace",
            files: &files,
            test_args: CONFIG_TESTS,
            runner: Runner::Userspace,
            shard: None,
        };
        assert_eq!(
            args(&s, true),
            "mutants --in-place --package guard-userspace --output /o --timeout 120 --no-shuffle --colors never \
             --profile mutation --iterate --file guard-userspace/src/config/mod.rs --cargo-arg=--lib -- -- config fleet::"
        );
        assert_eq!(Runner::Userspace.tree(), Some(("tree", "build")));
    }

    #[test]
    fn guard_common_runs_in_the_workspace_one_job_at_a_time() {
        let files = vec!["guard-common/src/rate.rs".to_owned()];
        let s = Scope {
            name: "common",
            package: "guard-common",
            files: &files,
            test_args: &[],
            runner: Runner::Workspace,
            shard: None,
        };
        assert_eq!(
            args(&s, false),
            "mutants --package guard-common --output /o --jobs 1 --timeout 120 --no-shuffle --colors never \
             --profile mutation --file guard-common/src/rate.rs"
        );
        assert_eq!(Runner::Workspace.tree(), None);
    }
}
