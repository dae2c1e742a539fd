//! Lab scenarios: the TOML format (`lab/scenarios/*.toml`), the guard configuration generated
//! for each run, and the runner that replays a scenario's [`Plan`] through the veth lab in one
//! [`Mode`]: guard off, a naive cell-wide rate cap, or the guard.
//!
//! One run: a fresh [`Lab`]; in the guard modes the `guard` binary as a subprocess
//! (`guard --netns CORE run --iface n3 --config FILE [--duration S | --no-controller]`) with its
//! own pin directory (`/sys/fs/bpf/og-lab-*`), audit log and metrics port; the [`Sink`] on the
//! core side; the schedule sent slot by slot with [`send_frames`] (each slot bounded by its
//! packet count and a deadline). Every slot the runner records what was sent per class and
//! what arrived; every 500 ms it samples the pinned stage maps and the guard's CPU time. At the
//! end the guard is stopped and `guard detach --purge` removes the pins, also on error (Drop).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use guard::{bpf::pins::PinDir, n3::maps::N3Maps};
use guard_common::abi::{self, L3Addr, CELL_STAGE_CAP, STAGE_FLAG_EXEMPT};
use serde::{Deserialize, Serialize};

use crate::frames::fragment_ipv4;
use crate::lab::Lab;
use crate::netns::unique_name;
use crate::population::{
    rotate_src, scan_teid_of, Class, Plan, PopulationSpec, SLOTS_PER_SEC, SLOT_MS, TEID_OFFSET_V4,
};
use crate::population::{EdgeKind, Profile};
use crate::{send_frames, SendOpts, Sink};

/// A scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    /// DESIGN.md threat(s) it exercises (T1-T5).
    #[serde(default)]
    pub threat: String,
    #[serde(default)]
    pub description: String,
    pub duration_s: f64,
    /// When the attack (or crowd) starts; default: the first attack segment's start.
    pub onset_s: Option<f64>,
    #[serde(default = "default_gnbs")]
    pub gnbs: usize,
    /// Send everything from this CPU, so the guard judges every packet there (see
    /// [`SendOpts::cpu`]); default: wherever the scheduler puts the sender.
    pub sender_cpu: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub naive: NaiveSpec,
    /// Merged over the lab's base guard configuration ([`base_guard_config`]); any key of
    /// `config/guard.example.toml`. `[[guard.group]]` becomes a `[[group]]`.
    #[serde(default)]
    pub guard: toml::Table,
    pub population: Vec<PopulationSpec>,
}

fn default_gnbs() -> usize {
    4
}

/// Acceptance criteria (issue 4), checked on the guard-mode run unless stated.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Overall benign delivery ratio at least.
    pub benign_delivery: Option<f64>,
    /// No benign device is ever staged.
    pub no_benign_staged: bool,
    /// No cell or host stage is ever raised.
    pub no_cell_or_host_stage: bool,
    /// A 1 s window with at least `attack_dropped` of the attack traffic dropped ends within
    /// `mitigate_within_s` of the onset.
    pub mitigate_within_s: Option<f64>,
    pub attack_dropped: f64,
    /// The naive cell cap's benign delivery is at least this much lower than the guard's.
    pub naive_worse_by: Option<f64>,
    /// Every benign Echo Request (the gNBs' own path supervision, `echo_path`) passed, so no
    /// path was declared down (TS 29.281 §7.2.1).
    pub echo_paths_up: bool,
    /// The data plane dropped no Echo Request at all (`drop_echo` = 0): for scenarios whose
    /// Echo Requests, real and forged, stay under `dataplane.echo_host`, below which the guard
    /// promises to limit none, whoever sends them (docs/dataplane.md).
    pub no_echo_dropped: bool,
    /// Of the G-PDUs sent with forged inner sources (populations with `forged`), at least this
    /// fraction was dropped.
    pub forged_dropped: Option<f64>,
    /// Anti-spoofing dropped the forged G-PDUs and nothing else: the data plane's `drop_spoof`
    /// count equals the forged G-PDUs the sink never saw, and its spoof events name only
    /// devices of forging populations (no benign session flagged as spoofing).
    pub spoof_drops_only_forged: bool,
    /// Checks on single populations (`[[expect.population]]`).
    pub population: Vec<PopExpect>,
}

/// `[[expect.population]]`: a check on one population's traffic in the guard run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PopExpect {
    pub name: String,
    /// Of its frames sent over the run, at least this fraction arrived.
    pub delivered: Option<f64>,
    /// Of its frames sent from onset + `mitigate_within_s` on, at least this fraction was
    /// dropped: whole G-PDUs / first fragments and later fragments, each.
    pub dropped: Option<f64>,
    /// One of its devices reached quarantine (stage 3); with `dropped`, that fraction of its
    /// frames (first and later fragments, each) was also dropped from then on.
    #[serde(default)]
    pub quarantined: bool,
    /// Of its T-PDU octets sent from onset + `mitigate_within_s` on, at least this fraction was
    /// dropped (populations whose frames all have one size: see `score::PopScore::tpdu_octets`).
    pub octets_dropped: Option<f64>,
    /// Every one of its devices was staged by the engine, each first for this reason (the audit
    /// log's `reason`, e.g. `volume_flood`).
    pub staged_reason: Option<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            benign_delivery: Some(0.99),
            no_benign_staged: true,
            no_cell_or_host_stage: false,
            mitigate_within_s: None,
            attack_dropped: 0.95,
            naive_worse_by: None,
            echo_paths_up: false,
            no_echo_dropped: false,
            forged_dropped: None,
            spoof_drops_only_forged: false,
            population: Vec::new(),
        }
    }
}

/// The naive comparison: a per-gNB cap of `cap_factor` × the gNB's normal G-PDU rate (measured
/// from the schedule before the onset), with `burst_ms` of that rate as burst tolerance.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NaiveSpec {
    pub cap_factor: f64,
    pub burst_ms: f64,
}

impl Default for NaiveSpec {
    fn default() -> Self {
        NaiveSpec { cap_factor: 1.2, burst_ms: 100.0 }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Scenario> {
        let sc: Scenario = toml::from_str(text)?;
        if sc.duration_s <= 0.0 || sc.duration_s > 300.0 {
            bail!("duration_s must be in (0, 300]");
        }
        if !(1..=200).contains(&sc.gnbs) {
            bail!("gnbs must be 1..=200");
        }
        Ok(sc)
    }

    pub fn plan(&self) -> Result<Plan> {
        Plan::build(&self.population, self.gnbs, self.duration_s, self.seed)
    }

    /// The onset: declared, else the first attack segment, else the first behaviour change.
    pub fn onset(&self, plan: &Plan) -> Option<f64> {
        self.onset_s.or_else(|| {
            let first = |want: Option<Class>| {
                plan.devices
                    .iter()
                    .flat_map(|d| d.segments.iter().enumerate())
                    .filter(|(i, s)| want.map_or(*i > 0, |c| s.class == c))
                    .map(|(_, s)| s.from_s)
                    .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
            };
            first(Some(Class::Attack)).or_else(|| first(None))
        })
    }

    pub fn has_attack(&self, plan: &Plan) -> bool {
        plan.devices.iter().any(|d| d.class == Class::Attack)
    }
}

/// How the N3 interface is protected in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No XDP program.
    Off,
    /// The guard's data plane without the controller, and a fixed cap on every gNB.
    NaiveCellCap,
    /// The guard: data plane and controller.
    Guard,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::NaiveCellCap, Mode::Guard];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::NaiveCellCap => "naive_cell_cap",
            Mode::Guard => "guard",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Mode::Off => "guard off",
            Mode::NaiveCellCap => "naive cell cap",
            Mode::Guard => "guard",
        }
    }

    pub fn parse(s: &str) -> Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s || (s == "naive" && *m == Mode::NaiveCellCap))
            .ok_or_else(|| anyhow!("unknown mode {s:?} (off, naive_cell_cap, guard)"))
    }
}

/// Where and with what one run happens.
#[derive(Clone, Debug)]
pub struct RunOpts {
    pub guard_bin: PathBuf,
    /// Per-run files go to `out/<scenario>/<mode>/`.
    pub out: PathBuf,
    /// Print progress.
    pub verbose: bool,
}

/// The N3 lab's scenario files in a directory, sorted by name. `n2_*.toml` files share the
/// directory but are the N2 lab's (`lab_n2`, another format), so they are left out.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("n2_")))
        .collect();
    v.sort();
    Ok(v)
}

/// The scenario file of `dir` a name on the command line means: its file stem
/// (`10_volume_flood`), that stem without its order number (`volume_flood`), or the `name` in
/// the file; `-` and `_` are the same (`volume-flood`). `None` if no file matches.
pub fn find_scenario(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let norm = |s: &str| s.trim().replace('-', "_");
    let want = norm(name);
    for p in scenario_files(dir)? {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let unnumbered = stem.split_once('_').filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit())).map(|(_, r)| r);
        if norm(stem) == want || unnumbered.is_some_and(|u| norm(u) == want) {
            return Ok(Some(p));
        }
    }
    for p in scenario_files(dir)? {
        if Scenario::load(&p).is_ok_and(|sc| norm(&sc.name) == want) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Per-scenario summary of the audit log: counts per (action, reason), non-refresh only.
pub fn audit_summary(lines: &[AuditLine]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines.iter().filter(|l| !l.refresh) {
        *m.entry(format!("{} / {}", l.action, l.reason)).or_insert(0) += 1;
    }
    m
}

mod audit;
mod config;
mod process;
mod result;
mod run;
mod traffic;
pub use audit::*;
pub use config::*;
pub use process::*;
pub use result::*;
pub use run::*;
use traffic::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.500Z"), Some(1.5));
        let t = parse_rfc3339("2025-11-25T12:04:05.123Z").unwrap();
        assert!((t - 1_764_072_245.123).abs() < 1e-6, "{t}");
    }

    /// The shipped session-variants scenario (issue 17): the guard learns both N3 addresses, the
    /// framed routes and the non-IP TEID ranges from the populations; an unknown key is refused.
    #[test]
    fn session_variants_write_the_guard_config_and_unknown_keys_are_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/scenarios/9_session_variants.toml");
        let sc = Scenario::load(&path).unwrap();
        let plan = sc.plan().unwrap();
        assert_eq!(plan.n3_addrs().len(), 2);
        let text =
            guard_config_text(&sc, Mode::Guard, "n3", Path::new("/sys/fs/bpf/x"), Path::new("/tmp/a"), 9999).unwrap();
        let cfg: toml::Table = toml::from_str(&text).unwrap();
        let strs = |v: &toml::Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(strs(&cfg["guard"]["n3_addrs"]), ["10.200.0.1", "10.200.0.2"]);
        assert_eq!(strs(&cfg["dataplane"]["framed_routes"]), ["10.60.0.0/16", "2001:db8:f00::/48"]);
        assert_eq!(strs(&cfg["dataplane"]["non_ip_teids"]), ["0x500000-0x500013", "0x600000-0x600013"]);
        assert_eq!(cfg["dataplane"]["modes"]["antispoof"].as_str(), Some("enforce"));
        let plain = "name = \"x\"\ntitle = \"x\"\nduration_s = 5\n[[population]]\nname = \"p\"\ncount = 1\nprofile = { kind = \"idle\" }\n";
        assert!(Scenario::parse(plain).is_ok());
        let text =
            guard_config_text(&Scenario::parse(plain).unwrap(), Mode::Guard, "n3", Path::new("/x"), Path::new("/a"), 1)
                .unwrap();
        let cfg: toml::Table = toml::from_str(&text).unwrap();
        assert!(cfg["guard"].get("n3_addrs").is_none(), "one N3 address: nothing listed");
        for bad in
            ["privacy_rotation_s = 4", "family = \"v5\"", "session_type = \"ppp\"", "framed_route = \"10.0.0.0/40\""]
        {
            let e = Scenario::parse(&format!("{plain}{bad}\n")).err().map(|e| format!("{e:#}"));
            assert!(e.is_some(), "{bad} was accepted");
        }
    }

    /// A forger forges a family only once its own G-PDU of that family was reported sent: with
    /// nothing reported (a sender that missed everything), no frame is forged; once both
    /// families are, a quarter of the forgers' G-PDUs are.
    #[test]
    fn forgeries_wait_for_the_sessions_own_packets_to_be_sent() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/scenarios/9_session_variants.toml");
        let plan = Scenario::load(&path).unwrap().plan().unwrap();
        let lab_gnbs: Vec<Ipv4Addr> =
            (0..plan.gnbs as u32).map(|i| Ipv4Addr::from(u32::from(crate::lab::GNB_V4_BASE) + i)).collect();
        let bases: Vec<Option<crate::frames::GtpFrame>> = plan
            .variants
            .iter()
            .map(|v| {
                let d = &plan.devices[v.device];
                (d.edge.is_none() && !d.session.is_plain())
                    .then(|| crate::frames::GtpFrame::gpdu(d.teid).outer_v4(lab_gnbs[d.gnb], d.n3))
            })
            .collect();
        let templates = vec![Vec::new(); plan.variants.len()];
        let forgers: BTreeSet<usize> = plan.devices.iter().filter(|d| d.session.forged > 0.0).map(|d| d.idx).collect();
        let count = |st: &mut FrameState, report: bool| {
            let (mut all, mut forged) = (0, 0);
            for (i, slot) in plan.slots.iter().enumerate() {
                let slot: Vec<(u32, u32)> = slot
                    .iter()
                    .copied()
                    .filter(|&(v, _)| forgers.contains(&plan.variants[v as usize].device))
                    .collect();
                let (_, tags) = slot_frames(&plan, &templates, &bases, i, &slot, st);
                for t in tags {
                    all += 1;
                    forged += u32::from(t.forged);
                    if report {
                        st.own_sent[plan.variants[t.var as usize].device] |= t.own;
                    }
                }
            }
            (all, forged)
        };
        let (all, forged) = count(&mut FrameState::default(), false);
        assert!(all > 300 && forged == 0, "{forged} of {all} forged with nothing sent");
        let (all, forged) = count(&mut FrameState::default(), true);
        assert!((all / 5..=all / 3).contains(&forged), "{forged} of {all} forged");
    }

    /// A scenario is found by its file stem, the stem without its number, or its `name`, with
    /// `-` for `_`; an unknown name is none.
    #[test]
    fn scenarios_are_found_by_stem_short_name_or_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/scenarios");
        let want = dir.join("10_volume_flood.toml");
        for name in ["10_volume_flood", "volume_flood", "volume-flood", "10-volume-flood"] {
            assert_eq!(find_scenario(&dir, name).unwrap(), Some(want.clone()), "{name}");
        }
        // By the `name` key alone: 1_flash_crowd.toml says `name = "flash_crowd"`.
        assert_eq!(find_scenario(&dir, "flash-crowd").unwrap(), Some(dir.join("1_flash_crowd.toml")));
        assert_eq!(find_scenario(&dir, "volume").unwrap(), None);
        assert_eq!(find_scenario(&dir, "n2_storm").unwrap(), None, "the N2 lab's files are not N3 scenarios");
    }

    #[test]
    fn fteid_targets() {
        assert_eq!(fteid_of_target("teid:0x00200000@local25"), Some((25, 0x0020_0000)));
        assert_eq!(fteid_of_target("teid:0x0000abcd"), Some((0, 0xabcd)));
        assert_eq!(teid_of_target("teid:0x0000abcd@local3"), Some(0xabcd));
        assert_eq!(fteid_of_target("ue:10.0.0.1"), None);
    }

    #[test]
    fn merge_overrides_and_groups() {
        let sc = Scenario::parse(
            r#"
name = "x"
title = "x"
duration_s = 10
[guard.ladder.shape]
rate_pps = 7
[[guard.group]]
name = "g"
id = 3
teids = ["0x100-0x1ff"]
[[population]]
name = "m"
count = 2
profile = { kind = "flood", pps = 10 }
"#,
        )
        .unwrap();
        let text = guard_config_text(
            &sc,
            Mode::Guard,
            "n3",
            Path::new("/sys/fs/bpf/x"),
            Path::new("/tmp/a/audit.jsonl"),
            9999,
        )
        .unwrap();
        let cfg: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(cfg["ladder"]["shape"]["rate_pps"].as_integer(), Some(7));
        assert_eq!(cfg["ladder"]["shape"]["burst"].as_integer(), Some(5));
        assert_eq!(cfg["group"][0]["id"].as_integer(), Some(3));
        assert_eq!(cfg["guard"]["pin_dir"].as_str(), Some("/sys/fs/bpf/x"));
    }
}
