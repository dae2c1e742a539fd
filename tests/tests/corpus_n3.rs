//! Hostile input for the N3 program, replayed through BPF_PROG_TEST_RUN (issue 7):
//! - the scapy-crafted corpus in `tests/corpus/n3/` (see `make_n3.py` there for each case and the
//!   spec clause behind its expected verdict), plus any crash inputs the fuzzer left in
//!   `guard-common/fuzz/artifacts/n3_parse/`: every case gets the verdict and malformed reason its
//!   manifest states, from the kernel and from the host parser alike;
//! - a property test: on any mutation of those frames (byte overwrites, truncations), the kernel
//!   program's verdict and malformed reason equal what the host-compiled parser predicts.

use guard_common::{
    abi::{GuardConfig, PROT_MALFORMED},
    parse::{n3, Malformed},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::{hex, Guard, XDP_DROP, XDP_PASS};
use proptest::prelude::*;

/// Malformed GTP-U enforced, everything else off: the verdict is then a function of the parse.
fn cfg() -> GuardConfig {
    GuardConfig { gtpu_port: 2152, enabled: PROT_MALFORMED, ..Default::default() }
}

type Case = labkit::corpus::Case<Verdict, Malformed>;

fn corpus() -> Vec<Case> {
    labkit::corpus::manifest("n3")
}

/// What the host parser says the program must do with `frame` under [`cfg`].
fn host_prediction(frame: &[u8]) -> (Verdict, Option<Malformed>) {
    let mut later = n3::GtpPacket::EMPTY;
    if n3::parse_into(frame, 2152, &mut later) == Ok(false) && later.frag_kind == n3::FRAG_LATER {
        // A later fragment whose first fragment was not dropped (none is, in these replays).
        return (Verdict::PassFragment, None);
    }
    match n3::parse(frame, 2152) {
        Ok(n3::N3::NotGtp) => (Verdict::PassNotGtp, None),
        Ok(n3::N3::Gtp(p)) if p.gtp.msg_type == guard_common::parse::gtpu::MSG_G_PDU => (Verdict::PassGpdu, None),
        Ok(n3::N3::Gtp(_)) => (Verdict::PassSignalling, None),
        Err(m) if m.is_gtp() => (Verdict::DropMalformed, Some(m)),
        Err(m) => (Verdict::PassMalformed, Some(m)),
    }
}

/// What the kernel did with one frame: the XDP action and the counters that moved.
struct Outcome {
    action: u32,
    verdicts: Vec<(Verdict, u64)>,
    malformed: Vec<(Malformed, u64)>,
}

/// The kernel's verdict and malformed reason for `frame`, from the action and the counters.
fn kernel(g: &mut Guard, frame: &[u8]) -> Outcome {
    let (action, d) = g.run_delta(frame);
    Outcome { action, verdicts: d.moved_verdicts(), malformed: d.moved_malformed() }
}

/// The MANIFEST's cases plus the fuzzer's crash inputs (whose expected outcome is whatever the
/// host parser says: they are regression cases for the kernel, and for the parser not panicking).
fn cases_and_artifacts() -> Vec<Case> {
    labkit::corpus::with_artifacts("n3", "n3_parse", host_prediction)
}

/// The host half, which needs no privilege: the host parser gives every MANIFEST case the
/// verdict and malformed reason the manifest states, and the corpus covers every pass/drop kind.
#[test]
fn host_parser_gives_the_manifest_verdicts() {
    let cases = corpus();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let mut kinds = std::collections::BTreeSet::new();
    for c in &cases {
        assert_eq!(host_prediction(&c.frame), (c.verdict, c.reason), "host parser on {}: {}", c.name, hex(&c.frame));
        kinds.insert(c.verdict.name());
    }
    for v in ["pass_gpdu", "pass_signalling", "pass_not_gtp", "pass_malformed", "drop_malformed", "pass_fragment"] {
        assert!(kinds.contains(v), "the corpus covers {v}");
    }
}

/// The kernel half: every case (and every fuzzer crash input) gets the stated verdict, action
/// and malformed-reason counter from `guard_n3` under BPF_PROG_TEST_RUN.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn corpus_replays_with_the_stated_verdict() {
    assert_root("corpus_n3::corpus_replays_with_the_stated_verdict");
    let mut g = Guard::load(&cfg()).expect("load guard_n3");
    let cases = cases_and_artifacts();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    for c in &cases {
        let Outcome { action, verdicts, malformed } = kernel(&mut g, &c.frame);
        let want = if c.verdict.is_drop() { XDP_DROP } else { XDP_PASS };
        assert_eq!(action, want, "{}: XDP action", c.name);
        assert_eq!(verdicts, vec![(c.verdict, 1)], "{}: verdict counters", c.name);
        let want_m: Vec<(Malformed, u64)> = c.reason.map(|m| (m, 1)).into_iter().collect();
        assert_eq!(malformed, want_m, "{}: malformed-reason counters", c.name);
    }
}

/// A corpus frame with some bytes overwritten and maybe cut short.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let frames: Vec<Vec<u8>> = corpus().into_iter().map(|c| c.frame).collect();
    (
        proptest::sample::select(frames),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        proptest::option::weighted(0.3, any::<prop::sample::Index>()),
    )
        .prop_map(|(mut f, edits, cut)| {
            for (i, b) in edits {
                let at = i.index(f.len());
                f[at] = b;
            }
            if let Some(c) = cut {
                f.truncate(14 + c.index(f.len() - 13));
            }
            f
        })
}

/// On any mutation of the corpus frames, the kernel program's action, verdict and malformed
/// reason equal what the host-compiled parser predicts. A plain test driving proptest's runner
/// (not `proptest!`), so that without root it fails once, before generating any case.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn kernel_and_host_parser_agree() {
    assert_root("corpus_n3::kernel_and_host_parser_agree");
    let g = std::cell::RefCell::new(Guard::load(&cfg()).expect("load guard_n3"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let r = runner.run(&mutated(), |frame| {
        let (verdict, reason) = host_prediction(&frame);
        let Outcome { action, verdicts, malformed } = kernel(&mut g.borrow_mut(), &frame);
        let want = if verdict.is_drop() { XDP_DROP } else { XDP_PASS };
        prop_assert_eq!(action, want, "action on {}", hex(&frame));
        prop_assert_eq!(verdicts, vec![(verdict, 1)], "verdict on {}", hex(&frame));
        let want_m: Vec<(Malformed, u64)> = reason.map(|m| (m, 1)).into_iter().collect();
        prop_assert_eq!(malformed, want_m, "reason on {}", hex(&frame));
        Ok(())
    });
    if let Err(e) = r {
        panic!("kernel and host parser disagree: {e}");
    }
}
