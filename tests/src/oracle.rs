//! The independent oracles: tshark (Wireshark's dissectors) and scapy (`scapy.contrib.gtp`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            crate::netns::unique_name("")
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tshark_cmd() -> Command {
    let mut c = Command::new("tshark");
    // No name resolution.
    c.arg("-n");
    c
}

/// Run tshark on `pcap` and return one row of `fields` per packet (`-T fields`, tab-separated,
/// multiple occurrences joined with ','). `filter` is a display filter (`-Y`).
pub fn tshark_fields(pcap: &Path, fields: &[&str], filter: Option<&str>) -> Result<Vec<Vec<String>>> {
    let mut c = tshark_cmd();
    c.arg("-r").arg(pcap).args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        c.args(["-e", f]);
    }
    if let Some(y) = filter {
        c.args(["-Y", y]);
    }
    let out = c.output().context("running tshark (apt-get install -y tshark)")?;
    if !out.status.success() {
        bail!("tshark failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect())
}

/// Frame numbers tshark flags as malformed or with an expert error/warning.
pub fn tshark_problems(pcap: &Path) -> Result<Vec<String>> {
    let rows = tshark_fields(
        pcap,
        &["frame.number", "_ws.expert.message"],
        Some("_ws.malformed || _ws.expert.severity >= warning"),
    )?;
    Ok(rows.into_iter().map(|r| r.join(" ")).collect())
}

/// The full one-line-per-packet summary (for failure messages).
pub fn tshark_summary(pcap: &Path) -> String {
    tshark_cmd()
        .arg("-r")
        .arg(pcap)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The Python interpreter that has Debian's python3-scapy (`/usr/bin/python3` if present, since a
/// pyenv/venv `python3` on PATH may lack it).
pub fn python_with_scapy() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Run a Python script (fed on stdin) with `args`; returns stdout. Fails with stderr otherwise.
pub fn run_python(script: &str, args: &[&str]) -> Result<String> {
    let mut child = Command::new(python_with_scapy())
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running python3 (apt-get install -y python3-scapy)")?;
    child.stdin.take().context("python stdin")?.write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("python failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
