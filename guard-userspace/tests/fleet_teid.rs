//! Fleet UE pins on a member keyed by TEID (`key_mode = "teid"`, a UPF's default), against a real
//! etcd and the real data plane: `guard run` attached to the lab's CORE veth, G-PDUs sent from the
//! RAN namespace, the bindings read back from the pinned maps (docs/fleet.md "UE pins on members
//! keyed by TEID"; the fixture is `fleet_fixture/mod.rs`).
//!
//! - a pin by UE address or prefix reaches the F-TEIDs whose learned anti-spoofing binding names
//!   it (within 2 s), audited with its author and the TEIDs; a session that binds later is reached
//!   too, audited as such; unpin and expiry clear them together; no TEID is ever written to etcd;
//! - a forger with the victim's address as the inner source on its own F-TEID: the pin on the
//!   forger reaches its F-TEID and not the victim's, and its spoofs change nothing;
//! - with anti-spoofing off (no binding learned) the member says it cannot apply the pin.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use guard_common::abi::{DeviceKey, DeviceState, StageEntry, BIND_V4, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};
use labkit::{send_frames, SendOpts};

mod fleet_fixture;
use fleet_fixture::Fixture;

/// `count` G-PDUs on `teid` from the lab's first gNB, with `src` as the inner (UE) source.
fn send(f: &Fixture, teid: u32, src: [u8; 4], count: u64) {
    let frame = f.lab.gpdu_v4(0, teid).inner_v4(Ipv4Addr::from(src), Ipv4Addr::new(192, 0, 2, 10)).build();
    let opts = SendOpts::new(count, Duration::from_secs(5)).pps(200);
    let sent = send_frames(&f.lab.ran, f.lab.ran_ifname(), &[frame], &opts).expect("send");
    assert_eq!(sent.sent, count, "{sent:?}");
}

/// The device of `teid` (whatever its N3 address index), if the data plane holds one.
fn device(f: &Fixture, teid: u32) -> Option<(DeviceKey, DeviceState)> {
    f.maps().devices().into_iter().find(|(k, _)| k.as_fteid().is_some_and(|(_, t)| t == teid))
}

fn bound_v4(f: &Fixture, teid: u32) -> Option<[u8; 4]> {
    device(f, teid).filter(|(_, d)| d.bind_flags & BIND_V4 != 0).map(|(_, d)| d.bound_v4.to_ne_bytes())
}

/// The live stage of `teid`'s device.
fn stage(f: &Fixture, teid: u32) -> Option<StageEntry> {
    let (k, _) = device(f, teid)?;
    f.maps().stage(&k).expect("stage read").filter(|e| e.expires_ns > guard::clock::monotonic_ns())
}

fn teids_of(line: &serde_json::Value) -> Vec<String> {
    line["detail"]["teids"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["device"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_ue_pin_reaches_the_teids_bound_to_the_ue_and_never_the_forgers_victim() {
    labkit::netns::assert_root("fleet_teid::a_ue_pin_reaches_the_teids_bound_to_the_ue_and_never_the_forgers_victim");
    let mut f = Fixture::new("u", "teid");
    f.start_guard();
    // Sessions, each bound by its first G-PDU (anti-spoofing in its default shadow mode):
    // UE .1 on 0x1001, the victim .2 on 0x1002, the forger .3 on 0x1003, a UE of 10.47.1.0/24
    // on 0x1004.
    let (ue, victim, forger, cohort) = ([10, 47, 0, 1], [10, 47, 0, 2], [10, 47, 0, 3], [10, 47, 1, 9]);
    for (teid, src) in [(0x1001, ue), (0x1002, victim), (0x1003, forger), (0x1004, cohort)] {
        send(&f, teid, src, 3);
    }
    // The forger now puts the victim's address on its own F-TEID: spoofs (passed in shadow mode).
    send(&f, 0x1003, victim, 20);
    let learned = f.wait_for(Duration::from_secs(3), |f| {
        [(0x1001, ue), (0x1002, victim), (0x1003, forger), (0x1004, cohort)]
            .iter()
            .all(|(t, a)| bound_v4(f, *t) == Some(*a))
    });
    assert!(learned, "bindings not learned as sent; log: {}", f.log());
    assert!(device(&f, 0x1003).is_some_and(|(_, d)| d.spoofed >= 20), "the forger's G-PDUs are counted as spoofs");

    // A pin on the forger's address: its F-TEID, never the victim's.
    let t0 = Instant::now();
    f.fleet(&["pin", "--ue", "10.47.0.3", "--stage", "quarantine", "--ttl", "10m", "--comment", "forger"]);
    assert!(f.wait_for(Duration::from_secs(2), |f| stage(f, 0x1003).is_some()), "not applied; log: {}", f.log());
    println!("guard fleet pin --ue -> the bound TEID staged: {:?}", t0.elapsed());
    assert_eq!(stage(&f, 0x1003).expect("stage").stage, STAGE_QUARANTINE);
    assert!(stage(&f, 0x1002).is_none(), "the victim's F-TEID was pinned by a pin on the forger");
    // The forger goes on with the victim's address: dropped (quarantined), no binding moves, the
    // victim stays free and the forger pinned.
    send(&f, 0x1003, victim, 20);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(bound_v4(&f, 0x1003), Some(forger));
    assert!(stage(&f, 0x1003).is_some() && stage(&f, 0x1002).is_none());
    let audit = f.audit();
    let line = audit
        .iter()
        .find(|r| r["action"] == "fleet-pin" && r["target"] == "ue 10.47.0.3")
        .unwrap_or_else(|| panic!("no audit line: {audit:?}"));
    assert_eq!(teids_of(line), vec!["teid:0x00001003".to_owned()], "{line}");
    assert_eq!(line["detail"]["teids"][0]["ue"], "ue:10.47.0.3", "{line}");
    assert!(line["detail"]["author"].as_str().is_some_and(|a| a.contains("on ops-host")), "{line}");
    assert!(line["detail"]["through"].as_str().is_some_and(|w| w.contains("bindings")), "{line}");

    // A pin on a UE, then a second session of that UE binds: reached at the controller's walk.
    f.fleet(&["pin", "--ue", "10.47.0.1", "--stage", "strict", "--ttl", "10m", "--comment", "ticket 4713"]);
    assert!(f.wait_for(Duration::from_secs(2), |f| stage(f, 0x1001).is_some()), "log: {}", f.log());
    assert_eq!(stage(&f, 0x1001).expect("stage").stage, STAGE_STRICT);
    let t1 = Instant::now();
    send(&f, 0x1005, ue, 3);
    assert!(
        f.wait_for(Duration::from_secs(4), |f| stage(f, 0x1005).is_some()),
        "a session bound after the pin was not reached; log: {}",
        f.log()
    );
    println!("a session bound after the pin staged {:?} after its first G-PDU", t1.elapsed());
    let reach = f.wait_for(Duration::from_secs(1), |f| {
        f.audit().iter().any(|r| {
            r["action"] == "fleet-pin-reach"
                && r["target"] == "ue 10.47.0.1"
                && teids_of(r) == vec!["teid:0x00001005".to_owned()]
                && r["detail"]["author"].as_str().is_some_and(|a| a.contains("on ops-host"))
                && r["detail"]["entries"] == 2
        })
    });
    assert!(reach, "no fleet-pin-reach line for 0x1005: {:?}", f.audit());

    // A prefix pin: the F-TEIDs bound inside it.
    f.fleet(&[
        "pin",
        "--ue-prefix",
        "10.47.1.0/24",
        "--stage",
        "shape",
        "--pps",
        "10",
        "--ttl",
        "10m",
        "--comment",
        "prefix",
    ]);
    assert!(f.wait_for(Duration::from_secs(2), |f| stage(f, 0x1004).is_some()), "log: {}", f.log());
    assert_eq!(stage(&f, 0x1004).expect("stage").stage, STAGE_SHAPE);
    assert!(f.wait_for(Duration::from_secs(2), |f| f.metric("overload_guard_fleet_pin_teids ") == Some(4.0)));
    assert_eq!(f.metric("overload_guard_fleet_pins_applied "), Some(3.0));
    assert_eq!(f.metric("overload_guard_fleet_pins_not_applied "), Some(0.0));

    // Unpin: both of the UE's sessions released together, the other pins' kept.
    f.fleet(&["unpin", "--ue", "10.47.0.1"]);
    let gone = f.wait_for(Duration::from_secs(2), |f| stage(f, 0x1001).is_none() && stage(f, 0x1005).is_none());
    assert!(gone, "unpin left a TEID staged");
    assert!(stage(&f, 0x1003).is_some() && stage(&f, 0x1004).is_some());
    assert!(f
        .audit()
        .iter()
        .any(|r| r["action"] == "fleet-unpin" && r["target"] == "ue 10.47.0.1" && r["detail"]["entries_cleared"] == 2));

    // Expiry: a short pin's TEID goes with it.
    send(&f, 0x1006, [10, 47, 0, 6], 3);
    assert!(f.wait_for(Duration::from_secs(3), |f| bound_v4(f, 0x1006).is_some()));
    f.fleet(&["pin", "--ue", "10.47.0.6", "--stage", "quarantine", "--ttl", "3s", "--comment", "short"]);
    assert!(f.wait_for(Duration::from_secs(2), |f| stage(f, 0x1006).is_some()));
    assert!(f.wait_for(Duration::from_secs(6), |f| stage(f, 0x1006).is_none()), "the TEID outlived its pin");
    assert!(f.wait_for(Duration::from_secs(2), |f| f
        .audit()
        .iter()
        .any(|r| r["action"] == "fleet-unpin" && r["target"] == "ue 10.47.0.6" && r["reason"] == "expired")));

    // TEIDs are host-local: nothing this member wrote or read in etcd names one.
    let all = f.etcdctl(&["get", "--prefix", &format!("/overload-guard/{}/", f.fleet)]);
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(all.status.success() && text.contains("pins/ue/10.47.0.3"), "{text}");
    for needle in ["0x00001", "teids", "/teid"] {
        assert!(!text.contains(needle), "`{needle}` in etcd: {text}");
    }
    assert!(f.guard_alive());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_member_keyed_by_teid_without_anti_spoofing_says_it_cannot_apply_a_ue_pin() {
    labkit::netns::assert_root(
        "fleet_teid::a_member_keyed_by_teid_without_anti_spoofing_says_it_cannot_apply_a_ue_pin",
    );
    let mut f = Fixture::with_config("t", "teid", "\n[dataplane.modes]\nantispoof = \"off\"\n");
    f.start_guard();
    send(&f, 0x2001, [10, 47, 0, 1], 3);
    assert!(f.wait_for(Duration::from_secs(3), |f| device(f, 0x2001).is_some()));
    f.fleet(&["pin", "--ue", "10.47.0.1", "--stage", "quarantine", "--ttl", "10m", "--comment", "on a TEID host"]);
    let flagged =
        f.wait_for(Duration::from_secs(2), |f| f.metric("overload_guard_fleet_pins_not_applied ") == Some(1.0));
    assert!(flagged, "the refusal is not in the metric; log: {}", f.log());
    assert_eq!(f.metric("overload_guard_fleet_pins_applied "), Some(0.0), "never claimed as applied");
    assert!(bound_v4(&f, 0x2001).is_none(), "anti-spoofing off learns no binding");
    assert!(f.maps().stages().is_empty(), "nothing written");
    assert!(f.log().contains("NOT applied"), "{}", f.log());
    let audited = f.audit();
    assert!(
        audited.iter().any(|r| r["action"] == "fleet-pin-not-applied"
            && r["target"] == "ue 10.47.0.1"
            && r["detail"]["not_applied"].as_str().is_some_and(|w| w.contains("antispoof = \"off\""))),
        "{audited:?}"
    );
    // A SIGHUP that turns anti-spoofing on makes the pin applicable: the member tries it again
    // at its next listing (resync 5 s here; it wrote nothing new to etcd) and says so once.
    let text = std::fs::read_to_string(&f.guard_config).expect("config");
    std::fs::write(&f.guard_config, text.replace("antispoof = \"off\"", "antispoof = \"shadow\"")).expect("edit");
    let pid = f.guard.as_ref().expect("guard runs").id();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    send(&f, 0x2001, [10, 47, 0, 1], 3);
    let applied = f.wait_for(Duration::from_secs(12), |f| {
        f.metric("overload_guard_fleet_pins_not_applied ") == Some(0.0)
            && f.metric("overload_guard_fleet_pins_applied ") == Some(1.0)
    });
    assert!(applied, "the pin was never tried again; log: {}", f.log());
    assert!(f.wait_for(Duration::from_secs(3), |f| stage(f, 0x2001).is_some()), "its TEID staged; log: {}", f.log());
    let audited = f.audit();
    let n = audited.iter().filter(|r| r["action"] == "fleet-pin-not-applied" && r["target"] == "ue 10.47.0.1").count();
    assert_eq!(n, 1, "the refusal said once, not at every listing: {audited:?}");
    assert!(audited.iter().any(|r| r["action"] == "fleet-pin" && r["target"] == "ue 10.47.0.1"), "{audited:?}");
}
