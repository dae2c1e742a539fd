//! The guard's control interface is its pinned maps in bpffs: whoever can open them can change a
//! stage. These tests check, as a user would, that only root can:
//! - the pin directories are mode 0700 and every pin is private to root;
//! - an unprivileged process (uid 65534) can neither open a pinned map through the BPF syscall
//!   nor change a stage with `guard device pin`, and the stage stays as it was;
//! - a root operator's pin is audited with who made it.

use std::{
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use guard::{bpf::pins::PinDir, n3::load, n3::maps::N3Maps};
use guard_common::abi::{DeviceKey, GuardConfig, STAGE_QUARANTINE};

const GUARD: &str = env!("CARGO_BIN_EXE_guard");
const NOBODY: u32 = 65534;
const CHILD_ENV: &str = "OG_SECURITY_CHILD_PIN";

/// Pins and files of one test; removed on drop, also when an assertion fails.
struct Scope {
    pins: PinDir,
    base: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    audit: PathBuf,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = self.pins.purge();
        let _ = std::fs::remove_dir(&self.base);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pins and files of test `tag`; panics when not root (the tests are ignored without it).
fn scope(tag: &str) -> Scope {
    labkit::netns::assert_root(&format!("control_security::{tag}"));
    let unique = format!("{tag}-{}", std::process::id());
    let base = PathBuf::from(format!("/sys/fs/bpf/og-sec-{unique}"));
    let dir = std::env::temp_dir().join(format!("og-sec-{unique}"));
    // Owned before anything is created: its Drop removes what a failed step below left.
    let s = Scope {
        pins: PinDir::new(&base, "t"),
        audit: dir.join("audit.jsonl"),
        config: dir.join("guard.toml"),
        base,
        dir,
    };
    std::fs::create_dir_all(&s.dir).expect("temp dir");
    std::fs::write(
        &s.config,
        format!(
            "[guard]\npin_dir = {:?}\naudit_log = {:?}\n",
            s.base.display().to_string(),
            s.audit.display().to_string()
        ),
    )
    .expect("config");
    // The config file must be readable by the unprivileged user, so that what stops it is the
    // permission on the pins and not a missing file.
    for p in [&s.dir, &s.config] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
    }
    s
}

fn load_n3(s: &Scope) -> load::Loaded {
    load::load(&s.pins, 4096, &GuardConfig { gtpu_port: 2152, ..Default::default() }).expect("load guard_n3")
}

fn pin_cmd(s: &Scope, teid: &str) -> Command {
    let mut c = Command::new(GUARD);
    c.args(["device", "pin", "--iface", "t", "--config"]).arg(&s.config).args([
        "--teid",
        teid,
        "--stage",
        "quarantine",
        "--ttl",
        "1m",
        "--comment",
        "security test",
    ]);
    c
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pins_are_private_to_root() {
    let s = scope("modes");
    let _l = load_n3(&s);
    for d in [&s.base, &s.pins.path().to_path_buf()] {
        let m = std::fs::metadata(d).expect("stat pin dir");
        assert_eq!(m.mode() & 0o777, 0o700, "{} must be mode 0700", d.display());
        assert_eq!(m.uid(), 0, "{} must be owned by root", d.display());
    }
    let mut n = 0;
    for e in std::fs::read_dir(s.pins.path()).expect("list pins") {
        let e = e.expect("dir entry");
        let m = e.metadata().expect("stat pin");
        assert_eq!(m.mode() & 0o077, 0, "{} is accessible to group/others", e.path().display());
        n += 1;
    }
    assert!(n >= 5, "expected the maps and the link to be pinned, found {n} entries");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn unprivileged_user_cannot_change_a_stage() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        return child_opens_pinned_map(Path::new(&path));
    }
    let s = scope("nobody");
    let _l = load_n3(&s);
    let key = DeviceKey::teid(0x77);

    // 1. The CLI, run as nobody, refuses and changes nothing.
    let out = pin_cmd(&s, "0x77").uid(NOBODY).gid(NOBODY).output().expect("run guard as nobody");
    assert!(!out.status.success(), "guard device pin succeeded for uid {NOBODY}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root"), "the refusal should say root is needed: {err}");

    // 2. The kernel boundary itself: a process of uid 65534 calling BPF_OBJ_GET on the pinned
    //    stage map (this test re-run as nobody, see `child_opens_pinned_map`) is refused.
    let stage_pin = s.pins.map_path(guard_common::abi::MAP_N3_STAGES);
    assert!(stage_pin.exists(), "{} not pinned", stage_pin.display());
    let me = std::env::current_exe().expect("own path");
    let out = Command::new(me)
        .args(["--exact", "unprivileged_user_cannot_change_a_stage", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &stage_pin)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run child as nobody");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("REFUSED"), "the unprivileged child was not refused:\n{text}");

    // 3. The stage is unchanged and nothing was audited for it.
    let maps = N3Maps::open_pinned(&s.pins).expect("open pins as root");
    assert_eq!(maps.stage(&key).expect("read stage"), None, "an unprivileged pin reached the map");
    let audit = std::fs::read_to_string(&s.audit).unwrap_or_default();
    assert!(!audit.contains("0x77") && !audit.contains("0x00000077"), "audit has a pin for the device: {audit}");
}

/// The child half of `unprivileged_user_cannot_change_a_stage` (that test re-run as uid 65534
/// with [`CHILD_ENV`] naming the pinned map; not a test of its own, which `--include-ignored`
/// would run without a parent): try to open the map and print REFUSED if the kernel says no.
fn child_opens_pinned_map(path: &Path) {
    // SAFETY: getuid has no preconditions.
    assert_ne!(unsafe { libc::getuid() }, 0, "the child must run unprivileged");
    match aya::maps::MapData::from_pin(path) {
        Ok(_) => println!("OPENED {}", path.display()),
        Err(e) => println!("REFUSED: {e}"),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn operator_pins_are_audited_with_who_made_them() {
    let s = scope("audit");
    let _l = load_n3(&s);
    let out =
        pin_cmd(&s, "0x78").env("SUDO_USER", "alice").env("SUDO_UID", "1000").output().expect("run guard device pin");
    assert!(out.status.success(), "pin failed: {}", String::from_utf8_lossy(&out.stderr));
    let maps = N3Maps::open_pinned(&s.pins).expect("open pins");
    let st = maps.stage(&DeviceKey::teid(0x78)).expect("read stage").expect("the pin is in the map");
    assert_eq!(st.stage, STAGE_QUARANTINE);
    let audit = std::fs::read_to_string(&s.audit).expect("audit log written");
    let line = audit.lines().find(|l| l.contains("\"pin\"")).expect("an audit line for the pin");
    let v: serde_json::Value = serde_json::from_str(line).expect("audit line is JSON");
    let who = v["detail"]["operator"].as_str().unwrap_or_default();
    assert!(who.contains("alice") && who.contains("uid 1000") && who.contains("uid 0"), "operator: {who}");
    assert_eq!(v["evidence"]["comment"], "security test");
}
