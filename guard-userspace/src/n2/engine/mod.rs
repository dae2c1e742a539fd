//! The N2 signalling-storm controller: per-cell and per-device access attempts in (cumulative
//! counters of `N2_CELLS` / `N2_DEVICES`), a graduated, 3GPP-native response out. Threat T2 of
//! DESIGN §1: a regional registration storm from infected devices, told apart from a natural
//! flash crowd.
//!
//! Pure and deterministic like [`crate::n3::engine`]: no I/O, no clock; every call takes `now_ns`
//! (CLOCK_MONOTONIC). The caller samples the maps, calls [`N2Engine::tick`], sends each returned
//! [`Response`] through the [`hook`] and writes it (and each [`N2Transition`]) to the audit log.
//!
//! Why the response is not an XDP drop (DESIGN §2): InitialUEMessages travel in DATA chunks of a
//! live SCTP association; dropping them sheds no load (SCTP retransmits) and stalls every UE on that
//! gNB. The answer is what 3GPP gives the core for this, requested from the AMF / OAM through the
//! hook, in increasing severity (each level needs evidence the milder one did not work):
//! 1. **devices**: the list of offending devices (5G-S-TMSI / S-TMSI) for the AMF to reject with
//!    5GMM cause #22 and a T3346 back-off (TS 24.501 §5.5.1.2.5, §5.6.1.5) — only those devices;
//! 2. **barring**: + unified access control barring per affected cell (TS 22.261 §6.22,
//!    TS 38.331 `UAC-BarringInfoSet`), on access categories used by IoT signalling, never on
//!    emergency / MPS / MCS;
//! 3. **overload**: + NGAP OVERLOAD START (TS 38.413 §8.7.6) towards the affected gNBs only, with
//!    an AMF Traffic Load Reduction Indication (§9.3.1.106, 1..99 %) and overload action
//!    "reject RRC connection establishments for signalling" (§9.3.1.105); OVERLOAD STOP (§8.7.7)
//!    when the storm has ended.
//!
//! Detection (see `docs/n2.md` for the reasoning and the numbers): a cell is *hot* when its
//! InitialUEMessage rate is well above its learned baseline. Over the hot cells, a storm is T2
//! when it is **concentrated** (most attempts come from devices that retry again and again inside
//! the device window), **consistent** (the same repeaters from one window to the next) and
//! **persistent** (for `persist_windows`). A flash crowd is the opposite: many distinct devices,
//! about one attempt each, a churning population; it is reported and left to the AMF's own
//! overload control.
//!
//! A storm of SUCI-only registrations (no 5G-S-TMSI, no 5G-GUTI: a cohort misprovisioned by a
//! re-flash, devices that discard their GUTI) has no identity that lasts beyond one connection, so
//! it has no repeaters and looks like a crowd by devices. It is attributed **by cell and by
//! pattern** instead: a hot cell whose attempts are mostly SUCI-only, far above the share it
//! learned when not hot (`Attribution::CellPattern`, docs/n2.md §4.6). The ladder then acts on
//! those cells alone, with a pattern back-off at level 1 in place of the device list.

mod fleet;
mod fleet_devices;
#[cfg(test)]
mod fleet_devices_tests;
#[cfg(test)]
mod fleet_tests;
#[cfg(test)]
mod fleet_warmup_tests;
pub mod known_gnbs;
mod ladder;
#[cfg(test)]
mod ladder_tests;
mod response;
mod samples;
pub mod setup;
#[cfg(test)]
mod tests;
mod track;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use guard_common::abi::{L3Addr, FAMILY_IPV4, FAMILY_IPV6};
use guard_common::abi_n2::{
    N2CellKey, N2CellState, N2DeviceKey, N2DeviceState, CELL_KIND_EUTRA, CELL_KIND_NR, N2_DEV_KIND_5G_S_TMSI,
    N2_DEV_KIND_RAN_UE_V4, N2_DEV_KIND_RAN_UE_V6, N2_DEV_KIND_S_TMSI, RRC_CAUSE_SLOTS,
};
use serde::Serialize;

use crate::addr::addr_str;

pub use crate::config::n2::{N2Settings, SettingsError};
pub use fleet::{FleetCell, FleetCells, HotCell};
pub use fleet_devices::{shareable, FleetBackoff, FleetDevice, FleetOrigin};
pub use response::*;
pub use samples::*;
use track::*;

const NS: f64 = 1e9;

/// The N2 storm controller. See the module documentation for the calling protocol.
#[derive(Debug)]
pub struct N2Engine {
    s: N2Settings,
    cells: HashMap<N2CellKey, CellTrack>,
    devices: HashMap<N2DeviceKey, DeviceTrack>,
    class: StormClass,
    /// Repeater sets, taken once per device window: `snap_prev` is one to two windows old.
    snap_cur: HashSet<N2DeviceKey>,
    snap_prev: HashSet<N2DeviceKey>,
    snap_at: Option<u64>,
    t2_streak: u32,
    quiet_streak: u32,
    level: u8,
    level_since_windows: u32,
    level_entry_rate: f64,
    /// Cells that were hot while a level was in force: the response's scope until level 0.
    affected: BTreeSet<N2CellKey>,
    /// The affected cells attributed by pattern, and who the level in force is pinned on.
    affected_pattern: BTreeSet<N2CellKey>,
    attribution: Attribution,
    reduction: u8,
    last_sent_ns: u64,
    last_scope: (Vec<String>, u8),
    seq: u64,
    last_evidence: StormEvidence,
    last_tick_ns: u64,
    /// The other members' view of the cells (fleet mode); empty: local only.
    fleet: FleetCells,
    /// The others' device back-off lists and the operators' 5G-S-TMSI pins (fleet_devices.rs).
    fleet_backoff: FleetBackoff,
    /// The fleet devices in the response in force (a change is a reason to send one).
    fleet_advised: BTreeSet<N2DeviceKey>,
    /// This member's own listed devices in the response in force, with their T3346.
    own_listed: Vec<(N2DeviceKey, u32)>,
    /// Tests only: warm up as before the fleet's hold (fleet_warmup_tests.rs shows the miss).
    #[cfg(test)]
    legacy_warmup: bool,
}

impl N2Engine {
    /// `s` must have passed [`N2Settings::validate`].
    pub fn new(s: &N2Settings) -> Self {
        N2Engine {
            s: s.clone(),
            cells: HashMap::new(),
            devices: HashMap::new(),
            class: StormClass::None,
            snap_cur: HashSet::new(),
            snap_prev: HashSet::new(),
            snap_at: None,
            t2_streak: 0,
            quiet_streak: 0,
            level: LEVEL_NONE,
            level_since_windows: 0,
            level_entry_rate: 0.0,
            affected: BTreeSet::new(),
            affected_pattern: BTreeSet::new(),
            attribution: Attribution::None,
            reduction: 0,
            last_sent_ns: 0,
            last_scope: (Vec::new(), 0),
            seq: 0,
            last_evidence: StormEvidence::default(),
            last_tick_ns: 0,
            fleet: FleetCells::new(),
            fleet_backoff: FleetBackoff::new(),
            fleet_advised: BTreeSet::new(),
            own_listed: Vec::new(),
            #[cfg(test)]
            legacy_warmup: false,
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn class(&self) -> StormClass {
        self.class
    }

    pub fn status(&self) -> N2Status {
        N2Status {
            level: self.level,
            class: self.class,
            hot_cells: self.last_evidence.hot_cells,
            affected_cells: self.affected.len() as u64,
            repeaters: self.last_evidence.repeaters,
            reduction_pct: self.reduction,
            region_rate_per_s: self.last_evidence.region_rate_per_s,
            tracked_cells: self.cells.len() as u64,
            tracked_devices: self.devices.len() as u64,
        }
    }

    /// One window: fold in the cumulative counters read this tick, classify, step the ladder.
    pub fn tick(&mut self, now_ns: u64, cells: &[CellSample], devices: &[DeviceSample]) -> TickOutput {
        let mut out = TickOutput::default();
        self.fold_cells(now_ns, cells);
        self.fold_devices(now_ns, devices);
        self.last_tick_ns = now_ns;

        let (class, ev, repeaters) = self.classify();
        if class != self.class {
            out.transitions.push(N2Transition { at_ns: now_ns, from: self.class, to: class, evidence: ev.clone() });
            self.class = class;
        }
        let t2 = class == StormClass::RegistrationStorm;
        if t2 {
            self.t2_streak += 1;
            self.quiet_streak = 0;
        } else {
            self.t2_streak = 0;
            self.quiet_streak += 1;
        }
        let mut ev = ev;
        ev.t2_windows = self.t2_streak;
        self.last_evidence = ev.clone();
        let window = (self.s.device_window_s * NS) as u64;
        if self.snap_at.is_none_or(|at| now_ns.saturating_sub(at) >= window) {
            self.snap_prev = std::mem::take(&mut self.snap_cur);
            self.snap_cur = repeaters.iter().copied().collect();
            self.snap_at = Some(now_ns);
        }
        self.step_ladder(now_ns, t2, &ev, &repeaters, &mut out);
        self.learn_baselines(now_ns);
        self.prune(now_ns);
        out
    }

    fn fold_cells(&mut self, now: u64, cells: &[CellSample]) {
        for c in cells {
            if !self.cells.contains_key(&c.key) && self.cells.len() >= self.s.max_cells {
                continue;
            }
            let t = self.cells.entry(c.key).or_default();
            t.peer = c.peer;
            t.tac = c.tac;
            if t.primed && now > t.last_at {
                let d = c.initial_ue.saturating_sub(t.last_count) as f64;
                t.dt_s = (now - t.last_at) as f64 / NS;
                t.raw = d / t.dt_s;
                let a = 1.0 - (-t.dt_s / self.s.rate_smoothing_s).exp();
                t.rate += a * (t.raw - t.rate);
                let ds = c.suci_only.saturating_sub(t.suci_last);
                t.suci_raw = ds as f64 / t.dt_s;
                t.suci_rate += a * (t.suci_raw - t.suci_rate);
                if ds > 0 {
                    let mut by = [0u32; RRC_CAUSE_SLOTS];
                    for (i, b) in by.iter_mut().enumerate() {
                        *b = c.suci_causes[i].wrapping_sub(t.causes_last[i]);
                    }
                    t.suci_recent.push_back((now, ds, by));
                    t.suci_in_window += ds;
                }
            } else {
                t.raw = 0.0;
                t.dt_s = 0.0;
                t.suci_raw = 0.0;
            }
            t.primed = true;
            t.last_at = now;
            t.last_count = c.initial_ue;
            t.suci_last = c.suci_only;
            t.causes_last = c.suci_causes;
        }
        // Cells not read this tick (evicted from the LRU map): no attempts.
        for t in self.cells.values_mut().filter(|t| t.last_at != now) {
            t.raw = 0.0;
            t.rate = 0.0;
            t.suci_raw = 0.0;
            t.suci_rate = 0.0;
        }
        let s = &self.s;
        let window = (s.device_window_s * NS) as u64;
        let fleet = &self.fleet;
        for (k, t) in self.cells.iter_mut() {
            while let Some(&(at, n, _)) = t.suci_recent.front() {
                if now.saturating_sub(at) < window {
                    break;
                }
                t.suci_recent.pop_front();
                t.suci_in_window = t.suci_in_window.saturating_sub(n);
            }
            let base = t.baseline_or_prior(s);
            let local_hot = t.rate >= s.cell_min_rate && t.rate >= s.cell_ratio * base;
            // A storm split over an AMF set: hot by the fleet's sums (fleet.rs); without fleet
            // input this is false and the local judgement stands alone.
            t.fleet_hot = Self::judge_with_fleet(s, fleet, k, t) && !local_hot;
            t.warm_hold = Self::holds_warmup(s, fleet, k, t);
            t.hot = local_hot || t.fleet_hot;
            let share = t.suci_share();
            t.pattern = t.hot && share >= s.suci_share && share >= s.suci_share_ratio * t.suci_base_share;
        }
    }

    fn fold_devices(&mut self, now: u64, devices: &[DeviceSample]) {
        let window = (self.s.device_window_s * NS) as u64;
        for d in devices {
            if !self.devices.contains_key(&d.key) && self.devices.len() >= self.s.max_devices {
                self.evict_devices();
                if self.devices.len() >= self.s.max_devices {
                    continue;
                }
            }
            let t = self.devices.entry(d.key).or_default();
            // A device first seen now made at least one attempt: the map entry exists because of it.
            let delta = if t.primed { d.attempts.saturating_sub(t.last_count) } else { d.attempts.min(1) };
            t.primed = true;
            t.last_count = d.attempts;
            t.cell = d.cell;
            t.peer = d.peer;
            if delta > 0 {
                t.recent.push_back((now, delta));
                t.in_window += delta;
                t.seen_ns = now;
            }
        }
        for t in self.devices.values_mut() {
            while let Some(&(at, n)) = t.recent.front() {
                if now.saturating_sub(at) < window {
                    break;
                }
                t.recent.pop_front();
                t.in_window = t.in_window.saturating_sub(n);
            }
        }
    }

    /// Forget the least recently active eighth of the devices (bounded memory).
    fn evict_devices(&mut self) {
        let mut idle: Vec<(u64, N2DeviceKey)> = self.devices.iter().map(|(k, t)| (t.seen_ns, *k)).collect();
        if idle.is_empty() {
            return;
        }
        let n = (self.s.max_devices / 8).clamp(1, idle.len());
        idle.select_nth_unstable(n - 1);
        for (_, k) in idle.iter().take(n) {
            self.devices.remove(k);
        }
    }

    fn prune(&mut self, now: u64) {
        let window = (self.s.device_window_s * NS) as u64;
        self.devices.retain(|_, t| t.in_window > 0 || now.saturating_sub(t.seen_ns) < 4 * window);
    }

    /// The hot cells whose own attempts this window come mostly from repeaters (at least
    /// `offender_share` of them): the storm's cells. A flash crowd in another hot cell at the
    /// same time (each device once) is not one of them, so it is never barred nor its gNB sent
    /// an overload (NGMN: deny the specific devices, keep serving a natural crowd).
    fn storm_cells(&self) -> BTreeSet<N2CellKey> {
        let s = &self.s;
        let mut per_cell: HashMap<N2CellKey, (u64, u64)> = HashMap::new();
        for t in self.devices.values() {
            if t.in_window == 0 || !self.cells.get(&t.cell).is_some_and(|c| c.hot) {
                continue;
            }
            let e = per_cell.entry(t.cell).or_default();
            e.0 += t.in_window;
            if t.in_window >= u64::from(s.device_repeat) {
                e.1 += t.in_window;
            }
        }
        per_cell
            .into_iter()
            .filter(|(_, (all, rep))| *all > 0 && *rep as f64 >= s.offender_share * *all as f64)
            .map(|(k, _)| k)
            .chain(self.pattern_cells())
            .collect()
    }

    /// The hot cells attributed by pattern (see [`CellTrack::pattern`]).
    fn pattern_cells(&self) -> BTreeSet<N2CellKey> {
        self.cells.iter().filter(|(_, t)| t.pattern).map(|(k, _)| *k).collect()
    }

    /// Classify the hot cells' traffic this window; returns the repeaters (worst first).
    fn classify(&self) -> (StormClass, StormEvidence, Vec<N2DeviceKey>) {
        let s = &self.s;
        let hot: HashSet<&N2CellKey> = self.cells.iter().filter(|(_, t)| t.hot).map(|(k, _)| k).collect();
        let mut ev = StormEvidence { hot_cells: hot.len() as u64, ..StormEvidence::default() };
        if hot.is_empty() {
            return (StormClass::None, ev, Vec::new());
        }
        for k in &hot {
            if let Some(t) = self.cells.get(*k) {
                // The whole cell as the fleet sees it (the others' part is 0 without fleet input).
                ev.region_rate_per_s += t.rate + t.others_rate;
                ev.region_baseline_per_s += t.baseline_or_prior(s) + t.others_base;
                ev.fleet_hot_cells += u64::from(t.fleet_hot);
            }
        }
        // Devices whose attempts within the device window were in (now) hot cells, and the
        // repeaters among them.
        let mut attempts = 0u64;
        let mut distinct = 0u64;
        let mut rep: Vec<(u64, N2DeviceKey)> = Vec::new();
        let mut rep_attempts = 0u64;
        for (k, t) in &self.devices {
            if t.in_window == 0 || !hot.contains(&t.cell) {
                continue;
            }
            distinct += 1;
            attempts += t.in_window;
            if t.in_window >= u64::from(s.device_repeat) {
                rep.push((t.in_window, *k));
                rep_attempts += t.in_window;
            }
        }
        rep.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let repeaters: Vec<N2DeviceKey> = rep.into_iter().map(|(_, k)| k).collect();
        ev.distinct_devices = distinct;
        ev.repeaters = repeaters.len() as u64;
        ev.attempts_per_device = if distinct > 0 { attempts as f64 / distinct as f64 } else { 0.0 };
        ev.repeater_share = if attempts > 0 { rep_attempts as f64 / attempts as f64 } else { 0.0 };
        let again = repeaters.iter().filter(|k| self.snap_prev.contains(k)).count();
        ev.consistency = if repeaters.is_empty() { 0.0 } else { again as f64 / repeaters.len() as f64 };
        let t2 = ev.repeaters >= s.min_offenders
            && ev.attempts_per_device >= s.repeat_ratio
            && ev.repeater_share >= s.offender_share
            && ev.consistency >= s.consistency;
        // Cell-pattern attribution: SUCI-only attempts have no lasting identity, so they never
        // make repeaters; the hot cells that are mostly SUCI-only, far above their own normal,
        // carry the storm instead.
        let (mut suci_rate, mut rate) = (0.0, 0.0);
        for k in self.pattern_cells() {
            if let Some(t) = self.cells.get(&k) {
                ev.pattern_cells += 1;
                ev.suci_attempts += t.suci_in_window;
                suci_rate += t.suci_rate;
                rate += t.rate;
            }
        }
        ev.suci_share = if rate > 0.0 { (suci_rate / rate).min(1.0) } else { 0.0 };
        let by_pattern = ev.pattern_cells > 0 && ev.suci_attempts >= s.min_offenders;
        ev.attribution = match (t2, by_pattern) {
            (true, true) => Attribution::DevicesAndCellPattern,
            (true, false) => Attribution::Devices,
            (false, true) => Attribution::CellPattern,
            (false, false) => Attribution::None,
        };
        let class = if t2 || by_pattern { StormClass::RegistrationStorm } else { StormClass::FlashCrowd };
        (class, ev, repeaters)
    }

    /// Baselines learn only from windows in which the cell is not hot: the mean of the first
    /// `warmup_windows`, then an EWMA with the configured half-life. During warm-up, the windows
    /// the fleet alone holds back (hot by its sums, or published far above the others' baseline)
    /// are skipped for at most `fleet_hold_bound_s` per cell, then learned: a forged or stale
    /// summary can delay a member's warm-up, never stop it (docs/fleet.md "Warm-up").
    fn learn_baselines(&mut self, now: u64) {
        let (hl, warmup) = (self.s.baseline_half_life_s, self.s.warmup_windows);
        let bound = Self::fleet_hold_bound_s(&self.s);
        let locally_hot = |t: &CellTrack| t.hot && !t.fleet_hot;
        #[cfg(test)]
        let legacy = self.legacy_warmup;
        #[cfg(not(test))]
        let legacy = false;
        for t in self.cells.values_mut().filter(|t| t.last_at == now && !locally_hot(t) && t.dt_s > 0.0) {
            if legacy && t.hot {
                continue;
            }
            if !legacy && (t.fleet_hot || t.warm_hold) {
                if t.windows >= warmup {
                    // Warmed up: a fleet-hot window is not learned, as before (the baseline is
                    // kept, never lowered nor raised by the fleet).
                    continue;
                }
                if t.warm_held_s < bound {
                    t.warm_held_s += t.dt_s;
                    continue;
                }
            }
            let alpha = if t.windows < warmup {
                1.0 / f64::from(t.windows + 1)
            } else {
                1.0 - (-t.dt_s / hl * std::f64::consts::LN_2).exp()
            };
            t.baseline += alpha * (t.raw - t.baseline);
            if t.raw > 0.0 {
                t.suci_base_share += alpha * ((t.suci_raw / t.raw).min(1.0) - t.suci_base_share);
            }
            t.windows = t.windows.saturating_add(1);
        }
    }
}
