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
        let _ = std::fs::remove_dir(&self.1);
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
/// or 10 build left are refused, not misread, and the refusal says why and what to do. (Schema 6 had re-used schema-5 pins: it only added maps.)
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_schemas_5_to_10_are_refused_naming_why() {
    assert_eq!(SCHEMA_VERSION, 11);
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
