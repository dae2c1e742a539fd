//! Evidence that what the sink says was dropped was dropped by the guard: the sink only counts
//! what arrived, so a sender that never sent, or a sink that attributed frames to the wrong
//! device, would read as a perfect drop ratio. The attack-drop checks therefore also require
//!
//! - the guard's own drop verdicts (the sum of `drop_*` in its verdict map) to match the frames
//!   the sink never saw: the attack's loss, give or take the benign loss and a small slack;
//! - the attack to have reached the sink before the guard staged it (the sink saw it at all);
//! - the sender to have sent at least 90% of the attack it scheduled after the grace period.

use serde::{Deserialize, Serialize};

use super::Scores;
use crate::population::{Class, Plan, SLOTS_PER_SEC};
use crate::scenario::RunResult;

/// Frames the guard's drop verdicts may differ from the sink's loss by, beyond the benign loss:
/// this many, plus [`SLACK_SHARE`] of the attack's loss (frames in flight when the counters are
/// read, strays the sink does not attribute).
const SLACK_FRAMES: u64 = 10;
const SLACK_SHARE: f64 = 0.005;
/// Of the attack scheduled from onset + grace on, at least this share must have been sent.
pub const MIN_SENT_SHARE: f64 = 0.90;

/// Frames in the slots from the onset to the first stage (exclusive: only whole slots before it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
    /// `[whole or first fragments, later fragments]` for a population; the run's attack frames
    /// in `[0]` for the run as a whole.
    pub sent: [u64; 2],
    pub delivered: [u64; 2],
}

/// The slots `[from, to)` as a window, or `None` when it is empty (the first stage came within
/// the onset's slot: the attack had no time to reach the sink unstaged).
pub(super) fn window(from: usize, to: usize, count: impl Fn(usize) -> ([u64; 2], [u64; 2])) -> Option<Window> {
    (to > from).then(|| {
        let mut w = Window {
            from_s: from as f64 / SLOTS_PER_SEC as f64,
            to_s: to as f64 / SLOTS_PER_SEC as f64,
            ..Window::default()
        };
        for i in from..to {
            let (s, d) = count(i);
            for k in 0..2 {
                w.sent[k] += s[k];
                w.delivered[k] += d[k].min(s[k]);
            }
        }
        w
    })
}

/// The slot before which a stage at `t_s` (or none: the end) leaves whole slots unstaged.
pub(super) fn stage_slot(t_s: Option<f64>, n: usize) -> usize {
    t_s.map_or(n, |t| ((t.max(0.0) * SLOTS_PER_SEC as f64).floor() as usize).min(n))
}

/// The first time the engine staged a device for which `pick` holds (audit log).
pub(super) fn first_stage(plan: &Plan, r: &RunResult, pick: impl Fn(usize) -> bool) -> Option<f64> {
    r.audit
        .iter()
        .filter(|a| a.action == "set_device_stage" && !a.exempt && a.stage.unwrap_or(0) > 0 && a.t_s.is_finite())
        .filter(|a| r.device_of_target(plan, &a.target).is_some_and(&pick))
        .map(|a| a.t_s)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
}

/// The run's attack frames from the onset to the first stage of an attacking device.
pub(super) fn attack_before_stage(plan: &Plan, r: &RunResult, onset_slot: usize) -> Option<Window> {
    let n = r.sent.len();
    let first = first_stage(plan, r, |d| plan.devices[d].class == Class::Attack);
    window(onset_slot.min(n), stage_slot(first, n), |i| {
        ([r.sent[i][1], 0], [r.delivered.get(i).map_or(0, |c| c[1]), 0])
    })
}

/// The sum of the guard's `drop_*` verdicts, or why there is none.
pub(super) fn guard_drops(r: &RunResult) -> (Option<u64>, Option<String>) {
    match &r.dataplane {
        Some(dp) if dp.verdicts_error.is_none() => {
            (Some(dp.verdicts.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, n)| n).sum()), None)
        }
        Some(dp) => (None, dp.verdicts_error.clone()),
        None => (None, Some("no data-plane counters were read".into())),
    }
}

/// Whether the guard's drop verdicts account for the attack frames the sink never saw, and the
/// numbers.
pub(super) fn drops_accounted(s: &Scores) -> (bool, String) {
    let attack_lost = s.attack_sent - s.attack_delivered;
    let benign_lost = s.benign_sent - s.benign_delivered;
    let Some(d) = s.guard_drops else {
        return (false, format!("the guard's verdicts unread ({})", s.verdicts_error.as_deref().unwrap_or("?")));
    };
    let (ok, slack) = accounted(d, attack_lost, benign_lost);
    (
        ok,
        format!(
            "the guard's drop verdicts {d} {} the {attack_lost} attack frames the sink never saw (+ {benign_lost} benign, slack {slack})",
            if ok { "account for" } else { "do NOT account for" }
        ),
    )
}

/// Whether `drops` verdicts account for `attack_lost` frames, given `benign_lost`; and the slack.
fn accounted(drops: u64, attack_lost: u64, benign_lost: u64) -> (bool, u64) {
    let slack = SLACK_FRAMES + (attack_lost as f64 * SLACK_SHARE) as u64;
    (attack_lost > 0 && drops + slack >= attack_lost && drops <= attack_lost + benign_lost + slack, slack)
}

/// Whether the attack reached the sink unstaged in `w` (kinds `kinds`), and the words for it.
pub(super) fn seen_before_stage(w: Option<&Window>, kinds: usize) -> (bool, String) {
    match w {
        Some(w) => {
            let ok = (0..kinds).all(|k| w.delivered[k] > 0);
            let later = if kinds > 1 {
                format!(", {} of {} later fragments", w.delivered[1], w.sent[1])
            } else {
                String::new()
            };
            (
                ok,
                format!(
                    "before the first stage ({:.1}-{:.1} s) the sink saw {} of {}{later}",
                    w.from_s, w.to_s, w.delivered[0], w.sent[0]
                ),
            )
        }
        None => (true, "no whole slot between the onset and the first stage".into()),
    }
}

/// Whether at least [`MIN_SENT_SHARE`] of what was scheduled went out, and the words for it.
pub(super) fn sent_as_scheduled(sent: u64, scheduled: u64) -> (bool, String) {
    let ok = scheduled > 0 && sent as f64 >= MIN_SENT_SHARE * scheduled as f64;
    (ok, format!("{sent} of {scheduled} scheduled sent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_must_match_the_loss() {
        assert!(accounted(105_260, 105_260, 0).0, "the lab's usual exact match");
        assert!(accounted(100_000, 100_100, 0).0, "within the slack");
        // A sink that lost or misattributed frames the guard never dropped.
        assert!(!accounted(0, 100_000, 0).0);
        assert!(!accounted(90_000, 100_000, 0).0);
        // More dropped than the sink missed: the sink counted frames the guard dropped.
        assert!(!accounted(120_000, 100_000, 0).0);
        assert!(accounted(120_000, 100_000, 20_000).0, "benign loss explains the rest");
        assert!(!accounted(0, 0, 0).0, "no attack loss is no evidence");
    }

    #[test]
    fn an_unseen_attack_or_a_short_sender_fails() {
        let w = |d: [u64; 2]| Window { from_s: 8.0, to_s: 8.8, sent: [100, 100], delivered: d };
        assert!(seen_before_stage(Some(&w([5, 0])), 1).0);
        assert!(!seen_before_stage(Some(&w([0, 0])), 1).0);
        assert!(!seen_before_stage(Some(&w([5, 0])), 2).0, "later fragments unseen");
        assert!(seen_before_stage(None, 2).0, "no whole slot before the first stage");
        assert!(sent_as_scheduled(90, 100).0);
        assert!(!sent_as_scheduled(89, 100).0);
        assert!(!sent_as_scheduled(0, 0).0, "nothing scheduled is nothing shown");
    }

    #[test]
    fn the_window_is_the_whole_slots_before_the_stage() {
        assert_eq!(stage_slot(Some(8.85), 200), 88);
        assert_eq!(stage_slot(None, 200), 200);
        assert!(window(80, 80, |_| ([1, 0], [1, 0])).is_none());
        let w = window(80, 88, |_| ([10, 2], [12, 1])).expect("a window");
        assert_eq!((w.sent, w.delivered), ([80, 16], [80, 8]), "delivered capped at sent per slot");
    }
}
