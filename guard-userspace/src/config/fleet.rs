//! `[fleet]`: fleet mode through etcd (docs/fleet.md). Absent, the guard runs alone and no etcd
//! code path runs.
//!
//! Validation is about what the file says, not about the machine: certificate files are read when
//! the guard connects, so `guard config check` on a build host does not need the host's keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Dur, Validator};

/// The most pins a member reads from etcd, whatever `sync.max_keys` says.
pub const MAX_KEYS_CEILING: u32 = 100_000;
/// The largest pin value a member accepts, whatever `sync.max_value_bytes` says.
pub const MAX_VALUE_CEILING: u32 = 64 * 1024;

/// `[fleet]`: etcd endpoints, the fleet's name, this member's name and the TLS material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// etcd client URLs, e.g. `["https://etcd1:2379", "https://etcd2:2379"]`. All `https://`
    /// unless `insecure = true`, then all `http://`.
    pub endpoints: Vec<String>,
    /// The fleet: every key lives under `/overload-guard/<name>/`. Letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// This host's name in the fleet (audit lines, its member key). Default: the host name.
    #[serde(default)]
    pub member: Option<String>,
    /// The group of the fleet's members this one sums cell summaries with: the hosts that share
    /// cells (an AMF set, TS 23.501 §5.21; the UPFs behind the same gNBs). Its N2 and N3 cell
    /// summaries are published and read under `/overload-guard/<name>/groups/<summary_group>/`
    /// only; pins, device back-off lists, known gNB lists and presence stay fleet-wide. None
    /// (the default): the whole fleet is one group, keys as without it. Letters, digits, `.`,
    /// `_`, `-`.
    #[serde(default)]
    pub summary_group: Option<String>,
    /// CA certificate (PEM) that signed the etcd servers' certificates.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate authentication; with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Talk to etcd without TLS (a lab). Must be said explicitly: without it a `[fleet]` with no
    /// `ca` is refused.
    #[serde(default)]
    pub insecure: bool,
    /// TTL of this member's lease (its key under `members/`): how long after this host stops
    /// answering the fleet sees it gone. Whole seconds, 2s..=1h.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Dur,
    #[serde(default)]
    pub sync: FleetSync,
    #[serde(default)]
    pub cells: FleetCells,
    #[serde(default)]
    pub backoff: FleetBackoff,
    #[serde(default)]
    pub gnbs: FleetGnbs,
}

fn default_lease_ttl() -> Dur {
    Dur::secs(10)
}

/// `[fleet.sync]`: how a member follows etcd, and the bounds on what it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSync {
    /// Deadline of one etcd request (connect, list, put), and of a lease keep-alive answer.
    pub timeout: Dur,
    /// First wait before reconnecting after etcd was lost; doubled per failure up to `retry_max`.
    pub retry: Dur,
    pub retry_max: Dur,
    /// A full re-list of the pins this often besides the watch (a safety net: a missed event is
    /// corrected within this time).
    pub resync: Dur,
    /// The most pins read; more are ignored with a log line (the first ones, in key order, apply).
    pub max_keys: u32,
    /// The largest pin value accepted, in bytes; a larger one is rejected with a log line.
    pub max_value_bytes: u32,
}

impl Default for FleetSync {
    fn default() -> Self {
        FleetSync {
            timeout: Dur::secs(2),
            retry: Dur::millis(500),
            retry_max: Dur::secs(10),
            resync: Dur::secs(60),
            max_keys: 10_000,
            max_value_bytes: 4096,
        }
    }
}

/// `[fleet.cells]`: per-cell summaries, so a storm split over the members of an AMF set is
/// detected as one host carrying the whole cell would detect it (docs/fleet.md "Cell summaries").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetCells {
    /// Publish this member's hot cells and sum the others' (with an N2 interface).
    pub enabled: bool,
    /// A cell is published when its own rate is at least this fraction of its own hot threshold.
    /// An even split over k members is seen while `publish_fraction <= 1/k`.
    pub publish_fraction: f64,
    /// The most cells this member publishes per tick (the closest to hot first), and the most
    /// cells accepted from any one member.
    pub max_cells: u32,
    /// The largest rate (attempts/s) or baseline accepted for one cell from one member; more is
    /// clamped. What a compromised member can add to a cell here.
    pub max_rate: f64,
    /// N3: the largest demand (G-PDUs/s) accepted for one gNB from one member; more is clamped.
    pub max_pps: f64,
    /// The most other members whose contributions are summed (the first in key order).
    pub max_members: u32,
    /// How often this member publishes (while it has cells to publish). A contribution not
    /// refreshed for three of these is dropped by the readers even if its lease lives.
    pub interval: Dur,
}

impl Default for FleetCells {
    fn default() -> Self {
        FleetCells {
            enabled: true,
            publish_fraction: 0.25,
            max_cells: 32,
            max_rate: 1000.0,
            max_pps: 10_000_000.0,
            max_members: 64,
            interval: Dur::secs(1),
        }
    }
}

/// The most bytes one cell takes in a summary value (`["eutra:00f110:0x0000001",1000.00,1000.00],`).
pub const CELL_ENTRY_BYTES: u32 = 64;
/// The most bytes one gNB takes in an N3 summary (`["<IPv6, 39>",10000000.0,16777216],`).
pub const N3_CELL_ENTRY_BYTES: u32 = 72;
/// The rest of a summary value (version, member name, time).
pub const SUMMARY_HEADER_BYTES: u32 = 160;

impl FleetCells {
    /// The largest summary value a member writes or accepts.
    pub fn max_value_bytes(&self) -> usize {
        (SUMMARY_HEADER_BYTES + self.max_cells.saturating_mul(CELL_ENTRY_BYTES)) as usize
    }

    /// The largest N3 summary value a member writes or accepts (a gNB's entry is longer: an
    /// IPv6 address, a demand, a count).
    pub fn max_n3_value_bytes(&self) -> usize {
        (SUMMARY_HEADER_BYTES + self.max_cells.saturating_mul(N3_CELL_ENTRY_BYTES)) as usize
    }

    /// How long a contribution counts without being refreshed.
    pub fn stale_after(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.interval.0.saturating_mul(3))
    }

    fn validate(&self, v: &mut Validator, lease_ttl: Dur) {
        v.check(
            self.publish_fraction.is_finite() && (0.05..=1.0).contains(&self.publish_fraction),
            "fleet.cells.publish_fraction",
            "0.05..=1.0",
        );
        v.check((1..=1024).contains(&self.max_cells), "fleet.cells.max_cells", "1..=1024");
        v.check(
            self.max_rate.is_finite() && (1.0..=1_000_000.0).contains(&self.max_rate),
            "fleet.cells.max_rate",
            "1..=1000000 attempts/s",
        );
        v.check(
            self.max_pps.is_finite() && (1.0..=1e9).contains(&self.max_pps),
            "fleet.cells.max_pps",
            "1..=1000000000 G-PDUs/s",
        );
        v.check((1..=4096).contains(&self.max_members), "fleet.cells.max_members", "1..=4096");
        v.check(
            self.interval >= Dur::millis(200) && self.interval <= Dur::secs(60),
            "fleet.cells.interval",
            "200ms..=60s",
        );
        v.check(
            self.interval < lease_ttl,
            "fleet.cells.interval",
            "must be shorter than lease_ttl (a summary outlives a dead member only by its lease)",
        );
    }
}

/// `[fleet.backoff]`: N2 device back-off lists shared by the members of an AMF set
/// (docs/fleet.md "Device back-off lists"), so a device one member's hook backs off is backed
/// off by another member too when it registers there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetBackoff {
    /// Publish this member's listed devices and take the others' (with an N2 interface).
    pub enabled: bool,
    /// The most devices this member publishes (the first of its list), and the most accepted
    /// from any one member.
    pub max_devices: u32,
    /// The list's own expiry, refreshed while the list is in force: a list whose member stops
    /// refreshing it (its controller hangs while its lease lives) is dropped by every reader.
    pub ttl: Dur,
    /// The most other members whose lists are taken (the first in key order).
    pub max_members: u32,
}

impl Default for FleetBackoff {
    fn default() -> Self {
        FleetBackoff { enabled: true, max_devices: 256, ttl: Dur::secs(60), max_members: 64 }
    }
}

/// The most bytes one device takes in a back-off list (`["5g-s-tmsi:1023:63:0xffffffff",11160],`).
pub const DEVICE_ENTRY_BYTES: u32 = 48;
/// The rest of a back-off list's value (version, member name, times).
pub const LIST_HEADER_BYTES: u32 = 200;

impl FleetBackoff {
    /// The largest list value a member writes or accepts.
    pub fn max_value_bytes(&self) -> usize {
        (LIST_HEADER_BYTES + self.max_devices.saturating_mul(DEVICE_ENTRY_BYTES)) as usize
    }

    fn validate(&self, v: &mut Validator) {
        v.check((1..=4096).contains(&self.max_devices), "fleet.backoff.max_devices", "1..=4096");
        v.check(
            self.ttl >= Dur::secs(5) && self.ttl <= Dur::secs(3600),
            "fleet.backoff.ttl",
            "5s..=1h (refreshed every third of it while in force)",
        );
        v.check((1..=4096).contains(&self.max_members), "fleet.backoff.max_members", "1..=4096");
    }
}

/// `[fleet.gnbs]`: known gNB addresses learned from real N2 sessions, shared by an AMF set
/// (docs/fleet.md "Known gNB addresses").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetGnbs {
    /// Publish this member's learned gNBs and take the others' (with an N2 interface).
    pub enabled: bool,
    /// The most addresses this member publishes, and the most taken from any one member.
    pub max_gnbs: u32,
    /// The list's own expiry, refreshed every third of it while it is not empty.
    pub ttl: Dur,
    /// The most other members whose lists are taken (the first in key order).
    pub max_members: u32,
}

impl Default for FleetGnbs {
    fn default() -> Self {
        FleetGnbs { enabled: true, max_gnbs: 256, ttl: Dur::secs(300), max_members: 64 }
    }
}

/// The most bytes one address takes in a gNB list (`"ffff:...:ffff",`: 39 + 3).
pub const GNB_ENTRY_BYTES: u32 = 42;

impl FleetGnbs {
    /// The largest list value a member writes or accepts.
    pub fn max_value_bytes(&self) -> usize {
        (LIST_HEADER_BYTES + self.max_gnbs.saturating_mul(GNB_ENTRY_BYTES)) as usize
    }

    fn validate(&self, v: &mut Validator) {
        v.check((1..=4096).contains(&self.max_gnbs), "fleet.gnbs.max_gnbs", "1..=4096");
        v.check(
            self.ttl >= Dur::secs(5) && self.ttl <= Dur::secs(3600),
            "fleet.gnbs.ttl",
            "5s..=1h (refreshed every third of it)",
        );
        v.check((1..=4096).contains(&self.max_members), "fleet.gnbs.max_members", "1..=4096");
    }
}

/// A fleet or member name: it becomes a path segment of etcd keys.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl FleetSection {
    /// This member's name: `member`, else the host name (`uname -n`).
    pub fn member_name(&self) -> String {
        if let Some(m) = &self.member {
            return m.clone();
        }
        // SAFETY: uname writes into the struct it is given; a zeroed utsname is valid input.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return "unknown-host".to_owned();
        }
        let raw: Vec<u8> = u.nodename.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        let name = String::from_utf8_lossy(&raw).into_owned();
        if valid_name(&name) {
            name
        } else {
            // A host name outside the key alphabet: keep what is safe in a key.
            name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(64).collect()
        }
    }

    /// Whether the connection uses TLS (it does unless `insecure`).
    pub fn tls(&self) -> bool {
        !self.insecure
    }

    pub(super) fn validate(&self, v: &mut Validator) {
        v.check(!self.endpoints.is_empty(), "fleet.endpoints", "must list at least one etcd URL");
        v.check(self.endpoints.len() <= 16, "fleet.endpoints", "at most 16 endpoints");
        let scheme = if self.insecure { "http://" } else { "https://" };
        for (i, e) in self.endpoints.iter().enumerate() {
            let ok = e.strip_prefix(scheme).is_some_and(|rest| {
                !rest.is_empty() && !rest.contains(['/', ' ', '?', '#']) && rest.rsplit_once(':').is_some()
            });
            if !ok {
                v.bad(
                    format!("fleet.endpoints[{i}]"),
                    format!(
                        "`{e}` must be {scheme}HOST:PORT{}",
                        if self.insecure {
                            " (insecure = true)"
                        } else {
                            " (TLS; set insecure = true for plain http in a lab)"
                        }
                    ),
                );
            }
        }
        v.check(valid_name(&self.name), "fleet.name", "1..=64 letters, digits, `.`, `_` or `-`");
        if let Some(m) = &self.member {
            v.check(valid_name(m), "fleet.member", "1..=64 letters, digits, `.`, `_` or `-`");
        }
        if let Some(g) = &self.summary_group {
            v.check(valid_name(g), "fleet.summary_group", "1..=64 letters, digits, `.`, `_` or `-`");
        }
        if self.insecure {
            for (k, p) in [("fleet.ca", &self.ca), ("fleet.cert", &self.cert), ("fleet.key", &self.key)] {
                v.check(p.is_none(), k, "is set but insecure = true: choose TLS or plain http, not both");
            }
        } else {
            v.check(
                self.ca.is_some(),
                "fleet.ca",
                "required for TLS; to run without TLS (a lab only) set insecure = true explicitly",
            );
        }
        v.check(self.cert.is_some() == self.key.is_some(), "fleet.cert", "cert and key go together");
        let ttl = self.lease_ttl;
        v.check(
            ttl >= Dur::secs(2) && ttl <= Dur::secs(3600) && ttl.0 % 1_000_000_000 == 0,
            "fleet.lease_ttl",
            "whole seconds, between 2s and 1h (an etcd lease TTL)",
        );
        let s = &self.sync;
        v.check(s.timeout >= Dur::millis(100) && s.timeout <= Dur::secs(60), "fleet.sync.timeout", "100ms..=60s");
        v.check(s.timeout < ttl, "fleet.sync.timeout", "must be shorter than lease_ttl");
        v.check(s.retry >= Dur::millis(50) && s.retry <= s.retry_max, "fleet.sync.retry", "50ms..=retry_max");
        v.check(s.retry_max <= Dur::secs(300), "fleet.sync.retry_max", "at most 5m");
        v.check(s.resync >= Dur::secs(5), "fleet.sync.resync", "at least 5s");
        v.check(
            (1..=MAX_KEYS_CEILING).contains(&s.max_keys),
            "fleet.sync.max_keys",
            &format!("1..={MAX_KEYS_CEILING}"),
        );
        self.cells.validate(v, ttl);
        self.backoff.validate(v);
        self.gnbs.validate(v);
        v.check(
            (256..=MAX_VALUE_CEILING).contains(&s.max_value_bytes),
            "fleet.sync.max_value_bytes",
            &format!("256..={MAX_VALUE_CEILING}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, FleetGnbs};

    #[test]
    fn fleet_gnb_lists_have_defaults_and_bounds() {
        let lab = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n";
        let f = Config::from_toml_str(lab).expect("valid").fleet.expect("a fleet");
        assert_eq!(f.gnbs, FleetGnbs::default());
        assert!(f.gnbs.enabled && f.gnbs.max_gnbs == 256);
        let bad = format!("{lab}[fleet.gnbs]\nmax_gnbs = 0\nttl = \"1s\"\nmax_members = 5000\n");
        let p = Config::from_toml_str(&bad).map(|_| ()).expect_err("invalid").to_string();
        for k in ["fleet.gnbs.max_gnbs", "fleet.gnbs.ttl", "fleet.gnbs.max_members"] {
            assert!(p.contains(k), "{k} in {p}");
        }
        let p = Config::from_toml_str(&format!("{lab}[fleet.gnbs]\nsurprise = 1\n")).map(|_| ()).expect_err("unknown");
        assert!(p.to_string().contains("surprise"), "unknown keys are refused: {p}");
    }
}
