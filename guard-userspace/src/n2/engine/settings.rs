//! `[detect]` of the N2 settings file: the storm engine's tunables, validated.

use super::*;

/// Tunables of the N2 controller (TOML `[n2]`; every field has a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N2Settings {
    /// A cell below this InitialUEMessage rate (per second) is never hot.
    pub cell_min_rate: f64,
    /// A cell is hot at `cell_ratio` × its baseline (and above `cell_min_rate`).
    pub cell_ratio: f64,
    /// Time constant of the short-term rate a cell is judged on (an EWMA: per-window counts of
    /// a real storm jitter, and a cell must not flip between hot and cold every window).
    pub rate_smoothing_s: f64,
    /// The baseline a cell starts from until it has `warmup_windows` of its own.
    pub cell_prior_rate: f64,
    pub warmup_windows: u32,
    /// Half-life of a cell's baseline (EWMA over windows in which it is not hot: a storm is never
    /// learned as normal).
    pub baseline_half_life_s: f64,
    /// A device is a *repeater* with at least `device_repeat` access attempts within
    /// `device_window_s` (an IoT device registers a few times a day).
    pub device_repeat: u32,
    pub device_window_s: f64,
    /// T2 needs, over the hot cells: attempts per distinct device at least this ...
    pub repeat_ratio: f64,
    /// ... repeaters making at least this share of the attempts ...
    pub offender_share: f64,
    /// ... at least this share of the repeaters already repeaters one to two device windows ago
    /// (the same devices, not a churning crowd) ...
    pub consistency: f64,
    /// ... and at least this many repeaters ...
    pub min_offenders: u64,
    /// ... for this many consecutive windows before level 1.
    pub persist_windows: u32,
    /// Repeaters needed for level 2 (cell barring) and level 3 (NGAP overload): severe levels
    /// must be expensive to reach (DESIGN §2, T4).
    pub min_offenders_barring: u64,
    pub min_offenders_overload: u64,
    /// Windows a level must have been in force, T2 still holding and not contained, before the
    /// next one.
    pub escalate_windows: u32,
    /// The level worked ("contained") when the hot cells' attempt rate fell to this fraction of
    /// the rate when the level was entered.
    pub contain_fraction: f64,
    /// Windows without T2 before stepping down one level (hysteresis).
    pub quiet_windows: u32,
    /// Re-send the current response this often while a level is in force (0: only on change).
    pub refresh_s: f64,
    /// The target rate of a hot region is its baseline × `headroom`.
    pub headroom: f64,
    /// Bounds of the NGAP AMF Traffic Load Reduction Indication (TS 38.413 §9.3.1.106: 1..99).
    pub reduction_min_pct: u8,
    pub reduction_max_pct: u8,
    /// UAC barring time recommended (TS 38.331 `uac-BarringTime`: 4..512 s).
    pub barring_time_s: u32,
    /// Access categories recommended for barring (TS 24.501 §4.5.2, Table 4.5.2.2: 1 delay-tolerant
    /// (IoT configured for it), 3 MO signalling, 7 MO data). 0 (MT) and 2 (emergency) are never.
    pub barring_categories: Vec<u8>,
    /// T3346 back-off recommended at level 1, doubled per level, capped (TS 24.501 §10.2).
    pub t3346_base_s: u32,
    pub t3346_max_s: u32,
    /// At most this many devices in one response (the worst first).
    pub max_devices_reported: usize,
    /// Memory bounds: devices / cells tracked (idle ones are forgotten first).
    pub max_devices: usize,
    pub max_cells: usize,
    /// Cell-pattern attribution: a hot cell is a *pattern cell* when at least `suci_share` of its
    /// attempts (smoothed as its rate) are SUCI-only ...
    pub suci_share: f64,
    /// ... and that share is at least `suci_share_ratio` × the share it learned while not hot
    /// (a cell that always serves many new devices is judged against its own normal).
    pub suci_share_ratio: f64,
}

impl Default for N2Settings {
    fn default() -> Self {
        N2Settings {
            cell_min_rate: 2.0,
            cell_ratio: 4.0,
            rate_smoothing_s: 3.0,
            cell_prior_rate: 0.5,
            warmup_windows: 10,
            baseline_half_life_s: 3600.0,
            device_repeat: 3,
            device_window_s: 60.0,
            repeat_ratio: 2.0,
            offender_share: 0.5,
            consistency: 0.5,
            min_offenders: 3,
            persist_windows: 3,
            min_offenders_barring: 50,
            min_offenders_overload: 200,
            escalate_windows: 5,
            contain_fraction: 0.5,
            quiet_windows: 10,
            refresh_s: 30.0,
            headroom: 1.5,
            reduction_min_pct: 10,
            reduction_max_pct: 80,
            barring_time_s: 64,
            barring_categories: vec![1, 3],
            t3346_base_s: 600,
            t3346_max_s: 3600,
            max_devices_reported: 1000,
            max_devices: 1 << 20,
            max_cells: 1 << 16,
            // A natural crowd mixes registered phones (5G-GUTI / 5G-S-TMSI) and new devices;
            // a re-flashed cohort or a SUCI flood is nearly all SUCI.
            suci_share: 0.75,
            suci_share_ratio: 3.0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("n2.{0}: {1}")]
    Invalid(&'static str, &'static str),
}

impl N2Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |f, why| Err(SettingsError::Invalid(f, why));
        if !above(self.cell_ratio, 1.0) {
            return bad("cell_ratio", "must be above 1");
        }
        if !above(self.cell_min_rate, 0.0) || !above(self.cell_prior_rate, 0.0) || !above(self.rate_smoothing_s, 0.0) {
            return bad("cell_min_rate", "rates must be positive");
        }
        if !above(self.device_window_s, 0.0) || self.device_repeat < 2 {
            return bad("device_repeat", "a repeater needs at least 2 attempts in a positive window");
        }
        if !(0.0..=1.0).contains(&self.offender_share) || !(0.0..=1.0).contains(&self.consistency) {
            return bad("offender_share", "shares are within 0..=1");
        }
        if !(self.contain_fraction > 0.0 && self.contain_fraction < 1.0) {
            return bad("contain_fraction", "must be within 0..1");
        }
        if self.min_offenders_barring < self.min_offenders || self.min_offenders_overload < self.min_offenders_barring {
            return bad("min_offenders_overload", "levels must need at least as many offenders as the one below");
        }
        if self.reduction_min_pct == 0 || self.reduction_max_pct > 99 || self.reduction_min_pct > self.reduction_max_pct
        {
            return bad(
                "reduction_max_pct",
                "1 <= reduction_min_pct <= reduction_max_pct <= 99 (TS 38.413 §9.3.1.106)",
            );
        }
        if !(4..=512).contains(&self.barring_time_s) {
            return bad("barring_time_s", "4..=512 (TS 38.331 uac-BarringTime)");
        }
        if self.barring_categories.iter().any(|c| *c == 0 || *c == 2 || *c > 63) {
            return bad("barring_categories", "access categories 1 and 3..=63 only (0 is MT, 2 emergency)");
        }
        if self.persist_windows == 0 || self.escalate_windows == 0 || self.quiet_windows == 0 {
            return bad("persist_windows", "window counts must be at least 1");
        }
        if !(self.suci_share > 0.0 && self.suci_share <= 1.0 && above(self.suci_share_ratio, 1.0)) {
            return bad("suci_share", "0 < suci_share <= 1 and suci_share_ratio above 1");
        }
        if !(self.headroom.is_finite() && self.headroom >= 1.0 && above(self.baseline_half_life_s, 0.0)) {
            return bad("headroom", "headroom >= 1 and a positive baseline half-life");
        }
        Ok(())
    }
}

/// `x > min`, and a finite number (NaN from a config file is refused).
fn above(x: f64, min: f64) -> bool {
    x.is_finite() && x > min
}
