//! Per-cell summaries (docs/fleet.md "Cell summaries"): the key each member publishes its hot
//! cells under, the JSON value, and the checks every reader makes. Pure: no etcd, no clock.
//!
//! One key per member and plane, under the member's own lease:
//! `/overload-guard/<fleet>/cells/n2/<member>` = `{"v":1,"member":..,"at_unix_ms":..,
//! "cells":[["nr:00f110:0x000002000",4.12,0.5],...]}` (cell, attempts/s, learned baseline/s).
//! A reader bounds what one member can say: the value's size, the number of cells, each rate
//! (clamped to `max_rate`), and the member named in the value must be the key's.

use std::collections::HashSet;

use guard_common::abi_n2::{N2CellKey, CELL_KIND_EUTRA, CELL_KIND_NR};
use serde::{Deserialize, Serialize};

use super::pins::summaries_prefix;
use crate::config::{fleet_valid_name, FleetCells};
use crate::n2::engine::{cell_str, HotCell};

/// Version of the summary value. Bump on any incompatible change.
pub const SUMMARY_VERSION: u32 = 1;

/// Where the N2 summaries of `fleet` (of its summary `group`, if any) live.
pub fn n2_prefix(fleet: &str, group: Option<&str>) -> String {
    format!("{}cells/n2/", summaries_prefix(fleet, group))
}

/// This member's N2 summary key.
pub fn n2_key(fleet: &str, group: Option<&str>, member: &str) -> String {
    format!("{}{member}", n2_prefix(fleet, group))
}

/// A summary refused by a reader; the label is the metric's `reason`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SummaryError {
    #[error("key {0:?} is not <prefix><member>")]
    BadKey(String),
    #[error("{len} bytes, more than the {max} a summary of fleet.cells.max_cells cells takes")]
    Oversized { len: usize, max: usize },
    #[error("not a summary value: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

impl SummaryError {
    pub fn label(&self) -> &'static str {
        match self {
            SummaryError::BadKey(_) => "bad_key",
            SummaryError::Oversized { .. } => "oversized",
            SummaryError::Malformed(_) => "malformed",
            SummaryError::Invalid(_) => "invalid",
        }
    }
}

/// The value as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryValue {
    pub v: u32,
    pub member: String,
    pub at_unix_ms: u64,
    pub cells: Vec<(String, f64, f64)>,
}

/// One member's contribution, as a reader keeps it (rates clamped): N2's cells by default, N3's
/// gNBs ([`super::cells_n3`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution<C = HotCell> {
    pub member: String,
    pub at_unix_ms: u64,
    pub cells: Vec<C>,
}

/// Two decimals are enough for attempts per second and keep the value small.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// This member's summary value: at most `cfg.max_cells` cells, rates clamped to `cfg.max_rate`
/// (what every reader would clamp them to).
pub fn encode(member: &str, at_unix_ms: u64, cells: &[HotCell], cfg: &FleetCells) -> Vec<u8> {
    let v = SummaryValue {
        v: SUMMARY_VERSION,
        member: member.to_owned(),
        at_unix_ms,
        cells: cells
            .iter()
            .take(cfg.max_cells as usize)
            .map(|c| (cell_str(&c.key), round2(c.rate.min(cfg.max_rate)), round2(c.baseline.min(cfg.max_rate))))
            .collect(),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The member a summary's key names and its value, read within `max` octets: the checks every
/// summary (N2's cells, N3's gNBs) passes before its own.
pub(super) fn open<T: serde::de::DeserializeOwned>(
    prefix: &str,
    key: &[u8],
    value: &[u8],
    max: usize,
) -> Result<(String, T), SummaryError> {
    let key_s = String::from_utf8_lossy(key);
    let member = key_s
        .strip_prefix(prefix)
        .filter(|m| fleet_valid_name(m))
        .ok_or_else(|| SummaryError::BadKey(key_s.clone().into_owned()))?
        .to_owned();
    if value.len() > max {
        return Err(SummaryError::Oversized { len: value.len(), max });
    }
    let v = serde_json::from_slice(value).map_err(|e| SummaryError::Malformed(e.to_string()))?;
    Ok((member, v))
}

/// A value's version against the one this build reads (`reads`), and its author against the key's.
pub(super) fn check_header(version: u32, reads: u32, in_value: &str, member: &str) -> Result<(), SummaryError> {
    if version != reads {
        return Err(SummaryError::Invalid(format!("version {version} (this build reads {reads})")));
    }
    if in_value != member {
        return Err(SummaryError::Invalid(format!("member {in_value:?} in a value under {member:?}'s key")));
    }
    Ok(())
}

/// Read one summary: the key's member, the value's bounds. `own` is this member's name, whose
/// summary a reader skips (it has its own counts).
pub fn decode(prefix: &str, key: &[u8], value: &[u8], cfg: &FleetCells) -> Result<Contribution, SummaryError> {
    let (member, v): (String, SummaryValue) = open(prefix, key, value, cfg.max_value_bytes())?;
    check_header(v.v, SUMMARY_VERSION, &v.member, &member)?;
    if v.cells.len() > cfg.max_cells as usize {
        return Err(SummaryError::Invalid(format!("{} cells, more than max_cells {}", v.cells.len(), cfg.max_cells)));
    }
    let mut seen = HashSet::new();
    let mut cells = Vec::with_capacity(v.cells.len());
    for (c, rate, base) in &v.cells {
        let key = parse_cell(c).ok_or_else(|| SummaryError::Invalid(format!("cell {c:?} is not nr:/eutra:")))?;
        if !seen.insert(key) {
            return Err(SummaryError::Invalid(format!("cell {c} twice")));
        }
        if !(rate.is_finite() && base.is_finite() && *rate >= 0.0 && *base >= 0.0) {
            return Err(SummaryError::Invalid(format!("cell {c}: rate {rate} / baseline {base}")));
        }
        // Clamped, not refused: members may run with different bounds during a roll-out.
        cells.push(HotCell { key, rate: rate.min(cfg.max_rate), baseline: base.min(cfg.max_rate) });
    }
    Ok(Contribution { member: member.to_owned(), at_unix_ms: v.at_unix_ms, cells })
}

/// The inverse of [`cell_str`]: `nr:<plmn 6 hex>:0x<NCI, 36 bits>` (TS 38.413 §9.3.1.7) or
/// `eutra:<plmn 6 hex>:0x<ECI, 28 bits>` (§9.3.1.9).
pub fn parse_cell(s: &str) -> Option<N2CellKey> {
    let mut it = s.split(':');
    let (kind, plmn, id) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || plmn.len() != 6 {
        return None;
    }
    let (kind, bits) = match kind {
        "nr" => (CELL_KIND_NR, 36),
        "eutra" => (CELL_KIND_EUTRA, 28),
        _ => return None,
    };
    let p = u32::from_str_radix(plmn, 16).ok()?.to_be_bytes();
    let id = id.strip_prefix("0x").filter(|h| !h.is_empty() && h.len() <= 16)?;
    let cell_id = u64::from_str_radix(id, 16).ok().filter(|v| *v >> bits == 0)?;
    Some(N2CellKey { kind, plmn: [p[1], p[2], p[3], 0], cell_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FleetCells {
        FleetCells::default()
    }

    fn hot(id: u64, rate: f64) -> HotCell {
        HotCell { key: N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: id }, rate, baseline: 0.5 }
    }

    #[test]
    fn cells_print_and_parse_back() {
        for k in [
            N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0xf_ffff_ffff },
            N2CellKey { kind: CELL_KIND_EUTRA, plmn: [0x21, 0xf3, 0x54, 0], cell_id: 0x123_4567 },
        ] {
            assert_eq!(parse_cell(&cell_str(&k)), Some(k), "{}", cell_str(&k));
        }
        for bad in [
            "nr:00f110",
            "nr:00f110:0x1000000000",
            "eutra:00f110:0x10000000",
            "x:00f110:0x1",
            "nr:0f110:0x1",
            "nr:00f110:12",
        ] {
            assert_eq!(parse_cell(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_summary_round_trips_clamped_and_bounded() {
        let p = n2_prefix("f1", None);
        let cells = vec![hot(1, 4.123), hot(2, 5000.0)];
        let v = encode("amf-1", 7, &cells, &cfg());
        let c = decode(&p, n2_key("f1", None, "amf-1").as_bytes(), &v, &cfg()).expect("valid");
        assert_eq!(c.member, "amf-1");
        assert_eq!(c.cells[0].rate, 4.12);
        assert_eq!(c.cells[1].rate, 1000.0, "clamped to max_rate");
        let many: Vec<HotCell> = (0..100).map(|i| hot(i, 1.0)).collect();
        let v = encode("amf-1", 7, &many, &cfg());
        assert!(v.len() <= cfg().max_value_bytes(), "{} bytes", v.len());
        assert_eq!(decode(&p, n2_key("f1", None, "amf-1").as_bytes(), &v, &cfg()).expect("valid").cells.len(), 32);
        let worst: Vec<HotCell> = (0..32)
            .map(|i| HotCell {
                key: N2CellKey { kind: CELL_KIND_EUTRA, plmn: [0xff; 4], cell_id: 0xfff_fff0 + i },
                rate: 999.999,
                baseline: 999.999,
            })
            .collect();
        let long = "m".repeat(64);
        let v = encode(&long, u64::MAX, &worst, &cfg());
        assert!(v.len() <= cfg().max_value_bytes(), "the bound covers the longest value: {} bytes", v.len());
    }

    #[test]
    fn bad_summaries_are_refused_with_a_reason() {
        let p = n2_prefix("f1", None);
        let key = n2_key("f1", None, "amf-1");
        let c = cfg();
        let d = |k: &str, v: &str| decode(&p, k.as_bytes(), v.as_bytes(), &c).map(|_| ()).map_err(|e| e.label());
        let ok = r#"{"v":1,"member":"amf-1","at_unix_ms":1,"cells":[["nr:00f110:0x000001001",1.0,0.5]]}"#;
        assert_eq!(d(&key, ok), Ok(()));
        assert_eq!(d(&format!("{p}a/b"), ok), Err("bad_key"));
        assert_eq!(d("/other/amf-1", ok), Err("bad_key"));
        assert_eq!(d(&key, &"x".repeat(c.max_value_bytes() + 1)), Err("oversized"));
        assert_eq!(d(&key, "{"), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":1,\"extra\":2")), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":2")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("\"member\":\"amf-1\"", "\"member\":\"amf-2\"")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("1.0,0.5", "-1.0,0.5")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("nr:00f110", "lte:00f110")), Err("invalid"));
        let twice = ok.replace("]]}", r#"],["nr:00f110:0x000001001",1.0,0.5]]}"#);
        assert_eq!(d(&key, &twice), Err("invalid"));
        let small = FleetCells { max_cells: 1, ..cfg() };
        let two = ok.replace("]]}", r#"],["nr:00f110:0x000001002",1.0,0.5]]}"#);
        assert_eq!(decode(&p, key.as_bytes(), two.as_bytes(), &small).map_err(|e| e.label()), Err("invalid"));
    }
}
