//! `[classify]`: how the engine learns profiles and tells traffic patterns apart (flash crowd,
//! chatty devices, cohorts).

use super::*;

/// `[classify]`: how the engine learns profiles and tells traffic patterns apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifySection {
    /// Time constant of the per-device baseline EWMA. Longer = harder to drag the baseline up by a
    /// slow ramp, slower to follow legitimate change.
    pub baseline_horizon: Dur,
    /// A device's own baseline counts only after this much history; before, it is judged against
    /// `dataplane.observe.pps`.
    pub warmup: Dur,
    /// Floor of any learned profile (pps), so a near-silent device is not flagged for a few packets.
    pub min_profile_pps: f64,
    /// Floor of any learned byte profile (T-PDU bit rate), likewise for a few large packets.
    pub min_profile_rate: Rate,
    /// A device's latest rate counts in cell/host aggregates until it is this old.
    pub stale_after: Dur,
    pub flash: FlashSection,
    pub chatty: ChattySection,
    pub cohort: CohortSection,
}

impl Default for ClassifySection {
    fn default() -> Self {
        ClassifySection {
            baseline_horizon: Dur::secs(600),
            warmup: Dur::secs(120),
            min_profile_pps: 10.0,
            min_profile_rate: Rate(BitRate(8_000)),
            stale_after: Dur::secs(5),
            flash: FlashSection::default(),
            chatty: ChattySection::default(),
            cohort: CohortSection::default(),
        }
    }
}

/// `[classify.flash]`: a flash crowd (T1) is many devices moderately above profile at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlashSection {
    /// rate / profile at or above which a device counts as "up" in a crowd.
    pub moderate_ratio: f64,
    /// Fraction (0..1] of active devices that must be up for a flash crowd.
    pub min_fraction: f64,
}

impl Default for FlashSection {
    fn default() -> Self {
        FlashSection { moderate_ratio: 2.0, min_fraction: 0.2 }
    }
}

/// `[classify.chatty]`: short excessive bursts then idle, quasi-periodic (T3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChattySection {
    /// Consecutive excessive bursts before a device is chatty.
    pub min_bursts: u32,
    /// The same, when most of its bursts started together with many other devices' bursts.
    pub min_bursts_synced: u32,
    /// Largest coefficient of variation of the inter-burst period still called quasi-periodic
    /// (±30% uniform jitter is a CV of about 0.17).
    pub max_period_cv: f64,
    /// Smallest period / burst-duration ratio (peak rate over mean rate).
    pub min_peak_ratio: f64,
    /// A burst is excessive above `burst_ratio` × the device's burst profile ...
    pub burst_ratio: f64,
    /// ... and above this many packets.
    pub min_burst_packets: u64,
    /// The volume form (issue 27): a burst is also excessive above `burst_ratio` × the device's
    /// learned burst size in T-PDU octets and above this many octets (16,000: about eleven
    /// 1,400-octet T-PDUs), so a few large packets in a burst the packet count allows are judged
    /// as a flood of small ones would be.
    pub min_burst_bytes: u64,
    /// A window is a synchronised-onset window when at least this many devices start a burst in it
    /// ...
    pub sync_min_devices: u32,
    /// ... and at least `sync_factor` × the recent mean onsets per window.
    pub sync_factor: f64,
}

impl Default for ChattySection {
    fn default() -> Self {
        ChattySection {
            min_bursts: 4,
            min_bursts_synced: 3,
            max_period_cv: 0.5,
            min_peak_ratio: 4.0,
            burst_ratio: 8.0,
            min_burst_packets: 50,
            min_burst_bytes: 16_000,
            sync_min_devices: 10,
            sync_factor: 3.0,
        }
    }
}

/// `[classify.cohort]`: a device group whose members change behaviour at once (T5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohortSection {
    /// Fewest deviating members for a cohort flag.
    pub min_members: u32,
    /// Fraction (0..1] of the group's recently active members that must deviate.
    pub min_fraction: f64,
    /// A period this many times shorter or longer than expected is a deviation.
    pub period_factor: f64,
    /// A member whose T-PDU bit rate is this many times its own byte profile, two windows in a
    /// row, deviates in volume (the volume form of a provisioning change: a new payload size or
    /// report content at the old period). Below the shape trigger: one member alone at this
    /// ratio is no offender, a cohort of them is a provisioning event.
    pub volume_factor: f64,
    /// Members deviating within this window count as "at once".
    pub window: Dur,
}

impl Default for CohortSection {
    fn default() -> Self {
        CohortSection {
            min_members: 5,
            min_fraction: 0.3,
            period_factor: 5.0,
            volume_factor: 4.0,
            window: Dur::secs(300),
        }
    }
}

impl Config {
    pub(super) fn validate_classify(&self, v: &mut Validator) {
        let c = &self.classify;
        v.check(c.baseline_horizon >= self.guard.tick, "classify.baseline_horizon", "must be at least one tick");
        v.check(c.min_profile_pps > 0.0, "classify.min_profile_pps", "must be > 0");
        v.check(
            c.min_profile_pps <= self.dataplane.observe.pps as f64,
            "classify.min_profile_pps",
            "must be <= dataplane.observe.pps (the profile ceiling)",
        );
        v.check(c.min_profile_rate.bits_per_sec() > 0, "classify.min_profile_rate", "must be > 0");
        v.check(
            self.dataplane.observe.rate.is_none() || c.min_profile_rate <= self.dataplane.observe.rate,
            "classify.min_profile_rate",
            "must be <= dataplane.observe.rate (the byte profile ceiling)",
        );
        v.check(c.stale_after >= self.guard.tick, "classify.stale_after", "must be at least one tick");
        v.fraction("classify.flash.min_fraction", c.flash.min_fraction);
        v.check(c.flash.moderate_ratio > 1.0, "classify.flash.moderate_ratio", "must be > 1");
        v.check(
            c.flash.moderate_ratio < self.ladder.shape.trigger_ratio,
            "classify.flash.moderate_ratio",
            "must be < ladder.shape.trigger_ratio (a crowd is moderate, a flood is not)",
        );
        let ch = &c.chatty;
        v.check(ch.min_bursts >= 2, "classify.chatty.min_bursts", "must be >= 2 (a period needs two bursts)");
        // A track counts bursts in 16 bits (docs/controller.md, "Memory").
        v.check(ch.min_bursts <= u32::from(u16::MAX), "classify.chatty.min_bursts", "must be <= 65535");
        v.check(
            ch.min_bursts_synced >= 2 && ch.min_bursts_synced <= ch.min_bursts,
            "classify.chatty.min_bursts_synced",
            "must be >= 2 and <= classify.chatty.min_bursts",
        );
        v.check(ch.max_period_cv > 0.0, "classify.chatty.max_period_cv", "must be > 0");
        v.check(ch.min_peak_ratio > 1.0, "classify.chatty.min_peak_ratio", "must be > 1");
        v.check(ch.burst_ratio > 1.0, "classify.chatty.burst_ratio", "must be > 1");
        v.check(ch.min_burst_packets > 0, "classify.chatty.min_burst_packets", "must be > 0");
        v.check(ch.min_burst_bytes > 0, "classify.chatty.min_burst_bytes", "must be > 0");
        v.check(ch.sync_min_devices > 0, "classify.chatty.sync_min_devices", "must be > 0");
        v.check(ch.sync_factor >= 1.0, "classify.chatty.sync_factor", "must be >= 1");
        let co = &c.cohort;
        v.check(co.min_members > 0, "classify.cohort.min_members", "must be > 0");
        v.fraction("classify.cohort.min_fraction", co.min_fraction);
        v.check(co.period_factor > 1.0, "classify.cohort.period_factor", "must be > 1");
        v.check(co.volume_factor > 1.0 && co.volume_factor.is_finite(), "classify.cohort.volume_factor", "must be > 1");
        v.check(co.window >= self.guard.tick, "classify.cohort.window", "must be at least one tick");
    }
}
