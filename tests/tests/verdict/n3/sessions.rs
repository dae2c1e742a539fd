//! Device identity and anti-spoofing that fit real PDU sessions (issue 17), through the real
//! `guard_n3` by BPF_PROG_TEST_RUN, with G-PDUs crafted by scapy and checked by tshark
//! (`labkit::sessions`), an encoder independent of the guard's parser.
//!
//! - Non-IP PDU sessions (TS 23.501 §5.6.10): an Ethernet frame or Unstructured octets as the
//!   T-PDU, even one whose first nibble is 4 or 6, is counted per device as non-IP, never dropped
//!   as malformed, and never feeds anti-spoofing; a TEID range configured as non-IP is non-IP
//!   whatever its T-PDU looks like; the device's stage still applies.
//! - F-TEID identity (TS 29.281 §5.1, TS 29.244 §8.2.3): two sessions with one TEID on two of the
//!   host's N3 addresses are two devices: one's stage, counters and binding never land on the
//!   other; pins of the TEID-only layout (schema 4) are refused, saying why.
//! - Anti-spoofing per family (TS 23.501 §5.8.2): an IPv6 session starts with a Router
//!   Solicitation from fe80:: and rotates SLAAC / privacy addresses inside its /64, an IPv4v6
//!   session carries both families, framed routes carry other sources: none is a spoof, forged
//!   sources are; a dropped packet never teaches a binding, and a forged first packet's binding is
//!   replaced once it goes unmatched for `antispoof_rebind`.

use guard_common::{
    abi::{local_home_slot, DeviceKey, GuardConfig, L3Addr, TeidSpan, STAGE_QUARANTINE, STAT_NON_IP},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::stage_entry;
use labkit::sessions::{scapy_gpdus, SessionFrame, Tpdu};

use super::{enforce_all, load};

const SEC: u64 = 1_000_000_000;
const GNB: &str = "10.200.0.11";
const UPF_A: &str = "10.200.0.1";
const UPF_B: &str = "10.200.0.2";
const UPF_C: &str = "10.200.0.3";
const UPF_V6: &str = "fd00:200::1";

fn frame(teid: u32, tpdu: Tpdu) -> SessionFrame {
    SessionFrame { gnb: GNB, local: UPF_A, teid, tpdu }
}

fn frame_to(local: &'static str, teid: u32, tpdu: Tpdu) -> SessionFrame {
    let gnb = if local.contains(':') { "fd00:200::11" } else { GNB };
    SessionFrame { gnb, local, teid, tpdu }
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn frames(specs: &[SessionFrame]) -> Vec<Vec<u8>> {
    scapy_gpdus(specs).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn non_ip_sessions_are_counted_never_malformed_never_bound() {
    assert_root("verdict::n3::sessions::non_ip_sessions_are_counted_never_malformed_never_bound");
    let mut g = load(&enforce_all());
    // An Ethernet session whose destination MACs start 0x45 and 0x60 (read as IP by the first
    // nibble), Unstructured sessions starting 0x45 / 0x60 with lengths that are no IP packet's,
    // and three octets starting 0x45 (the old `inner_truncated`, dropped as malformed).
    let eth = 0x1700;
    let raw = 0x1701;
    let mut unstructured_v4 = vec![0x45, 0x00, 0x00, 0x10];
    unstructured_v4.extend_from_slice(&[0xa5; 36]);
    let mut unstructured_v6 = vec![0x60, 0, 0, 0, 0, 0x08];
    unstructured_v6.extend_from_slice(&[0x5a; 60]);
    let f = frames(&[
        frame(eth, Tpdu::Ethernet("45:00:00:54:00:01")),
        frame(eth, Tpdu::Ethernet("60:00:00:00:00:08")),
        frame(raw, Tpdu::Raw(unstructured_v4)),
        frame(raw, Tpdu::Raw(unstructured_v6)),
        frame(raw, Tpdu::Raw(vec![0x45, 0x00, 0x00])),
    ]);
    for (i, fr) in f.iter().enumerate() {
        let d = g.expect(&format!("non-IP G-PDU {i}"), fr, Verdict::PassGpdu);
        assert!(d.moved_malformed().is_empty(), "frame {i} counted malformed: {:?}", d.moved_malformed());
        assert!(d.moved_shadow().is_empty(), "frame {i}: {:?}", d.moved_shadow());
        assert_eq!(d.stat(STAT_NON_IP), 1, "frame {i} counted non-IP host-wide");
    }
    for (teid, n) in [(eth, 2), (raw, 3)] {
        let d = g.teid(teid).unwrap_or_else(|| panic!("device {teid:#x}"));
        assert_eq!((d.packets(), d.non_ip, d.spoofed), (n, n, 0), "{teid:#x}: {d:?}");
        assert_eq!(d.bind_flags, 0, "{teid:#x}: a non-IP T-PDU bound an address");
    }
    // An IPv4 session first: its binding holds, and a later non-IP-looking T-PDU is not a spoof.
    let ip = 0x1702;
    let f = frames(&[frame(ip, Tpdu::V4("10.45.0.2", "192.0.2.10")), frame(ip, Tpdu::Raw(vec![0x45; 30]))]);
    g.expect("IPv4 G-PDU", &f[0], Verdict::PassGpdu);
    let d = g.expect("then a T-PDU that is not an IP packet of its length", &f[1], Verdict::PassGpdu);
    assert_eq!(d.stat(STAT_NON_IP), 1);
    let d = g.teid(ip).expect("device");
    assert_eq!((d.packets(), d.non_ip, d.spoofed), (2, 1, 0));
    // The stage applies to non-IP sessions like any other.
    g.set_stage(&DeviceKey::teid(raw), &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    let f = frames(&[frame(raw, Tpdu::Raw(vec![0x45, 0x00, 0x00]))]);
    g.expect("quarantined non-IP session", &f[0], Verdict::DropQuarantine);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_teid_range_configured_non_ip_is_never_read_as_ip() {
    assert_root("verdict::n3::sessions::a_teid_range_configured_non_ip_is_never_read_as_ip");
    let mut cfg = enforce_all();
    cfg.non_ip_teid[0] = TeidSpan { first: 0xf000_0000, last: 0xffff_ffff };
    cfg.non_ip_ranges = 1;
    let mut g = load(&cfg);
    // An Unstructured session whose octets happen to form a valid IPv4 packet from two sources:
    // in the configured range, neither is bound nor a spoof.
    let t = 0xf000_0042;
    let f = frames(&[frame(t, Tpdu::V4("10.45.0.2", "192.0.2.10")), frame(t, Tpdu::V4("10.66.6.6", "192.0.2.10"))]);
    for fr in &f {
        let d = g.expect("G-PDU of a non-IP TEID", fr, Verdict::PassGpdu);
        assert_eq!(d.stat(STAT_NON_IP), 1);
    }
    let d = g.teid(t).expect("device");
    assert_eq!((d.packets(), d.non_ip, d.spoofed, d.bind_flags), (2, 2, 0, 0));
    // Outside the range the same frames are IP: the second source is a spoof.
    let t = 0x0000_0042;
    let f = frames(&[frame(t, Tpdu::V4("10.45.0.2", "192.0.2.10")), frame(t, Tpdu::V4("10.66.6.6", "192.0.2.10"))]);
    g.expect("IP session, first packet", &f[0], Verdict::PassGpdu);
    g.expect("IP session, another source", &f[1], Verdict::DropSpoof);
    assert_eq!(g.teid(t).expect("device").non_ip, 0);
}

/// A host that listed an N3 address and then lists none: `N3_LOCAL` keeps the slot (so the
/// address gets its index back if listed again), but the data plane no longer reads the table and
/// keys every session on index 0. The table the CLI names devices by (`N3Maps::local_table`) is
/// the data plane's: empty, so `guard device pin --teid` keys the device the packets are counted on.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn with_no_address_listed_the_cli_keys_sessions_as_the_data_plane_does() {
    assert_root("verdict::n3::sessions::with_no_address_listed_the_cli_keys_sessions_as_the_data_plane_does");
    let mut g = load(&enforce_all());
    let table = g.maps.sync_local_addrs(&[(ip(UPF_A), 0)]).unwrap_or_else(|e| panic!("{e:#}"));
    let ia = table.index_of(ip(UPF_A)).expect("A listed");
    assert_eq!(g.maps.local_table().expect("table").index_of(ip(UPF_A)), Some(ia));
    g.maps.sync_local_addrs(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(g.maps.config().expect("config").local_addrs, 0);
    assert!(g.maps.local_table().expect("table").listed().is_empty(), "no address is listed for the data plane");
    let teid = 0x0000_4343;
    let f = frames(&[frame_to(UPF_A, teid, Tpdu::V4("10.45.0.2", "192.0.2.10"))]);
    g.expect("a session on A", &f[0], Verdict::PassGpdu);
    assert!(g.device(&DeviceKey::fteid(0, teid)).is_some(), "counted on index 0");
    assert!(g.device(&DeviceKey::fteid(ia, teid)).is_none(), "not on A's old index");
    // Listed again: A gets its index back.
    let again = g.maps.sync_local_addrs(&[(ip(UPF_A), 0)]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(again.index_of(ip(UPF_A)), Some(ia));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn one_teid_on_two_local_addresses_is_two_devices() {
    assert_root("verdict::n3::sessions::one_teid_on_two_local_addresses_is_two_devices");
    let mut g = load(&enforce_all());
    let table =
        g.maps.sync_local_addrs(&[(ip(UPF_A), 0), (ip(UPF_B), 0), (ip(UPF_V6), 0)]).unwrap_or_else(|e| panic!("{e:#}"));
    let (ia, ib, i6) = (
        table.index_of(ip(UPF_A)).expect("A listed"),
        table.index_of(ip(UPF_B)).expect("B listed"),
        table.index_of(ip(UPF_V6)).expect("v6 listed"),
    );
    assert!(ia != ib && ib != i6 && ia != i6 && ia != 0 && ib != 0 && i6 != 0);
    // Two UPF instances allocated the same TEID to two sessions of two UEs.
    let teid = 0x0000_4242;
    let f = frames(&[
        frame_to(UPF_A, teid, Tpdu::V4("10.45.0.2", "192.0.2.10")),
        frame_to(UPF_B, teid, Tpdu::V4("10.46.0.9", "192.0.2.10")),
        frame_to(UPF_C, teid, Tpdu::V4("10.47.0.1", "192.0.2.10")),
        frame_to(UPF_V6, teid, Tpdu::V4("10.48.0.1", "192.0.2.10")),
    ]);
    for _ in 0..3 {
        for (i, fr) in f.iter().enumerate() {
            g.expect(&format!("session {i}"), fr, Verdict::PassGpdu);
        }
    }
    // Four devices, one per F-TEID (the unlisted address C is index 0), none a spoof of another.
    let key = |i| DeviceKey::fteid(i, teid);
    for (i, who) in [(ia, "A"), (ib, "B"), (0, "C (unlisted)"), (i6, "IPv6 address")] {
        let d = g.device(&key(i)).unwrap_or_else(|| panic!("no device for the session on {who}"));
        assert_eq!((d.packets(), d.spoofed, d.dropped()), (3, 0, 0), "session on {who}: {d:?}");
    }
    assert_eq!(g.device_count(), 4);
    // An unlisted address whose probe of the address table starts at A's slot meets A's entry
    // first and must not take it for its own (the whole address is compared): its session is
    // index 0's, C's (whose UE source it sends), not A's, where that source would be a spoof.
    let a4: std::net::Ipv4Addr = UPF_A.parse().expect("an IPv4 address");
    let home = |a: std::net::Ipv4Addr| local_home_slot(&L3Addr::v4(a.octets()));
    let d = (1..1_000_000u32)
        .map(|i| std::net::Ipv4Addr::from(u32::from(a4) ^ (i << 8)))
        .find(|d| home(*d) == home(a4) && ![UPF_B, UPF_C].contains(&d.to_string().as_str()))
        .expect("an address sharing A's home slot");
    let d: &'static str = Box::leak(d.to_string().into_boxed_str());
    let fd = frames(&[frame_to(d, teid, Tpdu::V4("10.47.0.1", "192.0.2.10"))]);
    g.expect("an unlisted address probing from A's slot", &fd[0], Verdict::PassGpdu);
    assert_eq!(g.device(&key(ia)).expect("A").packets(), 3, "A's session counted another address's G-PDU");
    assert_eq!(g.device(&key(0)).expect("C").packets(), 4);
    // A's session is quarantined: only A's packets drop, before and after the stage cache fills.
    g.set_stage(&key(ia), &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    for round in 0..4 {
        g.expect(&format!("round {round}: A quarantined"), &f[0], Verdict::DropQuarantine);
        g.expect(&format!("round {round}: B, same TEID"), &f[1], Verdict::PassGpdu);
        g.expect(&format!("round {round}: C, same TEID"), &f[2], Verdict::PassGpdu);
        g.expect(&format!("round {round}: IPv6 outer, same TEID"), &f[3], Verdict::PassGpdu);
    }
    assert_eq!(g.device(&key(ib)).expect("B").dropped(), 0);
    assert_eq!(g.device(&key(ia)).expect("A").dropped(), 4);
    // The TEID-only key (index 0) is C's session, not A's or B's: a stage there touches only C.
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    g.expect("C quarantined by its own key", &f[2], Verdict::DropQuarantine);
    g.expect("B still passes", &f[1], Verdict::PassGpdu);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_local_address_of_non_ip_sessions_is_never_read_as_ip() {
    assert_root("verdict::n3::sessions::a_local_address_of_non_ip_sessions_is_never_read_as_ip");
    let mut g = load(&enforce_all());
    g.maps
        .sync_local_addrs(&[(ip(UPF_A), 0), (ip(UPF_B), guard_common::abi::LOCAL_FLAG_NON_IP)])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let f = frames(&[
        frame_to(UPF_B, 0x77, Tpdu::V4("10.45.0.2", "192.0.2.10")),
        frame_to(UPF_B, 0x77, Tpdu::V4("10.66.6.6", "192.0.2.10")),
        frame_to(UPF_A, 0x77, Tpdu::V4("10.45.0.2", "192.0.2.10")),
        frame_to(UPF_A, 0x77, Tpdu::V4("10.66.6.6", "192.0.2.10")),
    ]);
    g.expect("non-IP address, first", &f[0], Verdict::PassGpdu);
    g.expect("non-IP address, another 'source'", &f[1], Verdict::PassGpdu);
    g.expect("IP address, first", &f[2], Verdict::PassGpdu);
    g.expect("IP address, another source", &f[3], Verdict::DropSpoof);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_the_teid_only_schema_are_refused_saying_why() {
    assert_root("verdict::n3::sessions::pins_of_the_teid_only_schema_are_refused_saying_why");
    let mut g = load(&enforce_all());
    // Pins as the previous release (schema 4) left them.
    let mut old = guard_common::abi::Meta::current(guard_common::abi::META_PROG_N3);
    old.schema_version = 4;
    g.maps.write_meta(&old).expect("write META");
    let pins = g.scope.pins.clone();
    let err = match guard::n3::load::load(&pins, labkit::bpf::TEST_MAX_DEVICES, &enforce_all()) {
        Ok(_) => panic!("pins of schema 4 were reused"),
        Err(e) => e.to_string(),
    };
    for want in ["schema version 4", "not migrated", "F-TEID", "guard detach --iface IF --purge"] {
        assert!(err.contains(want), "the refusal does not say {want:?}: {err}");
    }
}

fn v6_session(local: &'static str, teid: u32, src: &str) -> SessionFrame {
    frame_to(local, teid, Tpdu::V6(src.to_owned(), "2001:db8:ffff::10"))
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ipv6_slaac_privacy_and_ipv4v6_sessions_are_not_spoofs_forgeries_are() {
    assert_root("verdict::n3::sessions::ipv6_slaac_privacy_and_ipv4v6_sessions_are_not_spoofs_forgeries_are");
    let mut g = load(&GuardConfig { antispoof_v6_prefix: 64, ..enforce_all() });
    let (v6, dual) = (0x6000, 0x4600);
    let f = frames(&[
        // IPv6 session: Router Solicitation from its link-local address, then SLAAC, then
        // privacy addresses (RFC 8981) in the delegated /64, and a DAD-style unspecified source.
        frame(v6, Tpdu::RouterSolicitation("fe80::1c2d:3eff:fe4f:5a6b")),
        frame(v6, Tpdu::RouterSolicitation("::")),
        v6_session(UPF_A, v6, "2001:db8:45:7:1c2d:3eff:fe4f:5a6b"),
        v6_session(UPF_A, v6, "2001:db8:45:7:8a1f:22c4:9e01:7b3d"),
        v6_session(UPF_A, v6, "2001:db8:45:7:51e0:aa12:3c4d:ee01"),
        // IPv4v6 session: both families.
        frame(dual, Tpdu::V4("10.45.0.7", "192.0.2.10")),
        v6_session(UPF_A, dual, "2001:db8:45:9::7"),
        frame(dual, Tpdu::V4("10.45.0.7", "192.0.2.11")),
        v6_session(UPF_A, dual, "2001:db8:45:9:abcd::1"),
    ]);
    for (i, fr) in f.iter().enumerate() {
        let d = g.expect(&format!("benign G-PDU {i}"), fr, Verdict::PassGpdu);
        assert!(d.moved_shadow().is_empty());
    }
    for t in [v6, dual] {
        let d = g.teid(t).expect("device");
        assert_eq!((d.spoofed, d.dropped()), (0, 0), "{t:#x}: {d:?}");
    }
    assert_eq!(g.teid(v6).expect("v6").bind_flags, guard_common::abi::BIND_V6, "the RS bound nothing");
    assert_eq!(g.teid(dual).expect("dual").bind_flags, guard_common::abi::BIND_V4 | guard_common::abi::BIND_V6);
    // Forged sources: another /64, another IPv4 address on the dual-stack session.
    let forged = frames(&[
        v6_session(UPF_A, v6, "2001:db8:45:8::666"),
        frame(dual, Tpdu::V4("10.45.0.66", "192.0.2.10")),
        v6_session(UPF_A, dual, "2001:db8:99:9::7"),
    ]);
    for (i, fr) in forged.iter().enumerate() {
        g.expect(&format!("forged source {i}"), fr, Verdict::DropSpoof);
    }
    assert_eq!(g.teid(v6).expect("v6").spoofed, 1);
    assert_eq!(g.teid(dual).expect("dual").spoofed, 2);
    // The benign ones still pass afterwards: a forgery never moved a binding.
    for fr in &f[2..] {
        g.expect("benign again", fr, Verdict::PassGpdu);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn framed_routes_are_accepted_and_never_bound() {
    assert_root("verdict::n3::sessions::framed_routes_are_accepted_and_never_bound");
    let mut g = load(&enforce_all());
    g.maps.sync_framed_routes(&[(ip("10.99.0.0"), 16), (ip("2001:db8:f00::"), 48)]).unwrap_or_else(|e| panic!("{e:#}"));
    let t = 0x5100;
    // The first packet comes from behind the UE (a framed route): accepted, not learned; the
    // UE's own address is learned next; then both pass, and a source outside both is a spoof.
    let f = frames(&[
        frame(t, Tpdu::V4("10.99.3.4", "192.0.2.10")),
        frame(t, Tpdu::V4("10.45.0.2", "192.0.2.10")),
        frame(t, Tpdu::V4("10.99.200.1", "192.0.2.10")),
        v6_session(UPF_A, t, "2001:db8:f00:12::1"),
        frame(t, Tpdu::V4("10.45.0.2", "192.0.2.10")),
        frame(t, Tpdu::V4("10.98.0.1", "192.0.2.10")),
    ]);
    for (i, fr) in f[..5].iter().enumerate() {
        g.expect(&format!("framed / own source {i}"), fr, Verdict::PassGpdu);
    }
    g.expect("outside the framed routes", &f[5], Verdict::DropSpoof);
    let d = g.teid(t).expect("device");
    assert_eq!(d.bound_v4.to_ne_bytes(), [10, 45, 0, 2], "the framed source was not learned");
    assert_eq!(d.bind_flags & guard_common::abi::BIND_V6, 0, "a framed IPv6 source was not learned");
    // Routes removed: the framed sources are spoofs again.
    g.maps.sync_framed_routes(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    g.expect("no framed routes any more", &f[2], Verdict::DropSpoof);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_dropped_packet_never_binds_and_a_forged_binding_is_corrected() {
    assert_root("verdict::n3::sessions::a_dropped_packet_never_binds_and_a_forged_binding_is_corrected");
    let rebind_ns = 300_000_000;
    let mut g = load(&GuardConfig { antispoof_rebind_ns: rebind_ns, ..enforce_all() });
    let t = 0x5200;
    let f = frames(&[frame(t, Tpdu::V4("10.66.6.6", "192.0.2.10")), frame(t, Tpdu::V4("10.45.0.2", "192.0.2.10"))]);
    let (forged, real) = (&f[0], &f[1]);
    // The session is quarantined when the forged first packet arrives: it is dropped, and
    // teaches nothing.
    let key = DeviceKey::teid(t);
    g.set_stage(&key, &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    g.expect("forged first packet, quarantined", forged, Verdict::DropQuarantine);
    assert_eq!(g.teid(t).expect("device").bind_flags, 0, "a dropped packet bound its source");
    g.maps.clear_stage(&key).expect("clear the stage");
    g.expect("the real source binds", real, Verdict::PassGpdu);
    g.expect("the forger is now a spoof", forged, Verdict::DropSpoof);
    // A forged first packet that passed (a session the forger reached first) binds; the real
    // source is flagged until that binding has gone unmatched for `antispoof_rebind`, then
    // takes it over, and the forger is the spoof.
    let t2 = 0x5201;
    let f = frames(&[frame(t2, Tpdu::V4("10.66.6.6", "192.0.2.10")), frame(t2, Tpdu::V4("10.45.0.3", "192.0.2.10"))]);
    let (forged, real) = (&f[0], &f[1]);
    g.expect("forged first packet passes", forged, Verdict::PassGpdu);
    g.expect("real source within the rebind time", real, Verdict::DropSpoof);
    std::thread::sleep(std::time::Duration::from_nanos(rebind_ns + 50_000_000));
    g.expect("real source after the forged binding idled", real, Verdict::PassGpdu);
    g.expect("the forger is the spoof now", forged, Verdict::DropSpoof);
    let d = g.teid(t2).expect("device");
    assert_eq!((d.rebinds, d.bound_v4.to_ne_bytes()), (1, [10, 45, 0, 3]));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ue_addr_mode_keys_an_ipv6_ue_by_its_prefix() {
    assert_root("verdict::n3::sessions::ue_addr_mode_keys_an_ipv6_ue_by_its_prefix");
    use guard_common::abi::{Limit, DEVICE_KIND_UE_V6, KEY_MODE_UE_ADDR};
    // Two new devices per hour from this gNB: a key per /128 would spend it on the rotation.
    let cfg = GuardConfig {
        key_mode: KEY_MODE_UE_ADDR,
        antispoof_v6_prefix: 64,
        new_device: Limit::per_interval(3600 * SEC, 2),
        ..enforce_all()
    };
    let mut g = load(&cfg);
    let t = 0x6600;
    let rotation = [
        "2001:db8:45:7:1c2d:3eff:fe4f:5a6b",
        "2001:db8:45:7:8a1f:22c4:9e01:7b3d",
        "2001:db8:45:7:51e0:aa12:3c4d:ee01",
        "2001:db8:45:7:0:1:2:3",
        "2001:db8:45:7:ffff:eeee:dddd:cccc",
    ];
    let mut specs = vec![frame(t, Tpdu::RouterSolicitation("fe80::1c2d:3eff:fe4f:5a6b"))];
    specs.extend(rotation.iter().map(|a| v6_session(UPF_A, t, a)));
    let f = frames(&specs);
    for (i, fr) in f.iter().enumerate() {
        g.expect(&format!("G-PDU {i} of the rotating UE"), fr, Verdict::PassGpdu);
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&0x2001_0db8_0045_0007u64.to_be_bytes());
    let ue = DeviceKey { kind: DEVICE_KIND_UE_V6, id };
    let d = g.device(&ue).expect("the UE's /64 is one device");
    assert_eq!((d.packets(), d.spoofed), (rotation.len() as u64, 0));
    // The Router Solicitation from fe80:: is the session's (its F-TEID), not a UE device shared
    // by every UE's link-local address.
    assert_eq!(g.teid(t).expect("the RS keyed by the F-TEID").packets(), 1);
    assert_eq!(g.device_count(), 2);
    // A stage on the UE holds across its rotation.
    g.set_stage(&ue, &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    let next = frames(&[v6_session(UPF_A, t, "2001:db8:45:7:abab:cdcd:efef:1212")]);
    g.expect("a new privacy address of the quarantined UE", &next[0], Verdict::DropQuarantine);
    for fr in &f[1..] {
        g.expect("an earlier address", fr, Verdict::DropQuarantine);
    }
}

/// UE-address key mode binds a UE's address to the F-TEID it first came on: the same UE source on
/// another TEID, or on the same TEID at another of the host's N3 addresses, is a spoof (a forger
/// borrowing a real UE's address to get it staged or to ride its budget); the UE's own session
/// goes on passing. Caught by nothing else when the F-TEID's two halves are merged wrongly.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ue_addr_mode_binds_a_ue_to_its_f_teid() {
    assert_root("verdict::n3::sessions::ue_addr_mode_binds_a_ue_to_its_f_teid");
    use guard_common::abi::KEY_MODE_UE_ADDR;
    let mut g = load(&GuardConfig { key_mode: KEY_MODE_UE_ADDR, ..enforce_all() });
    g.maps.sync_local_addrs(&[(ip(UPF_A), 0), (ip(UPF_B), 0)]).unwrap_or_else(|e| panic!("{e:#}"));
    let ue = "10.45.0.7";
    let f = frames(&[
        frame_to(UPF_A, 0x7100, Tpdu::V4(ue, "192.0.2.10")),
        frame_to(UPF_A, 0x7200, Tpdu::V4(ue, "192.0.2.10")),
        frame_to(UPF_B, 0x7100, Tpdu::V4(ue, "192.0.2.10")),
    ]);
    g.expect("the UE on its session", &f[0], Verdict::PassGpdu);
    g.expect("the UE's address on another TEID", &f[1], Verdict::DropSpoof);
    g.expect("the UE's address on the same TEID at another N3 address", &f[2], Verdict::DropSpoof);
    g.expect("the UE on its session, still", &f[0], Verdict::PassGpdu);
    let d = g.device(&DeviceKey::ue(&guard_common::abi::L3Addr::v4([10, 45, 0, 7])).expect("v4")).expect("the UE");
    // The borrowed address's two packets were dropped as spoofs: counted as such, not as the UE's.
    assert_eq!((d.packets(), d.spoofed, d.dropped()), (2, 2, 0), "{d:?}");
}
