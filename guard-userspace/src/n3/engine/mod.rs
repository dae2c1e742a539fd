//! The pure decision engine: per-tick device samples and data-plane events in, decisions out.
//!
//! No I/O and no clock: every call takes `now_ns` (CLOCK_MONOTONIC, the data plane's clock), so the
//! whole engine runs deterministically in tests. The controller:
//! 1. at start, [`Engine::restore`]s the stages it finds in `N3_STAGES`;
//! 2. every tick, reads device counters (`N3_DEVICES`, whole or in slices: rates come from each
//!    device's own elapsed time) and drains the event ring, and calls [`Engine::tick`];
//! 3. applies the returned [`Decision`]s to the maps and writes each to the audit log;
//! 4. tells the engine about operator pins ([`Engine::pin_manual`] / [`Engine::unpin_manual`]),
//!    which it then never changes.
//!
//! How the engine classifies and escalates, and what each level costs an attacker, is written up
//! in `docs/controller.md`.

mod bursts;
mod capacity;
mod cell_ids;
mod classify;
mod cohort;
pub mod decision;
mod evict;
mod fleet;
#[cfg(test)]
mod fleet_tests;
mod ladder;
mod manual;
mod membership;
mod render;
mod stage;
mod stamp;
mod status;
mod track;
mod tracks;

#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod ladder_tests;
#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_caps;
#[cfg(test)]
mod tests_chatty_volume;
#[cfg(test)]
mod tests_cohort_volume;
#[cfg(test)]
mod tests_flood_run;
#[cfg(test)]
mod tests_narrow;

pub use fleet::{FleetCellLoad, FleetEvidence, N3FleetCells, N3HotCell};
pub use status::{EngineStatus, Offender};

use std::collections::{HashMap, HashSet};

/// The engine's per-device maps hash with foldhash (seeded at random per process): SipHash was a
/// fifth of the controller's time at 1M devices. Keys are devices the data plane admitted (under
/// the per-gNB new-device budget), and the seed is not observable from outside.
type Hasher = foldhash::quality::RandomState;

use guard_common::abi::{
    ByteLimit, CellKey, DeviceKey, Event, L3Addr, Limit, StageEntry, EVENT_DEVICE_OVER_LIMIT, STAGE_FLAG_EXEMPT,
    STAGE_FLAG_MANUAL, STAGE_MAX, STAGE_QUARANTINE,
};
use serde::Serialize;

pub use decision::{addr_str, device_key_str, Class, Decision, Evidence, Reason};

use capacity::{CapState, Level, Load};
use cell_ids::CellIds;
use classify::{CrowdCount, OnsetSync};
use cohort::{GroupCount, GroupState};
use ladder::Wants;
use track::{Reading, Stage, StageState, Track};
use tracks::Tracks;

use crate::config::Config;

/// How many offenders [`Engine::snapshot`] lists.
const TOP_OFFENDERS: usize = 20;
/// Samples whose tracks are located together before they are folded (`Tracks::locate`): enough
/// index probes in flight to overlap their cache misses, few enough that the tracks found are
/// still in the cache when folded (16, 32 and 128 measured alike: `a_walk_in_and_out_of_order_at_scale`).
const LOCATE_BATCH: usize = 64;

/// One device's cumulative counters as read from `N3_DEVICES`; the engine diffs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceSample {
    pub key: DeviceKey,
    /// The gNB last seen (`DeviceState::cell`).
    pub cell: CellKey,
    pub packets: u64,
    pub bytes: u64,
    pub over_limit: u64,
    pub dropped: u64,
    /// Inner destination of the last G-PDU (`DeviceState::inner_dst`).
    pub inner_dst: L3Addr,
    /// The UE address: the learned binding in TEID mode, the key itself in UE-address mode.
    pub ue_addr: L3Addr,
    pub teid: u32,
}

/// What `N3_STAGES` holds for one device (for [`Engine::restore`] after a restart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CurrentStage {
    pub key: DeviceKey,
    pub stage: u32,
    pub flags: u32,
    pub limit: Limit,
    /// The stage's byte rate beside `limit` (unlimited: packets only).
    pub bytes: ByteLimit,
    pub expires_ns: u64,
    /// [`Reason::code`] (0 = unknown).
    pub reason: u32,
}

impl CurrentStage {
    pub fn from_entry(key: DeviceKey, e: &StageEntry) -> Self {
        CurrentStage {
            key,
            stage: e.stage,
            flags: e.flags,
            limit: Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns },
            bytes: e.bytes,
            expires_ns: e.expires_ns,
            reason: e.reason,
        }
    }
}

/// Which patterns were active last window (to report transitions once).
#[derive(Debug, Default, Clone, Copy)]
struct Classes {
    flash: bool,
    flood: bool,
    chatty: bool,
}

/// Which devices a tick steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Every tracked device, and the cell and host loads recomputed from all of them. Also
    /// where a walk of the device map ended: a track not read since the walk before is gone
    /// (evict.rs), so a caller asks for it only once every device in the map has been read.
    Full,
    /// Only the devices read this tick and the notable ones (staged, pinned, exempt, counting
    /// windows toward a stage, or chatty); the cell and host loads of the last full pass stand.
    /// Every decision a device's own readings or the clock can trigger is still taken: a device
    /// that is neither read nor notable has nothing that could change. What waits for the next
    /// full pass is only the cell and host caps' view of the load. With groups configured every
    /// pass is full (cohort deviation ages with the clock for every member).
    Changed,
}

/// The decision engine. See the module documentation for the calling protocol.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    tracks: Tracks,
    /// The gNB addresses the tracks refer to by id.
    cell_ids: CellIds,
    /// The inner destinations the tracks of members of groups that check `servers` refer to by
    /// id (`Track::dst`), counted as the gNBs are.
    dst_ids: CellIds,
    /// The tracks a [`Pass::Changed`] tick must step even without a reading (see [`notable`]),
    /// each with a hint of its position in `tracks` (`Tracks::get_mut_at`: checked, so a stale
    /// one costs an index lookup, never a wrong track).
    notable: HashMap<DeviceKey, u32, Hasher>,
    /// Tracks that got a reading this tick, with their positions as hints (as `notable`'s).
    touched: Vec<(DeviceKey, u32)>,
    /// The cell and host loads of the last full pass.
    loads: (HashMap<CellKey, Load>, Load),
    /// This tick's flash-crowd count of the devices read but not stepped (see [`Engine::fold`]).
    pending_crowd: CrowdCount,
    /// Burst onsets seen by [`Engine::events_pass`] since the last tick: they count in the
    /// tick's synchronisation window (with their positions as hints, as `touched`'s).
    pending_onsets: Vec<(DeviceKey, u32)>,
    cells: HashMap<CellKey, CapState>,
    host: CapState,
    groups: Vec<GroupState>,
    sync: OnsetSync,
    classes: Classes,
    crowd: CrowdCount,
    evicted: u64,
    untracked: u64,
    /// Where the last walks of the device map ended: which tracks it no longer reads.
    walks: evict::WalkEnds,
    /// The other members' view of the gNBs (fleet mode, fleet.rs); empty: local only.
    fleet: N3FleetCells,
}

impl Engine {
    pub fn new(cfg: &Config) -> Self {
        Engine {
            cfg: cfg.clone(),
            tracks: Tracks::default(),
            cell_ids: CellIds::default(),
            dst_ids: CellIds::default(),
            notable: HashMap::default(),
            touched: Vec::new(),
            loads: (HashMap::new(), Load::default()),
            pending_crowd: CrowdCount::default(),
            pending_onsets: Vec::new(),
            cells: HashMap::new(),
            host: CapState::default(),
            groups: vec![GroupState::default(); cfg.groups.len()],
            sync: OnsetSync::default(),
            classes: Classes::default(),
            crowd: CrowdCount::default(),
            evicted: 0,
            fleet: N3FleetCells::new(),
            untracked: 0,
            walks: evict::WalkEnds::default(),
        }
    }

    /// The engine's view of a device's stage.
    pub fn stage_of(&self, key: &DeviceKey) -> Option<u32> {
        self.tracks.get(key).map(|t| t.stage.stage)
    }

    /// One window, stepping every device ([`Pass::Full`]): see [`Engine::tick_pass`].
    pub fn tick(&mut self, now_ns: u64, samples: &[DeviceSample], events: &[Event]) -> Vec<Decision> {
        self.tick_pass(now_ns, samples, events, Pass::Full)
    }

    /// One window: fold in the counters and events, classify, and decide.
    ///
    /// `samples` carry cumulative counters. `events` are the ring-buffer records drained since the
    /// last tick; an over-limit event stands in for a sample of a device the controller did not
    /// read this tick (it carries the same cumulative counters, without drops). `pass` says which
    /// devices to step: the controller asks for a full pass when its walk of the device map
    /// completes (every tick for a map read whole each tick), and for [`Pass::Changed`] between.
    pub fn tick_pass(&mut self, now_ns: u64, samples: &[DeviceSample], events: &[Event], pass: Pass) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut onsets = std::mem::take(&mut self.pending_onsets);
        // The samples' tracks are located a batch at a time, then folded (`Tracks::locate`).
        let mut at = Vec::with_capacity(LOCATE_BATCH);
        for batch in samples.chunks(LOCATE_BATCH) {
            self.tracks.locate(batch.iter().map(|s| &s.key), &mut at);
            for (s, &hint) in batch.iter().zip(&at) {
                let r = Reading {
                    at_ns: now_ns,
                    cell: s.cell,
                    packets: s.packets,
                    bytes: s.bytes,
                    over_limit: s.over_limit,
                    dropped: Some(s.dropped),
                    inner_dst: Some(s.inner_dst),
                    ue: Some(s.ue_addr),
                    teid: Some(s.teid),
                };
                self.fold(&s.key, Some(hint), &r, now_ns, true, &mut onsets);
            }
        }
        for e in events.iter().filter(|e| e.kind == EVENT_DEVICE_OVER_LIMIT) {
            if let Some(t) = self.tracks.get_mut(&e.device).filter(|t| t.fresh(now_ns)) {
                // A real sample this tick wins; the event still dates the start of an
                // over-profile run (`Track::over_since`).
                t.over_since(stamp::ms(event_reading(e, now_ns).at_ns), &self.cfg);
                continue;
            }
            self.fold(&e.device, None, &event_reading(e, now_ns), now_ns, true, &mut onsets);
        }
        let hot = self.sync.window(u32::try_from(onsets.len()).unwrap_or(u32::MAX), &self.cfg);
        for (k, at) in &onsets {
            if let Some((_, t)) = self.tracks.get_mut_at(k, *at) {
                classify::note_onset(t, hot);
            }
        }
        // Reused across ticks (its capacity is the busiest tick's readings).
        let mut keys = std::mem::take(&mut self.touched);
        let pending = std::mem::take(&mut self.pending_crowd);
        if pass == Pass::Full || !self.cfg.groups.is_empty() {
            self.step_groups(now_ns, &mut out);
            self.loads = self.step_devices(now_ns, None, CrowdCount::default(), &mut out);
        } else {
            // The loads these devices would give are partial: the last full pass's stand.
            keys.extend(self.notable.iter().map(|(k, at)| (*k, *at)));
            let _ = self.step_devices(now_ns, Some(&keys), pending, &mut out);
        }
        keys.clear();
        self.touched = keys;
        if pass == Pass::Full {
            self.walks.ended(stamp::ms(now_ns));
        }
        let (cells, host) = (self.loads.0.clone(), self.loads.1);
        self.step_caps(now_ns, cells, host, &mut out);
        out
    }

    /// Between ticks: fold the over-limit events of devices at observe, and shape those whose
    /// run of over-profile readings now confirms a flood (see [`track::Track::flood_confirmed`]),
    /// so a flood is pinned when its evidence arrives instead of at the next tick. Only that
    /// decision is taken here; the devices are stepped again at the tick like any device read
    /// since the last one. The events this pass does not use stay in `events` for the tick:
    /// other kinds, and the readings of staged, pinned and exempt devices (their windows are the
    /// tick's: containment counts them).
    pub fn events_pass(&mut self, now_ns: u64, events: &mut Vec<Event>) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut onsets = std::mem::take(&mut self.pending_onsets);
        events.retain(|e| {
            let at_observe = self.tracks.get(&e.device).is_none_or(|t| {
                t.stage.stage == guard_common::abi::STAGE_OBSERVE && !t.stage.manual && !t.stage.exempt
            });
            if e.kind != EVENT_DEVICE_OVER_LIMIT || !at_observe {
                return true;
            }
            self.fold(&e.device, None, &event_reading(e, now_ns), now_ns, false, &mut onsets);
            if let Some(t) = self.tracks.get_mut(&e.device) {
                if t.flood_confirmed(&self.cfg) {
                    ladder::step(&self.cfg, &e.device, t, now_ns, Wants::default(), &mut out);
                }
            }
            false
        });
        self.pending_onsets = onsets;
        out
    }

    /// Fold one reading into its device's track. A device left inert by it (at observe, not
    /// pinned, exempt, grouped, chatty, counting windows or starting a burst) has nothing a
    /// [`Pass::Changed`] step could decide: it is only counted for the flash-crowd test here;
    /// the others are stepped this tick. `in_tick`: a tick's reading (its window is the tick's,
    /// `Track::fresh`), not an event pass's.
    /// `hint`: where [`Tracks::locate`] found the track (checked), or `None` to look after the
    /// last one found.
    fn fold(
        &mut self,
        key: &DeviceKey,
        hint: Option<u32>,
        r: &Reading,
        now: u64,
        in_tick: bool,
        onsets: &mut Vec<(DeviceKey, u32)>,
    ) {
        // At most one hash lookup, known device or new (the common case at scale is known); the
        // bound is restored after an insert.
        let cfg = &self.cfg;
        let (at, t) = match hint {
            Some(h) => self.tracks.get_or_insert_at(*key, h, || Track::new(*key)),
            None => self.tracks.get_or_insert_with(*key, || Track::new(*key)),
        };
        self.cell_ids.set(&mut t.cell, r.cell);
        if !t.primed {
            // Membership from the first reading (as a track kept no UE address, the only time it
            // is known to the engine but at a reload, `reconfigure`).
            t.set_group(cfg.group_of(r.teid.unwrap_or(t.teid), &r.ue.unwrap_or_default()));
        }
        // The inner destination: a sample's is kept for the events after it, by a member that
        // is checked against servers only; an event's reading is judged on the kept one.
        let mut r = *r;
        match r.inner_dst {
            Some(d) => {
                let keep = if t.checks_servers(cfg) { d } else { L3Addr::NONE };
                self.dst_ids.set(&mut t.dst, keep)
            }
            None => r.inner_dst = Some(self.dst_ids.key(t.dst)),
        }
        let updated = t.update(&r, cfg);
        t.fresh_ms = if updated && in_tick { stamp::ms(now) } else { 0 };
        if updated && t.bursts.onset_now {
            onsets.push((*key, at));
        }
        let inert = (!updated || !t.bursts.onset_now)
            && t.stage.stage == guard_common::abi::STAGE_OBSERVE
            && !t.stage.manual
            && !t.stage.exempt
            && t.flood_streak == 0
            && t.group().is_none()
            && !t.notable
            && !classify::is_chatty(t, cfg);
        let mut crowd = CrowdCount::default();
        if inert {
            crowd.add(t, cfg, now);
        }
        if self.tracks.len() > self.cfg.guard.max_devices as usize {
            // A new device over the bound: make room among the others (evict.rs), or do not
            // track it. An event's reading (events carry no drops) is evidence of a flood.
            if !self.make_room(key, r.dropped.is_none(), now) {
                if let Some(t) = self.tracks.remove(key) {
                    self.cell_ids.release(t.cell);
                    self.dst_ids.release(t.dst);
                }
                onsets.retain(|(k, _)| k != key);
                self.untracked += 1;
                return;
            }
        }
        if inert {
            self.pending_crowd += crowd;
        } else {
            self.touched.push((*key, at));
        }
    }

    fn step_groups(&mut self, now: u64, out: &mut Vec<Decision>) {
        if self.cfg.groups.is_empty() {
            return;
        }
        let window = self.cfg.classify.cohort.window.0;
        let mut counts = vec![GroupCount::default(); self.cfg.groups.len()];
        for (k, t) in self.tracks.iter() {
            if let Some(c) = t.group().and_then(|g| counts.get_mut(g)) {
                c.add(k, t, now, window);
            }
        }
        for (gi, c) in counts.into_iter().enumerate() {
            if let Some(st) = self.groups.get_mut(gi) {
                cohort::step(&self.cfg, gi, st, c, now, out);
            }
        }
    }

    /// Classify and step the ladders of `keys` (each once per tick, repeats skipped), or of every
    /// device (`None`), walking the table in its own order rather than looking each up (at 1M
    /// devices, random lookups into the tracks were most of a full pass); the per-cell and host
    /// loads are computed on a full pass only.
    fn step_devices(
        &mut self,
        now: u64,
        keys: Option<&[(DeviceKey, u32)]>,
        crowd: CrowdCount,
        out: &mut Vec<Decision>,
    ) -> (HashMap<CellKey, Load>, Load) {
        let Engine { cfg, tracks, cell_ids, notable: notable_set, groups, .. } = self;
        let cfg = &*cfg;
        let stale = cfg.classify.stale_after.0;
        let window = cfg.classify.cohort.window.0;
        let loads = keys.is_none();
        let mut cells: HashMap<CellKey, Load> = HashMap::new();
        let mut host = Load::default();
        let mut crowd = crowd;
        let (mut flooding, mut chatty_n) = (0u64, 0u64);
        let now_ms = stamp::ms(now);
        let mut step = |key: &DeviceKey, at: u32, hint: Option<u32>, t: &mut Track| {
            if t.stepped_ms == now_ms {
                return;
            }
            t.stepped_ms = now_ms;
            crowd.add(t, cfg, now);
            let chatty = classify::is_chatty(t, cfg);
            let cohort = t.group().and_then(|g| groups.get(g)).is_some_and(|g| g.flagged) && t.deviating(now, window);
            ladder::step(cfg, key, t, now, Wants { chatty, cohort }, out);
            flooding += u64::from(t.flood_confirmed(cfg));
            chatty_n += u64::from(chatty);
            if loads && stamp::age_ns(now_ms, t.seen_ms) <= stale {
                let offender = t.stage.engine_staged();
                for l in [cells.entry(cell_ids.key(t.cell)).or_default(), &mut host] {
                    l.offered += t.w.rate;
                    l.demand += t.demand();
                    l.offered_bps += t.w.bps;
                    l.demand_bps += t.demand_bps();
                    l.devices += 1;
                    l.offenders += u64::from(offender);
                }
            }
            let is = notable(t, cfg);
            if is != t.notable {
                t.notable = is;
                if is {
                    notable_set.insert(*key, at);
                } else {
                    notable_set.remove(key);
                }
            } else if is && hint != Some(at) {
                // Moved since its hint was taken (or a full pass, which has none): keep it true.
                if let Some(h) = notable_set.get_mut(key) {
                    *h = at;
                }
            }
        };
        let mut gone = Vec::new();
        match keys {
            None => tracks.values_mut().enumerate().for_each(|(at, t)| {
                t.age_out(now_ms);
                let key = t.key;
                step(&key, at as u32, None, t)
            }),
            Some(keys) => {
                for (key, hint) in keys {
                    match tracks.get_mut_at(key, *hint) {
                        Some((at, t)) => step(key, at, Some(*hint), t),
                        None => gone.push(*key),
                    }
                }
            }
        }
        for k in &gone {
            notable_set.remove(k);
        }
        self.crowd = crowd;
        let mut evidence = Evidence {
            active_devices: Some(crowd.active),
            devices: Some(crowd.up),
            fraction: Some(crowd.fraction()),
            ..Evidence::default()
        };
        transition(&mut self.classes.flash, crowd.is_flash_crowd(cfg), Class::FlashCrowd, &evidence, out);
        evidence.devices = Some(flooding);
        evidence.fraction = None;
        transition(&mut self.classes.flood, flooding > 0, Class::Flood, &evidence, out);
        evidence.devices = Some(chatty_n);
        transition(&mut self.classes.chatty, chatty_n > 0, Class::Chatty, &evidence, out);
        (cells, host)
    }

    fn step_caps(&mut self, now: u64, loads: HashMap<CellKey, Load>, host: Load, out: &mut Vec<Decision>) {
        for (cell, local) in &loads {
            // A gNB split over UPFs: judged on the fleet's sums where this member's own share
            // is enough (fleet.rs); else, and without fleet input, locally.
            let (load, share, by_fleet) = self.fleet_load(cell, local);
            let st = self.cells.entry(*cell).or_default();
            let from = out.len();
            capacity::step(&self.cfg, Level::Cell(*cell), st, &load, share, now, out);
            if let Some(f) = &by_fleet {
                fleet::mark_fleet(&mut out[from..], f);
            }
        }
        // Capped cells whose devices went silent still need their release.
        for (cell, st) in self.cells.iter_mut().filter(|(c, _)| !loads.contains_key(*c)) {
            capacity::step(&self.cfg, Level::Cell(*cell), st, &Load::default(), 1.0, now, out);
        }
        capacity::prune(&mut self.cells);
        capacity::step(&self.cfg, Level::Host, &mut self.host, &host, 1.0, now, out);
    }
}

/// A track a [`Pass::Changed`] tick steps even without a reading, and [`Engine::snapshot`]
/// lists: its state can change with the clock alone (a stage to refresh or release, a pin that
/// lapses), or it counts toward this window's flood and chatty counts.
fn notable(t: &Track, cfg: &Config) -> bool {
    t.stage.stage != guard_common::abi::STAGE_OBSERVE
        || t.stage.manual
        || t.stage.exempt
        || t.flood_streak > 0
        || classify::is_chatty(t, cfg)
}

/// An over-limit event as a reading: the same cumulative counters as a sample, without drops.
fn event_reading(e: &Event, now_ns: u64) -> Reading {
    Reading {
        at_ns: e.ts_ns.min(now_ns),
        cell: e.cell,
        packets: e.packets,
        bytes: e.bytes,
        over_limit: e.over_limit,
        dropped: None,
        inner_dst: None,
        ue: None,
        teid: None,
    }
}

/// Packets per second a stage with `limit` lets through.
fn allowance(stage: u32, limit: &Limit) -> f64 {
    match stage {
        0 => f64::INFINITY,
        STAGE_QUARANTINE => 0.0,
        _ if limit.interval_ns == 0 => f64::INFINITY,
        _ => 1e9 / limit.interval_ns as f64,
    }
}

/// Report a pattern starting or ending, once.
fn transition(state: &mut bool, now_on: bool, class: Class, evidence: &Evidence, out: &mut Vec<Decision>) {
    if *state != now_on {
        *state = now_on;
        let reason = match class {
            Class::FlashCrowd => Reason::FlashCrowd,
            Class::Flood => Reason::Flood,
            Class::Chatty => Reason::Chatty,
            Class::Cohort => Reason::CohortDeviation,
        };
        out.push(Decision::Classified { class, active: now_on, reason, evidence: evidence.clone() });
    }
}
