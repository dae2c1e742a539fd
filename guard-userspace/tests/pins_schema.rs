//! Pinned maps carry a schema version: a binary that finds pins of another schema or layout
//! refuses with a clear message and never misreads them; compatible pins are re-used.

use guard::{
    loader::{self, LoadError},
    maps::N3Maps,
    pins::{PinDir, PinError, PinState},
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
    let l = loader::load(&p.0, 4096, &cfg()).expect("first load");
    assert_eq!(l.state, PinState::Fresh);
    drop(l);
    let l = loader::load(&p.0, 4096, &cfg()).expect("second load");
    assert_eq!(l.state, PinState::Reusable);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_another_schema_are_refused() {
    let p = scope("version");
    drop(loader::load(&p.0, 4096, &cfg()).expect("first load"));
    let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
    maps.write_meta(&Meta { schema_version: SCHEMA_VERSION + 1, ..Meta::current(META_PROG_N3) }).expect("write META");
    drop(maps);
    match loader::load(&p.0, 4096, &cfg()) {
        Err(LoadError::Pins(PinError::Schema { found, expected, .. })) => {
            assert_eq!((found, expected), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("pins of another schema were accepted"),
    }
    // The message tells the operator what to do.
    let msg = loader::load(&p.0, 4096, &cfg()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("schema version") && msg.contains("--purge"), "{msg}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_of_another_capacity_are_refused() {
    let p = scope("capacity");
    drop(loader::load(&p.0, 4096, &cfg()).expect("first load"));
    match loader::load(&p.0, 8192, &cfg()) {
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
    drop(loader::load(&p.0, 4096, &cfg()).expect("first load"));
    let mut maps = N3Maps::open_pinned(&p.0).expect("open pins");
    maps.write_meta(&Meta { magic: 0x1234, ..Meta::current(META_PROG_N3) }).expect("write META");
    drop(maps);
    assert!(matches!(loader::load(&p.0, 4096, &cfg()), Err(LoadError::Pins(PinError::Foreign { .. }))));
}
