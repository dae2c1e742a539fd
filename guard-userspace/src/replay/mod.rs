//! `guard replay`: what the guard would have done on a capture (issue 21, docs/replay.md).
//!
//! Every frame goes through the real `guard_n3` by BPF_PROG_TEST_RUN (loaded for the replay,
//! attached nowhere, nothing left pinned), on a clock the capture's timestamps drive
//! (guard-ebpf `clock.rs`); the real controller and engine tick on the same clock
//! (`n3::controller::replay`). The findings are written to an output directory:
//! - [`capture`]: the pcap / pcapng reader;
//! - [`direction`]: which frames the guarded host sent (`--local`);
//! - [`run`]: one replay with one configuration;
//! - [`report`]: the report (JSON, markdown, SVG) and the comparison of two.

pub mod capture;
pub mod direction;
mod feed;
pub mod n2;
pub mod report;
pub mod run;
#[cfg(test)]
mod tests;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

pub use run::{Pacing, REPLAY_EPOCH_NS};

use self::report::{Comparison, Report};
use crate::config::Config;

/// Where a replay tells a person how far it is: a progress bar on a terminal, a line per step
/// elsewhere (`cli::replay`), nothing in tests.
pub trait Progress {
    /// A step begins or ends (one line).
    fn step(&mut self, what: &str);
    /// `done` of `total` bytes of the capture read, `t_s` seconds of capture time replayed.
    fn position(&mut self, done: u64, total: u64, t_s: f64);
    /// The replay of one configuration finished.
    fn done(&mut self, summary: &str);
}

/// No output (tests, library use).
pub struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: &str) {}
    fn position(&mut self, _: u64, _: u64, _: f64) {}
    fn done(&mut self, _: &str) {}
}

/// What `guard replay` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub capture: PathBuf,
    pub config: PathBuf,
    /// A second configuration to replay the same capture with, and compare.
    pub compare: Option<PathBuf>,
    /// N2 settings: the capture goes through `guard_n2` and the N2 controller too (`n2/`).
    pub n2_config: Option<PathBuf>,
    /// The guarded host's own addresses (`--local`): frames from them were sent by the host
    /// (`direction`). N3 adds `guard.n3_addrs`. Empty: every frame is replayed as arriving.
    pub local: Vec<IpAddr>,
    pub out: PathBuf,
    pub pacing: Pacing,
}

/// What a replay wrote.
pub struct Outcome {
    pub report: Report,
    pub compared: Option<(Report, Comparison)>,
    pub n2: Option<n2::N2Report>,
}

impl Outcome {
    /// Every capture was read to its end.
    pub fn complete(&self) -> bool {
        self.report.capture.complete
            && self.compared.as_ref().is_none_or(|(b, _)| b.capture.complete)
            && self.n2.as_ref().is_none_or(|r| r.capture.complete)
    }
}

/// Replay `o.capture` with `o.config` (and `o.compare`), writing the reports into `o.out`:
/// `report.md`, `report.json`, `decisions.json`, `timeline.svg`, `audit.jsonl` (for B: the same
/// under `compare/`, and `compare.md`, `compare.json`; N2: `n2/report.md`, `n2/report.json`,
/// `n2/audit.jsonl`).
pub fn replay(o: &Options, progress: &mut dyn Progress) -> Result<Outcome> {
    let report = one(o, &o.config, &o.out, progress)?;
    let compared = match &o.compare {
        Some(b) => {
            let dir = o.out.join("compare");
            let rb = one(o, b, &dir, progress)?;
            let cmp = Comparison::of(&report, &rb);
            write(&o.out.join("compare.md"), &cmp.markdown())?;
            write(&o.out.join("compare.json"), &serde_json::to_string_pretty(&cmp)?)?;
            Some((rb, cmp))
        }
        None => None,
    };
    let n2 = match &o.n2_config {
        Some(p) => {
            let dir = o.out.join("n2");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let local = direction::Local::new(&o.local);
            let r = n2::replay_n2(&o.capture, p, &local, &dir.join("audit.jsonl"), o.pacing, progress)?;
            write(&dir.join("report.json"), &serde_json::to_string_pretty(&r)?)?;
            write(&dir.join("report.md"), &r.markdown())?;
            Some(r)
        }
        None => None,
    };
    Ok(Outcome { report, compared, n2 })
}

fn one(o: &Options, config: &Path, out: &Path, progress: &mut dyn Progress) -> Result<Report> {
    let cfg = Config::load(config).with_context(|| format!("configuration {}", config.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The UPF's own N3 addresses are its local ones too.
    let local = direction::Local::new(o.local.iter().chain(&cfg.guard.n3_addrs));
    let r = run::replay(&o.capture, &cfg, config, &local, &out.join("audit.jsonl"), o.pacing, progress)?;
    write(&out.join("report.json"), &serde_json::to_string_pretty(&r)?)?;
    write(&out.join("decisions.json"), &r.decisions_json())?;
    write(&out.join("report.md"), &r.markdown())?;
    write(&out.join("timeline.svg"), &r.timeline_svg())?;
    Ok(r)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
