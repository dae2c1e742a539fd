//! Captures for `guard replay`'s tests (issue 21): dumpcap on a lab interface, and a classic
//! pcap writer with the timestamps a test chooses (nanosecond resolution).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// Nanosecond-resolution classic pcap (`0xa1b23c4d`).
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;

/// Write `frames` (capture time in ns since the Unix epoch, Ethernet frame) as a classic pcap
/// with nanosecond timestamps and link type `linktype` (1: Ethernet).
pub fn write_pcap_ns(path: &Path, linktype: u32, frames: &[(u64, Vec<u8>)]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    out.write_all(&MAGIC_NSEC.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    out.write_all(&262_144u32.to_le_bytes())?;
    out.write_all(&linktype.to_le_bytes())?;
    for (ts, f) in frames {
        out.write_all(&((ts / 1_000_000_000) as u32).to_le_bytes())?;
        out.write_all(&((ts % 1_000_000_000) as u32).to_le_bytes())?;
        out.write_all(&(f.len() as u32).to_le_bytes())?;
        out.write_all(&(f.len() as u32).to_le_bytes())?;
        out.write_all(f)?;
    }
    out.flush()?;
    Ok(())
}

/// dumpcap on an interface of a namespace, stopped on drop.
pub struct Dumpcap {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Dumpcap {
    /// pcapng, every frame both ways.
    pub fn start(ns: &Netns, ifname: &str, path: &Path) -> Result<Dumpcap> {
        Dumpcap::start_with(ns, ifname, path, &[])
    }

    /// With dumpcap options of the caller's (`-P` for classic pcap, `-f FILTER`, `-s SNAPLEN`).
    pub fn start_with(ns: &Netns, ifname: &str, path: &Path, options: &[&str]) -> Result<Dumpcap> {
        let log = File::create(path.with_extension("dumpcap.log")).context("dumpcap log")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name(), "dumpcap", "-q", "-i", ifname])
            .args(options)
            .arg("-w")
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        crate::netns::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn().context("starting dumpcap (comes with tshark: `cargo xtask setup`)")?;
        let mut d = Dumpcap { child: Some(child), path: path.to_owned() };
        let t0 = Instant::now();
        while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < 24 {
            if let Some(Ok(Some(st))) = d.child.as_mut().map(|c| c.try_wait()) {
                bail!("dumpcap exited ({st}); see {}", path.with_extension("dumpcap.log").display());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("dumpcap did not start in 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dumpcap writes the header before the capture is live: a moment more.
        std::thread::sleep(Duration::from_millis(300));
        Ok(d)
    }

    /// SIGINT (dumpcap flushes and exits), bounded wait, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` has exec'd dumpcap, so the pid is dumpcap's.
            crate::netns::stop_child(&mut c, libc::SIGINT, Duration::from_secs(5));
        }
    }
}

impl Drop for Dumpcap {
    fn drop(&mut self) {
        self.stop();
    }
}
