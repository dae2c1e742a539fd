//! `report.md` and `report.json` of an N2 lab run, and the PASS/FAIL table on the terminal.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::ScenarioResult;

/// A scenario that could not run (setup error), next to those that did.
#[derive(Clone, Debug, Serialize)]
pub struct Failed {
    pub name: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub guard_bin: String,
    pub wall_s: f64,
    pub pass: bool,
    pub scenarios: Vec<ScenarioResult>,
    pub failed: Vec<Failed>,
}

impl Report {
    pub fn new(guard_bin: &Path, wall_s: f64, scenarios: Vec<ScenarioResult>, failed: Vec<Failed>) -> Report {
        let pass = failed.is_empty() && !scenarios.is_empty() && scenarios.iter().all(ScenarioResult::pass);
        Report {
            schema: "overload-guard/lab-n2-report",
            guard_bin: guard_bin.display().to_string(),
            wall_s,
            pass,
            scenarios,
            failed,
        }
    }

    /// The PASS/FAIL table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:<16} {:<6} {:<56} detail", "scenario", "result", "check");
        for r in &self.scenarios {
            for c in &r.checks {
                let _ = writeln!(
                    s,
                    "{:<16} {:<6} {:<56} {}",
                    r.name,
                    if c.pass { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        for f in &self.failed {
            let _ = writeln!(s, "{:<16} {:<6} {:<56} {}", f.name, "FAIL", "scenario ran", f.error);
        }
        let _ = writeln!(s, "overall: {} in {:.1} s", if self.pass { "PASS" } else { "FAIL" }, self.wall_s);
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# N2 lab report\n");
        let _ = writeln!(
            s,
            "Overall **{}**, wall time {:.1} s, guard binary `{}`.\n",
            if self.pass { "PASS" } else { "FAIL" },
            self.wall_s,
            self.guard_bin
        );
        let _ = writeln!(s, "| scenario | threat | result | wall (s) |\n|---|---|---|---|");
        for r in &self.scenarios {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} |",
                r.name,
                r.threat,
                if r.pass() { "PASS" } else { "FAIL" },
                r.wall_s
            );
        }
        for f in &self.failed {
            let _ = writeln!(s, "| {} | | FAIL (did not run: {}) | |", f.name, f.error);
        }
        for r in &self.scenarios {
            let _ = writeln!(s, "\n## {}: {}\n", r.name, r.title);
            let _ = writeln!(s, "| check | result | detail |\n|---|---|---|");
            for c in &r.checks {
                let _ = writeln!(s, "| {} | {} | {} |", c.name, if c.pass { "PASS" } else { "FAIL" }, c.detail);
            }
            let _ = writeln!(s, "\nResponses through the hook (t: seconds after the traffic started):\n");
            if r.responses.is_empty() {
                let _ = writeln!(s, "none\n");
            } else {
                let _ = writeln!(
                    s,
                    "| t (s) | action | level | reason | attribution | devices | pattern cells | gNBs | barred cells | \
                     reduction |"
                );
                let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
                for x in &r.responses {
                    let _ = writeln!(
                        s,
                        "| {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        x.t_s,
                        x.action,
                        x.level,
                        x.reason,
                        x.attribution,
                        x.devices,
                        x.pattern_cells.join(" "),
                        x.gnbs.join(" "),
                        x.cells.join(" "),
                        x.reduction_pct.map(|p| format!("{p}%")).unwrap_or_default()
                    );
                }
            }
            let _ =
                writeln!(s, "\nFrames sent by the RAN side and seen past XDP (capture drops {}):\n", r.capture_drops);
            let _ = writeln!(s, "| source | kind | sent | past XDP |\n|---|---|---|---|");
            for t in &r.traffic {
                let _ = writeln!(s, "| {} | {:?} | {} | {} |", t.src, t.kind, t.sent, t.received);
            }
            let v: Vec<String> = r.verdicts.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(s, "\n`guard_n2` verdicts: {}.\n", v.join(", "));
            let _ =
                writeln!(s, "Files: `{}` (guard.toml, n2.toml, audit.jsonl, hook.jsonl, guard.log).", r.dir.display());
        }
        s
    }

    /// Write `<dir>/report.md` and `<dir>/report.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.md"), self.markdown()).context("writing report.md")?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?).context("writing report.json")?;
        Ok(())
    }
}
