//! The N2 replay (`--n2-config`): every frame of the capture through `guard_n2` by
//! BPF_PROG_TEST_RUN on the capture's clock (`n2::load::load_replay`), and the N2 controller
//! ticking on the same clock (`N2Controller::tick` takes the time; its audit lines carry the
//! capture's time). The response hook is never called: a replay records what the guard would have
//! requested, it does not request it.
//!
//! The egress classifier `guard_n2_egress` (the AMF's INIT ACKs and association ports, which
//! give known peers their setup lanes) is replayed too when the AMF's addresses are given
//! (`--local`, [`Local`]): a frame from one of them runs through it, in capture order, instead of
//! through `guard_n2`, as it would live (the classifier sits on the NIC's egress, `guard_n2` on
//! its ingress). Without them the direction of a frame cannot be told: every frame goes through
//! `guard_n2` and the replay runs as the live guard does when the classifier could not be
//! attached (`cookie_check = require` falls back to `prefer`), which the report says. See
//! docs/replay.md, "Which way a frame went".

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use guard_common::{
    abi::L3Addr,
    abi_n2::{N2_DEFAULT_MAX_CELLS, N2_DEFAULT_MAX_PEERS, N2_SETUP_COOKIE_REQUIRED},
};
use serde::Serialize;

use super::{
    capture::{Capture, CaptureError},
    direction::Local,
    feed::Feed,
    report::{Actions, CaptureSummary},
    run::{pin_to_current_cpu, Pacing, ScratchPins, REPLAY_EPOCH_NS},
    Progress,
};
use crate::{
    audit::AuditLog,
    config::n2::N2File,
    n2::{controller::N2Controller, metrics::N2Metrics, LoadOpts},
};

/// What the N2 replay found.
#[derive(Debug, Clone, Serialize)]
pub struct N2Report {
    pub capture: CaptureSummary,
    pub config: String,
    pub actions: Actions,
    /// `N2_VERDICTS` at the end (non-zero ones).
    pub verdicts: BTreeMap<String, u64>,
    pub shadow: BTreeMap<String, u64>,
    pub malformed: BTreeMap<String, u64>,
    /// The setup lanes' counters (`N2_STATS`, named as the `setup_events` metric names them):
    /// COOKIE ECHOs with an issued / unissued tag, INITs on a re-establishment lane, INIT ACKs
    /// and association ports the egress classifier learned (non-zero ones).
    pub setup_events: BTreeMap<String, u64>,
    /// The controller's audit lines, in order: peer setup stages, storm classification, and the
    /// responses it would have sent to the hook (NGAP OVERLOAD START/STOP, barring, back-off
    /// lists). `ts` is the capture's time.
    pub decisions: Vec<serde_json::Value>,
    /// Peers given a setup stage at some time.
    pub peers_staged: Vec<String>,
    /// Responses the controller would have requested.
    pub responses: u64,
    /// The AMF's addresses were given (`--local`): its frames ran through `guard_n2_egress`.
    pub egress_classifier: bool,
    /// `cookie_check` as replayed ("require", "prefer", "off"): "require" falls back to "prefer"
    /// without the egress classifier, as `guard run` does when it cannot attach it.
    pub cookie_check: String,
}

/// Replay `capture` through `guard_n2` with the N2 settings file `n2_path`, the frames `local`
/// says the AMF sent through `guard_n2_egress`; the controller's audit goes to `audit`.
pub fn replay_n2(
    capture: &Path,
    n2_path: &Path,
    local: &Local,
    audit: &Path,
    pacing: Pacing,
    progress: &mut dyn Progress,
) -> Result<N2Report> {
    crate::bpf::object::require_root()?;
    let mut file = N2File::read(Some(n2_path)).with_context(|| format!("N2 settings {}", n2_path.display()))?;
    // Never call the operator's hook from a replay: what it would have been sent is audited.
    file.hook = None;
    let total_bytes = std::fs::metadata(capture).map(|m| m.len()).unwrap_or(0);
    let mut cap = Capture::open(capture)?;
    pin_to_current_cpu()?;
    let scratch = ScratchPins::new("n2");
    let opts = LoadOpts {
        max_devices: file.dataplane.max_devices,
        max_cells: N2_DEFAULT_MAX_CELLS,
        max_peers: N2_DEFAULT_MAX_PEERS,
    };
    let mut cfg = file.dataplane.config()?;
    let egress_classifier = !local.is_empty();
    if !egress_classifier {
        // No direction, so no egress classifier: as `guard run` without it (n2/controller.rs
        // `prepare`). The lanes it feeds stay empty either way.
        cfg.setup_flags &= !N2_SETUP_COOKIE_REQUIRED;
    }
    let cookie_check = if cfg.cookie_life_ns == 0 {
        "off"
    } else if cfg.setup_flags & N2_SETUP_COOKIE_REQUIRED != 0 {
        "require"
    } else {
        "prefer"
    };
    let (mut loaded, mut maps) =
        crate::n2::load::load_replay(&scratch.pins, &opts, &cfg).context("loading guard_n2 for the replay")?;
    if egress_classifier {
        loaded.egress_program().context("loading guard_n2_egress for the replay")?;
    }
    scratch.remove();
    for a in &file.dataplane.allow {
        let peer = match a {
            std::net::IpAddr::V4(v) => L3Addr::v4(v.octets()),
            std::net::IpAddr::V6(v) => L3Addr::v6(v.octets()),
        };
        maps.allow_peer(&peer).with_context(|| format!("allowing {a}"))?;
    }
    let mut feed = Feed::new(&mut loaded.ebpf, pacing)?;
    let audit_log = AuditLog::open(audit).with_context(|| format!("opening {}", audit.display()))?;
    let mut registry = prometheus_client::registry::Registry::default();
    let mut ctl = N2Controller::new(&file, audit_log, N2Metrics::register(&mut registry))?;
    progress.step(&format!("loaded guard_n2 for the replay (N2 settings {})", n2_path.display()));

    let tick_ns = file.tick().as_nanos().max(10_000_000) as u64;
    let mut r = N2Report {
        capture: CaptureSummary { path: capture.display().to_string(), complete: true, ..Default::default() },
        config: n2_path.display().to_string(),
        actions: Actions::default(),
        verdicts: BTreeMap::new(),
        shadow: BTreeMap::new(),
        malformed: BTreeMap::new(),
        setup_events: BTreeMap::new(),
        decisions: Vec::new(),
        peers_staged: Vec::new(),
        responses: 0,
        egress_classifier,
        cookie_check: cookie_check.to_owned(),
    };
    let (mut t0, mut now, mut next_tick) = (None, REPLAY_EPOCH_NS, REPLAY_EPOCH_NS);
    let wall =
        |t0: u64, now: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(t0.saturating_add(now - REPLAY_EPOCH_NS));
    let outcome: Result<(), CaptureError> = loop {
        let f = match cap.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let first = *t0.get_or_insert(f.ts_ns);
        now = REPLAY_EPOCH_NS.saturating_add(f.ts_ns.saturating_sub(first));
        while next_tick <= now {
            r.responses += ctl.tick(&mut maps, next_tick, wall(first, next_tick)).len() as u64;
            next_tick += tick_ns;
        }
        feed.pace(now);
        if !Feed::admit(&f, &mut r.capture) {
            continue;
        }
        if local.sent_by_host(&f.data) {
            // What the AMF sent: the egress classifier learns its INIT ACK tags and association
            // ports before the next frame from the RAN is judged (RFC 9260 §5.1: the COOKIE
            // ECHO follows the INIT ACK it answers).
            feed.run(loaded.egress_program()?, now, &f.data, r.capture.frames_read).context("guard_n2_egress")?;
            r.capture.egress += 1;
            continue;
        }
        let ret = feed.run(loaded.program()?, now, &f.data, r.capture.frames_read).context("guard_n2")?;
        r.capture.frames_replayed += 1;
        r.actions.count(ret);
        if r.capture.frames_read % 4096 == 0 {
            progress.position(cap.consumed, total_bytes, (now - REPLAY_EPOCH_NS) as f64 / 1e9);
        }
    };
    let first = t0.unwrap_or(0);
    // Two more ticks after the last frame, as for N3.
    while next_tick <= now + 2 * tick_ns {
        r.responses += ctl.tick(&mut maps, next_tick, wall(first, next_tick)).len() as u64;
        next_tick += tick_ns;
    }
    r.capture.format = cap.format().to_owned();
    r.capture.reordered = cap.reordered;
    r.capture.first_unix_s = first as f64 / 1e9;
    r.capture.duration_s = (now - REPLAY_EPOCH_NS) as f64 / 1e9;
    if let Err(e) = outcome {
        r.capture.complete = false;
        r.capture.error = Some(e.to_string());
    }
    let nonzero = |v: Vec<(&'static str, u64)>| {
        v.into_iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_owned(), n)).collect::<BTreeMap<_, _>>()
    };
    r.verdicts = nonzero(maps.verdicts()?.into_iter().map(|(v, c)| (v.name(), c.packets)).collect());
    r.shadow = nonzero(maps.shadow()?.into_iter().map(|(v, c)| (v.name(), c.packets)).collect());
    r.malformed = nonzero(maps.malformed()?.into_iter().map(|(m, c)| (m.name(), c.packets)).collect());
    let stats = maps.stats()?;
    r.setup_events = nonzero(
        crate::n2::metrics::SETUP_EVENTS
            .iter()
            .filter_map(|&(i, name)| Some((name, stats.get(i as usize)?.packets)))
            .collect(),
    );
    let text = std::fs::read_to_string(audit).with_context(|| format!("reading back {}", audit.display()))?;
    r.decisions = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut staged: Vec<String> = r
        .decisions
        .iter()
        .filter(|d| d["action"] == "n2_set_peer_stage" && d["detail"]["refresh"] != true)
        .filter_map(|d| d["target"].as_str().map(str::to_owned))
        .collect();
    staged.sort();
    staged.dedup();
    r.peers_staged = staged;
    progress.done(&format!(
        "N2: replayed {} of {} frames, {} controller records, {} responses",
        r.capture.frames_replayed,
        r.capture.frames_read,
        r.decisions.len(),
        r.responses
    ));
    Ok(r)
}

impl N2Report {
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.capture;
        let mut s = format!(
            "# guard replay, N2: {}\n\nN2 settings `{}`; {:.3} s of capture.\n\n",
            c.path, self.config, c.duration_s
        );
        if !c.complete {
            let _ = writeln!(
                s,
                "**INCOMPLETE: the capture was not read to its end.** {}\nEverything below is about the {} frames read before that.\n",
                c.error.as_deref().unwrap_or("unknown error"),
                c.frames_read
            );
        }
        let _ = writeln!(
            s,
            "Frames: {} read, {} replayed through guard_n2, {} passed, {} dropped; {} sent by the AMF through \
             guard_n2_egress.\n",
            c.frames_read, c.frames_replayed, self.actions.passed, self.actions.dropped, c.egress
        );
        if self.egress_classifier {
            let _ = writeln!(
                s,
                "Direction: the AMF's addresses were given (--local); its frames ran through the egress \
                 classifier, cookie_check = {} as configured.\n",
                self.cookie_check
            );
        } else {
            let _ = writeln!(
                s,
                "Direction: unknown (no --local AMF address): every frame ran through guard_n2 and the egress \
                 classifier did not run, so the setup lanes (issued cookies, association ports) stayed empty \
                 and cookie_check = require ran as {} (as `guard run` without the classifier). A COOKIE \
                 ECHO or INIT that live had its lane may be limited here.\n",
                self.cookie_check
            );
        }
        for (title, m) in [
            ("Verdicts", &self.verdicts),
            ("Shadow mode: would have dropped", &self.shadow),
            ("Malformed", &self.malformed),
            ("Setup lanes (N2_STATS)", &self.setup_events),
        ] {
            if !m.is_empty() {
                let _ = writeln!(s, "## {title}\n\n| | packets |\n|---|---:|");
                for (k, v) in m {
                    let _ = writeln!(s, "| {k} | {v} |");
                }
                s.push('\n');
            }
        }
        let _ = writeln!(s, "## Controller ({} records, {} responses)\n", self.decisions.len(), self.responses);
        let _ = writeln!(
            s,
            "Peers given a setup stage: {}\n",
            if self.peers_staged.is_empty() { "none".to_owned() } else { self.peers_staged.join(", ") }
        );
        if !self.decisions.is_empty() {
            let _ = writeln!(s, "| time (capture) | action | target | reason |\n|---|---|---|---|");
            for d in &self.decisions {
                let f = |k: &str| d[k].as_str().unwrap_or("").to_owned();
                let _ = writeln!(s, "| {} | {} | {} | {} |", f("ts"), f("action"), f("target"), f("reason"));
            }
        }
        s
    }
}
