//! Per-device state: a fixed-size record (no growth with time; one allocation only while the
//! device is staged, its boxed stage) holding the last counters, the last window's rates, a
//! learned baseline and a burst tracker. Its layout by part and why each type is as narrow as it
//! is: docs/controller.md, "Memory"; the size bounds are at the end of this file.

use guard_common::abi::{CellKey, DeviceKey, L3Addr, STAGE_OBSERVE};

pub(super) use super::bursts::Bursts;
use super::cell_ids::CellId;
pub(super) use super::stage::{Stage, StageState};
use super::stamp::{after, age, age_ns, Ms, MAX_AGE_MS, NS_PER_MS};
use crate::config::Config;

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
    /// This window's packets and drops, saturating at 2^32 - 1 (a window is one device between
    /// two readings: at most a walk, tens of seconds, so even a 10 Mpps device stays far below).
    pub packets: u32,
    pub dropped: u32,
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
    /// Milliseconds of history behind `mean` (saturating at 49.7 days; the warm-up is minutes):
    /// the windows' whole-millisecond lengths summed exactly, where an `f64` of seconds summed
    /// them rounded.
    pub learned_ms: u32,
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
    fn learn(&mut self, x: f64, bits: f64, dt_ms: u32, horizon_s: f64) {
        let dt_s = (u64::from(dt_ms) * NS_PER_MS) as f64 / 1e9;
        // Cumulative mean for the first samples, then an EWMA with the configured time constant.
        let alpha = (dt_s / horizon_s).max(1.0 / f64::from(self.samples + 1)).min(1.0);
        let d = x - self.mean;
        self.mean += alpha * d;
        self.bits_mean += alpha * (bits - self.bits_mean);
        self.var = ((1.0 - alpha) * (f64::from(self.var) + alpha * d * d)) as f32;
        self.learned_ms = self.learned_ms.saturating_add(dt_ms);
        self.samples = self.samples.saturating_add(1);
    }

    pub fn sd(&self) -> f64 {
        f64::from(self.var).max(0.0).sqrt()
    }
}

/// Everything the engine keeps per device.
#[derive(Clone, Debug, Default)]
pub(super) struct Track {
    /// The device's key, kept in the record (`tracks.rs`): its 20 bytes fill the record's padding
    /// where a `(DeviceKey, Track)` pair padded each to 8 bytes.
    pub key: DeviceKey,
    /// The gNB last seen, as its id in the engine's `CellIds`.
    pub cell: CellId,
    pub teid: u32,
    /// The inner destination of the last G-PDU, as its id in the engine's destination table, kept
    /// only while the device is in a group that checks `servers` (the only reader: the cohort's
    /// destination test, for readings without one, i.e. events); 0 (none) otherwise.
    pub dst: CellId,
    /// One more than the index into `Config::groups`, 0 for none (`group()`, `set_group()`): 4
    /// bytes where an `Option<usize>` took 16.
    pub group: u32,
    pub primed: bool,
    /// The last reading's time.
    pub seen_ms: Ms,
    /// Last window with packets (or first sighting): the eviction order.
    pub active_ms: Ms,
    /// Cumulative packets and T-PDU octets as last read (`DeviceState::packets`, `bytes`).
    pub packets: u64,
    pub bytes: u64,
    /// The low 32 bits of the cumulative over-limit and drop counts as last read, diffed with
    /// wrapping arithmetic (`wrapped_delta`): exact while a device's counters advance by fewer
    /// than 2^31 between two of its readings (both count packets, so fewer than 2^31 packets:
    /// 107 Mpps from one device for a 20 s walk of 1M devices); a restart (the counters going
    /// back) is still told by `packets` and `bytes`, kept whole.
    pub over_limit: u32,
    pub dropped: u32,
    pub w: Window,
    pub base: Baseline,
    pub bursts: Bursts,
    /// Consecutive windows at or above the shape trigger ratio (saturating; compared with
    /// `trigger_windows`, at most 65535 by validation) ...
    pub flood_streak: u16,
    /// ... the time they span (ms, saturating), and their packets (saturating; judged against
    /// 4 burst allowances, thousands) (confirmation by volume).
    pub flood_ms: u32,
    pub flood_pkts: u32,
    /// Last time the device deviated from its group's profile (0: never), and how (bit 0:
    /// destination, bit 1: period, bit 2: volume).
    pub last_deviation_ms: Ms,
    pub deviation: u8,
    /// Consecutive windows at or above `classify.cohort.volume_factor` × its byte profile.
    pub volume_dev_streak: u16,
    pub stage: Stage,
    /// The tick (its `now`) this track was last stepped: a device read twice in one tick, or
    /// both read and notable, is stepped once (ticks are at least 10 ms apart).
    pub stepped_ms: Ms,
    /// Mirrors membership of `Engine::notable`, so only changes cost a set operation.
    pub notable: bool,
    /// The tick (its `now`) whose reading computed `w`; `w` is this tick's window when equal. 0
    /// when the last reading computed none or was an event pass's (which precedes a tick).
    pub fresh_ms: Ms,
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
    /// A device first seen.
    pub fn new(key: DeviceKey) -> Self {
        Track { key, ..Track::default() }
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
        u64::from(self.base.learned_ms) * NS_PER_MS >= cfg.classify.warmup.0
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
        self.flood_ms = 0;
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
        if u32::from(self.flood_streak) >= s.trigger_windows {
            return true;
        }
        let allowance = (cfg.dataplane.observe.burst as f64).max(self.burst_threshold(cfg));
        s.volume_bursts > 0.0
            && u64::from(self.flood_ms) * NS_PER_MS >= s.volume_for.0
            && f64::from(self.flood_pkts) >= s.volume_bursts * allowance
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
        f64::from(b.last_octets) > self.burst_bytes_threshold(cfg)
            && f64::from(b.last_pkts) <= self.burst_threshold(cfg)
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

    /// Fold one reading in. Returns false when it only primed the counters (first reading, the
    /// data plane re-created the entry and the counters restarted, or an event older than the
    /// last reading with counters behind it).
    /// The caller has set `cell` to `r.cell`'s id (the engine's `CellIds` counts them) and
    /// `r.inner_dst` to the destination the cohort test judges (the kept one for an event).
    pub fn update(&mut self, r: &Reading, cfg: &Config) -> bool {
        if let Some(t) = r.teid {
            self.teid = t;
        }
        let at = super::stamp::ms(r.at_ns);
        // Events carry no drops: as many as last read.
        let dropped = r.dropped.map_or(self.dropped, |d| d as u32);
        let over_limit = r.over_limit as u32;
        let (d_over, d_dropped) = (wrapped_delta(over_limit, self.over_limit), wrapped_delta(dropped, self.dropped));
        // Counters behind the track's: the data plane re-created the entry (they restarted), or
        // this is an event older than the last reading, taken before it. Either way the track is
        // re-primed from this reading, its time and counters together.
        let behind = r.packets < self.packets || r.bytes < self.bytes || d_over.is_none() || d_dropped.is_none();
        if !self.primed || behind || !after(at, self.seen_ms) {
            if !behind && r.dropped.is_none() {
                // An event older than the last reading, with the same counters (`over_since`
                // asks for a primed track itself).
                self.over_since(at, cfg);
            }
            if !self.primed || behind {
                self.primed = true;
                self.active_ms = at;
                self.seen_ms = at;
                self.packets = r.packets;
                self.bytes = r.bytes;
                self.over_limit = over_limit;
                self.dropped = dropped;
            }
            self.w = Window::default();
            return false;
        }
        let dt_ms = age(at, self.seen_ms);
        let dt_ns = u64::from(dt_ms) * NS_PER_MS;
        // A window this short (a walk slice read just after an event, or the reverse) says too
        // little about the rate to start or break a run of over-profile readings: it joins the
        // run going on, if any, and is otherwise merged into the next reading's window.
        let short = dt_ns < cfg.guard.tick.0 / 4;
        if short && self.flood_streak == 0 {
            if r.dropped.is_none() && self.at_observe() {
                // An over-limit event: the device went over its profile here, so the next window
                // begins here, its counters and time together. Merged, the short window's time at
                // rest diluted the flood's first window: a 10x flood read 250 ms before its onset
                // showed 7.96x over 1.26 s and waited a second more (BENCHMARKS.md §21).
                self.trace_dated(
                    at,
                    "an over-limit event a short window after the last reading begins the next window",
                );
                self.seen_ms = at;
                if r.packets > self.packets {
                    self.active_ms = at;
                }
                self.packets = r.packets;
                self.bytes = r.bytes;
                self.over_limit = over_limit;
            }
            return false;
        }
        let dt_s = dt_ns as f64 / 1e9;
        let dp = r.packets - self.packets;
        let w = Window {
            rate: dp as f64 / dt_s,
            bps: (r.bytes - self.bytes) as f64 * 8.0 / dt_s,
            over_pps: (f64::from(d_over.unwrap_or(0)) / dt_s) as f32,
            drop_pps: (f64::from(d_dropped.unwrap_or(0)) / dt_s) as f32,
            packets: sat32(dp),
            dropped: d_dropped.unwrap_or(0),
        };
        self.w = w;
        self.seen_ms = at;
        if dp > 0 {
            self.active_ms = at;
        }
        self.packets = r.packets;
        self.bytes = r.bytes;
        self.over_limit = over_limit;
        self.dropped = dropped;

        if short {
            self.flood_ms = self.flood_ms.saturating_add(dt_ms);
            self.flood_pkts = self.flood_pkts.saturating_add(sat32(dp));
        } else if self.ratio(cfg) >= cfg.ladder.shape.trigger_ratio {
            self.flood_streak = self.flood_streak.saturating_add(1);
            self.flood_ms = self.flood_ms.saturating_add(dt_ms);
            self.flood_pkts = self.flood_pkts.saturating_add(sat32(dp));
        } else {
            // Why a flood took longer to pin than its evidence needs (`RUST_LOG=flood_run=trace`):
            // a window below the trigger that broke a run, or that a run could have started from.
            if self.flood_streak > 0 || self.ratio(cfg) >= cfg.ladder.release_ratio {
                tracing::trace!(
                    target: "flood_run",
                    key = %super::decision::device_key_str(&self.key),
                    at_ms = at,
                    dt_ms,
                    packets = dp,
                    ratio = self.ratio(cfg),
                    streak = self.flood_streak,
                    run_ms = self.flood_ms,
                    run_packets = self.flood_pkts,
                    "a window below the shape trigger"
                );
            }
            self.reset_flood();
        }
        self.learn(cfg, dt_ms);
        self.track_bursts(cfg, at, dt_ms);
        self.track_deviation(cfg, at, &r.inner_dst.unwrap_or_default());
        true
    }

    /// An over-limit event stamped `at`, older than this track's last reading: a walk read the
    /// device a few milliseconds after the data plane raised the event, and the reading was
    /// folded first (in a tick a walk's reading wins over the same tick's events,
    /// `Engine::tick_pass`; or the event was drained after the tick). The event says the device
    /// was over its profile from `at` on. Without it, a flood whose run of over-profile readings
    /// begins with the next window would begin at the reading, and its next event, one
    /// `event_gap` (1 s) after this one on the data plane's clock, would close a run a few
    /// milliseconds short of `volume_for` (1 s): the flood waited a third event, a second more
    /// (BENCHMARKS.md §21: every offender the controller bench pinned after 2 s).
    ///
    /// The last reading is re-dated to `at`, its counters kept: the next window is longer by the
    /// difference and carries none of that time's packets, so its rate can only be understated,
    /// never overstated. Only at observe before a run has begun (where when a run began decides),
    /// and only by less than a short window (a quarter tick, as `update` reads one): an event
    /// older than that says nothing about the window now. (An event a short window *after* the
    /// last reading begins the next window the same way, in `update`.)
    pub fn over_since(&mut self, at: Ms, cfg: &Config) {
        let short_ms = cfg.guard.tick.0 / 4 / NS_PER_MS;
        if self.primed
            && self.at_observe()
            && self.flood_streak == 0
            && after(self.seen_ms, at)
            && u64::from(age(self.seen_ms, at)) < short_ms
        {
            self.trace_dated(at, "an over-limit event older than the last reading dates the next window");
            self.seen_ms = at;
        }
    }

    /// Log (`RUST_LOG=flood_run=trace`) that an over-limit event at `at` dates the next window,
    /// before the last reading's time is moved to it.
    fn trace_dated(&self, at: Ms, what: &str) {
        tracing::trace!(
            target: "flood_run",
            key = %super::decision::device_key_str(&self.key),
            event_ms = at,
            reading_ms = self.seen_ms,
            "{what}"
        );
    }

    /// At observe under the engine's management: where a run of over-profile readings decides.
    fn at_observe(&self) -> bool {
        self.stage.stage == STAGE_OBSERVE && !self.stage.manual && !self.stage.exempt
    }

    /// Moves every time this track keeps to at most [`MAX_AGE_MS`] before `now` (clearing the
    /// "never"-able ones), so none is ever half a wrap from `now` (`stamp.rs`). A full pass does
    /// it for every track.
    pub fn age_out(&mut self, now: Ms) {
        let old = |t: Ms| age(now, t) > MAX_AGE_MS;
        let floor = now.wrapping_sub(MAX_AGE_MS).max(1);
        for t in [&mut self.seen_ms, &mut self.active_ms, &mut self.stepped_ms] {
            if old(*t) {
                *t = floor;
            }
        }
        for t in [&mut self.bursts.last_onset_ms, &mut self.bursts.prev_onset_ms] {
            if *t != 0 && old(*t) {
                *t = floor;
            }
        }
        for t in [&mut self.fresh_ms, &mut self.last_deviation_ms] {
            if old(*t) {
                *t = 0;
            }
        }
    }

    /// Learn only from unstaged, non-suspect windows, and clamp the sample to
    /// `moderate_ratio` × the current mean: a crowd or a ramp can only move the baseline slowly.
    fn learn(&mut self, cfg: &Config, dt_ms: u32) {
        if self.stage.stage != STAGE_OBSERVE || self.stage.manual || self.flood_streak > 0 {
            return;
        }
        let moderate = cfg.classify.flash.moderate_ratio;
        let cap = moderate * self.base.mean.max(cfg.classify.min_profile_pps);
        let cap_bits = moderate * self.base.bits_mean.max(cfg.classify.min_profile_rate.bits_per_sec() as f64);
        let (x, bits) =
            if self.warm(cfg) { (self.w.rate.min(cap), self.w.bps.min(cap_bits)) } else { (self.w.rate, self.w.bps) };
        self.base.learn(x, bits, dt_ms, cfg.classify.baseline_horizon.as_secs_f64());
    }

    fn track_deviation(&mut self, cfg: &Config, now: Ms, inner_dst: &L3Addr) {
        let Some(g) = self.group().and_then(|g| cfg.groups.get(g)) else {
            return;
        };
        let mut dev = 0;
        if self.w.packets > 0 && !g.server_allowed(inner_dst) {
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
            self.last_deviation_ms = now;
        }
    }

    /// Whether the device deviated from its group within `window_ns` before `now`.
    /// `w` was computed this tick.
    pub fn fresh(&self, now: u64) -> bool {
        self.fresh_ms == super::stamp::ms(now) && self.fresh_ms != 0
    }

    pub fn deviating(&self, now: u64, window_ns: u64) -> bool {
        self.last_deviation_ms != 0 && age_ns(super::stamp::ms(now), self.last_deviation_ms) < window_ns
    }

    /// Whether the device's group checks inner destinations: only then is `dst` kept.
    pub fn checks_servers(&self, cfg: &Config) -> bool {
        self.group().and_then(|g| cfg.groups.get(g)).is_some_and(|g| !g.servers.is_empty())
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

/// How far a 32-bit counter's low bits advanced from `old` to `new`: `None` if they went back
/// (read as signed, as a restart of the counter; see `Track::over_limit`).
fn wrapped_delta(new: u32, old: u32) -> Option<u32> {
    let d = new.wrapping_sub(old);
    (d as i32 >= 0).then_some(d)
}

/// A count as `u32`, saturating.
fn sat32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// The record's size is the controller's memory: at 1M devices every byte here is 1 MiB resident
// (issue 19's goal is 300 MiB for the whole process; docs/controller.md, "Memory"). A field that
// grows it past these bounds fails the build here: make room (a narrower type, a field moved to
// the boxed stage, which only staged devices pay for) or raise the bound with the measured RSS.
// The sizes are exact: a shrink must lower them (and say so in docs/controller.md).
const _: () =
    assert!(std::mem::size_of::<Track>() == TRACK_BYTES, "Track is not TRACK_BYTES (docs/controller.md, Memory)");
const _: () = assert!(std::mem::size_of::<Window>() == 32, "Window is not 32 bytes");
const _: () = assert!(std::mem::size_of::<Baseline>() == 40, "Baseline is not 40 bytes");
const _: () = assert!(std::mem::size_of::<Bursts>() == 56, "Bursts is not 56 bytes");
const _: () = assert!(std::mem::size_of::<Stage>() == 8, "a track's stage must stay one pointer (boxed when staged)");
/// A track's bytes, its key included (the table's slot).
pub(super) const TRACK_BYTES: usize = 232;
