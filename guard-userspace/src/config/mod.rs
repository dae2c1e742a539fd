//! The operator's TOML configuration: parsed with unknown keys rejected, then validated as a whole
//! (cross-field rules included) before any of it reaches the data plane or the engine.
//!
//! Every section has a default, and [`Config::default`] is a complete configuration that validates;
//! `config/guard.example.toml` spells the same defaults out with these doc comments. Errors name
//! the key path (`ladder.shape.rate_pps: must be > 0`); type errors come from `toml` itself, which
//! names the key and the line.
//!
//! Durations are strings with one unit: `"250ms"`, `"5s"`, `"2m"`, `"1h"` (also `ns`, `us`).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use guard_common::abi::{
    GuardConfig, L3Addr, Limit, TeidSpan, FAMILY_IPV4, FAMILY_IPV6, KEY_MODE_TEID, KEY_MODE_UE_ADDR, PROT_ANTISPOOF,
    PROT_CELL_CAP, PROT_ECHO, PROT_ERR_IND, PROT_HOST_CAP, PROT_MALFORMED, PROT_NEW_DEVICE, PROT_QUARANTINE,
    PROT_SHAPE, PROT_STRICT,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The smallest `min_offenders` a cell or host cap may be configured with. The deliberate-triggering
/// defence (DESIGN §2, T4) must not be configurable away: a handful of devices, however fast, must
/// never be able to raise a cell- or host-wide stage.
pub const MIN_OFFENDERS_FLOOR: u32 = 20;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Syntax or type error; `toml`'s message names the key and the line.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// One or more validation rules failed; each problem names its key path.
    #[error("invalid configuration: {}", join_problems(.0))]
    Invalid(Vec<Problem>),
}

/// One failed validation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `ladder.shape.rate_pps` or `group[2].id`.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

fn join_problems(p: &[Problem]) -> String {
    p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub guard: GuardSection,
    pub dataplane: DataplaneSection,
    pub classify: ClassifySection,
    pub ladder: LadderSection,
    pub capacity: CapacitySection,
    /// Optional device groups (`[[group]]`), RFC 8520 (MUD) in spirit: what a cohort of devices is
    /// expected to do. First matching group wins.
    #[serde(rename = "group")]
    pub groups: Vec<GroupSection>,
    pub metrics: MetricsSection,
    pub attach: AttachSection,
    /// Fleet mode through etcd (docs/fleet.md). Absent: the guard runs alone, no etcd code runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetSection>,
}

/// `[attach]`: sharing the N3 NIC with another XDP program (docs/operations.md, "Sharing the NIC
/// with an XDP UPF"). Both unset: the guard attaches to the interface alone, as before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachSection {
    /// The guard first: the bpffs path of a pinned XDP program that gets every packet the guard
    /// passes (by tail call; its verdict stands). Dropped packets never reach it. Re-resolved
    /// every tick: a program re-pinned there replaces the old one, a removed pin passes packets
    /// to the stack (counted, logged, `guard status`). A SIGHUP applies a change.
    pub next: Option<PathBuf>,
    /// The guard inside another root: `"<bpffs path of a pinned program array>:<slot>"`. The guard
    /// does not attach to the interface; it puts its program in that slot of the operator's
    /// array, and the operator's root program tail-calls it. Only a restart applies a change.
    pub into: Option<String>,
}

/// `[guard]`: where and how the guard attaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSection {
    /// N3 (RAN-facing GTP-U) interfaces to attach to. May be empty here when given on the command
    /// line; `guard run` refuses to start with none.
    pub interfaces: Vec<String>,
    /// What "a device" is: `"teid"` (one PDU session) or `"ue_addr"` (the inner UE address).
    pub key_mode: KeyMode,
    /// The host's own N3 (GTP-U) addresses, at most 16. A TEID is unique only with the address it
    /// was allocated on (the F-TEID, TS 29.281 §5.1, TS 29.244 §8.2.3): on a host with several N3
    /// addresses or UPF instances, list them all, so that two sessions with one TEID on two
    /// addresses are two devices. Empty (one N3 address): every session is keyed by its TEID.
    /// An address keeps its index once listed, even when removed (docs/dataplane.md).
    pub n3_addrs: Vec<IpAddr>,
    /// UDP destination port of GTP-U (TS 29.281 §4.4.2).
    pub gtpu_port: u16,
    /// bpffs directory for pinned maps and links.
    pub pin_dir: PathBuf,
    /// Capacity of the per-device map, and the most devices the engine tracks.
    pub max_devices: u32,
    /// JSON-lines audit trail of every decision.
    pub audit_log: PathBuf,
    /// Controller tick: one measurement window. Triggers below count windows of this length.
    pub tick: Dur,
    /// N2/S1-MME interface (SCTP: NGAP, S1AP) to guard beside N3 (docs/n2.md); `--n2-iface`
    /// overrides it.
    pub n2_interface: Option<String>,
    /// The N2 settings file (TOML, docs/n2.md §6); `--n2-config` overrides it. Defaults without.
    pub n2_config: Option<PathBuf>,
}

impl Default for GuardSection {
    fn default() -> Self {
        GuardSection {
            interfaces: Vec::new(),
            key_mode: KeyMode::Teid,
            n3_addrs: Vec::new(),
            gtpu_port: 2152,
            pin_dir: PathBuf::from("/sys/fs/bpf/overload-guard"),
            max_devices: guard_common::abi::DEFAULT_MAX_DEVICES,
            audit_log: PathBuf::from("/var/log/overload-guard/audit.jsonl"),
            tick: Dur::secs(1),
            n2_interface: None,
            n2_config: None,
        }
    }
}

/// How devices are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    Teid,
    UeAddr,
}

/// How one data-plane protection acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Not computed at all.
    Off,
    /// Computed and counted as "would drop", but the packet passes (safe rollout).
    Shadow,
    /// Drops.
    Enforce,
}

/// `[dataplane]`: the record written to the N3 program's config map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneSection {
    pub modes: Modes,
    /// Per-device profile limit at stage 0. Exceeding it passes the packet but counts `over_limit`
    /// and emits an evidence event; it is also the ceiling of any learned profile.
    pub observe: PpsLimit,
    /// Per-gNB rate of never-seen TEIDs (caps TEID scans / random-TEID floods).
    pub new_device: PpsLimit,
    /// Per-path Echo Request budget (a path: a gNB address and one of this host's addresses),
    /// applied only while the host receives more than `echo_host`. TS 29.281 §7.2.1: no more
    /// than one per path per 60 s; the burst covers the retransmissions of an unanswered request
    /// (T3-RESPONSE / N3-REQUESTS) and a restart.
    pub echo: PeriodLimit,
    /// Host-wide Echo Request rate below which no Echo Request is limited: answering one costs
    /// the UPF next to nothing, while dropping a real one can cost a gNB its path (and every
    /// session on it). Set it to what the UPF answers without harm; only a rate above it, which
    /// a forger must pay for, engages the per-path budgets.
    pub echo_host: PpsLimit,
    /// After a G-PDU's first IP fragment is dropped, its later fragments (same source,
    /// destination and Identification, RFC 791 §3.2) are dropped for this long. Fragments of one
    /// datagram arrive back to back; longer would let a benign datagram that reuses the
    /// Identification on the same gNB path be caught.
    pub fragment_window: Dur,
    /// Outer sources the guard does not know yet (never carried traffic it saw within minutes, no
    /// established session vouching for them) that get a record of their own, host-wide. The
    /// rest share one record and the new-device budget `unknown_new_device`: a forger rotating
    /// its source address gets one budget, not one per address (docs/dataplane.md).
    pub new_gnb: PpsLimit,
    /// New devices (never-seen TEIDs) admitted from all unknown sources together, host-wide.
    pub unknown_new_device: PpsLimit,
    /// Per-gNB Error Indication rate.
    pub err_ind: PeriodLimit,
    /// QFIs (0..=63) never shaped or dropped by rate stages (e.g. the flows carrying emergency
    /// or mission-critical 5QIs).
    pub exempt_qfi: Vec<u8>,
    /// Minimum gap between two over-limit events of one device.
    pub event_gap: Dur,
    /// TEID ranges of non-IP PDU sessions (Ethernet, Unstructured: TS 23.501 §5.6.10), at most
    /// 4, e.g. `["0xf0000000-0xffffffff"]` when the UPF allocates the Ethernet DNN's TEIDs there
    /// (TS 29.244 §8.2.82). Their G-PDUs are counted as non-IP and never read as IP, whatever
    /// the T-PDU's first octet. Without it the guard still classifies each T-PDU: one that is not
    /// an IP packet of its own length is non-IP (docs/dataplane.md).
    pub non_ip_teids: Vec<TeidRange>,
    /// Anti-spoofing binds an IPv6 session to this prefix of its inner source (1..=64 bits): TS
    /// 23.501 §5.8.2.2 gives each IPv6 PDU session a /64, inside which the UE forms its SLAAC and
    /// privacy addresses (RFC 8981); shorter for delegated prefixes (§5.8.2.2.4). UE-address key
    /// mode keys IPv6 devices by the same prefix.
    pub antispoof_v6_prefix: u8,
    /// A binding that has not matched a passed G-PDU for this long is replaced by the next source
    /// that passes ("0s": never): how a forged first packet's binding is corrected
    /// (docs/dataplane.md, "Anti-spoofing").
    pub antispoof_rebind: Dur,
    /// Framed routes (TS 23.501 §5.6.14): prefixes of networks behind UEs whose inner sources
    /// anti-spoofing accepts without binding them, e.g. `["10.99.0.0/16", "2001:db8:f00::/48"]`.
    pub framed_routes: Vec<Prefix>,
    /// N3 addresses (from `guard.n3_addrs`) that serve only non-IP PDU sessions (a UPF instance of
    /// an Ethernet or Unstructured DNN): their G-PDUs are non-IP whatever they carry.
    pub non_ip_local_addrs: Vec<IpAddr>,
    /// Per-CPU event rate, so a flood cannot flood the ring buffer. The default, 20000/s per
    /// CPU, carries one over-limit event a second from each of 1% of 1M devices even when one
    /// CPU receives them all; the controller drains the ring on its own thread.
    pub event_rate: PpsLimit,
}

impl Default for DataplaneSection {
    fn default() -> Self {
        DataplaneSection {
            modes: Modes::default(),
            observe: PpsLimit { pps: 200, burst: 400 },
            new_device: PpsLimit { pps: 1000, burst: 2000 },
            echo: PeriodLimit { count: 1, per: Dur::secs(60), burst: 8 },
            echo_host: PpsLimit { pps: 20_000, burst: 40_000 },
            fragment_window: Dur(50_000_000),
            new_gnb: PpsLimit { pps: 100, burst: 200 },
            unknown_new_device: PpsLimit { pps: 1000, burst: 2000 },
            err_ind: PeriodLimit { count: 100, per: Dur::secs(1), burst: 200 },
            exempt_qfi: Vec::new(),
            non_ip_teids: Vec::new(),
            non_ip_local_addrs: Vec::new(),
            antispoof_v6_prefix: 64,
            antispoof_rebind: Dur::secs(60),
            framed_routes: Vec::new(),
            event_gap: Dur::secs(1),
            event_rate: PpsLimit { pps: 20_000, burst: 2000 },
        }
    }
}

/// `[dataplane.modes]`: one mode per protection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Modes {
    pub shape: Mode,
    pub strict: Mode,
    pub quarantine: Mode,
    pub cell_cap: Mode,
    pub host_cap: Mode,
    /// Inner-source binding check. Shadow by default: a UE legitimately changing its address
    /// (e.g. IPv6 privacy addresses) must be understood before it is enforced.
    pub antispoof: Mode,
    pub new_device: Mode,
    pub echo: Mode,
    pub err_ind: Mode,
    pub malformed: Mode,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            shape: Mode::Enforce,
            strict: Mode::Enforce,
            quarantine: Mode::Enforce,
            cell_cap: Mode::Enforce,
            host_cap: Mode::Enforce,
            antispoof: Mode::Shadow,
            new_device: Mode::Enforce,
            echo: Mode::Enforce,
            err_ind: Mode::Enforce,
            malformed: Mode::Enforce,
        }
    }
}

/// The N3 protections' bits and their `[modes]` names, in the order operators read them.
pub const PROTECTIONS: [(u32, &str); 10] = [
    (PROT_SHAPE, "shape"),
    (PROT_STRICT, "strict"),
    (PROT_QUARANTINE, "quarantine"),
    (PROT_CELL_CAP, "cell_cap"),
    (PROT_HOST_CAP, "host_cap"),
    (PROT_ANTISPOOF, "antispoof"),
    (PROT_NEW_DEVICE, "new_device"),
    (PROT_ECHO, "echo"),
    (PROT_ERR_IND, "err_ind"),
    (PROT_MALFORMED, "malformed"),
];

/// The protections of `names` by mode, from the data plane's `(enabled, shadow)` masks:
/// `[enforced, shadow, off]` (a shadow bit is always enabled too).
pub fn protections_by_mode<'a>(enabled: u32, shadow: u32, names: &[(u32, &'a str)]) -> [Vec<&'a str>; 3] {
    let pick = |f: &dyn Fn(u32) -> bool| names.iter().filter(|(b, _)| f(*b)).map(|(_, n)| *n).collect::<Vec<_>>();
    [
        pick(&|b| enabled & b != 0 && shadow & b == 0),
        pick(&|b| enabled & b != 0 && shadow & b != 0),
        pick(&|b| enabled & b == 0),
    ]
}

impl Modes {
    fn each(&self) -> [(u32, Mode, &'static str); 10] {
        let modes = [
            self.shape,
            self.strict,
            self.quarantine,
            self.cell_cap,
            self.host_cap,
            self.antispoof,
            self.new_device,
            self.echo,
            self.err_ind,
            self.malformed,
        ];
        core::array::from_fn(|i| (PROTECTIONS[i].0, modes[i], PROTECTIONS[i].1))
    }

    /// The protections in `mode`, by their config names.
    pub fn named(&self, mode: Mode) -> Vec<&'static str> {
        self.each().iter().filter(|(_, m, _)| *m == mode).map(|(_, _, n)| *n).collect()
    }

    /// The `(enabled, shadow)` protection masks of [`GuardConfig`].
    pub fn masks(&self) -> (u32, u32) {
        self.each().iter().fold((0, 0), |(en, sh), (bit, mode, _)| match mode {
            Mode::Off => (en, sh),
            Mode::Shadow => (en | bit, sh | bit),
            Mode::Enforce => (en | bit, sh),
        })
    }
}

/// A rate in packets per second with a burst in packets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpsLimit {
    pub pps: u64,
    pub burst: u64,
}

impl PpsLimit {
    pub fn limit(&self) -> Limit {
        Limit::per_second(self.pps, self.burst)
    }
}

/// `count` packets per `per`, with a burst: for rates below one per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodLimit {
    pub count: u64,
    pub per: Dur,
    pub burst: u64,
}

impl PeriodLimit {
    pub fn limit(&self) -> Limit {
        if self.count == 0 {
            return Limit::UNLIMITED;
        }
        Limit::per_interval((self.per.0 / self.count).max(1), self.burst)
    }
}

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
    /// Members deviating within this window count as "at once".
    pub window: Dur,
}

impl Default for CohortSection {
    fn default() -> Self {
        CohortSection { min_members: 5, min_fraction: 0.3, period_factor: 5.0, window: Dur::secs(300) }
    }
}

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
            },
            host: CapLevel {
                capacity_pps: 2_000_000,
                cap_pps: 2_000_000,
                burst: 100_000,
                min_offenders: 2000,
                ttl: Dur::secs(30),
                quiet: Dur::secs(300),
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
}

/// `[[group]]`: one device group and its expected behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: String,
    /// Written to stage entries and audit; unique, > 0.
    pub id: u32,
    /// TEID ranges, `"4096-8191"`, `"0x1000-0x1fff"` or one TEID.
    #[serde(default)]
    pub teids: Vec<TeidRange>,
    /// UE address prefixes (`"10.45.0.0/16"`, `"2001:db8::/48"`).
    #[serde(default)]
    pub ue_prefixes: Vec<Prefix>,
    /// Expected mean rate per member (pps; may be below 1).
    #[serde(default)]
    pub expected_pps: Option<f64>,
    /// Expected reporting period.
    #[serde(default)]
    pub expected_period: Option<Dur>,
    /// Expected packets per report.
    #[serde(default)]
    pub expected_burst: Option<u64>,
    /// Allowed inner destinations; empty = not checked.
    #[serde(default)]
    pub servers: Vec<Prefix>,
    /// Priority / emergency devices: never shaped, marked exempt in the data plane.
    #[serde(default)]
    pub exempt: bool,
}

impl GroupSection {
    /// Whether a device (its TEID and UE address) belongs to this group.
    pub fn contains(&self, teid: u32, ue: &L3Addr) -> bool {
        self.teids.iter().any(|r| r.contains(teid)) || self.ue_prefixes.iter().any(|p| p.contains(ue))
    }

    /// Whether `dst` is one of the allowed servers (always true when none are listed or unknown).
    pub fn server_allowed(&self, dst: &L3Addr) -> bool {
        self.servers.is_empty() || dst.family == 0 || self.servers.iter().any(|p| p.contains(dst))
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { listen: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

// ---------------------------------------------------------------------------------------------
// Value types parsed from strings.

/// A duration in nanoseconds, written `"<integer><unit>"` with unit ns, us, ms, s, m or h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub u64);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(s * 1_000_000_000)
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(ms * 1_000_000)
    }
    pub const fn ns(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 =
            num.parse().map_err(|_| format!("invalid duration `{s}`: expected e.g. \"500ms\", \"5s\", \"2m\""))?;
        let mult: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("invalid duration `{s}`: unit must be one of ns, us, ms, s, m, h")),
        };
        n.checked_mul(mult).map(Dur).ok_or_else(|| format!("duration `{s}` is too large"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        for (mult, unit) in UNITS {
            if self.0 % mult == 0 && (self.0 != 0 || unit == "s") {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}ns", self.0)
    }
}

/// An inclusive TEID range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeidRange {
    pub first: u32,
    pub last: u32,
}

impl TeidRange {
    pub fn contains(&self, teid: u32) -> bool {
        self.first <= teid && teid <= self.last
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("invalid TEID `{s}`"))
}

impl FromStr for TeidRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (parse_u32(a)?, parse_u32(b)?),
            None => {
                let t = parse_u32(s)?;
                (t, t)
            }
        };
        if first > last {
            return Err(format!("TEID range `{s}` is empty (first > last)"));
        }
        Ok(TeidRange { first, last })
    }
}

impl fmt::Display for TeidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.first, self.last)
    }
}

/// An IP prefix; a bare address is a host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `a` falls inside this prefix (families must match).
    pub fn contains(&self, a: &L3Addr) -> bool {
        let (net, bits): (&[u8], usize) = match (&self.addr, a.family) {
            (IpAddr::V4(v4), FAMILY_IPV4) => (&v4.octets()[..], 32),
            (IpAddr::V6(v6), FAMILY_IPV6) => (&v6.octets()[..], 128),
            _ => return false,
        };
        let len = usize::from(self.len).min(bits);
        let full = len / 8;
        if net[..full] != a.addr[..full] {
            return false;
        }
        let rem = len % 8;
        if rem == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rem);
        net[full] & mask == a.addr[full] & mask
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("invalid IP address in `{s}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("invalid prefix length in `{s}` (0..={max})"))?,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Serde for the string-parsed value types: errors surface through `toml`, which adds the key
/// and the line.
macro_rules! serde_via_str {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
serde_via_str!(Dur);
serde_via_str!(TeidRange);
serde_via_str!(Prefix);

// ---------------------------------------------------------------------------------------------
// Loading and validation.

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Config::from_toml_str(&text)
    }

    /// Parse and validate configuration text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check every rule, including cross-field ones; all problems are reported at once.
    /// What this configuration does, in words, for `guard config check`: the modes of the
    /// protections and every exemption, so an operator sees at a glance what would be dropped and
    /// what never is.
    pub fn summary(&self) -> String {
        let list = |v: Vec<&str>| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        let m = &self.dataplane.modes;
        let mut out = vec![
            format!(
                "devices keyed by {}; controller tick {}; up to {} devices",
                match self.guard.key_mode {
                    KeyMode::Teid => "TEID",
                    KeyMode::UeAddr => "UE address",
                },
                self.guard.tick,
                self.guard.max_devices
            ),
            format!("enforced (dropped): {}", list(m.named(Mode::Enforce))),
            format!("shadow (counted as \"would drop\", passed): {}", list(m.named(Mode::Shadow))),
            format!("off: {}", list(m.named(Mode::Off))),
        ];
        let exempt: Vec<String> = self
            .groups
            .iter()
            .filter(|g| g.exempt)
            .map(|g| {
                let mut what: Vec<String> = g.teids.iter().map(|t| format!("TEIDs {t}")).collect();
                what.extend(g.ue_prefixes.iter().map(|p| format!("UEs {p}")));
                format!("group {:?} ({})", g.name, list(what.iter().map(String::as_str).collect()))
            })
            .collect();
        out.push(format!("exempt from every rate stage: {}", list(exempt.iter().map(String::as_str).collect())));
        let qfis: Vec<String> = self.dataplane.exempt_qfi.iter().map(|q| format!("QFI {q}")).collect();
        out.push(format!("exempt QoS flows: {}", list(qfis.iter().map(String::as_str).collect())));
        let groups = self.groups.iter().filter(|g| !g.exempt).count();
        out.push(format!("device groups with an expected profile: {groups}"));
        out.push(match &self.fleet {
            None => "fleet: none (this guard runs alone)".to_owned(),
            Some(f) => format!(
                "fleet: {} through etcd {} ({}), member {}",
                f.name,
                f.endpoints.join(", "),
                if f.tls() { "TLS" } else { "INSECURE: no TLS" },
                f.member_name()
            ),
        });
        out.join("\n")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::default();
        self.validate_guard(&mut v);
        self.validate_dataplane(&mut v);
        self.validate_classify(&mut v);
        self.validate_ladder(&mut v);
        self.validate_capacity(&mut v);
        self.validate_groups(&mut v);
        if let Some(f) = &self.fleet {
            f.validate(&mut v);
        }
        if v.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(v.0))
        }
    }

    fn validate_guard(&self, v: &mut Validator) {
        let g = &self.guard;
        let mut seen = HashSet::new();
        for (i, name) in g.interfaces.iter().enumerate() {
            // IFNAMSIZ is 16 including the NUL.
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\t']) {
                v.bad(format!("guard.interfaces[{i}]"), format!("`{name}` is not a valid interface name"));
            }
            if !seen.insert(name) {
                v.bad(format!("guard.interfaces[{i}]"), format!("`{name}` is listed twice"));
            }
        }
        if let Some(n2) = &g.n2_interface {
            if n2.is_empty() || n2.len() > 15 || n2.contains(['/', ' ', '\t']) {
                v.bad("guard.n2_interface".into(), format!("`{n2}` is not a valid interface name"));
            }
            if g.interfaces.contains(n2) {
                v.bad(
                    "guard.n2_interface".into(),
                    format!("`{n2}` is also an N3 interface: one XDP program per interface"),
                );
            }
        }
        if let Some(p) = &g.n2_config {
            match crate::n2::controller::N2File::read(Some(p)) {
                Ok(_) => {}
                Err(e) => v.bad("guard.n2_config".into(), format!("{e:#}")),
            }
            if g.n2_interface.is_none() {
                v.check(false, "guard.n2_config", "is set but guard.n2_interface is not");
            }
        }
        v.check(g.n3_addrs.len() <= 16, "guard.n3_addrs", "at most 16 addresses");
        let mut seen_addr = HashSet::new();
        for (i, a) in g.n3_addrs.iter().enumerate() {
            if !seen_addr.insert(a) {
                v.bad(format!("guard.n3_addrs[{i}]"), format!("`{a}` is listed twice"));
            }
        }
        for (i, a) in self.dataplane.non_ip_local_addrs.iter().enumerate() {
            if !g.n3_addrs.contains(a) {
                v.bad(
                    format!("dataplane.non_ip_local_addrs[{i}]"),
                    format!("`{a}` is not one of guard.n3_addrs: list it there too"),
                );
            }
        }
        v.check(g.gtpu_port != 0, "guard.gtpu_port", "must be > 0");
        v.check(g.max_devices > 0, "guard.max_devices", "must be > 0");
        v.check(g.pin_dir.is_absolute(), "guard.pin_dir", "must be an absolute path");
        v.check(!g.audit_log.as_os_str().is_empty(), "guard.audit_log", "must not be empty");
        v.check(g.tick >= Dur::millis(100) && g.tick <= Dur::secs(60), "guard.tick", "must be between 100ms and 60s");
        self.validate_attach(v);
    }

    fn validate_attach(&self, v: &mut Validator) {
        let a = &self.attach;
        if let Some(p) = &a.next {
            v.check(p.is_absolute(), "attach.next", "must be an absolute bpffs path (e.g. /sys/fs/bpf/upf/xdp_main)");
            v.check(
                p.as_os_str().len() <= guard_common::abi::CHAIN_PATH_MAX,
                "attach.next",
                "is longer than 248 octets",
            );
        }
        if let Some(i) = &a.into {
            match crate::n3::chain::IntoSlot::parse(i) {
                Ok(into) => {
                    if a.next.as_deref() == Some(into.array.as_path()) {
                        v.bad("attach.into".into(), "names the same pin as attach.next".into());
                    }
                }
                Err(e) => v.bad("attach.into".into(), format!("`{i}`: {e}")),
            }
            // One slot holds one program: a second interface's guard would take it over.
            v.check(
                self.guard.interfaces.len() <= 1,
                "attach.into",
                "places one guard program in one slot: list at most one interface in guard.interfaces",
            );
        }
    }

    fn validate_dataplane(&self, v: &mut Validator) {
        let d = &self.dataplane;
        v.pps("dataplane.observe", &d.observe);
        v.pps("dataplane.new_device", &d.new_device);
        v.pps("dataplane.event_rate", &d.event_rate);
        v.period("dataplane.echo", &d.echo);
        v.pps("dataplane.echo_host", &d.echo_host);
        v.pps("dataplane.new_gnb", &d.new_gnb);
        v.pps("dataplane.unknown_new_device", &d.unknown_new_device);
        v.period("dataplane.err_ind", &d.err_ind);
        for (i, q) in d.exempt_qfi.iter().enumerate() {
            v.check(*q <= 63, &format!("dataplane.exempt_qfi[{i}]"), "QFI must be 0..=63 (TS 23.501 §5.7.1)");
        }
        v.check(
            d.non_ip_teids.len() <= guard_common::abi::NON_IP_TEID_RANGES,
            "dataplane.non_ip_teids",
            "at most 4 ranges (the data plane checks each on every G-PDU)",
        );
        v.check(
            (1..=64).contains(&d.antispoof_v6_prefix),
            "dataplane.antispoof_v6_prefix",
            "must be 1..=64 (TS 23.501 §5.8.2.2: a session's IPv6 prefix is a /64 or shorter)",
        );
        v.check(
            d.framed_routes.len() <= guard_common::abi::DEFAULT_MAX_FRAMED as usize,
            "dataplane.framed_routes",
            "at most 4096 prefixes",
        );
        v.check(d.event_gap.0 > 0, "dataplane.event_gap", "must be > 0");
        v.check(
            d.fragment_window.0 > 0 && d.fragment_window.0 <= 1_000_000_000,
            "dataplane.fragment_window",
            "must be > 0 and at most 1s (an IP Identification is reused within seconds on a busy path)",
        );
    }

    fn validate_classify(&self, v: &mut Validator) {
        let c = &self.classify;
        v.check(c.baseline_horizon >= self.guard.tick, "classify.baseline_horizon", "must be at least one tick");
        v.check(c.min_profile_pps > 0.0, "classify.min_profile_pps", "must be > 0");
        v.check(
            c.min_profile_pps <= self.dataplane.observe.pps as f64,
            "classify.min_profile_pps",
            "must be <= dataplane.observe.pps (the profile ceiling)",
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
        v.check(
            ch.min_bursts_synced >= 2 && ch.min_bursts_synced <= ch.min_bursts,
            "classify.chatty.min_bursts_synced",
            "must be >= 2 and <= classify.chatty.min_bursts",
        );
        v.check(ch.max_period_cv > 0.0, "classify.chatty.max_period_cv", "must be > 0");
        v.check(ch.min_peak_ratio > 1.0, "classify.chatty.min_peak_ratio", "must be > 1");
        v.check(ch.burst_ratio > 1.0, "classify.chatty.burst_ratio", "must be > 1");
        v.check(ch.min_burst_packets > 0, "classify.chatty.min_burst_packets", "must be > 0");
        v.check(ch.sync_min_devices > 0, "classify.chatty.sync_min_devices", "must be > 0");
        v.check(ch.sync_factor >= 1.0, "classify.chatty.sync_factor", "must be >= 1");
        let co = &c.cohort;
        v.check(co.min_members > 0, "classify.cohort.min_members", "must be > 0");
        v.fraction("classify.cohort.min_fraction", co.min_fraction);
        v.check(co.period_factor > 1.0, "classify.cohort.period_factor", "must be > 1");
        v.check(co.window >= self.guard.tick, "classify.cohort.window", "must be at least one tick");
    }

    fn validate_ladder(&self, v: &mut Validator) {
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
        v.check(
            s.volume_bursts == 0.0 || (s.volume_bursts >= 1.0 && s.volume_bursts.is_finite()),
            "ladder.shape.volume_bursts",
            "must be 0 (off) or at least 1 (less than one burst allowance is no evidence)",
        );
        v.check(s.rate_pps > 0, "ladder.shape.rate_pps", "must be > 0");
        v.check(s.burst > 0, "ladder.shape.burst", "must be > 0");
        v.stage_times("ladder.shape", s.ttl, s.quiet, tick);
        let st = &l.strict;
        v.check(st.escalate_windows > 0, "ladder.strict.escalate_windows", "must be > 0");
        v.fraction("ladder.strict.escalate_drop_ratio", st.escalate_drop_ratio);
        v.check(st.rate_pps > 0, "ladder.strict.rate_pps", "must be > 0");
        v.check(st.rate_pps < s.rate_pps, "ladder.strict.rate_pps", "must be < ladder.shape.rate_pps");
        v.check(st.burst > 0, "ladder.strict.burst", "must be > 0");
        v.check(st.burst <= s.burst, "ladder.strict.burst", "must be <= ladder.shape.burst");
        v.stage_times("ladder.strict", st.ttl, st.quiet, tick);
        let q = &l.quarantine;
        v.check(q.escalate_windows > 0, "ladder.quarantine.escalate_windows", "must be > 0");
        v.fraction("ladder.quarantine.escalate_drop_ratio", q.escalate_drop_ratio);
        v.stage_times("ladder.quarantine", q.ttl, q.quiet, tick);
    }

    fn validate_capacity(&self, v: &mut Validator) {
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
        }
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

    fn validate_groups(&self, v: &mut Validator) {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let k = |f: &str| format!("group[{i}].{f}");
            v.check(g.id > 0, &k("id"), "must be > 0 (0 means no group)");
            v.check(ids.insert(g.id), &k("id"), &format!("{} is used by another group", g.id));
            v.check(!g.name.is_empty(), &k("name"), "must not be empty");
            v.check(names.insert(g.name.as_str()), &k("name"), &format!("`{}` is used by another group", g.name));
            v.check(
                !(g.teids.is_empty() && g.ue_prefixes.is_empty()),
                &k("teids"),
                "a group needs members: teids and/or ue_prefixes",
            );
            if let Some(p) = g.expected_pps {
                v.check(p > 0.0 && p.is_finite(), &k("expected_pps"), "must be > 0");
            }
            if let Some(p) = g.expected_period {
                v.check(p.0 > 0, &k("expected_period"), "must be > 0");
            }
            if let Some(b) = g.expected_burst {
                v.check(b > 0, &k("expected_burst"), "must be > 0");
            }
        }
    }

    /// The data-plane configuration record for a host with `ncpus` CPUs. The host cap is per CPU
    /// (each CPU runs its own GCRA), so the host-wide cap is divided among them; it stays inactive
    /// (`host_cap_expires_ns = 0`) until the engine engages it.
    pub fn dataplane(&self, ncpus: u32) -> GuardConfig {
        let d = &self.dataplane;
        let (enabled, shadow) = d.modes.masks();
        let n = u64::from(ncpus.max(1));
        let host = &self.capacity.host;
        GuardConfig {
            gtpu_port: u32::from(self.guard.gtpu_port),
            key_mode: match self.guard.key_mode {
                KeyMode::Teid => KEY_MODE_TEID,
                KeyMode::UeAddr => KEY_MODE_UE_ADDR,
            },
            enabled,
            shadow,
            exempt_qfi: d.exempt_qfi.iter().filter(|q| **q <= 63).fold(0u64, |m, q| m | (1u64 << q)),
            observe: d.observe.limit(),
            new_device: d.new_device.limit(),
            echo: d.echo.limit(),
            err_ind: d.err_ind.limit(),
            host_cap: Limit::per_second((host.cap_pps / n).max(1), (host.burst / n).max(1)),
            host_cap_expires_ns: 0,
            event_gap_ns: d.event_gap.0,
            event_rate: d.event_rate.limit(),
            // The whole rate on every CPU, not a share: one gNB path's Echo Requests arrive on one
            // receive queue (one 5-tuple), so a share would limit them below `echo_host`. The
            // rate is a floor (never limited below it), the host-wide bound up to ncpus times it.
            echo_host: d.echo_host.limit(),
            frag_window_ns: d.fragment_window.0,
            new_gnb: Limit::per_second((d.new_gnb.pps / n).max(1), (d.new_gnb.burst / n).max(1)),
            unknown_new_device: Limit::per_second(
                (d.unknown_new_device.pps / n).max(1),
                (d.unknown_new_device.burst / n).max(1),
            ),
            non_ip_teid: core::array::from_fn(|i| {
                d.non_ip_teids.get(i).map_or(TeidSpan::default(), |r| TeidSpan { first: r.first, last: r.last })
            }),
            non_ip_ranges: d.non_ip_teids.len().min(guard_common::abi::NON_IP_TEID_RANGES) as u32,
            local_addrs: self.guard.n3_addrs.len() as u32,
            framed_routes: d.framed_routes.len() as u32,
            antispoof_v6_prefix: u32::from(d.antispoof_v6_prefix),
            antispoof_rebind_ns: d.antispoof_rebind.0,
        }
    }

    /// The host's N3 addresses with their `LOCAL_FLAG_*`, for the table `N3_LOCAL`.
    pub fn local_addrs(&self) -> Vec<(IpAddr, u32)> {
        let non_ip = |a: &IpAddr| self.dataplane.non_ip_local_addrs.contains(a);
        self.guard
            .n3_addrs
            .iter()
            .map(|a| (*a, if non_ip(a) { guard_common::abi::LOCAL_FLAG_NON_IP } else { 0 }))
            .collect()
    }

    /// The framed routes, as (address, prefix length), for `N3_FRAMED`.
    pub fn framed_routes(&self) -> Vec<(IpAddr, u8)> {
        self.dataplane.framed_routes.iter().map(|p| (p.addr, p.len)).collect()
    }

    /// The group a device belongs to (first match), by index into [`Config::groups`].
    pub fn group_of(&self, teid: u32, ue: &L3Addr) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(teid, ue))
    }
}

#[derive(Default)]
struct Validator(Vec<Problem>);

impl Validator {
    fn bad(&mut self, key: String, reason: String) {
        self.0.push(Problem { key, reason });
    }
    fn check(&mut self, ok: bool, key: &str, reason: &str) {
        if !ok {
            self.bad(key.to_owned(), reason.to_owned());
        }
    }
    fn fraction(&mut self, key: &str, f: f64) {
        self.check(f > 0.0 && f <= 1.0, key, "must be in (0, 1]");
    }
    fn pps(&mut self, key: &str, l: &PpsLimit) {
        self.check(l.pps > 0, &format!("{key}.pps"), "must be > 0");
        self.check(l.burst > 0, &format!("{key}.burst"), "must be > 0");
    }
    fn period(&mut self, key: &str, l: &PeriodLimit) {
        self.check(l.count > 0, &format!("{key}.count"), "must be > 0");
        self.check(l.per.0 > 0, &format!("{key}.per"), "must be > 0");
        self.check(l.burst > 0, &format!("{key}.burst"), "must be > 0");
    }
    /// A stage entry must outlive at least two ticks, or the engine cannot refresh it in time.
    fn stage_times(&mut self, key: &str, ttl: Dur, quiet: Dur, tick: Dur) {
        self.check(ttl.0 > 0, &format!("{key}.ttl"), "must be > 0");
        self.check(ttl.0 >= 2 * tick.0, &format!("{key}.ttl"), "must be at least two ticks (refresh margin)");
        self.check(quiet.0 > 0, &format!("{key}.quiet"), "must be > 0");
    }
}

mod fleet;
mod reload;
pub use fleet::{FleetSection, FleetSync, MAX_KEYS_CEILING, MAX_VALUE_CEILING};
pub use reload::Reload;

#[cfg(test)]
mod tests;
