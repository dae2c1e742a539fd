//! The fleet tests' fixture against a real etcd (Debian's etcd-server), run inside the lab's CORE
//! namespace on its loopback addresses only, with its data in a temporary directory; the process
//! is killed and everything removed on exit, panics included (`Fixture`'s `Drop`). Shared by
//! `fleet_etcd.rs` and the other fleet test files (`mod fleet_fixture;`).
#![allow(
    dead_code,
    reason = "compiled into each of the three fleet test binaries, each of which uses a part; `expect` would fail in the ones that use an item"
)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guard::{bpf::pins::PinDir, clock::monotonic_ns, n3::manual::ue_device_key, n3::maps::N3Maps};
use guard_common::abi::StageEntry;
use labkit::lab::Lab;

pub const GUARD: &str = env!("CARGO_BIN_EXE_guard");
/// etcd's client port on both loopback addresses of the namespace: the guard talks to 127.0.0.1,
/// the operator's CLI to 127.0.0.2, so that a firewall rule can cut the member off alone.
pub const CLIENT_PORT: u16 = 23790;
pub const PEER_PORT: u16 = 23800;
pub const METRICS_PORT: u16 = 19464;

pub struct Fixture {
    pub lab: Lab,
    pub dir: PathBuf,
    pub fleet: String,
    pub guard_config: PathBuf,
    pub cli_config: PathBuf,
    pub pin_base: PathBuf,
    pub guard: Option<Child>,
    pub etcd: Option<Child>,
    /// A program and its arguments `start_guard` runs `guard run` under (strace), if any.
    pub wrapper: Vec<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in [self.guard.take(), self.etcd.take()].into_iter().flatten() {
            let mut c = c;
            // Under a wrapper (strace), the child is the wrapper: the guard it runs is killed
            // first, or a killed strace would only detach from it and leave it running.
            if let Ok(kids) = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id())) {
                for pid in kids.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()) {
                    // SAFETY: kill(2) on a child of our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(GUARD)
            .env("GUARD_RUN_DIR", self.dir.join("run"))
            .args([
                "--netns",
                self.lab.core_ns_name(),
                "detach",
                "--purge",
                "--iface",
                self.lab.core_ifname(),
                "--config",
            ])
            .arg(&self.guard_config)
            .output();
        let _ = std::fs::remove_dir(&self.pin_base);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn config_text(pin_base: &Path, audit: &Path, fleet: &str, endpoint: &str, member: &str, key_mode: &str) -> String {
    format!(
        "[guard]\npin_dir = {pin:?}\naudit_log = {audit:?}\ntick = \"500ms\"\nmax_devices = 65536\nkey_mode = \"{key_mode}\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n\n\
         [fleet]\nendpoints = [\"http://{endpoint}:{CLIENT_PORT}\"]\nname = \"{fleet}\"\nmember = \"{member}\"\ninsecure = true\nlease_ttl = \"3s\"\n\n\
         [fleet.sync]\ntimeout = \"1s\"\nretry = \"200ms\"\nretry_max = \"1s\"\nresync = \"5s\"\n",
        pin = pin_base.display().to_string(),
        audit = audit.display().to_string(),
    )
}

/// `text` (a [`config_text`]) with `keys` (lines of TOML) added to its `[fleet]` section.
pub fn with_fleet_keys(text: &str, keys: &str) -> String {
    text.replacen("lease_ttl = \"3s\"\n", &format!("lease_ttl = \"3s\"\n{keys}"), 1)
}

impl Fixture {
    pub fn new(tag: &str, key_mode: &str) -> Fixture {
        Fixture::with_config(tag, key_mode, "")
    }

    /// [`Fixture::new`] with `extra` appended to the member's configuration (TOML sections).
    pub fn with_config(tag: &str, key_mode: &str, extra: &str) -> Fixture {
        Fixture::with_fleet_keys(tag, key_mode, "", extra)
    }

    /// [`Fixture::with_config`] with `fleet_keys` (lines of TOML) added to the member's `[fleet]`.
    pub fn with_fleet_keys(tag: &str, key_mode: &str, fleet_keys: &str, extra: &str) -> Fixture {
        let lab = Lab::new().expect("lab topology");
        let unique = format!("{}-{}-{tag}", std::process::id(), lab.core_ns_name());
        let dir = std::env::temp_dir().join(format!("og-fleet-{unique}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-fleet-{unique}"));
        let fleet = format!("t{}-{tag}", std::process::id());
        let audit = dir.join("audit.jsonl");
        let guard_config = dir.join("guard.toml");
        let text = with_fleet_keys(
            &(config_text(&pin_base, &audit, &fleet, "127.0.0.1", "member-1", key_mode) + extra),
            fleet_keys,
        );
        // The operator's side: the same fleet, another address of the same etcd.
        let cli_config = dir.join("operator.toml");
        let cli_text =
            config_text(&pin_base, &dir.join("operator-audit.jsonl"), &fleet, "127.0.0.2", "ops-host", "ue_addr");
        // Written once the fixture exists, so that its Drop removes the directory should one fail.
        let writes = [(guard_config.clone(), text), (cli_config.clone(), cli_text)];
        let mut f = Fixture {
            lab,
            dir,
            fleet,
            guard_config,
            cli_config,
            pin_base,
            guard: None,
            etcd: None,
            wrapper: Vec::new(),
        };
        for (path, text) in writes {
            std::fs::write(path, text).expect("config");
        }
        f.start_etcd();
        f
    }

    /// etcd in the CORE namespace, listening on 127.0.0.1 and 127.0.0.2 only; the data directory
    /// is kept across restarts (a restarted etcd has the pins it had).
    pub fn start_etcd(&mut self) {
        let data = self.dir.join("etcd-data");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("etcd.log")).expect("etcd log");
        let peer = format!("http://127.0.0.1:{PEER_PORT}");
        let child = Command::new("ip")
            .args(["netns", "exec", self.lab.core_ns_name(), "etcd", "--name", "fleet-test"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{CLIENT_PORT},http://127.0.0.2:{CLIENT_PORT}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{CLIENT_PORT}")])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("fleet-test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian etcd-server; `cargo xtask setup` installs it)");
        self.etcd = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if self.etcdctl(&["endpoint", "health"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not come up: {}", std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default());
    }

    pub fn kill_etcd(&mut self) {
        let mut c = self.etcd.take().expect("etcd runs");
        c.kill().expect("kill etcd");
        c.wait().expect("reap etcd");
    }

    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", self.lab.core_ns_name(), "etcdctl", "--dial-timeout", "1s", "--endpoints"])
            .arg(format!("http://127.0.0.2:{CLIENT_PORT}"))
            .args(args)
            .output()
            .expect("etcdctl (Debian etcd-client)")
    }

    pub fn guard_cmd(&self) -> Command {
        let mut c = Command::new(GUARD);
        // Its lock files in the fixture's directory, not the host's /run/overload-guard.
        c.env("GUARD_RUN_DIR", self.dir.join("run"));
        c.args(["--netns", self.lab.core_ns_name()]);
        c
    }

    pub fn start_guard(&mut self) {
        let file = std::fs::File::create(self.dir.join("guard.log")).expect("log file");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.env("GUARD_RUN_DIR", self.dir.join("run"));
                c.args(args).arg(GUARD).args(["--netns", self.lab.core_ns_name()]);
                c
            }
            None => self.guard_cmd(),
        };
        let child = cmd
            .args(["run", "--iface", self.lab.core_ifname(), "--config"])
            .arg(&self.guard_config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn guard run");
        self.guard = Some(child);
        let up = self.wait_for(Duration::from_secs(20), |f| f.metric("overload_guard_fleet_connected ") == Some(1.0));
        assert!(up, "guard run did not connect to etcd; log: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("guard.log")).unwrap_or_default()
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `guard fleet ...` from the operator's side; its stdout, or a panic with both outputs.
    pub fn fleet(&self, args: &[&str]) -> String {
        let out = self
            .guard_cmd()
            .args(["fleet", args[0], "--config"])
            .arg(&self.cli_config)
            .args(&args[1..])
            .output()
            .expect("guard fleet");
        assert!(
            out.status.success(),
            "guard fleet {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let body = self.lab.scrape_metrics(METRICS_PORT)?;
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    }

    pub fn maps(&self) -> N3Maps {
        N3Maps::open_pinned(&PinDir::new(&self.pin_base, self.lab.core_ifname())).expect("pinned maps")
    }

    /// The live (unexpired) stage of the UE at `ue`.
    pub fn ue_stage(&self, ue: &str) -> Option<StageEntry> {
        let key = ue_device_key(ue.parse::<IpAddr>().expect("address"), 64).expect("UE key");
        self.maps().stage(&key).expect("stage read").filter(|e| e.expires_ns > monotonic_ns())
    }

    pub fn guard_alive(&mut self) -> bool {
        matches!(self.guard.as_mut().map(|g| g.try_wait()), Some(Ok(None)))
    }

    pub fn wait_for(&mut self, limit: Duration, mut ok: impl FnMut(&mut Fixture) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if ok(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Time from just before `guard fleet pin` to the stage in this member's maps.
    pub fn pin_and_time(&mut self, ue: &str, stage: &str, ttl: &str, comment: &str) -> Duration {
        let t0 = Instant::now();
        self.fleet(&["pin", "--ue", ue, "--stage", stage, "--ttl", ttl, "--comment", comment]);
        let seen = self.wait_for(Duration::from_secs(5), |f| f.ue_stage(ue).is_some());
        assert!(seen, "the pin on {ue} never reached the data plane; log: {}", self.log());
        t0.elapsed()
    }
}
