//! Bulk (mis)provisioning (T5): a configured device group whose members deviate from the group's
//! profile at once (destinations outside its servers, or a period off by the cohort factor). One
//! member changing is a device problem; many at once is a provisioning event, flagged as such.

use guard_common::abi::DeviceKey;

use super::decision::{Class, Decision, Evidence, Reason};
use super::track::{Track, DEV_DESTINATION, DEV_PERIOD, DEV_VOLUME};
use crate::config::Config;

/// Most member keys listed in one [`Decision::FlagCohort`] (the count is always complete).
const MAX_LISTED: usize = 256;

/// One group's flag.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GroupState {
    pub flagged: bool,
    pub last_cond_ns: u64,
}

/// One group's members in the cohort window.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupCount {
    pub active: u64,
    pub deviating: u64,
    pub destinations: u64,
    pub periods: u64,
    pub volumes: u64,
    pub keys: Vec<DeviceKey>,
}

impl GroupCount {
    pub fn add(&mut self, key: &DeviceKey, t: &Track, now: u64, window_ns: u64) {
        if super::stamp::age_ns(super::stamp::ms(now), t.seen_ms) >= window_ns {
            return;
        }
        self.active += 1;
        if t.deviating(now, window_ns) {
            self.deviating += 1;
            self.destinations += u64::from(t.deviation & DEV_DESTINATION != 0);
            self.periods += u64::from(t.deviation & DEV_PERIOD != 0);
            self.volumes += u64::from(t.deviation & DEV_VOLUME != 0);
            if self.keys.len() < MAX_LISTED {
                self.keys.push(*key);
            }
        }
    }
}

/// Update one group's flag from this window's count; emits the flag and its end.
pub(super) fn step(cfg: &Config, gi: usize, st: &mut GroupState, c: GroupCount, now: u64, out: &mut Vec<Decision>) {
    let Some(g) = cfg.groups.get(gi) else {
        return;
    };
    let co = &cfg.classify.cohort;
    let fraction = if c.active == 0 { 0.0 } else { c.deviating as f64 / c.active as f64 };
    let cond = c.deviating >= u64::from(co.min_members) && fraction >= co.min_fraction;
    let evidence = Evidence {
        group: Some(g.id),
        active_devices: Some(c.active),
        devices: Some(c.deviating),
        fraction: Some(fraction),
        new_destinations: Some(c.destinations),
        period_changes: Some(c.periods),
        volume_changes: Some(c.volumes),
        ..Evidence::default()
    };
    if cond {
        st.last_cond_ns = now;
        if !st.flagged {
            st.flagged = true;
            out.push(Decision::FlagCohort {
                group: g.id,
                name: g.name.clone(),
                devices: c.keys,
                reason: Reason::CohortDeviation,
                evidence,
            });
        }
    } else if st.flagged && now.saturating_sub(st.last_cond_ns) >= co.window.0 {
        st.flagged = false;
        out.push(Decision::Classified { class: Class::Cohort, active: false, reason: Reason::Quiet, evidence });
    }
}
