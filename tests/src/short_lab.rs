//! The short lab tests' one setup (`tests/tests/lab_short.rs`, `lab_volume_short.rs`): a scenario
//! given as TOML text, run through the real veth lab with the real `guard` binary (and, when
//! asked, the naive cell cap on the same schedule), scored, and its `[expect]` checks printed and
//! asserted. Panics with context, as a test would: it has no caller that could go on without it.
//! The per-run files live in a temporary directory removed when the [`ShortRun`] is dropped.

use crate::oracle::TempDir;
use crate::population::Plan;
use crate::scenario::{run_mode, Mode, RunOpts, RunResult, Scenario};
use crate::score::{checks, score, Check, Scores};

/// The populations of the short infected flood (`lab_short.rs` scores it live, `replay_lab.rs`
/// replays its capture): 200 devices of two gNBs; at 5 s, 5% of the 160 meters (8) flood at
/// 400 pps each. Appended to each test's own header and `[expect]`.
pub const SHORT_FLOOD_POPULATIONS: &str = r#"
[[population]]
name = "meters"
count = 160
teid_base = 0x00100000
ue_base = "10.45.0.0"
profile = { kind = "periodic", period_s = [0.5, 1.5], jitter = 0.1, burst = [1, 3] }
change = { at_s = 5, fraction = 0.05, class = "attack", profile = { kind = "flood", pps = 400 } }

[[population]]
name = "people"
count = 40
teid_base = 0x00200000
ue_base = "10.46.0.0"
dst = "203.0.113.80"
profile = { kind = "session", rate_pps = [4, 12], on_s = [1, 2], off_s = [1, 3] }
"#;

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
    /// `n` checks (the sender kept its schedule, and the scenario's `[expect]` criteria), every one passed.
    pub fn assert_checks(&self, n: usize) {
        assert_eq!(self.checks.len(), n, "{:#?}", self.checks);
        let failed: Vec<_> = self.checks.iter().filter(|c| !c.pass).collect();
        assert!(failed.is_empty(), "failed checks: {failed:#?}");
    }
}
