//! The reference programs and BPF_PROG_TEST_RUN timing.
//!
//! `guard::n3::load::load` only loads `guard_n3`. The reference programs (`guard-ebpf/src/baseline.rs`:
//! `xdp_baseline`, `xdp_floor`, `xdp_floor_lru`, `xdp_floor_new`, `xdp_parse_only` and the `xdp_op_*` operation
//! probes) live in the same object; [`RefProgs`] loads that object a second time with
//! [`aya::EbpfLoader`], its pinned maps in a unique bpffs directory that is purged on drop, the
//! guard's maps tiny (the reference programs do not use them) and the floor maps as large as the
//! bench needs.

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{HashMap, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf, EbpfLoader,
};
use guard_common::abi;

use crate::bpf::PinScope;

pub const BASELINE: &str = "xdp_baseline";
pub const FLOOR: &str = "xdp_floor";
pub const FLOOR_LRU: &str = "xdp_floor_lru";
/// The first packet's floor: a miss, an insert into a full LRU hash (it evicts), two atomic adds.
pub const FLOOR_NEW: &str = "xdp_floor_new";
pub const PARSE_ONLY: &str = "xdp_parse_only";
/// The live-frames flood source and the drop-everything reference (`bench::live`).
pub const LIVE_SENDER: &str = "xdp_live_sender";
pub const DROP: &str = "xdp_drop";
/// The operation probes: each performs one operation eight times.
pub const OPS: [&str; 13] = [
    "xdp_op_ktime",
    "xdp_op_hash",
    "xdp_op_miss",
    "xdp_op_lru",
    "xdp_op_percpu",
    "xdp_op_hash1",
    "xdp_op_atomic",
    "xdp_op_ktime_coarse",
    "xdp_op_jiffies",
    "xdp_op_hash8",
    "xdp_op_lru8",
    "xdp_op_call",
    "xdp_op_loop",
];
/// The 12-byte-key probes (a compact key with its kind), timed by the A/B's key-size table only.
pub const KEY12: [&str; 2] = ["xdp_op_hash12", "xdp_op_lru12"];
/// Every program [`RefProgs`] loads.
pub const ALL: [&str; 22] = [
    BASELINE,
    FLOOR,
    FLOOR_LRU,
    FLOOR_NEW,
    PARSE_ONLY,
    OPS[0],
    OPS[1],
    OPS[2],
    OPS[3],
    OPS[4],
    OPS[5],
    OPS[6],
    OPS[7],
    OPS[8],
    OPS[9],
    OPS[10],
    OPS[11],
    OPS[12],
    KEY12[0],
    KEY12[1],
    LIVE_SENDER,
    DROP,
];

const MAP_FLOOR: &str = "BENCH_FLOOR";
const MAP_FLOOR_LRU: &str = "BENCH_FLOOR_LRU";
const MAP_FLOOR_NEW: &str = "BENCH_FLOOR_NEW";
/// The 20-byte-key maps of the `xdp_op_*` probes, and the key they look up (`baseline.rs`).
const MAP_OPS: [&str; 2] = ["BENCH_HASH20", "BENCH_LRU20"];
const OP_KEY: [u32; 5] = [1, 0, 0, 0, 0];
/// The 8-byte-key maps of `xdp_op_hash8` and `xdp_op_lru8`, and their key.
const MAP_OPS8: [&str; 2] = ["BENCH_HASH8", "BENCH_LRU8"];
const OP_KEY8: u64 = 1;

/// One timed BPF_PROG_TEST_RUN call.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// XDP action of the last run.
    pub action: u32,
    /// The kernel's mean duration per run (integer nanoseconds; time the thread was preempted
    /// is not counted, so other load on the machine hardly moves it).
    pub kernel_ns: f64,
    /// Wall-clock time of the whole call divided by `repeat` (includes preemption).
    pub wall_ns: f64,
}

/// Run `prog` on `frame` `repeat` times.
pub fn time_run(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<Timed> {
    let t0 = Instant::now();
    let r = prog
        .test_run(TestRunOptions { data_in: Some(frame), repeat, ..Default::default() })
        .with_context(|| format!("BPF_PROG_TEST_RUN (repeat {repeat}) on a {}-byte frame", frame.len()))?;
    let wall = t0.elapsed().as_secs_f64() * 1e9;
    Ok(Timed {
        action: r.return_value,
        kernel_ns: r.duration.as_nanos() as f64,
        wall_ns: wall / f64::from(repeat.max(1)),
    })
}

/// Mean kernel-measured ns per run over `frames`, each run once (`repeat` 1): the cost when each
/// packet is a different device, as in real traffic. The kernel's figure for `repeat` 1 includes
/// its timer overhead; the reference programs measured the same way carry the same overhead.
pub fn time_cycle(prog: &mut Xdp, frames: &[Vec<u8>]) -> Result<f64> {
    if frames.is_empty() {
        return Err(anyhow!("no frames to cycle over"));
    }
    let mut total = 0f64;
    for f in frames {
        let r = prog
            .test_run(TestRunOptions { data_in: Some(f), repeat: 1, ..Default::default() })
            .context("BPF_PROG_TEST_RUN")?;
        total += r.duration.as_nanos() as f64;
    }
    Ok(total / frames.len() as f64)
}

/// The reference programs, loaded from the guard's object.
pub struct RefProgs {
    // Field order is drop order: programs and maps first, then the pins.
    ebpf: Ebpf,
    _scope: PinScope,
}

impl RefProgs {
    /// Load every reference program; the floor maps hold up to `floor_capacity` TEIDs
    /// (`xdp_floor_new`'s a handful: [`RefProgs::load_sized`] sizes it).
    pub fn load(floor_capacity: u32) -> Result<RefProgs> {
        RefProgs::load_sized(floor_capacity, 64)
    }

    /// As [`RefProgs::load`], with `xdp_floor_new`'s LRU hash of `new_capacity` records: the
    /// capacity of the guard's `N3_DEVICES` it is timed beside, so that both evict alike once full.
    pub fn load_sized(floor_capacity: u32, new_capacity: u32) -> Result<RefProgs> {
        let scope = PinScope::new("bref");
        scope.pins.create().context("creating the bpffs pin directory")?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(scope.pins.path())
            .map_max_entries(abi::MAP_N3_DEVICES, 1024)
            .map_max_entries(abi::MAP_N3_STAGES, 1024)
            .map_max_entries(abi::MAP_N3_CELLS, 1024)
            .map_max_entries(abi::MAP_N3_CELL_HOT, 1)
            .map_max_entries(abi::MAP_N3_CELL_PCPU, 1)
            .map_max_entries(abi::MAP_N3_CELL_STAGES, 1024)
            .map_max_entries(MAP_FLOOR, floor_capacity.max(64))
            .map_max_entries(MAP_FLOOR_LRU, floor_capacity.max(64))
            .map_max_entries(MAP_FLOOR_NEW, new_capacity.max(64))
            .load(guard::bpf::object::object())
            .context("loading the guard's BPF object for the reference programs")?;
        for name in ALL {
            let p: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("{name} is missing from the BPF object (is guard-ebpf/src/baseline.rs built?)"))?
                .try_into()
                .with_context(|| format!("{name} is not an XDP program"))?;
            p.load().with_context(|| format!("loading {name} (verifier)"))?;
        }
        for name in MAP_OPS {
            let mut m: HashMap<&mut MapData, [u32; 5], [u64; 2]> =
                HashMap::try_from(ebpf.map_mut(name).ok_or_else(|| anyhow!("{name} is missing from the BPF object"))?)
                    .with_context(|| format!("{name} is not a hash map"))?;
            m.insert(OP_KEY, [0u64; 2], 0).with_context(|| format!("inserting the probe key into {name}"))?;
        }
        for name in MAP_OPS8 {
            let mut m: HashMap<&mut MapData, u64, [u64; 2]> =
                HashMap::try_from(ebpf.map_mut(name).ok_or_else(|| anyhow!("{name} is missing from the BPF object"))?)
                    .with_context(|| format!("{name} is not a hash map"))?;
            m.insert(OP_KEY8, [0u64; 2], 0).with_context(|| format!("inserting the probe key into {name}"))?;
        }
        for name in ["BENCH_HASH12", "BENCH_LRU12"] {
            let mut m: HashMap<&mut MapData, [u32; 3], [u64; 2]> =
                HashMap::try_from(ebpf.map_mut(name).ok_or_else(|| anyhow!("{name} is missing from the BPF object"))?)
                    .with_context(|| format!("{name} is not a hash map"))?;
            m.insert([1, 0, 0], [0u64; 2], 0).with_context(|| format!("inserting the probe key into {name}"))?;
        }
        Ok(RefProgs { ebpf, _scope: scope })
    }

    pub fn prog(&mut self, name: &str) -> Result<&mut Xdp> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("{name} is missing"))?
            .try_into()
            .with_context(|| format!("{name} is not an XDP program"))
    }

    /// `xdp_live_sender`'s settings: redirect to `ifindex`; benign TEIDs `benign.0..+benign.1`
    /// (count 0: attack traffic only) alternating with attacking TEIDs `attack.0..+attack.1`.
    pub fn live_config(&mut self, ifindex: u32, benign: (u32, u32), attack: (u32, u32)) -> Result<()> {
        let mut m: aya::maps::Array<&mut MapData, u32> = aya::maps::Array::try_from(
            self.ebpf.map_mut("BENCH_LIVE").ok_or_else(|| anyhow!("BENCH_LIVE is missing"))?,
        )
        .context("BENCH_LIVE is not an array")?;
        for (i, v) in [ifindex, benign.0, benign.1, attack.0, attack.1].into_iter().enumerate() {
            m.set(i as u32, v, 0).context("writing BENCH_LIVE")?;
        }
        Ok(())
    }

    /// The packet counter `xdp_op_atomic` adds to (a check that its adds ran).
    pub fn op_counter(&mut self) -> Result<u64> {
        let m: HashMap<&mut MapData, [u32; 5], [u64; 2]> = HashMap::try_from(
            self.ebpf.map_mut(MAP_OPS[0]).ok_or_else(|| anyhow!("{} is missing from the BPF object", MAP_OPS[0]))?,
        )
        .with_context(|| format!("{} is not a hash map", MAP_OPS[0]))?;
        Ok(m.get(&OP_KEY, 0).with_context(|| format!("reading the probe key of {}", MAP_OPS[0]))?[0])
    }

    /// `xdp_floor_new`'s record of `teid` ([packets, bytes]), if it holds one: the check that the
    /// floor inserted and counted what it was timed on.
    pub fn floor_new_record(&mut self, teid: u32) -> Result<Option<[u64; 2]>> {
        let m: HashMap<&mut MapData, u32, [u64; 2]> = HashMap::try_from(
            self.ebpf
                .map_mut(MAP_FLOOR_NEW)
                .ok_or_else(|| anyhow!("{MAP_FLOOR_NEW} is missing from the BPF object"))?,
        )
        .with_context(|| format!("{MAP_FLOOR_NEW} is not a hash map"))?;
        match m.get(&teid, 0) {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading TEID {teid:#x} of {MAP_FLOOR_NEW}")),
        }
    }

    /// Make `teids` known to both floor programs (zeroed counters).
    pub fn floor_insert(&mut self, teids: impl Iterator<Item = u32> + Clone) -> Result<()> {
        for name in [MAP_FLOOR, MAP_FLOOR_LRU] {
            let mut m: HashMap<&mut MapData, u32, [u64; 2]> = HashMap::try_from(
                self.ebpf.map_mut(name).ok_or_else(|| anyhow!("{name} is missing from the BPF object"))?,
            )
            .with_context(|| format!("{name} is not a hash map"))?;
            for t in teids.clone() {
                m.insert(t, [0u64; 2], 0).with_context(|| format!("inserting TEID {t:#x} into {name}"))?;
            }
        }
        Ok(())
    }
}
