//! The N2 signalling-storm controller: per-cell and per-device access attempts in (cumulative
//! counters of `N2_CELLS` / `N2_DEVICES`), a graduated, 3GPP-native response out. Threat T2 of
//! DESIGN §1: a regional registration storm from infected devices, told apart from a natural
//! flash crowd.
//!
//! Pure and deterministic like [`crate::n3::engine`]: no I/O, no clock; every call takes `now_ns`
//! (CLOCK_MONOTONIC). The caller samples the maps, calls [`N2Engine::tick`], sends each returned
//! [`Response`] through the [`hook`] and writes it (and each [`N2Transition`]) to the audit log.
//!
//! Why the response is not an XDP drop (DESIGN §2): InitialUEMessages travel in DATA chunks of a
//! live SCTP association; dropping them sheds no load (SCTP retransmits) and stalls every UE on that
//! gNB. The answer is what 3GPP gives the core for this, requested from the AMF / OAM through the
//! hook, in increasing severity (each level needs evidence the milder one did not work):
//! 1. **devices**: the list of offending devices (5G-S-TMSI / S-TMSI) for the AMF to reject with
//!    5GMM cause #22 and a T3346 back-off (TS 24.501 §5.5.1.2.5, §5.6.1.5) — only those devices;
//! 2. **barring**: + unified access control barring per affected cell (TS 22.261 §6.22,
//!    TS 38.331 `UAC-BarringInfoSet`), on access categories used by IoT signalling, never on
//!    emergency / MPS / MCS;
//! 3. **overload**: + NGAP OVERLOAD START (TS 38.413 §8.7.6) towards the affected gNBs only, with
//!    an AMF Traffic Load Reduction Indication (§9.3.1.106, 1..99 %) and overload action
//!    "reject RRC connection establishments for signalling" (§9.3.1.105); OVERLOAD STOP (§8.7.7)
//!    when the storm has ended.
//!
//! Detection (see `docs/n2.md` for the reasoning and the numbers): a cell is *hot* when its
//! InitialUEMessage rate is well above its learned baseline. Over the hot cells, a storm is T2
//! when it is **concentrated** (most attempts come from devices that retry again and again inside
//! the device window), **consistent** (the same repeaters from one window to the next) and
//! **persistent** (for `persist_windows`). A flash crowd is the opposite: many distinct devices,
//! about one attempt each, a churning population; it is reported and left to the AMF's own
//! overload control.
//!
//! A storm of SUCI-only registrations (no 5G-S-TMSI, no 5G-GUTI: a cohort misprovisioned by a
//! re-flash, devices that discard their GUTI) has no identity that lasts beyond one connection, so
//! it has no repeaters and looks like a crowd by devices. It is attributed **by cell and by
//! pattern** instead: a hot cell whose attempts are mostly SUCI-only, far above the share it
//! learned when not hot (`Attribution::CellPattern`, docs/n2.md §4.6). The ladder then acts on
//! those cells alone, with a pattern back-off at level 1 in place of the device list.

pub mod setup;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use guard_common::abi::{L3Addr, FAMILY_IPV4, FAMILY_IPV6};
use guard_common::abi_n2::{
    N2CellKey, N2CellState, N2DeviceKey, N2DeviceState, CELL_KIND_EUTRA, CELL_KIND_NR, N2_DEV_KIND_5G_S_TMSI,
    N2_DEV_KIND_RAN_UE_V4, N2_DEV_KIND_RAN_UE_V6, N2_DEV_KIND_S_TMSI, RRC_CAUSE_SLOTS,
};
use serde::{Deserialize, Serialize};

use crate::n3::engine::addr_str;

/// Version of the [`Response`] JSON (the hook payload). Bump on any incompatible change.
pub const RESPONSE_VERSION: u32 = 1;
/// The `schema` field of every [`Response`].
pub const RESPONSE_SCHEMA: &str = "overload-guard/n2-response";

const NS: f64 = 1e9;

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

/// One cell's cumulative counters, as read from `N2_CELLS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellSample {
    pub key: N2CellKey,
    pub initial_ue: u64,
    pub registration_requests: u64,
    pub priority: u64,
    /// The RAN node that last reported the cell.
    pub peer: L3Addr,
    pub tac: u32,
    /// SUCI-only attempts (no temporary identity), in all and by RRC establishment cause.
    pub suci_only: u64,
    pub suci_causes: [u32; RRC_CAUSE_SLOTS],
}

impl CellSample {
    pub fn from_state(key: N2CellKey, s: &N2CellState) -> Self {
        CellSample {
            key,
            initial_ue: s.initial_ue,
            registration_requests: s.registration_requests,
            priority: s.priority,
            peer: s.last_peer,
            tac: s.tac,
            suci_only: s.suci_only,
            suci_causes: s.suci_causes,
        }
    }
}

/// One device's cumulative counters, as read from `N2_DEVICES`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceSample {
    pub key: N2DeviceKey,
    pub attempts: u64,
    pub registration_requests: u64,
    pub cell: N2CellKey,
    pub peer: L3Addr,
}

impl DeviceSample {
    pub fn from_state(key: N2DeviceKey, s: &N2DeviceState) -> Self {
        DeviceSample {
            key,
            attempts: s.attempts,
            registration_requests: s.registration_requests,
            cell: s.cell,
            peer: s.peer,
        }
    }
}

/// What the hot cells look like this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StormClass {
    /// No hot cell.
    None,
    /// Hot cells, many distinct devices, about one attempt each: a natural crowd (or an attack
    /// that cannot be told from one: it is left to the AMF's own overload control).
    FlashCrowd,
    /// Concentrated, consistent repeaters: T2.
    RegistrationStorm,
}

/// Who a storm is pinned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    #[default]
    None,
    /// Repeating devices (5G-S-TMSI / S-TMSI): they are listed.
    Devices,
    /// Cells and a pattern (SUCI-only registrations, their RRC cause): no device identity lasts
    /// beyond one connection, so the cells are named with the pattern to back off.
    CellPattern,
    /// Both at once.
    DevicesAndCellPattern,
}

/// A pattern to back off in one cell (level 1 and up of a cell-pattern storm): the AMF answers
/// Registration Requests that match it from that cell with 5GMM cause #22 and T3346
/// (TS 24.501 §5.5.1.2.5); no identity is needed for that, the reject goes to the sender.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternAdvice {
    pub cell: String,
    pub gnb: String,
    pub tac: u32,
    /// `suci_only`: the UE identified itself by a SUCI (EPS: an IMSI) and gave no 5G-S-TMSI / GUTI.
    pub identity: &'static str,
    /// The NAS message: a Registration Request (EPS: Attach Request).
    pub nas: &'static str,
    /// The RRC establishment cause most of them carry (its number in the enumeration, TS 38.413
    /// §9.3.1.111; extension values after the roots), its name for NR cells, and its share.
    pub rrc_cause: Option<u32>,
    pub rrc_cause_name: Option<&'static str>,
    pub rrc_cause_share: f64,
    /// SUCI-only attempts per second, their share of the cell's attempts, and the share the cell
    /// learned while not hot.
    pub suci_only_per_s: f64,
    pub suci_share: f64,
    pub baseline_share: f64,
    /// SUCI-only attempts within the device window.
    pub attempts: u64,
    pub t3346_s: u32,
}

/// NGAP RRCEstablishmentCause names (TS 38.413 §9.3.1.111): 10 root values, then the extensions.
pub const NGAP_RRC_CAUSES: [&str; 12] = [
    "emergency",
    "highPriorityAccess",
    "mt-Access",
    "mo-Signalling",
    "mo-Data",
    "mo-VoiceCall",
    "mo-VideoCall",
    "mo-SMS",
    "mps-PriorityAccess",
    "mcs-PriorityAccess",
    "notAvailable",
    "mo-ExceptionData",
];

/// The response levels (see the module documentation).
pub const LEVEL_NONE: u8 = 0;
pub const LEVEL_DEVICES: u8 = 1;
pub const LEVEL_BARRING: u8 = 2;
pub const LEVEL_OVERLOAD: u8 = 3;

/// What the hook is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseAction {
    /// Levels 1-2: devices to back off, cells to bar (new, changed or refreshed).
    Advise,
    /// Level 3 entered: send NGAP OVERLOAD START to `overload.gnbs`.
    OverloadStart,
    /// Level 3 in force, refreshed or with a new reduction / scope: send OVERLOAD START again
    /// (TS 38.413 §8.7.6.2: a new OVERLOAD START replaces the previous one).
    OverloadUpdate,
    /// Level 3 left: send NGAP OVERLOAD STOP (§8.7.7) to `overload.gnbs`.
    OverloadStop,
    /// The storm is over (level 0): lift barring, stop backing off the listed devices.
    Clear,
}

/// NGAP OVERLOAD START / STOP content (TS 38.413 §9.2.6.x / §9.3.1.105-106).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverloadRequest {
    /// The gNBs (NGAP peers) to send it to: those serving the affected cells.
    pub gnbs: Vec<String>,
    /// AMF Traffic Load Reduction Indication, 1..99 %.
    pub traffic_load_reduction_pct: u8,
    /// Overload Action (§9.3.1.105).
    pub overload_action: &'static str,
    /// S-NSSAIs for an Overload Start NSSAI List; empty: the whole gNB. The guard does not see
    /// the requested NSSAI (it sits in the NAS Registration Request) so it never fills this.
    pub slices: Vec<String>,
}

/// A per-cell unified access control barring recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BarringAdvice {
    pub cell: String,
    pub gnb: String,
    pub tac: u32,
    /// `uac-BarringFactor` (TS 38.331: p00..p95, a multiple of 0.05).
    pub barring_factor: f64,
    pub barring_time_s: u32,
    pub access_categories: Vec<u8>,
    /// Never barred: emergency (access category 2), access identities 1 (MPS), 2 (MCS), 11-15.
    pub exempt: &'static str,
    pub rate_per_s: f64,
    pub baseline_per_s: f64,
}

/// One offending device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceAdvice {
    /// `5g-s-tmsi:<set>:<pointer>:<tmsi>`, `s-tmsi:<mmec>:<m-tmsi>`, or `ran-ue:<gnb>:<id>` (only
    /// valid for that UE-associated connection).
    pub id: String,
    pub cell: String,
    pub gnb: String,
    /// Access attempts within the device window.
    pub attempts: u64,
    /// Recommended T3346 (5GMM cause #22 "congestion").
    pub t3346_s: u32,
}

/// Evidence of a response: the numbers the classification used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StormEvidence {
    pub hot_cells: u64,
    pub region_rate_per_s: f64,
    pub region_baseline_per_s: f64,
    pub distinct_devices: u64,
    pub repeaters: u64,
    pub attempts_per_device: f64,
    pub repeater_share: f64,
    pub consistency: f64,
    pub t2_windows: u32,
    /// Who the storm is pinned on this window.
    pub attribution: Attribution,
    /// Hot cells attributed by pattern, their SUCI-only attempts within the device window, and
    /// the SUCI-only share of their attempts.
    pub pattern_cells: u64,
    pub suci_attempts: u64,
    pub suci_share: f64,
}

/// The hook payload: the whole current recommendation, so a receiver can act on any one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub schema: &'static str,
    pub version: u32,
    /// Increments with every response of this controller run.
    pub seq: u64,
    /// CLOCK_MONOTONIC of the decision.
    pub at_ns: u64,
    pub action: ResponseAction,
    pub level: u8,
    pub previous_level: u8,
    pub class: StormClass,
    /// Who the response is pinned on: `devices` (listed), `cell_pattern` (cells named in
    /// `pattern`), or both.
    pub attribution: Attribution,
    /// Why: `storm`, `escalate_not_contained`, `quiet`, `refresh`, `scope`.
    pub reason: &'static str,
    pub overload: Option<OverloadRequest>,
    pub access_barring: Vec<BarringAdvice>,
    pub devices: Vec<DeviceAdvice>,
    /// Cell-pattern storms: per cell, the pattern to back off (level 1 and up).
    pub pattern: Vec<PatternAdvice>,
    /// Devices beyond `max_devices_reported`.
    pub devices_omitted: u64,
    pub evidence: StormEvidence,
}

/// A classification change (audited; no hook call).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct N2Transition {
    pub at_ns: u64,
    pub from: StormClass,
    pub to: StormClass,
    pub evidence: StormEvidence,
}

/// What one tick produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickOutput {
    pub responses: Vec<Response>,
    pub transitions: Vec<N2Transition>,
}

/// A summary for metrics and `guard status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct N2Status {
    pub level: u8,
    pub class: StormClass,
    pub hot_cells: u64,
    pub affected_cells: u64,
    pub repeaters: u64,
    pub reduction_pct: u8,
    pub region_rate_per_s: f64,
    pub tracked_cells: u64,
    pub tracked_devices: u64,
}

#[derive(Debug, Clone, Default)]
struct CellTrack {
    last_at: u64,
    /// Seconds since the previous sample.
    dt_s: f64,
    last_count: u64,
    primed: bool,
    /// This window's rate, and its EWMA (what hotness is judged on).
    raw: f64,
    rate: f64,
    baseline: f64,
    windows: u32,
    hot: bool,
    peer: L3Addr,
    tac: u32,
    /// SUCI-only attempts: last cumulative counts, this window's rate and its EWMA.
    suci_last: u64,
    causes_last: [u32; RRC_CAUSE_SLOTS],
    suci_raw: f64,
    suci_rate: f64,
    /// The SUCI-only share learned in windows when the cell was not hot.
    suci_base_share: f64,
    /// (at, SUCI-only attempts, by cause) per tick with any, within the device window.
    suci_recent: VecDeque<(u64, u64, [u32; RRC_CAUSE_SLOTS])>,
    suci_in_window: u64,
    /// Hot, and by its SUCI-only share a cell-pattern storm's cell.
    pattern: bool,
}

impl CellTrack {
    fn baseline_or_prior(&self, s: &N2Settings) -> f64 {
        if self.windows >= s.warmup_windows {
            self.baseline.max(1e-9)
        } else {
            s.cell_prior_rate
        }
    }

    /// The smoothed SUCI-only share of the cell's attempts.
    fn suci_share(&self) -> f64 {
        if self.rate > 0.0 {
            (self.suci_rate / self.rate).min(1.0)
        } else {
            0.0
        }
    }

    /// The most frequent RRC cause of the SUCI-only attempts within the device window, and its
    /// share of them.
    fn dominant_cause(&self) -> Option<(u32, f64)> {
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
struct DeviceTrack {
    last_count: u64,
    primed: bool,
    /// (at, attempts) per tick with attempts, within the device window.
    recent: VecDeque<(u64, u64)>,
    in_window: u64,
    cell: N2CellKey,
    peer: L3Addr,
    seen_ns: u64,
}

/// The N2 storm controller. See the module documentation for the calling protocol.
#[derive(Debug)]
pub struct N2Engine {
    s: N2Settings,
    cells: HashMap<N2CellKey, CellTrack>,
    devices: HashMap<N2DeviceKey, DeviceTrack>,
    class: StormClass,
    /// Repeater sets, taken once per device window: `snap_prev` is one to two windows old.
    snap_cur: HashSet<N2DeviceKey>,
    snap_prev: HashSet<N2DeviceKey>,
    snap_at: Option<u64>,
    t2_streak: u32,
    quiet_streak: u32,
    level: u8,
    level_since_windows: u32,
    level_entry_rate: f64,
    /// Cells that were hot while a level was in force: the response's scope until level 0.
    affected: BTreeSet<N2CellKey>,
    /// The affected cells attributed by pattern, and who the level in force is pinned on.
    affected_pattern: BTreeSet<N2CellKey>,
    attribution: Attribution,
    reduction: u8,
    last_sent_ns: u64,
    last_scope: (Vec<String>, u8),
    seq: u64,
    last_evidence: StormEvidence,
    last_tick_ns: u64,
}

impl N2Engine {
    /// `s` must have passed [`N2Settings::validate`].
    pub fn new(s: &N2Settings) -> Self {
        N2Engine {
            s: s.clone(),
            cells: HashMap::new(),
            devices: HashMap::new(),
            class: StormClass::None,
            snap_cur: HashSet::new(),
            snap_prev: HashSet::new(),
            snap_at: None,
            t2_streak: 0,
            quiet_streak: 0,
            level: LEVEL_NONE,
            level_since_windows: 0,
            level_entry_rate: 0.0,
            affected: BTreeSet::new(),
            affected_pattern: BTreeSet::new(),
            attribution: Attribution::None,
            reduction: 0,
            last_sent_ns: 0,
            last_scope: (Vec::new(), 0),
            seq: 0,
            last_evidence: StormEvidence::default(),
            last_tick_ns: 0,
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn class(&self) -> StormClass {
        self.class
    }

    pub fn status(&self) -> N2Status {
        N2Status {
            level: self.level,
            class: self.class,
            hot_cells: self.last_evidence.hot_cells,
            affected_cells: self.affected.len() as u64,
            repeaters: self.last_evidence.repeaters,
            reduction_pct: self.reduction,
            region_rate_per_s: self.last_evidence.region_rate_per_s,
            tracked_cells: self.cells.len() as u64,
            tracked_devices: self.devices.len() as u64,
        }
    }

    /// One window: fold in the cumulative counters read this tick, classify, step the ladder.
    pub fn tick(&mut self, now_ns: u64, cells: &[CellSample], devices: &[DeviceSample]) -> TickOutput {
        let mut out = TickOutput::default();
        self.fold_cells(now_ns, cells);
        self.fold_devices(now_ns, devices);
        self.last_tick_ns = now_ns;

        let (class, ev, repeaters) = self.classify();
        if class != self.class {
            out.transitions.push(N2Transition { at_ns: now_ns, from: self.class, to: class, evidence: ev.clone() });
            self.class = class;
        }
        let t2 = class == StormClass::RegistrationStorm;
        if t2 {
            self.t2_streak += 1;
            self.quiet_streak = 0;
        } else {
            self.t2_streak = 0;
            self.quiet_streak += 1;
        }
        let mut ev = ev;
        ev.t2_windows = self.t2_streak;
        self.last_evidence = ev.clone();
        let window = (self.s.device_window_s * NS) as u64;
        if self.snap_at.is_none_or(|at| now_ns.saturating_sub(at) >= window) {
            self.snap_prev = std::mem::take(&mut self.snap_cur);
            self.snap_cur = repeaters.iter().copied().collect();
            self.snap_at = Some(now_ns);
        }
        self.step_ladder(now_ns, t2, &ev, &repeaters, &mut out);
        self.learn_baselines(now_ns);
        self.prune(now_ns);
        out
    }

    fn fold_cells(&mut self, now: u64, cells: &[CellSample]) {
        for c in cells {
            if !self.cells.contains_key(&c.key) && self.cells.len() >= self.s.max_cells {
                continue;
            }
            let t = self.cells.entry(c.key).or_default();
            t.peer = c.peer;
            t.tac = c.tac;
            if t.primed && now > t.last_at {
                let d = c.initial_ue.saturating_sub(t.last_count) as f64;
                t.dt_s = (now - t.last_at) as f64 / NS;
                t.raw = d / t.dt_s;
                let a = 1.0 - (-t.dt_s / self.s.rate_smoothing_s).exp();
                t.rate += a * (t.raw - t.rate);
                let ds = c.suci_only.saturating_sub(t.suci_last);
                t.suci_raw = ds as f64 / t.dt_s;
                t.suci_rate += a * (t.suci_raw - t.suci_rate);
                if ds > 0 {
                    let mut by = [0u32; RRC_CAUSE_SLOTS];
                    for (i, b) in by.iter_mut().enumerate() {
                        *b = c.suci_causes[i].wrapping_sub(t.causes_last[i]);
                    }
                    t.suci_recent.push_back((now, ds, by));
                    t.suci_in_window += ds;
                }
            } else {
                t.raw = 0.0;
                t.dt_s = 0.0;
                t.suci_raw = 0.0;
            }
            t.primed = true;
            t.last_at = now;
            t.last_count = c.initial_ue;
            t.suci_last = c.suci_only;
            t.causes_last = c.suci_causes;
        }
        // Cells not read this tick (evicted from the LRU map): no attempts.
        for t in self.cells.values_mut().filter(|t| t.last_at != now) {
            t.raw = 0.0;
            t.rate = 0.0;
            t.suci_raw = 0.0;
            t.suci_rate = 0.0;
        }
        let s = &self.s;
        let window = (s.device_window_s * NS) as u64;
        for t in self.cells.values_mut() {
            while let Some(&(at, n, _)) = t.suci_recent.front() {
                if now.saturating_sub(at) < window {
                    break;
                }
                t.suci_recent.pop_front();
                t.suci_in_window = t.suci_in_window.saturating_sub(n);
            }
            let base = t.baseline_or_prior(s);
            t.hot = t.rate >= s.cell_min_rate && t.rate >= s.cell_ratio * base;
            let share = t.suci_share();
            t.pattern = t.hot && share >= s.suci_share && share >= s.suci_share_ratio * t.suci_base_share;
        }
    }

    fn fold_devices(&mut self, now: u64, devices: &[DeviceSample]) {
        let window = (self.s.device_window_s * NS) as u64;
        for d in devices {
            if !self.devices.contains_key(&d.key) && self.devices.len() >= self.s.max_devices {
                self.evict_devices();
                if self.devices.len() >= self.s.max_devices {
                    continue;
                }
            }
            let t = self.devices.entry(d.key).or_default();
            // A device first seen now made at least one attempt: the map entry exists because of it.
            let delta = if t.primed { d.attempts.saturating_sub(t.last_count) } else { d.attempts.min(1) };
            t.primed = true;
            t.last_count = d.attempts;
            t.cell = d.cell;
            t.peer = d.peer;
            if delta > 0 {
                t.recent.push_back((now, delta));
                t.in_window += delta;
                t.seen_ns = now;
            }
        }
        for t in self.devices.values_mut() {
            while let Some(&(at, n)) = t.recent.front() {
                if now.saturating_sub(at) < window {
                    break;
                }
                t.recent.pop_front();
                t.in_window = t.in_window.saturating_sub(n);
            }
        }
    }

    /// Forget the least recently active eighth of the devices (bounded memory).
    fn evict_devices(&mut self) {
        let mut idle: Vec<(u64, N2DeviceKey)> = self.devices.iter().map(|(k, t)| (t.seen_ns, *k)).collect();
        if idle.is_empty() {
            return;
        }
        let n = (self.s.max_devices / 8).clamp(1, idle.len());
        idle.select_nth_unstable(n - 1);
        for (_, k) in idle.iter().take(n) {
            self.devices.remove(k);
        }
    }

    fn prune(&mut self, now: u64) {
        let window = (self.s.device_window_s * NS) as u64;
        self.devices.retain(|_, t| t.in_window > 0 || now.saturating_sub(t.seen_ns) < 4 * window);
    }

    /// The hot cells whose own attempts this window come mostly from repeaters (at least
    /// `offender_share` of them): the storm's cells. A flash crowd in another hot cell at the
    /// same time (each device once) is not one of them, so it is never barred nor its gNB sent
    /// an overload (NGMN: deny the specific devices, keep serving a natural crowd).
    fn storm_cells(&self) -> BTreeSet<N2CellKey> {
        let s = &self.s;
        let mut per_cell: HashMap<N2CellKey, (u64, u64)> = HashMap::new();
        for t in self.devices.values() {
            if t.in_window == 0 || !self.cells.get(&t.cell).is_some_and(|c| c.hot) {
                continue;
            }
            let e = per_cell.entry(t.cell).or_default();
            e.0 += t.in_window;
            if t.in_window >= u64::from(s.device_repeat) {
                e.1 += t.in_window;
            }
        }
        per_cell
            .into_iter()
            .filter(|(_, (all, rep))| *all > 0 && *rep as f64 >= s.offender_share * *all as f64)
            .map(|(k, _)| k)
            .chain(self.pattern_cells())
            .collect()
    }

    /// The hot cells attributed by pattern (see [`CellTrack::pattern`]).
    fn pattern_cells(&self) -> BTreeSet<N2CellKey> {
        self.cells.iter().filter(|(_, t)| t.pattern).map(|(k, _)| *k).collect()
    }

    /// Classify the hot cells' traffic this window; returns the repeaters (worst first).
    fn classify(&self) -> (StormClass, StormEvidence, Vec<N2DeviceKey>) {
        let s = &self.s;
        let hot: HashSet<&N2CellKey> = self.cells.iter().filter(|(_, t)| t.hot).map(|(k, _)| k).collect();
        let mut ev = StormEvidence { hot_cells: hot.len() as u64, ..StormEvidence::default() };
        if hot.is_empty() {
            return (StormClass::None, ev, Vec::new());
        }
        for k in &hot {
            if let Some(t) = self.cells.get(*k) {
                ev.region_rate_per_s += t.rate;
                ev.region_baseline_per_s += t.baseline_or_prior(s);
            }
        }
        // Devices whose attempts within the device window were in (now) hot cells, and the
        // repeaters among them.
        let mut attempts = 0u64;
        let mut distinct = 0u64;
        let mut rep: Vec<(u64, N2DeviceKey)> = Vec::new();
        let mut rep_attempts = 0u64;
        for (k, t) in &self.devices {
            if t.in_window == 0 || !hot.contains(&t.cell) {
                continue;
            }
            distinct += 1;
            attempts += t.in_window;
            if t.in_window >= u64::from(s.device_repeat) {
                rep.push((t.in_window, *k));
                rep_attempts += t.in_window;
            }
        }
        rep.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let repeaters: Vec<N2DeviceKey> = rep.into_iter().map(|(_, k)| k).collect();
        ev.distinct_devices = distinct;
        ev.repeaters = repeaters.len() as u64;
        ev.attempts_per_device = if distinct > 0 { attempts as f64 / distinct as f64 } else { 0.0 };
        ev.repeater_share = if attempts > 0 { rep_attempts as f64 / attempts as f64 } else { 0.0 };
        let again = repeaters.iter().filter(|k| self.snap_prev.contains(k)).count();
        ev.consistency = if repeaters.is_empty() { 0.0 } else { again as f64 / repeaters.len() as f64 };
        let t2 = ev.repeaters >= s.min_offenders
            && ev.attempts_per_device >= s.repeat_ratio
            && ev.repeater_share >= s.offender_share
            && ev.consistency >= s.consistency;
        // Cell-pattern attribution: SUCI-only attempts have no lasting identity, so they never
        // make repeaters; the hot cells that are mostly SUCI-only, far above their own normal,
        // carry the storm instead.
        let (mut suci_rate, mut rate) = (0.0, 0.0);
        for k in self.pattern_cells() {
            if let Some(t) = self.cells.get(&k) {
                ev.pattern_cells += 1;
                ev.suci_attempts += t.suci_in_window;
                suci_rate += t.suci_rate;
                rate += t.rate;
            }
        }
        ev.suci_share = if rate > 0.0 { (suci_rate / rate).min(1.0) } else { 0.0 };
        let by_pattern = ev.pattern_cells > 0 && ev.suci_attempts >= s.min_offenders;
        ev.attribution = match (t2, by_pattern) {
            (true, true) => Attribution::DevicesAndCellPattern,
            (true, false) => Attribution::Devices,
            (false, true) => Attribution::CellPattern,
            (false, false) => Attribution::None,
        };
        let class = if t2 || by_pattern { StormClass::RegistrationStorm } else { StormClass::FlashCrowd };
        (class, ev, repeaters)
    }

    /// Baselines learn only from windows in which the cell is not hot: the mean of the first
    /// `warmup_windows`, then an EWMA with the configured half-life.
    fn learn_baselines(&mut self, now: u64) {
        let (hl, warmup) = (self.s.baseline_half_life_s, self.s.warmup_windows);
        for t in self.cells.values_mut().filter(|t| t.last_at == now && !t.hot && t.dt_s > 0.0) {
            let alpha = if t.windows < warmup {
                1.0 / f64::from(t.windows + 1)
            } else {
                1.0 - (-t.dt_s / hl * std::f64::consts::LN_2).exp()
            };
            t.baseline += alpha * (t.raw - t.baseline);
            if t.raw > 0.0 {
                t.suci_base_share += alpha * ((t.suci_raw / t.raw).min(1.0) - t.suci_base_share);
            }
            t.windows = t.windows.saturating_add(1);
        }
    }

    fn step_ladder(&mut self, now: u64, t2: bool, ev: &StormEvidence, repeaters: &[N2DeviceKey], out: &mut TickOutput) {
        let s = self.s.clone();
        let prev = self.level;
        let mut reason = "";
        if self.level > LEVEL_NONE {
            self.level_since_windows += 1;
            let storm = self.storm_cells();
            self.affected.extend(storm);
            self.affected_pattern.extend(self.pattern_cells());
        }
        if self.level == LEVEL_NONE {
            if t2 && self.t2_streak >= s.persist_windows {
                self.level = LEVEL_DEVICES;
                reason = "storm";
            }
        } else if t2 {
            let contained = ev.region_rate_per_s <= s.contain_fraction * self.level_entry_rate;
            let needed = match self.level {
                LEVEL_DEVICES => s.min_offenders_barring,
                _ => s.min_offenders_overload,
            };
            // Offenders: the repeating identities, plus the SUCI-only attempts of the pattern
            // cells within the device window (each is an RRC connection with an identity the
            // core cannot link to another, so as costly to the sender as one more device).
            if self.level < LEVEL_OVERLOAD
                && self.level_since_windows >= s.escalate_windows
                && !contained
                && ev.repeaters + ev.suci_attempts >= needed
            {
                self.level += 1;
                reason = "escalate_not_contained";
            }
        } else if self.quiet_streak >= s.quiet_windows {
            self.level -= 1;
            self.quiet_streak = 0;
            reason = "quiet";
        }
        if self.level != prev {
            self.level_since_windows = 0;
            self.level_entry_rate = ev.region_rate_per_s;
            if prev == LEVEL_NONE {
                self.affected = self.storm_cells();
                self.affected_pattern = self.pattern_cells();
            }
        }
        if t2 && ev.attribution != Attribution::None {
            self.attribution = ev.attribution;
        }
        if self.level == LEVEL_OVERLOAD {
            // Never lower the reduction while overload is in force (no oscillation as it works).
            self.reduction = self.reduction.max(self.needed_reduction(ev));
        } else {
            self.reduction = 0;
        }

        let action = match (prev, self.level) {
            (p, l) if p == l && l == LEVEL_NONE => return,
            (_, LEVEL_NONE) => ResponseAction::Clear,
            (LEVEL_OVERLOAD, _) if self.level < LEVEL_OVERLOAD => ResponseAction::OverloadStop,
            (p, LEVEL_OVERLOAD) if p < LEVEL_OVERLOAD => ResponseAction::OverloadStart,
            (_, LEVEL_OVERLOAD) => ResponseAction::OverloadUpdate,
            _ => ResponseAction::Advise,
        };
        let gnbs = self.affected_gnbs();
        let scope = (gnbs.clone(), self.reduction);
        let refresh_due = s.refresh_s > 0.0 && now.saturating_sub(self.last_sent_ns) as f64 >= s.refresh_s * NS;
        if self.level == prev {
            if scope != self.last_scope {
                reason = "scope";
            } else if refresh_due {
                reason = "refresh";
            } else {
                return;
            }
        }
        self.last_scope = scope;
        self.last_sent_ns = now;
        self.seq += 1;
        let devices: Vec<DeviceAdvice> = if self.level >= LEVEL_DEVICES {
            repeaters
                .iter()
                .filter_map(|k| self.devices.get(k).map(|t| (k, t)))
                .take(s.max_devices_reported)
                .map(|(k, t)| DeviceAdvice {
                    id: n2_device_str(k),
                    cell: cell_str(&t.cell),
                    gnb: addr_str(&t.peer),
                    attempts: t.in_window,
                    t3346_s: (s.t3346_base_s.saturating_mul(1 << (self.level - 1))).min(s.t3346_max_s),
                })
                .collect()
        } else {
            Vec::new()
        };
        let omitted =
            if self.level >= LEVEL_DEVICES { (repeaters.len() as u64).saturating_sub(devices.len() as u64) } else { 0 };
        let access_barring = if self.level >= LEVEL_BARRING { self.barring() } else { Vec::new() };
        let pattern = if self.level >= LEVEL_DEVICES { self.pattern_advice() } else { Vec::new() };
        let overload = match action {
            ResponseAction::OverloadStart | ResponseAction::OverloadUpdate | ResponseAction::OverloadStop => {
                Some(OverloadRequest {
                    gnbs,
                    traffic_load_reduction_pct: if action == ResponseAction::OverloadStop { 0 } else { self.reduction },
                    overload_action: "reject-rrc-cr-signalling",
                    slices: Vec::new(),
                })
            }
            _ => None,
        };
        let attribution = self.attribution;
        if self.level == LEVEL_NONE {
            self.affected.clear();
            self.affected_pattern.clear();
            self.attribution = Attribution::None;
        }
        out.responses.push(Response {
            schema: RESPONSE_SCHEMA,
            version: RESPONSE_VERSION,
            seq: self.seq,
            at_ns: now,
            action,
            level: self.level,
            previous_level: prev,
            class: self.class,
            attribution,
            reason,
            overload,
            access_barring,
            devices,
            pattern,
            devices_omitted: omitted,
            evidence: ev.clone(),
        });
    }

    /// The pattern back-off of each affected cell attributed by pattern.
    fn pattern_advice(&self) -> Vec<PatternAdvice> {
        let s = &self.s;
        self.affected_pattern
            .iter()
            .filter_map(|k| self.cells.get(k).map(|t| (k, t)))
            .map(|(k, t)| {
                let dom = t.dominant_cause();
                PatternAdvice {
                    cell: cell_str(k),
                    gnb: addr_str(&t.peer),
                    tac: t.tac,
                    identity: "suci_only",
                    nas: "registration_request",
                    rrc_cause: dom.map(|d| d.0),
                    rrc_cause_name: dom
                        .filter(|_| k.kind == CELL_KIND_NR)
                        .and_then(|d| NGAP_RRC_CAUSES.get(d.0 as usize).copied()),
                    rrc_cause_share: dom.map_or(0.0, |d| d.1),
                    suci_only_per_s: t.suci_rate,
                    suci_share: t.suci_share(),
                    baseline_share: t.suci_base_share,
                    attempts: t.suci_in_window,
                    t3346_s: (s.t3346_base_s.saturating_mul(1 << (self.level.max(1) - 1))).min(s.t3346_max_s),
                }
            })
            .collect()
    }

    /// The reduction that brings the affected cells back to baseline × headroom.
    fn needed_reduction(&self, ev: &StormEvidence) -> u8 {
        let (rate, base) = self
            .affected
            .iter()
            .filter_map(|k| self.cells.get(k))
            .fold((0.0, 0.0), |(r, b), t| (r + t.rate, b + t.baseline_or_prior(&self.s)));
        let rate = rate.max(ev.region_rate_per_s);
        let pct = if rate > 0.0 { 100.0 * (1.0 - base * self.s.headroom / rate) } else { 0.0 };
        (pct.ceil().max(0.0) as u8).clamp(self.s.reduction_min_pct, self.s.reduction_max_pct)
    }

    fn affected_gnbs(&self) -> Vec<String> {
        let set: BTreeSet<String> =
            self.affected.iter().filter_map(|k| self.cells.get(k)).map(|t| addr_str(&t.peer)).collect();
        set.into_iter().collect()
    }

    fn barring(&self) -> Vec<BarringAdvice> {
        let s = &self.s;
        let mut v: BTreeMap<String, BarringAdvice> = BTreeMap::new();
        for k in &self.affected {
            let Some(t) = self.cells.get(k) else { continue };
            let base = t.baseline_or_prior(s);
            let target = base * s.headroom;
            // The fraction of attempts to admit, in the 0.05 steps of uac-BarringFactor, at least
            // p05 (never a full bar) and at most p95.
            let p = if t.rate > 0.0 { (target / t.rate).clamp(0.05, 0.95) } else { 0.95 };
            let p = (p * 20.0).floor() / 20.0;
            let cell = cell_str(k);
            v.insert(
                cell.clone(),
                BarringAdvice {
                    cell,
                    gnb: addr_str(&t.peer),
                    tac: t.tac,
                    barring_factor: p.max(0.05),
                    barring_time_s: s.barring_time_s,
                    access_categories: s.barring_categories.clone(),
                    exempt: "access category 2 (emergency); access identities 1, 2, 11-15",
                    rate_per_s: t.rate,
                    baseline_per_s: base,
                },
            );
        }
        v.into_values().collect()
    }
}

/// `nr:<plmn hex>:<nci hex>` / `eutra:<plmn hex>:<eci hex>`.
pub fn cell_str(k: &N2CellKey) -> String {
    let plmn = format!("{:02x}{:02x}{:02x}", k.plmn[0], k.plmn[1], k.plmn[2]);
    match k.kind {
        CELL_KIND_NR => format!("nr:{plmn}:{:#011x}", k.cell_id),
        CELL_KIND_EUTRA => format!("eutra:{plmn}:{:#09x}", k.cell_id),
        _ => "unknown".to_owned(),
    }
}

/// A device key as the hook and the audit log write it.
pub fn n2_device_str(k: &N2DeviceKey) -> String {
    let id = &k.id;
    match k.kind {
        N2_DEV_KIND_5G_S_TMSI => {
            let sp = u16::from_be_bytes([id[0], id[1]]);
            let tmsi = u32::from_be_bytes([id[2], id[3], id[4], id[5]]);
            format!("5g-s-tmsi:{}:{}:{tmsi:#010x}", sp >> 6, sp & 0x3f)
        }
        N2_DEV_KIND_S_TMSI => {
            format!("s-tmsi:{:#04x}:{:#010x}", id[0], u32::from_be_bytes([id[1], id[2], id[3], id[4]]))
        }
        N2_DEV_KIND_RAN_UE_V4 => {
            let a = L3Addr { family: FAMILY_IPV4, addr: *id };
            format!("ran-ue:{}:{}", addr_str(&a), k.aux)
        }
        N2_DEV_KIND_RAN_UE_V6 => {
            let a = L3Addr { family: FAMILY_IPV6, addr: *id };
            format!("ran-ue:{}:{}", addr_str(&a), k.aux)
        }
        other => format!("kind{other}:{id:02x?}"),
    }
}
