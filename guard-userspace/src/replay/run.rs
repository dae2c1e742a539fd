//! One replay of a capture with one configuration: every frame through `guard_n3` by
//! BPF_PROG_TEST_RUN, the controller stepped on the capture's clock (docs/replay.md).

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result};

use super::{
    capture::{Capture, CaptureError},
    direction::Local,
    feed::Feed,
    report::{Actions, DeviceRow, GnbRow, Report, TimedDecision, TimelinePoint},
    Progress,
};
use crate::{
    bpf::pins::PinDir,
    config::Config,
    n3::{
        controller::{replay::ReplayController, sync_tables},
        engine::{addr_str, device_key_str, Decision},
        load,
    },
};

/// Where replayed time starts on the programs' monotonic scale: the capture's first frame is at
/// this many ns. Not 0: zero means "never" in several records (a stage's expiry, the clock
/// cache's jiffy), and a host that just booted is not what a capture shows.
pub const REPLAY_EPOCH_NS: u64 = 1_000_000_000_000;

/// XDP return codes (`enum xdp_action`).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// How fast to replay. Decisions do not depend on it (the clock is the capture's): it is for
/// watching a replay, e.g. its audit trail, at a pace a person can follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    AsFastAsPossible,
    /// This many times the capture's own speed.
    Speed(f64),
}

/// A pin directory of this replay's own, `/sys/fs/bpf/og-replay-<pid>-<ns>-<side>`, removed on drop
/// (also on a panic). aya pins the maps the object declares pinned; a replay keeps none: the
/// replay loaders unpin them as soon as they exist, before the program's verification, and
/// remove the directory with them (`PinDir::purge`), so nothing of a replay is seen by `guard
/// status` or another guard, and a replay killed while loading leaves nothing behind.
pub(super) struct ScratchPins {
    pub(super) pins: PinDir,
}

impl ScratchPins {
    pub(super) fn new(side: &str) -> ScratchPins {
        use std::time::SystemTime;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("og-replay-{}-{nanos}-{side}", std::process::id());
        ScratchPins { pins: PinDir::new(Path::new("/sys/fs/bpf"), &name) }
    }

    pub(super) fn remove(&self) {
        if let Err(e) = self.pins.purge() {
            tracing::warn!(error = %e, dir = %self.pins.path().display(), "removing the replay's pins");
        }
    }
}

impl Drop for ScratchPins {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Replay `capture` with `cfg` (read from `config_path`); the audit trail goes to `audit`.
/// Frames `local` says the host sent are counted, not replayed: `guard_n3` on the NIC's
/// ingress never sees them. A capture that could not be read to its end still gives a report of
/// what was read, with `complete: false` and the reason.
pub fn replay(
    capture: &Path,
    cfg: &Config,
    config_path: &Path,
    local: &Local,
    audit: &Path,
    pacing: Pacing,
    progress: &mut dyn Progress,
) -> Result<Report> {
    crate::bpf::object::require_root()?;
    let total_bytes = std::fs::metadata(capture).map(|m| m.len()).unwrap_or(0);
    let mut cap = Capture::open(capture)?;
    // Every packet on one CPU: the per-CPU limiter state (host cap, event budget) is then one,
    // as it is for a flow that RSS keeps on one queue (docs/replay.md, "Limits").
    pin_to_current_cpu()?;
    let scratch = ScratchPins::new("n3");
    let mut loaded = load::load_replay(&scratch.pins, cfg.guard.max_devices, &cfg.dataplane(1))
        .context("loading guard_n3 for the replay")?;
    scratch.remove();
    let mut feed = Feed::new(&mut loaded.ebpf, pacing)?;
    sync_tables(&mut crate::n3::maps::N3Maps::from_ebpf_ref(&mut loaded.ebpf)?, cfg)
        .context("writing the N3 addresses and framed routes")?;
    let mut ctl = ReplayController::new(&mut loaded, cfg.clone(), audit, 1)?;
    progress.step(&format!("loaded guard_n3 for the replay (config {})", config_path.display()));

    let mut r = Report::new(capture, config_path);
    let tick_ns = ctl.tick_ns();
    let mut sched = Schedule {
        tick_ns,
        pass_ns: ctl.event_pass_ns(),
        next_tick: REPLAY_EPOCH_NS,
        next_pass: REPLAY_EPOCH_NS + ctl.event_pass_ns(),
        t0: 0,
        window: Actions::default(),
        verdicts: BTreeMap::new(),
    };
    let mut first_ts: Option<u64> = None;
    let mut now = REPLAY_EPOCH_NS;
    let outcome: Result<(), CaptureError> = loop {
        let f = match cap.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        sched.t0 = *first_ts.get_or_insert(f.ts_ns);
        now = REPLAY_EPOCH_NS.saturating_add(f.ts_ns.saturating_sub(sched.t0));
        // The controller's ticks and event passes due before this frame, in time order.
        catch_up(&mut ctl, &mut r, now, &mut sched)?;
        feed.pace(now);
        if !Feed::admit(&f, &mut r.capture) {
            continue;
        }
        if local.sent_by_host(&f.data) {
            r.capture.egress += 1;
            continue;
        }
        let ret = feed.run(loaded.program()?, now, &f.data, r.capture.frames_read)?;
        ctl.drain_events();
        r.capture.frames_replayed += 1;
        sched.window.count(ret);
        r.actions.count(ret);
        if r.capture.frames_read % 4096 == 0 {
            progress.position(cap.consumed, total_bytes, (now - REPLAY_EPOCH_NS) as f64 / 1e9);
        }
    };
    r.capture.format = cap.format().to_owned();
    r.capture.reordered = cap.reordered;
    let t0 = first_ts.unwrap_or(0);
    r.capture.first_unix_s = t0 as f64 / 1e9;
    r.capture.duration_s = (now - REPLAY_EPOCH_NS) as f64 / 1e9;
    // Two more ticks after the last frame: the controller decides on what the last tick before
    // it had not read yet.
    let end = now + 2 * tick_ns;
    catch_up(&mut ctl, &mut r, end, &mut sched)?;
    if let Err(e) = outcome {
        r.capture.complete = false;
        r.capture.error = Some(e.to_string());
    }
    finish(&ctl, &mut r)?;
    progress.done(&format!(
        "replayed {} of {} frames, {} decisions ({:.1} s of capture in {:.1} s)",
        r.capture.frames_replayed,
        r.capture.frames_read,
        r.decisions.len(),
        r.capture.duration_s,
        feed.elapsed().as_secs_f64()
    ));
    Ok(r)
}

/// When the controller runs next, and what the timeline counts between two ticks.
struct Schedule {
    tick_ns: u64,
    pass_ns: u64,
    next_tick: u64,
    next_pass: u64,
    /// The capture's first frame (ns since the epoch).
    t0: u64,
    /// XDP actions since the last tick.
    window: Actions,
    /// `N3_VERDICTS` at the last tick.
    verdicts: BTreeMap<String, u64>,
}

/// Run the ticks and event passes due at or before `until`. A tick and a pass due at the same
/// time are one tick (it drains the events too).
fn catch_up(ctl: &mut ReplayController, r: &mut Report, until: u64, s: &mut Schedule) -> Result<()> {
    loop {
        let due = s.next_tick.min(s.next_pass);
        if due > until {
            return Ok(());
        }
        let rel = (due - REPLAY_EPOCH_NS) as f64 / 1e9;
        if s.next_tick <= s.next_pass {
            let d = ctl.tick(due).context("a controller tick")?;
            record(r, rel, s.t0, d);
            let snap = ctl.snapshot();
            // The program's own verdict counters, as moved since the last tick.
            let now: BTreeMap<String, u64> =
                ctl.maps().verdicts()?.into_iter().map(|(v, c)| (v.name().to_owned(), c.packets)).collect();
            let moved = now
                .iter()
                .filter_map(|(k, n)| {
                    let d = n.saturating_sub(s.verdicts.get(k).copied().unwrap_or(0));
                    (d > 0).then(|| (k.clone(), d))
                })
                .collect();
            s.verdicts = now;
            r.timeline.push(TimelinePoint {
                t_s: rel,
                passed: s.window.passed,
                dropped: s.window.dropped,
                verdicts: moved,
                staged: snap.devices_per_stage[1..].iter().sum(),
                cells_capped: snap.cells_capped.len() as u64,
                host_capped: snap.host_capped,
            });
            s.window = Actions::default();
            if s.next_pass == s.next_tick {
                s.next_pass += s.pass_ns;
            }
            s.next_tick += s.tick_ns;
        } else {
            let d = ctl.events_pass(due);
            record(r, rel, s.t0, d);
            s.next_pass += s.pass_ns;
        }
    }
}

/// Keep the decisions that change something (refreshes re-issue a stage: counted only).
fn record(r: &mut Report, t_s: f64, t0: u64, decisions: Vec<Decision>) {
    for d in decisions {
        if d.is_refresh() {
            r.refreshes += 1;
            continue;
        }
        r.decisions.push(TimedDecision {
            t_s,
            unix_s: t0 as f64 / 1e9 + t_s,
            action: d.action().to_owned(),
            target: d.target(),
            reason: d.reason().name().to_owned(),
            summary: d.summary(),
            decision: serde_json::to_value(&d).unwrap_or(serde_json::Value::Null),
        });
    }
}

/// The counters, devices and gNBs at the end of the replay.
fn finish(ctl: &ReplayController, r: &mut Report) -> Result<()> {
    let maps = ctl.maps();
    let nonzero = |v: Vec<(String, u64)>| v.into_iter().filter(|(_, n)| *n > 0).collect::<BTreeMap<_, _>>();
    r.verdicts = nonzero(maps.verdicts()?.into_iter().map(|(v, c)| (v.name().to_owned(), c.packets)).collect());
    r.shadow = nonzero(maps.shadow()?.into_iter().map(|(v, c)| (v.name().to_owned(), c.packets)).collect());
    r.malformed = nonzero(maps.malformed()?.into_iter().map(|(m, c)| (m.name().to_owned(), c.packets)).collect());
    // Devices the controller staged at any time, and devices the data plane dropped from.
    let mut staged: BTreeMap<String, (u32, f64)> = BTreeMap::new();
    for d in &r.decisions {
        if let Some(stage) = d.decision.get("stage").and_then(|s| s.as_u64()) {
            if d.action == "set_device_stage" && stage > 0 {
                let e = staged.entry(d.target.clone()).or_insert((stage as u32, d.t_s));
                e.0 = e.0.max(stage as u32);
            }
        }
    }
    let mut gnbs: BTreeMap<String, GnbRow> = BTreeMap::new();
    for (k, s) in maps.devices() {
        let key = device_key_str(&k);
        let gnb = addr_str(&s.cell);
        let g = gnbs.entry(gnb.clone()).or_insert_with(|| GnbRow { gnb: gnb.clone(), ..GnbRow::default() });
        g.devices += 1;
        g.packets += s.packets();
        g.dropped += s.dropped();
        let st = staged.get(&key);
        if st.is_some() || s.dropped() > 0 {
            g.affected_devices += 1;
            r.devices.push(DeviceRow {
                device: key,
                gnb,
                packets: s.packets(),
                dropped: s.dropped(),
                max_stage: st.map_or(0, |s| s.0),
                first_staged_s: st.map(|s| s.1),
            });
        }
    }
    r.devices.sort_by(|a, b| b.dropped.cmp(&a.dropped).then_with(|| a.device.cmp(&b.device)));
    for d in &r.decisions {
        if d.action == "set_cell_cap" {
            let cell = d.target.trim_start_matches("cell:").to_owned();
            gnbs.entry(cell.clone()).or_insert_with(|| GnbRow { gnb: cell, ..GnbRow::default() }).capped = true;
        }
        if d.action == "set_host_cap" {
            r.host_capped = true;
        }
    }
    r.gnbs = gnbs.into_values().filter(|g| g.affected_devices > 0 || g.capped || g.dropped > 0).collect();
    Ok(())
}

/// Pin the calling thread to the CPU it runs on: BPF_PROG_TEST_RUN runs the program on the
/// caller's CPU, and its per-CPU state must be one CPU's for the whole replay.
pub(super) fn pin_to_current_cpu() -> Result<()> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        return Err(std::io::Error::last_os_error()).context("sched_getcpu");
    }
    // SAFETY: cpu_set_t is plain old data; CPU_SET writes inside it; sched_setaffinity(0) is the
    // calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

impl Actions {
    pub(super) fn count(&mut self, ret: u32) {
        match ret {
            XDP_PASS => self.passed += 1,
            XDP_DROP => self.dropped += 1,
            _ => self.other += 1,
        }
    }
}
