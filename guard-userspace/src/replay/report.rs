//! What a replay found, as JSON (`report.json`, `decisions.json`), markdown (`report.md`) and a
//! timeline plot (`timeline.svg`); and the difference of two replays (`compare.md`/`.json`).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde::Serialize;

/// One replay's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub capture: CaptureSummary,
    pub config: String,
    /// XDP actions the program returned.
    pub actions: Actions,
    /// `N3_VERDICTS` at the end, by verdict (only the non-zero ones).
    pub verdicts: BTreeMap<String, u64>,
    /// Shadow-mode "would drop" counts (`N3_SHADOW`).
    pub shadow: BTreeMap<String, u64>,
    /// Malformed packets by reason (`N3_MALFORMED`).
    pub malformed: BTreeMap<String, u64>,
    /// Every decision that changed something, in order.
    pub decisions: Vec<TimedDecision>,
    /// Re-issues of stages the engine still wanted (not listed).
    pub refreshes: u64,
    /// Devices staged at any time or dropped from, most dropped first.
    pub devices: Vec<DeviceRow>,
    /// gNBs with an affected device, a cap or drops.
    pub gnbs: Vec<GnbRow>,
    pub host_capped: bool,
    /// One point per controller tick.
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CaptureSummary {
    pub path: String,
    pub format: String,
    /// The whole capture was read. False: `error` says where and why it stopped, and everything
    /// in the report is about the frames before.
    pub complete: bool,
    pub error: Option<String>,
    pub frames_read: u64,
    pub frames_replayed: u64,
    /// Frames cut by the capture's snap length: a shorter frame would not get the verdict the
    /// whole one gets, so they are not replayed.
    pub skipped_snapped: u64,
    /// Frames shorter than an Ethernet header or larger than BPF_PROG_TEST_RUN takes (a host
    /// capture's GRO-merged frames).
    pub skipped_size: u64,
    /// Frames up to 1 ms out of time order, replayed at the previous frame's time.
    pub reordered: u64,
    /// Frames the guarded host sent (their outer source is a `--local` address, or for N3 one
    /// of `guard.n3_addrs`), which the ingress program never sees. N3: not replayed; N2: run
    /// through the egress classifier `guard_n2_egress`.
    pub egress: u64,
    pub first_unix_s: f64,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Actions {
    pub passed: u64,
    pub dropped: u64,
    pub other: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimedDecision {
    /// Seconds since the capture's first frame.
    pub t_s: f64,
    /// The capture's own time (Unix seconds).
    pub unix_s: f64,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub summary: String,
    /// The engine's decision as the audit trail records it (with its evidence).
    pub decision: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub device: String,
    pub gnb: String,
    pub packets: u64,
    pub dropped: u64,
    /// The most severe stage the controller set (0: none, dropped by a data-plane limit alone).
    pub max_stage: u32,
    pub first_staged_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GnbRow {
    pub gnb: String,
    pub devices: u64,
    pub affected_devices: u64,
    pub packets: u64,
    pub dropped: u64,
    /// The controller capped this gNB at some time.
    pub capped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    /// Frames passed / dropped since the previous tick.
    pub passed: u64,
    pub dropped: u64,
    /// The program's verdict counters (`N3_VERDICTS`) that moved since the previous tick: why
    /// those frames passed or dropped.
    pub verdicts: BTreeMap<String, u64>,
    /// Devices above observe after this tick.
    pub staged: u64,
    pub cells_capped: u64,
    pub host_capped: bool,
}

impl Report {
    pub fn new(capture: &Path, config: &Path) -> Report {
        Report {
            capture: CaptureSummary { path: capture.display().to_string(), complete: true, ..Default::default() },
            config: config.display().to_string(),
            actions: Actions::default(),
            verdicts: BTreeMap::new(),
            shadow: BTreeMap::new(),
            malformed: BTreeMap::new(),
            decisions: Vec::new(),
            refreshes: 0,
            devices: Vec::new(),
            gnbs: Vec::new(),
            host_capped: false,
            timeline: Vec::new(),
        }
    }

    /// The decisions alone, as JSON: the same capture and configuration give the same file.
    pub fn decisions_json(&self) -> String {
        serde_json::to_string_pretty(&self.decisions).unwrap_or_default()
    }

    /// Devices the controller staged (above observe), sorted.
    pub fn staged_devices(&self) -> Vec<String> {
        self.devices.iter().filter(|d| d.max_stage > 0).map(|d| d.device.clone()).collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.capture;
        let _ = writeln!(s, "# guard replay: {}\n", c.path);
        let _ = writeln!(
            s,
            "Configuration `{}`; {} capture, {:.3} s from Unix time {:.3}.\n",
            self.config, c.format, c.duration_s, c.first_unix_s
        );
        if !c.complete {
            let _ = writeln!(
                s,
                "**INCOMPLETE: the capture was not read to its end.** {}\nEverything below is about the {} frames read before that.\n",
                c.error.as_deref().unwrap_or("unknown error"),
                c.frames_read
            );
        }
        let _ = writeln!(s, "## Frames\n\n| | frames |\n|---|---:|");
        for (k, v) in [
            ("read", c.frames_read),
            ("replayed through guard_n3", c.frames_replayed),
            ("passed (XDP_PASS)", self.actions.passed),
            ("dropped (XDP_DROP)", self.actions.dropped),
            ("other XDP action", self.actions.other),
            ("not replayed: cut by the snap length", c.skipped_snapped),
            ("not replayed: too short or too large for BPF_PROG_TEST_RUN", c.skipped_size),
            ("not replayed: sent by the host itself (--local, guard.n3_addrs)", c.egress),
            ("out of order by up to 1 ms (replayed at the previous frame's time)", c.reordered),
        ] {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        for (title, m) in [
            ("Verdicts by reason", &self.verdicts),
            ("Shadow mode: would have dropped", &self.shadow),
            ("Malformed, by reason", &self.malformed),
        ] {
            if m.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n## {title}\n\n| | packets |\n|---|---:|");
            for (k, v) in m {
                let _ = writeln!(s, "| {k} | {v} |");
            }
        }
        let _ =
            writeln!(s, "\n## Decisions ({} changes, {} refreshes not listed)\n", self.decisions.len(), self.refreshes);
        if self.decisions.is_empty() {
            let _ = writeln!(s, "None: the controller staged nothing.");
        } else {
            let _ = writeln!(s, "| t (s) | action | target | reason | summary |\n|---:|---|---|---|---|");
            for d in &self.decisions {
                let _ = writeln!(
                    s,
                    "| {:.3} | {} | {} | {} | {} |",
                    d.t_s,
                    d.action,
                    d.target,
                    d.reason,
                    d.summary.replace('|', "/")
                );
            }
        }
        let _ = writeln!(s, "\n## Devices affected ({})\n", self.devices.len());
        if !self.devices.is_empty() {
            let _ = writeln!(
                s,
                "| device | gNB | packets | dropped | max stage | first staged (s) |\n|---|---|---:|---:|---|---:|"
            );
            for d in &self.devices {
                let first = d.first_staged_s.map_or("-".to_owned(), |t| format!("{t:.3}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    d.device,
                    d.gnb,
                    d.packets,
                    d.dropped,
                    crate::n3::engine::decision::stage_name(d.max_stage),
                    first
                );
            }
        }
        let _ = writeln!(s, "\n## gNBs affected ({})\n", self.gnbs.len());
        if !self.gnbs.is_empty() {
            let _ =
                writeln!(s, "| gNB | devices | affected | packets | dropped | capped |\n|---|---:|---:|---:|---:|---|");
            for g in &self.gnbs {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    g.gnb,
                    g.devices,
                    g.affected_devices,
                    g.packets,
                    g.dropped,
                    if g.capped { "yes" } else { "no" }
                );
            }
        }
        let _ = writeln!(s, "\nHost cap: {}.\n", if self.host_capped { "set at some time" } else { "never" });
        let _ = writeln!(s, "## Timeline\n\n![timeline](timeline.svg)\n");
        s
    }

    /// Frames passed and dropped per tick, and staged devices, as an SVG line plot; a tick mark
    /// per decision.
    pub fn timeline_svg(&self) -> String {
        let (w, h, pad) = (900.0, 300.0, 50.0);
        let t_max = self.timeline.last().map_or(1.0, |p| p.t_s).max(1e-3);
        let y_max = self.timeline.iter().map(|p| p.passed.max(p.dropped)).max().unwrap_or(1).max(1) as f64;
        let s_max = self.timeline.iter().map(|p| p.staged).max().unwrap_or(1).max(1) as f64;
        let x = |t: f64| pad + (w - 2.0 * pad) * t / t_max;
        let y = |v: f64, m: f64| h - pad - (h - 2.0 * pad) * v / m;
        let line = |f: &dyn Fn(&TimelinePoint) -> f64, m: f64| {
            self.timeline.iter().map(|p| format!("{:.1},{:.1}", x(p.t_s), y(f(p), m))).collect::<Vec<_>>().join(" ")
        };
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
             <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n\
             <text x=\"{pad}\" y=\"{t}\">frames per tick (max {y_max}): passed (blue), dropped (red); staged devices (green, max {s_max}); decisions (grey)</text>\n\
",
            b = h - pad,
            r = w - pad,
            t = pad - 10.0,
        );
        // Time labels at fifths of the capture, and the frame scale on the left.
        for i in 0..=5 {
            let t = t_max * f64::from(i) / 5.0;
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.1} s</text>",
                x(t),
                h - pad + 15.0
            );
        }
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y_max}</text>", pad - 4.0, pad + 4.0);
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>", pad - 4.0, h - pad);
        for d in &self.decisions {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{pad}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#bbb\"/>",
                x(d.t_s),
                h - pad
            );
        }
        for (color, pts) in [
            ("blue", line(&|p| p.passed as f64, y_max)),
            ("red", line(&|p| p.dropped as f64, y_max)),
            ("green", line(&|p| p.staged as f64, s_max)),
        ] {
            let _ = writeln!(s, "<polyline fill=\"none\" stroke=\"{color}\" points=\"{pts}\"/>");
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The difference of two replays of one capture (`--compare`).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub actions: (Actions, Actions),
    /// Verdict counts that differ: (a, b).
    pub verdicts: BTreeMap<String, (u64, u64)>,
    pub staged_only_a: Vec<String>,
    pub staged_only_b: Vec<String>,
    pub staged_both: Vec<String>,
    /// Decisions by action: (a, b).
    pub decisions: BTreeMap<String, (u64, u64)>,
    pub gnbs_capped: (Vec<String>, Vec<String>),
    pub host_capped: (bool, bool),
}

impl Comparison {
    pub fn of(a: &Report, b: &Report) -> Comparison {
        let mut verdicts = BTreeMap::new();
        for k in a.verdicts.keys().chain(b.verdicts.keys()) {
            let (x, y) = (a.verdicts.get(k).copied().unwrap_or(0), b.verdicts.get(k).copied().unwrap_or(0));
            if x != y {
                verdicts.insert(k.clone(), (x, y));
            }
        }
        let (sa, sb) = (a.staged_devices(), b.staged_devices());
        let mut decisions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for d in &a.decisions {
            decisions.entry(d.action.clone()).or_default().0 += 1;
        }
        for d in &b.decisions {
            decisions.entry(d.action.clone()).or_default().1 += 1;
        }
        let capped = |r: &Report| r.gnbs.iter().filter(|g| g.capped).map(|g| g.gnb.clone()).collect::<Vec<_>>();
        Comparison {
            a: a.config.clone(),
            b: b.config.clone(),
            actions: (a.actions, b.actions),
            verdicts,
            staged_only_a: sa.iter().filter(|d| !sb.contains(d)).cloned().collect(),
            staged_only_b: sb.iter().filter(|d| !sa.contains(d)).cloned().collect(),
            staged_both: sa.iter().filter(|d| sb.contains(d)).cloned().collect(),
            decisions,
            gnbs_capped: (capped(a), capped(b)),
            host_capped: (a.host_capped, b.host_capped),
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# guard replay: A `{}` against B `{}`\n\n| | A | B |\n|---|---:|---:|\n", self.a, self.b);
        let (x, y) = self.actions;
        for (k, a, b) in [("passed", x.passed, y.passed), ("dropped", x.dropped, y.dropped)] {
            let _ = writeln!(s, "| frames {k} | {a} | {b} |");
        }
        for (k, (a, b)) in &self.verdicts {
            let _ = writeln!(s, "| verdict {k} | {a} | {b} |");
        }
        for (k, (a, b)) in &self.decisions {
            let _ = writeln!(s, "| decisions {k} | {a} | {b} |");
        }
        let _ = writeln!(s, "| gNBs capped | {} | {} |", self.gnbs_capped.0.len(), self.gnbs_capped.1.len());
        let _ = writeln!(s, "| host cap | {} | {} |", self.host_capped.0, self.host_capped.1);
        for (title, v) in [
            ("Staged by A only", &self.staged_only_a),
            ("Staged by B only", &self.staged_only_b),
            ("Staged by both", &self.staged_both),
        ] {
            let _ = writeln!(s, "\n## {title} ({})\n", v.len());
            for d in v {
                let _ = writeln!(s, "- {d}");
            }
        }
        s
    }
}
