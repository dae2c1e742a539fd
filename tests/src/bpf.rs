//! A BPF_PROG_TEST_RUN harness for the guard's N3 XDP program (DESIGN §5 "Verdict tests").
//!
//! [`Guard::load`] loads the real program (the object `guard-userspace` embeds) with every map
//! pinned in a fresh, uniquely named bpffs directory `/sys/fs/bpf/og-test-<unique>/t`; dropping the
//! [`Guard`] (also while unwinding from a failed assertion) detaches any pinned link and removes
//! the pins and the directory. [`Guard::expect`] runs one frame and checks the XDP action *and*
//! that exactly the expected `N3_VERDICTS` counter moved; [`Counters`] snapshots every per-CPU
//! counter array so a test can assert on deltas.
//!
//! ```no_run
//! use guard_common::{abi::GuardConfig, policy::Verdict};
//! use labkit::{bpf::Guard, GtpFrame};
//! let mut g = Guard::load(&GuardConfig { gtpu_port: 2152, ..Default::default() }).unwrap();
//! let d = g.expect("a G-PDU", &GtpFrame::gpdu(7).build(), Verdict::PassGpdu);
//! assert!(d.moved_malformed().is_empty());
//! ```
//!
//! The thread that loads a [`Guard`] is pinned to the CPU it runs on: some limiter state is
//! per-CPU (`N3_PCPU_TAT`: the event rate and the host cap), and a test that hopped CPUs between
//! two runs would see two independent limiters.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};
use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::{TestRun, TestRunOptions};
use guard::{
    bpf::pins::PinDir,
    n3::load::{self, Loaded},
    n3::maps::N3Maps,
};
use guard_common::{
    abi::{self, CellCounts, CellKey, CellState, DeviceKey, DeviceState, GuardConfig, L3Addr, Limit, StageEntry},
    parse::Malformed,
    policy::Verdict,
};

use crate::netns::unique_name;

/// `N3_DEVICES` capacity for tests: small, so loading is quick and cheap.
pub const TEST_MAX_DEVICES: u32 = 4096;
/// XDP return codes (`enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// A bpffs pin directory unique to this process and call, removed (with everything in it and any
/// pinned XDP link) on drop.
#[derive(Debug)]
pub struct PinScope {
    base: PathBuf,
    pub pins: PinDir,
}

/// The pin scopes of this process not yet dropped: what Ctrl-C (SIGINT) or SIGTERM leaves behind
/// without [`purge_live_scopes`], since exiting runs no Drop (a bench's maps hold hundreds of MiB
/// of kernel memory for as long as their pins exist).
static LIVE_SCOPES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
static PURGE_ON_INTERRUPT: Once = Once::new();

/// Remove every live scope's pins and directory (the interrupt watcher's cleanup).
fn purge_live_scopes() {
    let scopes = LIVE_SCOPES.lock().map(|s| s.clone()).unwrap_or_default();
    for base in scopes {
        eprintln!("labkit: interrupted, removing pins in {}", base.display());
        remove_scope(&base, &PinDir::new(&base, "t"));
    }
}

fn remove_scope(base: &std::path::Path, pins: &PinDir) {
    if let Err(e) = load::detach(pins, true) {
        eprintln!("labkit::bpf: could not remove pins in {}: {e}", pins.path().display());
    }
    if base.exists() {
        if let Err(e) = std::fs::remove_dir(base) {
            eprintln!("labkit::bpf: could not remove {}: {e}", base.display());
        }
    }
}

impl PinScope {
    /// `/sys/fs/bpf/og-test-<tag><unique>/t`. Nothing is created yet; [`load::load`] does that.
    /// Removed on drop, and by the interrupt watcher (`netns::install_sigint_cleanup`) on Ctrl-C.
    pub fn new(tag: &str) -> PinScope {
        let base = PathBuf::from(format!("/sys/fs/bpf/og-test-{}", unique_name(tag)));
        let pins = PinDir::new(&base, "t");
        PURGE_ON_INTERRUPT.call_once(|| crate::netns::on_interrupt(purge_live_scopes));
        if let Ok(mut live) = LIVE_SCOPES.lock() {
            live.insert(base.clone());
        }
        PinScope { base, pins }
    }

    pub fn base(&self) -> &std::path::Path {
        &self.base
    }
}

impl Drop for PinScope {
    fn drop(&mut self) {
        remove_scope(&self.base, &self.pins);
        if let Ok(mut live) = LIVE_SCOPES.lock() {
            live.remove(&self.base);
        }
    }
}

// Tests pin their thread to choose the CPU BPF_PROG_TEST_RUN runs on (its per-CPU map slots).
pub use crate::affinity::{pin_to_cpu, pin_to_current_cpu};

/// Every per-CPU counter array of the program, summed over CPUs (packets only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `N3_VERDICTS`, indexed by [`Verdict`].
    pub verdicts: Vec<u64>,
    /// `N3_SHADOW`, indexed by [`Verdict`].
    pub shadow: Vec<u64>,
    /// `N3_MALFORMED`, indexed by [`Malformed`].
    pub malformed: Vec<u64>,
    /// `N3_STATS`, indexed by `STAT_*`.
    pub stats: Vec<u64>,
}

impl Counters {
    /// `self - before`, field by field.
    pub fn since(&self, before: &Counters) -> Counters {
        let d = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x.wrapping_sub(*y)).collect();
        Counters {
            verdicts: d(&self.verdicts, &before.verdicts),
            shadow: d(&self.shadow, &before.shadow),
            malformed: d(&self.malformed, &before.malformed),
            stats: d(&self.stats, &before.stats),
        }
    }

    pub fn verdict(&self, v: Verdict) -> u64 {
        self.verdicts[v as usize]
    }

    pub fn shadow(&self, v: Verdict) -> u64 {
        self.shadow[v as usize]
    }

    pub fn malformed(&self, m: Malformed) -> u64 {
        self.malformed[m as usize]
    }

    pub fn stat(&self, index: u32) -> u64 {
        self.stats[index as usize]
    }

    /// Verdict counters that are not zero (meaningful on a delta).
    pub fn moved_verdicts(&self) -> Vec<(Verdict, u64)> {
        Verdict::ALL.iter().map(|&v| (v, self.verdict(v))).filter(|(_, n)| *n != 0).collect()
    }

    pub fn moved_shadow(&self) -> Vec<(Verdict, u64)> {
        Verdict::ALL.iter().map(|&v| (v, self.shadow(v))).filter(|(_, n)| *n != 0).collect()
    }

    pub fn moved_malformed(&self) -> Vec<(Malformed, u64)> {
        Malformed::ALL.iter().map(|&m| (m, self.malformed(m))).filter(|(_, n)| *n != 0).collect()
    }
}

/// The N3 program loaded for test runs, with its maps. Drop order: maps, program, pins.
pub struct Guard {
    pub maps: N3Maps,
    pub loaded: Loaded,
    pub scope: PinScope,
    pub cpu: usize,
    /// The injectable clock of a [`Guard::load_replay`] (`.bss`, `REPLAY_NOW_NS`).
    clock: Option<aya::maps::Array<MapData, u64>>,
}

impl Guard {
    /// Load the program with `cfg` written to `N3_CONFIG`, pins in a fresh [`PinScope`], and pin
    /// the calling thread to its CPU.
    pub fn load(cfg: &GuardConfig) -> Result<Guard> {
        let cpu = pin_to_current_cpu()?;
        let scope = PinScope::new("v");
        Self::load_in(scope, cfg, cpu)
    }

    /// Load into a given pin scope without touching the thread's affinity (for end-to-end tests).
    pub fn load_in(scope: PinScope, cfg: &GuardConfig, cpu: usize) -> Result<Guard> {
        let mut loaded = load::load(&scope.pins, TEST_MAX_DEVICES, cfg)
            .with_context(|| format!("loading guard_n3 with pins in {}", scope.pins.path().display()))?;
        let maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf).context("opening the N3 maps")?;
        Ok(Guard { maps, loaded, scope, cpu, clock: None })
    }

    /// Load `guard_n3_replay`, the same program on an injectable clock: the data plane's `now`
    /// is what [`Guard::set_clock`] last wrote (docs/replay.md), so a test of rates sets the time
    /// of every packet instead of sleeping. Pins the calling thread to its CPU, as [`Guard::load`].
    pub fn load_replay(cfg: &GuardConfig) -> Result<Guard> {
        let cpu = pin_to_current_cpu()?;
        let scope = PinScope::new("vr");
        let mut loaded = load::load_replay(&scope.pins, TEST_MAX_DEVICES, cfg)
            .with_context(|| format!("loading guard_n3_replay with pins in {}", scope.pins.path().display()))?;
        let maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf).context("opening the N3 maps")?;
        let bss = loaded.ebpf.take_map(abi::MAP_BSS).context("the object has no .bss (the replay clock)")?;
        let clock = aya::maps::Array::try_from(bss).context("the .bss is the replay clock alone (a u64)")?;
        Ok(Guard { maps, loaded, scope, cpu, clock: Some(clock) })
    }

    /// Set the data plane's clock (a [`Guard::load_replay`] only), in ns.
    pub fn set_clock(&mut self, now_ns: u64) {
        let c = self.clock.as_mut().expect("set_clock needs Guard::load_replay");
        c.set(0, now_ns, 0).expect("writing the replay clock");
    }

    /// Move the calling thread (and so the next runs) to `cpu`.
    pub fn on_cpu(&mut self, cpu: usize) {
        pin_to_cpu(cpu).unwrap_or_else(|e| panic!("{e:#}"));
        self.cpu = cpu;
    }

    /// Run one frame through the program; the XDP action.
    pub fn run(&mut self, frame: &[u8]) -> Result<u32> {
        let prog = self.loaded.program().context("guard_n3")?;
        let r = prog
            .test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })
            .with_context(|| format!("BPF_PROG_TEST_RUN on a {}-byte frame", frame.len()))?;
        Ok(r.return_value)
    }

    /// Snapshot every counter array.
    pub fn counters(&self) -> Counters {
        let m = &self.maps;
        Counters {
            verdicts: m.verdicts().expect("reading N3_VERDICTS").iter().map(|(_, c)| c.packets).collect(),
            shadow: m.shadow().expect("reading N3_SHADOW").iter().map(|(_, c)| c.packets).collect(),
            malformed: m.malformed().expect("reading N3_MALFORMED").iter().map(|(_, c)| c.packets).collect(),
            stats: m.stats().expect("reading N3_STATS").iter().map(|c| c.packets).collect(),
        }
    }

    /// Run `frame` and the counter deltas it caused.
    pub fn run_delta(&mut self, frame: &[u8]) -> (u32, Counters) {
        let before = self.counters();
        let action = self.run(frame).unwrap_or_else(|e| panic!("{e:#}"));
        (action, self.counters().since(&before))
    }

    /// Run `frame` (described by `what` in failure messages) and assert that the program returned
    /// the action of `expected` and that exactly one packet was counted, under `expected`, in
    /// `N3_VERDICTS`. Returns all counter deltas for further checks.
    #[track_caller]
    pub fn expect(&mut self, what: &str, frame: &[u8], expected: Verdict) -> Counters {
        let (action, d) = self.run_delta(frame);
        let want = if expected.is_drop() { XDP_DROP } else { XDP_PASS };
        assert_eq!(
            action,
            want,
            "{what}: XDP action {} (expected {} for {}); verdicts moved {:?}, malformed {:?}\nframe {}",
            action_name(action),
            action_name(want),
            expected.name(),
            d.moved_verdicts(),
            d.moved_malformed(),
            hex(frame)
        );
        assert_eq!(
            d.moved_verdicts(),
            vec![(expected, 1)],
            "{what}: expected exactly one {} in N3_VERDICTS; malformed moved {:?}\nframe {}",
            expected.name(),
            d.moved_malformed(),
            hex(frame)
        );
        d
    }

    /// Run `frame` `n` times without reading counters in between; the number of XDP_PASS results.
    pub fn run_n(&mut self, frame: &[u8], n: usize) -> usize {
        (0..n).filter(|_| self.run(frame).unwrap_or_else(|e| panic!("{e:#}")) == XDP_PASS).count()
    }

    pub fn write_config(&mut self, cfg: &GuardConfig) {
        self.maps.write_config(cfg).expect("writing N3_CONFIG");
    }

    pub fn set_stage(&mut self, key: &DeviceKey, e: &StageEntry) {
        self.maps.set_stage(key, e).expect("writing N3_STAGES");
    }

    pub fn device(&self, key: &DeviceKey) -> Option<DeviceState> {
        self.maps.device(key).expect("reading N3_DEVICES")
    }

    pub fn teid(&self, teid: u32) -> Option<DeviceState> {
        self.device(&DeviceKey::teid(teid))
    }

    pub fn cell(&self, gnb: IpAddr) -> Option<CellState> {
        self.maps.cell(&l3(gnb)).expect("reading N3_CELLS")
    }

    /// Every CPU's counts of the hot slot `slot` (`N3_CELL_PCPU`, opened from its pin), in CPU
    /// order: what [`CellCounts::total`] sums for `guard status`.
    pub fn cell_counts(&self, slot: u32) -> Vec<CellCounts> {
        let path = self.scope.pins.map_path(abi::MAP_N3_CELL_PCPU);
        let data = MapData::from_pin(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        let map = Map::from_map_data(data).unwrap_or_else(|e| panic!("{}: {e}", abi::MAP_N3_CELL_PCPU));
        let counts: PerCpuArray<MapData, CellCounts> =
            PerCpuArray::try_from(map).unwrap_or_else(|e| panic!("{}: {e}", abi::MAP_N3_CELL_PCPU));
        counts
            .get(&slot, 0)
            .unwrap_or_else(|e| panic!("reading slot {slot} of N3_CELL_PCPU: {e}"))
            .iter()
            .copied()
            .collect()
    }

    pub fn device_count(&self) -> usize {
        self.maps.devices().len()
    }

    pub fn cell_count(&self) -> usize {
        self.maps.cells().len()
    }
}

/// A stage entry at `stage` with a `pps`/`burst` limit (0 = none), live for `ttl_ns` from now.
pub fn stage_entry(stage: u32, pps: u64, burst: u64, ttl_ns: u64) -> StageEntry {
    let l = Limit::per_second(pps, burst);
    let now = guard::clock::monotonic_ns();
    StageEntry {
        stage,
        interval_ns: l.interval_ns,
        tau_ns: l.tau_ns,
        expires_ns: now + ttl_ns,
        set_ns: now,
        ..Default::default()
    }
}

/// [`stage_entry`] for an N2 peer (`N2_PEER_STAGES`): the same fields in N2's record, which has
/// no byte limit.
pub fn peer_stage_entry(stage: u32, pps: u64, burst: u64, ttl_ns: u64) -> guard_common::abi::n2::N2StageEntry {
    let e = stage_entry(stage, pps, burst, ttl_ns);
    guard_common::abi::n2::N2StageEntry {
        stage: e.stage,
        interval_ns: e.interval_ns,
        tau_ns: e.tau_ns,
        expires_ns: e.expires_ns,
        set_ns: e.set_ns,
        ..Default::default()
    }
}

/// A cell cap (`N3_CELL_STAGES`) of `pps`/`burst` over a whole gNB, live for `ttl_ns` from now.
pub fn cell_cap_entry(pps: u64, burst: u64, ttl_ns: u64) -> guard_common::abi::CellStageEntry {
    let l = Limit::per_second(pps, burst);
    let now = guard::clock::monotonic_ns();
    guard_common::abi::CellStageEntry {
        stage: guard_common::abi::CELL_STAGE_CAP,
        interval_ns: l.interval_ns,
        tau_ns: l.tau_ns,
        expires_ns: now + ttl_ns,
        set_ns: now,
        ..Default::default()
    }
}

/// The map key of an address.
pub fn l3(a: IpAddr) -> CellKey {
    match a {
        IpAddr::V4(a) => L3Addr::v4(a.octets()),
        IpAddr::V6(a) => L3Addr::v6(a.octets()),
    }
}

pub fn l3_v4(a: Ipv4Addr) -> L3Addr {
    L3Addr::v4(a.octets())
}

pub fn l3_v6(a: Ipv6Addr) -> L3Addr {
    L3Addr::v6(a.octets())
}

pub fn action_name(a: u32) -> &'static str {
    match a {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// Hex dump on one line.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}
