//! Pattern tests on top of the per-device state: chatty bursts (with cross-device onset
//! coincidence) and flash crowds. Floods need no more than `Track::flood_confirmed`.

use super::decision::Evidence;
use super::track::Track;
use crate::config::Config;

/// Windows of onset history kept for the "recent mean onsets per window".
const ONSET_HISTORY: usize = 64;
/// Smoothing of each device's synchronised-onset fraction.
const SYNC_ALPHA: f64 = 0.3;
/// A device counts as mostly synchronised above this fraction.
const SYNCED: f64 = 0.5;
/// Fewest "up" devices for a flash crowd, whatever the fraction (a tiny host is not a crowd).
const FLASH_MIN_DEVICES: u64 = 10;

/// Counts burst onsets per window across all devices, to tell whether a window's onsets are
/// synchronised (many more than usual start together: lock-step chatty devices).
#[derive(Debug)]
pub(super) struct OnsetSync {
    history: [u32; ONSET_HISTORY],
    next: usize,
    filled: usize,
}

impl Default for OnsetSync {
    fn default() -> Self {
        OnsetSync { history: [0; ONSET_HISTORY], next: 0, filled: 0 }
    }
}

impl OnsetSync {
    /// Record this window's onset count; returns whether it is a synchronised-onset window.
    pub fn window(&mut self, onsets: u32, cfg: &Config) -> bool {
        let ch = &cfg.classify.chatty;
        let mean = if self.filled == 0 {
            0.0
        } else {
            self.history[..self.filled].iter().map(|&n| f64::from(n)).sum::<f64>() / self.filled as f64
        };
        let hot = onsets >= ch.sync_min_devices && f64::from(onsets) >= ch.sync_factor * mean;
        self.history[self.next] = onsets;
        self.next = (self.next + 1) % ONSET_HISTORY;
        self.filled = (self.filled + 1).min(ONSET_HISTORY);
        hot
    }
}

/// Fold "did this device's burst start in a synchronised window" into its sync fraction.
pub(super) fn note_onset(t: &mut Track, hot: bool) {
    let x = if hot { 1.0 } else { 0.0 };
    let synced = f64::from(t.bursts.synced);
    t.bursts.synced = (synced + SYNC_ALPHA * (x - synced)) as f32;
}

/// Chatty (T3): consecutive excessive bursts, quasi-periodic, short relative to the period.
/// Synchronised onsets lower the number of bursts needed; timing jitter alone cannot hide the
/// per-device pattern, it only delays it. A burst is excessive in packets or, its volume form, in
/// T-PDU octets (`Track::track_bursts`): both forms face the same periodicity and shortness tests.
pub(super) fn is_chatty(t: &Track, cfg: &Config) -> bool {
    let ch = &cfg.classify.chatty;
    let b = &t.bursts;
    let needed = if f64::from(b.synced) >= SYNCED { ch.min_bursts_synced } else { ch.min_bursts };
    u32::from(b.excessive_streak) >= needed
        && u32::from(b.intervals) + 1 >= needed
        && b.period_cv() <= ch.max_period_cv
        && b.peak_ratio() >= ch.min_peak_ratio
}

/// Evidence describing one device's last window and pattern.
pub(super) fn device_evidence(t: &Track, cfg: &Config) -> Evidence {
    let profile = t.profile(cfg);
    let b = &t.bursts;
    let drop_ratio = if t.w.packets > 0 { Some(f64::from(t.w.dropped) / f64::from(t.w.packets)) } else { None };
    Evidence {
        rate_pps: Some(t.w.rate),
        profile_pps: Some(profile),
        ratio: Some(t.ratio(cfg)),
        rate_bps: Some(t.w.bps),
        profile_bps: Some(t.byte_profile(cfg)).filter(|p| p.is_finite()),
        baseline_pps: Some(t.base.mean),
        baseline_sd: Some(t.base.sd()),
        windows: Some(u32::from(t.flood_streak)),
        flood_s: (t.flood_streak > 0).then_some((u64::from(t.flood_ms) * super::stamp::NS_PER_MS) as f64 / 1e9),
        flood_packets: (t.flood_streak > 0).then_some(u64::from(t.flood_pkts)),
        over_limit_pps: Some(f64::from(t.w.over_pps)),
        dropped_pps: Some(f64::from(t.w.drop_pps)),
        drop_ratio,
        bursts: (b.excessive_streak > 0).then_some(u32::from(b.excessive_streak)),
        burst_packets: (b.last_pkts > 0).then_some(u64::from(b.last_pkts)),
        burst_bytes: (b.last_octets > 0.0).then_some(f64::from(b.last_octets).round() as u64),
        period_s: (b.intervals > 0).then_some(f64::from(b.period_s)),
        period_cv: (b.intervals > 1).then_some(b.period_cv()),
        peak_ratio: (b.intervals > 0 && b.last_dur_ms > 0).then_some(b.peak_ratio()),
        synced_fraction: (b.intervals > 0).then_some(f64::from(b.synced)),
        group: t.group().and_then(|g| cfg.groups.get(g)).map(|g| g.id),
        ..Evidence::default()
    }
}

/// This window's flash-crowd measurement: warm, sampled devices, and how many are moderately
/// above profile.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CrowdCount {
    pub active: u64,
    pub up: u64,
}

impl std::ops::AddAssign for CrowdCount {
    fn add_assign(&mut self, o: CrowdCount) {
        self.active += o.active;
        self.up += o.up;
    }
}

impl CrowdCount {
    pub fn add(&mut self, t: &Track, cfg: &Config, now: u64) {
        if t.fresh(now) && t.warm(cfg) && t.w.packets > 0 {
            self.active += 1;
            if t.ratio(cfg) >= cfg.classify.flash.moderate_ratio {
                self.up += 1;
            }
        }
    }

    pub fn fraction(&self) -> f64 {
        if self.active == 0 {
            0.0
        } else {
            self.up as f64 / self.active as f64
        }
    }

    /// T1: a broad, moderate rise. It is classified (and audited) but pins no device.
    pub fn is_flash_crowd(&self, cfg: &Config) -> bool {
        self.up >= FLASH_MIN_DEVICES && self.fraction() >= cfg.classify.flash.min_fraction
    }
}
