//! The burst tracker of a device (`Track::bursts`): runs of windows with packets separated by
//! idle windows, their sizes, periods and regularity, which the chatty and cohort tests read.

use guard_common::abi::STAGE_OBSERVE;

use super::stamp::{age_ns, Ms, NS_PER_MS};
use super::track::Track;
use crate::config::Config;

/// Smoothing of the "current" burst period statistics (fast, so jittered chatty timing still
/// settles within a few bursts); the learned baseline uses the much slower configured horizon.
const FAST_ALPHA: f64 = 0.3;
/// Smoothing of the learned burst size (bursts are rarer than windows).
const BURST_ALPHA: f64 = 0.125;

/// Bursts: runs of windows with packets, separated by idle windows.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Bursts {
    pub in_burst: bool,
    /// Packets of the burst going on, saturating (a burst is judged against 8x a mean of tens).
    pub pkts: u32,
    /// Its duration (ms, saturating), and the last two onsets (times, 0 = none).
    pub dur_ms: u32,
    pub last_onset_ms: Ms,
    pub prev_onset_ms: Ms,
    /// T-PDU octets of the burst going on (f32: a burst's volume to 7 digits is plenty).
    pub octets: f32,
    /// Whether the latest completed burst was excessive.
    pub last_excessive: bool,
    /// Inter-onset intervals measured in the current regime (normal or excessive bursts),
    /// saturating (16 bits: compared with `min_bursts`, at most 65535 by validation; the other
    /// reads are 0, 1, more).
    pub intervals: u16,
    /// Fast EWMA of the inter-onset period (s) and of its absolute deviation. Single precision
    /// (updated in f64, stored rounded): periods are measured to ± a tick, against a CV bound of
    /// 0.5 and a peak ratio of 4, and 7 significant digits of seconds are far finer than that.
    pub period_s: f32,
    pub period_absdev: f32,
    /// The latest completed burst.
    pub last_pkts: u32,
    pub last_octets: f32,
    pub last_dur_ms: u32,
    /// Consecutive excessive bursts (saturating; compared with `min_bursts`, at most 65535).
    pub excessive_streak: u16,
    /// An excessive burst ended in this window.
    pub excessive_now: bool,
    /// An onset happened in this window.
    pub onset_now: bool,
    /// EWMA of "this burst started in a synchronised-onset window" (single precision: a fraction
    /// judged against 0.5).
    pub synced: f32,
    /// Consecutive intervals off the expected period by the cohort factor.
    pub period_dev_streak: u16,
}

impl Bursts {
    /// Coefficient of variation of the period: mean absolute deviation scaled to a standard
    /// deviation (×1.25, exact for a normal distribution, close enough for jitter).
    pub fn period_cv(&self) -> f64 {
        if self.period_s > 0.0 {
            1.25 * f64::from(self.period_absdev) / f64::from(self.period_s)
        } else {
            f64::INFINITY
        }
    }

    /// Period over burst duration: how much higher the rate is in a burst than on average.
    pub fn peak_ratio(&self) -> f64 {
        if self.last_dur_ms == 0 {
            0.0
        } else {
            f64::from(self.period_s) * 1e9 / (u64::from(self.last_dur_ms) * NS_PER_MS) as f64
        }
    }
}

impl Track {
    pub(super) fn track_bursts(&mut self, cfg: &Config, now: Ms, dt_ms: u32) {
        let dt_ns = u64::from(dt_ms) * NS_PER_MS;
        let threshold = self.burst_threshold(cfg);
        let threshold_bytes = self.burst_bytes_threshold(cfg);
        // This window's T-PDU octets, from the bit rate its reading computed.
        let octets = (self.w.bps * dt_ns as f64 / 8e9) as f32;
        let expected_period = self.group().and_then(|g| cfg.groups.get(g)).and_then(|g| g.expected_period);
        let b = &mut self.bursts;
        b.onset_now = false;
        b.excessive_now = false;
        let active = self.w.packets > 0;
        if active && !b.in_burst {
            b.onset_now = true;
            if let (Some(p), true) = (expected_period, b.last_onset_ms != 0) {
                let interval = age_ns(now, b.last_onset_ms) as f64 / 1e9;
                let f = cfg.classify.cohort.period_factor;
                let p = p.as_secs_f64();
                let off = interval * f <= p || interval >= p * f;
                b.period_dev_streak = if off { b.period_dev_streak.saturating_add(1) } else { 0 };
            }
            b.prev_onset_ms = b.last_onset_ms;
            b.last_onset_ms = now;
            b.in_burst = true;
            b.pkts = 0;
            b.octets = 0.0;
            b.dur_ms = 0;
        }
        if active {
            b.pkts = b.pkts.saturating_add(self.w.packets);
            b.octets += octets;
            b.dur_ms = b.dur_ms.saturating_add(dt_ms);
            return;
        }
        if !b.in_burst {
            return;
        }
        // A burst just ended.
        b.in_burst = false;
        b.last_pkts = b.pkts;
        b.last_octets = b.octets;
        b.last_dur_ms = b.dur_ms;
        // Excessive in packets or, its volume form, in octets: one regime, one streak, the same
        // periodicity and shortness tests (`classify::is_chatty`).
        let excessive = f64::from(b.pkts) > threshold || f64::from(b.octets) > threshold_bytes;
        b.excessive_now = excessive;
        b.excessive_streak = if excessive { b.excessive_streak.saturating_add(1) } else { 0 };
        // The period statistics describe one regime: when the device switches between normal and
        // excessive bursts they restart, so a pattern is measured between bursts of its own kind.
        if excessive != b.last_excessive {
            b.intervals = 0;
            b.period_s = 0.0;
            b.period_absdev = 0.0;
        } else if b.prev_onset_ms != 0 {
            let interval = age_ns(b.last_onset_ms, b.prev_onset_ms) as f64 / 1e9;
            if b.intervals == 0 {
                b.period_s = interval as f32;
                b.period_absdev = 0.0;
            } else {
                let (period, absdev) = (f64::from(b.period_s), f64::from(b.period_absdev));
                b.period_absdev = (absdev + FAST_ALPHA * ((interval - period).abs() - absdev)) as f32;
                b.period_s = (period + FAST_ALPHA * (interval - period)) as f32;
            }
            b.intervals = b.intervals.saturating_add(1);
        }
        b.last_excessive = excessive;
        if !excessive && self.stage.stage == STAGE_OBSERVE {
            let alpha = if self.base.bursts < 8 { 1.0 / f64::from(self.base.bursts + 1) } else { BURST_ALPHA };
            let mean = f64::from(self.base.burst_mean);
            self.base.burst_mean = (mean + alpha * (f64::from(b.pkts) - mean)) as f32;
            self.base.burst_octets += alpha as f32 * (b.octets - self.base.burst_octets);
            self.base.bursts = self.base.bursts.saturating_add(1);
        }
    }
}
