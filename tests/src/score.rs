//! Scores of one lab run, and the acceptance checks of issue 4.
//!
//! - benign delivery: delivered / sent over all benign devices, and per device;
//! - false positives: benign devices ever staged (from the stage-map samples and the audit log);
//! - attack traffic dropped: 1 − delivered / sent over attack traffic;
//! - attack dropped after the grace period (the acceptance measure): of the attack packets sent
//!   from `onset + mitigate_within_s` (5 s) to the end of the run, the fraction the sink never
//!   saw;
//! - time to mitigate: the earliest 100 ms slot boundary `t >= onset` such that at least
//!   `attack_dropped` (95%) of the attack packets sent from `t` to the end were dropped, minus
//!   the onset. (A "first good 1 s window" would be fooled by an attacker that pauses; this is
//!   the time from which mitigation *held*.)
//! - highest device, cell and host stage reached;
//! - the guard process's CPU time (utime + stime from /proc/PID/stat).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::population::{Class, Plan, SLOTS_PER_SEC};
use crate::scenario::{teid_of_target, Mode, RunResult, Scenario};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scores {
    pub mode: Mode,
    pub benign_sent: u64,
    pub benign_delivered: u64,
    pub benign_delivery: Option<f64>,
    pub benign_devices: usize,
    /// Benign devices that got less than 99% through.
    pub benign_devices_below_99: usize,
    pub worst_benign_device: Option<(String, f64)>,
    /// Benign devices ever staged (false positives), by label.
    pub benign_staged: Vec<String>,
    pub attack_devices: usize,
    pub attack_devices_staged: usize,
    pub attack_sent: u64,
    pub attack_delivered: u64,
    pub attack_dropped: Option<f64>,
    pub onset_s: Option<f64>,
    /// The grace period after the onset (`expect.mitigate_within_s`, default 5 s).
    pub grace_s: f64,
    /// Attack packets sent from `onset + grace_s` to the end, and the fraction dropped.
    pub attack_sent_after_grace: u64,
    pub attack_dropped_after_grace: Option<f64>,
    pub time_to_mitigate_s: Option<f64>,
    pub max_device_stage: u32,
    pub max_cell_stage: u32,
    pub max_host_stage: u32,
    pub guard_cpu_s: Option<f64>,
    /// CPU time over the guard's wall time (percent of one core).
    pub guard_cpu_pct: Option<f64>,
    pub unsent: u64,
    pub sink_kernel_drops: u64,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

pub fn score(sc: &Scenario, plan: &Plan, r: &RunResult) -> Scores {
    let onset = sc.onset(plan);
    let mut benign_sent = 0;
    let mut benign_delivered = 0;
    let mut below = 0;
    let mut worst: Option<(String, f64)> = None;
    let (mut nb, mut na) = (0, 0);
    for d in &plan.devices {
        let (s, del) = (r.device_sent[d.idx], r.device_delivered[d.idx].min(r.device_sent[d.idx]));
        if d.class == Class::Benign {
            nb += 1;
            benign_sent += s;
            benign_delivered += del;
            if let Some(x) = ratio(del, s) {
                if x < 0.99 {
                    below += 1;
                }
                if worst.as_ref().is_none_or(|w| x < w.1) {
                    worst = Some((d.label(), x));
                }
            }
        } else {
            na += 1;
        }
    }
    // Staged devices: map samples plus audit decisions (a stage set and released between two
    // samples still counts).
    let mut staged: BTreeSet<u32> = r.staged_teids.clone();
    let mut max_dev = r.stages.iter().map(|s| s.max_device_stage).max().unwrap_or(0);
    let mut max_cell = u32::from(r.stages.iter().any(|s| s.cells_capped > 0));
    let mut max_host = u32::from(r.stages.iter().any(|s| s.host_capped));
    for a in &r.audit {
        match a.action.as_str() {
            "set_device_stage" if !a.exempt && a.stage.unwrap_or(0) > 0 => {
                if let Some(t) = teid_of_target(&a.target) {
                    staged.insert(t);
                }
                max_dev = max_dev.max(a.stage.unwrap_or(0) as u32);
            }
            "set_cell_cap" => max_cell = 1,
            "set_host_cap" => max_host = 1,
            _ => {}
        }
    }
    let mut benign_staged = Vec::new();
    let mut attack_staged = 0;
    for t in &staged {
        if let Some(dev) = plan.by_teid.get(t).map(|&i| &plan.devices[i]) {
            match dev.class {
                Class::Benign => benign_staged.push(dev.label()),
                Class::Attack => attack_staged += 1,
            }
        }
    }
    let attack_sent: u64 = r.sent.iter().map(|c| c[1]).sum();
    let attack_delivered: u64 = r.delivered.iter().map(|c| c[1]).sum::<u64>().min(attack_sent);
    // Suffix sums of attack sent / delivered per slot: both measures are "from slot s to the end".
    let n = r.sent.len();
    let mut suffix = vec![(0u64, 0u64); n + 1];
    for i in (0..n).rev() {
        let (a, d) = suffix[i + 1];
        let sa = r.sent[i][1];
        suffix[i] = (a + sa, d + r.delivered.get(i).map_or(0, |c| c[1]).min(sa));
    }
    let dropped_from = |slot: usize| {
        let (a, d) = suffix[slot.min(n)];
        ratio(a - d.min(a), a)
    };
    let grace = sc.expect.mitigate_within_s.unwrap_or(5.0);
    let slot_at = |t: f64| ((t * SLOTS_PER_SEC as f64).round().max(0.0) as usize).min(n);
    let mut ttm = None;
    let (mut sent_after, mut after) = (0, None);
    if let (Some(on), true) = (onset, attack_sent > 0) {
        let g = slot_at(on + grace);
        sent_after = suffix[g].0;
        after = dropped_from(g);
        ttm = (slot_at(on)..n)
            .find(|&s| dropped_from(s).is_some_and(|x| x >= sc.expect.attack_dropped))
            .map(|s| (s as f64 / SLOTS_PER_SEC as f64 - on).max(0.0));
    }
    let cpu_pct = match (r.guard_cpu_s, r.guard_wall_s) {
        (Some(c), Some(w)) if w > 0.0 => Some(100.0 * c / w),
        _ => None,
    };
    Scores {
        mode: r.mode,
        benign_sent,
        benign_delivered,
        benign_delivery: ratio(benign_delivered, benign_sent),
        benign_devices: nb,
        benign_devices_below_99: below,
        worst_benign_device: worst,
        benign_staged,
        attack_devices: na,
        attack_devices_staged: attack_staged,
        attack_sent,
        attack_delivered,
        attack_dropped: ratio(attack_sent - attack_delivered, attack_sent),
        onset_s: onset,
        grace_s: grace,
        attack_sent_after_grace: sent_after,
        attack_dropped_after_grace: after,
        time_to_mitigate_s: ttm,
        max_device_stage: max_dev,
        max_cell_stage: if r.mode == Mode::NaiveCellCap { 1 } else { max_cell },
        max_host_stage: max_host,
        guard_cpu_s: r.guard_cpu_s,
        guard_cpu_pct: cpu_pct,
        unsent: r.unsent,
        sink_kernel_drops: r.sink_kernel_drops,
    }
}

/// One acceptance check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Check {
    pub scenario: String,
    pub criterion: String,
    pub pass: bool,
    pub detail: String,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// The scenario's acceptance checks, from its `[expect]`, on the guard run (and the naive run for
/// the comparison).
pub fn checks(sc: &Scenario, guard: &Scores, naive: Option<&Scores>) -> Vec<Check> {
    let e = &sc.expect;
    let mut v = Vec::new();
    // The lab shares its CPUs: when the sender could not keep its schedule, timing-based results
    // (burst patterns, time to mitigate) are less trustworthy, so every check says so.
    let scheduled = guard.benign_sent + guard.attack_sent + guard.unsent;
    let late = if scheduled > 0 { guard.unsent as f64 / scheduled as f64 } else { 0.0 };
    let note = if late > 0.01 {
        format!(
            "; NOTE: the sender missed {:.1}% of the scheduled packets (machine busy), timing is perturbed",
            100.0 * late
        )
    } else {
        String::new()
    };
    let mut push = |criterion: String, pass: bool, detail: String| {
        v.push(Check { scenario: sc.name.clone(), criterion, pass, detail: detail + &note });
    };
    if let Some(min) = e.benign_delivery {
        let got = guard.benign_delivery.unwrap_or(0.0);
        push(
            format!("benign delivery >= {:.0}%", 100.0 * min),
            got >= min,
            format!("{} ({} of {} packets)", pct(guard.benign_delivery), guard.benign_delivered, guard.benign_sent),
        );
    }
    if e.no_benign_staged {
        push(
            "no benign device staged".into(),
            guard.benign_staged.is_empty(),
            if guard.benign_staged.is_empty() {
                format!("0 of {} benign devices", guard.benign_devices)
            } else {
                format!(
                    "{} staged: {}",
                    guard.benign_staged.len(),
                    guard.benign_staged.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )
            },
        );
    }
    if e.no_cell_or_host_stage {
        push(
            "no cell or host stage raised".into(),
            guard.max_cell_stage == 0 && guard.max_host_stage == 0,
            format!("max cell stage {}, max host stage {}", guard.max_cell_stage, guard.max_host_stage),
        );
    }
    if let Some(within) = e.mitigate_within_s {
        let ok = guard.attack_dropped_after_grace.is_some_and(|x| x >= e.attack_dropped);
        push(
            format!(">= {:.0}% of attack traffic dropped from onset + {within:.0} s", 100.0 * e.attack_dropped),
            ok,
            format!(
                "{} of {} attack packets sent from {:.1} s on were dropped; time to mitigate {}; {} dropped overall",
                pct(guard.attack_dropped_after_grace),
                guard.attack_sent_after_grace,
                guard.onset_s.unwrap_or(0.0) + within,
                guard.time_to_mitigate_s.map_or("never".into(), |t| format!("{t:.1} s")),
                pct(guard.attack_dropped)
            ),
        );
    }
    if let (Some(by), Some(n)) = (e.naive_worse_by, naive) {
        let (g, nv) = (guard.benign_delivery.unwrap_or(0.0), n.benign_delivery.unwrap_or(0.0));
        push(
            format!("naive cell cap visibly worse for benign devices (by >= {:.0} points)", 100.0 * by),
            g - nv >= by,
            format!("benign delivery: guard {}, naive cell cap {}", pct(guard.benign_delivery), pct(n.benign_delivery)),
        );
    }
    v
}
