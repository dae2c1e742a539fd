//! What the engine decides, and why: the records the controller applies to the maps and the audit
//! trail stores. Everything here serialises with stable snake_case names.

use guard_common::abi::{ByteLimit, CellStageEntry, DeviceKey, L3Addr, Limit, StageEntry, CELL_STAGE_CAP};
use serde::Serialize;

/// Why a decision was taken. The names are stable: they are Prometheus label values and audit
/// fields; the codes go into [`StageEntry::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Persistently and consistently far above profile (infected flood, T2-style on N3).
    Flood,
    /// Quasi-periodic excessive short bursts (T3).
    Chatty,
    /// Member of a device group that changed behaviour at once (T5).
    CohortDeviation,
    /// The milder stage did not bring the device back to profile.
    NotContained,
    /// Quiet for the stage's quiet period: stepping down.
    Quiet,
    /// Member of an exempt (priority / emergency) group.
    ExemptGroup,
    /// The device's group no longer exempts it (reconfiguration).
    GroupChanged,
    /// Device stages cannot hold the cell within capacity, with enough distinct offenders.
    CellOverload,
    /// Likewise for the whole host.
    HostOverload,
    /// Many devices moderately above profile at once (T1): classified, nobody pinned.
    FlashCrowd,
    /// A stage found in the maps at restart, whose original reason is not known.
    Restored,
    /// An operator's manual pin or unpin.
    Operator,
    /// Persistently far above its byte profile at its usual packet rate (large packets: the
    /// volume form of a flood), shaped by bytes too.
    VolumeFlood,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::Flood,
        Reason::Chatty,
        Reason::CohortDeviation,
        Reason::NotContained,
        Reason::Quiet,
        Reason::ExemptGroup,
        Reason::GroupChanged,
        Reason::CellOverload,
        Reason::HostOverload,
        Reason::FlashCrowd,
        Reason::Restored,
        Reason::Operator,
        Reason::VolumeFlood,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::Flood => "flood",
            Reason::Chatty => "chatty",
            Reason::CohortDeviation => "cohort_deviation",
            Reason::NotContained => "not_contained",
            Reason::Quiet => "quiet",
            Reason::ExemptGroup => "exempt_group",
            Reason::GroupChanged => "group_changed",
            Reason::CellOverload => "cell_overload",
            Reason::HostOverload => "host_overload",
            Reason::FlashCrowd => "flash_crowd",
            Reason::Restored => "restored",
            Reason::Operator => "operator",
            Reason::VolumeFlood => "volume_flood",
        }
    }

    /// The code written to [`StageEntry::reason`] (0 is "none").
    pub const fn code(self) -> u32 {
        self as u32 + 1
    }

    pub fn from_code(code: u32) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.code() == code)
    }
}

/// A traffic pattern the engine recognised (reported in [`Decision::Classified`] and the status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    FlashCrowd,
    Flood,
    Chatty,
    Cohort,
}

/// The measurements behind a decision. Only the fields that apply are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Offered rate of the device (or aggregate) in the last window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_pps: Option<f64>,
    /// The profile the rate was judged against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Offered T-PDU bit rate of the device in the last window, and the byte profile it was
    /// judged against (the volume form of `rate_pps`, `profile_pps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_bps: Option<f64>,
    /// Learned baseline mean and standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_sd: Option<f64>,
    /// Consecutive windows the condition held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<u32>,
    /// The run of over-profile readings behind a flood: seconds it spans and its packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood_packets: Option<u64>,
    /// Data-plane evidence: packets above the observe limit, and packets dropped, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_limit_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_ratio: Option<f64>,
    /// Burst pattern: consecutive excessive bursts, last burst size, period, its CV, peak / mean,
    /// and the fraction of bursts that started in synchronised-onset windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bursts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_packets: Option<u64>,
    /// T-PDU octets of the latest burst (the chatty test's volume form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_cv: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_fraction: Option<f64>,
    /// Stage before this decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<u32>,
    /// Seconds the device (or cell) has been quiet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_s: Option<f64>,
    /// Aggregates: demand after device stages, raw offered, capacity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_pps: Option<f64>,
    /// The same aggregates in T-PDU bits per second, where the level has a `capacity_rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bps: Option<f64>,
    /// Distinct devices under engine stages (cell / host caps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offenders: Option<u64>,
    /// Devices involved: active devices, and how many of them matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_devices: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Cohorts: the group, and how many members showed each kind of deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_destinations: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_changes: Option<u64>,
    /// ... and in volume (T-PDU bits over `classify.cohort.volume_factor` × their byte profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_changes: Option<u64>,
    /// A gNB cap judged on the fleet's sums (`super::fleet`): which members contributed and what
    /// was this member's own. Absent for a local judgement, so a local-only line is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<super::fleet::FleetEvidence>,
}

/// One decision for the controller to apply (and audit).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Write `N3_STAGES[key]`. `stage` 0 with [`guard_common::abi::STAGE_FLAG_EXEMPT`] in `flags`
    /// marks an exempt device. `refresh` is a re-issue of a stage the engine still wants.
    SetDeviceStage {
        #[serde(serialize_with = "ser_key")]
        key: DeviceKey,
        stage: u32,
        flags: u32,
        group: u32,
        #[serde(serialize_with = "ser_limit")]
        limit: Limit,
        /// The byte rate beside `limit` (unlimited: packets only).
        #[serde(serialize_with = "ser_bytes", skip_serializing_if = "ByteLimit::is_unlimited")]
        bytes: ByteLimit,
        ttl_ns: u64,
        refresh: bool,
        reason: Reason,
        evidence: Evidence,
    },
    /// Delete `N3_STAGES[key]`.
    ReleaseDevice {
        #[serde(serialize_with = "ser_key")]
        key: DeviceKey,
        reason: Reason,
        evidence: Evidence,
    },
    /// Write `N3_CELL_STAGES[cell]`.
    SetCellCap {
        #[serde(serialize_with = "ser_addr")]
        cell: L3Addr,
        #[serde(serialize_with = "ser_limit")]
        limit: Limit,
        /// The byte rate beside `limit`, set when the cell's overload is in octets (unlimited:
        /// packets only).
        #[serde(serialize_with = "ser_bytes", skip_serializing_if = "ByteLimit::is_unlimited")]
        bytes: ByteLimit,
        ttl_ns: u64,
        refresh: bool,
        reason: Reason,
        evidence: Evidence,
    },
    ReleaseCell {
        #[serde(serialize_with = "ser_addr")]
        cell: L3Addr,
        reason: Reason,
        evidence: Evidence,
    },
    /// Set the host cap: `limit` is host-wide; the controller divides it per CPU and sets
    /// `GuardConfig::host_cap_expires_ns = now + ttl_ns`.
    SetHostCap {
        #[serde(serialize_with = "ser_limit")]
        limit: Limit,
        /// Host-wide byte rate beside `limit` (divided per CPU likewise), set when the host's
        /// overload is in octets.
        #[serde(serialize_with = "ser_bytes", skip_serializing_if = "ByteLimit::is_unlimited")]
        bytes: ByteLimit,
        ttl_ns: u64,
        refresh: bool,
        reason: Reason,
        evidence: Evidence,
    },
    ReleaseHost {
        reason: Reason,
        evidence: Evidence,
    },
    /// A device group changed behaviour at once. `devices` lists (up to 256 of) the deviating
    /// members; `evidence.devices` has the full count. Members are isolated by separate
    /// [`Decision::SetDeviceStage`]s.
    FlagCohort {
        group: u32,
        name: String,
        #[serde(serialize_with = "ser_keys")]
        devices: Vec<DeviceKey>,
        reason: Reason,
        evidence: Evidence,
    },
    /// A traffic pattern started (`active`) or ended. Informational: nothing to apply.
    Classified {
        class: Class,
        active: bool,
        reason: Reason,
        evidence: Evidence,
    },
}

impl Decision {
    /// Stable action name (the serde tag).
    pub fn action(&self) -> &'static str {
        match self {
            Decision::SetDeviceStage { .. } => "set_device_stage",
            Decision::ReleaseDevice { .. } => "release_device",
            Decision::SetCellCap { .. } => "set_cell_cap",
            Decision::ReleaseCell { .. } => "release_cell",
            Decision::SetHostCap { .. } => "set_host_cap",
            Decision::ReleaseHost { .. } => "release_host",
            Decision::FlagCohort { .. } => "flag_cohort",
            Decision::Classified { .. } => "classified",
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Decision::SetDeviceStage { reason, .. }
            | Decision::ReleaseDevice { reason, .. }
            | Decision::SetCellCap { reason, .. }
            | Decision::ReleaseCell { reason, .. }
            | Decision::SetHostCap { reason, .. }
            | Decision::ReleaseHost { reason, .. }
            | Decision::FlagCohort { reason, .. }
            | Decision::Classified { reason, .. } => *reason,
        }
    }

    pub fn evidence(&self) -> &Evidence {
        match self {
            Decision::SetDeviceStage { evidence, .. }
            | Decision::ReleaseDevice { evidence, .. }
            | Decision::SetCellCap { evidence, .. }
            | Decision::ReleaseCell { evidence, .. }
            | Decision::SetHostCap { evidence, .. }
            | Decision::ReleaseHost { evidence, .. }
            | Decision::FlagCohort { evidence, .. }
            | Decision::Classified { evidence, .. } => evidence,
        }
    }

    /// What the decision is about, as a string: `teid:0x…`, `ue:…`, `cell:…`, `host`, `group:…`,
    /// or the class name.
    pub fn target(&self) -> String {
        match self {
            Decision::SetDeviceStage { key, .. } | Decision::ReleaseDevice { key, .. } => device_key_str(key),
            Decision::SetCellCap { cell, .. } | Decision::ReleaseCell { cell, .. } => {
                format!("cell:{}", addr_str(cell))
            }
            Decision::SetHostCap { .. } | Decision::ReleaseHost { .. } => "host".to_owned(),
            Decision::FlagCohort { group, .. } => format!("group:{group}"),
            Decision::Classified { class, .. } => format!("{class:?}"),
        }
    }

    /// The decision in one line for people (the log): what starts or ends, at which stage and
    /// rate, for how long, and the evidence's rate against the profile.
    pub fn summary(&self) -> String {
        let ev = |e: &Evidence| {
            let mut parts = Vec::new();
            match (e.rate_pps, e.profile_pps, e.ratio) {
                (Some(r), Some(p), Some(x)) => parts.push(format!("{r:.0} pps, {x:.1}x its {p:.0} pps profile")),
                (Some(r), Some(p), None) => parts.push(format!("{r:.0} pps against {p:.0} pps")),
                (Some(r), None, _) => parts.push(format!("{r:.0} pps")),
                _ => {}
            }
            if let Some(w) = e.windows {
                parts.push(format!("{w} windows"));
            }
            if let Some(d) = e.dropped_pps.filter(|d| *d > 0.0) {
                parts.push(format!("{d:.0} pps dropped"));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            }
        };
        let ttl = |ns: u64| format!("{:.0} s", ns as f64 / 1e9);
        let rate = |l: &Limit| {
            if l.is_unlimited() {
                "no packets".to_owned()
            } else {
                format!("{} pps (burst {})", l.rate_per_sec(), l.burst())
            }
        };
        let bit_rate = |b: &ByteLimit| {
            if b.is_unlimited() {
                String::new()
            } else {
                format!(" and {}", guard_common::units::BitRate(b.bits_per_sec()))
            }
        };
        match self {
            Decision::SetDeviceStage { key, stage, limit, ttl_ns, reason, evidence, flags, .. } => {
                let what = if flags & guard_common::abi::STAGE_FLAG_EXEMPT != 0 {
                    "exempt".to_owned()
                } else if *stage == guard_common::abi::STAGE_QUARANTINE {
                    format!("stage {stage} {}: {}", stage_name(*stage), rate(&Limit::UNLIMITED))
                } else {
                    format!("stage {stage} {} at {}", stage_name(*stage), rate(limit))
                };
                format!("START {}: {what} for {}, {}{}", device_key_str(key), ttl(*ttl_ns), reason.name(), ev(evidence))
            }
            Decision::ReleaseDevice { key, reason, evidence } => {
                format!("END {}: stage released, {}{}", device_key_str(key), reason.name(), ev(evidence))
            }
            Decision::SetCellCap { cell, limit, bytes, ttl_ns, reason, evidence, .. } => format!(
                "START cell {}: capped at {}{} for {}, {}{}",
                addr_str(cell),
                rate(limit),
                bit_rate(bytes),
                ttl(*ttl_ns),
                reason.name(),
                ev(evidence)
            ),
            Decision::ReleaseCell { cell, reason, evidence } => {
                format!("END cell {}: cap released, {}{}", addr_str(cell), reason.name(), ev(evidence))
            }
            Decision::SetHostCap { limit, bytes, ttl_ns, reason, evidence, .. } => format!(
                "START host: capped at {}{} for {}, {}{}",
                rate(limit),
                bit_rate(bytes),
                ttl(*ttl_ns),
                reason.name(),
                ev(evidence)
            ),
            Decision::ReleaseHost { reason, evidence } => {
                format!("END host: cap released, {}{}", reason.name(), ev(evidence))
            }
            Decision::FlagCohort { group, name, reason, evidence, .. } => format!(
                "FLAG group {group} ({name}): {} devices changed at once, {}{}",
                evidence.devices.unwrap_or(0),
                reason.name(),
                ev(evidence)
            ),
            Decision::Classified { class, active, reason, evidence } => {
                format!("{} {class:?}: {}{}", if *active { "START" } else { "END" }, reason.name(), ev(evidence))
            }
        }
    }

    /// A re-issue of a stage or cap the engine already holds (the audit may summarise these).
    pub fn is_refresh(&self) -> bool {
        matches!(
            self,
            Decision::SetDeviceStage { refresh: true, .. }
                | Decision::SetCellCap { refresh: true, .. }
                | Decision::SetHostCap { refresh: true, .. }
        )
    }

    /// The `N3_STAGES` value for a [`Decision::SetDeviceStage`] applied at `now_ns`.
    pub fn stage_entry(&self, now_ns: u64) -> Option<(DeviceKey, StageEntry)> {
        match self {
            Decision::SetDeviceStage { key, stage, flags, group, limit, bytes, ttl_ns, reason, .. } => Some((
                *key,
                StageEntry {
                    stage: *stage,
                    flags: *flags,
                    interval_ns: limit.interval_ns,
                    tau_ns: limit.tau_ns,
                    expires_ns: now_ns.saturating_add(*ttl_ns),
                    tat: 0,
                    set_ns: now_ns,
                    reason: reason.code(),
                    group: *group,
                    bytes: *bytes,
                    tat_bytes: 0,
                },
            )),
            _ => None,
        }
    }

    /// The `N3_CELL_STAGES` value for a [`Decision::SetCellCap`] applied at `now_ns`.
    pub fn cell_entry(&self, now_ns: u64) -> Option<(L3Addr, CellStageEntry)> {
        match self {
            Decision::SetCellCap { cell, limit, bytes, ttl_ns, .. } => Some((
                *cell,
                CellStageEntry {
                    stage: CELL_STAGE_CAP,
                    flags: 0,
                    interval_ns: limit.interval_ns,
                    tau_ns: limit.tau_ns,
                    expires_ns: now_ns.saturating_add(*ttl_ns),
                    tat: 0,
                    set_ns: now_ns,
                    bytes: *bytes,
                    tat_bytes: 0,
                },
            )),
            _ => None,
        }
    }
}

pub use super::render::{device_key_str, stage_name};
use super::render::{ser_addr, ser_bytes, ser_key, ser_keys, ser_limit};
pub use crate::addr::addr_str;

#[cfg(test)]
mod tests {
    use super::*;

    /// One log line per decision says what starts or ends, the stage, its rate and TTL, and the
    /// rate against the profile (issue 25 item 6).
    #[test]
    fn a_decision_in_words() {
        let key = DeviceKey::teid(0x100);
        let evidence =
            Evidence { rate_pps: Some(412.0), profile_pps: Some(20.0), ratio: Some(20.6), ..Default::default() };
        let set = Decision::SetDeviceStage {
            key,
            stage: guard_common::abi::STAGE_SHAPE,
            flags: 0,
            group: 0,
            limit: Limit::per_second(20, 40),
            bytes: guard_common::abi::ByteLimit::UNLIMITED,
            ttl_ns: 60_000_000_000,
            refresh: false,
            reason: Reason::Flood,
            evidence: evidence.clone(),
        };
        let line = set.summary();
        assert!(
            line.starts_with(&format!(
                "START {}: stage 1 shape at 20 pps (burst 40) for 60 s, flood",
                device_key_str(&key)
            )),
            "{line}"
        );
        assert!(line.contains("412 pps, 20.6x its 20 pps profile"), "{line}");
        let end = Decision::ReleaseDevice { key, reason: Reason::Quiet, evidence: Evidence::default() }.summary();
        assert_eq!(end, format!("END {}: stage released, quiet", device_key_str(&key)));
        let q = Decision::SetDeviceStage {
            key,
            stage: guard_common::abi::STAGE_QUARANTINE,
            flags: 0,
            group: 0,
            limit: Limit::UNLIMITED,
            bytes: guard_common::abi::ByteLimit::UNLIMITED,
            ttl_ns: 60_000_000_000,
            refresh: false,
            reason: Reason::NotContained,
            evidence,
        };
        assert!(q.summary().contains("stage 3 quarantine: no packets for 60 s"), "{}", q.summary());
    }

    #[test]
    fn reasons_have_stable_names_and_round_trip_codes() {
        for r in Reason::ALL {
            let json = serde_json::to_string(&r).expect("serialises");
            assert_eq!(json, format!("\"{}\"", r.name()));
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code(0), None);
    }

    #[test]
    fn decisions_serialise_with_readable_keys() {
        let d = Decision::SetDeviceStage {
            key: DeviceKey::teid(0xabcd),
            stage: 1,
            flags: 0,
            group: 0,
            limit: Limit::per_second(100, 200),
            bytes: guard_common::abi::ByteLimit::UNLIMITED,
            ttl_ns: 60_000_000_000,
            refresh: false,
            reason: Reason::Flood,
            evidence: Evidence { rate_pps: Some(2000.0), windows: Some(5), ..Evidence::default() },
        };
        let v = serde_json::to_value(&d).expect("serialises");
        assert_eq!(v["action"], "set_device_stage");
        assert_eq!(v["key"], "teid:0x0000abcd");
        assert_eq!(v["limit"]["burst"], 200);
        assert_eq!(v["reason"], "flood");
        assert_eq!(v["evidence"]["windows"], 5);
        assert!(v["evidence"].get("profile_pps").is_none(), "absent evidence is omitted");
        let (_, e) = d.stage_entry(10).expect("a stage decision");
        assert_eq!(e.expires_ns, 60_000_000_010);
        assert_eq!(e.reason, Reason::Flood.code());
    }
}
