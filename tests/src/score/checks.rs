//! The acceptance checks of one N3 scenario (issue 4), from its `[expect]`, on the guard run and
//! the naive run beside it.

use serde::{Deserialize, Serialize};

use super::{evidence, pct, pop, ratio, Forged, Scores};
use crate::scenario::Scenario;

/// One acceptance check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Check {
    pub scenario: String,
    pub criterion: String,
    pub pass: bool,
    pub detail: String,
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
            format!(
                "{} ({} of {} packets{})",
                pct(guard.benign_delivery),
                guard.benign_delivered,
                guard.benign_sent,
                if guard.benign_later_sent > 0 {
                    format!(
                        "; of them later fragments of fragmented G-PDUs: {} of {}",
                        guard.benign_later_delivered, guard.benign_later_sent
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
    if e.echo_paths_up {
        let (pass, detail) = match &guard.echo_paths {
            Some(p) => (
                p.sent > 0 && p.delivered == p.sent,
                format!(
                    "{} of {} real Echo Requests passed on {} paths; {} paths declared down (every request of a round dropped), {} lost at least one",
                    p.delivered, p.sent, p.paths, p.down, p.lossy
                ),
            ),
            None => (false, "the scenario has no echo_path population".into()),
        };
        push("every real Echo Request passed (0 paths declared down)".into(), pass, detail);
    }
    if e.no_echo_dropped {
        let (pass, detail) = match &guard.verdicts {
            Some(v) => {
                let n = v.get("drop_echo").copied().unwrap_or(0);
                let offered = guard.echo_requests_sent;
                (
                    n == 0,
                    format!(
                        "the data plane dropped {n} Echo Requests (verdict drop_echo) of {offered} sent in the run (real and forged), all under dataplane.echo_host"
                    ),
                )
            }
            None => (false, "no data-plane counters were read".into()),
        };
        push("no Echo Request dropped under the host's Echo rate".into(), pass, detail);
    }
    if e.forged_dropped.is_some() || e.spoof_drops_only_forged {
        let f = guard.forged.clone().unwrap_or(Forged {
            sent: 0,
            delivered: 0,
            drop_spoof: None,
            flagged_forgers: 0,
            flagged_others: Vec::new(),
        });
        let dropped = f.sent - f.delivered;
        let benign_dropped = guard.benign_sent - guard.benign_delivered;
        if let Some(min) = e.forged_dropped {
            let got = ratio(dropped, f.sent);
            push(
                format!(">= {:.0}% of forged inner sources dropped", 100.0 * min),
                got.is_some_and(|x| x >= min),
                format!(
                    "forged dropped {dropped} of {} ({}), benign dropped {benign_dropped} of {}",
                    f.sent,
                    pct(got),
                    guard.benign_sent
                ),
            );
        }
        if e.spoof_drops_only_forged {
            let n = f.drop_spoof.unwrap_or(0);
            let ok = f.drop_spoof.is_some() && n == dropped && f.sent > 0 && f.flagged_others.is_empty();
            push(
                "anti-spoofing dropped the forged sources and nothing else".into(),
                ok,
                format!(
                    "drop_spoof {} = forged dropped {dropped} (of {} sent); spoof events on {} forging devices and on {} others{}",
                    f.drop_spoof.map_or("n/a".into(), |n| n.to_string()),
                    f.sent,
                    f.flagged_forgers,
                    f.flagged_others.len(),
                    if f.flagged_others.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", f.flagged_others.iter().take(5).cloned().collect::<Vec<_>>().join(", "))
                    }
                ),
            );
        }
    }
    pop::checks(e, guard, &mut push);
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
        let ratio_ok = guard.attack_dropped_after_grace.is_some_and(|x| x >= e.attack_dropped);
        let (acct, acct_s) = evidence::drops_accounted(guard);
        let (seen, seen_s) = evidence::seen_before_stage(guard.attack_before_stage.as_ref(), 1);
        let (sent, sent_s) =
            evidence::sent_as_scheduled(guard.attack_sent_after_grace, guard.attack_scheduled_after_grace);
        push(
            format!(
                ">= {:.0}% of attack traffic dropped by the guard from onset + {within:.0} s (its drop verdicts account for the loss, the attack seen before the first stage, >= {:.0}% of it sent)",
                100.0 * e.attack_dropped,
                100.0 * evidence::MIN_SENT_SHARE
            ),
            ratio_ok && acct && seen && sent,
            format!(
                "{} of {} attack packets sent from {:.1} s on were dropped ({sent_s}); time to mitigate {}; {} dropped overall; {acct_s}; {seen_s}",
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
