//! Tests of what the configuration hands the rest of the guard, beside its validation
//! (`tests.rs`): the data plane's record and masks, group membership, the fleet's derived sizes.
//! Each was written for a mutant `cargo xtask mutants --scope config` showed surviving (issue 24):
//! code the configuration's own tests did not pin down.

use std::net::IpAddr;

use guard_common::abi::{L3Addr, LOCAL_FLAG_NON_IP};

use super::fleet::{valid_name, CELL_ENTRY_BYTES, SUMMARY_HEADER_BYTES};
use super::*;

fn prefix(s: &str) -> Prefix {
    s.parse().expect("a prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// Each protection lands in exactly one of enforced / shadow / off, by its own bits only.
#[test]
fn protections_are_listed_by_their_own_mode() {
    let names = [(1, "a"), (2, "b"), (4, "c"), (8, "d")];
    // a enforced, b shadow (enabled and shadow), c off, d off but with a stray shadow bit.
    let [enforced, shadow, off] = protections_by_mode(0b0011, 0b1010, &names);
    assert_eq!(enforced, vec!["a"]);
    assert_eq!(shadow, vec!["b"]);
    assert_eq!(off, vec!["c", "d"]);
}

#[test]
fn modes_name_each_protection_in_its_mode() {
    let m = Modes {
        shape: Mode::Enforce,
        strict: Mode::Shadow,
        quarantine: Mode::Off,
        cell_cap: Mode::Shadow,
        host_cap: Mode::Enforce,
        antispoof: Mode::Off,
        new_device: Mode::Enforce,
        echo: Mode::Shadow,
        err_ind: Mode::Off,
        malformed: Mode::Enforce,
    };
    assert_eq!(m.named(Mode::Enforce), vec!["shape", "host_cap", "new_device", "malformed"]);
    assert_eq!(m.named(Mode::Shadow), vec!["strict", "cell_cap", "echo"]);
    assert_eq!(m.named(Mode::Off), vec!["quarantine", "antispoof", "err_ind"]);
    let (en, sh) = m.masks();
    let [e, s, o] = protections_by_mode(en, sh, &PROTECTIONS);
    assert_eq!((e, s, o), (m.named(Mode::Enforce), m.named(Mode::Shadow), m.named(Mode::Off)));
}

/// The ceilings shared by the CPUs are divided among them, rate and burst alike (each CPU runs
/// its own GCRA); a QFI listed twice is exempt once, not cancelled.
#[test]
fn per_cpu_ceilings_divide_rate_and_burst_and_a_repeated_qfi_stays_exempt() {
    let mut cfg = Config::default();
    cfg.capacity.host.cap_pps = 8_000;
    cfg.capacity.host.burst = 400;
    cfg.dataplane.new_gnb = PpsLimit { pps: 80, burst: 40 };
    cfg.dataplane.unknown_new_device = PpsLimit { pps: 800, burst: 200 };
    cfg.dataplane.exempt_qfi = vec![5, 5, 9];
    let gc = cfg.dataplane(4);
    assert_eq!((gc.host_cap.rate_per_sec(), gc.host_cap.burst()), (2_000, 100));
    assert_eq!((gc.new_gnb.rate_per_sec(), gc.new_gnb.burst()), (20, 10));
    assert_eq!((gc.unknown_new_device.rate_per_sec(), gc.unknown_new_device.burst()), (200, 50));
    assert_eq!(gc.exempt_qfi, (1 << 5) | (1 << 9));
}

#[test]
fn the_n3_addresses_and_framed_routes_reach_their_tables() {
    let mut cfg = Config::default();
    cfg.guard.n3_addrs = vec![ip("192.0.2.1"), ip("2001:db8::1")];
    cfg.dataplane.non_ip_local_addrs = vec![ip("2001:db8::1")];
    cfg.dataplane.framed_routes = vec![prefix("10.99.0.0/24"), prefix("2001:db8:99::/48")];
    assert_eq!(cfg.local_addrs(), vec![(ip("192.0.2.1"), 0), (ip("2001:db8::1"), LOCAL_FLAG_NON_IP)]);
    assert_eq!(cfg.framed_routes(), vec![(ip("10.99.0.0"), 24), (ip("2001:db8:99::"), 48)]);
    let gc = cfg.dataplane(1);
    assert_eq!((gc.local_addrs, gc.framed_routes), (2, 2));
}

fn member_group(name: &str, id: u32) -> GroupSection {
    GroupSection {
        name: name.to_owned(),
        id,
        teids: vec![TeidRange { first: 0x100, last: 0x1ff }],
        ue_prefixes: vec![prefix("10.46.0.0/24")],
        expected_pps: None,
        expected_period: None,
        expected_burst: None,
        servers: vec![],
        exempt: false,
    }
}

/// A device is a member by its TEID or by its UE address, either one; the first group that
/// holds it is its group.
#[test]
fn group_membership_is_by_teid_or_ue_address_first_match() {
    let ue_in = L3Addr::v4([10, 46, 0, 7]);
    let ue_out = L3Addr::v4([10, 47, 0, 7]);
    let g = member_group("meters", 1);
    assert!(g.contains(0x150, &ue_out), "by TEID alone");
    assert!(g.contains(0x999, &ue_in), "by UE address alone");
    assert!(!g.contains(0x999, &ue_out), "by neither");
    let mut other = member_group("trackers", 2);
    other.teids = vec![TeidRange { first: 0x900, last: 0x9ff }];
    other.ue_prefixes = vec![];
    let cfg = Config { groups: vec![other, g], ..Config::default() };
    assert_eq!(cfg.group_of(0x950, &ue_in), Some(0), "the first group holding it, by TEID");
    assert_eq!(cfg.group_of(0x150, &ue_out), Some(1));
    assert_eq!(cfg.group_of(0xa99, &ue_in), Some(1));
    assert_eq!(cfg.group_of(0xa99, &ue_out), None);
}

/// A group's server list is checked only when it has one and the destination is known.
#[test]
fn a_group_allows_its_servers_any_destination_without_a_list_and_an_unknown_one() {
    let mut g = member_group("meters", 1);
    let server = L3Addr::v4([198, 51, 100, 10]);
    let elsewhere = L3Addr::v4([203, 0, 113, 5]);
    assert!(g.server_allowed(&elsewhere), "no list: not checked");
    g.servers = vec![prefix("198.51.100.0/24")];
    assert!(g.server_allowed(&server));
    assert!(!g.server_allowed(&elsewhere));
    assert!(g.server_allowed(&L3Addr::NONE), "an unknown destination is not a deviation");
}

#[test]
fn the_fleet_bounds_its_summaries_by_cells_and_times_them_by_interval() {
    let c = FleetCells { max_cells: 10, interval: Dur::secs(2), ..FleetCells::default() };
    assert_eq!(c.max_value_bytes(), (SUMMARY_HEADER_BYTES + 10 * CELL_ENTRY_BYTES) as usize);
    assert_eq!(c.stale_after(), std::time::Duration::from_secs(6));
}

#[test]
fn a_member_is_named_by_its_setting_else_by_a_key_safe_host_name() {
    let mut f: FleetSection =
        toml::from_str("endpoints = [\"http://127.0.0.1:2379\"]\nname = \"f\"\ninsecure = true\n").expect("a section");
    f.member = Some("upf-7".into());
    assert_eq!(f.member_name(), "upf-7");
    f.member = None;
    let host = f.member_name();
    assert!(valid_name(&host), "the host name as a key segment: {host:?}");
}
