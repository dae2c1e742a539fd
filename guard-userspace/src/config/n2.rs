//! The N2 settings file (`--n2-config`, `[guard] n2_config`): its tick, `[dataplane]` (the
//! `N2_CONFIG` record: ports, protections, setup limits, the cookie check), and the tables whose
//! types live with the code they configure: `[detect]` ([`N2Settings`], the storm engine),
//! `[setup]` ([`SetupSettings`], the per-peer ladder) and `[hook]` ([`HookSpec`]).

use std::{net::IpAddr, path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use guard_common::{
    abi::Limit,
    abi_n2::{
        N2Config, N2_PROT_ALLOWLIST, N2_PROT_MALFORMED, N2_PROT_QUARANTINE, N2_PROT_SETUP_LIMIT, N2_PROT_SETUP_STRICT,
        N2_SETUP_COOKIE_REQUIRED,
    },
};
use serde::Deserialize;

use crate::n2::{
    engine::{setup::SetupSettings, N2Settings},
    hook::{Hook, HookSpec},
};

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
        f.dataplane.config().context("the [dataplane] section")?;
        if let Some(h) = &f.hook {
            Hook::new(h.clone()).context("the [hook] section")?;
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
