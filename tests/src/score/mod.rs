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

use crate::population::{Class, Plan, Profile, SLOTS_PER_SEC};
use crate::scenario::{Mode, RunResult, Scenario};

mod checks;
mod evidence;
mod pop;
pub use checks::{checks, Check};
pub use evidence::Window;
pub use pop::PopScore;

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
    /// Attacking devices with a session of their own (no scanner or forger, which have no
    /// F-TEID to stage), and how many of them the engine staged.
    #[serde(default)]
    pub attack_sessions: usize,
    #[serde(default)]
    pub attack_sessions_staged: usize,
    /// The audit log was there to read (a missing one would read as "nothing staged").
    #[serde(default)]
    pub audit_found: bool,
    pub attack_sent: u64,
    pub attack_delivered: u64,
    pub attack_dropped: Option<f64>,
    pub onset_s: Option<f64>,
    /// The grace period after the onset (`expect.mitigate_within_s`, default 5 s).
    pub grace_s: f64,
    /// Attack packets sent from `onset + grace_s` to the end, and the fraction dropped.
    pub attack_sent_after_grace: u64,
    pub attack_dropped_after_grace: Option<f64>,
    /// Attack frames the plan scheduled from `onset + grace_s` on.
    #[serde(default)]
    pub attack_scheduled_after_grace: u64,
    /// The attack from the onset to the first stage of an attacking device (`None`: no whole
    /// slot between them).
    #[serde(default)]
    pub attack_before_stage: Option<Window>,
    /// The sum of the guard's `drop_*` verdicts (guard modes; `None` if unread, and why).
    #[serde(default)]
    pub guard_drops: Option<u64>,
    #[serde(default)]
    pub verdicts_error: Option<String>,
    pub time_to_mitigate_s: Option<f64>,
    pub max_device_stage: u32,
    pub max_cell_stage: u32,
    pub max_host_stage: u32,
    pub guard_cpu_s: Option<f64>,
    /// CPU time over the guard's wall time (percent of one core).
    pub guard_cpu_pct: Option<f64>,
    pub unsent: u64,
    /// Per class `[benign, attack]`: packets scheduled, and of them not sent.
    #[serde(default)]
    pub scheduled_by_class: [u64; 2],
    #[serde(default)]
    pub unsent_by_class: [u64; 2],
    pub sink_kernel_drops: u64,
    /// Later fragments of benign fragmented G-PDUs: sent, delivered (in the benign counts too).
    #[serde(default)]
    pub benign_later_sent: u64,
    #[serde(default)]
    pub benign_later_delivered: u64,
    /// The gNBs' own Echo Requests (`echo_path` devices), if the scenario has any.
    #[serde(default)]
    pub echo_paths: Option<EchoPaths>,
    /// Per population, for `[[expect.population]]` and the report.
    #[serde(default)]
    pub populations: Vec<PopScore>,
    /// The data plane's new-device budget and fragment verdicts (guard modes).
    #[serde(default)]
    pub new_devices: Option<NewDevices>,
    /// The data plane's verdict counters at the end of the run (guard modes).
    #[serde(default)]
    pub verdicts: Option<std::collections::BTreeMap<String, u64>>,
    /// Echo Requests the scenario sent (real and forged).
    #[serde(default)]
    pub echo_requests_sent: u64,
    /// Of them, the ones the sink saw.
    #[serde(default)]
    pub echo_requests_delivered: u64,
    /// G-PDUs with forged inner sources and what anti-spoofing did, if the scenario has forgers.
    #[serde(default)]
    pub forged: Option<Forged>,
}

/// Forged inner sources (issue 17): sent, delivered, and the data plane's anti-spoofing verdicts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forged {
    pub sent: u64,
    pub delivered: u64,
    /// The data plane's `drop_spoof` verdicts over the run (guard modes).
    pub drop_spoof: Option<u64>,
    /// Devices named by the data plane's spoof events: of forging populations, and others (by
    /// label: a benign session anti-spoofing flagged).
    pub flagged_forgers: usize,
    pub flagged_others: Vec<String>,
}

/// What the data plane's new-device budget did, from its per-address counters at the end of the
/// run, and its verdicts on later fragments.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewDevices {
    /// On the lab's gNB addresses: never-seen TEIDs admitted, and the G-PDU devices that sent.
    pub gnb_admitted: u64,
    pub gnb_devices: u64,
    /// New-TEID attempts (admitted or limited) on gNB addresses beyond one per device and the
    /// forged never-seen TEIDs sent with those addresses: known devices whose `N3_DEVICES`
    /// record was evicted (by the table's churn) and that came back as new.
    pub readmitted: u64,
    /// Never-seen TEIDs forged with gNB addresses (`teid_scan` without rotating sources), sent.
    pub gnb_forged_sent: u64,
    /// The data plane's own count of known devices re-admitted without the budget after an
    /// eviction (on gNB addresses).
    pub gnb_readmitted_dp: u64,
    /// Over a gNB address's budget (dropped when enforced, and not inserted).
    pub gnb_limited: u64,
    /// Source addresses that are no gNB of the lab (forged) and have a record of their own, and
    /// what they and the shared record of the sources without one got admitted / limited.
    pub forged_sources: usize,
    pub forged_admitted: u64,
    pub forged_limited: u64,
    /// Later fragments: dropped with their dropped first fragment, passed.
    pub drop_fragment: u64,
    pub pass_fragment: u64,
}

/// The real gNBs' path supervision in one run (TS 29.281 §7.2.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EchoPaths {
    pub paths: usize,
    pub sent: u64,
    pub delivered: u64,
    /// Paths none of whose Echo Requests passed: a gNB whose request and every retransmission
    /// go unanswered declares the path down and releases its sessions. (An `echo_path` sends
    /// one request and its retransmissions per period, and the lab's periods are at least its
    /// runs, so "none passed" is "one round lost".)
    pub down: usize,
    /// Paths that lost at least one request.
    pub lossy: usize,
}

pub(super) fn ratio(a: u64, b: u64) -> Option<f64> {
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
    let mut staged: BTreeSet<usize> = r.staged.iter().filter_map(|k| plan.by_fteid.get(k).copied()).collect();
    let mut max_dev = r.stages.iter().map(|s| s.max_device_stage).max().unwrap_or(0);
    let mut max_cell = u32::from(r.stages.iter().any(|s| s.cells_capped > 0));
    let mut max_host = u32::from(r.stages.iter().any(|s| s.host_capped));
    for a in &r.audit {
        match a.action.as_str() {
            "set_device_stage" if !a.exempt && a.stage.unwrap_or(0) > 0 => {
                if let Some(d) = r.device_of_target(plan, &a.target) {
                    staged.insert(d);
                }
                max_dev = max_dev.max(a.stage.unwrap_or(0) as u32);
            }
            "set_cell_cap" => max_cell = 1,
            "set_host_cap" => max_host = 1,
            _ => {}
        }
    }
    let mut benign_staged = Vec::new();
    let (mut attack_staged, mut sessions_staged) = (0, 0);
    for &i in &staged {
        if let Some(dev) = plan.devices.get(i) {
            match dev.class {
                Class::Benign => benign_staged.push(dev.label()),
                Class::Attack => {
                    attack_staged += 1;
                    sessions_staged += usize::from(dev.edge.is_none());
                }
            }
        }
    }
    let attack_sessions = plan.devices.iter().filter(|d| d.class == Class::Attack && d.edge.is_none()).count();
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
    let (mut sent_after, mut after, mut scheduled_after) = (0, None, 0);
    if let (Some(on), true) = (onset, attack_sent > 0) {
        let g = slot_at(on + grace);
        sent_after = suffix[g].0;
        scheduled_after = r.scheduled.iter().skip(g).map(|c| c[1]).sum();
        after = dropped_from(g);
        ttm = (slot_at(on)..n)
            .find(|&s| dropped_from(s).is_some_and(|x| x >= sc.expect.attack_dropped))
            .map(|s| (s as f64 / SLOTS_PER_SEC as f64 - on).max(0.0));
    }
    // Later fragments of benign devices.
    let (mut bl_sent, mut bl_del) = (0, 0);
    for d in plan.devices.iter().filter(|d| d.class == Class::Benign) {
        let s = r.device_sent_later.get(d.idx).copied().unwrap_or(0);
        bl_sent += s;
        bl_del += r.device_delivered_later.get(d.idx).copied().unwrap_or(0).min(s);
    }
    // The gNBs' own Echo Requests.
    let mut echo = EchoPaths { paths: 0, sent: 0, delivered: 0, down: 0, lossy: 0 };
    for d in &plan.devices {
        let real = d.class == Class::Benign && d.segments.iter().any(|s| matches!(s.profile, Profile::EchoPath { .. }));
        if !real {
            continue;
        }
        let (s, del) = (r.device_sent[d.idx], r.device_delivered[d.idx].min(r.device_sent[d.idx]));
        echo.paths += 1;
        echo.sent += s;
        echo.delivered += del;
        echo.down += usize::from(s > 0 && del == 0);
        echo.lossy += usize::from(del < s);
    }
    let echo_paths = (echo.paths > 0).then_some(echo);
    let populations =
        pop::populations(plan, r, onset.map_or(0, &slot_at), onset.map_or(n, |on| slot_at(on + grace)), slot_at);
    let new_devices = r.dataplane.as_ref().map(|dp| {
        let gnbs: BTreeSet<String> = (0..plan.gnbs as u32)
            .map(|i| std::net::Ipv4Addr::from(u32::from(crate::lab::GNB_V4_BASE) + i).to_string())
            .collect();
        let mut nd = NewDevices {
            gnb_admitted: 0,
            gnb_devices: plan.devices.iter().filter(|d| d.edge.is_none() && r.device_sent[d.idx] > 0).count() as u64,
            readmitted: 0,
            gnb_forged_sent: plan
                .devices
                .iter()
                .filter(|d| {
                    d.edge == Some(crate::population::EdgeKind::Scan)
                        && d.segments.iter().all(|s| matches!(s.profile, Profile::TeidScan { sources: 0, .. }))
                })
                .map(|d| r.device_sent[d.idx])
                .sum(),
            gnb_limited: 0,
            gnb_readmitted_dp: 0,
            forged_sources: 0,
            forged_admitted: 0,
            forged_limited: 0,
            drop_fragment: dp.verdicts.get("drop_fragment").copied().unwrap_or(0),
            pass_fragment: dp.verdicts.get("pass_fragment").copied().unwrap_or(0),
        };
        for (addr, [adm, lim, readm]) in &dp.new_devices {
            if gnbs.contains(addr) {
                nd.gnb_admitted += adm;
                nd.gnb_limited += lim;
                nd.gnb_readmitted_dp += readm;
            } else if adm + lim > 0 {
                nd.forged_sources += usize::from(addr != "unknown");
                nd.forged_admitted += adm;
                nd.forged_limited += lim;
            }
        }
        // Every way back of an evicted device: through the budget (admitted or limited) or
        // without it (the data plane's `readmitted`).
        nd.readmitted = (nd.gnb_admitted + nd.gnb_limited + nd.gnb_readmitted_dp)
            .saturating_sub(nd.gnb_devices + nd.gnb_forged_sent);
        nd
    });
    let forgers = plan.devices.iter().any(|d| d.session.forged > 0.0);
    let forged = forgers.then(|| {
        let (mut flagged_forgers, mut flagged_others) = (0, Vec::new());
        for t in r.dataplane_events.get("spoof").map(|e| &e.targets).into_iter().flatten() {
            match r.device_of_target(plan, t).map(|i| &plan.devices[i]) {
                Some(d) if d.session.forged > 0.0 => flagged_forgers += 1,
                Some(d) => flagged_others.push(d.label()),
                None => flagged_others.push(t.clone()),
            }
        }
        let sent: u64 = r.forged_sent.iter().sum();
        Forged {
            sent,
            delivered: r.forged_delivered.iter().sum::<u64>().min(sent),
            drop_spoof: r.dataplane.as_ref().map(|d| d.verdicts.get("drop_spoof").copied().unwrap_or(0)),
            flagged_forgers,
            flagged_others,
        }
    });
    let (guard_drops, verdicts_error) = evidence::guard_drops(r);
    let echo_of = |counts: &[u64]| -> u64 {
        let echo = plan.devices.iter().filter(|d| d.edge == Some(crate::population::EdgeKind::Echo));
        echo.map(|d| counts.get(d.idx).copied().unwrap_or(0).min(r.device_sent[d.idx])).sum()
    };
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
        attack_sessions,
        attack_sessions_staged: sessions_staged,
        audit_found: r.audit_found,
        attack_sent,
        attack_delivered,
        attack_dropped: ratio(attack_sent - attack_delivered, attack_sent),
        onset_s: onset,
        grace_s: grace,
        attack_sent_after_grace: sent_after,
        attack_dropped_after_grace: after,
        attack_scheduled_after_grace: scheduled_after,
        attack_before_stage: onset.and_then(|on| evidence::attack_before_stage(plan, r, slot_at(on))),
        guard_drops,
        verdicts_error,
        time_to_mitigate_s: ttm,
        max_device_stage: max_dev,
        max_cell_stage: if r.mode == Mode::NaiveCellCap { 1 } else { max_cell },
        max_host_stage: max_host,
        guard_cpu_s: r.guard_cpu_s,
        guard_cpu_pct: cpu_pct,
        unsent: r.unsent,
        scheduled_by_class: [0, 1].map(|k| r.scheduled.iter().map(|c| c[k]).sum()),
        unsent_by_class: [0, 1].map(|k| {
            let scheduled: u64 = r.scheduled.iter().map(|c| c[k]).sum();
            scheduled.saturating_sub(r.sent.iter().map(|c| c[k]).sum())
        }),
        sink_kernel_drops: r.sink_kernel_drops,
        benign_later_sent: bl_sent,
        benign_later_delivered: bl_del,
        echo_paths,
        populations,
        new_devices,
        // Unread counters are no counters: a read error must not look like zero drops.
        verdicts: r.dataplane.as_ref().filter(|d| d.verdicts_error.is_none()).map(|d| d.verdicts.clone()),
        echo_requests_sent: echo_of(&r.device_sent),
        echo_requests_delivered: echo_of(&r.device_delivered),
        forged,
    }
}

pub(super) fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{:.2}%", 100.0 * x))
}
