//! The compact device key (issue 19, schema 10: `guard_common::abi::device_id`): in UE-address
//! mode one map holds IPv6 UEs by prefix, IPv4 UEs and the F-TEIDs of sources that name no UE,
//! and no inner source an attacker picks lands on another device's record. The frames are
//! scapy's (`labkit::sessions`), the expected records named by `DeviceKey` (userspace's names,
//! built without the id's encoding); the map is read back through `N3Maps`, which decodes.

use std::collections::BTreeMap;

use guard_common::{
    abi::{DeviceKey, GuardConfig, L3Addr, DEVICE_KIND_UE_V6, KEY_MODE_UE_ADDR, STAGE_QUARANTINE},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::stage_entry;
use labkit::sessions::{scapy_gpdus, SessionFrame, Tpdu};

use super::{enforce_all, load};

const SEC: u64 = 1_000_000_000;

fn frame(teid: u32, tpdu: Tpdu) -> SessionFrame {
    SessionFrame { gnb: "10.200.0.11", local: "10.200.0.1", teid, tpdu }
}

fn v6(teid: u32, src: &str) -> SessionFrame {
    frame(teid, Tpdu::V6(src.to_owned(), "2001:db8:ffff::10"))
}

/// The key of an IPv6 UE's /64.
fn prefix_key(p: u64) -> DeviceKey {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&p.to_be_bytes());
    DeviceKey { kind: DEVICE_KIND_UE_V6, id }
}

fn ue_mode() -> GuardConfig {
    GuardConfig { key_mode: KEY_MODE_UE_ADDR, antispoof_v6_prefix: 64, ..enforce_all() }
}

/// Six sessions, each sending a different number of G-PDUs, each a record of its own: an IPv4
/// UE; an IPv6 source whose /64 spells that UE's address in the low 32 bits (where a key packed
/// without a kind would put it); an IPv6 link-local source spelling the IPv4 UE's id and one
/// spelling another session's F-TEID id (both keyed by their own F-TEIDs: link-local names no
/// UE); a Router Solicitation's session; a real IPv6 UE by its /64.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ue_addr_mode_gives_every_kind_of_source_its_own_record() {
    assert_root("verdict::n3::keys::ue_addr_mode_gives_every_kind_of_source_its_own_record");
    let mut g = load(&ue_mode());
    let sessions = [
        (frame(0x8100, Tpdu::V4("10.0.0.5", "192.0.2.10")), DeviceKey::ue(&L3Addr::v4([10, 0, 0, 5])).expect("v4")),
        (v6(0x8200, "0:0:a00:5::1"), prefix_key(0x0000_0000_0a00_0005)),
        // fe80:0400:0a00:0005::/64 is the IPv4 UE's id read as a prefix (`device_id::ue_v4`).
        (v6(0x8300, "fe80:400:a00:5::1"), DeviceKey::teid(0x8300)),
        (frame(0x8400, Tpdu::RouterSolicitation("fe80::1c2d:3eff:fe4f:5a6b")), DeviceKey::teid(0x8400)),
        // fe80:0100:0000:8400::/64 is the Router Solicitation's session's F-TEID id as a prefix.
        (v6(0x8500, "fe80:100:0:8400::1"), DeviceKey::teid(0x8500)),
        (v6(0x8600, "2001:db8:45:7::1"), prefix_key(0x2001_0db8_0045_0007)),
    ];
    let f =
        scapy_gpdus(&sessions.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>()).unwrap_or_else(|e| panic!("{e:#}"));
    for (i, fr) in f.iter().enumerate() {
        for n in 0..=i {
            g.expect(&format!("session {i}, G-PDU {n}"), fr, Verdict::PassGpdu);
        }
    }
    let got: BTreeMap<DeviceKey, u64> = g.maps.devices().into_iter().map(|(k, d)| (k, d.packets())).collect();
    let want: BTreeMap<DeviceKey, u64> = sessions.iter().enumerate().map(|(i, (_, k))| (*k, i as u64 + 1)).collect();
    assert_eq!(got, want, "one record per session, with its own packets");
}

/// A stage written on an IPv6 UE's /64 (through `N3Maps::set_stage`, which sets the prefix id's
/// `N3_STAGED` bit) applies from the first packet of an address of that prefix the guard has
/// never seen, and not to a neighbouring /64.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_staged_ipv6_prefix_is_found_from_its_first_packet() {
    assert_root("verdict::n3::keys::a_staged_ipv6_prefix_is_found_from_its_first_packet");
    let mut g = load(&ue_mode());
    let ue = prefix_key(0x2001_0db8_0045_0009);
    g.set_stage(&ue, &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));
    let f = scapy_gpdus(&[v6(0x8700, "2001:db8:45:9:1c2d:3eff:fe4f:5a6b"), v6(0x8800, "2001:db8:45:a::1")])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(g.device_count(), 0, "nothing seen before");
    g.expect("the staged /64's first packet", &f[0], Verdict::DropQuarantine);
    g.expect("the next /64's first packet", &f[1], Verdict::PassGpdu);
    assert_eq!(g.device(&ue).map(|d| (d.packets(), d.dropped())), Some((1, 1)), "the drop counted on the UE");
}
