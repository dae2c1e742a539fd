//! How the guard writes addresses (`L3Addr`, the map ABI's address) for people: logs, the audit
//! trail, `guard status`, the N2 hook payload. Shared by both sides.

use guard_common::abi::{L3Addr, FAMILY_IPV4, FAMILY_IPV6};

/// `10.0.0.1`, `2001:db8::1`, or `none`.
pub fn addr_str(a: &L3Addr) -> String {
    match a.family {
        FAMILY_IPV4 => std::net::Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3]).to_string(),
        FAMILY_IPV6 => std::net::Ipv6Addr::from(a.addr).to_string(),
        _ => "none".to_owned(),
    }
}
