//! The guard processes a scenario runs: registered so a signal or a panic still cleans them up,
//! started, waited for and stopped.

use super::*;

// ---------------------------------------------------------------------------------------------
// Cleanup registry: pin directories and guard processes of live runs, for Ctrl-C.

static LIVE_RUNS: Mutex<Vec<(PathBuf, Option<u32>)>> = Mutex::new(Vec::new());

/// Register a run's pin directory (and its guard process, if any) for [`cleanup_live_runs`].
pub fn register_run(pin_base: &Path, pid: Option<u32>) {
    if let Ok(mut l) = LIVE_RUNS.lock() {
        l.retain(|(p, _)| p != pin_base);
        l.push((pin_base.to_owned(), pid));
    }
}

/// The run ended and cleaned up after itself.
pub fn unregister_run(pin_base: &Path) {
    if let Ok(mut l) = LIVE_RUNS.lock() {
        l.retain(|(p, _)| p != pin_base);
    }
}

/// For a signal handler's watcher thread: stop the guard processes of live runs (by their pid)
/// and delete their pin directories. The namespaces are labkit's registry's business.
pub fn cleanup_live_runs() {
    let runs = LIVE_RUNS.lock().map(|l| l.clone()).unwrap_or_default();
    for (pins, pid) in runs {
        if let Some(pid) = pid {
            // SAFETY: kill(2) on a pid we spawned.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        eprintln!("lab: interrupted, removing {}", pins.display());
        let _ = std::fs::remove_dir_all(&pins);
    }
}

/// For the lab binaries (`lab`, `lab_real`): on Ctrl-C / SIGTERM stop the guard processes of live
/// runs, remove their pin directories ([`register_run`]), delete the namespaces, exit 130.
pub fn install_signal_cleanup() -> Result<()> {
    crate::netns::on_interrupt(cleanup_live_runs);
    crate::netns::install_sigint_cleanup()
}

/// The guard subprocess of one run; Drop stops it and purges its pins.
pub struct GuardProc {
    pub(super) bin: PathBuf,
    pub(super) netns: String,
    pub(super) iface: String,
    pub(super) config: PathBuf,
    pub(super) pin_base: PathBuf,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
    pub(super) done: bool,
}

impl GuardProc {
    /// A guard for `iface` in `netns` with its own config, pin base directory and log file; not
    /// started yet ([`GuardProc::launch`]). Its pin base is registered for Ctrl-C cleanup.
    pub fn new(bin: PathBuf, netns: &str, iface: &str, config: PathBuf, pin_base: PathBuf, log: PathBuf) -> GuardProc {
        register_run(&pin_base, None);
        GuardProc { bin, netns: netns.into(), iface: iface.into(), config, pin_base, log, child: None, done: false }
    }

    /// `guard run` with `args` as the process this value stops on drop.
    pub fn launch(&mut self, args: &[&str]) -> Result<()> {
        self.child = Some(self.start(args)?);
        Ok(())
    }

    /// The running guard's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(super) fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("GUARD_RUN_DIR", crate::guard_bin::run_dir_for(&self.pin_base));
        c.arg("--netns").arg(&self.netns);
        c
    }

    pub(super) fn start(&mut self, args: &[&str]) -> Result<Child> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut c = self.command();
        c.arg("run").arg("--iface").arg(&self.iface).arg("--config").arg(&self.config).args(args);
        c.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let child = c.spawn().with_context(|| format!("starting {}", self.bin.display()))?;
        register_run(&self.pin_base, Some(child.id()));
        Ok(child)
    }

    /// Whether the guard has exited (or was never started): `try_wait` on the child this value
    /// owns, which reaps it; stopping it later is then a no-op.
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn pins(&self) -> PinDir {
        PinDir::new(&self.pin_base, &self.iface)
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stop the controller (SIGINT, then SIGKILL after 5 s).
    pub(super) fn stop(&mut self) {
        if let Some(mut ch) = self.child.take() {
            crate::netns::stop_child(&mut ch, libc::SIGINT, Duration::from_secs(5));
        }
    }

    /// Stop, `guard detach --purge`, and remove the pin base directory.
    pub fn finish(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        self.stop();
        let out = self
            .command()
            .arg("detach")
            .arg("--iface")
            .arg(&self.iface)
            .arg("--config")
            .arg(&self.config)
            .arg("--purge")
            .output();
        let res = match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(anyhow!("guard detach --purge failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Err(anyhow!("guard detach --purge: {e}")),
        };
        let _ = std::fs::remove_dir_all(&self.pin_base);
        unregister_run(&self.pin_base);
        res
    }
}

impl Drop for GuardProc {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!("lab: {e:#}");
        }
        let _ = std::fs::remove_dir_all(crate::guard_bin::run_dir_for(&self.pin_base));
    }
}

// ---------------------------------------------------------------------------------------------
// Results of one run.
