//! The `guard run` child of the controller run (`controller.rs`): its pins, its directory, the
//! process, and what is read from it (metrics, resident memory). Each is removed or stopped on
//! drop, also on an error path.

use super::*;

/// Pins under `<base>/n3` for `guard run --pin-base <base> --iface n3`; purged on drop.
pub(super) struct CtlPins {
    pub(super) base: PathBuf,
    pub(super) pins: PinDir,
}

impl Drop for CtlPins {
    fn drop(&mut self) {
        let _ = load::detach(&self.pins, true);
        let _ = std::fs::remove_dir(&self.base);
        crate::scenario::unregister_run(&self.base);
    }
}

/// The run's config, log and audit trail; removed on drop, on every path, unless
/// BENCH_KEEP_CTL_DIR=1 asks to keep them for a look afterwards (a failed run's log included).
pub(super) struct CtlDir(PathBuf);

impl CtlDir {
    pub(super) fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("og-bench-ctl"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if std::env::var_os("BENCH_KEEP_CTL_DIR").is_none() {
            // Removed also if the bench is interrupted (its drops do not run then).
            crate::scenario::register_run(&dir, None);
        }
        Ok(Self(dir))
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for CtlDir {
    fn drop(&mut self) {
        if std::env::var_os("BENCH_KEEP_CTL_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
            crate::scenario::unregister_run(&self.0);
        } else {
            println!("bench: kept {}", self.0.display());
        }
    }
}

/// The `guard` child process; SIGTERM then SIGKILL on drop.
pub(super) struct GuardProc(pub(super) Child);

impl GuardProc {
    pub(super) fn stop(&mut self) {
        crate::netns::stop_child(&mut self.0, libc::SIGTERM, Duration::from_secs(5));
    }
}

impl Drop for GuardProc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn guard_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("guard");
    p.exists().then_some(p)
}

/// GET /metrics inside the core namespace.
pub(super) fn scrape(lab: &Lab, port: u16) -> Result<StdHashMap<String, f64>> {
    let text = lab
        .core
        .run(move || -> Result<String> {
            let mut s =
                std::net::TcpStream::connect(("127.0.0.1", port)).context("connecting to the metrics endpoint")?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .context("entering the core namespace")??;
    let mut m = StdHashMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = l.rsplit_once(' ') {
            if let Ok(x) = v.parse::<f64>() {
                m.insert(crate::lab::series_key(k), x);
            }
        }
    }
    Ok(m)
}

pub(super) fn vm_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
