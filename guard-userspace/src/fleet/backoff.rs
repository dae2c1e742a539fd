//! N2 device back-off lists (docs/fleet.md "Device back-off lists"): the key each member
//! publishes its listed devices under, the JSON value, and the checks every reader makes. Pure:
//! no etcd, no clock (the caller passes the time).
//!
//! One key per member, beside its cell summary and under the same lease:
//! `/overload-guard/<fleet>/backoff/n2/<member>` = `{"v":1,"member":..,"at_unix_ms":..,
//! "expires_unix_ms":..,"devices":[["5g-s-tmsi:1:1:0xc0000002",600],...]}` (device, T3346 in s).
//! A reader bounds what one member can say: the value's size, the number of devices, each
//! T3346, the list's life; the member named in the value must be the key's; only identities that
//! name a device wherever it shows up (5G-S-TMSI, S-TMSI), never a RAN-UE-NGAP-ID.

use std::collections::HashSet;

use guard_common::abi_n2::N2DeviceKey;
use serde::{Deserialize, Serialize};

use super::cells::{check_header, open, SummaryError};
use super::pins::fleet_prefix;
use crate::config::FleetBackoff;
use crate::n2::engine::{n2_device_str, parse_n2_device, shareable};

/// Version of the list value. Bump on any incompatible change.
pub const LIST_VERSION: u32 = 1;
/// The longest T3346 a list may ask for: GPRS timer 2's largest value, 31 decihours
/// (TS 24.008 §10.5.7.4, the T3346 IE of TS 24.501 §9.11.2.4).
pub const MAX_T3346_S: u32 = 31 * 360;
/// The longest life a list may claim (`[fleet.backoff] ttl`'s ceiling).
pub const MAX_LIST_TTL_MS: u64 = 3600 * 1000;

/// Where the N2 back-off lists of `fleet` live.
pub fn n2_prefix(fleet: &str) -> String {
    format!("{}backoff/n2/", fleet_prefix(fleet))
}

/// This member's N2 back-off list key.
pub fn n2_key(fleet: &str, member: &str) -> String {
    format!("{}{member}", n2_prefix(fleet))
}

/// A list refused by a reader; the label is the metric's `reason`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ListError {
    #[error("key {0:?} is not <prefix><member>")]
    BadKey(String),
    #[error("{len} bytes, more than the {max} a list of its bounded length takes")]
    Oversized { len: usize, max: usize },
    #[error("not a back-off list: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("expired {0} ms ago")]
    Expired(u64),
}

impl ListError {
    pub fn label(&self) -> &'static str {
        match self {
            ListError::BadKey(_) => "bad_key",
            ListError::Oversized { .. } => "oversized",
            ListError::Malformed(_) => "malformed",
            ListError::Invalid(_) => "invalid",
            ListError::Expired(_) => "expired",
        }
    }
}

/// The value as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListValue {
    pub v: u32,
    pub member: String,
    pub at_unix_ms: u64,
    pub expires_unix_ms: u64,
    pub devices: Vec<(String, u32)>,
}

/// One member's list, as a reader keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceList {
    pub member: String,
    /// How long the list still lives from when it was read (its own expiry less the reader's
    /// wall clock, never more than its claimed life).
    pub remaining_ms: u64,
    pub devices: Vec<(N2DeviceKey, u32)>,
}

/// This member's list value: at most `cfg.max_devices` shareable devices, living `cfg.ttl`.
pub fn encode(member: &str, at_unix_ms: u64, devices: &[(N2DeviceKey, u32)], cfg: &FleetBackoff) -> Vec<u8> {
    let v = ListValue {
        v: LIST_VERSION,
        member: member.to_owned(),
        at_unix_ms,
        expires_unix_ms: at_unix_ms + cfg.ttl.0 / 1_000_000,
        devices: devices
            .iter()
            .filter(|(k, _)| shareable(k))
            .take(cfg.max_devices as usize)
            .map(|(k, t)| (n2_device_str(k), (*t).clamp(1, MAX_T3346_S)))
            .collect(),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Read one list at `now_unix_ms` (the reader's wall clock).
pub fn decode(
    prefix: &str,
    key: &[u8],
    value: &[u8],
    now_unix_ms: u64,
    cfg: &FleetBackoff,
) -> Result<DeviceList, ListError> {
    let (member, v): (String, ListValue) = open(prefix, key, value, cfg.max_value_bytes())?;
    check_header(v.v, LIST_VERSION, &v.member, &member)?;
    let remaining_ms = life_left(v.at_unix_ms, v.expires_unix_ms, now_unix_ms)?;
    if v.devices.len() > cfg.max_devices as usize {
        return Err(ListError::Invalid(format!(
            "{} devices, more than max_devices {}",
            v.devices.len(),
            cfg.max_devices
        )));
    }
    let mut seen = HashSet::new();
    let mut devices = Vec::with_capacity(v.devices.len());
    for (d, t3346) in &v.devices {
        let k = parse_n2_device(d).ok_or_else(|| {
            ListError::Invalid(format!("device {d:?} is not a 5g-s-tmsi: or s-tmsi: identity in canonical form"))
        })?;
        if !seen.insert(k) {
            return Err(ListError::Invalid(format!("device {d} twice")));
        }
        if !(1..=MAX_T3346_S).contains(t3346) {
            return Err(ListError::Invalid(format!("device {d}: T3346 {t3346} s, outside 1..={MAX_T3346_S}")));
        }
        devices.push((k, *t3346));
    }
    Ok(DeviceList { member, remaining_ms, devices })
}

/// How long a list (back-off devices, known gNBs) still lives for a reader at `now_unix_ms`: its
/// life (`expires - at`) must be within 1 ms..=[`MAX_LIST_TTL_MS`] and not over yet. A reader
/// whose clock is behind the writer's never keeps a list longer than it claims to live.
pub(super) fn life_left(at_unix_ms: u64, expires_unix_ms: u64, now_unix_ms: u64) -> Result<u64, ListError> {
    let life = expires_unix_ms.checked_sub(at_unix_ms).filter(|l| *l > 0 && *l <= MAX_LIST_TTL_MS);
    let Some(life) = life else {
        return Err(ListError::Invalid(format!(
            "lives {} ms: expires_unix_ms must be after at_unix_ms, within {MAX_LIST_TTL_MS} ms",
            expires_unix_ms as i128 - at_unix_ms as i128
        )));
    };
    if expires_unix_ms <= now_unix_ms {
        return Err(ListError::Expired(now_unix_ms - expires_unix_ms));
    }
    Ok((expires_unix_ms - now_unix_ms).min(life))
}

/// The checks lists share with the summaries ([`super::cells::open`], `check_header`), with the
/// same labels; an oversized list says what bounds a list.
impl From<SummaryError> for ListError {
    fn from(e: SummaryError) -> ListError {
        match e {
            SummaryError::BadKey(k) => ListError::BadKey(k),
            SummaryError::Oversized { len, max } => ListError::Oversized { len, max },
            SummaryError::Malformed(m) => ListError::Malformed(m),
            SummaryError::Invalid(m) => ListError::Invalid(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use guard_common::abi_n2::{N2_DEV_KIND_5G_S_TMSI, N2_DEV_KIND_RAN_UE_V4};

    fn cfg() -> FleetBackoff {
        FleetBackoff::default()
    }

    fn dev(t: u32) -> N2DeviceKey {
        N2DeviceKey::five_g_s_tmsi(1, 1, 0xc000_0000 + t)
    }

    #[test]
    fn device_identities_print_and_parse_back_in_one_spelling() {
        for k in [
            N2DeviceKey::five_g_s_tmsi(1023, 63, u32::MAX),
            N2DeviceKey::five_g_s_tmsi(0, 0, 0),
            N2DeviceKey::s_tmsi(0xff, 0xdead_beef),
        ] {
            assert_eq!(parse_n2_device(&n2_device_str(&k)), Some(k), "{}", n2_device_str(&k));
        }
        for bad in [
            "5g-s-tmsi:1024:1:0x00000001",
            "5g-s-tmsi:1:64:0x00000001",
            "5g-s-tmsi:1:1:0x1",
            "5g-s-tmsi:01:1:0x00000001",
            "5g-s-tmsi:1:1:0xC0000001",
            "5g-s-tmsi:1:1:0x00000001:2",
            "s-tmsi:0x1:0x00000001",
            "ran-ue:10.0.0.1:7",
            "",
        ] {
            assert_eq!(parse_n2_device(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_list_round_trips_bounded_and_keeps_no_ran_ue_id() {
        let p = n2_prefix("f1");
        let ran_ue =
            N2DeviceKey { kind: N2_DEV_KIND_RAN_UE_V4, aux: 7, id: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
        let v = encode("amf-1", 1000, &[(dev(1), 600), (ran_ue, 600), (dev(2), 99_999)], &cfg());
        let l = decode(&p, n2_key("f1", "amf-1").as_bytes(), &v, 2000, &cfg()).expect("valid");
        assert_eq!(l.member, "amf-1");
        assert_eq!(l.devices, vec![(dev(1), 600), (dev(2), MAX_T3346_S)], "the RAN-UE id is host-local: not shared");
        assert_eq!(l.remaining_ms, 59_000, "60 s from at_unix_ms, read 1 s later");
        // A reader whose clock runs 10 s behind keeps it no longer than its claimed life.
        assert_eq!(decode(&p, n2_key("f1", "amf-1").as_bytes(), &v, 0, &cfg()).expect("valid").remaining_ms, 60_000);
        let many: Vec<(N2DeviceKey, u32)> = (0..1000).map(|i| (dev(i), 600)).collect();
        let v = encode("amf-1", 1000, &many, &cfg());
        assert_eq!(decode(&p, n2_key("f1", "amf-1").as_bytes(), &v, 2000, &cfg()).expect("valid").devices.len(), 256);
        let worst: Vec<(N2DeviceKey, u32)> =
            (0..256).map(|i| (N2DeviceKey::five_g_s_tmsi(1023, 63, u32::MAX - i), MAX_T3346_S)).collect();
        let v = encode(&"m".repeat(64), u64::MAX / 2, &worst, &cfg());
        assert!(v.len() <= cfg().max_value_bytes(), "the bound covers the longest value: {} bytes", v.len());
        assert!(worst.iter().all(|(k, _)| k.kind == N2_DEV_KIND_5G_S_TMSI));
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        let p = n2_prefix("f1");
        let key = n2_key("f1", "amf-1");
        let c = cfg();
        let d = |k: &str, v: &str| decode(&p, k.as_bytes(), v.as_bytes(), 5000, &c).map(|_| ()).map_err(|e| e.label());
        let ok = r#"{"v":1,"member":"amf-1","at_unix_ms":1000,"expires_unix_ms":61000,"devices":[["5g-s-tmsi:1:1:0xc0000001",600]]}"#;
        assert_eq!(d(&key, ok), Ok(()));
        assert_eq!(d(&format!("{p}a/b"), ok), Err("bad_key"));
        assert_eq!(d("/overload-guard/f1/cells/n2/amf-1", ok), Err("bad_key"));
        assert_eq!(d(&key, &"x".repeat(c.max_value_bytes() + 1)), Err("oversized"));
        assert_eq!(d(&key, "{"), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":1,\"extra\":2")), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":2")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("\"member\":\"amf-1\"", "\"member\":\"amf-2\"")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("61000", "4000")), Err("expired"), "expired before it was read");
        assert_eq!(d(&key, &ok.replace("61000", "1000")), Err("invalid"), "no life");
        assert_eq!(d(&key, &ok.replace("61000", "99999999")), Err("invalid"), "claims more than an hour");
        assert_eq!(d(&key, &ok.replace(",600]", ",0]")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace(",600]", ",11161]")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("5g-s-tmsi:1:1:0xc0000001", "ran-ue:10.0.0.1:7")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("5g-s-tmsi:1:1:0xc0000001", "5g-s-tmsi:1:1:0xC0000001")), Err("invalid"));
        let twice = ok.replace("]]}", r#"],["5g-s-tmsi:1:1:0xc0000001",600]]}"#);
        assert_eq!(d(&key, &twice), Err("invalid"));
        let small = FleetBackoff { max_devices: 1, ttl: Dur::secs(60), ..cfg() };
        let two = ok.replace("]]}", r#"],["5g-s-tmsi:1:1:0xc0000002",600]]}"#);
        assert_eq!(decode(&p, key.as_bytes(), two.as_bytes(), 5000, &small).map_err(|e| e.label()), Err("invalid"));
    }
}
