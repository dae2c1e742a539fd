//! The short lab tests' one setup (`tests/tests/lab_short.rs`, `lab_volume_short.rs`): a scenario
//! given as TOML text, run through the real veth lab with the real `guard` binary (and, when
//! asked, the naive cell cap on the same schedule), scored, and its `[expect]` checks printed and
//! asserted. Panics with context, as a test would: it has no caller that could go on without it.
//! The per-run files live in a temporary directory removed when the [`ShortRun`] is dropped.

use crate::oracle::TempDir;
use crate::population::Plan;
use crate::scenario::{run_mode, Mode, RunOpts, RunResult, Scenario};
use crate::score::{checks, score, Check, Scores};

/// A short scenario and its plan, parsed and planned (so a test can check its premise first).
pub fn short_scenario(toml: &str) -> (Scenario, Plan) {
    let sc = Scenario::parse(toml).expect("the short scenario parses");
    let plan = sc.plan().expect("plan");
    (sc, plan)
}

/// One short run's results.
pub struct ShortRun {
    pub guard: RunResult,
    pub scores: Scores,
    /// The naive cell cap's scores, when run.
    pub naive: Option<Scores>,
    pub checks: Vec<Check>,
    _out: TempDir,
}

/// Run `sc` with the guard (and the naive cell cap if `naive`), files under a temporary
/// directory named after `tag`; print the scores and every check.
pub fn run_short(sc: &Scenario, plan: &Plan, tag: &str, naive: bool) -> ShortRun {
    let out = TempDir::new(tag).expect("temp dir");
    let opts = RunOpts { guard_bin: crate::guard_bin::for_test(), out: out.path().to_owned(), verbose: true };
    let guard = run_mode(sc, plan, Mode::Guard, &opts).expect("guard run");
    let scores = score(sc, plan, &guard);
    eprintln!("guard: {scores:#?}");
    let naive = naive.then(|| {
        let n = run_mode(sc, plan, Mode::NaiveCellCap, &opts).expect("naive cell cap run");
        let ns = score(sc, plan, &n);
        eprintln!("naive: {ns:#?}");
        ns
    });
    let checks = checks(sc, &scores, naive.as_ref());
    for c in &checks {
        eprintln!("{} {}: {}", if c.pass { "PASS" } else { "FAIL" }, c.criterion, c.detail);
    }
    ShortRun { guard, scores, naive, checks, _out: out }
}

impl ShortRun {
    /// `n` checks (the scenario's `[expect]` criteria), every one passed.
    pub fn assert_checks(&self, n: usize) {
        assert_eq!(self.checks.len(), n, "{:#?}", self.checks);
        let failed: Vec<_> = self.checks.iter().filter(|c| !c.pass).collect();
        assert!(failed.is_empty(), "failed checks: {failed:#?}");
    }
}
