//! What the engine answers: the storm class and its attribution, the graduated response (the
//! hook payload, versioned), transitions and status.

use super::*;

/// Version of the [`Response`] JSON (the hook payload). Bump on any incompatible change.
pub const RESPONSE_VERSION: u32 = 1;
/// The `schema` field of every [`Response`].
pub const RESPONSE_SCHEMA: &str = "overload-guard/n2-response";

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
    /// Levels 1-2: devices to back off, cells to bar (new, changed or refreshed). At level 0
    /// (fleet mode only): the fleet's devices to back off here (docs/fleet.md).
    Advise,
    /// Level 3 entered: send NGAP OVERLOAD START to `overload.gnbs`.
    OverloadStart,
    /// Level 3 in force, refreshed or with a new reduction / scope: send OVERLOAD START again
    /// (TS 38.413 §8.7.6.2: a new OVERLOAD START replaces the previous one).
    OverloadUpdate,
    /// Level 3 left: send NGAP OVERLOAD STOP (§8.7.7) to `overload.gnbs`.
    OverloadStop,
    /// The storm is over (level 0) and no fleet device is left: lift barring, stop backing off
    /// the listed devices.
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
    /// Listed because of the fleet (another member's list or an operator's pin), not this
    /// member's own evidence. Absent without fleet mode, so a local-only payload is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetOrigin>,
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
    /// Hot cells that only the fleet's sums made hot (a storm split over members; docs/fleet.md).
    /// Absent without fleet mode, so a local-only payload is unchanged.
    #[serde(skip_serializing_if = "is_zero")]
    pub fleet_hot_cells: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// Why: `storm`, `escalate_not_contained`, `quiet`, `refresh`, `scope`; fleet mode adds
    /// `fleet_devices` (the fleet devices listed here changed; docs/fleet.md).
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
