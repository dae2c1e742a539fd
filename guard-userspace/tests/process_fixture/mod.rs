//! A `guard run` process on the lab's core veth, driven from outside as an operator would: shared
//! by `guard_process.rs` and `chain_process.rs`. Everything it makes (the guard process, its pins
//! and link, its files, the lab's namespaces) is removed on drop, also when an assertion fails.

use std::{
    cell::RefCell,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use labkit::lab::Lab;

pub const GUARD: &str = env!("CARGO_BIN_EXE_guard");

/// The guard process, its pins and files, the lab.
pub struct Fixture {
    pub lab: Lab,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pin_base: PathBuf,
    pub metrics_port: u16,
    /// A cell: side work (kill, restart, upgrade) runs while a sender thread borrows the lab.
    guard: RefCell<Option<Child>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop_guard();
        let _ = self.guard_cmd(&["detach", "--purge"]).output();
        // A link to a next program (`[attach] next`) is pinned beside the interface's directory.
        let iface = self.lab.core_ifname().to_owned();
        let _ = std::fs::remove_file(self.pin_base.join(format!("{iface}-next-link")));
        let _ = std::fs::remove_dir(&self.pin_base);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    /// A fresh lab and a config for its core veth: a 500 ms tick, 65,536 devices, metrics on a
    /// free port, then `extra` (more sections, e.g. `[attach]`). `tag` names the temp directory
    /// and pin base (`og-<tag>-<pid>-<namespace>`), unique per run.
    pub fn new(tag: &str, extra: &str) -> Fixture {
        let lab = Lab::new().expect("lab topology");
        let unique = format!("{}-{}", std::process::id(), lab.core_ns_name());
        let dir = std::env::temp_dir().join(format!("og-{tag}-{unique}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-{tag}-{unique}"));
        let metrics_port = labkit::lab::free_port();
        let config = dir.join("guard.toml");
        let text = format!(
            "[guard]\npin_dir = {pin:?}\naudit_log = {audit:?}\ntick = \"500ms\"\nmax_devices = 65536\n\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n{extra}",
            pin = pin_base.display().to_string(),
            audit = dir.join("audit.jsonl").display().to_string(),
        );
        // The fixture first, so that its Drop removes the directory should the write fail.
        let f = Fixture { lab, dir, config, pin_base, metrics_port, guard: RefCell::new(None) };
        std::fs::write(&f.config, text).expect("config");
        f
    }

    /// `guard <args>` in the core namespace on the lab's core veth with this config. The
    /// sub-command (two words for `device` and `chain`, else one) comes first, then the target,
    /// then the rest of `args`.
    pub fn guard_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(GUARD);
        // Its lock files in the fixture's directory, not the host's /run/overload-guard.
        c.env("GUARD_RUN_DIR", self.dir.join("run"));
        c.args(["--netns", self.lab.core_ns_name()]);
        let n = if matches!(args.first(), Some(&"device") | Some(&"chain")) { 2 } else { 1 };
        c.args(&args[..n]);
        c.args(["--iface", self.lab.core_ifname(), "--config"]).arg(&self.config);
        c.args(&args[n..]);
        c
    }

    /// `guard <args>`'s stdout; fails the test (with its output) if it exits non-zero.
    pub fn guard_ok(&self, args: &[&str]) -> String {
        let out = self.guard_cmd(args).output().expect("run guard");
        assert!(
            out.status.success(),
            "guard {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start `guard run` (stderr to `log` in the temp directory) and wait until /metrics answers:
    /// load, attach and the controller are all up by then. Fails the test after 20 s.
    pub fn start_guard(&self, log: &str) {
        let file = std::fs::File::create(self.dir.join(log)).expect("log file");
        let child = self.guard_cmd(&["run"]).stdout(Stdio::null()).stderr(file).spawn().expect("spawn guard run");
        *self.guard.borrow_mut() = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if self.scrape().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("guard run did not come up; log: {}", self.log(log));
    }

    /// SIGKILL the controller and reap it (the data plane stays).
    pub fn stop_guard(&self) {
        if let Some(mut g) = self.guard.borrow_mut().take() {
            let _ = g.kill();
            let _ = g.wait();
        }
    }

    /// The running `guard run`'s pid.
    #[allow(
        dead_code,
        reason = "guard_process signals it, chain_process does not; each test binary compiles this module"
    )]
    pub fn guard_pid(&self) -> Option<u32> {
        self.guard.borrow().as_ref().map(Child::id)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// GET /metrics from inside the core namespace, where the guard listens.
    pub fn scrape(&self) -> Option<String> {
        self.lab.scrape_metrics(self.metrics_port)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.guard_ok(&["status", "--json"])).expect("status JSON")
    }
}

/// The value of the first sample of `name` whose line contains `label`.
pub fn metric(body: &str, name: &str, label: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(name) && l.contains(label)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
