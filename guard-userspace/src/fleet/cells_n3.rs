//! Per-cell summaries on N3 (docs/fleet.md "Cell summaries on N3"): the key each member
//! publishes its hot gNBs under, the JSON value, and the checks every reader makes. Pure.
//!
//! `/overload-guard/<fleet>/cells/n3/<member>` = `{"v":1,"member":..,"at_unix_ms":..,
//! "cells":[["192.0.2.10",30123.4,300],...]}` (gNB N3 address, demand in G-PDUs/s after device
//! stages, devices under engine stages). A reader bounds what one member can say: the value's
//! size, the number of gNBs, each demand (clamped to `max_pps`) and offender count (clamped to
//! [`MAX_OFFENDERS`]), and the member named in the value must be the key's.

use std::collections::HashSet;
use std::net::IpAddr;

use guard_common::abi::L3Addr;
use serde::{Deserialize, Serialize};

use super::cells::{check_header, open, Contribution, SummaryError, SUMMARY_VERSION};
use super::pins::summaries_prefix;
use crate::config::FleetCells;
use crate::n3::engine::{addr_str, N3HotCell};
use crate::n3::local::l3_of;

/// The most offenders one member may claim for one gNB (clamped): more than any device map holds.
pub const MAX_OFFENDERS: u64 = 1 << 24;

/// Where the N3 summaries of `fleet` (of its summary `group`, if any) live.
pub fn n3_prefix(fleet: &str, group: Option<&str>) -> String {
    format!("{}cells/n3/", summaries_prefix(fleet, group))
}

/// This member's N3 summary key.
pub fn n3_key(fleet: &str, group: Option<&str>, member: &str) -> String {
    format!("{}{member}", n3_prefix(fleet, group))
}

/// The value as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct N3SummaryValue {
    pub v: u32,
    pub member: String,
    pub at_unix_ms: u64,
    pub cells: Vec<(String, f64, u64)>,
}

/// This member's summary value: at most `cfg.max_cells` gNBs, demands clamped to `cfg.max_pps`.
pub fn encode(member: &str, at_unix_ms: u64, cells: &[N3HotCell], cfg: &FleetCells) -> Vec<u8> {
    let v = N3SummaryValue {
        v: SUMMARY_VERSION,
        member: member.to_owned(),
        at_unix_ms,
        cells: cells
            .iter()
            .take(cfg.max_cells as usize)
            .map(|c| {
                (addr_str(&c.cell), (c.demand.min(cfg.max_pps) * 10.0).round() / 10.0, c.offenders.min(MAX_OFFENDERS))
            })
            .collect(),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Read one N3 summary (see the module documentation for the bounds).
pub fn decode(
    prefix: &str,
    key: &[u8],
    value: &[u8],
    cfg: &FleetCells,
) -> Result<Contribution<N3HotCell>, SummaryError> {
    let (member, v): (String, N3SummaryValue) = open(prefix, key, value, cfg.max_n3_value_bytes())?;
    check_header(v.v, SUMMARY_VERSION, &v.member, &member)?;
    if v.cells.len() > cfg.max_cells as usize {
        return Err(SummaryError::Invalid(format!("{} gNBs, more than max_cells {}", v.cells.len(), cfg.max_cells)));
    }
    let mut seen = HashSet::new();
    let mut cells = Vec::with_capacity(v.cells.len());
    for (a, demand, offenders) in &v.cells {
        let cell = parse_gnb(a)?;
        if !seen.insert(cell) {
            return Err(SummaryError::Invalid(format!("gNB {a} twice")));
        }
        if !(demand.is_finite() && *demand >= 0.0) {
            return Err(SummaryError::Invalid(format!("gNB {a}: demand {demand}")));
        }
        // Clamped, not refused: members may run with different bounds during a roll-out.
        cells.push(N3HotCell { cell, demand: demand.min(cfg.max_pps), offenders: (*offenders).min(MAX_OFFENDERS) });
    }
    Ok(Contribution { member: member.to_owned(), at_unix_ms: v.at_unix_ms, cells })
}

/// A gNB's address as a fleet value carries it: a unicast address in the one spelling this build
/// prints (N3 summaries, known gNB lists).
pub(super) fn parse_gnb(a: &str) -> Result<L3Addr, SummaryError> {
    let ip: IpAddr = a.parse().map_err(|_| SummaryError::Invalid(format!("gNB {a:?} is not an IP address")))?;
    let cell = l3_of(ip);
    if addr_str(&cell) != *a || ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(SummaryError::Invalid(format!("gNB {a:?} is not a unicast address in canonical form")));
    }
    Ok(cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::abi::L3Addr;

    fn cfg() -> FleetCells {
        FleetCells::default()
    }

    fn hot(n: u8, demand: f64) -> N3HotCell {
        N3HotCell { cell: L3Addr::v4([192, 0, 2, n]), demand, offenders: 300 }
    }

    #[test]
    fn an_n3_summary_round_trips_clamped_and_bounded() {
        let p = n3_prefix("f1", None);
        let key = n3_key("f1", None, "upf-1");
        assert_eq!(key, "/overload-guard/f1/cells/n3/upf-1");
        let v = encode("upf-1", 7, &[hot(1, 30_123.44), hot(2, 1e12)], &cfg());
        let c = decode(&p, key.as_bytes(), &v, &cfg()).expect("valid");
        assert_eq!(c.member, "upf-1");
        assert_eq!(c.cells[0], hot(1, 30_123.4));
        assert_eq!(c.cells[1].demand, cfg().max_pps, "clamped to max_pps");
        let worst: Vec<N3HotCell> = (0..100u16)
            .map(|i| N3HotCell {
                cell: L3Addr::v6([
                    0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, i as u8,
                ]),
                demand: 9_999_999.99,
                offenders: u64::MAX,
            })
            .collect();
        let v = encode(&"m".repeat(64), u64::MAX, &worst, &cfg());
        assert!(v.len() <= cfg().max_n3_value_bytes(), "the bound covers the longest value: {} bytes", v.len());
        let c = decode(&p, key.as_bytes(), &v, &cfg());
        assert!(c.is_err(), "named under another member's key");
        let c = decode(&p, n3_key("f1", None, &"m".repeat(64)).as_bytes(), &v, &cfg()).expect("valid");
        assert_eq!(c.cells.len(), 32, "at most max_cells written");
        assert!(c.cells.iter().all(|x| x.offenders == MAX_OFFENDERS));
    }

    /// With a summary group the summaries live under the group's prefix, which neither the
    /// fleet-wide prefix nor another group's covers (etcd watches by prefix): a reader of one
    /// refuses a key of another as `bad_key`, and never sums it.
    #[test]
    fn a_summary_groups_keys_are_apart_from_the_fleets_and_other_groups() {
        assert_eq!(n3_key("f1", Some("upf-pool-a"), "upf-1"), "/overload-guard/f1/groups/upf-pool-a/cells/n3/upf-1");
        assert_eq!(n3_key("f1", None, "upf-1"), "/overload-guard/f1/cells/n3/upf-1", "no group: as before groups");
        assert_eq!(
            crate::fleet::cells::n2_key("f1", Some("amf-set-1"), "amf-1"),
            "/overload-guard/f1/groups/amf-set-1/cells/n2/amf-1"
        );
        let ok = r#"{"v":1,"member":"upf-1","at_unix_ms":1,"cells":[["192.0.2.10",30000.0,300]]}"#;
        let prefixes = [n3_prefix("f1", None), n3_prefix("f1", Some("a")), n3_prefix("f1", Some("ab"))];
        for (i, p) in prefixes.iter().enumerate() {
            for (j, q) in prefixes.iter().enumerate() {
                let key = format!("{q}upf-1");
                let got = decode(p, key.as_bytes(), ok.as_bytes(), &cfg()).map(|_| ()).map_err(|e| e.label());
                assert_eq!(got, if i == j { Ok(()) } else { Err("bad_key") }, "{key} read under {p}");
                assert_eq!(key.starts_with(p.as_str()), i == j, "{key} is under {p}");
            }
        }
    }

    #[test]
    fn bad_n3_summaries_are_refused_with_a_reason() {
        let p = n3_prefix("f1", None);
        let key = n3_key("f1", None, "upf-1");
        let c = cfg();
        let d = |k: &str, v: &str| decode(&p, k.as_bytes(), v.as_bytes(), &c).map(|_| ()).map_err(|e| e.label());
        let ok = r#"{"v":1,"member":"upf-1","at_unix_ms":1,"cells":[["192.0.2.10",30000.0,300]]}"#;
        assert_eq!(d(&key, ok), Ok(()));
        assert_eq!(d(&format!("{p}a/b"), ok), Err("bad_key"));
        assert_eq!(d("/overload-guard/f1/cells/n2/upf-1", ok), Err("bad_key"));
        assert_eq!(d(&key, &"x".repeat(c.max_n3_value_bytes() + 1)), Err("oversized"));
        assert_eq!(d(&key, "{"), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":1,\"extra\":2")), Err("malformed"));
        assert_eq!(d(&key, &ok.replace(",300]", ",-3]")), Err("malformed"), "a negative count");
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":2")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("\"member\":\"upf-1\"", "\"member\":\"upf-2\"")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("30000.0", "-1.0")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("192.0.2.10", "nr:00f110:0x1")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("192.0.2.10", "127.0.0.1")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("192.0.2.10", "2001:0db8::1")), Err("invalid"), "not canonical");
        let twice = ok.replace("]]}", r#"],["192.0.2.10",1.0,1]]}"#);
        assert_eq!(d(&key, &twice), Err("invalid"));
    }
}
