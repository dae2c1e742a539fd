//! What the record's narrowings (docs/controller.md, "Memory") must keep: membership at a reload
//! without a kept UE address, the cohort's destination test on an event without a kept address
//! for every device, and the eviction order across the wrap of the 32-bit millisecond times.

use guard_common::abi::{DeviceKey, Event, L3Addr, EVENT_DEVICE_OVER_LIMIT};

use super::{DeviceSample, Engine};
use crate::config::{Config, GroupSection};

const SEC: u64 = 1_000_000_000;

fn group(ue_prefixes: &[&str], servers: &[&str]) -> GroupSection {
    GroupSection {
        name: "meters".into(),
        id: 1,
        teids: vec![],
        ue_prefixes: ue_prefixes.iter().map(|p| p.parse().expect("a prefix")).collect(),
        expected_pps: Some(1.0),
        expected_period: None,
        expected_burst: None,
        servers: servers.iter().map(|p| p.parse().expect("a prefix")).collect(),
        exempt: false,
    }
}

fn sample(key: DeviceKey, packets: u64, ue: L3Addr, dst: L3Addr) -> DeviceSample {
    DeviceSample {
        key,
        cell: L3Addr::v4([192, 0, 2, 1]),
        packets,
        inner_dst: dst,
        ue_addr: ue,
        teid: 7,
        ..DeviceSample::default()
    }
}

/// A reload that adds a group by UE prefix makes a TEID-keyed device a member at once, from the
/// UE address the map holds (the engine keeps none); a device the map no longer has keeps the
/// membership its TEID gives (none here).
#[test]
fn a_reload_finds_members_by_the_ue_address_the_map_holds() {
    let mut engine = Engine::new(&Config::default());
    let (a, gone) = (DeviceKey::teid(7), DeviceKey::teid(8));
    let ue = L3Addr::v4([10, 45, 0, 9]);
    let dst = L3Addr::v4([198, 51, 100, 1]);
    let _ = engine.tick(SEC, &[sample(a, 1, ue, dst), sample(gone, 1, ue, dst)], &[]);
    assert_eq!(engine.tracks.get(&a).and_then(|t| t.group()), None);
    let mut cfg = Config { groups: vec![group(&["10.45.0.0/16"], &["203.0.113.0/24"])], ..Config::default() };
    engine.reconfigure(&cfg, |f| f(&a, &ue, &dst));
    let t = engine.tracks.get(&a).expect("tracked");
    assert_eq!(t.group(), Some(0), "a member by its UE address");
    assert_eq!(engine.dst_ids.key(t.dst), dst, "its destination kept: the group checks servers");
    assert_eq!(engine.tracks.get(&gone).and_then(|t| t.group()), None, "not in the map: by TEID only");
    // A reload that drops the servers lets the destination go.
    cfg.groups = vec![group(&["10.45.0.0/16"], &[])];
    engine.reconfigure(&cfg, |f| f(&a, &ue, &dst));
    assert_eq!(engine.tracks.get(&a).map(|t| t.dst), Some(0));
    assert_eq!(engine.dst_ids.held(), 0);
}

/// The destination test of an event (which carries none) uses the destination of the member's
/// last sample, kept only for members of a group that checks servers: a device outside such a
/// group keeps none.
#[test]
fn an_event_is_judged_on_the_kept_destination_of_a_checked_member_only() {
    let cfg = Config { groups: vec![group(&["10.45.0.0/16"], &["203.0.113.0/24"])], ..Config::default() };
    let mut engine = Engine::new(&cfg);
    let (member, other) = (DeviceKey::teid(7), DeviceKey::teid(8));
    let outside = L3Addr::v4([198, 51, 100, 1]);
    let _ = engine.tick(
        SEC,
        &[sample(member, 1, L3Addr::v4([10, 45, 0, 9]), outside), sample(other, 1, L3Addr::v4([10, 9, 0, 9]), outside)],
        &[],
    );
    assert_eq!(engine.dst_ids.held(), 1, "the member's destination only");
    // The first sample only primed the counters; an event with packets is the first window.
    let ev = Event {
        ts_ns: 2 * SEC,
        kind: EVENT_DEVICE_OVER_LIMIT,
        device: member,
        cell: L3Addr::v4([192, 0, 2, 1]),
        packets: 5,
        ..Event::default()
    };
    let _ = engine.tick(2 * SEC, &[], &[ev]);
    let t = engine.tracks.get(&member).expect("tracked");
    assert_eq!(t.deviation & super::track::DEV_DESTINATION, super::track::DEV_DESTINATION, "{t:?}");
    assert!(t.deviating(2 * SEC, SEC));
}

/// The least recently active device is evicted first also after the 32-bit millisecond clock
/// wrapped (49.7 days) while it stayed idle: full passes age its times out (`Track::age_out`),
/// so it is not taken for a device active a moment ago.
#[test]
fn eviction_order_survives_the_wrap_of_the_times() {
    let mut cfg = Config::default();
    cfg.guard.max_devices = 2;
    let mut engine = Engine::new(&cfg);
    let (idle, busy, new) = (DeviceKey::teid(1), DeviceKey::teid(2), DeviceKey::teid(3));
    let none = L3Addr::NONE;
    let day = 86_400 * SEC;
    let t0 = 1000 * SEC;
    let _ = engine.tick(t0, &[sample(idle, 1, none, none), sample(busy, 1, none, none)], &[]);
    // The busy device sends every 10 days; the idle one never again. 50 days on (past the wrap
    // of 2^32 ms), a new device needs room.
    for d in 1..=5u64 {
        let _ = engine.tick(t0 + d * 10 * day - day, &[sample(busy, 1 + d, none, none)], &[]);
    }
    let _ = engine.tick(t0 + 50 * day + SEC, &[sample(new, 1, none, none)], &[]);
    assert!(engine.tracks.get(&idle).is_none(), "the idle device goes");
    assert!(engine.tracks.get(&busy).is_some() && engine.tracks.get(&new).is_some());
}
