//! `[ladder]` (the per-device stages) and `[capacity]` (the last-resort cell and host caps).

use super::*;

/// `[ladder]`: the per-device escalation ladder (DESIGN §2, graduated stages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LadderSection {
    /// A window is quiet when the offered rate is at most `release_ratio` × profile and nothing was
    /// dropped beyond the stage's own allowance. Below the shape trigger ratio: hysteresis.
    pub release_ratio: f64,
    pub shape: ShapeStage,
    pub strict: StrictStage,
    pub quarantine: QuarantineStage,
}

impl Default for LadderSection {
    fn default() -> Self {
        LadderSection {
            release_ratio: 2.0,
            shape: ShapeStage::default(),
            strict: StrictStage::default(),
            quarantine: QuarantineStage::default(),
        }
    }
}

/// `[ladder.shape]`: stage 1, shape to profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapeStage {
    /// rate / profile at or above which a window is over profile.
    pub trigger_ratio: f64,
    /// Consecutive over-profile windows before shaping (persistence, not a spike).
    pub trigger_windows: u32,
    /// Confirmation by volume: a run of readings at or above `trigger_ratio` that has lasted
    /// `volume_for` and carried at least `volume_bursts` burst allowances of packets is a flood
    /// at once, without waiting for `trigger_windows`. The allowance is the larger of the data
    /// plane's (`dataplane.observe.burst`) and the device's own excessive-burst threshold
    /// (`classify.chatty`), so a device whose bursts are normally large needs more.
    pub volume_for: Dur,
    /// 0 turns confirmation by volume off.
    pub volume_bursts: f64,
    pub rate_pps: u64,
    pub burst: u64,
    /// The shape's byte rate beside `rate_pps` (`"2Mbit/s"`; T-PDU octets, as a UPF's MBR), with
    /// a burst of `burst_bytes` octets (0: one second of the rate). `"0"` (the default): a device
    /// is shaped by packets only, except one staged for a volume flood, which is shaped to its
    /// own learned byte profile (docs/controller.md, "Volume").
    pub rate: Rate,
    pub burst_bytes: u64,
    /// Lifetime of each map entry; the engine refreshes it while it still wants the stage, so
    /// enforcement decays within `ttl` if the controller dies.
    pub ttl: Dur,
    /// Quiet time before stepping down (hysteresis).
    pub quiet: Dur,
}

impl Default for ShapeStage {
    fn default() -> Self {
        ShapeStage {
            trigger_ratio: 8.0,
            trigger_windows: 5,
            volume_for: Dur::secs(1),
            volume_bursts: 4.0,
            rate_pps: 100,
            burst: 200,
            rate: Rate::NONE,
            burst_bytes: 0,
            ttl: Dur::secs(60),
            quiet: Dur::secs(120),
        }
    }
}

/// `[ladder.strict]`: stage 2, a strict limit below the shape rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrictStage {
    /// Active windows at shape whose dropped / offered ratio is at least `escalate_drop_ratio`
    /// (the shape is not containing the device) before escalating here.
    pub escalate_windows: u32,
    pub escalate_drop_ratio: f64,
    pub rate_pps: u64,
    pub burst: u64,
    /// The strict stage's byte rate beside `rate_pps` (as `ladder.shape.rate`); `"0"`: packets
    /// only, except for a volume flood, held at the same fraction of its byte profile that
    /// `rate_pps` is of `ladder.shape.rate_pps`.
    pub rate: Rate,
    pub burst_bytes: u64,
    pub ttl: Dur,
    pub quiet: Dur,
}

impl Default for StrictStage {
    fn default() -> Self {
        StrictStage {
            escalate_windows: 10,
            escalate_drop_ratio: 0.5,
            rate_pps: 10,
            burst: 20,
            rate: Rate::NONE,
            burst_bytes: 0,
            ttl: Dur::secs(60),
            quiet: Dur::secs(300),
        }
    }
}

/// `[ladder.quarantine]`: stage 3, drop everything from the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantineStage {
    /// Active windows at strict with dropped / offered at least `escalate_drop_ratio`.
    pub escalate_windows: u32,
    pub escalate_drop_ratio: f64,
    pub ttl: Dur,
    pub quiet: Dur,
}

impl Default for QuarantineStage {
    fn default() -> Self {
        QuarantineStage { escalate_windows: 30, escalate_drop_ratio: 0.5, ttl: Dur::secs(120), quiet: Dur::secs(600) }
    }
}

/// `[capacity]`: last-resort caps per cell (gNB) and per host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacitySection {
    /// Consecutive windows the cap condition must hold before a cap engages.
    pub sustain_windows: u32,
    pub cell: CapLevel,
    pub host: CapLevel,
}

impl Default for CapacitySection {
    fn default() -> Self {
        CapacitySection {
            sustain_windows: 10,
            cell: CapLevel {
                capacity_pps: 100_000,
                cap_pps: 100_000,
                burst: 10_000,
                min_offenders: 200,
                ttl: Dur::secs(30),
                quiet: Dur::secs(120),
                capacity_rate: Rate::NONE,
                cap_rate: Rate::NONE,
                burst_bytes: 0,
            },
            host: CapLevel {
                capacity_pps: 2_000_000,
                cap_pps: 2_000_000,
                burst: 100_000,
                min_offenders: 2000,
                ttl: Dur::secs(30),
                quiet: Dur::secs(300),
                capacity_rate: Rate::NONE,
                cap_rate: Rate::NONE,
                burst_bytes: 0,
            },
        }
    }
}

/// `[capacity.cell]` / `[capacity.host]`. When a table is given, all its keys are required: the
/// cell and host defaults differ, so a partial table would otherwise be ambiguous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapLevel {
    /// The G-PDU rate this level is dimensioned for.
    pub capacity_pps: u64,
    /// The cap applied when engaged (at most `capacity_pps`).
    pub cap_pps: u64,
    pub burst: u64,
    /// Fewest distinct devices already under an engine stage before the cap may engage: the
    /// deliberate-triggering defence. At least [`MIN_OFFENDERS_FLOOR`].
    pub min_offenders: u32,
    pub ttl: Dur,
    pub quiet: Dur,
    /// The bit rate this level is dimensioned for beside `capacity_pps` (T-PDU octets, as every
    /// byte limit counts them): `"0"` (the default) judges the level's load in packets only.
    /// Optional in a given table, unlike the keys above: a table written before byte limits
    /// means packets only.
    #[serde(default, skip_serializing_if = "no_rate")]
    pub capacity_rate: Rate,
    /// The cap's byte rate when it engages for an overload in octets (at most `capacity_rate`;
    /// `"0"`: `capacity_rate`).
    #[serde(default, skip_serializing_if = "no_rate")]
    pub cap_rate: Rate,
    /// Octets of burst of `cap_rate` (0: one second of it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_bytes: u64,
}

impl CapLevel {
    /// The byte rate a cap of this level applies when engaged for an overload in octets
    /// (unlimited when the level has no `capacity_rate`).
    pub fn cap_bytes(&self) -> ByteLimit {
        self.cap_bytes_scaled(|v| v)
    }

    /// [`Self::cap_bytes`] with its rate and burst each passed through `part` (a fleet member's
    /// share of the cap).
    pub fn cap_bytes_scaled(&self, part: impl Fn(u64) -> u64) -> ByteLimit {
        let rate = if self.cap_rate.is_none() { self.capacity_rate } else { self.cap_rate };
        let bits = rate.bits_per_sec();
        // As `Rate::byte_limit`: no configured burst is one second of the rate.
        let burst = if self.burst_bytes == 0 { bits / 8 } else { self.burst_bytes };
        ByteLimit::bits_per_second(part(bits), part(burst))
    }
}

impl Config {
    pub(super) fn validate_ladder(&self, v: &mut Validator) {
        let l = &self.ladder;
        let tick = self.guard.tick;
        v.check(l.release_ratio > 0.0, "ladder.release_ratio", "must be > 0");
        v.check(
            l.release_ratio < l.shape.trigger_ratio,
            "ladder.release_ratio",
            "must be < ladder.shape.trigger_ratio (hysteresis)",
        );
        let s = &l.shape;
        v.check(s.trigger_ratio > 1.0, "ladder.shape.trigger_ratio", "must be > 1");
        v.check(s.trigger_windows > 0, "ladder.shape.trigger_windows", "must be > 0");
        // A track counts windows in 16 bits (docs/controller.md, "Memory"): 18 h of 1 s windows.
        v.check(s.trigger_windows <= u32::from(u16::MAX), "ladder.shape.trigger_windows", "must be <= 65535");
        v.check(
            s.volume_bursts == 0.0 || (s.volume_bursts >= 1.0 && s.volume_bursts.is_finite()),
            "ladder.shape.volume_bursts",
            "must be 0 (off) or at least 1 (less than one burst allowance is no evidence)",
        );
        v.check(s.rate_pps > 0, "ladder.shape.rate_pps", "must be > 0");
        v.check(s.burst > 0, "ladder.shape.burst", "must be > 0");
        v.rate("ladder.shape.rate", s.rate);
        v.stage_times("ladder.shape", s.ttl, s.quiet, tick);
        let st = &l.strict;
        v.check(st.escalate_windows > 0, "ladder.strict.escalate_windows", "must be > 0");
        v.fraction("ladder.strict.escalate_drop_ratio", st.escalate_drop_ratio);
        v.check(st.rate_pps > 0, "ladder.strict.rate_pps", "must be > 0");
        v.check(st.rate_pps < s.rate_pps, "ladder.strict.rate_pps", "must be < ladder.shape.rate_pps");
        v.check(st.burst > 0, "ladder.strict.burst", "must be > 0");
        v.check(st.burst <= s.burst, "ladder.strict.burst", "must be <= ladder.shape.burst");
        v.rate("ladder.strict.rate", st.rate);
        v.check(
            s.rate.is_none() || st.rate.is_none() || st.rate < s.rate,
            "ladder.strict.rate",
            "must be < ladder.shape.rate",
        );
        v.stage_times("ladder.strict", st.ttl, st.quiet, tick);
        let q = &l.quarantine;
        v.check(q.escalate_windows > 0, "ladder.quarantine.escalate_windows", "must be > 0");
        v.fraction("ladder.quarantine.escalate_drop_ratio", q.escalate_drop_ratio);
        v.stage_times("ladder.quarantine", q.ttl, q.quiet, tick);
    }

    pub(super) fn validate_capacity(&self, v: &mut Validator) {
        let c = &self.capacity;
        v.check(c.sustain_windows > 0, "capacity.sustain_windows", "must be > 0");
        for (name, lvl) in [("capacity.cell", &c.cell), ("capacity.host", &c.host)] {
            v.check(lvl.capacity_pps > 0, &format!("{name}.capacity_pps"), "must be > 0");
            v.check(lvl.cap_pps > 0, &format!("{name}.cap_pps"), "must be > 0");
            v.check(lvl.cap_pps <= lvl.capacity_pps, &format!("{name}.cap_pps"), "must be <= capacity_pps");
            v.check(lvl.burst > 0, &format!("{name}.burst"), "must be > 0");
            v.check(
                lvl.min_offenders >= MIN_OFFENDERS_FLOOR,
                &format!("{name}.min_offenders"),
                &format!(
                    "must be >= {MIN_OFFENDERS_FLOOR} (a handful of devices must never raise a cell or host stage)"
                ),
            );
            v.stage_times(name, lvl.ttl, lvl.quiet, self.guard.tick);
            v.rate(&format!("{name}.capacity_rate"), lvl.capacity_rate);
            v.rate(&format!("{name}.cap_rate"), lvl.cap_rate);
            v.check(
                lvl.cap_rate.is_none() || (!lvl.capacity_rate.is_none() && lvl.cap_rate <= lvl.capacity_rate),
                &format!("{name}.cap_rate"),
                "must be <= capacity_rate (and needs one: the cap's byte rate engages for an overload in octets)",
            );
        }
        v.check(
            c.cell.capacity_rate.is_none()
                || c.host.capacity_rate.is_none()
                || c.cell.capacity_rate <= c.host.capacity_rate,
            "capacity.cell.capacity_rate",
            "must be <= capacity.host.capacity_rate",
        );
        v.check(
            c.cell.capacity_pps <= c.host.capacity_pps,
            "capacity.cell.capacity_pps",
            "must be <= capacity.host.capacity_pps",
        );
        v.check(
            c.cell.min_offenders <= c.host.min_offenders,
            "capacity.host.min_offenders",
            "must be >= capacity.cell.min_offenders",
        );
    }
}
