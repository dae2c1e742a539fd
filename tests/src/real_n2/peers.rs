//! The real peers' processes: the libusrsctp endpoint (`tests/peers/usrsctp_peer.c`, compiled
//! here), the pycrate encoder run, and a dumpcap capture on the guard's interface. Every process
//! is a RAII guard: killed (and reaped) on drop, also while unwinding, and it gets SIGTERM through
//! `PR_SET_PDEATHSIG` if the lab process dies.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::netns::Netns;

/// Source of the endpoint, relative to the workspace.
const PEER_SRC: &str = "tests/peers/usrsctp_peer.c";
const PYCRATE_SRC: &str = "tests/peers/ngap_pycrate.py";

/// Compile the endpoint into `target/real-n2/usrsctp_peer` unless it is newer than its source.
/// Warnings are errors: the helper is part of the measurement.
pub fn build_helper() -> Result<PathBuf> {
    let ws = crate::guard_bin::workspace();
    let src = ws.join(PEER_SRC);
    let dir = ws.join("target/real-n2");
    let bin = dir.join("usrsctp_peer");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(b), Some(s)) = (mtime(&bin), mtime(&src)) {
        if b >= s {
            return Ok(bin);
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "usrsctp"])
        .output()
        .context("running pkg-config (cargo xtask setup installs pkg-config and libusrsctp-dev)")?;
    if !pc.status.success() {
        bail!(
            "pkg-config usrsctp failed (cargo xtask setup installs libusrsctp-dev): {}",
            String::from_utf8_lossy(&pc.stderr)
        );
    }
    let flags = String::from_utf8_lossy(&pc.stdout).into_owned();
    let tmp = dir.join(format!("usrsctp_peer.{}", std::process::id()));
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .args(flags.split_whitespace())
        .arg("-lpthread")
        .output()
        .context("running cc")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("compiling {}: {}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    // Atomic replace: a concurrent run never executes a half-written binary.
    std::fs::rename(&tmp, &bin).context("installing usrsctp_peer")?;
    Ok(bin)
}

/// Encode `specs` with pycrate: one hex PDU per spec, in order.
pub fn encode_ngap(specs: &[Value]) -> Result<Vec<Vec<u8>>> {
    let py = crate::realpeers::python()?;
    let script = crate::guard_bin::workspace().join(PYCRATE_SRC);
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} {}", py.display(), script.display()))?;
    let mut input = String::new();
    for s in specs {
        input.push_str(&s.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().context("pycrate stdin")?;
    // Written from a thread: the encoder's output would fill its pipe while we still write.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().context("pycrate encoder")?;
    writer.join().map_err(|_| anyhow!("writer thread panicked"))?.context("feeding the pycrate encoder")?;
    if !out.status.success() {
        bail!("pycrate encoder failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let pdus: Vec<Vec<u8>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            (0..l.len() / 2)
                .map(|i| u8::from_str_radix(l.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
        })
        .collect::<std::result::Result<_, _>>()
        .context("pycrate output is not hex")?;
    if pdus.len() != specs.len() {
        bail!("pycrate encoded {} of {} messages", pdus.len(), specs.len());
    }
    Ok(pdus)
}

/// One event line of a peer, with the time the lab read it.
pub type Events = Arc<Mutex<Vec<Value>>>;

/// A running `usrsctp_peer` inside a namespace: commands on its stdin, JSON events from its
/// stdout (also appended to `<log>.jsonl`).
pub struct Peer {
    pub name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    events: Events,
    reader: Option<JoinHandle<()>>,
}

impl Peer {
    pub fn spawn(ns: &Netns, bin: &Path, args: &[String], log_base: &Path) -> Result<Peer> {
        let err = File::create(log_base.with_extension("stderr")).context("peer stderr log")?;
        let mut jl = File::create(log_base.with_extension("jsonl")).context("peer event log")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err);
        crate::netns::die_with_parent(&mut cmd, libc::SIGTERM);
        let mut child = cmd.spawn().with_context(|| format!("starting {} in {}", bin.display(), ns.name()))?;
        let stdout = child.stdout.take().context("peer stdout")?;
        let stdin = child.stdin.take();
        let events: Events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
                let _ = writeln!(jl, "{line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if let Ok(mut e) = ev.lock() {
                        e.push(v);
                    }
                }
            }
        });
        let name = log_base.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let p = Peer { name, child: Some(child), stdin, events, reader: Some(reader) };
        p.wait_for(Duration::from_secs(10), |v| v["ev"] == "ready")
            .ok_or_else(|| anyhow!("{} did not come up (see {}.stderr)", p.name, log_base.display()))?;
        Ok(p)
    }

    /// Send one command line.
    pub fn cmd(&mut self, line: &str) -> Result<()> {
        let s = self.stdin.as_mut().ok_or_else(|| anyhow!("{}: stdin closed", self.name))?;
        s.write_all(line.as_bytes()).and_then(|_| s.write_all(b"\n")).with_context(|| format!("{}: command", self.name))
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The first event matching `pred`, waiting at most `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.events.lock().ok().and_then(|e| e.iter().find(|v| pred(v)).cloned()) {
                return Some(v);
            }
            if t0.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `quit` (the peer prints its counters and stack statistics, closes its sockets), then wait
    /// at most `timeout` for it to exit; killed otherwise.
    pub fn quit(&mut self, timeout: Duration) {
        let _ = self.cmd("quit");
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let t0 = Instant::now();
            while t0.elapsed() < timeout {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
