//! A live run's decisions against `guard replay`'s on the run's own capture (issue 21, item 5):
//! what the lab's replay tests (`replay_lab.rs`) and the real-peer tests (`real_n3.rs`,
//! `real_n2.rs`) compare. The live side is the guard's audit trail; the replay side its report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::UNIX_EPOCH;

use guard::replay::report::Report;
use serde_json::Value;

use crate::scenario::{parse_rfc3339, read_audit, AuditLine};

/// A device's setup in one run: the highest stage it reached and when it was first staged (Unix
/// seconds: the audit trail's wall time live, the capture's time in a replay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Staged {
    pub stage: u64,
    pub first_unix_s: f64,
}

/// N3: the devices the live guard staged (engine decisions; not refreshes, not exempt groups,
/// not stage 0), from audit lines read with [`read_audit`] against `UNIX_EPOCH`.
pub fn live_staged(audit: &[AuditLine]) -> BTreeMap<String, Staged> {
    let mut out: BTreeMap<String, Staged> = BTreeMap::new();
    for a in audit.iter().filter(|a| a.action == "set_device_stage" && !a.refresh && !a.exempt) {
        if let Some(s) = a.stage.filter(|s| *s > 0) {
            let e = out.entry(a.target.clone()).or_insert(Staged { stage: s, first_unix_s: a.t_s });
            e.stage = e.stage.max(s);
            e.first_unix_s = e.first_unix_s.min(a.t_s);
        }
    }
    out
}

/// N3: the live guard's audit file, read as [`live_staged`] wants it.
pub fn live_staged_file(audit: &Path) -> BTreeMap<String, Staged> {
    live_staged(&read_audit(audit, UNIX_EPOCH).0)
}

/// N3: the devices the replay staged, on the capture's clock.
pub fn replay_staged(r: &Report) -> BTreeMap<String, Staged> {
    let first = r.capture.first_unix_s;
    r.devices
        .iter()
        .filter(|d| d.max_stage > 0)
        .map(|d| {
            let t = d.first_staged_s.map_or(f64::NAN, |t| first + t);
            (d.device.clone(), Staged { stage: u64::from(d.max_stage), first_unix_s: t })
        })
        .collect()
}

/// How far the replay's first stage of a device may be from the live one (replay minus live).
#[derive(Clone, Copy, Debug)]
pub struct TimeTolerance {
    /// How much earlier: the ticks' alignment, and the live guard's own lateness (a controller
    /// thread waiting for a CPU, events lost from the ring) which a replay, with an ideal event
    /// pump and no CPU to wait for, does not have (docs/replay.md, "Limits").
    pub early_s: f64,
    /// How much later: the ticks' alignment only.
    pub late_s: f64,
}

/// N3: how the replay differs from the live run: devices staged by one only, a highest stage
/// more than `stage_tol` apart, a first stage outside `time` (both on Unix time: a capture's
/// timestamps are the wall clock the audit trail also writes). Empty: they agree.
pub fn n3_differences(
    live: &BTreeMap<String, Staged>,
    replay: &BTreeMap<String, Staged>,
    stage_tol: u64,
    time: TimeTolerance,
) -> Vec<String> {
    let mut out = Vec::new();
    for (dev, l) in live {
        match replay.get(dev) {
            None => out.push(format!("{dev}: staged live (stage {}), not in the replay", l.stage)),
            Some(r) => {
                if r.stage.abs_diff(l.stage) > stage_tol {
                    out.push(format!("{dev}: live reached stage {}, the replay {}", l.stage, r.stage));
                }
                let dt = r.first_unix_s - l.first_unix_s;
                if dt.is_nan() || dt < -time.early_s || dt > time.late_s {
                    out.push(format!("{dev}: first staged {dt:+.3} s from the live time (tolerance {time:?})"));
                }
            }
        }
    }
    for (dev, r) in replay.iter().filter(|(d, _)| !live.contains_key(*d)) {
        out.push(format!("{dev}: staged by the replay (stage {}), never live", r.stage));
    }
    out
}

/// The tick phases (replay minus live, seconds) that put every decision's offset in `offsets`
/// within `tol` of them, the phase itself within `tol` of 0: `(lowest, highest)`, or `None` if
/// no phase does (or there is no offset, or one is NaN). A phase p fits an offset dt when
/// `-tol.early_s <= dt - p <= tol.late_s`, so the fitting phases are those every offset allows,
/// intersected: the decisions need not agree on one offset, only on one tick grid within a tick
/// (the offsets' median is not that: it splits when half the decisions land a tick one way and
/// half the other).
pub fn common_phase(offsets: &[f64], tol: TimeTolerance) -> Option<(f64, f64)> {
    if offsets.is_empty() || offsets.iter().any(|dt| dt.is_nan()) {
        return None;
    }
    let lo = offsets.iter().fold(-tol.early_s, |a, dt| a.max(dt - tol.late_s));
    let hi = offsets.iter().fold(tol.late_s, |a, dt| a.min(dt + tol.early_s));
    (lo <= hi).then_some((lo, hi))
}

/// The JSON lines of an audit file (unreadable lines are skipped; a missing file is empty).
pub fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// N2: the responses in an audit trail, in order, as (action, target): `n2_advise`,
/// `n2_overload_*`, `n2_barring*`, ... (not classification, peer stages or hook failures).
pub fn n2_responses(v: &[Value]) -> Vec<(String, String)> {
    untimed(&n2_timed_responses(v))
}

/// Timed responses ([`n2_timed_responses`], [`n2_level_changes`]) as (action, target).
pub fn untimed(v: &[(String, String, f64)]) -> Vec<(String, String)> {
    v.iter().map(|(a, t, _)| (a.clone(), t.clone())).collect()
}

/// [`n2_responses`] with each one's time (Unix seconds: the audit's `ts`, which a replay writes
/// on the capture's clock).
pub fn n2_timed_responses(v: &[Value]) -> Vec<(String, String, f64)> {
    v.iter()
        .filter_map(|d| Some((d["action"].as_str()?.to_owned(), d["target"].as_str()?.to_owned(), ts(d))))
        .filter(|(a, _, _)| {
            a.starts_with("n2_")
                && !matches!(
                    a.as_str(),
                    "n2_classified" | "n2_hook_failed" | "n2_set_peer_stage" | "n2_release_peer_stage"
                )
        })
        .collect()
}

/// [`n2_timed_responses`] with each run of OVERLOAD updates to the same gNBs kept as its first.
///
/// While overload is in force, the ladder sends an update when the load reduction it asks for
/// rises (reason `scope`) and every `refresh_s` since its last message (reason `refresh`;
/// `ladder.rs`). A replay's ticks fall at another phase than the live guard's (docs/replay.md,
/// "Tick alignment"), so the level can start and stop a tick earlier or later in one of them:
/// overload held for 9.5 s live and 10 s in the replay is one refresh against two at 5 s, with
/// nothing else different. What an operator compares is the rest: every change of level, its
/// gNBs and its order, and the reduction it came to ([`n2_peak_reduction`]).
pub fn n2_level_changes(v: &[Value]) -> Vec<(String, String, f64)> {
    let mut out: Vec<(String, String, f64)> = Vec::new();
    for r in n2_timed_responses(v) {
        let repeat = out.last().is_some_and(|l| {
            l.1 == r.1
                && r.0 == "n2_overload_update"
                && matches!(l.0.as_str(), "n2_overload_update" | "n2_overload_start")
        });
        if !repeat {
            out.push(r);
        }
    }
    out
}

/// N2: the highest load reduction (TS 38.413 §9.3.1.106, AMF Traffic Load Reduction
/// Indication, percent) any OVERLOAD START or update in an audit trail asked for; `None` if none
/// did.
pub fn n2_peak_reduction(v: &[Value]) -> Option<u64> {
    v.iter()
        .filter(|d| matches!(d["action"].as_str(), Some("n2_overload_start" | "n2_overload_update")))
        .filter_map(|d| d["detail"]["overload"]["traffic_load_reduction_pct"].as_u64())
        .max()
}

fn ts(d: &Value) -> f64 {
    d["ts"].as_str().and_then(parse_rfc3339).unwrap_or(f64::NAN)
}

/// N2: when each peer was first given a setup stage (Unix seconds).
pub fn n2_first_staged(v: &[Value]) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for d in v.iter().filter(|d| d["action"] == "n2_set_peer_stage") {
        if let Some(t) = d["target"].as_str() {
            let e = out.entry(t.to_owned()).or_insert(f64::INFINITY);
            *e = e.min(ts(d));
        }
    }
    out
}

/// N2: the peers given a setup stage, and the highest stage each reached.
pub fn n2_peer_stages(v: &[Value]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for d in v.iter().filter(|d| d["action"] == "n2_set_peer_stage") {
        if let Some(t) = d["target"].as_str() {
            let s = d["detail"]["stage"].as_u64().unwrap_or(0);
            let e = out.entry(t.to_owned()).or_insert(s);
            *e = (*e).max(s);
        }
    }
    out
}

/// N2: the distinct (action, target) pairs of [`n2_responses`].
pub fn distinct(v: &[(String, String)]) -> BTreeSet<(String, String)> {
    v.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// real_n2's tolerance: a 0.5 s tick and 50 ms, 1 s more on the early side.
    const N2: TimeTolerance = TimeTolerance { early_s: 1.55, late_s: 0.55 };

    /// Offsets a tick apart fit one phase between them; the median would have been out of
    /// bounds (a CI run of 2026-12-07).
    #[test]
    fn decisions_a_tick_each_way_share_a_phase() {
        let ci = [0.793, 0.793, 0.793, -0.207, -0.207, -0.207, 0.293];
        let (lo, hi) = common_phase(&ci, N2).expect("a phase fits");
        assert!((lo - 0.243).abs() < 1e-9 && (hi - 0.55).abs() < 1e-9, "[{lo}, {hi}]");
        assert!(lo <= 0.293 && 0.293 <= hi);
    }

    /// A replay ticking at twice the period (the planted fault: offsets 1.8-6.3 s), a single
    /// offset past the late bound, no offset and a NaN fit no phase.
    #[test]
    fn offsets_no_tick_grid_explains_fit_no_phase() {
        assert_eq!(common_phase(&[2.288, 4.288, 6.288, 5.288, 5.288, 5.288, 1.788], N2), None);
        assert_eq!(common_phase(&[0.56 + 0.55], N2), None);
        assert_eq!(common_phase(&[], N2), None);
        assert_eq!(common_phase(&[0.1, f64::NAN], N2), None);
        // Early by up to a tick and 1 s from a phase itself that early: the edge still fits.
        let (lo, hi) = common_phase(&[-3.0], N2).expect("-3.0 s fits the earliest phase");
        assert!(lo == -1.55 && (hi + 1.45).abs() < 1e-9, "[{lo}, {hi}]");
    }
}
