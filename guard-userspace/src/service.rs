//! What `guard run` tells its service manager and its probes (issue 20): the systemd notify
//! protocol (`sd_notify(3)`: READY, WATCHDOG, RELOADING, STOPPING) and the `/healthz` and
//! `/readyz` endpoints on the metrics listener.
//!
//! - **READY=1** once every configured interface is attached and the first tick ran; a unit with
//!   `Type=notify` is "active" only then.
//! - **WATCHDOG=1** after each tick that finished within its period: a controller whose ticks
//!   stall or overrun stops feeding the watchdog, and systemd restarts it after `WatchdogSec`
//!   (the data plane stays attached meanwhile: stages decay on their own TTLs).
//! - **RELOADING=1** (with MONOTONIC_USEC, required since systemd 253) before a SIGHUP reload and
//!   READY=1 after it; **STOPPING=1** on SIGTERM / SIGINT.
//! - `/healthz`: 200 when the controller ticked within the last three ticks, else 503.
//! - `/readyz`: 200 when every configured interface runs the guard's program, the pinned maps
//!   carry this build's schema, and the audit log can be appended to; else 503 naming each
//!   failed condition.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) the notifications are no-ops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sd_notify::NotifyState;
use tracing::debug;

use crate::bpf::pins::{PinDir, PinError, PinState};

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// READY=1 with a status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// WATCHDOG=1.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// RELOADING=1 and the monotonic time systemd 253+ requires with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(t) => notify(&[NotifyState::Reloading, t]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// How a side checks its pins against this build's layout (`crate::n3::check`,
/// `crate::n2::check`): each side knows its own maps, this module neither.
pub type PinCheck = Arc<dyn Fn(&PinDir) -> Result<PinState, PinError> + Send + Sync>;

/// One interface the guard must be attached to, for `/readyz`.
#[derive(Clone)]
pub struct Attached {
    pub iface: String,
    /// The kernel's name of the program, for the words.
    pub program: &'static str,
    /// Where its XDP link is pinned: the interface's hook must run that link's program (told by
    /// id, `bpf::link::hook_runs_link`). None: the program sits in another root's program-array
    /// slot (`[attach] into`), which the controller checks and refills every tick.
    pub link: Option<std::path::PathBuf>,
    pub pins: PinDir,
    /// The side's own check of its pins.
    pub check: PinCheck,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").field("iface", &self.iface).field("program", &self.program).finish()
    }
}

/// A line `/readyz` adds without ever failing on it (the fleet link, docs/fleet.md).
pub trait ReadyDetail: Send + Sync {
    fn detail(&self) -> String;
}

/// The controller's liveness and the conditions of readiness, shared with the HTTP handlers.
pub struct Health {
    started: Instant,
    tick_ns: u64,
    /// Nanoseconds since `started` at the end of the last tick; 0 = none yet.
    last_tick: AtomicU64,
    pub attached: Vec<Attached>,
    pub audit_log: PathBuf,
    /// The fleet link, with `[fleet]`: a detail line, never a reason to be unready (docs/fleet.md).
    fleet: std::sync::OnceLock<Arc<dyn ReadyDetail>>,
}

impl Health {
    pub fn new(tick_ns: u64, attached: Vec<Attached>, audit_log: PathBuf) -> Arc<Health> {
        Arc::new(Health {
            started: Instant::now(),
            tick_ns,
            last_tick: AtomicU64::new(0),
            attached,
            audit_log,
            fleet: std::sync::OnceLock::new(),
        })
    }

    /// Report the fleet link in `/readyz` from now on.
    pub fn set_fleet(&self, status: Arc<dyn ReadyDetail>) {
        let _ = self.fleet.set(status);
    }

    pub fn ticked(&self) {
        let ns = self.started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.last_tick.store(ns.max(1), Ordering::Relaxed);
    }

    /// `/healthz`: (healthy, body).
    pub fn healthz(&self) -> (bool, String) {
        let last = self.last_tick.load(Ordering::Relaxed);
        let tick_s = self.tick_ns as f64 / 1e9;
        if last == 0 {
            return (false, format!("unhealthy: no controller tick yet (tick {tick_s} s)\n"));
        }
        let now = self.started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let age = now.saturating_sub(last);
        let age_s = age as f64 / 1e9;
        if age <= self.tick_ns.saturating_mul(3) {
            (true, format!("ok: last tick {age_s:.1} s ago (tick {tick_s} s)\n"))
        } else {
            (false, format!("unhealthy: last tick {age_s:.1} s ago, more than three ticks (tick {tick_s} s)\n"))
        }
    }

    /// `/readyz`: (ready, body). Every condition is checked and reported, not only the first.
    pub fn readyz(&self) -> (bool, String) {
        let mut bad = Vec::new();
        let mut good = Vec::new();
        for a in &self.attached {
            match &a.link {
                Some(link) => match crate::bpf::link::hook_runs_link(&a.iface, link) {
                    (true, Some(h)) => {
                        good.push(format!("{}: {} attached (program id {}, {})", a.iface, a.program, h.id, h.mode))
                    }
                    (_, Some(h)) => bad.push(format!("{}: XDP hook holds {h}, not {}", a.iface, a.program)),
                    (_, None) => bad.push(format!("{}: {} is not attached", a.iface, a.program)),
                },
                None => good.push(format!("{}: {} in a program-array slot ([attach] into)", a.iface, a.program)),
            }
            let state = (a.check)(&a.pins);
            match state {
                Ok(PinState::Reusable) => good.push(format!("{}: pinned maps at the current schema", a.iface)),
                Ok(PinState::Fresh) => bad.push(format!("{}: no pinned maps in {}", a.iface, a.pins.path().display())),
                Err(e) => bad.push(format!("{}: {e}", a.iface)),
            }
        }
        match std::fs::OpenOptions::new().append(true).open(&self.audit_log) {
            Ok(_) => good.push(format!("audit log {} writable", self.audit_log.display())),
            Err(e) => bad.push(format!("audit log {} not writable: {e}", self.audit_log.display())),
        }
        // A lost etcd is said, not failed on: the guard still guards with its local view.
        let fleet = self.fleet.get().map(|f| format!("{}\n", f.detail())).unwrap_or_default();
        if bad.is_empty() {
            (true, format!("ready\n{}\n{fleet}", good.join("\n")))
        } else {
            (false, format!("not ready\n{}\n{fleet}", bad.join("\n")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_turns_after_three_missed_ticks() {
        let dir = std::env::temp_dir().join(format!("og-health-{}", std::process::id()));
        let h = Health::new(20_000_000, Vec::new(), dir.join("audit.jsonl"));
        assert!(!h.healthz().0, "no tick yet");
        h.ticked();
        let (ok, body) = h.healthz();
        assert!(ok, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(80));
        let (ok, body) = h.healthz();
        assert!(!ok && body.contains("more than three ticks"), "{body}");
    }

    #[test]
    fn readyz_names_an_unwritable_audit_log() {
        let h = Health::new(1_000_000_000, Vec::new(), PathBuf::from("/nonexistent-dir/audit.jsonl"));
        let (ok, body) = h.readyz();
        assert!(!ok && body.contains("not writable"), "{body}");
        let dir = std::env::temp_dir().join(format!("og-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let h = Health::new(1_000_000_000, Vec::new(), dir.join("audit.jsonl"));
        std::fs::write(dir.join("audit.jsonl"), b"").expect("audit file");
        assert!(h.readyz().0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
