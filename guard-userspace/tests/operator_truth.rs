//! Operator commands that never claim what they did not do (issue 25, items 2-4), checked on the
//! real `guard` binary in a namespace lab:
//! - a second `guard run` on an interface (same pins or other pins) is refused before it touches
//!   anything, naming the running one; the first keeps running;
//! - `guard detach` is refused while a controller runs, and audited when it acts;
//! - SIGHUP reopens the audit log, so logrotate's move-then-HUP starts a new file;
//! - `device pin --ue` on a guard keyed by TEID is refused (it would pin nothing);
//! - `device unpin` refuses a stage the engine set, and `device release` makes the engine keep
//!   off a flooding device until the release is unpinned.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use labkit::{
    generator::{send_frames, SendOpts},
    lab::Lab,
};

const GUARD: &str = env!("CARGO_BIN_EXE_guard");

/// The lab, the guard process and its files; all removed on drop, also when an assertion fails.
struct Fixture {
    lab: Lab,
    dir: PathBuf,
    pin_base: PathBuf,
    run_dir: PathBuf,
    guard: Option<Child>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        let cfg = self.config("a");
        let _ = self.cmd(&cfg, &["detach", "--purge"]).output();
        let _ = std::fs::remove_dir_all(&self.pin_base);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

impl Fixture {
    fn new() -> Fixture {
        assert!(labkit::netns::is_root(), "needs root (network namespaces, XDP): run `cargo xtask test`");
        let lab = Lab::new().expect("lab topology");
        let unique = format!("{}-{}", std::process::id(), lab.core_ns_name());
        let dir = std::env::temp_dir().join(format!("og-optruth-{unique}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-optruth-{unique}"));
        // Own lock directory, so parallel test binaries never see each other's locks.
        let run_dir = dir.join("run");
        Fixture { lab, dir, pin_base, run_dir, guard: None }
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    /// A config file named `name` whose pins live under `<pin_base>/<name>`.
    fn config(&self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        if !path.exists() {
            let text = format!(
                "[guard]\npin_dir = {pin:?}\naudit_log = {audit:?}\ntick = \"200ms\"\nmax_devices = 4096\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [dataplane]\nobserve = {{ pps = 50, burst = 400 }}\n\n[classify]\nwarmup = \"1s\"\nmin_profile_pps = 20.0\n",
                pin = self.pin_base.join(name).display().to_string(),
                audit = self.audit_path().display().to_string(),
                port = labkit::lab::free_port(),
            );
            std::fs::write(&path, text).expect("config");
        }
        path
    }

    fn cmd(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(GUARD);
        c.env("GUARD_RUN_DIR", &self.run_dir);
        c.args(["--netns", self.lab.core_ns_name()]).arg(args[0]);
        c.args(["--iface", self.lab.core_ifname(), "--config"]).arg(config);
        c.args(&args[1..]);
        c
    }

    /// The metrics port config `name` listens on.
    fn metrics_port(&self, name: &str) -> u16 {
        let text = std::fs::read_to_string(self.config(name)).expect("config");
        text.split("listen = \"127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|p| p.parse().ok())
            .expect("metrics port in the config")
    }

    fn start(&mut self) -> u32 {
        let cfg = self.config("a");
        let log = std::fs::File::create(self.dir.join("run.log")).expect("log");
        let child = self.cmd(&cfg, &["run"]).stdout(Stdio::null()).stderr(log).spawn().expect("spawn guard run");
        let pid = child.id();
        self.guard = Some(child);
        // Up when /readyz answers 200: attached, its signal handlers installed and a first tick
        // done (a SIGHUP any earlier would meet the default action and end the process).
        let port = self.metrics_port("a");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if self.lab.http_get(port, "/readyz").is_some_and(|(code, _)| code == 200) {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("guard run did not come up: {}", std::fs::read_to_string(self.dir.join("run.log")).unwrap_or_default());
    }

    fn running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(|g| matches!(g.try_wait(), Ok(None)))
    }

    fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            // SIGTERM, then SIGKILL after 10 s: a guard that hangs on shutdown cannot hang the test.
            labkit::netns::stop_child(&mut g, libc::SIGTERM, Duration::from_secs(10));
        }
    }

    fn audit_actions(&self, path: &Path) -> Vec<String> {
        guard::audit::read_audit(path)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["action"].as_str().map(str::to_owned))
            .collect()
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_second_controller_is_refused_before_it_touches_anything_and_names_the_first() {
    let mut f = Fixture::new();
    let pid = f.start();
    // Same config (same pins): refused, with the first one's pid. (`--duration`: were a
    // regression to let it start, it ends by itself instead of hanging the test.)
    let a = f.config("a");
    let out = f.cmd(&a, &["run", "--duration", "5"]).output().expect("second guard run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second controller on the same pins must be refused: {err}");
    assert!(err.contains(&format!("pid {pid}")), "the refusal names the running controller: {err}");
    // Other pins, same interface: refused on the interface (it would replace the XDP program).
    let b = f.config("b");
    let out = f.cmd(&b, &["run", "--duration", "5"]).output().expect("third guard run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second controller on the same interface must be refused: {err}");
    assert!(err.contains("interface") && err.contains(&format!("pid {pid}")), "{err}");
    assert!(!f.pin_base.join("b").exists(), "the refused run created no pins: {}", f.pin_base.join("b").display());
    assert!(f.running(), "the first controller keeps running");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn detach_is_refused_while_a_controller_runs_and_audited_when_it_acts() {
    let mut f = Fixture::new();
    let pid = f.start();
    let a = f.config("a");
    let out = f.cmd(&a, &["detach", "--purge"]).output().expect("guard detach");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "detach while a controller runs must be refused: {err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    let pins = f.pin_base.join("a").join(f.lab.core_ifname());
    assert!(pins.exists(), "a refused detach leaves the pins");
    assert!(!f.audit_actions(&f.audit_path()).iter().any(|a| a.starts_with("detach")), "nothing done, nothing audited");
    f.stop();
    let out = f.cmd(&a, &["detach", "--purge"]).output().expect("guard detach");
    assert!(out.status.success(), "detach after the controller stopped: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!pins.exists(), "purged");
    assert!(f.audit_actions(&f.audit_path()).iter().any(|a| a == "detach_purge"), "the detach is audited");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sighup_reopens_the_audit_log_after_it_was_moved() {
    let mut f = Fixture::new();
    let pid = f.start();
    let audit = f.audit_path();
    let moved = f.dir.join("audit.jsonl.1");
    // The controller may not have written a line yet; make sure the file exists to move.
    std::fs::OpenOptions::new().create(true).append(true).open(&audit).expect("touch audit");
    std::fs::rename(&audit, &moved).expect("rotate");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) && !f.audit_actions(&audit).iter().any(|a| a == "config_reload") {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        f.audit_actions(&audit).iter().any(|a| a == "config_reload"),
        "after SIGHUP the reload record goes to a new file at the configured path; the guard said:\n{}",
        std::fs::read_to_string(f.dir.join("run.log")).unwrap_or_default()
    );
    assert!(
        !f.audit_actions(&moved).iter().any(|a| a == "config_reload"),
        "the rotated file gets nothing after the HUP"
    );
    assert!(f.running());
}

/// `guard device ...` on config "a", returning (success, stdout + stderr).
fn device(f: &Fixture, args: &[&str]) -> (bool, String) {
    let a = f.config("a");
    let mut c = Command::new(GUARD);
    c.env("GUARD_RUN_DIR", &f.run_dir);
    c.args(["--netns", f.lab.core_ns_name(), "device", args[0], "--iface", f.lab.core_ifname(), "--config"]).arg(&a);
    c.args(&args[1..]);
    let out = c.output().expect("guard device");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The device's stage entry as `guard device show --json` prints it (null when none).
fn stage_of(f: &Fixture, teid: &str) -> serde_json::Value {
    let (ok, text) = device(f, &["show", "--teid", teid, "--json"]);
    assert!(ok, "device show: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("device show --json");
    v["stage"].clone()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_pin_by_ue_address_on_a_teid_keyed_guard_is_refused() {
    let mut f = Fixture::new();
    f.start();
    let (ok, text) =
        device(&f, &["pin", "--ue", "10.45.0.7", "--stage", "quarantine", "--ttl", "1m", "--comment", "t"]);
    assert!(!ok, "a pin that would match nothing must be refused: {text}");
    assert!(text.contains("keys devices by TEID") && text.contains("--teid"), "says why and what to do: {text}");
    assert!(!f.audit_actions(&f.audit_path()).iter().any(|a| a == "pin"), "nothing done, nothing audited");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_released_flooder_is_left_alone_until_unpinned_and_engine_stages_cannot_be_unpinned() {
    const TEID: u32 = 0x4711;
    let teid = format!("{TEID:#x}");
    let mut f = Fixture::new();
    f.start();
    let frame = vec![f.lab.gpdu_v4(0, TEID).build()];
    let flood = |secs: u64| {
        let opts = SendOpts::new(3_000 * secs, Duration::from_secs(secs + 2)).pps(3_000);
        send_frames(&f.lab.ran, f.lab.ran_ifname(), &frame, &opts).expect("flood");
    };
    let staged_by_engine = |f: &Fixture| {
        let s = stage_of(f, &teid);
        s["stage"].as_u64().unwrap_or(0) > 0 && s["manual"] == false && s["expired"] == false
    };
    // 1. A flood the engine shapes on its own.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| flood(6));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(8) && !staged_by_engine(&f) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = h.join();
    });
    assert!(staged_by_engine(&f), "the engine staged the flood: {}", stage_of(&f, &teid));
    // 2. Unpin refuses a stage the engine set, and says what to use instead.
    let (ok, text) = device(&f, &["unpin", "--teid", &teid, "--comment", "t"]);
    assert!(!ok && text.contains("set by the controller") && text.contains("guard device release"), "{text}");
    // 3. Release: held at observe while the flood goes on; the engine does not stage it again.
    let (ok, text) = device(&f, &["release", "--teid", &teid, "--ttl", "5m", "--comment", "false positive"]);
    assert!(ok, "release: {text}");
    flood(3);
    let s = stage_of(&f, &teid);
    assert_eq!((s["stage"].as_u64(), s["manual"].as_bool()), (Some(0), Some(true)), "still released: {s}");
    let recs = guard::audit::read_audit(&f.audit_path()).expect("audit");
    let at = recs.iter().position(|r| r["action"] == "release").expect("the release is audited");
    assert!(
        !recs[at..]
            .iter()
            .any(|r| r["action"] == "set_device_stage" && r["target"].as_str().is_some_and(|t| t.contains("4711"))),
        "no engine stage recorded for the released device after the release"
    );
    // 4. Unpinning the release hands the device back: the flood is staged again.
    let (ok, text) = device(&f, &["unpin", "--teid", &teid, "--comment", "done"]);
    assert!(ok, "unpin of the release: {text}");
    std::thread::scope(|sc| {
        let h = sc.spawn(|| flood(5));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(7) && !staged_by_engine(&f) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = h.join();
    });
    assert!(staged_by_engine(&f), "after the unpin the engine decides again: {}", stage_of(&f, &teid));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_attach_refused_by_another_xdp_program_names_it_and_leaves_no_pins() {
    let f = Fixture::new();
    // Another XDP program on the interface: here the guard's own, attached by a run with other
    // pins that has exited (so no lock is held; only the kernel's attachment stands in the way).
    let a = f.config("a");
    let out = f.cmd(&a, &["run", "--no-controller"]).output().expect("first attach");
    assert!(out.status.success(), "first attach: {}", String::from_utf8_lossy(&out.stderr));
    let b = f.config("b");
    let out = f.cmd(&b, &["run", "--duration", "5"]).output().expect("second attach");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the occupied interface is refused: {err}");
    assert!(err.contains("already runs the XDP program guard_n3 (id "), "names the program in the way: {err}");
    assert!(
        !f.pin_base.join("b").join(f.lab.core_ifname()).exists(),
        "a failed start leaves no pins behind: {}",
        f.pin_base.join("b").display()
    );
}

/// `guard upgrade` swaps the program and nothing else: a host in its shadow rollout stays in
/// shadow, whatever the upgrading CLI's file says (here the same pins and audit log, every
/// protection at its default, enforce). The configuration record is the running controller's.
/// And a pin on that host says that its stage is only counted there, with the rate it wrote.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_shadow_host_stays_shadow_through_an_upgrade_and_a_pin_says_so() {
    let mut f = Fixture::new();
    let a = f.config("a");
    let text = std::fs::read_to_string(&a).expect("config");
    std::fs::write(
        &a,
        format!("{text}\n[dataplane.modes]\nshape = \"shadow\"\nstrict = \"shadow\"\nquarantine = \"shadow\"\n"),
    )
    .expect("config in shadow");
    let pid = f.start();
    let pins = guard::bpf::pins::PinDir::new(&f.pin_base.join("a"), f.lab.core_ifname());
    let before = guard::n3::maps::N3Maps::open_pinned(&pins).expect("pins").config().expect("N3_CONFIG");
    let q = guard_common::abi::PROT_QUARANTINE;
    assert_eq!((before.enabled & q, before.shadow & q), (q, q), "quarantine runs in shadow");
    // The upgrading operator's file: the same pins and audit log, the default (enforce) modes.
    let upgrading = f.dir.join("upgrade.toml");
    std::fs::write(&upgrading, text).expect("the upgrader's config");
    let out = f.cmd(&upgrading, &["upgrade"]).output().expect("guard upgrade");
    assert!(out.status.success(), "upgrade: {}", String::from_utf8_lossy(&out.stderr));
    let after = guard::n3::maps::N3Maps::open_pinned(&pins).expect("pins").config().expect("N3_CONFIG");
    assert_eq!(after, before, "the running configuration is kept");
    assert!(f.running(), "the controller runs on");
    let (ok, text) = device(&f, &["pin", "--teid", "0x77", "--stage", "quarantine", "--ttl", "1m", "--comment", "t"]);
    assert!(ok && text.contains("SHADOW") && text.contains("passes them"), "the pin says it only counts: {text}");
    let (ok, text) =
        device(&f, &["pin", "--teid", "0x78", "--stage", "shape", "--pps", "7", "--ttl", "1m", "--comment", "t"]);
    assert!(ok && text.contains("7 pps burst") && text.contains("SHADOW"), "the rate written, and the mode: {text}");
    // And whatever shows the stage says so too.
    let (ok, text) = device(&f, &["show", "--teid", "0x77"]);
    assert!(ok && text.contains("SHADOW: counted, not applied"), "device show: {text}");
    let out = f.cmd(&a, &["status"]).output().expect("guard status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stage 3 quarantine") && text.contains("SHADOW: counted, not applied"), "status: {text}");
    assert!(text.contains(&format!("controller: running (pid {pid},")), "status names the controller: {text}");
}

/// `guard status` says attached only when the interface's XDP hook runs the guard: a pinned
/// link outlives its interface (a re-created VLAN, a reset VF), and then the guard guards nothing.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn status_says_not_attached_when_the_interface_was_recreated() {
    let f = Fixture::new();
    // A veth pair of its own inside the lab's namespace (this kernel has no dummy driver).
    let (dev, peer) = ("ogre0", "ogre0p");
    let ip = |args: &[&str]| f.lab.core.exec_ok(args).unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
    let create = || {
        ip(&["ip", "link", "add", dev, "type", "veth", "peer", "name", peer]);
        ip(&["ip", "link", "set", dev, "up"]);
        ip(&["ip", "link", "set", peer, "up"]);
    };
    create();
    let a = f.config("a");
    let guard = |args: &[&str]| {
        let out = Command::new(GUARD)
            .env("GUARD_RUN_DIR", &f.run_dir)
            .args(["--netns", f.lab.core_ns_name()])
            .args(args)
            .args(["--iface", dev, "--config"])
            .arg(&a)
            .output()
            .expect("guard");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = guard(&["run", "--no-controller"]);
    assert!(ok, "attach: {text}");
    let (ok, text) = guard(&["status"]);
    assert!(ok && text.contains("guard_n3: attached"), "{text}");
    assert!(text.contains("controller: NONE running") && text.contains("keep dropping"), "no controller, said: {text}");
    // The interface goes and comes back under the same name: the pinned link is left behind.
    ip(&["ip", "link", "del", dev]);
    create();
    let (ok, text) = guard(&["status"]);
    assert!(ok && text.contains("NOT attached: its link is pinned, but the XDP hook holds nothing"), "{text}");
    let (_, json) = guard(&["status", "--json"]);
    assert!(json.contains("\"attached\": false") || json.contains("\"attached\":false"), "{json}");
    let _ = guard(&["detach", "--purge"]);
}

/// What can refuse a start is checked before anything is attached: a broken N2 settings file or
/// a metrics address that cannot be bound leaves the interface without an XDP program and no pins
/// (not guard_n3 attached with no controller); an interface name that is a path, or a negative
/// `--duration`, is refused by the parser.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_refused_start_attaches_nothing() {
    let f = Fixture::new();
    let iface = f.lab.core_ifname();
    let xdp_attached =
        || f.lab.core.exec_ok(&["ip", "-d", "link", "show", "dev", iface]).expect("ip link").contains("prog/xdp");
    // 1. A broken N2 settings file (a stage-1 limit of 0 would read as unlimited).
    let a = f.config("a");
    let bad = f.dir.join("n2-bad.toml");
    std::fs::write(&bad, "[setup]\nlimit_pps = 0\n").expect("n2 settings");
    let out = f
        .cmd(&a, &["run", "--duration", "5", "--n2-iface", "lo", "--n2-config", bad.to_str().expect("utf-8 path")])
        .output()
        .expect("guard run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("limit_pps"), "refused, naming the key: {err}");
    assert!(!f.pin_base.join("a").join(iface).exists(), "no pins after a refused start");
    assert!(!xdp_attached(), "no XDP program after a refused start");
    // 2. A metrics address no interface of the namespace has.
    let b = f.config("b");
    let text = std::fs::read_to_string(&b).expect("config");
    let port = f.metrics_port("b");
    std::fs::write(&b, text.replace(&format!("127.0.0.1:{port}"), "192.0.2.1:9464")).expect("config");
    let out = f.cmd(&b, &["run", "--duration", "5"]).output().expect("guard run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("metrics listener"), "refused, naming the listener: {err}");
    assert!(!f.pin_base.join("b").join(iface).exists(), "no pins after a refused start");
    assert!(!xdp_attached(), "no XDP program after a refused start");
    // 3. The parser: a path is no interface name; a duration is positive.
    for (args, says) in [
        (vec!["run", "--iface", "../../tmp"], "not a network interface name"),
        (vec!["detach", "--purge", "--iface", "/etc"], "not a network interface name"),
        (vec!["run", "--iface", iface, "--duration=-1"], "positive number of seconds"),
        (vec!["run", "--iface", iface, "--duration=NaN"], "positive number of seconds"),
    ] {
        let out = Command::new(GUARD).args(&args).output().expect("guard");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn run_takes_its_interface_from_the_config_and_a_reload_says_what_needs_a_restart() {
    let mut f = Fixture::new();
    let cfg = f.config("a");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let with_iface = text.replacen("[guard]\n", &format!("[guard]\ninterfaces = [{:?}]\n", f.lab.core_ifname()), 1);
    std::fs::write(&cfg, &with_iface).expect("config with interfaces");
    let log_path = f.dir.join("run-noiface.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut c = Command::new(GUARD);
    c.env("GUARD_RUN_DIR", &f.run_dir).args(["--netns", f.lab.core_ns_name(), "run", "--config"]).arg(&cfg);
    let child = c.stdout(Stdio::null()).stderr(log).spawn().expect("guard run without --iface");
    let pid = child.id();
    f.guard = Some(child);
    let link = f.pin_base.join("a").join(f.lab.core_ifname());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20)
        && !std::fs::read_to_string(&log_path).unwrap_or_default().contains("resumed the stages")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        link.exists(),
        "attached to the config's interface: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    // A reload that changes one live key and one that needs a restart.
    let changed =
        with_iface.replace("listen = \"127.0.0.1:", "listen = \"127.0.0.2:") + "\n[ladder.shape]\nrate_pps = 77\n";
    std::fs::write(&cfg, changed).expect("edit config");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    let t0 = Instant::now();
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(10) && !text.contains("only a restart applies it") {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    assert!(text.contains("changed: ladder.shape.rate_pps"), "the reload names what it changed: {text}");
    assert!(text.contains("metrics.listen changed in the file but only a restart applies it"), "{text}");
    let recs = guard::audit::read_audit(&f.audit_path()).expect("audit");
    let reload = recs.iter().rev().find(|r| r["action"] == "config_reload").expect("reload audited");
    assert_eq!(reload["detail"]["needs_restart"][0], "metrics.listen", "{reload}");
    assert!(f.running());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn metrics_carry_build_info_and_the_last_tick_and_no_n2_series_without_n2() {
    let mut f = Fixture::new();
    f.start();
    let port = f.metrics_port("a");
    let t0 = Instant::now();
    let mut body = String::new();
    // The gauge reads 0 until the first tick completes.
    let ticked = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("overload_guard_controller_last_tick_timestamp_seconds "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    };
    while t0.elapsed() < Duration::from_secs(10) && !ticked(&body) {
        body = f.lab.scrape_metrics(port).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(200));
    }
    let version = format!("overload_guard_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(body.contains(&version), "build info with the version: {body}");
    let last: f64 = body
        .lines()
        .find(|l| l.starts_with("overload_guard_controller_last_tick_timestamp_seconds "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("last tick timestamp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!((now - last).abs() < 5.0, "the last tick is recent: {last} vs {now}");
    assert!(!body.contains("overload_guard_n2_"), "no N2 series on a guard without N2: {body}");
    // Every series of the interface names it (issue 25 item 8); process-wide ones do not.
    let iface = format!("interface=\"{}\"", f.lab.core_ifname());
    for l in body.lines().filter(|l| l.starts_with("overload_guard_packets_total{")) {
        assert!(l.contains(&iface), "the interface label: {l}");
    }
    assert!(body.lines().any(|l| l.starts_with("overload_guard_packets_total{")), "{body}");
    assert!(!body.lines().any(|l| l.starts_with("overload_guard_build_info") && l.contains("interface=")), "{body}");
}

/// A pin that does not stay is not reported as pinned. The controller reads a device's entry
/// and writes its own microseconds later, so a pin landing in between is overwritten; the CLI
/// looks again and writes it back (`cli/settle.rs`). Here a writer that takes every operator's
/// quarantine as the controller would stands in for that race, every time: the CLI must say the
/// pin is not in force and fail, not print "pinned". A pin nothing overwrites says nothing more.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_pin_the_controller_keeps_overwriting_is_an_error_not_pinned() {
    use guard_common::abi::{StageEntry, STAGE_FLAG_MANUAL, STAGE_QUARANTINE};
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut f = Fixture::new();
    f.start();
    let (ok, text) =
        device(&f, &["pin", "--teid", "0x7a", "--stage", "shape", "--pps", "9", "--ttl", "1m", "--comment", "t"]);
    assert!(ok && text.contains("pinned") && !text.contains("written again"), "an undisturbed pin: {text}");
    assert_eq!(stage_of(&f, "0x7a")["manual"], true, "and it is the operator's");
    let pins = guard::bpf::pins::PinDir::new(&f.pin_base.join("a"), f.lab.core_ifname());
    let done = AtomicBool::new(false);
    let (overwrites, (ok, text)) = std::thread::scope(|sc| {
        let racer = sc.spawn(|| {
            let mut maps = guard::n3::maps::N3Maps::open_pinned(&pins).expect("pins");
            let (t0, mut n) = (Instant::now(), 0u32);
            while !done.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(10) {
                for (k, e) in maps.stages() {
                    if e.flags & STAGE_FLAG_MANUAL != 0 && e.stage == STAGE_QUARANTINE {
                        maps.set_stage(&k, &StageEntry { flags: 0, ..e }).expect("overwrite");
                        n += 1;
                    }
                }
            }
            n
        });
        let out = device(&f, &["pin", "--teid", "0x79", "--stage", "quarantine", "--ttl", "1m", "--comment", "t"]);
        done.store(true, Ordering::Relaxed);
        (racer.join().expect("racer"), out)
    });
    assert!(overwrites >= 4, "the racer took the pin at each of the CLI's looks ({overwrites})");
    assert!(!ok, "a pin that did not stay must fail: {text}");
    assert!(text.contains("not in force") && !text.contains("pinned "), "says so, and not 'pinned': {text}");
    assert_eq!(stage_of(&f, "0x79")["manual"], false, "the entry is not the operator's, as the CLI said");
    // The trail has the pin it announced, and that it failed.
    let recs = guard::audit::read_audit(&f.audit_path()).expect("audit");
    let failed = recs
        .iter()
        .find(|r| r["action"] == "pin" && r["reason"] == "failed")
        .unwrap_or_else(|| panic!("no failed pin in the audit trail: {recs:?}"));
    assert!(failed["detail"]["error"].as_str().is_some_and(|e| e.contains("not in force")), "{failed}");
    assert_eq!(
        failed["target"],
        recs.iter().rfind(|r| r["action"] == "pin" && r["reason"] == "operator").expect("announced")["target"]
    );
}
