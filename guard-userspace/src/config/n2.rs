//! The N2 settings file (`--n2-config`, `[guard] n2_config`): its tick, `[dataplane]` (the
//! `N2_CONFIG` record: ports, protections, setup limits, the cookie check), and the tables whose
//! types live with the code they configure: `[detect]` ([`N2Settings`], the storm engine),
//! `[setup]` ([`SetupSettings`], the per-peer ladder) and `[hook]` ([`HookSpec`]).

use std::{net::IpAddr, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use guard_common::{
    abi::Limit,
    abi_n2::{
        N2Config, N2_DEFAULT_MAX_ALLOW, N2_PROT_ALLOWLIST, N2_PROT_MALFORMED, N2_PROT_QUARANTINE, N2_PROT_SETUP_LIMIT,
        N2_PROT_SETUP_STRICT, N2_SETUP_COOKIE_REQUIRED,
    },
};
use serde::{Deserialize, Serialize};

/// The `--n2-config` file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N2File {
    /// Controller tick, written as in guard.toml (`tick = "1s"`; default 1 s).
    pub tick: Option<super::Dur>,
    /// The same in milliseconds, the older key: still read, not with `tick`.
    pub tick_ms: Option<u64>,
    pub dataplane: N2Dataplane,
    pub detect: N2Settings,
    pub setup: SetupSettings,
    pub hook: Option<HookSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N2Dataplane {
    pub ngap_port: u16,
    pub s1ap_port: u16,
    pub enforce: Vec<String>,
    pub shadow: Vec<String>,
    pub allow: Vec<IpAddr>,
    pub setup_observe_pps: u64,
    pub setup_observe_burst: u64,
    pub event_gap_ms: u64,
    pub event_rate_pps: u64,
    pub reestablish_pps: u64,
    pub reestablish_burst: u64,
    pub assoc_memory_s: u64,
    pub cookie_life_s: u64,
    pub cookie_check: CookieCheck,
    pub max_devices: u32,
}

/// What `guard_n2` does with a COOKIE ECHO whose tag the egress classifier never saw the AMF
/// issue (docs/n2.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CookieCheck {
    /// Issued cookies get their own lane; an unissued one is limited like any setup packet,
    /// even when it may carry DATA (no association exists for that DATA). Needs the egress
    /// classifier: when it cannot attach, the guard falls back to `prefer` and says so.
    #[default]
    Require,
    /// Issued cookies get their own lane; an unissued one bundled with DATA is spared.
    Prefer,
    /// No cookie lane: every COOKIE ECHO is a setup packet (the behaviour before issue 18).
    Off,
}

impl Default for N2Dataplane {
    fn default() -> Self {
        N2Dataplane {
            ngap_port: guard_common::abi_n2::NGAP_PORT,
            s1ap_port: guard_common::abi_n2::S1AP_PORT,
            enforce: ["malformed", "setup_limit", "setup_strict", "quarantine"].map(str::to_owned).to_vec(),
            shadow: Vec::new(),
            allow: Vec::new(),
            setup_observe_pps: 10,
            setup_observe_burst: 20,
            event_gap_ms: 1000,
            event_rate_pps: 100,
            reestablish_pps: 2,
            reestablish_burst: 5,
            assoc_memory_s: 86_400,
            cookie_life_s: 60,
            cookie_check: CookieCheck::Require,
            max_devices: 1 << 20,
        }
    }
}

/// The N2 protections' bits and their `[dataplane] enforce` / `shadow` names.
pub const N2_PROTECTIONS: [(u32, &str); 5] = [
    (N2_PROT_MALFORMED, "malformed"),
    (N2_PROT_SETUP_LIMIT, "setup_limit"),
    (N2_PROT_SETUP_STRICT, "setup_strict"),
    (N2_PROT_QUARANTINE, "quarantine"),
    (N2_PROT_ALLOWLIST, "allowlist"),
];

fn protection(name: &str) -> Result<u32> {
    match N2_PROTECTIONS.iter().find(|(_, n)| *n == name) {
        Some((bit, _)) => Ok(*bit),
        None => bail!("unknown N2 protection {name:?} (malformed, setup_limit, setup_strict, quarantine, allowlist)"),
    }
}

impl N2Dataplane {
    /// The `N2_CONFIG` record. A protection in `shadow` is enabled and counted, not applied.
    pub fn config(&self) -> Result<N2Config> {
        let mut enabled = 0;
        for p in &self.enforce {
            enabled |= protection(p)?;
        }
        let mut shadow = 0;
        for p in &self.shadow {
            shadow |= protection(p)?;
        }
        Ok(N2Config {
            ngap_port: u32::from(self.ngap_port),
            s1ap_port: u32::from(self.s1ap_port),
            enabled: enabled | shadow,
            shadow,
            setup_observe: Limit::per_second(self.setup_observe_pps, self.setup_observe_burst),
            event_gap_ns: self.event_gap_ms.saturating_mul(1_000_000),
            event_rate: Limit::per_second(self.event_rate_pps, self.event_rate_pps),
            reestablish: Limit::per_second(self.reestablish_pps, self.reestablish_burst),
            assoc_memory_ns: self.assoc_memory_s.saturating_mul(1_000_000_000),
            cookie_life_ns: match self.cookie_check {
                CookieCheck::Off => 0,
                _ => self.cookie_life_s.max(1).saturating_mul(1_000_000_000),
            },
            setup_flags: match self.cookie_check {
                CookieCheck::Require => N2_SETUP_COOKIE_REQUIRED,
                _ => 0,
            },
            _pad: 0,
        })
    }
}

impl N2File {
    pub fn read(path: Option<&Path>) -> Result<N2File> {
        let f: N2File = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => N2File::default(),
        };
        f.detect.validate().context("the [detect] section")?;
        f.setup.validate().context("the [setup] section")?;
        f.dataplane.config().context("the [dataplane] section")?;
        if f.dataplane.allow.len() > N2_DEFAULT_MAX_ALLOW as usize {
            bail!(
                "the [dataplane] section: allow lists {} addresses; N2_ALLOW holds {N2_DEFAULT_MAX_ALLOW}",
                f.dataplane.allow.len()
            );
        }
        if let Some(h) = &f.hook {
            h.check().context("the [hook] section")?;
        }
        if f.tick.is_some() && f.tick_ms.is_some() {
            bail!("tick and tick_ms both set: keep `tick` (tick_ms is its older, millisecond form)");
        }
        if f.tick() < Duration::from_millis(10) {
            bail!("tick must be at least 10ms");
        }
        Ok(f)
    }

    /// The controller tick: `tick`, else `tick_ms`, else 1 s.
    pub fn tick(&self) -> Duration {
        match (self.tick, self.tick_ms) {
            (Some(t), _) => Duration::from_nanos(t.ns()),
            (None, Some(ms)) => Duration::from_millis(ms),
            (None, None) => Duration::from_secs(1),
        }
    }

    /// What the file does, in words (`guard config check` of an N2 file).
    pub fn summary(&self) -> Result<String> {
        let cfg = self.dataplane.config()?;
        let words = |v: &[&str]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        let [enforced, shadowed, off] = super::protections_by_mode(cfg.enabled, cfg.shadow, &N2_PROTECTIONS);
        let d = &self.dataplane;
        let s = &self.setup;
        let mut out = vec![
            format!("N2 settings: tick {:?}, NGAP port {}, S1AP port {}", self.tick(), d.ngap_port, d.s1ap_port),
            format!("enforced (may drop): {}", words(&enforced)),
            format!("shadow (counted, not applied): {}", words(&shadowed)),
            format!("off: {}", words(&off)),
            format!(
                "setup ladder: after {} windows over {} setups/s (burst {}) a peer is limited to {}/s (burst {}), \
                 strict {}/s (burst {}) after {} more; quarantine {}",
                s.trigger_windows,
                d.setup_observe_pps,
                d.setup_observe_burst,
                s.limit_pps,
                s.limit_burst,
                s.strict_pps,
                s.strict_burst,
                s.escalate_windows,
                if s.allow_quarantine { "allowed" } else { "never (allow_quarantine = false)" }
            ),
            format!(
                "allow-listed peers (never past the setup limit): {}",
                if d.allow.is_empty() {
                    "none".to_owned()
                } else {
                    d.allow.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
            ),
            format!("cookie check: {:?}", d.cookie_check).to_lowercase(),
        ];
        out.push(match &self.hook {
            Some(h) => format!("storm response hook: {}", h.describe()),
            None => "storm response hook: none (storms are detected, audited and counted; nothing is sent)".to_owned(),
        });
        Ok(out.join("\n"))
    }
}

// `[detect]`: the storm engine (`crate::n2::engine`).

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
        if !(self.repeat_ratio.is_finite() && self.repeat_ratio >= 1.0) {
            return bad("repeat_ratio", "attempts per device: at least 1");
        }
        if !(self.refresh_s.is_finite() && self.refresh_s >= 0.0) {
            return bad("refresh_s", "a number of seconds, 0 or more (0: only on change)");
        }
        if self.t3346_base_s == 0 || self.t3346_max_s < self.t3346_base_s {
            return bad("t3346_max_s", "0 < t3346_base_s <= t3346_max_s (TS 24.501 §10.2)");
        }
        if self.max_devices == 0 || self.max_cells == 0 {
            return bad("max_devices", "max_devices and max_cells must be at least 1");
        }
        Ok(())
    }
}

/// `x > min`, and a finite number (NaN from a config file is refused).
fn above(x: f64, min: f64) -> bool {
    x.is_finite() && x > min
}

// `[hook]`: where responses go (`crate::n2::hook`).

/// Why a `[hook]` table cannot work.
#[derive(Debug, thiserror::Error)]
pub enum HookSpecError {
    #[error("hook: webhook URL {0:?} is not http://host[:port]/path")]
    Url(String),
    #[error("hook: empty exec command")]
    EmptyCommand,
    #[error("hook: timeout_ms must be at least 1 (0 would fail every call)")]
    Timeout,
    #[error("hook: the exec command {0:?} is not an executable file (absolute, or found on PATH); the first storm would find out")]
    NotExecutable(String),
}

/// Where responses go (TOML `[n2.hook]`: `kind = "exec"`, `command = ["/usr/local/bin/x", "--flag"]`
/// or `kind = "webhook"`, `url = "http://127.0.0.1:9000/n2"`; `timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HookSpec {
    Exec {
        command: Vec<String>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    Webhook {
        url: String,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
}

impl HookSpec {
    /// Whether the hook can work at all: an exec command that is an executable file, a webhook URL
    /// the client can call. Checked when the file is read, so the first storm does not find out.
    pub fn check(&self) -> Result<(), HookSpecError> {
        let (HookSpec::Exec { timeout_ms, .. } | HookSpec::Webhook { timeout_ms, .. }) = self;
        if *timeout_ms == 0 {
            return Err(HookSpecError::Timeout);
        }
        match self {
            HookSpec::Exec { command, .. } => {
                let program = command.first().ok_or(HookSpecError::EmptyCommand)?;
                if !executable(program) {
                    return Err(HookSpecError::NotExecutable(program.clone()));
                }
            }
            HookSpec::Webhook { url, .. } => {
                parse_url(url)?;
            }
        }
        Ok(())
    }

    /// The hook in words, for `guard config check`.
    pub fn describe(&self) -> String {
        match self {
            HookSpec::Exec { command, timeout_ms } => format!("run {:?} (timeout {timeout_ms} ms)", command.join(" ")),
            HookSpec::Webhook { url, timeout_ms } => format!("POST to {url} (timeout {timeout_ms} ms)"),
        }
    }
}

fn default_timeout_ms() -> u64 {
    5000
}

/// `http://host[:port]/path` → (host:port, path).
pub fn parse_url(url: &str) -> Result<(String, String), HookSpecError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| HookSpecError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['\r', '\n', ' ']) {
        return Err(HookSpecError::Url(url.to_owned()));
    }
    let hostport = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((hostport, path.to_owned()))
}

fn executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let is_exec = |p: &std::path::Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return is_exec(std::path::Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| is_exec(&d.join(program))))
}

// `[setup]`: the per-peer setup ladder (`crate::n2::engine::setup`).

/// Tunables (TOML `[setup]` of the N2 config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SetupSettings {
    pub trigger_windows: u32,
    /// Stage 1: setups per second and burst a peer may still send.
    pub limit_pps: u64,
    pub limit_burst: u64,
    /// Stage 2.
    pub strict_pps: u64,
    pub strict_burst: u64,
    pub escalate_windows: u32,
    pub allow_quarantine: bool,
    pub quarantine_windows: u32,
    pub quiet_windows: u32,
    /// TTL written with each entry; re-issued every `ttl_s / 3`.
    pub ttl_s: u64,
}

impl SetupSettings {
    /// Every rule a `[setup]` table must keep. A limit of 0 would read as "unlimited" in a
    /// `Limit`, not as "none passes"; a window count of 0 would stage a peer (the allow-listed
    /// included) on its first sample; stage 2 must be at least as strict as stage 1.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |f, why| Err(SettingsError::Invalid(f, why));
        if self.limit_pps == 0 || self.limit_burst == 0 {
            return bad("setup.limit_pps", "stage 1's limit_pps and limit_burst must be at least 1 (0 is not a limit)");
        }
        if self.strict_pps == 0 || self.strict_burst == 0 {
            return bad(
                "setup.strict_pps",
                "stage 2's strict_pps and strict_burst must be at least 1 (0 is not a limit)",
            );
        }
        if self.strict_pps > self.limit_pps || self.strict_burst > self.limit_burst {
            return bad(
                "setup.strict_pps",
                "stage 2 must be at least as strict as stage 1 (strict_pps <= limit_pps, strict_burst <= limit_burst)",
            );
        }
        if self.trigger_windows == 0
            || self.escalate_windows == 0
            || self.quarantine_windows == 0
            || self.quiet_windows == 0
        {
            return bad("setup.trigger_windows", "window counts must be at least 1");
        }
        if self.ttl_s < 3 {
            return bad("setup.ttl_s", "at least 3 s (an entry is re-issued every ttl_s / 3)");
        }
        Ok(())
    }
}

impl Default for SetupSettings {
    fn default() -> Self {
        SetupSettings {
            trigger_windows: 3,
            limit_pps: 5,
            limit_burst: 10,
            strict_pps: 1,
            strict_burst: 2,
            escalate_windows: 10,
            allow_quarantine: false,
            quarantine_windows: 60,
            quiet_windows: 30,
            ttl_s: 60,
        }
    }
}
