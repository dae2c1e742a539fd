//! The graduated response: one level at a time with hysteresis (devices → barring → overload),
//! and what each level asks for (back-off lists, barring per cell, the load reduction, the gNBs).

use super::*;

impl N2Engine {
    pub(super) fn step_ladder(
        &mut self,
        now: u64,
        t2: bool,
        ev: &StormEvidence,
        repeaters: &[N2DeviceKey],
        out: &mut TickOutput,
    ) {
        let s = self.s.clone();
        let prev = self.level;
        let mut reason = "";
        if self.level > LEVEL_NONE {
            self.level_since_windows += 1;
            let storm = self.storm_cells();
            self.affected.extend(storm);
            self.affected_pattern.extend(self.pattern_cells());
        }
        if self.level == LEVEL_NONE {
            if t2 && self.t2_streak >= s.persist_windows {
                self.level = LEVEL_DEVICES;
                reason = "storm";
            }
        } else if t2 {
            let contained = ev.region_rate_per_s <= s.contain_fraction * self.level_entry_rate;
            let needed = match self.level {
                LEVEL_DEVICES => s.min_offenders_barring,
                _ => s.min_offenders_overload,
            };
            // Offenders: the repeating identities, plus the SUCI-only attempts of the pattern
            // cells within the device window (each is an RRC connection with an identity the
            // core cannot link to another, so as costly to the sender as one more device).
            if self.level < LEVEL_OVERLOAD
                && self.level_since_windows >= s.escalate_windows
                && !contained
                && ev.repeaters + ev.suci_attempts >= needed
            {
                self.level += 1;
                reason = "escalate_not_contained";
            }
        } else if self.quiet_streak >= s.quiet_windows {
            self.level -= 1;
            self.quiet_streak = 0;
            reason = "quiet";
        }
        if self.level != prev {
            self.level_since_windows = 0;
            self.level_entry_rate = ev.region_rate_per_s;
            if prev == LEVEL_NONE {
                self.affected = self.storm_cells();
                self.affected_pattern = self.pattern_cells();
            }
        }
        if t2 && ev.attribution != Attribution::None {
            self.attribution = ev.attribution;
        }
        if self.level == LEVEL_OVERLOAD {
            // Never lower the reduction while overload is in force (no oscillation as it works).
            self.reduction = self.reduction.max(self.needed_reduction(ev));
        } else {
            self.reduction = 0;
        }

        // Fleet mode: the others' listed devices that showed up here, and operators' pins
        // (fleet_devices.rs); a change in them is a reason to send, at any level.
        let fleet_now = self.fleet_devices_now(now);
        let fleet_keys: BTreeSet<N2DeviceKey> = fleet_now.keys().copied().collect();
        let fleet_changed = fleet_keys != self.fleet_advised;
        let action = match (prev, self.level) {
            (p, l) if p == l && l == LEVEL_NONE => {
                if !fleet_changed && fleet_keys.is_empty() {
                    return;
                }
                if fleet_keys.is_empty() {
                    ResponseAction::Clear
                } else {
                    ResponseAction::Advise
                }
            }
            // The storm here is over, but fleet devices are still to be backed off.
            (_, LEVEL_NONE) if !fleet_keys.is_empty() => ResponseAction::Advise,
            (_, LEVEL_NONE) => ResponseAction::Clear,
            (LEVEL_OVERLOAD, _) if self.level < LEVEL_OVERLOAD => ResponseAction::OverloadStop,
            (p, LEVEL_OVERLOAD) if p < LEVEL_OVERLOAD => ResponseAction::OverloadStart,
            (_, LEVEL_OVERLOAD) => ResponseAction::OverloadUpdate,
            _ => ResponseAction::Advise,
        };
        let gnbs = self.affected_gnbs();
        let scope = (gnbs.clone(), self.reduction);
        let refresh_due = s.refresh_s > 0.0 && now.saturating_sub(self.last_sent_ns) as f64 >= s.refresh_s * NS;
        if self.level == prev {
            if self.level > LEVEL_NONE && scope != self.last_scope {
                reason = "scope";
            } else if fleet_changed {
                reason = "fleet_devices";
            } else if refresh_due {
                reason = "refresh";
            } else {
                return;
            }
        }
        self.last_scope = scope;
        self.last_sent_ns = now;
        self.seq += 1;
        let own: Vec<(N2DeviceKey, DeviceAdvice)> = if self.level >= LEVEL_DEVICES {
            repeaters
                .iter()
                .filter_map(|k| self.devices.get(k).map(|t| (k, t)))
                .take(s.max_devices_reported)
                .map(|(k, t)| {
                    let a = DeviceAdvice {
                        id: n2_device_str(k),
                        cell: cell_str(&t.cell),
                        gnb: addr_str(&t.peer),
                        attempts: t.in_window,
                        t3346_s: (s.t3346_base_s.saturating_mul(1 << (self.level - 1))).min(s.t3346_max_s),
                        fleet: None,
                    };
                    (*k, a)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut omitted =
            if self.level >= LEVEL_DEVICES { (repeaters.len() as u64).saturating_sub(own.len() as u64) } else { 0 };
        // What this member publishes to the fleet: its own evidence only.
        self.own_listed = own.iter().filter(|(k, _)| shareable(k)).map(|(k, a)| (*k, a.t3346_s)).collect();
        let mut devices: Vec<DeviceAdvice> = own.into_iter().map(|(_, a)| a).collect();
        let local: HashSet<N2DeviceKey> =
            if self.level >= LEVEL_DEVICES { repeaters.iter().copied().collect() } else { HashSet::new() };
        let room = s.max_devices_reported.saturating_sub(devices.len());
        let (from_fleet, fleet_omitted) = self.fleet_device_advice(&fleet_now, &local, room);
        devices.extend(from_fleet);
        omitted += fleet_omitted;
        self.fleet_advised = fleet_keys;
        let access_barring = if self.level >= LEVEL_BARRING { self.barring() } else { Vec::new() };
        let pattern = if self.level >= LEVEL_DEVICES { self.pattern_advice() } else { Vec::new() };
        let overload = match action {
            ResponseAction::OverloadStart | ResponseAction::OverloadUpdate | ResponseAction::OverloadStop => {
                Some(OverloadRequest {
                    gnbs,
                    traffic_load_reduction_pct: if action == ResponseAction::OverloadStop { 0 } else { self.reduction },
                    overload_action: "reject-rrc-cr-signalling",
                    slices: Vec::new(),
                })
            }
            _ => None,
        };
        let attribution = self.attribution;
        if self.level == LEVEL_NONE {
            self.affected.clear();
            self.affected_pattern.clear();
            self.attribution = Attribution::None;
        }
        out.responses.push(Response {
            schema: RESPONSE_SCHEMA,
            version: RESPONSE_VERSION,
            seq: self.seq,
            at_ns: now,
            action,
            level: self.level,
            previous_level: prev,
            class: self.class,
            attribution,
            reason,
            overload,
            access_barring,
            devices,
            pattern,
            devices_omitted: omitted,
            evidence: ev.clone(),
        });
    }

    /// The pattern back-off of each affected cell attributed by pattern.
    pub(super) fn pattern_advice(&self) -> Vec<PatternAdvice> {
        let s = &self.s;
        self.affected_pattern
            .iter()
            .filter_map(|k| self.cells.get(k).map(|t| (k, t)))
            .map(|(k, t)| {
                let dom = t.dominant_cause();
                PatternAdvice {
                    cell: cell_str(k),
                    gnb: addr_str(&t.peer),
                    tac: t.tac,
                    identity: "suci_only",
                    nas: "registration_request",
                    rrc_cause: dom.map(|d| d.0),
                    rrc_cause_name: dom
                        .filter(|_| k.kind == CELL_KIND_NR)
                        .and_then(|d| NGAP_RRC_CAUSES.get(d.0 as usize).copied()),
                    rrc_cause_share: dom.map_or(0.0, |d| d.1),
                    suci_only_per_s: t.suci_rate,
                    suci_share: t.suci_share(),
                    baseline_share: t.suci_base_share,
                    attempts: t.suci_in_window,
                    t3346_s: (s.t3346_base_s.saturating_mul(1 << (self.level.max(1) - 1))).min(s.t3346_max_s),
                }
            })
            .collect()
    }

    /// The reduction that brings the affected cells back to baseline × headroom.
    pub(super) fn needed_reduction(&self, ev: &StormEvidence) -> u8 {
        let (rate, base) = self
            .affected
            .iter()
            .filter_map(|k| self.cells.get(k))
            .fold((0.0, 0.0), |(r, b), t| (r + t.rate, b + t.baseline_or_prior(&self.s)));
        let rate = rate.max(ev.region_rate_per_s);
        let pct = if rate > 0.0 { 100.0 * (1.0 - base * self.s.headroom / rate) } else { 0.0 };
        (pct.ceil().max(0.0) as u8).clamp(self.s.reduction_min_pct, self.s.reduction_max_pct)
    }

    pub(super) fn affected_gnbs(&self) -> Vec<String> {
        let set: BTreeSet<String> =
            self.affected.iter().filter_map(|k| self.cells.get(k)).map(|t| addr_str(&t.peer)).collect();
        set.into_iter().collect()
    }

    pub(super) fn barring(&self) -> Vec<BarringAdvice> {
        let s = &self.s;
        let mut v: BTreeMap<String, BarringAdvice> = BTreeMap::new();
        for k in &self.affected {
            let Some(t) = self.cells.get(k) else { continue };
            let base = t.baseline_or_prior(s);
            let target = base * s.headroom;
            // The fraction of attempts to admit, in the 0.05 steps of uac-BarringFactor, at least
            // p05 (never a full bar) and at most p95.
            let p = if t.rate > 0.0 { (target / t.rate).clamp(0.05, 0.95) } else { 0.95 };
            let p = (p * 20.0).floor() / 20.0;
            let cell = cell_str(k);
            v.insert(
                cell.clone(),
                BarringAdvice {
                    cell,
                    gnb: addr_str(&t.peer),
                    tac: t.tac,
                    barring_factor: p.max(0.05),
                    barring_time_s: s.barring_time_s,
                    access_categories: s.barring_categories.clone(),
                    exempt: "access category 2 (emergency); access identities 1, 2, 11-15",
                    rate_per_s: t.rate,
                    baseline_per_s: base,
                },
            );
        }
        v.into_values().collect()
    }
}
