//! Per-packet decisions that do not touch maps, in the programs' own terms: [`n3`] for `guard_n3`
//! (GTP-U), [`n2`] for `guard_n2` (SCTP). The XDP programs do the map lookups and call these;
//! host tests call them directly. What both share lives here.

use crate::abi::{Limit, STAGE_OBSERVE};

pub mod n2;
pub mod n3;

// `guard_common::policy::X` names N3's decisions too, as it did before they moved to `n3`
// (guard-ebpf and the tests use that path).
pub use n3::*;

/// How one protection treats a packet it would drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Not configured: do not even compute it.
    Off,
    /// Count "would drop" and pass.
    Shadow,
    Enforce,
}

/// Whether a device (N3) or peer (N2) over its limit asks for an event now, its last one sent at
/// `last_event_ns` (0: never): at most one event per gap, the gap starting at an event *sent*.
/// The caller sets `last_event_ns` only when the budget admitted the event, so a device the
/// budget refused asks again with its next packet over the limit (had it waited a whole gap, the
/// devices of a synchronised storm would ask in clumps once a gap, and the budget, refilled while
/// nobody asks and capped at its burst, would report about one burst a gap).
#[inline(always)]
pub fn event_due(last_event_ns: u64, now: u64, gap_ns: u64) -> bool {
    last_event_ns == 0 || now.wrapping_sub(last_event_ns) >= gap_ns
}

/// The claim on the per-CPU event budget (`event_rate`) of an event from a device at `stage`.
/// Unstaged: the whole budget, as its events are what gets it pinned (the controller confirms a
/// flood from a run of readings, and between walks the events are the readings). Staged
/// (contained): only while more than half the budget is left ([`Limit::half_burst`]), so under a
/// storm the floods not yet pinned are reported first, and a mass of contained devices that keep
/// sending (a quarantined botnet) cannot spend the budget that reports new ones.
#[inline(always)]
pub fn event_budget(event_rate: &Limit, stage: u32) -> Limit {
    if stage == STAGE_OBSERVE {
        *event_rate
    } else {
        event_rate.half_burst()
    }
}

#[cfg(test)]
mod tests {
    use super::{event_budget, event_due};
    use crate::abi::{Limit, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE};

    #[test]
    fn an_event_is_due_once_a_gap_after_the_last_one_sent() {
        let gap = 1_000;
        assert!(event_due(0, 5, gap), "never sent");
        assert!(!event_due(10, 10, gap));
        assert!(!event_due(10, 1_009, gap), "within the gap");
        assert!(event_due(10, 1_010, gap), "the gap has passed");
        assert!(event_due(10, 5, gap), "a clock behind the event (another CPU's) reads as a long age, as before");
        assert!(!event_due(1, u64::MAX, u64::MAX), "a gap of u64::MAX never passes");
    }

    #[test]
    fn a_staged_devices_event_claims_half_the_burst() {
        let rate = Limit::per_second(20_000, 2_000);
        assert_eq!(event_budget(&rate, STAGE_OBSERVE), rate);
        for stage in [STAGE_SHAPE, STAGE_QUARANTINE] {
            assert_eq!(event_budget(&rate, stage), rate.half_burst(), "stage {stage}");
        }
    }
}
