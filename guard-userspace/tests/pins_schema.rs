//! Pinned maps carry a schema version: a binary that finds pins of another schema or layout
//! refuses with a clear message and never misreads them; compatible pins are re-used.

use guard::{
    bpf::object::LoadError,
    bpf::pins::{PinDir, PinError, PinState},
    n3::load::{self},
    n3::maps::N3Maps,
};
use guard_common::abi::{GuardConfig, Meta, META_PROG_N3, SCHEMA_VERSION};

struct Pins(PinDir, std::path::PathBuf);
impl Drop for Pins {
    fn drop(&mut self) {
        let _ = self.0.purge();
        // Everything under the test's base, the N2 and VLAN directories some tests make beside
        // `t` included, also when a test fails before its own cleanup.
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// A pin directory for test `tag`; panics when not root (the tests are ignored without it).
fn scope(tag: &str) -> Pins {
    labkit::netns::assert_root(&format!("pins_schema::{tag}"));
    let base = std::path::PathBuf::from(format!("/sys/fs/bpf/og-schema-{tag}-{}", std::process::id()));
    Pins(PinDir::new(&base, "t"), base)
}

fn cfg() -> GuardConfig {
    GuardConfig { gtpu_port: 2152, ..Default::default() }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn compatible_pins_are_reused() {
    let p = scope("reuse");
    let l = load::load(&p.0, 4096, &cfg()).expect("first load");
    assert_eq!(l.state, PinState::Fresh);
    drop(l);
    let l = load::load(&p.0, 4096, &cfg()).expect("second load");
    assert_eq!(l.state, PinState::Reusable);
}

/// Each interface's pin directory holds its own maps only (issue 25 item 5): N3's none of N2's,
/// N2's none of N3's, also when an earlier build left them there.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn each_pin_directory_holds_only_its_own_maps() {
    let p = scope("own");
    let names = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .expect("pin dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    drop(load::load(&p.0, 4096, &cfg()).expect("N3 load"));
    let n3 = names(p.0.path());
    assert!(n3.iter().any(|n| n == "N3_DEVICES") && n3.iter().any(|n| n == "GUARD_META"), "{n3:?}");
    assert!(!n3.iter().any(|n| n.starts_with("N2_")), "N2 maps pinned in the N3 directory: {n3:?}");
    // A stray N2 pin, as an earlier build left one, is removed at the next load.
    let stray = p.0.path().join("N2_STRAY");
    let hints = aya::maps::MapData::from_pin(p.0.path().join("N3_HINTS")).expect("open N3_HINTS");
    hints.pin(&stray).expect("pin a stray N2_ map");
    drop(hints);
    drop(load::load(&p.0, 4096, &cfg()).expect("N3 reload"));
    assert!(!stray.exists(), "the stray N2 pin was left");
    let n2 = guard::n2::pin_dir(&p.1, "t");
    let cfg2 = guard::config::n2::N2Dataplane::default().config().expect("N2 config");
    let opts = guard::n2::LoadOpts { max_devices: 1024, ..Default::default() };
    drop(guard::n2::load(&n2, &opts, &cfg2).expect("N2 load"));
    let names2 = names(n2.path());
    assert!(names2.iter().any(|n| n == "N2_PEERS") && names2.iter().any(|n| n == "GUARD_META"), "{names2:?}");
    assert!(!names2.iter().any(|n| n.starts_with("N3_")), "N3 maps pinned in the N2 directory: {names2:?}");
    let _ = n2.purge();
    let _ = std::fs::remove_dir(p.1.join("n2"));
}

/// A VLAN sub-interface (`n3.100`): bpffs refuses dotted names, so its pins live under `n3:100`.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_vlan_interface_gets_a_pin_directory() {
    let p = scope("vlan");
    let dir = PinDir::new(&p.1, "n3.100");
    assert!(dir.path().ends_with("n3:100"), "{}", dir.path().display());
    drop(load::load(&dir, 4096, &cfg()).expect("load with a dotted interface name"));
    assert!(dir.path().join("GUARD_META").exists());
    let _ = dir.purge();
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_another_schema_are_refused() {
    let p = scope("version");
    drop(load::load(&p.0, 4096, &cfg()).expect("first load"));
    let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
    maps.write_meta(&Meta { schema_version: SCHEMA_VERSION + 1, ..Meta::current(META_PROG_N3) }).expect("write META");
    drop(maps);
    match load::load(&p.0, 4096, &cfg()) {
        Err(LoadError::Pins(PinError::Schema { found, expected, .. })) => {
            assert_eq!((found, expected), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("pins of another schema were accepted"),
    }
    // The message tells the operator what to do.
    let msg = load::load(&p.0, 4096, &cfg()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("schema version") && msg.contains("--purge"), "{msg}");
    // So do the CLI's handles on a running guard's maps (`guard device pin` writes stages there).
    match N3Maps::open_pinned(&p.0) {
        Err(guard::bpf::maps::MapsError::Pins(PinError::Schema { found, .. })) => assert_eq!(found, SCHEMA_VERSION + 1),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("the CLI opened pins of another schema"),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_another_capacity_are_refused() {
    let p = scope("capacity");
    drop(load::load(&p.0, 4096, &cfg()).expect("first load"));
    match load::load(&p.0, 8192, &cfg()) {
        Err(LoadError::Pins(PinError::Shape { map, what, found, expected, .. })) => {
            assert_eq!((map, what, found, expected), ("N3_DEVICES", "capacity", 4096, 8192));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a device map of another capacity was accepted"),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn foreign_meta_is_refused() {
    let p = scope("foreign");
    drop(load::load(&p.0, 4096, &cfg()).expect("first load"));
    let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
    maps.write_meta(&Meta { magic: 0x1234, ..Meta::current(META_PROG_N3) }).expect("write META");
    drop(maps);
    assert!(matches!(load::load(&p.0, 4096, &cfg()), Err(LoadError::Pins(PinError::Foreign { .. }))));
}

/// Schema 7 made the device, stage and config records longer (byte limits, issue 27) and moved a
/// gNB's counters out of `N3_CELL_HOT` into the per-CPU `N3_CELL_PCPU` (issue 19); schema 8 made
/// the cell-cap, config and per-CPU limiter records longer (the caps' byte rates); schema 9 added
/// `N3_STAGED`, whose bits schema 8's stage entries lack; schema 10 keyed the device and stage
/// maps by an 8-byte id; schema 11 keeps `N3_SEEN`'s marks as bits: pins a schema-5, 6, 7, 8, 9
/// or 10 build left are refused, not misread, and the refusal says why and what to do. (Schema 6 had re-used schema-5 pins: it only added maps; schema 12 re-uses schema 11's:
/// `schema_11_pins_are_reused_and_their_devices_count_on`.)
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_schemas_5_to_10_are_refused_naming_why() {
    assert_eq!(SCHEMA_VERSION, 12);
    for old in [5, 6, 7, 8, 9, 10] {
        let p = scope(&format!("schema{old}"));
        drop(load::load(&p.0, 4096, &cfg()).expect("first load"));
        let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
        maps.write_meta(&Meta { schema_version: old, ..Meta::current(META_PROG_N3) }).expect("write META");
        drop(maps);
        match load::load(&p.0, 4096, &cfg()) {
            Err(e @ LoadError::Pins(PinError::Schema { found, expected, .. })) => {
                assert_eq!((found, expected), (old, SCHEMA_VERSION));
                let msg = e.to_string();
                let why = if old == 10 {
                    msg.contains("N3_SEEN") && msg.contains("bits")
                } else if old == 9 {
                    msg.contains("8-byte device id") && msg.contains("N3_DEVICES")
                } else if old == 8 {
                    msg.contains("N3_STAGED") && msg.contains("first packet")
                } else if old == 7 {
                    msg.contains("byte rate") && msg.contains("N3_CELL_STAGES")
                } else {
                    msg.contains("byte limits") && msg.contains("N3_CELL_PCPU")
                };
                assert!(why && msg.contains("--purge"), "schema {old}: {msg}");
            }
            Err(e) => panic!("schema {old}: wrong error: {e}"),
            Ok(_) => panic!("pins of schema {old} were re-used"),
        }
    }
}

/// Schema 12 names the CPU that inserted a device record (`DeviceState::owner`), which counts it
/// with plain adds, and counts every other CPU's packets in words schema 11 kept reserved (zero).
/// A schema-11 record is therefore one with no owner and nothing counted elsewhere: its pins are
/// re-used, META says 12 afterwards (so a schema-11 binary then refuses them), and the device's
/// counts go on from where schema 11 left them, now in the other CPUs' words.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn schema_11_pins_are_reused_and_their_devices_count_on() {
    use aya::programs::{TestRun, TestRunOptions};
    use guard_common::abi::{device_id, DeviceKey, DeviceState};
    use std::net::Ipv4Addr;

    assert_eq!(guard_common::abi::COMPATIBLE_SCHEMAS, &[11]);
    let p = scope("schema11");
    drop(load::load(&p.0, 4096, &cfg()).expect("first load"));
    let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
    maps.write_meta(&Meta { schema_version: 11, ..Meta::current(META_PROG_N3) }).expect("write META");
    // A device as schema 11 left it: its counts in the words at the same offsets, the rest zero.
    let gnb = Ipv4Addr::new(10, 200, 0, 11);
    let old = DeviceState {
        own_packets: 40,
        own_bytes: 4000,
        own_dropped: 3,
        teid: 0x11,
        cell: labkit::bpf::l3_v4(gnb),
        ..DeviceState::default()
    };
    maps.devices.insert(device_id::fteid(0, 0x11), old, 0).expect("write the schema-11 device");
    drop(maps);
    let mut l = load::load(&p.0, 4096, &cfg()).expect("load over schema-11 pins");
    assert_eq!(l.state, PinState::Reusable);
    let frame = labkit::frames::GtpFrame::gpdu(0x11)
        .outer_v4(gnb, Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10))
        .build();
    let prog = l.program().expect("guard_n3");
    for _ in 0..2 {
        prog.test_run(TestRunOptions { data_in: Some(&frame), ..Default::default() }).expect("BPF_PROG_TEST_RUN");
    }
    let maps = N3Maps::open_pinned(&p.0).expect("open pins");
    assert_eq!(maps.meta.get(&0, 0).expect("META").schema_version, SCHEMA_VERSION, "META rewritten with this schema");
    let d = maps.device(&DeviceKey::teid(0x11)).expect("read").expect("the device survived the reload");
    assert_eq!((d.owner, d.own_packets, d.other_packets), (0, 40, 2), "no owner: both G-PDUs counted as other CPUs'");
    assert_eq!((d.packets(), d.dropped()), (42, 3), "the device's counts go on from schema 11's");
    assert!(d.bytes() > 4000, "its T-PDU octets too: {}", d.bytes());
}
