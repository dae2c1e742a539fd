//! Known gNB addresses learned from real N2 sessions (docs/fleet.md "Known gNB addresses"): the
//! key each member publishes its learned gNBs under, the JSON value, and the checks every reader
//! makes. Pure: no etcd, no clock (the caller passes the time).
//!
//! One key per member, under its own lease: `/overload-guard/<fleet>/gnbs/n2/<member>` =
//! `{"v":1,"member":..,"at_unix_ms":..,"expires_unix_ms":..,"gnbs":["192.0.2.10",...]}`. A
//! reader bounds what one member can say: the value's size, the number of addresses, each a
//! unicast address in its one spelling and listed once, the list's life; the member named in the
//! value must be the key's. The checks are the summaries' and the back-off lists' own
//! ([`super::cells::open`], `check_header`, [`super::backoff::life_left`],
//! [`super::cells_n3::parse_gnb`]).

use std::collections::HashSet;

use guard_common::abi::L3Addr;
use serde::{Deserialize, Serialize};

use super::backoff::{life_left, ListError, MAX_LIST_TTL_MS};
use super::cells::{check_header, open};
use super::cells_n3::parse_gnb;
use super::pins::fleet_prefix;
use crate::config::FleetGnbs;
use crate::n3::engine::addr_str;

/// Version of the list value. Bump on any incompatible change.
pub const GNBS_VERSION: u32 = 1;

/// Where the learned N2 gNB lists of `fleet` live.
pub fn n2_prefix(fleet: &str) -> String {
    format!("{}gnbs/n2/", fleet_prefix(fleet))
}

/// This member's learned gNB list key.
pub fn n2_key(fleet: &str, member: &str) -> String {
    format!("{}{member}", n2_prefix(fleet))
}

/// The value as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GnbsValue {
    pub v: u32,
    pub member: String,
    pub at_unix_ms: u64,
    pub expires_unix_ms: u64,
    pub gnbs: Vec<String>,
}

/// One member's list, as a reader keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct GnbList {
    pub member: String,
    /// How long the list still lives from when it was read.
    pub remaining_ms: u64,
    pub gnbs: Vec<L3Addr>,
}

/// This member's list value: at most `cfg.max_gnbs` addresses, living `cfg.ttl`.
pub fn encode(member: &str, at_unix_ms: u64, gnbs: &[L3Addr], cfg: &FleetGnbs) -> Vec<u8> {
    let v = GnbsValue {
        v: GNBS_VERSION,
        member: member.to_owned(),
        at_unix_ms,
        expires_unix_ms: at_unix_ms + (cfg.ttl.0 / 1_000_000).min(MAX_LIST_TTL_MS),
        gnbs: gnbs.iter().take(cfg.max_gnbs as usize).map(addr_str).collect(),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Read one list at `now_unix_ms` (the reader's wall clock).
pub fn decode(prefix: &str, key: &[u8], value: &[u8], now_unix_ms: u64, cfg: &FleetGnbs) -> Result<GnbList, ListError> {
    let (member, v): (String, GnbsValue) = open(prefix, key, value, cfg.max_value_bytes())?;
    check_header(v.v, GNBS_VERSION, &v.member, &member)?;
    let remaining_ms = life_left(v.at_unix_ms, v.expires_unix_ms, now_unix_ms)?;
    if v.gnbs.len() > cfg.max_gnbs as usize {
        return Err(ListError::Invalid(format!("{} gNBs, more than max_gnbs {}", v.gnbs.len(), cfg.max_gnbs)));
    }
    let mut seen = HashSet::new();
    let mut gnbs = Vec::with_capacity(v.gnbs.len());
    for a in &v.gnbs {
        let g = parse_gnb(a)?;
        if !seen.insert(g) {
            return Err(ListError::Invalid(format!("gNB {a} twice")));
        }
        gnbs.push(g);
    }
    Ok(GnbList { member, remaining_ms, gnbs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfg() -> FleetGnbs {
        FleetGnbs::default()
    }

    #[test]
    fn a_gnb_list_round_trips_bounded() {
        let p = n2_prefix("f1");
        let key = n2_key("f1", "amf-1");
        let g = [L3Addr::v4([192, 0, 2, 10]), L3Addr::v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])];
        let v = encode("amf-1", 1000, &g, &cfg());
        let l = decode(&p, key.as_bytes(), &v, 2000, &cfg()).expect("valid");
        assert_eq!((l.member.as_str(), l.gnbs.as_slice(), l.remaining_ms), ("amf-1", &g[..], 299_000));
        let many: Vec<L3Addr> = (0..1000u32).map(|i| L3Addr::v4([10, 1, (i >> 8) as u8, i as u8])).collect();
        let v = encode("amf-1", 1000, &many, &cfg());
        assert_eq!(decode(&p, key.as_bytes(), &v, 2000, &cfg()).expect("valid").gnbs.len(), 256);
        let worst: Vec<L3Addr> = (0..256u32)
            .map(|i| {
                let mut o = [0xffu8; 16];
                o[15] = i as u8;
                L3Addr::v6(o)
            })
            .collect();
        let v = encode(&"m".repeat(64), u64::MAX / 2, &worst, &cfg());
        assert!(v.len() <= cfg().max_value_bytes(), "the bound covers the longest value: {} bytes", v.len());
    }

    #[test]
    fn bad_gnb_lists_are_refused_with_a_reason() {
        let p = n2_prefix("f1");
        let key = n2_key("f1", "amf-1");
        let c = cfg();
        let d = |k: &str, v: &str| decode(&p, k.as_bytes(), v.as_bytes(), 5000, &c).map(|_| ()).map_err(|e| e.label());
        let ok = r#"{"v":1,"member":"amf-1","at_unix_ms":1000,"expires_unix_ms":61000,"gnbs":["192.0.2.10"]}"#;
        assert_eq!(d(&key, ok), Ok(()));
        assert_eq!(d(&format!("{p}a/b"), ok), Err("bad_key"));
        assert_eq!(d(&key, &"x".repeat(c.max_value_bytes() + 1)), Err("oversized"));
        assert_eq!(d(&key, "{"), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":1,\"extra\":2")), Err("malformed"));
        assert_eq!(d(&key, &ok.replace("\"v\":1", "\"v\":2")), Err("invalid"));
        assert_eq!(d(&key, &ok.replace("\"member\":\"amf-1\"", "\"member\":\"amf-2\"")), Err("invalid"), "forged");
        assert_eq!(d(&key, &ok.replace("61000", "4000")), Err("expired"));
        assert_eq!(d(&key, &ok.replace("61000", "1000")), Err("invalid"), "no life");
        assert_eq!(d(&key, &ok.replace("61000", "99999999")), Err("invalid"), "claims more than an hour");
        for bad in ["127.0.0.1", "0.0.0.0", "224.0.0.1", "2001:0db8::1", "::", "gnb-1", "192.0.2.010"] {
            assert_eq!(d(&key, &ok.replace("192.0.2.10", bad)), Err("invalid"), "{bad}");
        }
        assert_eq!(d(&key, &ok.replace(r#""192.0.2.10""#, r#""192.0.2.10","192.0.2.10""#)), Err("invalid"));
        let small = FleetGnbs { max_gnbs: 1, ttl: Dur::secs(60), ..cfg() };
        let two = ok.replace(r#""192.0.2.10""#, r#""192.0.2.10","192.0.2.11""#);
        assert_eq!(decode(&p, key.as_bytes(), two.as_bytes(), 5000, &small).map_err(|e| e.label()), Err("invalid"));
    }
}
