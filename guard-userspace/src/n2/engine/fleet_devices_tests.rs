//! Device back-off lists and 5G-S-TMSI pins from the fleet (fleet_devices.rs): a listed device
//! is backed off here only once it shows up here, a pin at once; neither is evidence, neither is
//! republished; each goes with its expiry.

use super::fleet_tests::{cell, dev, settings, Host, SEC};
use super::*;

fn listed(member: &str, expires_ns: u64) -> FleetDevice {
    FleetDevice { t3346_s: 1200, expires_ns, origin: FleetOrigin::List { member: member.to_owned() } }
}

/// Quiet background in cells 0..3 for `from..to` seconds (a fresh device each time): no storm.
fn quiet(h: &mut Host, e: &mut N2Engine, from: u64, to: u64, mut each: impl FnMut(u64, &mut Host)) -> Vec<Response> {
    let mut out = Vec::new();
    for sec in from..to {
        h.attempt(dev(3_000_000 + sec as u32), sec % 3);
        each(sec, h);
        out.extend(h.tick(e, (sec + 1) * SEC).responses);
    }
    out
}

#[test]
fn a_listed_device_is_backed_off_here_only_once_it_shows_up_and_goes_with_its_expiry() {
    let mut e = N2Engine::new(&settings());
    let mut h = Host::default();
    assert!(quiet(&mut h, &mut e, 0, 60, |_, _| {}).is_empty());
    let moved = dev(7);
    e.set_fleet_backoff([(moved, listed("amf-1", 200 * SEC))].into_iter().collect());
    let out = quiet(&mut h, &mut e, 60, 90, |_, _| {});
    assert!(out.is_empty(), "a listed device that never registers here is not advised: {out:?}");
    // The storm moved it here: its first InitialUEMessage here puts it on this member's list.
    let out = quiet(&mut h, &mut e, 90, 91, |_, h| h.attempt(moved, 0));
    assert_eq!(out.len(), 1, "{out:?}");
    let r = &out[0];
    assert_eq!((r.action, r.level, r.reason), (ResponseAction::Advise, LEVEL_NONE, "fleet_devices"));
    assert_eq!(r.devices.len(), 1);
    let d = &r.devices[0];
    assert_eq!(d.id, n2_device_str(&moved));
    assert_eq!(d.fleet, Some(FleetOrigin::List { member: "amf-1".into() }));
    assert_eq!((d.attempts, d.t3346_s, d.cell.as_str()), (1, 1200, cell_str(&cell(0)).as_str()));
    assert_eq!(e.level(), LEVEL_NONE, "a fleet entry is no evidence: no level is raised");
    assert!(e.backoff_for_fleet().is_empty(), "an entry taken from the fleet is never republished");
    // It keeps registering here every 10 s (the device window is 60 s): refreshed while its
    // list entry holds, cleared when the entry expires, and not advised after, though it goes on.
    let out = quiet(&mut h, &mut e, 91, 199, |sec, h| {
        if sec % 10 == 0 {
            h.attempt(moved, 0)
        }
    });
    assert!(
        !out.is_empty() && out.iter().all(|r| r.action == ResponseAction::Advise && r.reason == "refresh"),
        "{out:?}"
    );
    let out = quiet(&mut h, &mut e, 199, 260, |sec, h| {
        if sec % 10 == 0 {
            h.attempt(moved, 0)
        }
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].action, out[0].reason, out[0].devices.len()), (ResponseAction::Clear, "fleet_devices", 0));
    assert_eq!(out[0].at_ns, 200 * SEC, "at the entry's expiry");
}

#[test]
fn a_listed_device_leaves_the_list_here_when_it_stops_registering_here() {
    let s = settings();
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    let moved = dev(7);
    e.set_fleet_backoff([(moved, listed("amf-1", 10_000 * SEC))].into_iter().collect());
    let out = quiet(&mut h, &mut e, 0, 300, |sec, h| {
        if sec == 100 {
            h.attempt(moved, 0)
        }
    });
    let (first, last) = (out.first().expect("advised"), out.last().expect("cleared"));
    assert_eq!((first.action, first.at_ns), (ResponseAction::Advise, 101 * SEC));
    assert_eq!(last.action, ResponseAction::Clear);
    assert_eq!(last.at_ns, (101 + s.device_window_s as u64) * SEC, "once its attempt is out of the device window");
}

#[test]
fn a_pinned_device_is_advised_at_once_and_the_t3346_is_capped_here() {
    let s = settings();
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    assert!(quiet(&mut h, &mut e, 0, 30, |_, _| {}).is_empty());
    let pinned = N2DeviceKey::five_g_s_tmsi(341, 42, 0xdead_beef);
    let pin = FleetDevice {
        t3346_s: 86_400,
        expires_ns: 100 * SEC,
        origin: FleetOrigin::Pin { author: "root on ops".into() },
    };
    e.set_fleet_backoff([(pinned, pin)].into_iter().collect());
    let out = quiet(&mut h, &mut e, 30, 31, |_, _| {});
    assert_eq!(out.len(), 1, "an operator's pin is on the hook's list at the next tick, seen here or not");
    let d = &out[0].devices[0];
    assert_eq!(d.id, "5g-s-tmsi:341:42:0xdeadbeef");
    assert_eq!((d.attempts, d.t3346_s), (0, s.t3346_max_s), "T3346 capped at this member's t3346_max_s");
    assert!(matches!(d.fleet, Some(FleetOrigin::Pin { .. })));
}

#[test]
fn own_repeaters_are_published_fleet_entries_are_not_and_a_forged_list_raises_no_level() {
    let s = settings();
    // A local storm: 20 devices in cell 0, each every 2 s (10/s, far above the 3/s floor).
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    quiet(&mut h, &mut e, 0, 60, |_, _| {});
    let foreign = dev(900);
    e.set_fleet_backoff([(foreign, listed("amf-2", 10_000 * SEC))].into_iter().collect());
    let out = quiet(&mut h, &mut e, 60, 300, |sec, h| {
        for i in 0..20u32 {
            if (u64::from(i) + sec) % 2 == 0 {
                h.attempt(dev(i), 0);
            }
        }
        if sec % 2 == 0 {
            h.attempt(foreign, 0);
        }
    });
    assert!(e.level() >= LEVEL_DEVICES, "the local storm is answered");
    let own = e.backoff_for_fleet();
    assert_eq!(own.len(), 21, "its 20 repeaters and the foreign one, which repeats here too: {own:?}");
    assert!(own.iter().all(|(k, _)| k.kind == N2_DEV_KIND_5G_S_TMSI), "{own:?}");
    // The foreign device is this member's own repeater now: listed once, as its own evidence
    // (no fleet mark), and published as such.
    let last = out.last().expect("responses");
    let marks: Vec<_> = last.devices.iter().filter(|d| d.id == n2_device_str(&foreign)).collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(marks[0].fleet, None);

    // A forged list of 500 devices that all register here once, in a quiet cell: each is
    // advised (level 0, device back-off only), never barring, never overload, never a level.
    let mut e = N2Engine::new(&s);
    let mut h = Host::default();
    quiet(&mut h, &mut e, 0, 60, |_, _| {});
    let forged: FleetBackoff = (0..500u32).map(|i| (dev(10_000 + i), listed("evil", 10_000 * SEC))).collect();
    e.set_fleet_backoff(forged);
    let out = quiet(&mut h, &mut e, 60, 70, |sec, h| {
        for i in 0..50u32 {
            h.attempt(dev(10_000 + (sec as u32 - 60) * 50 + i), 1);
        }
    });
    assert!(!out.is_empty());
    for r in &out {
        assert_eq!(r.level, LEVEL_NONE, "{r:?}");
        assert!(r.access_barring.is_empty() && r.overload.is_none());
        assert!(r.devices.len() <= s.max_devices_reported);
    }
    assert!(e.backoff_for_fleet().is_empty());
}
