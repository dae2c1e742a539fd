//! The N2 lab topology and the real `guard` process.
//!
//! ```text
//!   RAN netns (unique name)                     CORE netns (unique name)
//!   n3-ran ==== N3 veth (labkit::Lab) ========= n3     guard_n3 (XDP)
//!   n2-ran ==== N2 veth ======================= n2     guard_n2 (XDP) → capture (AF_PACKET)
//!   02:00:00:00:02:02                           02:00:00:00:02:01
//! ```
//!
//! `guard --netns CORE run --iface n3 --n2-iface n2 --config guard.toml --n2-config n2.toml
//! --detach-on-exit` runs with its maps pinned under a bpffs directory unique to this lab
//! (`/sys/fs/bpf/og-n2lab-<unique>`, never the bpffs root) and its response hook set to an exec
//! recorder that appends each JSON payload to `hook.jsonl`. Everything is removed on drop, also
//! while unwinding from a panic: the guard process (SIGTERM, then SIGKILL), its pins, the veth
//! pairs and the namespaces. The guard also gets SIGTERM if the lab process dies
//! (`PR_SET_PDEATHSIG`), and detaches itself on exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::ran::{CORE_MAC, RAN_MAC};
use crate::lab::Lab;
use crate::netns::{unique_name, VethEnd, VethPair};

pub const N2_CORE_IF: &str = "n2";
pub const N2_RAN_IF: &str = "n2-ran";
/// The guard's metrics listen inside the CORE namespace (its own loopback: no clash with other
/// labs).
const METRICS_PORT: u16 = 9464;

/// Files of one scenario run (kept in the output directory).
#[derive(Clone, Debug)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub guard_toml: PathBuf,
    pub n2_toml: PathBuf,
    pub audit: PathBuf,
    pub hook: PathBuf,
    pub log: PathBuf,
}

impl RunFiles {
    pub fn new(dir: &Path) -> RunFiles {
        RunFiles {
            dir: dir.to_owned(),
            guard_toml: dir.join("guard.toml"),
            n2_toml: dir.join("n2.toml"),
            audit: dir.join("audit.jsonl"),
            hook: dir.join("hook.jsonl"),
            log: dir.join("guard.log"),
        }
    }
}

/// The lab: namespaces, both veth pairs, the guard process. Field order is drop order after
/// [`Drop::drop`] has stopped the guard and removed its pins.
pub struct N2Topo {
    guard: Option<Child>,
    guard_bin: PathBuf,
    pin_base: PathBuf,
    pub files: RunFiles,
    n2_link: VethPair,
    pub lab: Lab,
    /// Extra top-level tables of `guard.toml` (the fleet lab's `[fleet]`), and `[guard]` keys.
    extra: toml::Table,
    guard_extra: toml::Table,
}

impl N2Topo {
    /// Namespaces and links; the guard is not started yet.
    pub fn new(guard_bin: &Path, files: RunFiles) -> Result<N2Topo> {
        let lab = Lab::builder().gnbs(1).build().context("the N3 lab topology")?;
        let n2_link = VethPair::new(
            VethEnd::new(&lab.core, N2_CORE_IF).mac(CORE_MAC),
            VethEnd::new(&lab.ran, N2_RAN_IF).mac(RAN_MAC),
            1500,
        )
        .context("the N2 veth pair")?;
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-n2lab-{}", unique_name("n2l")));
        // For a lab binary's Ctrl-C handler (`scenario::install_signal_cleanup`).
        crate::scenario::register_run(&pin_base, None);
        Ok(N2Topo {
            guard: None,
            guard_bin: guard_bin.to_owned(),
            pin_base,
            files,
            n2_link,
            lab,
            extra: toml::Table::new(),
            guard_extra: toml::Table::new(),
        })
    }

    pub fn core_ns(&self) -> &str {
        self.lab.core_ns_name()
    }

    /// Add `table` to `guard.toml` under `name` (before [`N2Topo::write_configs`]); `[guard]`
    /// keys go through [`N2Topo::guard_key`].
    pub fn add_table(&mut self, name: &str, table: toml::Table) {
        self.extra.insert(name.to_owned(), table.into());
    }

    /// One more `[guard]` key of `guard.toml` (e.g. `key_mode`).
    pub fn guard_key(&mut self, key: &str, v: toml::Value) {
        self.guard_extra.insert(key.to_owned(), v);
    }

    /// The `guard` binary this topology runs.
    /// Where its guard keeps its lock files (`GUARD_RUN_DIR`), removed on drop.
    pub fn run_dir(&self) -> PathBuf {
        crate::guard_bin::run_dir_for(&self.pin_base)
    }

    pub fn guard_bin_path(&self) -> &Path {
        &self.guard_bin
    }

    /// The N3 pin directory of the running guard.
    pub fn n3_pins(&self) -> guard::bpf::pins::PinDir {
        guard::bpf::pins::PinDir::new(&self.pin_base, self.lab.core_ifname())
    }

    /// SIGKILL the guard (a host lost: nothing it holds is cleaned up by it; its pins stay).
    pub fn kill_guard(&mut self) {
        if let Some(mut c) = self.guard.take() {
            crate::netns::stop_child(&mut c, libc::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Whether the guard process is still running.
    pub fn guard_alive(&mut self) -> bool {
        matches!(self.guard.as_mut().map(|g| g.try_wait()), Some(Ok(None)))
    }

    /// The guard's metrics, if it answers.
    pub fn metrics(&self) -> Option<String> {
        self.lab.scrape_metrics(METRICS_PORT)
    }

    /// The N2 pin directory of the running guard (`<pin_base>/n2/n2`).
    pub fn n2_pins(&self) -> guard::bpf::pins::PinDir {
        guard::n2::pin_dir(&self.pin_base, N2_CORE_IF)
    }

    /// Write `guard.toml` and `n2.toml` (the scenario's `[n2]` table plus the exec-recorder hook).
    pub fn write_configs(&self, n2: &toml::Table) -> Result<()> {
        std::fs::create_dir_all(&self.files.dir).with_context(|| format!("creating {}", self.files.dir.display()))?;
        let mut g = toml::Table::new();
        let mut guard = toml::Table::new();
        guard.insert("pin_dir".into(), self.pin_base.display().to_string().into());
        guard.insert("audit_log".into(), self.files.audit.display().to_string().into());
        guard.insert("tick".into(), "500ms".into());
        guard.insert("max_devices".into(), 4096.into());
        guard.extend(self.guard_extra.clone());
        g.insert("guard".into(), guard.into());
        g.extend(self.extra.clone());
        let mut metrics = toml::Table::new();
        metrics.insert("listen".into(), format!("127.0.0.1:{METRICS_PORT}").into());
        g.insert("metrics".into(), metrics.into());
        std::fs::write(&self.files.guard_toml, toml::to_string(&g)?).context("writing guard.toml")?;

        let mut n2 = n2.clone();
        let mut hook = toml::Table::new();
        hook.insert("kind".into(), "exec".into());
        // No shell quoting of the path: it is the positional parameter $1.
        let cmd: Vec<toml::Value> = ["/bin/sh", "-c", "cat >> \"$1\"", "lab-n2-hook"]
            .iter()
            .map(|s| toml::Value::from(*s))
            .chain(std::iter::once(toml::Value::from(self.files.hook.display().to_string())))
            .collect();
        hook.insert("command".into(), cmd.into());
        hook.insert("timeout_ms".into(), 5000.into());
        n2.insert("hook".into(), hook.into());
        std::fs::write(&self.files.n2_toml, toml::to_string(&n2)?).context("writing n2.toml")?;
        // Refuse a bad `[n2]` here, with the guard's own parser, rather than as a dead process.
        guard::config::n2::N2File::read(Some(&self.files.n2_toml)).context("the scenario's [n2] table")?;
        std::fs::write(&self.files.hook, b"").context("creating hook.jsonl")?;
        Ok(())
    }

    /// Start `guard run` and wait until its metrics answer (it has loaded and attached both
    /// programs by then).
    pub fn start_guard(&mut self) -> Result<()> {
        let log = std::fs::File::create(&self.files.log).context("guard.log")?;
        let mut cmd = Command::new(&self.guard_bin);
        cmd.env("GUARD_RUN_DIR", self.run_dir());
        cmd.args(["--netns", self.lab.core_ns_name(), "run", "--iface", self.lab.core_ifname()])
            .args(["--n2-iface", N2_CORE_IF, "--detach-on-exit"])
            .arg("--config")
            .arg(&self.files.guard_toml)
            .arg("--n2-config")
            .arg(&self.files.n2_toml)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        crate::netns::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn().with_context(|| format!("starting {}", self.guard_bin.display()))?;
        self.guard = Some(child);
        let t0 = Instant::now();
        while !self.metrics_up() {
            if let Some(c) = self.guard.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    bail!("guard run exited ({st}): {}", self.log_tail());
                }
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("guard run did not come up in 60 s: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.files.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn metrics_up(&self) -> bool {
        self.lab.scrape_metrics(METRICS_PORT).is_some()
    }

    /// Stop the guard (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_guard(&mut self) {
        if let Some(mut c) = self.guard.take() {
            crate::netns::stop_child(&mut c, libc::SIGTERM, Duration::from_secs(5));
        }
    }

    pub fn ran_n2_if(&self) -> &str {
        self.n2_link.b().1
    }
}

impl Drop for N2Topo {
    fn drop(&mut self) {
        self.stop_guard();
        let _ = std::fs::remove_dir_all(self.run_dir());
        // Whatever the guard left behind: the N2 pins (with its link), the N3 pins, the base.
        if let Err(e) = guard::n2::detach(&self.n2_pins(), true) {
            eprintln!("lab_n2: could not remove N2 pins: {e}");
        }
        let n3 = guard::bpf::pins::PinDir::new(&self.pin_base, self.lab.core_ifname());
        if let Err(e) = guard::n3::load::detach(&n3, true) {
            eprintln!("lab_n2: could not remove N3 pins: {e}");
        }
        for d in [self.pin_base.join("n2"), self.pin_base.clone()] {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir(&d) {
                    eprintln!("lab_n2: could not remove {}: {e}", d.display());
                }
            }
        }
        crate::scenario::unregister_run(&self.pin_base);
    }
}
