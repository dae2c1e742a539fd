//! Hostile input for the N2 program `guard_n2`, replayed through BPF_PROG_TEST_RUN (issue 7):
//! - the scapy-crafted corpus in `tests/corpus/n2/` (see `make_n2.py` there for each case and the
//!   RFC 9260 / TS 38.413 clause behind its expected verdict), plus any crash inputs the fuzzer
//!   left in `guard-common/fuzz/artifacts/n2_parse/`: every case gets the verdict and malformed
//!   reason its manifest states, from the kernel and from the host parser alike;
//! - a property test: on any mutation of those frames (byte overwrites, truncations), the kernel
//!   program's action, verdict and malformed reason equal what the host-compiled parser predicts,
//!   and so do its measurements of a passed packet (chunk classes and NGAP/S1AP procedures on the
//!   peer, walk cuts, InitialUEMessages walked or unparsed). The parser is shared code: a
//!   divergence would be a bug in the kernel build of it.

use guard_common::{
    abi_n2::{N2_STAT_NGAP_UNPARSED, N2_STAT_UE_SKIPPED, N2_STAT_WALK_CUT},
    parse::{n2::N2Malformed, n2::N2Parsed, ngap::NgapError},
    policy_n2::N2Verdict,
};
use labkit::assert_root;
use labkit::bpf::hex;
use labkit::n2lab::bpf::{action_of, enforce_all, host_prediction, N2Counters, N2Guard, TEST_OPTS};
use proptest::prelude::*;

type Case = labkit::corpus::Case<N2Verdict, N2Malformed>;

fn corpus() -> Vec<Case> {
    labkit::corpus::manifest("n2")
}

/// What the kernel did with one frame: the action, the counters that moved, and the peer's
/// counters before and after (for a packet the host parser says is N2).
struct Outcome {
    action: u32,
    delta: N2Counters,
    peer_delta: Option<([u64; 12], [u64; 8], u64)>,
}

fn kernel(g: &mut N2Guard, frame: &[u8], parsed: Option<&N2Parsed>) -> Outcome {
    let before = parsed.map(|p| g.peer(&p.pkt.src));
    let (action, delta) = g.run_delta(frame).expect("BPF_PROG_TEST_RUN");
    let peer_delta = parsed.zip(before).map(|(p, b)| {
        let a = g.peer(&p.pkt.src);
        let chunks: [u64; 12] = std::array::from_fn(|i| a.chunks[i].wrapping_sub(b.chunks[i]));
        let procs: [u64; 8] = std::array::from_fn(|i| a.procs[i].wrapping_sub(b.procs[i]));
        (chunks, procs, a.ue_walked.wrapping_sub(b.ue_walked))
    });
    Outcome { action, delta, peer_delta }
}

/// The measurements the host parser predicts for a passed N2 packet: chunk classes, procedures,
/// InitialUEMessages walked (including those cut by the parse window, whose first IEs count),
/// and the stats `ngap_unparsed`, `walk_cut`, `ue_skipped`.
fn predicted_measurements(p: &N2Parsed) -> (([u64; 12], [u64; 8], u64), [u64; 3]) {
    let chunks: [u64; 12] = std::array::from_fn(|i| u64::from(p.pkt.chunk_counts[i]));
    let procs: [u64; 8] = std::array::from_fn(|i| u64::from(p.pkt.procs[i]));
    let walked = p.ues.iter().flatten().filter(|r| matches!(r, Ok(_) | Err(NgapError::Window))).count() as u64;
    let unparsed = p.ues.iter().flatten().filter(|r| r.is_err()).count() as u64;
    let stats = [unparsed, u64::from(p.pkt.walk_cut != 0), u64::from(p.pkt.ue_skipped != 0)];
    ((chunks, procs, walked), stats)
}

/// Assert the kernel's outcome against the host's prediction; the error names the first
/// difference.
fn compare(frame: &[u8], o: &Outcome) -> Result<(), String> {
    let (verdict, reason, parsed) = host_prediction(frame);
    if o.action != action_of(verdict) {
        return Err(format!("action {} for {}", o.action, verdict.name()));
    }
    if o.delta.moved_verdicts() != vec![(verdict, 1)] {
        return Err(format!("verdicts {:?}, host {}", o.delta.moved_verdicts(), verdict.name()));
    }
    let want_m: Vec<(N2Malformed, u64)> = reason.map(|m| (m, 1)).into_iter().collect();
    if o.delta.moved_malformed() != want_m {
        return Err(format!("malformed {:?}, host {:?}", o.delta.moved_malformed(), reason));
    }
    if let Some(p) = parsed {
        let (peer, stats) = predicted_measurements(&p);
        if o.peer_delta != Some(peer) {
            return Err(format!("peer counters {:?}, host {peer:?}", o.peer_delta));
        }
        // InitialUEMessages are walked only for packets that pass with DATA.
        let got =
            [o.delta.stat(N2_STAT_NGAP_UNPARSED), o.delta.stat(N2_STAT_WALK_CUT), o.delta.stat(N2_STAT_UE_SKIPPED)];
        if got != stats {
            return Err(format!("stats [unparsed, walk_cut, ue_skipped] {got:?}, host {stats:?}"));
        }
    }
    Ok(())
}

/// The MANIFEST's cases plus the fuzzer's crash inputs (whose expected outcome is whatever the
/// host parser says).
fn cases_and_artifacts() -> Vec<Case> {
    labkit::corpus::with_artifacts("n2", "n2_parse", |f| {
        let (verdict, reason, _) = host_prediction(f);
        (verdict, reason)
    })
}

/// The host half, which needs no privilege: the host parser gives every MANIFEST case the
/// verdict and malformed reason the manifest states, and the corpus covers every verdict and
/// every malformed reason at or above SCTP.
#[test]
fn host_parser_gives_the_manifest_verdicts() {
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut kinds = std::collections::BTreeSet::new();
    let mut reasons = std::collections::BTreeSet::new();
    for c in &cases {
        let (verdict, reason, _) = host_prediction(&c.frame);
        assert_eq!((verdict, reason), (c.verdict, c.reason), "host parser on {}: {}", c.name, hex(&c.frame));
        kinds.insert(c.verdict.name());
        if let Some(r) = c.reason {
            reasons.insert(r.name());
        }
    }
    for v in
        ["pass_data", "pass_setup", "pass_control", "pass_not_n2", "pass_fragment", "pass_malformed", "drop_malformed"]
    {
        assert!(kinds.contains(v), "the corpus covers {v}");
    }
    // Every reason found at or above SCTP has a case (the Ethernet ones cannot: BPF_PROG_TEST_RUN
    // needs 14 octets, and an Ethernet header is all an untagged frame needs).
    for r in N2Malformed::ALL.iter().filter(|r| r.is_sctp()) {
        assert!(reasons.contains(r.name()), "the corpus covers {}", r.name());
    }
}

/// The kernel half: every case (and every fuzzer crash input) gets the stated action, verdict
/// and malformed reason from `guard_n2`, and the measurements the host parser predicts.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn corpus_replays_with_the_stated_verdict() {
    assert_root("corpus_n2::corpus_replays_with_the_stated_verdict");
    let mut g = N2Guard::load(&enforce_all(), TEST_OPTS).expect("load guard_n2");
    let cases = cases_and_artifacts();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    for c in &cases {
        let parsed = host_prediction(&c.frame).2;
        let o = kernel(&mut g, &c.frame, parsed.as_ref());
        assert_eq!(o.action, action_of(c.verdict), "{}: XDP action", c.name);
        assert_eq!(o.delta.moved_verdicts(), vec![(c.verdict, 1)], "{}: verdict counters", c.name);
        let want_m: Vec<(N2Malformed, u64)> = c.reason.map(|m| (m, 1)).into_iter().collect();
        assert_eq!(o.delta.moved_malformed(), want_m, "{}: malformed-reason counters", c.name);
        if let Err(e) = compare(&c.frame, &o) {
            panic!("{}: kernel and host measurements differ: {e}\nframe {}", c.name, hex(&c.frame));
        }
    }
    // The well-formed InitialUEMessages were walked and counted on a cell and a device.
    assert!(g.cell_count() >= 2, "cells {}", g.cell_count());
    assert!(g.device_count() >= 2, "devices {}", g.device_count());
}

/// A corpus frame with some bytes overwritten and maybe cut short. Half the overwrites land in
/// the first 96 octets, where the IP length, the common header and the first chunk headers are
/// (the fields the walk branches on); the rest anywhere.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let frames: Vec<Vec<u8>> = corpus().into_iter().map(|c| c.frame).filter(|f| f.len() > 14).collect();
    (
        proptest::sample::select(frames),
        proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), any::<u8>()), 0..6),
        proptest::option::weighted(0.3, any::<prop::sample::Index>()),
    )
        .prop_map(|(mut f, edits, cut)| {
            for (head, i, b) in edits {
                let at = if head { 14 + i.index(f.len().min(96) - 14) } else { i.index(f.len()) };
                f[at] = b;
            }
            if let Some(c) = cut {
                f.truncate(14 + c.index(f.len() - 13));
            }
            f
        })
}

/// On any mutation of the corpus frames, the kernel program's action, verdict, malformed reason
/// and measurements equal what the host-compiled parser predicts. A plain test driving
/// proptest's runner, so that without root it fails once, before generating any case.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn kernel_and_host_parser_agree() {
    assert_root("corpus_n2::kernel_and_host_parser_agree");
    let g = std::cell::RefCell::new(N2Guard::load(&enforce_all(), TEST_OPTS).expect("load guard_n2"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 5000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let r = runner.run(&mutated(), |frame| {
        let parsed = host_prediction(&frame).2;
        let o = kernel(&mut g.borrow_mut(), &frame, parsed.as_ref());
        let r = compare(&frame, &o);
        prop_assert!(r.is_ok(), "{} on {}", r.err().unwrap_or_default(), hex(&frame));
        Ok(())
    });
    if let Err(e) = r {
        panic!("kernel and host parser disagree: {e}");
    }
}
