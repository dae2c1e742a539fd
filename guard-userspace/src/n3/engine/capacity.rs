//! Last-resort caps per cell (gNB) and per host (DESIGN §2, T4). A cap engages only when, for
//! `capacity.sustain_windows` windows in a row, both hold:
//! - the demand left after device stages (each device's offered rate, capped by its own stage's
//!   allowance) exceeds the level's capacity: device stages are not enough;
//! - at least `min_offenders` distinct devices are under engine stages: the overload is caused by
//!   many devices, not faked by a few.
//!
//! Demand is computed from offered rates and the engine's own stage allowances, not from what
//! passed, so an engaged cap does not hide the demand that justifies it (no flapping).
//!
//! Overload in octets (issue 27): a level with a `capacity_rate` is also judged on its demand in
//! T-PDU bits per second, with the same offender count. A cap that engages (or is refreshed)
//! while the level is over its `capacity_rate` carries the byte rate `cap_rate` beside its packet
//! rate; one that engages for packets alone is a packet cap, as before.

use std::collections::HashMap;

use guard_common::abi::{ByteLimit, CellKey, Limit};

use super::decision::{Decision, Evidence, Reason};
use crate::config::{CapLevel, Config};

/// Aggregates of one cell (or of the host) for one window.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Load {
    pub offered: f64,
    pub demand: f64,
    /// `offered` and `demand` in T-PDU bits per second.
    pub offered_bps: f64,
    pub demand_bps: f64,
    pub offenders: u64,
    pub devices: u64,
}

/// The cap state of one cell or of the host.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CapState {
    pub over_windows: u32,
    pub engaged: bool,
    pub since_ns: u64,
    pub expires_ns: u64,
    pub last_noisy_ns: u64,
    /// The engaged cap is for an overload in octets too: it carries the level's byte rate.
    pub in_bytes: bool,
}

/// Which level a cap is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Level {
    Cell(CellKey),
    Host,
}

/// Advance one level's cap by one window. `share`: the part of the level's cap this member sets
/// (1 alone; a gNB split over the UPFs of a fleet: this member's share of its demand, fleet.rs).
pub(super) fn step(
    cfg: &Config,
    level: Level,
    st: &mut CapState,
    load: &Load,
    share: f64,
    now: u64,
    out: &mut Vec<Decision>,
) {
    let (lvl, reason) = match level {
        Level::Cell(_) => (&cfg.capacity.cell, Reason::CellOverload),
        Level::Host => (&cfg.capacity.host, Reason::HostOverload),
    };
    let many = load.offenders >= u64::from(lvl.min_offenders);
    let over_bytes = !lvl.capacity_rate.is_none() && load.demand_bps > lvl.capacity_rate.bits_per_sec() as f64;
    let noisy = many && (load.demand > lvl.capacity_pps as f64 || over_bytes);
    let bytes_noisy = many && over_bytes;
    if noisy {
        st.over_windows = st.over_windows.saturating_add(1);
        st.last_noisy_ns = now;
    } else {
        st.over_windows = 0;
    }
    let evidence = |st: &CapState| Evidence {
        demand_pps: Some(load.demand),
        offered_pps: Some(load.offered),
        capacity_pps: Some(lvl.capacity_pps as f64),
        demand_bps: (!lvl.capacity_rate.is_none()).then_some(load.demand_bps),
        offered_bps: (!lvl.capacity_rate.is_none()).then_some(load.offered_bps),
        capacity_bps: (!lvl.capacity_rate.is_none()).then_some(lvl.capacity_rate.bits_per_sec() as f64),
        offenders: Some(load.offenders),
        active_devices: Some(load.devices),
        windows: Some(st.over_windows),
        ..Evidence::default()
    };
    if !st.engaged {
        if st.over_windows >= cfg.capacity.sustain_windows {
            st.engaged = true;
            st.in_bytes = bytes_noisy;
            st.since_ns = now;
            st.expires_ns = now.saturating_add(lvl.ttl.0);
            out.push(set(level, lvl, st, share, false, reason, evidence(st)));
        }
        return;
    }
    let quiet_for = now.saturating_sub(st.last_noisy_ns);
    if quiet_for >= lvl.quiet.0 {
        st.engaged = false;
        st.in_bytes = false;
        let mut e = evidence(st);
        e.quiet_s = Some(quiet_for as f64 / 1e9);
        out.push(match level {
            Level::Cell(cell) => Decision::ReleaseCell { cell, reason: Reason::Quiet, evidence: e },
            Level::Host => Decision::ReleaseHost { reason: Reason::Quiet, evidence: e },
        });
    } else if bytes_noisy && !st.in_bytes {
        // Engaged for packets, now over its capacity in octets too: the byte rate joins at once
        // (a fresh entry, both states from zero), not at the next refresh.
        st.in_bytes = true;
        st.expires_ns = now.saturating_add(lvl.ttl.0);
        out.push(set(level, lvl, st, share, true, reason, evidence(st)));
    } else if st.expires_ns.saturating_sub(now) <= lvl.ttl.0 / 2 {
        st.expires_ns = now.saturating_add(lvl.ttl.0);
        out.push(set(level, lvl, st, share, true, reason, evidence(st)));
    }
}

/// The cap decision: the level's packet rate, and its byte rate while the cap is for an overload
/// in octets (`st.in_bytes`, kept until the cap is released so a refresh never lifts it). In a
/// fleet whose members share the gNB, this member's `share` of both (its demand of the fleet's).
fn set(
    level: Level,
    lvl: &CapLevel,
    st: &CapState,
    share: f64,
    refresh: bool,
    reason: Reason,
    evidence: Evidence,
) -> Decision {
    let part = |v: u64| if share >= 1.0 { v } else { ((v as f64 * share).ceil() as u64).clamp(1, v.max(1)) };
    let limit = Limit::per_second(part(lvl.cap_pps), part(lvl.burst));
    let bytes = if st.in_bytes { lvl.cap_bytes_scaled(part) } else { ByteLimit::UNLIMITED };
    match level {
        Level::Cell(cell) => Decision::SetCellCap { cell, limit, bytes, ttl_ns: lvl.ttl.0, refresh, reason, evidence },
        Level::Host => Decision::SetHostCap { limit, bytes, ttl_ns: lvl.ttl.0, refresh, reason, evidence },
    }
}

/// Drop the state of cells that are neither capped nor building up to a cap (bounded memory).
pub(super) fn prune(cells: &mut HashMap<CellKey, CapState>) {
    cells.retain(|_, st| st.engaged || st.over_windows > 0);
}
