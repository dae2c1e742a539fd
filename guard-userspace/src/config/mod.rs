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
    ByteLimit, GuardConfig, L3Addr, Limit, TeidSpan, FAMILY_IPV4, FAMILY_IPV6, KEY_MODE_TEID, KEY_MODE_UE_ADDR,
    PROT_ANTISPOOF, PROT_CELL_CAP, PROT_ECHO, PROT_ERR_IND, PROT_HOST_CAP, PROT_MALFORMED, PROT_NEW_DEVICE,
    PROT_QUARANTINE, PROT_SHAPE, PROT_STRICT,
};
use guard_common::units::BitRate;
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
                "fleet: {} through etcd {} ({}), member {}; cell summaries {}; device back-off lists {}",
                f.name,
                f.endpoints.join(", "),
                if f.tls() { "TLS" } else { "INSECURE: no TLS" },
                f.member_name(),
                if f.cells.enabled {
                    format!(
                        "on (N2 cells with an N2 interface, N3 gNBs; at {}% of their threshold, at most {} per {}{})",
                        f.cells.publish_fraction * 100.0,
                        f.cells.max_cells,
                        f.cells.interval,
                        f.summary_group.as_ref().map_or(String::new(), |g| format!("; within summary group {g}"))
                    )
                } else {
                    "off".to_owned()
                },
                if f.backoff.enabled {
                    format!(
                        "on with an N2 interface (at most {} devices per member, expiring {})",
                        f.backoff.max_devices, f.backoff.ttl
                    )
                } else {
                    "off".to_owned()
                }
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
    /// A byte rate: none, or at least 8 bit/s (slower rates cannot be held: `ByteLimit`).
    fn rate(&mut self, key: &str, r: Rate) {
        self.check(r.is_none() || r.bits_per_sec() >= 8, key, "must be \"0\" (no byte limit) or at least 8bit/s");
    }
    fn period(&mut self, key: &str, l: &PeriodLimit) {
        self.check(l.count > 0, &format!("{key}.count"), "must be > 0");
        self.check(l.per.0 > 0, &format!("{key}.per"), "must be > 0");
        self.check(l.burst > 0, &format!("{key}.burst"), "must be > 0");
    }
    /// A stage entry must outlive at least two ticks, or the engine cannot refresh it in time.
    fn stage_times(&mut self, key: &str, ttl: Dur, quiet: Dur, tick: Dur) {
        self.check(ttl.0 > 0, &format!("{key}.ttl"), "must be > 0");
        // Saturating: the checks all run, so an out-of-range tick (reported on its own) must not
        // overflow here.
        self.check(
            ttl.0 >= tick.0.saturating_mul(2),
            &format!("{key}.ttl"),
            "must be at least two ticks (refresh margin)",
        );
        self.check(quiet.0 > 0, &format!("{key}.quiet"), "must be > 0");
    }
}

mod classify;
mod cpus;
mod dataplane;
mod fleet;
mod groups;
mod guard;
mod ladder;
pub mod n2;
mod reload;
mod values;
pub use classify::*;
pub use cpus::{cpu_share, online_cpus};
pub use dataplane::*;
pub use fleet::{
    valid_name as fleet_valid_name, FleetBackoff, FleetCells, FleetGnbs, FleetSection, FleetSync, MAX_KEYS_CEILING,
    MAX_VALUE_CEILING,
};
pub use groups::*;
pub use guard::*;
pub use ladder::*;
pub use reload::Reload;
pub use values::*;

#[cfg(test)]
mod n2_tests;
#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod tests;
