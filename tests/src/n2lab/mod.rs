//! The N2 test and lab kit.
//!
//! - [`bpf`]: `guard_n2` through BPF_PROG_TEST_RUN (corpus, exhaustion and verdict tests).
//! - The `lab_n2` lab (issue 5): [`spec`] (scenario files `lab/scenarios/n2_*.toml`), [`ran`]
//!   (gNB associations and devices on the wire), [`topo`] (namespaces, veths, the real `guard run`
//!   with an exec-recorder response hook), [`capture`] (what got past XDP), [`judge`] (the
//!   checks), [`summary`] (`report.md`, `report.json`). [`run_scenario`] runs one scenario end to
//!   end.

pub mod bpf;
pub mod capture;
pub mod judge;
pub mod ran;
pub mod spec;
pub mod summary;
pub mod topo;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::generator::{send_frames, SendOpts};
use capture::{Capture, Counts};
use ran::{Model, TxKind};
use spec::N2Scenario;
use topo::{N2Topo, RunFiles, N2_CORE_IF};

/// Set on SIGINT / SIGTERM once a lab binary called [`stop_on_signals`]: a running scenario stops
/// at the next slot and everything is cleaned up by the fixtures' `Drop`.
pub static INTERRUPTED: std::sync::LazyLock<std::sync::Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(AtomicBool::new(false)));

/// For the `lab_n2` and `lab_fleet` binaries: SIGINT and SIGTERM only set [`INTERRUPTED`]
/// (signal-hook's flag handler), so the run stops at its next slot and the fixtures' `Drop`
/// removes the guards, etcd, the pins, the links and the namespaces.
pub fn stop_on_signals() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&INTERRUPTED)).context("registering a signal flag")?;
    }
    Ok(())
}

/// How to run scenarios.
#[derive(Clone, Debug)]
pub struct RunOpts {
    pub guard_bin: PathBuf,
    /// Results go to `<out>/n2/<scenario>/` and `<out>/n2/report.{md,json}`.
    pub out: PathBuf,
    pub verbose: bool,
}

/// One PASS/FAIL line.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

/// A hook payload, reduced to what the report shows.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseLine {
    /// Seconds after the traffic started.
    pub t_s: f64,
    pub action: String,
    pub level: u64,
    pub reason: String,
    pub devices: usize,
    pub gnbs: Vec<String>,
    pub cells: Vec<String>,
    pub reduction_pct: Option<u64>,
    /// `devices`, `cell_pattern`, ... (docs/n2.md §4.6).
    pub attribution: String,
    /// Cells named by a pattern back-off (a cell-pattern storm).
    pub pattern_cells: Vec<String>,
}

/// Sent and received frames of one source and kind.
#[derive(Clone, Debug, Serialize)]
pub struct TrafficLine {
    pub src: Ipv4Addr,
    pub kind: TxKind,
    pub sent: u64,
    pub received: u64,
}

/// Everything one scenario produced.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub title: String,
    pub threat: String,
    pub wall_s: f64,
    pub checks: Vec<Check>,
    pub responses: Vec<ResponseLine>,
    pub traffic: Vec<TrafficLine>,
    pub capture_drops: u64,
    /// `guard_n2`'s verdict counters at the end (packets).
    pub verdicts: BTreeMap<String, u64>,
    pub dir: PathBuf,
}

impl ScenarioResult {
    pub fn pass(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }
}

/// What a scenario run recorded, for [`judge`].
pub struct Recorded {
    pub sent: Counts,
    pub received: Counts,
    /// Rogue INITs (sent, received) per slot, with the slot's start in seconds.
    pub rogue_slots: Vec<(f64, u64, u64)>,
    pub capture_drops: u64,
    /// CLOCK_MONOTONIC when the traffic started (the hook's `at_ns` clock).
    pub start_ns: u64,
    pub hook: Vec<serde_json::Value>,
    pub audit: Vec<serde_json::Value>,
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn add(c: &mut Counts, k: (Ipv4Addr, TxKind), n: u64) {
    if n > 0 {
        *c.entry(k).or_default() += n;
    }
}

/// Run one scenario: topology, guard, traffic, checks. Errors are setup failures (or an
/// interrupt); a scenario that runs but misses its goals is a result with failed checks.
pub fn run_scenario(s: &N2Scenario, opts: &RunOpts) -> Result<ScenarioResult> {
    run_scenario_captured(s, opts, None)
}

/// [`run_scenario`], with dumpcap on the RAN side of the N2 veth writing every frame to `capture`
/// (pcapng) when given (`guard replay`'s tests, issue 21). The run's `guard.toml` and `n2.toml`
/// are in [`ScenarioResult::dir`].
pub fn run_scenario_captured(s: &N2Scenario, opts: &RunOpts, capture: Option<&Path>) -> Result<ScenarioResult> {
    let t_wall = Instant::now();
    let files = RunFiles::new(&opts.out.join("n2").join(&s.name));
    let mut topo = N2Topo::new(&opts.guard_bin, files.clone())?;
    topo.write_configs(&s.n2)?;
    topo.start_guard()?;
    if opts.verbose {
        eprintln!(
            "lab_n2 [{}]: guard up in {:.1} s (netns {})",
            s.name,
            t_wall.elapsed().as_secs_f64(),
            topo.core_ns()
        );
    }
    let cap = Capture::start(&topo.lab.core, N2_CORE_IF)?;
    let mut dumpcap = match capture {
        Some(p) => Some(crate::capture::Dumpcap::start(&topo.lab.ran, topo.ran_n2_if(), p)?),
        None => None,
    };
    let mut model = Model::new(s);
    let rogue = model.truth.rogue;
    let slot = Duration::from_millis(s.slot_ms);
    let slots = (s.duration_s * 1000.0 / s.slot_ms as f64).ceil() as u64;
    let mut sent = Counts::new();
    let mut rogue_slots = Vec::new();
    let mut rogue_seen = 0;
    let start = Instant::now();
    let start_ns = guard::clock::monotonic_ns();
    for k in 0..slots {
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let until = (k + 1) as f64 * s.slot_ms as f64 / 1000.0;
        let txs = model.slot(until);
        let mut rogue_sent = 0;
        if !txs.is_empty() {
            let frames: Vec<Vec<u8>> = txs.iter().map(|t| t.frame.clone()).collect();
            let pps = (frames.len() as u64 * 1000).div_ceil(s.slot_ms).max(1);
            let o = SendOpts::new(frames.len() as u64, slot * 3).pps(pps).batch(16);
            let r = send_frames(&topo.lab.ran, topo.ran_n2_if(), &frames, &o).context("sending a slot")?;
            for (t, n) in txs.iter().zip(&r.per_frame) {
                add(&mut sent, (t.src, t.kind), *n);
                if Some(t.src) == rogue && t.kind == TxKind::Init {
                    rogue_sent += n;
                }
            }
        }
        // Pace: the slot's frames were spread over it; wait for its end.
        if let Some(rest) = (start + slot * (k as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
        if let Some(r) = rogue {
            let now = cap.snapshot().get(&(r, TxKind::Init)).copied().unwrap_or(0);
            rogue_slots.push((k as f64 * s.slot_ms as f64 / 1000.0, rogue_sent, now - rogue_seen));
            rogue_seen = now;
        }
        if opts.verbose && (k + 1) % (5000 / s.slot_ms).max(1) == 0 {
            let n: u64 = sent.values().sum();
            let got: u64 = cap.snapshot().values().sum();
            eprintln!("lab_n2 [{}]: t={until:.1}s sent {n}, past XDP {got}", s.name);
        }
    }
    debug_assert_eq!(model.remaining(), 0);
    // Let the last frames arrive and the controller run a few more ticks.
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(d) = dumpcap.as_mut() {
        d.stop();
    }
    let verdicts: BTreeMap<String, u64> = match guard::n2::N2Maps::open_pinned(&topo.n2_pins()) {
        Ok(m) => m.verdicts().map(|v| v.into_iter().map(|(v, c)| (v.name().to_owned(), c.packets)).collect()),
        Err(e) => Err(e),
    }
    .unwrap_or_default();
    topo.stop_guard();
    let (received, capture_drops) = cap.stop()?;
    let rec = Recorded {
        sent,
        received,
        rogue_slots,
        capture_drops,
        start_ns,
        hook: json_lines(&files.hook),
        audit: json_lines(&files.audit),
    };
    let checks = judge::judge(s, &model.truth, &rec);
    let responses = judge::responses(&rec);
    let mut keys: Vec<(Ipv4Addr, TxKind)> = rec.sent.keys().chain(rec.received.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    let traffic = keys
        .into_iter()
        .map(|k| TrafficLine {
            src: k.0,
            kind: k.1,
            sent: rec.sent.get(&k).copied().unwrap_or(0),
            received: rec.received.get(&k).copied().unwrap_or(0),
        })
        .collect();
    drop(topo);
    Ok(ScenarioResult {
        name: s.name.clone(),
        title: s.title.clone(),
        threat: s.threat.clone(),
        wall_s: t_wall.elapsed().as_secs_f64(),
        checks,
        responses,
        traffic,
        capture_drops: rec.capture_drops,
        verdicts,
        dir: files.dir,
    })
}
