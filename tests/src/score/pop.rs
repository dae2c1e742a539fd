//! Per-population scores and the `[[expect.population]]` checks: a population's frames (and, for
//! populations of one packet size, its T-PDU octets) sent and delivered, from the onset plus the
//! grace period on, from its first quarantine on, and why the engine staged its devices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::evidence::{self, Window};
use super::{pct, ratio, Scores};
use crate::population::{Plan, SLOTS_PER_SEC};
use crate::scenario::{Expect, RunResult};

/// One population's traffic in one run: `[whole or first fragments, later fragments]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PopScore {
    pub name: String,
    pub devices: usize,
    pub sent: [u64; 2],
    pub delivered: [u64; 2],
    /// From onset + grace to the end.
    pub from_s: f64,
    pub sent_after: [u64; 2],
    pub delivered_after: [u64; 2],
    /// First time any of its devices was set to quarantine (audit log), and the frames from
    /// the slot it falls in on.
    pub quarantined_at_s: Option<f64>,
    pub sent_quarantined: [u64; 2],
    pub delivered_quarantined: [u64; 2],
    /// The octets of each of its T-PDUs (the inner packet, what a byte limit counts: TS 29.281
    /// §5.1), when every frame it sends has the same: plain IPv4 G-PDU sessions of one payload
    /// size, never fragmented. `None` otherwise (then no octet check is possible).
    #[serde(default)]
    pub tpdu_octets: Option<u64>,
    /// The run's length (the end of the last slot), for rates from `from_s` on.
    #[serde(default)]
    pub end_s: f64,
    /// Its devices the engine staged (a non-exempt `set_device_stage` above observe in the audit
    /// log), by the reason of each device's first such decision.
    #[serde(default)]
    pub staged_by_reason: BTreeMap<String, usize>,
    /// Its devices send outer IP fragments (the plan's `fragment`): later fragments are due.
    #[serde(default)]
    pub fragments: bool,
    /// Frames scheduled from onset + grace on (sent + unsent).
    #[serde(default)]
    pub scheduled_after: [u64; 2],
    /// Its frames from the onset to its first stage (`None`: no whole slot between them).
    #[serde(default)]
    pub before_stage: Option<Window>,
}

impl PopScore {
    /// T-PDU octets sent and delivered from onset + grace on.
    pub fn octets_after(&self) -> Option<(u64, u64)> {
        self.tpdu_octets.map(|o| (self.sent_after[0] * o, self.delivered_after[0] * o))
    }
}

/// Dropped fraction of `sent` given `delivered`, per kind.
pub(super) fn dropped2(sent: [u64; 2], delivered: [u64; 2]) -> [Option<f64>; 2] {
    [0, 1].map(|k| ratio(sent[k] - delivered[k].min(sent[k]), sent[k]))
}

fn frames_detail(what: &str, sent: [u64; 2], delivered: [u64; 2]) -> String {
    let d = dropped2(sent, delivered);
    let mut s = format!("{what}: {} of {} whole G-PDUs / first fragments / signalling dropped", pct(d[0]), sent[0]);
    if sent[1] > 0 {
        s += &format!(", {} of {} later fragments", pct(d[1]), sent[1]);
    }
    s
}

/// The T-PDU size of a population whose every frame has the same one (see
/// [`PopScore::tpdu_octets`]): inner IPv4 (20) + UDP (8) + payload.
fn tpdu_octets(devs: &[&crate::population::Device]) -> Option<u64> {
    let first = devs.first()?;
    let same = devs
        .iter()
        .all(|d| d.edge.is_none() && d.session.is_plain() && d.fragment <= 0.0 && d.payload == first.payload);
    same.then_some(20 + 8 + first.payload as u64)
}

/// Every population's score; `on_slot` and `g_slot` are the slots of the onset and of onset +
/// grace (the end when there is no onset), `slot_at` the slot of a time.
pub(super) fn populations(
    plan: &Plan,
    r: &RunResult,
    on_slot: usize,
    g_slot: usize,
    slot_at: impl Fn(f64) -> usize,
) -> Vec<PopScore> {
    let mut populations = Vec::new();
    // Each staged device's first reason (audit order is time order).
    let mut first_reason: BTreeMap<usize, &str> = BTreeMap::new();
    for a in r.audit.iter().filter(|a| a.action == "set_device_stage" && !a.exempt && a.stage.unwrap_or(0) > 0) {
        if let Some(d) = r.device_of_target(plan, &a.target) {
            first_reason.entry(d).or_insert(a.reason.as_str());
        }
    }
    for (name, sent) in &r.pop_sent {
        let del = r.pop_delivered.get(name);
        let devs: Vec<&crate::population::Device> = plan.devices.iter().filter(|d| &d.population == name).collect();
        let q_at = r
            .audit
            .iter()
            .filter(|a| a.action == "set_device_stage" && !a.exempt && a.stage == Some(3))
            .filter(|a| r.device_of_target(plan, &a.target).is_some_and(|i| &plan.devices[i].population == name))
            .map(|a| a.t_s)
            .filter(|t| t.is_finite())
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))));
        let sum = |from: usize| {
            let (mut s2, mut d2) = ([0u64; 2], [0u64; 2]);
            for (i, si) in sent.iter().enumerate().skip(from) {
                let di = del.and_then(|d| d.get(i)).copied().unwrap_or([0; 2]);
                for k in 0..2 {
                    s2[k] += si[k];
                    d2[k] += di[k];
                }
            }
            (s2, [d2[0].min(s2[0]), d2[1].min(s2[1])])
        };
        let (all_s, all_d) = sum(0);
        let (aft_s, aft_d) = sum(g_slot);
        let (q_s, q_d) = q_at.map_or(([0; 2], [0; 2]), |t| sum(slot_at(t.max(0.0))));
        let scheduled_after = r
            .pop_scheduled
            .get(name)
            .map_or([0; 2], |v| v.iter().skip(g_slot).fold([0; 2], |a, c| [a[0] + c[0], a[1] + c[1]]));
        let first = evidence::first_stage(plan, r, |d| &plan.devices[d].population == name);
        let before_stage = evidence::window(on_slot.min(sent.len()), evidence::stage_slot(first, sent.len()), |i| {
            (sent[i], del.and_then(|d| d.get(i)).copied().unwrap_or([0; 2]))
        });
        let mut staged_by_reason = BTreeMap::new();
        for d in &devs {
            if let Some(reason) = first_reason.get(&d.idx) {
                *staged_by_reason.entry((*reason).to_owned()).or_insert(0) += 1;
            }
        }
        populations.push(PopScore {
            name: name.clone(),
            devices: devs.len(),
            sent: all_s,
            delivered: all_d,
            from_s: g_slot as f64 / SLOTS_PER_SEC as f64,
            sent_after: aft_s,
            delivered_after: aft_d,
            quarantined_at_s: q_at,
            sent_quarantined: q_s,
            delivered_quarantined: q_d,
            tpdu_octets: tpdu_octets(&devs),
            end_s: sent.len() as f64 / SLOTS_PER_SEC as f64,
            staged_by_reason,
            fragments: devs.iter().any(|d| d.edge.is_none() && d.fragment > 0.0),
            scheduled_after,
            before_stage,
        });
    }
    populations
}

/// The `[[expect.population]]` checks on the guard run.
pub(super) fn checks(e: &Expect, guard: &Scores, push: &mut impl FnMut(String, bool, String)) {
    for pe in &e.population {
        let Some(ps) = guard.populations.iter().find(|p| p.name == pe.name) else {
            push(format!("population {}", pe.name), false, "no such population sent anything".into());
            continue;
        };
        if let Some(min) = pe.delivered {
            let ok = (0..2).all(|k| ratio(ps.delivered[k], ps.sent[k]).is_none_or(|x| x >= min))
                && ps.sent[0] + ps.sent[1] > 0;
            push(
                format!("{}: >= {:.0}% delivered", pe.name, 100.0 * min),
                ok,
                format!(
                    "{} of {} frames delivered ({} of {} later fragments)",
                    ps.delivered[0] + ps.delivered[1],
                    ps.sent[0] + ps.sent[1],
                    ps.delivered[1],
                    ps.sent[1]
                ),
            );
        }
        // Whole G-PDUs and first fragments always; later fragments where its devices fragment,
        // and then some must have been sent (none sent is not "all dropped").
        let kinds = if ps.fragments { 2 } else { 1 };
        let kinds_name = if ps.fragments { "first and later fragments" } else { "whole G-PDUs" };
        if let Some(min) = pe.dropped {
            let d = dropped2(ps.sent_after, ps.delivered_after);
            let ratios = (0..kinds).all(|k| d[k].is_some_and(|x| x >= min)) && (ps.fragments || ps.sent_after[1] == 0);
            let (acct, acct_s) = evidence::drops_accounted(guard);
            let (seen, seen_s) = evidence::seen_before_stage(ps.before_stage.as_ref(), kinds);
            let (sent, sent_s) = evidence::sent_as_scheduled(
                ps.sent_after[0] + ps.sent_after[1],
                ps.scheduled_after[0] + ps.scheduled_after[1],
            );
            push(
                format!(
                    "{}: >= {:.0}% dropped by the guard from onset + {:.0} s, {kinds_name} (its drop verdicts account for the loss, the flood seen before its first stage, >= {:.0}% of it sent)",
                    pe.name,
                    100.0 * min,
                    guard.grace_s,
                    100.0 * evidence::MIN_SENT_SHARE
                ),
                ratios && acct && seen && sent,
                format!(
                    "{}; {acct_s}; {seen_s}; from {:.1} s {sent_s}",
                    frames_detail(&format!("from {:.1} s", ps.from_s), ps.sent_after, ps.delivered_after),
                    ps.from_s
                ),
            );
        }
        if let Some(min) = pe.octets_dropped {
            let (ok, detail) = match ps.octets_after() {
                Some((sent, delivered)) if sent > 0 => {
                    let got = ratio(sent - delivered.min(sent), sent);
                    let span = (ps.end_s - ps.from_s).max(0.1);
                    let per_dev = |o: u64| 8.0 * o as f64 / span / ps.devices.max(1) as f64 / 1e3;
                    (
                        got.is_some_and(|x| x >= min),
                        format!(
                            "from {:.1} s: {} of {sent} T-PDU octets dropped ({}-octet T-PDUs); per device {:.1} kbit/s offered, {:.1} kbit/s delivered",
                            ps.from_s,
                            pct(got),
                            ps.tpdu_octets.unwrap_or(0),
                            per_dev(sent),
                            per_dev(delivered)
                        ),
                    )
                }
                Some(_) => (false, format!("nothing sent from {:.1} s on", ps.from_s)),
                None => (false, "its frames differ in size (or are fragmented): no octet count".into()),
            };
            push(
                format!(
                    "{}: >= {:.0}% of its T-PDU octets dropped from onset + {:.0} s",
                    pe.name,
                    100.0 * min,
                    guard.grace_s
                ),
                ok,
                detail,
            );
        }
        if let Some(want) = &pe.staged_reason {
            let n = ps.staged_by_reason.get(want).copied().unwrap_or(0);
            push(
                format!("{}: every device staged, for {want}", pe.name),
                n == ps.devices && ps.devices > 0,
                format!(
                    "{n} of {} devices staged for {want}; first reasons of all staged: {:?}",
                    ps.devices, ps.staged_by_reason
                ),
            );
        }
        if pe.quarantined {
            let min = pe.dropped.unwrap_or(e.attack_dropped);
            let (ok, detail) = match ps.quarantined_at_s {
                Some(t) => {
                    // Traffic while quarantined must exist to have been dropped.
                    let d = dropped2(ps.sent_quarantined, ps.delivered_quarantined);
                    let ok = (0..kinds).all(|k| d[k].is_some_and(|x| x >= min));
                    (
                        ok,
                        frames_detail(
                            &format!("quarantined at {t:.1} s; from then"),
                            ps.sent_quarantined,
                            ps.delivered_quarantined,
                        ),
                    )
                }
                None => (false, "never quarantined".into()),
            };
            push(
                format!(
                    "{}: quarantined, and >= {:.0}% of its traffic ({kinds_name}) dropped while quarantined",
                    pe.name,
                    100.0 * min
                ),
                ok,
                detail,
            );
        }
    }
}
