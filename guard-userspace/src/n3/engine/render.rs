//! How decisions render: device keys and addresses as operators write them, stage names, and
//! the serde views of limits the audit trail and the logs show (`decision.rs` uses these for its
//! records' `serialize_with`).

use guard_common::abi::{ByteLimit, DeviceKey, L3Addr, Limit, DEVICE_KIND_TEID, DEVICE_KIND_UE_V4, DEVICE_KIND_UE_V6};
use serde::{Serialize, Serializer};

use crate::addr::addr_str;

/// `teid:0x0000abcd`, `ue:10.0.0.1`, `ue:2001:db8::1`.
pub fn device_key_str(k: &DeviceKey) -> String {
    match k.kind {
        // An F-TEID: the local address by its index in `N3_LOCAL` (`guard device show` and
        // `guard top` print the address), nothing for index 0 (a host with one N3 address).
        DEVICE_KIND_TEID => match k.as_fteid() {
            Some((local, teid)) if local != 0 => format!("teid:{teid:#010x}@local{local}"),
            _ => format!("teid:{:#010x}", u32::from_be_bytes([k.id[0], k.id[1], k.id[2], k.id[3]])),
        },
        DEVICE_KIND_UE_V4 => format!("ue:{}", std::net::Ipv4Addr::new(k.id[0], k.id[1], k.id[2], k.id[3])),
        DEVICE_KIND_UE_V6 => format!("ue:{}", std::net::Ipv6Addr::from(k.id)),
        other => format!("kind{other}:{:02x?}", k.id),
    }
}

pub(super) fn ser_key<S: Serializer>(k: &DeviceKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&device_key_str(k))
}

pub(super) fn ser_keys<S: Serializer>(ks: &[DeviceKey], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ks.iter().map(device_key_str))
}

pub(super) fn ser_addr<S: Serializer>(a: &L3Addr, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&addr_str(a))
}

#[derive(Serialize)]
struct LimitView {
    /// Sustained rate (may be below 1 for group profiles).
    pps: f64,
    burst: u64,
    interval_ns: u64,
    tau_ns: u64,
}

pub(super) fn ser_limit<S: Serializer>(l: &Limit, s: S) -> Result<S::Ok, S::Error> {
    let pps = if l.interval_ns == 0 { 0.0 } else { 1e9 / l.interval_ns as f64 };
    LimitView { pps, burst: l.burst(), interval_ns: l.interval_ns, tau_ns: l.tau_ns }.serialize(s)
}

#[derive(Serialize)]
struct ByteLimitView {
    bit_rate: String,
    bits_per_sec: u64,
    burst_bytes: u64,
}

pub(super) fn ser_bytes<S: Serializer>(b: &ByteLimit, s: S) -> Result<S::Ok, S::Error> {
    let bps = b.bits_per_sec();
    ByteLimitView {
        bit_rate: guard_common::units::BitRate(bps).to_string(),
        bits_per_sec: bps,
        burst_bytes: b.burst_bytes(),
    }
    .serialize(s)
}

/// A device stage's name (logs, `guard device show`, `guard top`).
pub fn stage_name(stage: u32) -> &'static str {
    match stage {
        guard_common::abi::STAGE_SHAPE => "shape",
        guard_common::abi::STAGE_STRICT => "strict",
        guard_common::abi::STAGE_QUARANTINE => "quarantine",
        _ => "observe",
    }
}
