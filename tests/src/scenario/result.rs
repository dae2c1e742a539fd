//! What a run records: stage samples from the pinned maps, audit lines, the data plane's
//! counters at the end, per-slot delivery per class, and the guard's CPU time.

use super::*;

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
    /// Why the verdict counters could not be read, if they could not: then `verdicts` is empty
    /// and no check may read it as "nothing dropped".
    #[serde(default)]
    pub verdicts_error: Option<String>,
}

pub(super) fn read_dataplane(m: &N3Maps) -> DataplaneCounters {
    let mut c = DataplaneCounters::default();
    match m.verdicts() {
        Ok(v) => {
            for (verdict, n) in v {
                if n.packets > 0 {
                    c.verdicts.insert(verdict.name().to_owned(), n.packets);
                }
            }
        }
        Err(e) => c.verdicts_error = Some(format!("{e:#}")),
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
    /// Per slot: packets the plan scheduled, `[benign, attack]` (sent + unsent): what a
    /// sender that fell behind did not send shows against it.
    #[serde(default)]
    pub scheduled: Vec<[u64; 2]>,
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
    /// Per population, per slot: frames scheduled, as `pop_sent`.
    #[serde(default)]
    pub pop_scheduled: BTreeMap<String, Vec<[u64; 2]>>,
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
    /// The audit log existed when the run was read: an empty decision list means none were
    /// made only if it did.
    #[serde(default)]
    pub audit_found: bool,
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

pub(super) fn sample_stages(
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
