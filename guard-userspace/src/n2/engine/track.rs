//! The engine's per-cell and per-device tracking between windows.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct CellTrack {
    pub(super) last_at: u64,
    /// Seconds since the previous sample.
    pub(super) dt_s: f64,
    pub(super) last_count: u64,
    pub(super) primed: bool,
    /// This window's rate, and its EWMA (what hotness is judged on).
    pub(super) raw: f64,
    pub(super) rate: f64,
    pub(super) baseline: f64,
    pub(super) windows: u32,
    pub(super) hot: bool,
    pub(super) peer: L3Addr,
    pub(super) tac: u32,
    /// SUCI-only attempts: last cumulative counts, this window's rate and its EWMA.
    pub(super) suci_last: u64,
    pub(super) causes_last: [u32; RRC_CAUSE_SLOTS],
    pub(super) suci_raw: f64,
    pub(super) suci_rate: f64,
    /// The SUCI-only share learned in windows when the cell was not hot.
    pub(super) suci_base_share: f64,
    /// (at, SUCI-only attempts, by cause) per tick with any, within the device window.
    pub(super) suci_recent: VecDeque<(u64, u64, [u32; RRC_CAUSE_SLOTS])>,
    pub(super) suci_in_window: u64,
    /// Hot, and by its SUCI-only share a cell-pattern storm's cell.
    pub(super) pattern: bool,
    /// The other members' rate and baseline for this cell (fleet mode, fleet.rs), and whether
    /// only their sums made it hot.
    pub(super) others_rate: f64,
    pub(super) others_base: f64,
    pub(super) fleet_hot: bool,
    /// Warming up, and the others publish the cell far above their own learned baseline: this
    /// window is not learned (fleet.rs `holds_warmup`), within `warm_held_s`'s bound.
    pub(super) warm_hold: bool,
    /// Seconds of warm-up windows not learned because of the fleet (never reset: the bound is
    /// per cell for the engine's life, so flickering summaries cannot renew it).
    pub(super) warm_held_s: f64,
}

impl CellTrack {
    pub(super) fn baseline_or_prior(&self, s: &N2Settings) -> f64 {
        if self.windows >= s.warmup_windows {
            self.baseline.max(1e-9)
        } else {
            s.cell_prior_rate
        }
    }

    /// The smoothed SUCI-only share of the cell's attempts.
    pub(super) fn suci_share(&self) -> f64 {
        if self.rate > 0.0 {
            (self.suci_rate / self.rate).min(1.0)
        } else {
            0.0
        }
    }

    /// The most frequent RRC cause of the SUCI-only attempts within the device window, and its
    /// share of them.
    pub(super) fn dominant_cause(&self) -> Option<(u32, f64)> {
        let mut by = [0u64; RRC_CAUSE_SLOTS];
        for (_, _, c) in &self.suci_recent {
            for (b, n) in by.iter_mut().zip(c) {
                *b += u64::from(*n);
            }
        }
        let total: u64 = by.iter().sum();
        let (i, n) = by.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))?;
        (total > 0 && i < RRC_CAUSE_SLOTS - 1).then(|| (i as u32, *n as f64 / total as f64))
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct DeviceTrack {
    pub(super) last_count: u64,
    pub(super) primed: bool,
    /// (at, attempts) per tick with attempts, within the device window.
    pub(super) recent: VecDeque<(u64, u64)>,
    pub(super) in_window: u64,
    pub(super) cell: N2CellKey,
    pub(super) peer: L3Addr,
    pub(super) seen_ns: u64,
}
