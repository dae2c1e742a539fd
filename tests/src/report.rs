//! The lab's report: `report.md` (per scenario: the scores of the three modes side by side, the
//! escalations explained with the audit lines that record them, the acceptance checks),
//! `report.json` (every number) and per scenario a timeline plot (`<scenario>.svg` and `.png`,
//! drawn with plotters): offered, passed and dropped traffic by class over time, and the
//! device / cell / host stage levels.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use crate::population::{Class, Plan, SLOTS_PER_SEC};
use crate::scenario::{audit_summary, AuditLine, Mode, RunResult, Scenario};
use crate::score::{Check, Scores};

/// Everything about one scenario.
#[derive(Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub title: String,
    pub threat: String,
    pub description: String,
    pub devices: usize,
    pub benign_devices: usize,
    pub attack_devices: usize,
    pub duration_s: f64,
    pub onset_s: Option<f64>,
    pub offered_pps_peak: f64,
    pub scores: Vec<Scores>,
    pub checks: Vec<Check>,
    pub runs: Vec<RunResult>,
    #[serde(skip)]
    pub plan: Plan,
    #[serde(skip)]
    pub scenario: Scenario,
    pub plots: Vec<PathBuf>,
}

impl ScenarioReport {
    pub fn new(scenario: Scenario, plan: Plan, runs: Vec<RunResult>, scores: Vec<Scores>, checks: Vec<Check>) -> Self {
        let onset = scenario.onset(&plan);
        let peak = plan
            .offered_by_slot()
            .chunks(SLOTS_PER_SEC)
            .map(|w| w.iter().map(|c| c[0] + c[1]).sum::<u64>() as f64 * SLOTS_PER_SEC as f64 / w.len() as f64)
            .fold(0.0, f64::max);
        ScenarioReport {
            name: scenario.name.clone(),
            title: scenario.title.clone(),
            threat: scenario.threat.clone(),
            description: scenario.description.clone(),
            devices: plan.devices.len(),
            benign_devices: plan.devices.iter().filter(|d| d.class == Class::Benign).count(),
            attack_devices: plan.devices.iter().filter(|d| d.class == Class::Attack).count(),
            duration_s: scenario.duration_s,
            onset_s: onset,
            offered_pps_peak: peak,
            scores,
            checks,
            runs,
            plan,
            scenario,
            plots: Vec::new(),
        }
    }

    fn run(&self, m: Mode) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.mode == m)
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.2}%", 100.0 * x))
}

fn secs(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.1} s"))
}

/// The scores table: one column per mode.
fn scores_table(out: &mut String, scores: &[Scores]) {
    let _ = write!(out, "| | ");
    for s in scores {
        let _ = write!(out, "{} | ", s.mode.title());
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---|".repeat(scores.len()));
    let row = |out: &mut String, name: &str, f: &dyn Fn(&Scores) -> String| {
        let _ = write!(out, "| {name} | ");
        for s in scores {
            let _ = write!(out, "{} | ", f(s));
        }
        let _ = writeln!(out);
    };
    row(out, "benign delivery (overall)", &|s| pct(s.benign_delivery));
    row(out, "benign packets delivered / sent", &|s| format!("{} / {}", s.benign_delivered, s.benign_sent));
    row(out, "benign devices below 99%", &|s| format!("{} of {}", s.benign_devices_below_99, s.benign_devices));
    row(out, "worst benign device", &|s| {
        s.worst_benign_device.as_ref().map_or("–".into(), |(l, x)| format!("{:.1}% ({l})", 100.0 * x))
    });
    row(out, "benign devices staged (false positives)", &|s| s.benign_staged.len().to_string());
    row(out, "attack devices staged", &|s| format!("{} of {}", s.attack_devices_staged, s.attack_devices));
    row(out, "attack traffic dropped", &|s| pct(s.attack_dropped));
    row(out, "attack dropped from onset + grace", &|s| {
        format!("{} of {} (grace {:.0} s)", pct(s.attack_dropped_after_grace), s.attack_sent_after_grace, s.grace_s)
    });
    row(out, "time to mitigate (≥95% dropped from then on)", &|s| secs(s.time_to_mitigate_s));
    row(out, "highest device / cell / host stage", &|s| {
        format!("{} / {} / {}", s.max_device_stage, s.max_cell_stage, s.max_host_stage)
    });
    row(out, "controller CPU", &|s| match (s.guard_cpu_s, s.guard_cpu_pct) {
        (Some(c), Some(p)) => format!("{c:.2} s ({p:.1}% of a core)"),
        _ => "–".into(),
    });
    row(out, "unsent (sender late) / sink drops", &|s| format!("{} / {}", s.unsent, s.sink_kernel_drops));
    if scores.iter().any(|s| s.new_devices.as_ref().is_some_and(|n| n.forged_sources > 0 || n.readmitted > 0)) {
        row(
            out,
            "new TEIDs on gNB addresses: admitted / limited; G-PDU devices; forged with gNB addresses; evicted devices back (of them re-admitted without the budget)",
            &|s| {
                s.new_devices.as_ref().map_or("–".into(), |n| {
                    format!(
                        "{} / {}; {}; {}; {} ({})",
                        n.gnb_admitted, n.gnb_limited, n.gnb_devices, n.gnb_forged_sent, n.readmitted, n.gnb_readmitted_dp
                    )
                })
            },
        );
        row(
            out,
            "forged sources with a record of their own / new TEIDs of all forged sources admitted / limited",
            &|s| {
                s.new_devices.as_ref().map_or("–".into(), |n| {
                    format!("{} / {} / {}", n.forged_sources, n.forged_admitted, n.forged_limited)
                })
            },
        );
    }
    if scores.iter().any(|s| s.benign_later_sent > 0 || s.new_devices.as_ref().is_some_and(|n| n.drop_fragment > 0)) {
        row(out, "later fragments dropped / passed (data plane)", &|s| {
            s.new_devices.as_ref().map_or("–".into(), |n| format!("{} / {}", n.drop_fragment, n.pass_fragment))
        });
    }
    if scores.iter().any(|s| s.forged.is_some()) {
        row(out, "forged inner sources: dropped / sent (anti-spoofing drops; other devices flagged)", &|s| {
            s.forged.as_ref().map_or("–".into(), |f| {
                format!(
                    "{} / {} ({}; {})",
                    f.sent - f.delivered,
                    f.sent,
                    f.drop_spoof.map_or("–".into(), |n| n.to_string()),
                    f.flagged_others.len()
                )
            })
        });
    }
    if scores.iter().any(|s| s.echo_paths.is_some()) {
        row(out, "real Echo Requests passed / sent (paths declared down)", &|s| {
            s.echo_paths
                .as_ref()
                .map_or("–".into(), |p| format!("{} / {} ({} of {})", p.delivered, p.sent, p.down, p.paths))
        });
    }
    if scores.iter().any(|s| s.populations.len() > 1) {
        if let Some(first) = scores.first() {
            for p in &first.populations {
                row(out, &format!("population `{}`: delivered / sent", p.name), &|s| {
                    s.populations.iter().find(|q| q.name == p.name).map_or("–".into(), |q| {
                        let (d, t) = (q.delivered[0] + q.delivered[1], q.sent[0] + q.sent[1]);
                        let share =
                            if t > 0 { format!(" ({:.1}%)", 100.0 * d as f64 / t as f64) } else { String::new() };
                        format!("{d} / {t}{share}")
                    })
                });
            }
        }
    }
}

fn audit_quote(l: &AuditLine) -> String {
    let mut v = l.raw.clone();
    // Keep the quote readable: the evidence is the point, the limit details are in the file.
    if let Some(d) = v.get_mut("detail").and_then(|d| d.as_object_mut()) {
        // Member lists (a cohort's devices, ...) can be long: keep the first few.
        for list in d.values_mut().filter_map(|x| x.as_array_mut()) {
            let n = list.len();
            if n > 4 {
                list.truncate(4);
                list.push(serde_json::Value::String(format!("... {} more", n - 4)));
            }
        }
    }
    if let Some(e) = v.get_mut("evidence").and_then(|e| e.as_object_mut()) {
        e.retain(|_, x| !x.is_null());
    }
    serde_json::to_string(&v).unwrap_or_default()
}

/// A paragraph per kind of escalation of the guard run, quoting the first audit line of each.
fn escalations(out: &mut String, r: &RunResult, plan: &Plan) {
    for (reason, e) in &r.dataplane_events {
        let _ = writeln!(
            out,
            "- From {:.1} s the data plane reported `{reason}` {} time(s) (ring-buffer events, audited; per-packet \
             limits that need no controller decision); first:\n\n  ```json\n  {}\n  ```\n",
            e.first_t_s,
            e.count,
            serde_json::to_string(&e.first).unwrap_or_default()
        );
    }
    let lines: Vec<&AuditLine> = r.audit.iter().filter(|l| !l.refresh).collect();
    if lines.is_empty() {
        let _ = writeln!(out, "The engine wrote no decision to the audit log: no device, cell or host was staged.\n");
        return;
    }
    let summary = audit_summary(&r.audit);
    let _ = writeln!(
        out,
        "Audit log (`{}`): {} decisions: {}.\n",
        r.audit_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        lines.len(),
        summary.iter().map(|(k, n)| format!("{n} × {k}")).collect::<Vec<_>>().join(", ")
    );
    let mut seen = std::collections::BTreeSet::new();
    for l in &lines {
        let key = (l.action.clone(), l.reason.clone(), l.stage);
        if !seen.insert(key) {
            continue;
        }
        let n = lines.iter().filter(|x| x.action == l.action && x.reason == l.reason && x.stage == l.stage).count();
        let who = r
            .device_of_target(plan, &l.target)
            .map(|i| {
                let d = &plan.devices[i];
                format!(
                    " ({} device of population `{}`, gNB {})",
                    if d.class == Class::Attack { "an attack" } else { "a benign" },
                    d.population,
                    d.gnb
                )
            })
            .unwrap_or_default();
        let what = match (l.action.as_str(), l.stage) {
            ("set_device_stage", Some(1)) => "shaped the device to its profile (stage 1)",
            ("set_device_stage", Some(2)) => {
                "escalated the device to the strict limit (stage 2): shaping did not contain it"
            }
            ("set_device_stage", Some(3)) => "quarantined the device (stage 3): the strict limit did not contain it",
            ("release_device", _) => "released a device after its quiet period",
            ("set_cell_cap", _) => "capped a whole cell (gNB): device stages were not enough",
            ("set_host_cap", _) => "capped the whole host",
            ("flag_cohort", _) => {
                "flagged a device group whose members changed behaviour at once (bulk misprovisioning)"
            }
            ("classified", _) => "classified the traffic pattern (no device is staged for this)",
            _ => "decided",
        };
        let _ = writeln!(
            out,
            "- At {:.1} s the engine {what}, reason `{}`, {n} time(s); first: `{}`{who}:\n\n  ```json\n  {}\n  ```\n",
            l.t_s,
            l.reason,
            l.target,
            audit_quote(l)
        );
    }
}

/// Write report.md, report.json and the plots into `out`.
pub fn write_report(out: &Path, reports: &mut [ScenarioReport], runtime_s: f64) -> Result<()> {
    std::fs::create_dir_all(out)?;
    for r in reports.iter_mut() {
        r.plots = plot_scenario(out, r)?;
    }
    let mut md = String::new();
    let all: Vec<&Check> = reports.iter().flat_map(|r| r.checks.iter()).collect();
    let failed = all.iter().filter(|c| !c.pass).count();
    let _ = writeln!(md, "# Overload guard lab report\n");
    let _ = writeln!(
        md,
        "{} scenario(s), {} acceptance checks, **{}**; total run time {:.0} s.\n",
        reports.len(),
        all.len(),
        if failed == 0 { "all PASS".to_string() } else { format!("{failed} FAIL") },
        runtime_s
    );
    let _ = writeln!(
        md,
        "Modes: **guard off** (no XDP program), **naive cell cap** (the guard's data plane attached with \
         `--no-controller`, every protection off but the cell cap, and a fixed cap on every gNB of \
         `naive.cap_factor` (1.2) × its normal G-PDU rate before the onset, written into `N3_CELL_STAGES`: \
         the cell-wide overload control the NGMN recommendation warns about), **guard** (data plane and \
         controller). Traffic is replayed from the same seeded schedule in every mode. \"Delivered\" is what \
         the sink in the core namespace counted per F-TEID (N3 address and TEID, forged inner sources \
         apart; per message type for Echo / Error Indication); \
         the guard's own counters are not used for scoring. The lab's guard configuration compresses time \
         (200 ms ticks, 4 s warm-up, shape to 5 pps); each run's `guard.toml` is next to its audit log, and \
         `lab/README.md` explains every deviation from the defaults.\n"
    );
    let _ = writeln!(
        md,
        "Definitions. **Onset**: the scenario's `onset_s`, when the attack (or crowd) starts. **Attack \
         dropped from onset + grace**, the acceptance measure: of the attack packets the generator sent from \
         onset + `mitigate_within_s` (5 s) to the end of the run, the fraction the sink never counted. **Time \
         to mitigate**: the earliest 100 ms slot boundary t ≥ onset such that at least 95% of the attack \
         packets sent from t to the end were dropped, minus the onset (the time from which mitigation held). \
         **Benign devices staged**: benign devices holding a device stage in any stage-map sample (every \
         500 ms) or named by any `set_device_stage` audit decision. **Controller CPU**: utime + stime of the \
         `guard` process (/proc/PID/stat) over the run.\n"
    );
    let _ = writeln!(md, "## Acceptance\n");
    let _ = writeln!(md, "| scenario | criterion | result | detail |\n|---|---|---|---|");
    for c in &all {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.scenario,
            c.criterion,
            if c.pass { "PASS" } else { "**FAIL**" },
            c.detail
        );
    }
    let _ = writeln!(md);
    for r in reports.iter() {
        let _ = writeln!(md, "## {}: {}\n", r.name, r.title);
        if !r.threat.is_empty() {
            let _ = writeln!(md, "Threat: {}.\n", r.threat);
        }
        let _ = writeln!(md, "{}\n", r.description.trim());
        let _ = writeln!(
            md,
            "{} devices ({} benign, {} attack) on {} gNBs, {:.0} s, onset {}, peak offered {:.0} pps.\n",
            r.devices,
            r.benign_devices,
            r.attack_devices,
            r.plan.gnbs,
            r.duration_s,
            secs(r.onset_s),
            r.offered_pps_peak
        );
        scores_table(&mut md, &r.scores);
        let _ = writeln!(md);
        if let Some(n) = r.run(Mode::NaiveCellCap) {
            let _ = writeln!(md, "Naive caps per gNB (pps): {:?}.\n", n.naive_caps_pps);
        }
        for p in &r.plots {
            if p.extension().is_some_and(|e| e == "png") {
                let _ = writeln!(
                    md,
                    "![timeline of {}]({})\n",
                    r.name,
                    p.file_name().unwrap_or_default().to_string_lossy()
                );
            }
        }
        let _ = writeln!(md, "### What the guard did\n");
        if let Some(g) = r.run(Mode::Guard) {
            escalations(&mut md, g, &r.plan);
        }
        let _ = writeln!(md, "### Acceptance\n");
        for c in &r.checks {
            let _ = writeln!(md, "- {}: {} ({})", if c.pass { "PASS" } else { "FAIL" }, c.criterion, c.detail);
        }
        let _ = writeln!(md);
    }
    std::fs::write(out.join("report.md"), md).context("writing report.md")?;
    let json = serde_json::json!({
        "runtime_s": runtime_s,
        "checks": all,
        "scenarios": reports.iter().collect::<Vec<_>>(),
    });
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&json)?).context("writing report.json")?;
    Ok(())
}

/// Per 500 ms bucket, as packets per second.
fn buckets(per_slot: &[u64], slots: usize) -> Vec<(f64, f64)> {
    per_slot
        .chunks(slots)
        .enumerate()
        .map(|(i, c)| {
            let t = (i * slots + c.len()) as f64 / SLOTS_PER_SEC as f64;
            (t, c.iter().sum::<u64>() as f64 * SLOTS_PER_SEC as f64 / c.len() as f64)
        })
        .collect()
}

fn plot_scenario(out: &Path, r: &ScenarioReport) -> Result<Vec<PathBuf>> {
    let svg = out.join(format!("{}.svg", r.name));
    let png = out.join(format!("{}.png", r.name));
    {
        let root = SVGBackend::new(&svg, (1100, 760)).into_drawing_area();
        draw(&root, r).map_err(|e| anyhow::anyhow!("plotting {}: {e}", svg.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("writing {}: {e}", svg.display()))?;
    }
    {
        let root = BitMapBackend::new(&png, (1100, 760)).into_drawing_area();
        draw(&root, r).map_err(|e| anyhow::anyhow!("plotting {}: {e}", png.display()))?;
        root.present().map_err(|e| anyhow::anyhow!("writing {}: {e}", png.display()))?;
    }
    Ok(vec![svg, png])
}

/// One traffic line of the plot: label, per-slot packets, colour, dashed (offered) or solid.
type Series<'a> = (&'a str, Vec<u64>, RGBColor, bool);

/// One stage line of the plot: label, step-function points, colour.
type Level<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

type DrawResult<T, DB> = std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &ScenarioReport) -> DrawResult<(), DB> {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(500);
    let dur = r.duration_s;
    let Some(g) = r.run(Mode::Guard).or_else(|| r.runs.last()) else { return Ok(()) };
    const B: usize = 5;
    let col = |f: &dyn Fn(&[u64; 2]) -> u64, v: &[[u64; 2]]| -> Vec<u64> { v.iter().map(f).collect() };
    let sent_b = col(&|c| c[0], &g.sent);
    let sent_a = col(&|c| c[1], &g.sent);
    let del_b = col(&|c| c[0], &g.delivered);
    let del_a = col(&|c| c[1], &g.delivered);
    let drop_b: Vec<u64> = sent_b.iter().zip(&del_b).map(|(s, d)| s.saturating_sub(*d)).collect();
    let drop_a: Vec<u64> = sent_a.iter().zip(&del_a).map(|(s, d)| s.saturating_sub(*d)).collect();
    let naive_b = r.run(Mode::NaiveCellCap).map(|n| col(&|c| c[0], &n.delivered));
    let max = buckets(&sent_a, B).iter().chain(buckets(&sent_b, B).iter()).map(|p| p.1).fold(10.0, f64::max);
    let floor = 0.5;
    let mut c = ChartBuilder::on(&top)
        .caption(format!("{}: {} ({} mode)", r.name, r.title, g.mode.title()), ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..dur, (floor..max * 2.0).log_scale())?;
    c.configure_mesh().y_desc("packets per second (log)").x_desc("time (s)").draw()?;
    let series: Vec<Series> = vec![
        ("benign offered", sent_b.clone(), RGBColor(120, 160, 230), true),
        ("benign passed", del_b.clone(), RGBColor(20, 60, 200), false),
        ("benign dropped", drop_b, RGBColor(240, 150, 0), false),
        ("attack offered", sent_a.clone(), RGBColor(240, 140, 140), true),
        ("attack passed", del_a, RGBColor(200, 0, 0), false),
        ("attack dropped", drop_a, RGBColor(110, 0, 60), false),
    ];
    for (name, v, color, dashed) in series {
        let pts: Vec<(f64, f64)> = buckets(&v, B).into_iter().map(|(t, y)| (t, y.max(floor))).collect();
        if pts.iter().all(|p| p.1 <= floor) {
            continue;
        }
        let style = ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: if dashed { 1 } else { 2 } };
        if dashed {
            c.draw_series(DashedLineSeries::new(pts, 6, 4, style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        } else {
            c.draw_series(LineSeries::new(pts, style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    if let Some(nb) = naive_b {
        let pts: Vec<(f64, f64)> = buckets(&nb, B).into_iter().map(|(t, y)| (t, y.max(floor))).collect();
        let grey = RGBColor(90, 90, 90);
        c.draw_series(DashedLineSeries::new(pts, 3, 3, grey.stroke_width(2)))?
            .label("benign passed, naive cell cap")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    }
    if let Some(on) = r.onset_s {
        c.draw_series(std::iter::once(PathElement::new(vec![(on, floor), (on, max * 2.0)], BLACK.mix(0.5))))?
            .label("onset")
            .legend(|(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], BLACK));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    // Stage levels.
    let staged_max = g.stages.iter().map(|s| s.devices.iter().sum::<u32>()).max().unwrap_or(0).max(1) as f64;
    let mut s = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..dur, -0.1f64..3.3f64)?
        .set_secondary_coord(0f64..dur, 0f64..staged_max * 1.1);
    s.configure_mesh().y_desc("stage level").x_desc("time (s)").y_labels(4).draw()?;
    s.configure_secondary_axes().y_desc("staged devices").draw()?;
    let step = |f: &dyn Fn(&crate::scenario::StageSample) -> f64| -> Vec<(f64, f64)> {
        let mut pts = vec![(0.0, 0.0)];
        let mut last = 0.0;
        for x in &g.stages {
            let y = f(x);
            pts.push((x.t_s, last));
            pts.push((x.t_s, y));
            last = y;
        }
        pts.push((dur, last));
        pts
    };
    let levels: Vec<Level> = vec![
        ("highest device stage", step(&|x| f64::from(x.max_device_stage)), RGBColor(20, 130, 20)),
        ("cell stage (any gNB capped)", step(&|x| if x.cells_capped > 0 { 1.05 } else { 0.0 }), RGBColor(230, 120, 0)),
        ("host stage", step(&|x| if x.host_capped { 1.1 } else { 0.0 }), RGBColor(150, 0, 150)),
    ];
    for (name, pts, color) in levels {
        s.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let staged = step(&|x| f64::from(x.devices.iter().sum::<u32>()));
    let grey = RGBColor(100, 100, 100);
    s.draw_secondary_series(LineSeries::new(staged, grey.stroke_width(1)))?
        .label("staged devices (right axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    s.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
