//! Fleet pins as stored in etcd: keys, JSON values, their bounds and validation. Pure: no etcd, no
//! maps, so every rule is unit-tested here.
//!
//! Key: `/overload-guard/<fleet>/pins/<kind>/<target>`, kind `ue`, `ue-prefix`, `gnb` or `tmsi`:
//! - `/overload-guard/upf-north/pins/ue/10.45.0.7`
//! - `/overload-guard/upf-north/pins/ue-prefix/10.45.1.0/24`
//! - `/overload-guard/upf-north/pins/gnb/192.0.2.10`
//! - `/overload-guard/amf-set-1/pins/tmsi/5g-s-tmsi:1:1:0xc0000002` (N2: a device backed off by
//!   every member's hook; its stage is `backoff`, the only one it takes)
//!
//! A TEID is never a fleet key: it names a session only on the host that allocated it (the F-TEID,
//! TS 29.281 §5.1), and the same number on another UPF is another UE.

use std::net::IpAddr;

use guard_common::abi::DeviceKey;
use guard_common::abi_n2::N2DeviceKey;
use serde::{Deserialize, Serialize};

use crate::config::Prefix;
use crate::n2::engine::{n2_device_str, parse_n2_device};
use crate::n3::manual::{ue_device_key, v6_prefix_key, ManualError};

/// The root of every fleet's keys.
pub const ROOT: &str = "/overload-guard/";
/// Value format version.
pub const VALUE_VERSION: u32 = 1;
/// The most device entries one prefix pin may expand to (an IPv4 /22; an IPv6 prefix 10 bits
/// shorter than the device prefix). A wider prefix is refused: it would fill the stage map.
pub const MAX_PREFIX_DEVICES: u64 = 1024;
/// Bounds on the free-text fields, so a value stays small whatever the operator typed.
pub const MAX_AUTHOR: usize = 256;
pub const MAX_COMMENT: usize = 1024;
/// The longest a fleet pin may live. Longer belongs in the configuration, not in a pin.
pub const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Bounds on a pin's byte rate (`rate_bps`, bits per second): from the slowest the data plane
/// holds (`n3::manual::MIN_PIN_BITS_PER_SEC`) to 1 Tbit/s, more than any one host forwards.
pub const MIN_RATE_BPS: u64 = crate::n3::manual::MIN_PIN_BITS_PER_SEC;
pub const MAX_RATE_BPS: u64 = 1_000_000_000_000;
/// The largest byte burst (`burst_bytes`): one second of [`MAX_RATE_BPS`].
pub const MAX_BURST_BYTES: u64 = MAX_RATE_BPS / 8;

/// `/overload-guard/<fleet>/`.
pub fn fleet_prefix(fleet: &str) -> String {
    format!("{ROOT}{fleet}/")
}

/// Where the cell summaries of `fleet` live (N2's under `cells/n2/`, N3's under `cells/n3/`):
/// the fleet's own prefix, or with a summary group (`[fleet] summary_group`) the group's,
/// `/overload-guard/<fleet>/groups/<group>/`. A member reads and writes one of them only, so two
/// groups' summaries (and a group's and the fleet-wide ones) are never summed together.
pub fn summaries_prefix(fleet: &str, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("{ROOT}{fleet}/groups/{g}/"),
        None => fleet_prefix(fleet),
    }
}

/// `/overload-guard/<fleet>/pins/`: what every member watches.
pub fn pins_prefix(fleet: &str) -> String {
    format!("{ROOT}{fleet}/pins/")
}

/// `/overload-guard/<fleet>/members/`: one key per running member, under its lease.
pub fn members_prefix(fleet: &str) -> String {
    format!("{ROOT}{fleet}/members/")
}

/// Why a key or value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    #[error("key {0:?} is not under this fleet's pins/ prefix")]
    OutsidePrefix(String),
    #[error("key {key:?}: {reason}")]
    BadKey { key: String, reason: String },
    #[error("value of {len} bytes is larger than the {max}-byte limit (fleet.sync.max_value_bytes)")]
    Oversized { len: usize, max: usize },
    #[error("value is not a fleet pin: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

impl PinError {
    /// The `reason` label of `overload_guard_fleet_values_rejected_total`.
    pub fn label(&self) -> &'static str {
        match self {
            PinError::OutsidePrefix(_) | PinError::BadKey { .. } => "bad_key",
            PinError::Oversized { .. } => "oversized",
            PinError::Malformed(_) => "malformed",
            PinError::Invalid(_) => "invalid",
        }
    }
}

/// What a fleet pin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinTarget {
    /// One UE address (an IPv6 address names its device prefix, `antispoof_v6_prefix`).
    Ue(IpAddr),
    /// Every UE address in a prefix (at most [`MAX_PREFIX_DEVICES`] devices).
    UePrefix(Prefix),
    /// A gNB, by its N3 address (the outer source of its G-PDUs).
    Gnb(IpAddr),
    /// An N2 device by its 5G-S-TMSI (or S-TMSI): on every N2 member's hook back-off list. Not
    /// a drop: the data plane never drops a device's DATA chunks mid-association (DESIGN §2).
    Tmsi(N2DeviceKey),
}

impl PinTarget {
    /// The key below `pins/`.
    pub fn suffix(&self) -> String {
        match self {
            PinTarget::Ue(a) => format!("ue/{a}"),
            PinTarget::UePrefix(p) => format!("ue-prefix/{}/{}", p.addr, p.len),
            PinTarget::Gnb(a) => format!("gnb/{a}"),
            PinTarget::Tmsi(k) => format!("tmsi/{}", n2_device_str(k)),
        }
    }

    /// The full etcd key in `fleet`.
    pub fn key(&self, fleet: &str) -> String {
        format!("{}{}", pins_prefix(fleet), self.suffix())
    }

    /// Parse the key below `pins/`; the result is checked ([`PinTarget::check`]).
    pub fn parse_suffix(s: &str) -> Result<PinTarget, String> {
        let (kind, rest) = s.split_once('/').ok_or("expected <kind>/<target>")?;
        let t = match kind {
            "ue" => PinTarget::Ue(rest.parse().map_err(|_| format!("`{rest}` is not an IP address"))?),
            "gnb" => PinTarget::Gnb(rest.parse().map_err(|_| format!("`{rest}` is not an IP address"))?),
            "ue-prefix" => PinTarget::UePrefix(rest.parse()?),
            "tmsi" => PinTarget::Tmsi(parse_n2_device(rest).ok_or_else(|| {
                format!("`{rest}` is not a 5g-s-tmsi:<set>:<pointer>:0x<8 hex> or s-tmsi:0x<2 hex>:0x<8 hex>")
            })?),
            other => return Err(format!("unknown kind `{other}` (ue, ue-prefix, gnb, tmsi)")),
        };
        // One spelling per target: a key another tool spelled differently would be a second pin.
        if t.suffix() != s {
            return Err(format!("not in canonical form (expected `{}`)", t.suffix()));
        }
        t.check()?;
        Ok(t)
    }

    /// Rules a target must meet wherever it comes from (the CLI or etcd).
    pub fn check(&self) -> Result<(), String> {
        match self {
            PinTarget::Ue(a) | PinTarget::Gnb(a) => {
                if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                    return Err(format!("{a} is not a unicast address of a UE or gNB"));
                }
            }
            PinTarget::Tmsi(_) => {}
            PinTarget::UePrefix(p) => {
                let max = if p.addr.is_ipv4() { 32 } else { 128 };
                if p.len == max {
                    return Err(format!("{p} is one address: pin it with --ue"));
                }
                if masked(p.addr, p.len) != p.addr {
                    return Err(format!("{p} has host bits set (the prefix is {}/{})", masked(p.addr, p.len), p.len));
                }
                // The IPv4 bound here; IPv6's depends on the member's device prefix and is checked
                // when expanded.
                if p.addr.is_ipv4() && (1u64 << (32 - u32::from(p.len))) > MAX_PREFIX_DEVICES {
                    return Err(format!(
                        "{p} covers more than {MAX_PREFIX_DEVICES} addresses: split it (at most a /22 in IPv4)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Words for logs and audit lines, e.g. `ue 10.45.0.7`, `gnb 192.0.2.10`.
    pub fn describe(&self) -> String {
        match self {
            PinTarget::Ue(a) => format!("ue {a}"),
            PinTarget::UePrefix(p) => format!("ue-prefix {p}"),
            PinTarget::Gnb(a) => format!("gnb {a}"),
            PinTarget::Tmsi(k) => format!("tmsi {}", n2_device_str(k)),
        }
    }

    /// The data plane's device keys this UE target names in `key_mode = "ue_addr"`, with IPv6
    /// devices keyed by their first `v6_len` bits (0 = 64). A gNB names no device.
    pub fn device_keys(&self, v6_len: u32) -> Result<Vec<DeviceKey>, String> {
        let err = |e: ManualError| e.to_string();
        match *self {
            PinTarget::Gnb(_) | PinTarget::Tmsi(_) => Ok(Vec::new()),
            PinTarget::Ue(a) => Ok(vec![ue_device_key(a, v6_len).map_err(err)?]),
            PinTarget::UePrefix(Prefix { addr: IpAddr::V4(v4), len }) => {
                let base = u32::from(v4);
                let n = 1u64 << (32 - u32::from(len));
                if n > MAX_PREFIX_DEVICES {
                    return Err(format!("{v4}/{len} covers more than {MAX_PREFIX_DEVICES} addresses"));
                }
                // Addresses that name no UE (0.0.0.0/x's first) are skipped, as the data plane
                // never keys a device by them.
                Ok((0..n).filter_map(|i| ue_device_key(IpAddr::V4((base + i as u32).into()), v6_len).ok()).collect())
            }
            PinTarget::UePrefix(Prefix { addr: IpAddr::V6(v6), len }) => {
                let dev = if v6_len == 0 { 64 } else { v6_len.min(64) };
                let top = (u128::from(v6) >> 64) as u64;
                if u32::from(len) >= dev {
                    // Inside one device prefix: that device.
                    return Ok(vec![ue_device_key(IpAddr::V6(v6), v6_len).map_err(err)?]);
                }
                let bits = dev - u32::from(len);
                if bits >= 63 || (1u64 << bits) > MAX_PREFIX_DEVICES {
                    return Err(format!(
                        "{v6}/{len} covers more than {MAX_PREFIX_DEVICES} device prefixes of /{dev} on this member"
                    ));
                }
                let step = 1u64 << (64 - dev);
                Ok((0..(1u64 << bits)).map(|i| v6_prefix_key(top + i * step)).collect())
            }
        }
    }
}

/// `a` with every bit past `len` cleared.
fn masked(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The stage a fleet pin sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinStage {
    Shape,
    Strict,
    Quarantine,
    /// N2 (a 5G-S-TMSI pin): on every member's hook back-off list (5GMM cause #22, T3346).
    Backoff,
}

impl PinStage {
    pub fn name(self) -> &'static str {
        match self {
            PinStage::Shape => "shape",
            PinStage::Strict => "strict",
            PinStage::Quarantine => "quarantine",
            PinStage::Backoff => "backoff",
        }
    }
}

/// The JSON value of a pin key. Unknown fields are refused: a value this build does not
/// understand is not applied half-understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinValue {
    /// [`VALUE_VERSION`].
    pub v: u32,
    pub stage: PinStage,
    /// Rate for shape/strict (packets per second); a member's ladder default when absent on a
    /// device pin. Required on a gNB's shape/strict: a device's rate is no rate for a gNB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Byte rate beside `pps` for shape/strict, bits per second of T-PDU octets (what `--rate`
    /// means on a local pin): absent, a member's ladder rate on a device pin and none on a gNB;
    /// 0, no byte rate. Written only when set, so a value without it is what builds older than
    /// byte pins write and read; they refuse a value with it (unknown fields are refused) rather
    /// than enforce the pin without its byte rate (docs/fleet.md, "Keys, sizes and load").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
    /// Burst for `rate_bps`, octets (0: one second of the rate); only beside a `rate_bps` > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<u64>,
    /// Who made the pin (user, uid, host), as the CLI saw them.
    pub author: String,
    pub comment: String,
    /// Wall-clock times in Unix milliseconds. The etcd lease removes the key at expiry; members
    /// also stop at `expires_unix_ms` when they cannot hear etcd.
    pub created_unix_ms: u64,
    pub expires_unix_ms: u64,
}

impl PinValue {
    /// Rules a value must meet, for `target`.
    pub fn check(&self, target: &PinTarget) -> Result<(), String> {
        if self.v != VALUE_VERSION {
            return Err(format!("value version {} (this build reads {VALUE_VERSION})", self.v));
        }
        if self.author.is_empty() || self.author.len() > MAX_AUTHOR {
            return Err(format!("author must be 1..={MAX_AUTHOR} bytes"));
        }
        if self.comment.is_empty() || self.comment.len() > MAX_COMMENT {
            return Err(format!("comment must be 1..={MAX_COMMENT} bytes"));
        }
        if self.expires_unix_ms <= self.created_unix_ms || self.expires_unix_ms - self.created_unix_ms > MAX_TTL_MS {
            return Err("expiry must be after creation, within 7 days".into());
        }
        let tmsi = matches!(target, PinTarget::Tmsi(_));
        if tmsi != (self.stage == PinStage::Backoff) {
            return Err(
                "a 5G-S-TMSI pin takes the stage backoff, and only it does (N2 never drops a device's DATA)".into()
            );
        }
        let rated = self.pps.is_some() || self.burst.is_some() || self.rate_bps.is_some() || self.burst_bytes.is_some();
        if matches!(self.stage, PinStage::Quarantine | PinStage::Backoff) && rated {
            return Err(format!("{} takes no pps/burst/rate_bps/burst_bytes", self.stage.name()));
        }
        let bytes = self.rate_bps.is_some_and(|r| r > 0);
        if self.pps == Some(0) && !bytes {
            return Err("pps must be > 0 (0 only beside a byte rate, rate_bps)".into());
        }
        if self.burst == Some(0) {
            return Err("burst must be > 0".into());
        }
        if let Some(r) = self.rate_bps.filter(|r| *r != 0 && !(MIN_RATE_BPS..=MAX_RATE_BPS).contains(r)) {
            return Err(format!("rate_bps {r} is outside {MIN_RATE_BPS}..={MAX_RATE_BPS} bit/s (0: no byte rate)"));
        }
        match self.burst_bytes {
            Some(_) if !bytes => return Err("burst_bytes needs a rate_bps > 0 to apply to".into()),
            Some(b) if b > MAX_BURST_BYTES => {
                return Err(format!("burst_bytes {b} is over {MAX_BURST_BYTES} (one second of the largest rate)"))
            }
            _ => {}
        }
        let packets = self.pps.is_some_and(|p| p > 0);
        if matches!(target, PinTarget::Gnb(_)) && self.stage != PinStage::Quarantine && !packets && !bytes {
            return Err(
                "a gNB's shape or strict pin needs pps or rate_bps (a device's ladder rate is no rate for a gNB)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The remaining life at `now_unix_ms`, or None once expired.
    /// Time left until the expiry, never more than the pin's own life (`expires − created`, at
    /// most 7 days by [`PinValue::check`]): a value whose creation lies in the future (a skewed
    /// clock, or a forged value) cannot hold a member's entry longer than it says it lasts, even
    /// while the member cannot hear etcd.
    pub fn remaining_ms(&self, now_unix_ms: u64) -> Option<u64> {
        let life = self.expires_unix_ms.saturating_sub(self.created_unix_ms).min(MAX_TTL_MS);
        self.expires_unix_ms.checked_sub(now_unix_ms).filter(|ms| *ms > 0).map(|ms| ms.min(life))
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A key and value from etcd, read and checked: `key` must be under `prefix` (the fleet's
/// `pins/`), the value at most `max_value` bytes, valid JSON of [`PinValue`], and pass its checks.
pub fn decode(prefix: &str, key: &[u8], value: &[u8], max_value: usize) -> Result<(PinTarget, PinValue), PinError> {
    let key_str = std::str::from_utf8(key).map_err(|_| PinError::OutsidePrefix(String::from_utf8_lossy(key).into()))?;
    let suffix = key_str.strip_prefix(prefix).ok_or_else(|| PinError::OutsidePrefix(key_str.to_owned()))?;
    let target =
        PinTarget::parse_suffix(suffix).map_err(|reason| PinError::BadKey { key: key_str.to_owned(), reason })?;
    if value.len() > max_value {
        return Err(PinError::Oversized { len: value.len(), max: max_value });
    }
    let v: PinValue = serde_json::from_slice(value).map_err(|e| PinError::Malformed(e.to_string()))?;
    v.check(&target).map_err(PinError::Invalid)?;
    Ok((target, v))
}

#[cfg(test)]
mod tests;
