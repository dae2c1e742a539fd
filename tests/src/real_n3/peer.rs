//! A real peer's process inside a lab namespace (`ip netns exec NS prog ...`, which execs the
//! program in place, so the child's pid is the peer's own). Output goes to a log file. Drop stops
//! it (SIGTERM, then SIGKILL after a grace period), also on error and while unwinding from a
//! panic, so no osmo-ggsn, sgsnemu, dumpcap or python outlives the scenario.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::netns::Netns;

/// One peer process.
pub struct PeerProc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl PeerProc {
    /// Start `argv` in `ns`; stdout and stderr go to `log` (truncated). `stdin` is fed and closed
    /// when given (the echo prober's script).
    pub fn spawn(name: &str, ns: &Netns, argv: &[String], log: &Path, stdin: Option<&str>) -> Result<PeerProc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns.name()]).args(argv);
        c.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        // If the lab process dies without running Drop (SIGKILL, a timeout's SIGTERM), the
        // kernel kills the peer too: PR_SET_PDEATHSIG survives the exec of `ip netns exec` and
        // of the peer itself. (It fires when the spawning thread exits; peers are spawned and
        // stopped by the scenario's own thread.)
        crate::netns::die_with_parent(&mut c, libc::SIGKILL);
        let mut child = c.spawn().with_context(|| format!("starting {name}: ip netns exec {} {argv:?}", ns.name()))?;
        if let Some(text) = stdin {
            use std::io::Write as _;
            let mut pipe = child.stdin.take().context("the child's stdin")?;
            let wrote = pipe.write_all(text.as_bytes());
            drop(pipe);
            if let Err(e) = wrote {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).with_context(|| format!("feeding {name}'s stdin"));
            }
        }
        Ok(PeerProc { name: name.into(), child: Some(child), log: log.to_owned(), status: None })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The log as written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log (for error messages).
    pub fn tail(&self, n: usize) -> String {
        let s = self.output();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The exit status if the process has ended (reaped here), else `None`.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(ch) = self.child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    self.status = Some(st);
                    self.child = None;
                }
            }
        }
        self.status
    }

    /// Wait until it ends or `deadline` passes; the status if it ended.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `sig` if it still runs.
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.exited().is_none() {
            if let Some(ch) = self.child.as_ref() {
                // SAFETY: kill(2) on our own, not yet reaped child.
                unsafe { libc::kill(ch.id() as libc::pid_t, sig) };
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the status (None when it had to be
    /// killed).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exited().is_some() {
            return self.status;
        }
        self.signal(libc::SIGTERM);
        if let Some(st) = self.wait_until(Instant::now() + grace) {
            return Some(st);
        }
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            // Reaped here, so `exited` reports it from now on.
            self.status = ch.wait().ok();
        }
        None
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}
