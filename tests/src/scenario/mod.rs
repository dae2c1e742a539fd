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

/// The lab's base guard configuration: `config/guard.example.toml` (every key at its default,
/// its example groups removed) with the time scale compressed for 20-30 s scenarios (see
/// `lab/README.md` for the reasoning per key).
pub fn base_guard_config() -> toml::Table {
    let mut base: toml::Table =
        toml::from_str(include_str!("../../../config/guard.example.toml")).expect("the example config is valid TOML");
    base.remove("group");
    let text = r#"
[guard]
key_mode = "teid"
max_devices = 65536
tick = "200ms"

[dataplane]
observe = { pps = 50, burst = 400 }
new_device = { pps = 200, burst = 400 }
echo_host = { pps = 20, burst = 40 }
new_gnb = { pps = 10, burst = 20 }
unknown_new_device = { pps = 200, burst = 400 }

[classify]
baseline_horizon = "60s"
warmup = "4s"
min_profile_pps = 20.0

[classify.chatty]
min_bursts = 3
min_peak_ratio = 3.0

[ladder.shape]
trigger_windows = 5
rate_pps = 5
burst = 5

[ladder.strict]
escalate_windows = 6
rate_pps = 1
burst = 2

[ladder.quarantine]
escalate_windows = 10

[capacity]
sustain_windows = 10

[capacity.cell]
capacity_pps = 15000
cap_pps = 15000
burst = 1500
min_offenders = 40

[capacity.host]
capacity_pps = 60000
cap_pps = 60000
burst = 6000
min_offenders = 150
"#;
    let lab: toml::Table = toml::from_str(text).expect("the lab's base guard config is valid TOML");
    merge(&mut base, &lab);
    base
}

/// Deep-merge `over` into `base` (tables merge, everything else replaces).
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The complete configuration file of one run.
///
/// In [`Mode::NaiveCellCap`] every protection but the cell cap (and the malformed-packet check)
/// is switched off, so the comparison is a plain cell-wide rate cap and does not borrow the
/// guard's per-gNB Echo / Error Indication / new-TEID limits.
pub fn guard_config_text(
    sc: &Scenario,
    mode: Mode,
    iface: &str,
    pin_base: &Path,
    audit: &Path,
    metrics_port: u16,
) -> Result<String> {
    let mut cfg = base_guard_config();
    let mut over = sc.guard.clone();
    let groups = over.remove("group");
    merge(&mut cfg, &over);
    if mode == Mode::NaiveCellCap {
        let plain: toml::Table = toml::from_str(
            r#"
[dataplane.modes]
shape = "off"
strict = "off"
quarantine = "off"
cell_cap = "enforce"
host_cap = "off"
antispoof = "off"
new_device = "off"
echo = "off"
err_ind = "off"
"#,
        )
        .context("the naive mode's config overlay")?;
        merge(&mut cfg, &plain);
    }
    let g = cfg.entry("guard").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let g = g.as_table_mut().ok_or_else(|| anyhow!("[guard] must be a table"))?;
    g.insert("interfaces".into(), toml::Value::Array(vec![toml::Value::String(iface.into())]));
    g.insert("pin_dir".into(), toml::Value::String(pin_base.display().to_string()));
    g.insert("audit_log".into(), toml::Value::String(audit.display().to_string()));
    let m = cfg.entry("metrics").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(m) = m.as_table_mut() {
        m.insert("listen".into(), toml::Value::String(format!("127.0.0.1:{metrics_port}")));
    }
    session_variant_config(sc, &mut cfg)?;
    if let Some(groups) = groups {
        cfg.insert("group".into(), groups);
    }
    let head = format!(
        "# Generated by the lab for scenario {:?}: the lab's base config (tests/src/scenario.rs,\n\
         # base_guard_config) with the scenario's [guard] table merged over it.\n",
        sc.name
    );
    Ok(head + &toml::to_string_pretty(&cfg)?)
}

/// What the scenario's session variants (issue 17) need the guard to know, added to `cfg`:
/// every N3 address the populations use in `guard.n3_addrs` when there is more than the core's
/// own (one TEID on two addresses is two devices: the F-TEID, TS 29.281 §5.1), their framed
/// routes in `dataplane.framed_routes` (TS 23.501 §5.6.14) and the TEID ranges of their Ethernet
/// and Unstructured sessions in `dataplane.non_ip_teids` (§5.6.10); each added to what the
/// scenario's `[guard]` lists already.
fn session_variant_config(sc: &Scenario, cfg: &mut toml::Table) -> Result<()> {
    use crate::variants::SessionType;
    let mut n3 = vec![crate::lab::CORE_V4];
    let (mut framed, mut non_ip) = (Vec::new(), Vec::new());
    for p in sc.population.iter().filter(|p| p.count > 0) {
        if !n3.contains(&p.n3()) {
            n3.push(p.n3());
        }
        if let Some(r) = p.framed_route {
            framed.push(r.to_string());
        }
        if p.session_type != SessionType::Ip {
            let (a, b) = p.teid_range();
            non_ip.push(format!("{a:#x}-{b:#x}"));
        }
    }
    let mut add = |section: &str, key: &str, items: Vec<String>| -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let t = cfg.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let t = t.as_table_mut().ok_or_else(|| anyhow!("[{section}] must be a table"))?;
        let list = t.entry(key).or_insert_with(|| toml::Value::Array(Vec::new()));
        let list = list.as_array_mut().ok_or_else(|| anyhow!("{section}.{key} must be a list"))?;
        for i in items {
            let v = toml::Value::String(i);
            if !list.contains(&v) {
                list.push(v);
            }
        }
        Ok(())
    };
    if n3.len() > 1 {
        add("guard", "n3_addrs", n3.iter().map(ToString::to_string).collect())?;
    }
    add("dataplane", "framed_routes", framed)?;
    add("dataplane", "non_ip_teids", non_ip)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cleanup registry: pin directories and guard processes of live runs, for Ctrl-C.

static LIVE_RUNS: Mutex<Vec<(PathBuf, Option<u32>)>> = Mutex::new(Vec::new());

/// Stage levels at one instant (sampled from the pinned maps).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageSample {
    pub t_s: f64,
    /// Devices at stage 1, 2, 3 (engine or manual; exempt marks excluded).
    pub devices: [u32; 3],
    pub max_device_stage: u32,
    pub cells_capped: u32,
    pub host_capped: bool,
}

/// One audit-log line, with its time relative to the start of the traffic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditLine {
    pub t_s: f64,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub stage: Option<u64>,
    pub exempt: bool,
    pub refresh: bool,
    pub raw: serde_json::Value,
}

/// The data plane's counters read from the pinned maps at the end of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DataplaneCounters {
    /// Packets per verdict (`Verdict::name`), over the run.
    pub verdicts: BTreeMap<String, u64>,
    /// Per outer source address with a record of its own (a gNB, or a forged source the guard
    /// gave one): never-seen TEIDs admitted (inserted into `N3_DEVICES`), those over its
    /// new-device budget (not inserted), and known devices re-admitted without the budget after
    /// their record was evicted. The key `unknown` holds the sources without a record of their
    /// own, which share one record and one budget (`N3Maps::unknown_sources`).
    pub new_devices: BTreeMap<String, [u64; 3]>,
}

fn read_dataplane(m: &N3Maps) -> DataplaneCounters {
    let mut c = DataplaneCounters::default();
    if let Ok(v) = m.verdicts() {
        for (verdict, n) in v {
            if n.packets > 0 {
                c.verdicts.insert(verdict.name().to_owned(), n.packets);
            }
        }
    }
    for (k, st) in m.cells() {
        let a = if k.family == abi::FAMILY_IPV4 {
            Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]).to_string()
        } else {
            std::net::Ipv6Addr::from(k.addr).to_string()
        };
        c.new_devices.insert(a, [st.new_devices, st.new_devices_limited, st.readmitted]);
    }
    if let Ok(u) = m.unknown_sources() {
        c.new_devices.insert("unknown".into(), [u.new_devices, u.new_devices_limited, u.readmitted]);
    }
    c
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub mode: Mode,
    /// Per slot (100 ms): packets handed to the kernel, `[benign, attack]`.
    pub sent: Vec<[u64; 2]>,
    /// Per slot: packets the sink counted, `[benign, attack]`.
    pub delivered: Vec<[u64; 2]>,
    /// Per device (index into the plan's devices): sent and delivered over the run (frames: a
    /// fragmented G-PDU counts once per fragment).
    pub device_sent: Vec<u64>,
    pub device_delivered: Vec<u64>,
    /// Of those, the later fragments (offset > 0) of fragmented G-PDUs.
    #[serde(default)]
    pub device_sent_later: Vec<u64>,
    #[serde(default)]
    pub device_delivered_later: Vec<u64>,
    /// Per population, per slot: `[whole or first-fragment frames, later fragments]` sent and
    /// delivered (for the per-population checks: a flood's drop ratio from a point in time).
    #[serde(default)]
    pub pop_sent: BTreeMap<String, Vec<[u64; 2]>>,
    #[serde(default)]
    pub pop_delivered: BTreeMap<String, Vec<[u64; 2]>>,
    /// The data plane's own counters at the end of the run (guard modes).
    #[serde(default)]
    pub dataplane: Option<DataplaneCounters>,
    /// Scheduled packets the sender could not send within their slot.
    pub unsent: u64,
    pub stages: Vec<StageSample>,
    /// Devices (F-TEIDs: N3 address, TEID) seen staged in any sample.
    pub staged: BTreeSet<(Ipv4Addr, u32)>,
    /// The guard's local-address table (`N3_LOCAL`): index → N3 address, how its F-TEIDs
    /// (`teid:0x…@localN` in the audit log) name an address. Index 0 is the core's own address
    /// where the scenario lists no other.
    #[serde(default)]
    pub local_addrs: BTreeMap<u32, Ipv4Addr>,
    /// Per slot: G-PDUs with forged inner sources sent and delivered (counted as attack traffic
    /// in `sent` / `delivered` too, never in the per-device or per-population counts).
    #[serde(default)]
    pub forged_sent: Vec<u64>,
    #[serde(default)]
    pub forged_delivered: Vec<u64>,
    /// Per device: forged G-PDUs sent and delivered.
    #[serde(default)]
    pub device_forged_sent: Vec<u64>,
    #[serde(default)]
    pub device_forged_delivered: Vec<u64>,
    /// Engine and operator decisions from the audit log.
    pub audit: Vec<AuditLine>,
    /// Data-plane events from the audit log, per reason.
    pub dataplane_events: BTreeMap<String, EventSummary>,
    /// utime + stime of the guard process (s), and its wall time.
    pub guard_cpu_s: Option<f64>,
    pub guard_wall_s: Option<f64>,
    pub naive_caps_pps: Vec<u64>,
    pub sink_kernel_drops: u64,
    pub wall_s: f64,
    pub config_path: Option<PathBuf>,
    pub audit_path: Option<PathBuf>,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` in seconds.
pub fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based) → indexes 11, 12.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

impl RunResult {
    /// The N3 address of a local-address index (0: the core's own, unlisted).
    pub fn local_addr(&self, index: u32) -> Option<Ipv4Addr> {
        match index {
            0 => Some(crate::lab::CORE_V4),
            i => self.local_addrs.get(&i).copied(),
        }
    }

    /// The device an audit target (`teid:0x…[@localN]`) names.
    pub fn device_of_target(&self, plan: &Plan, target: &str) -> Option<usize> {
        let (local, teid) = fteid_of_target(target)?;
        plan.by_fteid.get(&(self.local_addr(local)?, teid)).copied()
    }
}

fn sample_stages(
    maps: &N3Maps,
    t_s: f64,
    locals: &BTreeMap<u32, Ipv4Addr>,
    staged: &mut BTreeSet<(Ipv4Addr, u32)>,
) -> StageSample {
    let now = guard::clock::monotonic_ns();
    let mut s = StageSample { t_s, ..StageSample::default() };
    for (k, e) in maps.stages() {
        if e.expires_ns <= now || e.flags & STAGE_FLAG_EXEMPT != 0 || e.stage == 0 || e.stage > 3 {
            continue;
        }
        s.devices[(e.stage - 1) as usize] += 1;
        s.max_device_stage = s.max_device_stage.max(e.stage);
        if let Some((local, teid)) = k.as_fteid() {
            let n3 = if local == 0 { Some(crate::lab::CORE_V4) } else { locals.get(&local).copied() };
            if let Some(n3) = n3 {
                staged.insert((n3, teid));
            }
        }
    }
    s.cells_capped =
        maps.cell_stages().iter().filter(|(_, e)| e.stage == CELL_STAGE_CAP && e.expires_ns > now).count() as u32;
    s.host_capped = maps.config().map(|c| c.host_cap_expires_ns > now).unwrap_or(false);
    s
}

/// Per-run state of the frame builder: the random-TEID scan's counter, each device's G-PDU
/// count (which of them go out fragmented), each gNB's IPv4 Identification counter, and which
/// device each fragmented datagram (gNB address, Identification) belongs to.
#[derive(Default)]
struct FrameState {
    gpdus: Vec<u64>,
    ip_ids: HashMap<Ipv4Addr, u16>,
    frag_owner: HashMap<(Ipv4Addr, u16), usize>,
    /// Per device, the families (`variants::BIT_V4` / `BIT_V6`) of which a G-PDU with the UE's
    /// own source was *sent* (the sender's report, not the schedule): a forger forges a family
    /// only after that, so the guard's binding is the session's own even when the sender fell
    /// behind and dropped the first packets from its schedule (docs/dataplane.md: a forged first
    /// packet would hold the binding until `antispoof_rebind`).
    own_sent: Vec<u8>,
}

/// One frame of a slot: its variant, whether it is the later fragment of a datagram, and
/// whether its inner source is forged.
#[derive(Clone, Copy)]
struct FrameTag {
    var: u32,
    later: bool,
    forged: bool,
    /// The family bit of a G-PDU with the UE's own source (0 for anything else).
    own: u8,
}

/// Frames of one slot, interleaved so every device's packets spread over the slot; and the
/// variant of each frame. A fragmented G-PDU's fragments go out back to back, first first.
fn slot_frames(
    plan: &Plan,
    templates: &[Vec<u8>],
    bases: &[Option<crate::frames::GtpFrame>],
    slot_idx: usize,
    slot: &[(u32, u32)],
    st: &mut FrameState,
) -> (Vec<Vec<u8>>, Vec<FrameTag>) {
    let t_s = slot_idx as f64 / SLOTS_PER_SEC as f64;
    let total: usize = slot.iter().map(|&(_, n)| n as usize).sum();
    let mut frames = Vec::with_capacity(total);
    let mut vars = Vec::with_capacity(total);
    let max = slot.iter().map(|&(_, n)| n).max().unwrap_or(0);
    if st.gpdus.len() < plan.devices.len() {
        st.gpdus.resize(plan.devices.len(), 0);
        st.own_sent.resize(plan.devices.len(), 0);
    }
    for round in 0..max {
        for &(v, n) in slot {
            if round >= n {
                continue;
            }
            let d = &plan.devices[plan.variants[v as usize].device];
            // The device's G-PDU counter: a scan's TEIDs and sources, which G-PDUs go fragmented,
            // what a session variant's k-th G-PDU carries.
            let k = st.gpdus[d.idx];
            st.gpdus[d.idx] += 1;
            let (mut f, forged, own) = match bases.get(v as usize).and_then(Option::as_ref) {
                Some(base) => {
                    let sent = st.own_sent[d.idx];
                    let (pkt, f) = plan.variant_frame_with(base, v as usize, k, t_s, |bit| sent & bit != 0);
                    let own = if d.session.is_own(&pkt) { pkt.family_bit() } else { 0 };
                    (f, pkt.forged, own)
                }
                None => (templates[v as usize].clone(), false, 0),
            };
            if d.edge == Some(EdgeKind::Scan) {
                // A never-seen TEID per packet.
                let n = (k as u32).wrapping_add(1);
                let teid = scan_teid_of(d.tag, n);
                f[TEID_OFFSET_V4..TEID_OFFSET_V4 + 4].copy_from_slice(&teid.to_be_bytes());
                if let Profile::TeidScan { sources, .. } = d.segments[plan.variants[v as usize].segment].profile {
                    if sources > 0 {
                        set_outer_src_v4(&mut f, rotate_src(n, sources));
                    }
                }
            }
            // Which G-PDUs of a device go out fragmented: the k-th when floor(k·f) steps, so a
            // fraction f of them, spread evenly, the same in every mode.
            let fragmented = d.edge.is_none()
                && d.fragment > 0.0
                && ((k + 1) as f64 * d.fragment).floor() > (k as f64 * d.fragment).floor();
            let src = outer_src_v4(&f);
            if let (true, Some(src)) = (fragmented, src) {
                // The gNB's own Identification counter (RFC 791 §3.2: unique per source,
                // destination and protocol while the datagram may be alive).
                let id = st.ip_ids.entry(src).or_insert(0);
                *id = id.wrapping_add(1);
                let id = *id;
                if let Some(parts) = fragment_ipv4(&f, 14, d.path_mtu, id) {
                    st.frag_owner.insert((src, id), d.idx);
                    for (i, p) in parts.into_iter().enumerate() {
                        frames.push(p);
                        vars.push(FrameTag { var: v, later: i > 0, forged, own });
                    }
                    continue;
                }
            }
            frames.push(f);
            vars.push(FrameTag { var: v, later: false, forged, own });
        }
    }
    (frames, vars)
}

/// The outer IPv4 source of a frame built by [`Lab::gpdu_v4`] / [`Lab::route_v4`] (no VLAN tag).
fn outer_src_v4(f: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = f.get(26..30)?.try_into().ok()?;
    (f.get(12..14) == Some(&[0x08, 0x00])).then_some(Ipv4Addr::from(a))
}

/// Rewrite the outer IPv4 source (and the header checksum) of such a frame.
fn set_outer_src_v4(f: &mut [u8], src: Ipv4Addr) {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if f.len() < 14 + ihl {
        return;
    }
    f[26..30].copy_from_slice(&src.octets());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = crate::frames::internet_checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Delivered-packet accounting from sink snapshots: per F-TEID (forged inner sources apart) /
/// (message type, tag) / later fragment deltas, attributed to the device's class at the time of
/// the snapshot (forged G-PDUs: attack).
struct Delivered {
    prev_fteid: HashMap<(IpAddr, u32), u64>,
    prev_marked: HashMap<(IpAddr, u32), u64>,
    prev_tag: HashMap<(u8, u32), u64>,
    prev_frag: HashMap<(Ipv4Addr, u16), u64>,
}

/// What a delivered delta counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// Whole G-PDUs, first fragments, signalling.
    Frames,
    /// Later fragments.
    Later,
    /// G-PDUs with a forged inner source.
    Forged,
}

/// One delivered delta: device, frames, what they are.
type DeliveredDelta = (usize, u64, Counted);

impl Delivered {
    fn new() -> Self {
        Delivered {
            prev_fteid: HashMap::new(),
            prev_marked: HashMap::new(),
            prev_tag: HashMap::new(),
            prev_frag: HashMap::new(),
        }
    }

    /// Counts delivered since the last call, per class; the per-device deltas go to `deltas`.
    fn take(
        &mut self,
        plan: &Plan,
        snap: &crate::sink::SinkReport,
        frag_owner: &HashMap<(Ipv4Addr, u16), usize>,
        t_s: f64,
        deltas: &mut Vec<DeliveredDelta>,
    ) -> [u64; 2] {
        let mut c = [0u64; 2];
        let mut add = |dev: usize, n: u64, what: Counted, c: &mut [u64; 2]| {
            if n > 0 {
                // Forged G-PDUs are attack traffic whatever the device's class.
                let class = if what == Counted::Forged { Class::Attack } else { plan.devices[dev].class_at(t_s) };
                c[class.idx()] += n;
                deltas.push((dev, n, what));
            }
        };
        // By F-TEID: two sessions on two N3 addresses may share a TEID (TS 29.281 §5.1).
        for (&key, &n) in &snap.per_fteid {
            if key.1 == 0 {
                continue;
            }
            let p = self.prev_fteid.entry(key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            let m = snap.per_fteid_marked.get(&key).copied().unwrap_or(0);
            let pm = self.prev_marked.entry(key).or_insert(0);
            let dm = m.saturating_sub(*pm).min(d);
            *pm = m;
            if let Some(dev) = plan.device_of(key.0, key.1) {
                add(dev, d - dm, Counted::Frames, &mut c);
                add(dev, dm, Counted::Forged, &mut c);
            }
        }
        for (key, &n) in &snap.per_tag {
            let p = self.prev_tag.entry(*key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            if let Some(&dev) = plan.by_tag.get(key) {
                add(dev, d, Counted::Frames, &mut c);
            }
        }
        for (key, &n) in &snap.per_fragment {
            let p = self.prev_frag.entry(*key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            if let Some(&dev) = frag_owner.get(key) {
                add(dev, d, Counted::Later, &mut c);
            }
        }
        c
    }
}

/// Wait (at most 30 s) until the guard's XDP program is on the lab's core interface and its maps
/// are pinned; fails with the guard's log tail if it exits or does not attach.
pub fn wait_attached(g: &mut GuardProc, lab: &Lab) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(ch) = g.child.as_mut() {
            if let Some(st) = ch.try_wait()? {
                bail!("guard exited during start-up ({st}):\n{}", g.log_tail());
            }
        }
        let attached =
            lab.core.ip(&["link", "show", "dev", lab.core_ifname()]).map(|s| s.contains("xdp")).unwrap_or(false);
        if attached && N3Maps::open_pinned(&g.pins()).is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("the guard did not attach within 30 s:\n{}", g.log_tail());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `sc` (as planned in `plan`) once in `mode`.
pub fn run_mode(sc: &Scenario, plan: &Plan, mode: Mode, opts: &RunOpts) -> Result<RunResult> {
    run_mode_captured(sc, plan, mode, opts, None)
}

/// [`run_mode`], with dumpcap on the RAN side of the lab's veth writing every frame to
/// `capture` (pcapng) when given: everything the RAN sent, before the guard saw it (`guard
/// replay`'s tests, issue 21).
pub fn run_mode_captured(
    sc: &Scenario,
    plan: &Plan,
    mode: Mode,
    opts: &RunOpts,
    capture: Option<&Path>,
) -> Result<RunResult> {
    let dir = opts.out.join(&sc.name).join(mode.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    // Declared before the guard so it is dropped after it: `guard detach` needs the namespace.
    let lab =
        Lab::builder().gnbs(plan.gnbs).core_addrs(&plan.n3_addrs()).build().context("building the lab topology")?;
    let templates = plan.templates(&lab);
    let bases = plan.bases(&lab);
    let mut dumpcap = match capture {
        Some(p) => Some(crate::capture::Dumpcap::start(&lab.ran, lab.ran_ifname(), p)?),
        None => None,
    };
    let mut guard: Option<GuardProc> = None;
    let mut maps: Option<N3Maps> = None;
    let mut naive_caps = Vec::new();
    let (mut config_path, mut audit_path) = (None, None);
    let onset = sc.onset(plan).unwrap_or(sc.duration_s);
    if mode != Mode::Off {
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-lab-{}", unique_name("r")));
        let audit = std::fs::canonicalize(&dir)?.join("audit.jsonl");
        let _ = std::fs::remove_file(&audit);
        let port = 20_000 + (std::process::id() % 20_000) as u16 + (mode as u16) * 7;
        let cfg = dir.join("guard.toml");
        std::fs::write(&cfg, guard_config_text(sc, mode, lab.core_ifname(), &pin_base, &audit, port)?)?;
        let log = dir.join("guard.log");
        let _ = std::fs::remove_file(&log);
        register_run(&pin_base, None);
        let mut g = GuardProc {
            bin: opts.guard_bin.clone(),
            netns: lab.core_ns_name().to_owned(),
            iface: lab.core_ifname().to_owned(),
            config: cfg.clone(),
            pin_base,
            log,
            child: None,
            done: false,
        };
        match mode {
            Mode::Guard => {
                let dur = format!("{}", sc.duration_s + 15.0);
                g.child = Some(g.start(&["--duration", &dur])?);
                let r = wait_attached(&mut g, &lab);
                guard = Some(g);
                r?;
            }
            Mode::NaiveCellCap => {
                let mut ch = g.start(&["--no-controller"])?;
                let st = wait_timeout(&mut ch, Duration::from_secs(30))?;
                guard = Some(g);
                let g = guard.as_mut().expect("just set");
                if !st {
                    bail!("guard run --no-controller failed:\n{}", g.log_tail());
                }
                let mut m = N3Maps::open_pinned(&g.pins()).context("opening the pinned maps")?;
                // The cap per gNB: cap_factor × its normal G-PDU rate before the onset.
                let normal = plan.gpdu_pps_per_gnb(0.0, onset.max(1.0));
                for (i, pps) in normal.iter().enumerate() {
                    let cap = (pps * sc.naive.cap_factor).ceil().max(1.0) as u64;
                    let burst = ((cap as f64) * sc.naive.burst_ms / 1000.0).ceil().max(1.0) as u64;
                    let o = lab.gnb_v4[i].octets();
                    m.set_cell_stage(&L3Addr::v4(o), &crate::bpf::cell_cap_entry(cap, burst, 3_600_000_000_000))?;
                    naive_caps.push(cap);
                }
                maps = Some(m);
            }
            Mode::Off => {}
        }
        if let Some(g) = guard.as_ref() {
            if maps.is_none() {
                maps = Some(N3Maps::open_pinned(&g.pins()).context("opening the pinned maps")?);
            }
        }
        config_path = Some(cfg);
        audit_path = Some(audit);
    }
    let guard_pid = guard.as_ref().and_then(|g| g.child.as_ref()).map(|c| c.id());
    let guard_t0 = Instant::now();
    if opts.verbose {
        eprintln!("lab: {} / {}: {} devices, {:.0} s", sc.name, mode.name(), plan.devices.len(), plan.duration_s());
    }

    let sink = Sink::start_with(
        &lab.core,
        lab.core_ifname(),
        crate::SinkOpts { by_fteid: true, marked: crate::variants::forged_prefixes(), ..crate::SinkOpts::default() },
    )?;
    let nslots = plan.slots.len();
    let mut res = RunResult {
        scenario: sc.name.clone(),
        mode,
        sent: vec![[0; 2]; nslots],
        delivered: vec![[0; 2]; nslots],
        device_sent: vec![0; plan.devices.len()],
        device_delivered: vec![0; plan.devices.len()],
        device_sent_later: vec![0; plan.devices.len()],
        device_delivered_later: vec![0; plan.devices.len()],
        pop_sent: BTreeMap::new(),
        pop_delivered: BTreeMap::new(),
        unsent: 0,
        stages: Vec::new(),
        staged: BTreeSet::new(),
        local_addrs: BTreeMap::new(),
        forged_sent: vec![0; nslots],
        forged_delivered: vec![0; nslots],
        device_forged_sent: vec![0; plan.devices.len()],
        device_forged_delivered: vec![0; plan.devices.len()],
        audit: Vec::new(),
        dataplane_events: BTreeMap::new(),
        guard_cpu_s: None,
        guard_wall_s: None,
        naive_caps_pps: naive_caps,
        dataplane: None,
        sink_kernel_drops: 0,
        wall_s: 0.0,
        config_path,
        audit_path: audit_path.clone(),
    };
    if let Some(m) = maps.as_ref() {
        // Index → address of the F-TEIDs in the stage map and the audit log.
        let t = m.local_table().context("reading the guard's N3 address table")?;
        for (i, a, _) in t.listed() {
            if let IpAddr::V4(a) = a {
                res.local_addrs.insert(i, a);
            }
        }
    }
    let mut acct = Delivered::new();
    let mut fst = FrameState::default();
    let mut deltas: Vec<DeliveredDelta> = Vec::new();
    for d in &plan.devices {
        res.pop_sent.entry(d.population.clone()).or_insert_with(|| vec![[0; 2]; nslots]);
        res.pop_delivered.entry(d.population.clone()).or_insert_with(|| vec![[0; 2]; nslots]);
    }
    let slot = Duration::from_millis(SLOT_MS);
    let cpu0 = guard_pid.and_then(proc_cpu_s);
    let mut cpu_last = cpu0;
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    for (i, s) in plan.slots.iter().enumerate() {
        let (frames, vars) = slot_frames(plan, &templates, &bases, i, s, &mut fst);
        let start = t0 + slot * i as u32;
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
        if !frames.is_empty() {
            let end = t0 + slot * (i as u32 + 1);
            let deadline = end.saturating_duration_since(Instant::now()).max(Duration::from_millis(20));
            let pps = (frames.len() as u64 * 1000 / (SLOT_MS * 9 / 10)).max(100);
            let rep = send_frames(
                &lab.ran,
                lab.ran_ifname(),
                &frames,
                &SendOpts::new(frames.len() as u64, deadline).pps(pps).cpu(sc.sender_cpu),
            )
            .with_context(|| format!("sending slot {i}"))?;
            for (fi, &n) in rep.per_frame.iter().enumerate() {
                if n > 0 {
                    let tag = vars[fi];
                    let v = plan.variants[tag.var as usize];
                    let d = &plan.devices[v.device];
                    if let Some(o) = fst.own_sent.get_mut(v.device) {
                        *o |= tag.own;
                    }
                    if tag.forged {
                        // Attack traffic of its own, never the device's (its real G-PDUs are).
                        res.forged_sent[i] += n;
                        res.device_forged_sent[v.device] += n;
                        res.sent[i][Class::Attack.idx()] += n;
                        continue;
                    }
                    res.device_sent[v.device] += n;
                    if tag.later {
                        res.device_sent_later[v.device] += n;
                    }
                    res.sent[i][d.segments[v.segment].class.idx()] += n;
                    if let Some(p) = res.pop_sent.get_mut(&d.population) {
                        p[i][usize::from(tag.later)] += n;
                    }
                }
            }
            res.unsent += frames.len() as u64 - rep.sent;
        }
        let t_s = (i + 1) as f64 / SLOTS_PER_SEC as f64;
        let snap = sink.snapshot();
        deltas.clear();
        res.delivered[i] = acct.take(plan, &snap, &fst.frag_owner, t_s - 0.05, &mut deltas);
        add_delivered(plan, &deltas, i, &mut res);
        if i % 5 == 4 {
            if let Some(m) = maps.as_ref() {
                res.stages.push(sample_stages(m, t_s, &res.local_addrs, &mut res.staged));
            }
            if let Some(c) = guard_pid.and_then(proc_cpu_s) {
                cpu_last = Some(c);
            }
        }
    }
    sink.wait_quiet(Duration::from_millis(200), Duration::from_secs(3));
    if let Some(d) = dumpcap.as_mut() {
        d.stop();
    }
    let rep = sink.stop()?;
    let last = nslots.saturating_sub(1);
    deltas.clear();
    let tail = acct.take(plan, &rep, &fst.frag_owner, plan.duration_s() - 0.05, &mut deltas);
    add_delivered(plan, &deltas, last, &mut res);
    res.delivered[last][0] += tail[0];
    res.delivered[last][1] += tail[1];
    res.sink_kernel_drops = rep.kernel_drops;
    if let Some(m) = maps.as_ref() {
        res.stages.push(sample_stages(m, plan.duration_s(), &res.local_addrs, &mut res.staged));
    }
    if let Some(c) = guard_pid.and_then(proc_cpu_s) {
        cpu_last = Some(c);
    }
    if mode == Mode::Guard {
        res.guard_cpu_s = cpu_last;
        res.guard_wall_s = Some(guard_t0.elapsed().as_secs_f64());
        let _ = cpu0;
    }
    res.dataplane = maps.as_ref().map(read_dataplane);
    drop(maps);
    if let Some(mut g) = guard.take() {
        g.finish()?;
    }
    if let Some(a) = audit_path {
        (res.audit, res.dataplane_events) = read_audit(&a, wall0);
    }
    drop(lab);
    write_devices_csv(&dir.join("devices.csv"), plan, &res)?;
    res.wall_s = started.elapsed().as_secs_f64();
    Ok(res)
}

/// Per-device and per-population delivered counts of one slot.
fn add_delivered(plan: &Plan, deltas: &[DeliveredDelta], slot: usize, res: &mut RunResult) {
    for &(dev, n, what) in deltas {
        if what == Counted::Forged {
            if let Some(x) = res.forged_delivered.get_mut(slot) {
                *x += n;
            }
            res.device_forged_delivered[dev] += n;
            continue;
        }
        let later = what == Counted::Later;
        res.device_delivered[dev] += n;
        if later {
            res.device_delivered_later[dev] += n;
        }
        if let Some(p) = res.pop_delivered.get_mut(&plan.devices[dev].population).and_then(|v| v.get_mut(slot)) {
            p[usize::from(later)] += n;
        }
    }
}

/// What the generator actually sent and the sink counted, per device, for one run.
fn write_devices_csv(path: &Path, plan: &Plan, res: &RunResult) -> Result<()> {
    let staged: BTreeSet<usize> = res
        .staged
        .iter()
        .filter_map(|k| plan.by_fteid.get(k).copied())
        .chain(
            res.audit
                .iter()
                .filter(|a| a.action == "set_device_stage" && !a.exempt)
                .filter_map(|a| res.device_of_target(plan, &a.target)),
        )
        .collect();
    let mut out = String::from(
        "device,population,class,gnb,n3,teid,ue,sent,delivered,staged,later_fragments_sent,later_fragments_delivered,forged_sent,forged_delivered\n",
    );
    for d in &plan.devices {
        let class = match d.class {
            Class::Benign => "benign",
            Class::Attack => "attack",
        };
        out.push_str(&format!(
            "{},{},{class},{},{},{:#010x},{},{},{},{},{},{},{},{}\n",
            d.label(),
            d.population,
            d.gnb,
            d.n3,
            d.teid,
            d.ue_str(),
            res.device_sent[d.idx],
            res.device_delivered[d.idx],
            d.edge.is_none() && staged.contains(&d.idx),
            res.device_sent_later.get(d.idx).copied().unwrap_or(0),
            res.device_delivered_later.get(d.idx).copied().unwrap_or(0),
            res.device_forged_sent.get(d.idx).copied().unwrap_or(0),
            res.device_forged_delivered.get(d.idx).copied().unwrap_or(0),
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn wait_timeout(ch: &mut Child, t: Duration) -> Result<bool> {
    let end = Instant::now() + t;
    loop {
        if let Some(st) = ch.try_wait()? {
            return Ok(st.success());
        }
        if Instant::now() > end {
            let _ = ch.kill();
            let _ = ch.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// Per-scenario summary of the audit log: counts per (action, reason), non-refresh only.
pub fn audit_summary(lines: &[AuditLine]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines.iter().filter(|l| !l.refresh) {
        *m.entry(format!("{} / {}", l.action, l.reason)).or_insert(0) += 1;
    }
    m
}

mod audit;
mod process;
pub use audit::*;
pub use process::*;

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
