//! What the engine tells `guard status` and the metrics: its state in one snapshot.

use super::*;

/// A summary for `guard status` and the metrics exporter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EngineStatus {
    pub tracked_devices: u64,
    /// Devices dropped from tracking to stay within `max_devices` (gone ones first, evict.rs).
    pub evicted_devices: u64,
    /// Readings of new devices not tracked: at `max_devices`, no track known gone and no
    /// evidence (tracked at a later walk), or every track staged.
    pub untracked_readings: u64,
    /// Devices per stage (observe, shape, strict, quarantine), manual pins included.
    pub devices_per_stage: [u64; 4],
    pub manual_pins: u64,
    pub exempt_devices: u64,
    pub cells_capped: Vec<String>,
    pub host_capped: bool,
    /// Patterns active in the last window.
    pub classification: Vec<Class>,
    /// Fraction of active devices moderately above profile in the last window.
    pub crowd_fraction: f64,
    pub flagged_groups: Vec<u32>,
    pub top_offenders: Vec<Offender>,
}

/// One device in [`EngineStatus::top_offenders`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offender {
    pub key: String,
    pub cell: String,
    pub stage: u32,
    pub manual: bool,
    pub reason: Option<Reason>,
    pub rate_pps: f64,
    pub profile_pps: f64,
    /// Offered T-PDU bits per second in the last window, and the byte profile (absent: none to
    /// judge against yet).
    pub rate_bps: f64,
    pub profile_bps: Option<f64>,
    pub ratio: f64,
}

impl Engine {
    /// Devices per stage, caps, patterns and the top offenders.
    pub fn snapshot(&self) -> EngineStatus {
        let mut st = EngineStatus {
            tracked_devices: self.tracks.len() as u64,
            evicted_devices: self.evicted,
            untracked_readings: self.untracked,
            host_capped: self.host.engaged,
            crowd_fraction: self.crowd.fraction(),
            ..EngineStatus::default()
        };
        // Every device not at observe, pinned, exempt or counting windows is notable: the rest
        // are at observe with nothing to report. Offenders are ranked on numbers first and only
        // the top ones are formatted (thousands of staged devices at scale, every tick).
        let mut listed = 0u64;
        let mut ranked: Vec<(u32, f64, &DeviceKey, &Track)> = Vec::new();
        for (k, t) in self.notable.iter().filter_map(|(k, &at)| self.tracks.get_at(k, at).map(|(_, t)| (k, t))) {
            listed += 1;
            if let Some(n) = st.devices_per_stage.get_mut(t.stage.stage as usize) {
                *n += 1;
            }
            st.manual_pins += u64::from(t.stage.manual);
            st.exempt_devices += u64::from(t.stage.exempt);
            if t.stage.stage > 0 || t.flood_streak > 0 {
                ranked.push((t.stage.stage, t.w.rate / t.profile(&self.cfg), k, t));
            }
        }
        st.devices_per_stage[0] += (self.tracks.len() as u64).saturating_sub(listed);
        // Highest stage, then highest ratio; ties broken by key (its kind, then its octets), so
        // the list does not depend on hash-map order. Not by the key's text: thousands of staged
        // devices gone quiet tie at ratio 0, and this runs every tick, where formatting two keys
        // per comparison cost two allocations each (~28 per device at 10k staged devices).
        let order = |a: &(u32, f64, &DeviceKey, &Track), b: &(u32, f64, &DeviceKey, &Track)| {
            b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.cmp(b.2))
        };
        if ranked.len() > TOP_OFFENDERS {
            // The top ones under that whole order, in linear time; only they are sorted. (A cut
            // on the numbers alone kept every device tied at the cut: thousands of quiet staged
            // devices at ratio 0, sorted every tick.)
            ranked.select_nth_unstable_by(TOP_OFFENDERS - 1, order);
            ranked.truncate(TOP_OFFENDERS);
        }
        ranked.sort_by(order);
        st.top_offenders = ranked
            .into_iter()
            .map(|(stage, ratio, k, t)| Offender {
                key: device_key_str(k),
                cell: addr_str(&self.cell_ids.key(t.cell)),
                stage,
                manual: t.stage.manual,
                reason: (stage > 0).then_some(t.stage.reason),
                rate_pps: t.w.rate,
                profile_pps: t.profile(&self.cfg),
                rate_bps: t.w.bps,
                profile_bps: Some(t.byte_profile(&self.cfg)).filter(|p| p.is_finite()),
                ratio,
            })
            .collect();
        st.cells_capped = self.cells.iter().filter(|(_, c)| c.engaged).map(|(k, _)| addr_str(k)).collect();
        st.cells_capped.sort();
        let c = &self.classes;
        for (on, class) in [(c.flash, Class::FlashCrowd), (c.flood, Class::Flood), (c.chatty, Class::Chatty)] {
            if on {
                st.classification.push(class);
            }
        }
        st.flagged_groups =
            self.groups.iter().zip(&self.cfg.groups).filter(|(s, _)| s.flagged).map(|(_, g)| g.id).collect();
        if !st.flagged_groups.is_empty() {
            st.classification.push(Class::Cohort);
        }
        st
    }
}
