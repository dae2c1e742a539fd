//! Operator overrides as the data plane stores them: the one code path `guard device pin` and the
//! fleet's pins (`crate::fleet`) both write through, so a pin made on another host lands in the
//! maps exactly as a local one would.
//!
//! Every entry carries `STAGE_FLAG_MANUAL`: the controller never changes or removes it (it takes
//! device pins over at its next tick, `Engine::sync_manual`, and leaves manual gNB caps alone).

use std::net::IpAddr;

use guard_common::abi::{
    ByteLimit, CellStageEntry, DeviceKey, Limit, StageEntry, CELL_STAGE_CAP, DEVICE_KIND_UE_V6, KEY_MODE_UE_ADDR,
    STAGE_FLAG_MANUAL,
};
use guard_common::policy::{ue_key_of, UeKey};

use crate::config::Rate;

/// Why an override cannot be written the way it was asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManualError {
    #[error("{0} names no UE (link-local, unspecified or 0.0.0.0)")]
    NotAUe(IpAddr),
    #[error("this guard keys devices by TEID (key_mode = \"teid\"): a device named by UE address would match nothing")]
    KeyedByTeid,
    #[error("a byte rate of {0} is below {MIN_PIN_BITS_PER_SEC}bit/s, the slowest byte rate the data plane holds")]
    RateTooSlow(Rate),
    #[error("a byte burst (--burst-bytes) needs a byte rate (--rate) to apply to")]
    BurstWithoutRate,
}

/// The slowest byte rate a pin may ask for: below it the data plane would hold the rate at
/// `ByteLimit::MAX_UNIT_NS` (~3.7 bit/s), not at what was asked.
pub const MIN_PIN_BITS_PER_SEC: u64 = 8;

/// An operator pin's byte limit: `rate` (absent: `default_rate`; "0": none) with bursts of
/// `burst_bytes` octets (absent: `default_burst`; 0: one second of the rate). The one code path
/// of `guard device pin --rate`, `guard gnb pin --rate` (`cli::rate`) and of every member applying
/// a fleet pin's `rate_bps`/`burst_bytes` (`crate::fleet::apply`), so a byte pin means the same
/// wherever it is made.
pub fn pin_byte_limit(
    rate: Option<Rate>,
    burst_bytes: Option<u64>,
    default_rate: Rate,
    default_burst: u64,
) -> Result<ByteLimit, ManualError> {
    if let Some(r) = rate.filter(|r| !r.is_none() && r.bits_per_sec() < MIN_PIN_BITS_PER_SEC) {
        return Err(ManualError::RateTooSlow(r));
    }
    let rate = rate.unwrap_or(default_rate);
    if rate.is_none() && burst_bytes.is_some() {
        return Err(ManualError::BurstWithoutRate);
    }
    Ok(rate.byte_limit(burst_bytes.unwrap_or(default_burst)))
}

/// The data plane's key for the UE at `ip`, as `guard_n3` keys it in `key_mode = "ue_addr"`
/// (`policy::ue_key_of`): an IPv4 UE by its address, an IPv6 UE by its prefix of `v6_len` bits
/// (`antispoof_v6_prefix`; 0 means 64), any of whose addresses names it.
pub fn ue_device_key(ip: IpAddr, v6_len: u32) -> Result<DeviceKey, ManualError> {
    let cfg = guard_common::abi::GuardConfig { antispoof_v6_prefix: v6_len, ..Default::default() };
    let a = crate::n3::local::l3_of(ip);
    match ue_key_of(&cfg, &a) {
        UeKey::V4 => DeviceKey::ue(&a).ok_or(ManualError::NotAUe(ip)),
        UeKey::V6Prefix(p) => Ok(v6_prefix_key(p)),
        UeKey::None => Err(ManualError::NotAUe(ip)),
    }
}

/// The device key of an IPv6 UE prefix (its first 64 bits, big-endian, the rest zero).
pub fn v6_prefix_key(prefix: u64) -> DeviceKey {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&prefix.to_be_bytes());
    DeviceKey { kind: DEVICE_KIND_UE_V6, id }
}

/// Refuse a UE-named device on a data plane keyed by TEID: the pin would match nothing and drop
/// nothing while saying "pinned".
pub fn require_ue_keys(key_mode: u32) -> Result<(), ManualError> {
    if key_mode == KEY_MODE_UE_ADDR {
        Ok(())
    } else {
        Err(ManualError::KeyedByTeid)
    }
}

/// An operator's device entry (pin or release) from `now` for `ttl_ns`, limiting packets only
/// (`StageEntry { bytes, ..manual_entry(..) }` adds a byte rate: `guard device pin --rate`).
pub fn manual_entry(stage: u32, limit: Limit, now: u64, ttl_ns: u64) -> StageEntry {
    StageEntry {
        stage,
        flags: STAGE_FLAG_MANUAL,
        interval_ns: limit.interval_ns,
        tau_ns: limit.tau_ns,
        expires_ns: now.saturating_add(ttl_ns),
        tat: 0,
        set_ns: now,
        reason: 0,
        group: 0,
        bytes: guard_common::abi::ByteLimit::UNLIMITED,
        tat_bytes: 0,
    }
}

/// The `reason` of a device entry written for a fleet pin (operator entries have 0, the engine's
/// the small codes of `engine::decision::Reason`). It is how a restarted member finds the entries
/// its previous run wrote for pins deleted while it was down. The data plane never reads it.
pub const REASON_FLEET: u32 = 0x0F1E_E700;
/// The same mark in a gNB cap's `flags` (the data plane reads no flag of a cap).
pub const CELL_FLAG_FLEET: u32 = 1 << 31;

/// A fleet pin's device entry: an operator entry marked [`REASON_FLEET`].
pub fn fleet_entry(stage: u32, limit: Limit, now: u64, ttl_ns: u64) -> StageEntry {
    StageEntry { reason: REASON_FLEET, ..manual_entry(stage, limit, now, ttl_ns) }
}

/// Whether a device entry was written for a fleet pin.
pub fn is_fleet_entry(e: &StageEntry) -> bool {
    e.flags & STAGE_FLAG_MANUAL != 0 && e.reason == REASON_FLEET
}

/// Whether a gNB cap was written for a fleet pin.
pub fn is_fleet_cell(e: &CellStageEntry) -> bool {
    e.flags & STAGE_FLAG_MANUAL != 0 && e.flags & CELL_FLAG_FLEET != 0
}

/// The cap that stands for "quarantine" on a gNB: the data plane's only gNB stage is a rate cap
/// (`N3_CELL_STAGES`), so a quarantine is a cap whose interval outlasts any pin: one G-PDU passes,
/// then none until the pin expires.
pub const GNB_QUARANTINE: Limit = Limit { interval_ns: u64::MAX / 4, tau_ns: 0 };

/// An operator's cap on a gNB's G-PDUs from `now` for `ttl_ns`.
pub fn manual_cell_entry(limit: Limit, now: u64, ttl_ns: u64) -> CellStageEntry {
    CellStageEntry {
        stage: CELL_STAGE_CAP,
        flags: STAGE_FLAG_MANUAL,
        interval_ns: limit.interval_ns,
        tau_ns: limit.tau_ns,
        expires_ns: now.saturating_add(ttl_ns),
        tat: 0,
        set_ns: now,
        // A packet rate; `guard gnb pin --rate` sets a byte rate over this (fleet pins have none).
        bytes: guard_common::abi::ByteLimit::UNLIMITED,
        tat_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::abi::{L3Addr, DEVICE_KIND_UE_V4, KEY_MODE_TEID};

    #[test]
    fn ue_keys_are_the_data_planes() {
        let k = ue_device_key("10.45.0.7".parse().unwrap(), 64).unwrap();
        assert_eq!(k, DeviceKey::ue(&L3Addr::v4([10, 45, 0, 7])).unwrap());
        assert_eq!(k.kind, DEVICE_KIND_UE_V4);
        // Two addresses of one /64 are one device.
        let a = ue_device_key("2001:db8:1:2::1".parse().unwrap(), 64).unwrap();
        let b = ue_device_key("2001:db8:1:2:aaaa::9".parse().unwrap(), 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, v6_prefix_key(0x2001_0db8_0001_0002));
        assert_eq!(ue_device_key("0.0.0.0".parse().unwrap(), 64), Err(ManualError::NotAUe("0.0.0.0".parse().unwrap())));
    }

    #[test]
    fn teid_keyed_data_planes_refuse_ue_pins() {
        assert_eq!(require_ue_keys(KEY_MODE_TEID), Err(ManualError::KeyedByTeid));
        assert_eq!(require_ue_keys(KEY_MODE_UE_ADDR), Ok(()));
    }

    #[test]
    fn a_gnb_quarantine_admits_one_packet_then_none() {
        let mut e = manual_cell_entry(GNB_QUARANTINE, 1_000, 3_600_000_000_000);
        let now = 2_000;
        assert!(guard_common::policy::cell_cap_admits(&mut e, now, 100, |v| v));
        for t in [now, now + 1_000_000_000, now + 3_000_000_000_000] {
            assert!(!guard_common::policy::cell_cap_admits(&mut e, t, 100, |v| v), "at {t}");
        }
    }
}
