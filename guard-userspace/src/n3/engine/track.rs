//! Per-device state: a fixed-size record (no growth with time; one allocation only while the
//! device is staged, its boxed stage) holding the last counters, the last window's rates, a
//! learned baseline and a burst tracker. Its layout by part and why each type is as narrow as it
//! is: docs/controller.md, "Memory"; the size bounds are at the end of this file.

use guard_common::abi::{CellKey, L3Addr, STAGE_OBSERVE};

use super::cell_ids::CellId;
pub(super) use super::stage::{Stage, StageState};
use crate::config::Config;

/// Smoothing of the "current" burst period statistics (fast, so jittered chatty timing still
/// settles within a few bursts); the learned baseline uses the much slower configured horizon.
const FAST_ALPHA: f64 = 0.3;
/// Smoothing of the learned burst size (bursts are rarer than windows).
const BURST_ALPHA: f64 = 0.125;

/// The last window of one device, computed from counter deltas.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Window {
    /// Offered packets per second (the data plane counts packets on arrival).
    pub rate: f64,
    /// Offered T-PDU bits per second (the data plane counts the octets of every G-PDU's T-PDU
    /// on arrival, `DeviceState::bytes`: what a byte limit and a UPF's MBR count).
    pub bps: f64,
    /// Evidence only (the audit's `over_limit_pps`, `dropped_pps`; containment counts
    /// `dropped` / `packets`): single precision is 7 significant digits of a figure operators read.
    pub over_pps: f32,
    pub drop_pps: f32,
    pub packets: u64,
    pub dropped: u64,
}

/// Learned normal behaviour, updated only while the device is unstaged and not over profile.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Baseline {
    /// The learned packet profile: double precision, as every ratio test divides by it.
    pub mean: f64,
    /// Evidence only (`baseline_sd`): single precision.
    pub var: f32,
    /// The byte profile beside the packet profile: learned T-PDU bits per second, from the same
    /// windows with the same rules (the volume form of `mean`).
    pub bits_mean: f64,
    /// Seconds of history behind `mean`.
    pub learned_s: f64,
    pub samples: u32,
    /// Mean packets per burst (0 = unknown) and how many bursts taught it. Single precision: the
    /// excessive test compares a burst's whole packets with 8x it, and an f32 holds a mean of
    /// whole packets to 7 significant digits (computed in f64, rounded once per burst).
    pub burst_mean: f32,
    /// Mean T-PDU octets per burst, learned with `burst_mean` (the chatty test's volume form).
    pub burst_octets: f32,
    pub bursts: u32,
}

impl Baseline {
    fn learn(&mut self, x: f64, bits: f64, dt_s: f64, horizon_s: f64) {
        // Cumulative mean for the first samples, then an EWMA with the configured time constant.
        let alpha = (dt_s / horizon_s).max(1.0 / f64::from(self.samples + 1)).min(1.0);
        let d = x - self.mean;
        self.mean += alpha * d;
        self.bits_mean += alpha * (bits - self.bits_mean);
        self.var = ((1.0 - alpha) * (f64::from(self.var) + alpha * d * d)) as f32;
        self.learned_s += dt_s;
        self.samples = self.samples.saturating_add(1);
    }

    pub fn sd(&self) -> f64 {
        f64::from(self.var).max(0.0).sqrt()
    }
}

/// Bursts: runs of windows with packets, separated by idle windows.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Bursts {
    pub in_burst: bool,
    pub pkts: u64,
    pub dur_ns: u64,
    pub last_onset_ns: u64,
    pub prev_onset_ns: u64,
    /// T-PDU octets of the burst going on (f32: a burst's volume to 7 digits is plenty).
    pub octets: f32,
    /// Whether the latest completed burst was excessive.
    pub last_excessive: bool,
    /// Inter-onset intervals measured in the current regime (normal or excessive bursts).
    pub intervals: u32,
    /// Fast EWMA of the inter-onset period (s) and of its absolute deviation. Single precision
    /// (updated in f64, stored rounded): periods are measured to ± a tick, against a CV bound of
    /// 0.5 and a peak ratio of 4, and 7 significant digits of seconds are far finer than that.
    pub period_s: f32,
    pub period_absdev: f32,
    /// The latest completed burst.
    pub last_pkts: u64,
    pub last_octets: f32,
    pub last_dur_ns: u64,
    /// Consecutive excessive bursts.
    pub excessive_streak: u32,
    /// An excessive burst ended in this window.
    pub excessive_now: bool,
    /// An onset happened in this window.
    pub onset_now: bool,
    /// EWMA of "this burst started in a synchronised-onset window" (single precision: a fraction
    /// judged against 0.5).
    pub synced: f32,
    /// Consecutive intervals off the expected period by the cohort factor.
    pub period_dev_streak: u32,
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
        if self.last_dur_ns == 0 {
            0.0
        } else {
            f64::from(self.period_s) * 1e9 / self.last_dur_ns as f64
        }
    }
}

/// Everything the engine keeps per device.
#[derive(Clone, Debug, Default)]
pub(super) struct Track {
    /// The gNB last seen, as its id in the engine's `CellIds`.
    pub cell: CellId,
    pub teid: u32,
    pub ue: L3Addr,
    pub inner_dst: L3Addr,
    /// One more than the index into `Config::groups`, 0 for none (`group()`, `set_group()`): 4
    /// bytes where an `Option<usize>` took 16.
    pub group: u32,
    pub primed: bool,
    pub seen_ns: u64,
    /// Last window with packets (or first sighting): the eviction order.
    pub active_ns: u64,
    pub packets: u64,
    /// Cumulative T-PDU octets as last read (`DeviceState::bytes`).
    pub bytes: u64,
    pub over_limit: u64,
    pub dropped: u64,
    pub w: Window,
    pub base: Baseline,
    pub bursts: Bursts,
    /// Consecutive windows at or above the shape trigger ratio ...
    pub flood_streak: u32,
    /// ... the time they span, and their packets (confirmation by volume).
    pub flood_ns: u64,
    pub flood_pkts: u64,
    /// Last time the device deviated from its group's profile, and how (bit 0: destination,
    /// bit 1: period, bit 2: volume).
    pub last_deviation_ns: u64,
    pub deviation: u8,
    /// Consecutive windows at or above `classify.cohort.volume_factor` × its byte profile.
    pub volume_dev_streak: u32,
    pub stage: Stage,
    /// The tick (its `now`) this track was last stepped: a device read twice in one tick, or
    /// both read and notable, is stepped once.
    pub stepped_ns: u64,
    /// Mirrors membership of `Engine::notable`, so only changes cost a set operation.
    pub notable: bool,
    /// The tick (its `now`) whose reading computed `w`; `w` is this tick's window when equal.
    pub fresh_ns: u64,
}

pub(super) const DEV_DESTINATION: u8 = 1;
pub(super) const DEV_PERIOD: u8 = 2;
pub(super) const DEV_VOLUME: u8 = 4;

/// One reading of a device's cumulative counters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reading {
    pub at_ns: u64,
    pub cell: CellKey,
    pub packets: u64,
    /// T-PDU octets (`DeviceState::bytes`, also in events).
    pub bytes: u64,
    pub over_limit: u64,
    /// Not in ring-buffer events: `None` keeps the previous value.
    pub dropped: Option<u64>,
    pub inner_dst: Option<L3Addr>,
    pub ue: Option<L3Addr>,
    pub teid: Option<u32>,
}

impl Track {
    /// A device first seen, with the UE address its first reading gave.
    pub fn new(ue: L3Addr) -> Self {
        Track { ue, ..Track::default() }
    }

    /// The device's group: its index into `Config::groups`.
    pub fn group(&self) -> Option<usize> {
        (self.group as usize).checked_sub(1)
    }

    /// An index of `u32::MAX` or more cannot occur (the groups are a `Vec` of configured
    /// sections), so every group is kept.
    pub fn set_group(&mut self, group: Option<usize>) {
        self.group = group.and_then(|g| u32::try_from(g + 1).ok()).unwrap_or(0);
    }

    /// The rate this device is judged against: its group's declared rate, else its learned
    /// baseline once warm, else the data plane's profile limit; never below the configured floor
    /// nor (for learned profiles) above the observe limit, so a slow ramp cannot teach the
    /// engine an arbitrarily high profile.
    pub fn profile(&self, cfg: &Config) -> f64 {
        let floor = cfg.classify.min_profile_pps;
        let ceiling = cfg.dataplane.observe.pps as f64;
        if let Some(p) = self.group().and_then(|g| cfg.groups.get(g)).and_then(|g| g.expected_pps) {
            return p.max(floor);
        }
        if self.warm(cfg) {
            self.base.mean.clamp(floor, ceiling)
        } else {
            ceiling
        }
    }

    pub fn warm(&self, cfg: &Config) -> bool {
        self.base.learned_s >= cfg.classify.warmup.as_secs_f64()
    }

    /// The byte profile, in T-PDU bits per second: the learned one once warm, clamped to
    /// `classify.min_profile_rate` and (if set) `dataplane.observe.rate`, else that observe rate;
    /// infinite (nothing to judge against) for a cold device on a configuration without a byte
    /// profile.
    pub fn byte_profile(&self, cfg: &Config) -> f64 {
        let floor = cfg.classify.min_profile_rate.bits_per_sec() as f64;
        let ceiling = match cfg.dataplane.observe.rate.bits_per_sec() {
            0 => f64::INFINITY,
            r => r as f64,
        };
        if self.warm(cfg) {
            self.base.bits_mean.clamp(floor, ceiling.max(floor))
        } else {
            ceiling
        }
    }

    pub fn packet_ratio(&self, cfg: &Config) -> f64 {
        self.w.rate / self.profile(cfg)
    }

    /// The offered byte rate over the byte profile (0 with no byte profile to judge against).
    pub fn volume_ratio(&self, cfg: &Config) -> f64 {
        let p = self.byte_profile(cfg);
        if p.is_finite() && p > 0.0 {
            self.w.bps / p
        } else {
            0.0
        }
    }

    /// How far above its norm the device is: packets or volume, whichever is further (a device
    /// sending large packets at its usual packet rate leaves its norm by volume alone).
    pub fn ratio(&self, cfg: &Config) -> f64 {
        self.packet_ratio(cfg).max(self.volume_ratio(cfg))
    }

    /// A flood by volume: over the shape trigger by bytes but not by packets.
    pub fn volume_flood(&self, cfg: &Config) -> bool {
        let trigger = cfg.ladder.shape.trigger_ratio;
        self.volume_ratio(cfg) >= trigger && self.packet_ratio(cfg) < trigger
    }

    pub fn reset_flood(&mut self) {
        self.flood_streak = 0;
        self.flood_ns = 0;
        self.flood_pkts = 0;
    }

    /// Whether the run of over-profile readings confirms a flood: persistence
    /// (`trigger_windows` readings in a row) or volume (`volume_bursts` burst allowances of
    /// packets over at least `volume_for`). A burst within the device's allowances, however
    /// steep, needs persistence.
    pub fn flood_confirmed(&self, cfg: &Config) -> bool {
        let s = &cfg.ladder.shape;
        if self.flood_streak == 0 {
            return false;
        }
        if self.flood_streak >= s.trigger_windows {
            return true;
        }
        let allowance = (cfg.dataplane.observe.burst as f64).max(self.burst_threshold(cfg));
        s.volume_bursts > 0.0
            && self.flood_ns >= s.volume_for.0
            && self.flood_pkts as f64 >= s.volume_bursts * allowance
    }

    /// Packets above which a burst is excessive (the chatty test).
    pub fn burst_threshold(&self, cfg: &Config) -> f64 {
        let ch = &cfg.classify.chatty;
        (ch.burst_ratio * self.burst_profile(cfg)).max(ch.min_burst_packets as f64)
    }

    /// T-PDU octets above which a burst is excessive (the chatty test's volume form): the burst
    /// size it learned in octets, by the same ratio and under the same rules as in packets;
    /// before two bursts taught it, the data plane's byte burst allowance, or nothing (infinite)
    /// on a configuration without a byte profile, as a cold device's byte profile.
    pub fn burst_bytes_threshold(&self, cfg: &Config) -> f64 {
        let ch = &cfg.classify.chatty;
        let profile = if self.base.bursts >= 2 {
            f64::from(self.base.burst_octets)
        } else {
            let obs = &cfg.dataplane.observe;
            match obs.rate.bits_per_sec() {
                0 => return f64::INFINITY,
                // `burst_bytes` 0 is one second of the rate, as the data plane reads it.
                r => (if obs.burst_bytes == 0 { r / 8 } else { obs.burst_bytes }) as f64 / ch.burst_ratio,
            }
        };
        (ch.burst_ratio * profile).max(ch.min_burst_bytes as f64)
    }

    /// The latest burst was excessive by volume alone: its octets over the volume threshold, its
    /// packets within the packet one (few large packets), so its stage needs a byte rate.
    pub fn burst_by_volume(&self, cfg: &Config) -> bool {
        let b = &self.bursts;
        f64::from(b.last_octets) > self.burst_bytes_threshold(cfg) && b.last_pkts as f64 <= self.burst_threshold(cfg)
    }

    /// Packets per burst this device is expected to send.
    pub fn burst_profile(&self, cfg: &Config) -> f64 {
        let ch = &cfg.classify.chatty;
        if let Some(b) = self.group().and_then(|g| cfg.groups.get(g)).and_then(|g| g.expected_burst) {
            return b as f64;
        }
        if self.base.bursts >= 2 {
            f64::from(self.base.burst_mean)
        } else {
            // No history: judged against the data plane's burst allowance.
            cfg.dataplane.observe.burst as f64 / ch.burst_ratio
        }
    }

    /// Fold one reading in. Returns false when it only primed the counters (first reading, or
    /// the data plane re-created the entry and the counters restarted).
    /// The caller has set `cell` to `r.cell`'s id (the engine's `CellIds` counts them).
    pub fn update(&mut self, r: &Reading, cfg: &Config) -> bool {
        if let Some(d) = r.inner_dst {
            self.inner_dst = d;
        }
        if let Some(u) = r.ue {
            self.ue = u;
        }
        if let Some(t) = r.teid {
            self.teid = t;
        }
        let dropped = r.dropped.unwrap_or(self.dropped);
        let restarted = r.packets < self.packets
            || r.bytes < self.bytes
            || r.over_limit < self.over_limit
            || dropped < self.dropped;
        if !self.primed || restarted || r.at_ns <= self.seen_ns {
            if !self.primed || restarted {
                self.primed = true;
                self.active_ns = r.at_ns;
                self.seen_ns = r.at_ns;
                self.packets = r.packets;
                self.bytes = r.bytes;
                self.over_limit = r.over_limit;
                self.dropped = dropped;
            }
            self.w = Window::default();
            return false;
        }
        let dt_ns = r.at_ns - self.seen_ns;
        // A window this short (a walk slice read just after an event, or the reverse) says too
        // little about the rate to start or break a run of over-profile readings: it joins the
        // run going on, if any, and is otherwise merged into the next reading's window.
        let short = dt_ns < cfg.guard.tick.0 / 4;
        if short && self.flood_streak == 0 {
            return false;
        }
        let dt_s = dt_ns as f64 / 1e9;
        let dp = r.packets - self.packets;
        let w = Window {
            rate: dp as f64 / dt_s,
            bps: (r.bytes - self.bytes) as f64 * 8.0 / dt_s,
            over_pps: ((r.over_limit - self.over_limit) as f64 / dt_s) as f32,
            drop_pps: ((dropped - self.dropped) as f64 / dt_s) as f32,
            packets: dp,
            dropped: dropped - self.dropped,
        };
        self.w = w;
        self.seen_ns = r.at_ns;
        if dp > 0 {
            self.active_ns = r.at_ns;
        }
        self.packets = r.packets;
        self.bytes = r.bytes;
        self.over_limit = r.over_limit;
        self.dropped = dropped;

        if short {
            self.flood_ns = self.flood_ns.saturating_add(dt_ns);
            self.flood_pkts = self.flood_pkts.saturating_add(dp);
        } else if self.ratio(cfg) >= cfg.ladder.shape.trigger_ratio {
            self.flood_streak = self.flood_streak.saturating_add(1);
            self.flood_ns = self.flood_ns.saturating_add(dt_ns);
            self.flood_pkts = self.flood_pkts.saturating_add(dp);
        } else {
            self.reset_flood();
        }
        self.learn(cfg, dt_s);
        self.track_bursts(cfg, r.at_ns, dt_ns);
        self.track_deviation(cfg, r.at_ns);
        true
    }

    /// Learn only from unstaged, non-suspect windows, and clamp the sample to
    /// `moderate_ratio` × the current mean: a crowd or a ramp can only move the baseline slowly.
    fn learn(&mut self, cfg: &Config, dt_s: f64) {
        if self.stage.stage != STAGE_OBSERVE || self.stage.manual || self.flood_streak > 0 {
            return;
        }
        let moderate = cfg.classify.flash.moderate_ratio;
        let cap = moderate * self.base.mean.max(cfg.classify.min_profile_pps);
        let cap_bits = moderate * self.base.bits_mean.max(cfg.classify.min_profile_rate.bits_per_sec() as f64);
        let (x, bits) =
            if self.warm(cfg) { (self.w.rate.min(cap), self.w.bps.min(cap_bits)) } else { (self.w.rate, self.w.bps) };
        self.base.learn(x, bits, dt_s, cfg.classify.baseline_horizon.as_secs_f64());
    }

    fn track_bursts(&mut self, cfg: &Config, now: u64, dt_ns: u64) {
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
            if let (Some(p), true) = (expected_period, b.last_onset_ns > 0) {
                let interval = (now - b.last_onset_ns) as f64 / 1e9;
                let f = cfg.classify.cohort.period_factor;
                let p = p.as_secs_f64();
                let off = interval * f <= p || interval >= p * f;
                b.period_dev_streak = if off { b.period_dev_streak.saturating_add(1) } else { 0 };
            }
            b.prev_onset_ns = b.last_onset_ns;
            b.last_onset_ns = now;
            b.in_burst = true;
            b.pkts = 0;
            b.octets = 0.0;
            b.dur_ns = 0;
        }
        if active {
            b.pkts = b.pkts.saturating_add(self.w.packets);
            b.octets += octets;
            b.dur_ns = b.dur_ns.saturating_add(dt_ns);
            return;
        }
        if !b.in_burst {
            return;
        }
        // A burst just ended.
        b.in_burst = false;
        b.last_pkts = b.pkts;
        b.last_octets = b.octets;
        b.last_dur_ns = b.dur_ns;
        // Excessive in packets or, its volume form, in octets: one regime, one streak, the same
        // periodicity and shortness tests (`classify::is_chatty`).
        let excessive = b.pkts as f64 > threshold || f64::from(b.octets) > threshold_bytes;
        b.excessive_now = excessive;
        b.excessive_streak = if excessive { b.excessive_streak.saturating_add(1) } else { 0 };
        // The period statistics describe one regime: when the device switches between normal and
        // excessive bursts they restart, so a pattern is measured between bursts of its own kind.
        if excessive != b.last_excessive {
            b.intervals = 0;
            b.period_s = 0.0;
            b.period_absdev = 0.0;
        } else if b.prev_onset_ns > 0 {
            let interval = (b.last_onset_ns - b.prev_onset_ns) as f64 / 1e9;
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
            self.base.burst_mean = (mean + alpha * (b.pkts as f64 - mean)) as f32;
            self.base.burst_octets += alpha as f32 * (b.octets - self.base.burst_octets);
            self.base.bursts = self.base.bursts.saturating_add(1);
        }
    }

    fn track_deviation(&mut self, cfg: &Config, now: u64) {
        let Some(g) = self.group().and_then(|g| cfg.groups.get(g)) else {
            return;
        };
        let mut dev = 0;
        if self.w.packets > 0 && !g.server_allowed(&self.inner_dst) {
            dev |= DEV_DESTINATION;
        }
        if self.bursts.period_dev_streak >= 2 {
            dev |= DEV_PERIOD;
        }
        let over = self.w.packets > 0 && self.volume_ratio(cfg) >= cfg.classify.cohort.volume_factor;
        self.volume_dev_streak = if over { self.volume_dev_streak.saturating_add(1) } else { 0 };
        if self.volume_dev_streak >= 2 {
            dev |= DEV_VOLUME;
        }
        if dev != 0 {
            self.deviation = dev;
            self.last_deviation_ns = now;
        }
    }

    /// Whether the device deviated from its group within `window_ns` before `now`.
    /// `w` was computed this tick.
    pub fn fresh(&self, now: u64) -> bool {
        self.fresh_ns == now && now != 0
    }

    pub fn deviating(&self, now: u64, window_ns: u64) -> bool {
        self.last_deviation_ns > 0 && now.saturating_sub(self.last_deviation_ns) < window_ns
    }

    /// Packets per second this device contributes to its cell after its own stage.
    pub fn demand(&self) -> f64 {
        self.w.rate.min(self.stage.allowance_pps)
    }

    /// T-PDU bits per second this device contributes to its cell after its own stage: its
    /// offered bit rate in the share of its packets the stage lets through, and at most the
    /// stage's byte rate.
    pub fn demand_bps(&self) -> f64 {
        let passed = if self.w.rate > 0.0 { (self.demand() / self.w.rate).min(1.0) } else { 0.0 };
        let bps = self.w.bps * passed;
        match self.stage.bytes.bits_per_sec() {
            0 => bps,
            cap => bps.min(cap as f64),
        }
    }
}

// The record's size is the controller's memory: at 1M devices every byte here is 1 MiB resident
// (issue 19's goal is 300 MiB for the whole process; docs/controller.md, "Memory"). A field that
// grows it past these bounds fails the build here: make room (a narrower type, a field moved to
// the boxed stage, which only staged devices pay for) or raise the bound with the measured RSS.
// `Track` is 336 bytes: 320 after issue 19's shrink, plus the chatty volume form's three f32
// fields (16 with alignment). No headroom is left: the next field makes room or raises the bound.
const _: () = assert!(std::mem::size_of::<Track>() <= 336, "Track grew past 336 bytes (docs/controller.md, Memory)");
const _: () = assert!(std::mem::size_of::<Window>() <= 40, "Window grew past 40 bytes");
const _: () = assert!(std::mem::size_of::<Baseline>() <= 48, "Baseline grew past 48 bytes");
const _: () = assert!(std::mem::size_of::<Bursts>() <= 88, "Bursts grew past 88 bytes");
const _: () = assert!(std::mem::size_of::<Stage>() == 8, "a track's stage must stay one pointer (boxed when staged)");
