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

/// The most of its schedule a sender may miss (in either run) for the run to count.
const MAX_UNSENT: f64 = 0.02;
/// The naive run must have offered the same benign traffic as the guard run, within this share.
const SAME_BENIGN: f64 = 0.05;

/// The scenario's acceptance checks, from its `[expect]`, on the guard run (and the naive run for
/// the comparison).
pub fn checks(sc: &Scenario, guard: &Scores, naive: Option<&Scores>) -> Vec<Check> {
    let e = &sc.expect;
    let mut v = Vec::new();
    // The lab shares its CPUs: a sender that fell behind did not offer the traffic the scenario
    // describes, so every result of the run (delivery, drops, timing) is about other traffic.
    let late = |s: &Scores| {
        let scheduled = s.benign_sent + s.attack_sent + s.unsent;
        (scheduled > 0).then(|| s.unsent as f64 / scheduled as f64)
    };
    let (g_late, n_late) = (late(guard), naive.map(late));
    let note = if g_late.is_some_and(|x| x > 0.01) {
        format!(
            "; NOTE: the sender missed {:.1}% of the scheduled packets (machine busy), timing is perturbed",
            100.0 * g_late.unwrap_or(0.0)
        )
    } else {
        String::new()
    };
    let mut push = |criterion: String, pass: bool, detail: String| {
        v.push(Check { scenario: sc.name.clone(), criterion, pass, detail: detail + &note });
    };
    // Either run's whole schedule: the naive run's benign delivery is compared, and its attack
    // is what loads the cell cap.
    let kept = |x: Option<f64>| x.is_some_and(|x| x <= MAX_UNSENT);
    let by_class = |s: &Scores| {
        format!(
            "benign {} of {}, attack {} of {}",
            s.unsent_by_class[0], s.scheduled_by_class[0], s.unsent_by_class[1], s.scheduled_by_class[1]
        )
    };
    push(
        format!("the sender kept its schedule (<= {:.0}% unsent, guard and naive runs)", 100.0 * MAX_UNSENT),
        kept(g_late) && n_late.is_none_or(kept),
        format!(
            "guard run {} unsent ({}){}",
            pct(g_late),
            by_class(guard),
            naive.map_or(String::new(), |n| format!("; naive run {} unsent ({})", pct(n_late.flatten()), by_class(n)))
        ),
    );
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
        // Judged by the sink (every Echo Request sent arrived); the guard's `drop_echo` must say
        // the same, and unread counters fail.
        let (sent, got) = (guard.echo_requests_sent, guard.echo_requests_delivered);
        let (pass, detail) = match &guard.verdicts {
            Some(v) => {
                let n = v.get("drop_echo").copied().unwrap_or(0);
                (
                    sent > 0 && got == sent && n == 0,
                    format!(
                        "the sink saw {got} of {sent} Echo Requests sent in the run (real and forged), all under dataplane.echo_host; the data plane's drop_echo {n}"
                    ),
                )
            }
            None => (
                false,
                format!(
                    "the sink saw {got} of {sent}; the data plane's counters were not read ({})",
                    guard.verdicts_error.as_deref().unwrap_or("no data plane")
                ),
            ),
        };
        push("no Echo Request dropped under the host's Echo rate (sink and drop_echo)".into(), pass, detail);
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
    // "Nothing staged" means something only if the audit log was read and it shows the engine
    // at work: every attacking session staged (scenarios with such attackers).
    let engine_seen = guard.audit_found && guard.attack_sessions_staged == guard.attack_sessions;
    let engine_s = format!(
        "audit log {}; {} of {} attacking sessions staged",
        if guard.audit_found { "read" } else { "MISSING" },
        guard.attack_sessions_staged,
        guard.attack_sessions
    );
    if e.no_benign_staged {
        push(
            "no benign device staged (audit log read, every attacking session staged)".into(),
            guard.benign_staged.is_empty() && engine_seen,
            if guard.benign_staged.is_empty() {
                format!("0 of {} benign devices; {engine_s}", guard.benign_devices)
            } else {
                format!(
                    "{} staged: {}; {engine_s}",
                    guard.benign_staged.len(),
                    guard.benign_staged.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )
            },
        );
    }
    if e.no_cell_or_host_stage {
        push(
            "no cell or host stage raised (audit log read, every attacking session staged)".into(),
            guard.max_cell_stage == 0 && guard.max_host_stage == 0 && engine_seen,
            format!("max cell stage {}, max host stage {}; {engine_s}", guard.max_cell_stage, guard.max_host_stage),
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
        // Both deliveries measured, on the same benign traffic: a naive run that sent no benign
        // traffic has no delivery to be worse with.
        let same = n.benign_sent > 0
            && (n.benign_sent as f64 - guard.benign_sent as f64).abs() <= SAME_BENIGN * guard.benign_sent as f64;
        let worse = matches!((guard.benign_delivery, n.benign_delivery), (Some(g), Some(nv)) if g - nv >= by);
        push(
            format!(
                "naive cell cap visibly worse for benign devices (by >= {:.0} points, on the same benign traffic ±{:.0}%)",
                100.0 * by,
                100.0 * SAME_BENIGN
            ),
            same && worse,
            format!(
                "benign delivery: guard {} of {} sent, naive cell cap {} of {} sent",
                pct(guard.benign_delivery),
                guard.benign_sent,
                pct(n.benign_delivery),
                n.benign_sent
            ),
        );
    }
    v
}
