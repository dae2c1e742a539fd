//! Typed access to the N3 program's maps, either from a freshly loaded [`aya::Ebpf`] or from the
//! pins of a running guard (for `guard status`, `guard device ...`).

use aya::{
    maps::{
        lpm_trie::{Key as LpmKey, LpmTrie},
        Array, HashMap, MapData, MapError, PerCpuArray,
    },
    Ebpf,
};
use guard_common::{
    abi::{
        self, device_id, CellCounts, CellHot, CellKey, CellRecord, CellStageEntry, CellState, Counter, DeviceId,
        DeviceKey, DeviceState, GuardConfig, LocalAddr, Meta, StageEntry, LOCAL_SLOTS, STAT_COUNT,
    },
    parse::Malformed,
    policy::Verdict,
};

use crate::{
    bpf::{
        batch,
        maps::{err, optional, sum_counters, whole, Loaded, MapSource, MapsError, Pinned, DEVICE_BATCH},
        pins::PinDir,
    },
    n3::{local::LocalTable, staged::StagedMarks},
};

/// Map `N3_STAGED` into this process (`StagedMarks`).
fn staged_marks(m: aya::maps::Map) -> Result<StagedMarks, MapsError> {
    use std::os::fd::AsFd as _;
    match &m {
        aya::maps::Map::Array(d) => {
            StagedMarks::map(d.fd().as_fd()).map_err(|source| MapsError::Mmap { name: abi::MAP_N3_STAGED, source })
        }
        _ => Err(MapsError::Missing(abi::MAP_N3_STAGED)),
    }
}

/// What [`N3Maps::rebuild_staged`] did to the marks of possibly staged devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedRebuild {
    pub bits_before: u32,
    pub cleared: u32,
    pub bits_after: u32,
}

/// Handles on the N3 maps (not the ring buffer, which the controller owns).
///
/// The device and stage maps are keyed by a device's 8-byte id (`abi::device_id`, schema 10);
/// the methods here take and return [`DeviceKey`]s, userspace's name for a device, and convert.
pub struct N3Maps {
    pub meta: Array<MapData, Meta>,
    pub config: Array<MapData, GuardConfig>,
    pub devices: HashMap<MapData, DeviceId, DeviceState>,
    pub stages: HashMap<MapData, DeviceId, StageEntry>,
    /// Marks of possibly staged devices (`abi::staged_bit`), set by [`N3Maps::set_stage`].
    pub staged: StagedMarks,
    /// gNB records; their hot slots are in `cell_hot`, the slots' counters per CPU in
    /// `cell_counts` (join them with [`N3Maps::cells`]).
    pub cells: HashMap<MapData, CellKey, CellRecord>,
    pub cell_hot: Array<MapData, CellHot>,
    pub cell_counts: PerCpuArray<MapData, CellCounts>,
    pub cell_stages: HashMap<MapData, CellKey, CellStageEntry>,
    pub verdicts: PerCpuArray<MapData, Counter>,
    pub shadow: PerCpuArray<MapData, Counter>,
    pub malformed: PerCpuArray<MapData, Counter>,
    pub stats: PerCpuArray<MapData, Counter>,
    /// The generation of the stage maps (`abi::HINT_STAGE_GEN`): replaced after stage writes.
    pub hints: Array<MapData, u64>,
    /// The record and counters every outer source without one of its own shares (per CPU).
    pub unknown_gnb: PerCpuArray<MapData, CellRecord>,
    pub unknown_hot: PerCpuArray<MapData, CellCounts>,
    /// The host's N3 addresses, whose indexes devices' F-TEIDs carry (`crate::n3::local`).
    pub local: Array<MapData, LocalAddr>,
    /// Framed routes anti-spoofing accepts (`abi::MAP_N3_FRAMED`).
    pub framed: LpmTrie<MapData, [u8; 16], u32>,
}

impl N3Maps {
    /// Open the pinned maps of a running (or stopped) guard: only when their `GUARD_META` is
    /// this build's (program, schema or one it reads as is, layout). The CLI writes stages into
    /// a running guard's maps; a guard of another version may lay out a record of the same size
    /// differently, and aya checks only the size.
    pub fn open_pinned(pins: &PinDir) -> Result<Self, MapsError> {
        pins.check(&crate::bpf::pins::Expected {
            program: abi::META_PROG_N3,
            schema: abi::SCHEMA_VERSION,
            compatible: abi::COMPATIBLE_SCHEMAS,
            layout: abi::layout_fingerprint(),
            // The maps' own shapes (capacities: the config's) are the loader's to check.
            specs: Vec::new(),
        })?;
        Self::open(&mut Pinned(pins))
    }

    /// Handles on the maps of a loaded object.
    pub fn from_ebpf_ref(ebpf: &mut Ebpf) -> Result<Self, MapsError> {
        Self::open(&mut Loaded(ebpf))
    }

    fn open(src: &mut dyn MapSource) -> Result<Self, MapsError> {
        use abi::*;
        Ok(N3Maps {
            meta: Array::try_from(src.map(MAP_META)?).map_err(err(MAP_META))?,
            config: Array::try_from(src.map(MAP_N3_CONFIG)?).map_err(err(MAP_N3_CONFIG))?,
            devices: HashMap::try_from(src.map(MAP_N3_DEVICES)?).map_err(err(MAP_N3_DEVICES))?,
            stages: HashMap::try_from(src.map(MAP_N3_STAGES)?).map_err(err(MAP_N3_STAGES))?,
            staged: staged_marks(src.map(MAP_N3_STAGED)?)?,
            cells: HashMap::try_from(src.map(MAP_N3_CELLS)?).map_err(err(MAP_N3_CELLS))?,
            cell_hot: Array::try_from(src.map(MAP_N3_CELL_HOT)?).map_err(err(MAP_N3_CELL_HOT))?,
            cell_counts: PerCpuArray::try_from(src.map(MAP_N3_CELL_PCPU)?).map_err(err(MAP_N3_CELL_PCPU))?,
            cell_stages: HashMap::try_from(src.map(MAP_N3_CELL_STAGES)?).map_err(err(MAP_N3_CELL_STAGES))?,
            verdicts: PerCpuArray::try_from(src.map(MAP_N3_VERDICTS)?).map_err(err(MAP_N3_VERDICTS))?,
            shadow: PerCpuArray::try_from(src.map(MAP_N3_SHADOW)?).map_err(err(MAP_N3_SHADOW))?,
            malformed: PerCpuArray::try_from(src.map(MAP_N3_MALFORMED)?).map_err(err(MAP_N3_MALFORMED))?,
            stats: PerCpuArray::try_from(src.map(MAP_N3_STATS)?).map_err(err(MAP_N3_STATS))?,
            hints: Array::try_from(src.map(MAP_N3_HINTS)?).map_err(err(MAP_N3_HINTS))?,
            unknown_gnb: PerCpuArray::try_from(src.map(MAP_N3_UNKNOWN_GNB)?).map_err(err(MAP_N3_UNKNOWN_GNB))?,
            unknown_hot: PerCpuArray::try_from(src.map(MAP_N3_UNKNOWN_HOT)?).map_err(err(MAP_N3_UNKNOWN_HOT))?,
            local: Array::try_from(src.map(MAP_N3_LOCAL)?).map_err(err(MAP_N3_LOCAL))?,
            framed: LpmTrie::try_from(src.map(MAP_N3_FRAMED)?).map_err(err(MAP_N3_FRAMED))?,
        })
    }

    pub fn write_meta(&mut self, meta: &Meta) -> Result<(), MapsError> {
        self.meta.set(0, meta, 0).map_err(err(abi::MAP_META))
    }

    pub fn write_config(&mut self, cfg: &GuardConfig) -> Result<(), MapsError> {
        self.config.set(0, cfg, 0).map_err(err(abi::MAP_N3_CONFIG))
    }

    /// The host's N3 address table as the data plane reads it.
    /// The N3 address table as the data plane uses it: empty while the configuration lists no
    /// address (`GuardConfig::local_addrs` 0: `guard_n3` does not read `N3_LOCAL`, and every
    /// session is on index 0, `LOCAL_INDEX_NONE`), whatever slots an earlier configuration left
    /// there. So a device the CLI names by TEID is the device the data plane keys.
    pub fn local_table(&self) -> Result<LocalTable, MapsError> {
        if self.config()?.local_addrs == 0 {
            return Ok(LocalTable::default());
        }
        self.local_slots()
    }

    /// `N3_LOCAL` as it is, slots of addresses no longer listed included (kept so that an address
    /// listed again gets its index back).
    fn local_slots(&self) -> Result<LocalTable, MapsError> {
        let slots = (0..LOCAL_SLOTS).map(|i| self.local.get(&i, 0)).collect::<Result<_, _>>();
        Ok(LocalTable { slots: slots.map_err(err(abi::MAP_N3_LOCAL))? })
    }

    /// List `wanted` (address, `abi::LOCAL_FLAG_*`) in the N3 address table (`LocalTable::place`:
    /// listed addresses keep their index). `Err` (nothing written) when an address finds no room.
    pub fn sync_local_addrs(&mut self, wanted: &[(std::net::IpAddr, u32)]) -> Result<LocalTable, MapsError> {
        let mut t = self.local_slots()?;
        let changed = t.place(wanted).map_err(MapsError::LocalTable)?;
        for i in changed {
            self.local.set(i, t.slots[i as usize], 0).map_err(err(abi::MAP_N3_LOCAL))?;
        }
        // The data plane reads the table only while the config says it lists addresses.
        let mut cfg = self.config()?;
        cfg.local_addrs = wanted.len() as u32;
        self.write_config(&cfg)?;
        Ok(t)
    }

    /// Make `N3_FRAMED` hold exactly `routes` (IPv4 as IPv4-mapped IPv6, its length + 96).
    pub fn sync_framed_routes(&mut self, routes: &[(std::net::IpAddr, u8)]) -> Result<(), MapsError> {
        let key = |ip: std::net::IpAddr, len: u8| match ip {
            std::net::IpAddr::V4(v4) => LpmKey::new(u32::from(len) + 96, v4.to_ipv6_mapped().octets()),
            std::net::IpAddr::V6(v6) => LpmKey::new(u32::from(len), v6.octets()),
        };
        let wanted: Vec<_> = routes.iter().map(|&(ip, len)| key(ip, len)).collect();
        let have: Vec<_> = self.framed.keys().filter_map(Result::ok).collect();
        for k in have {
            let keep = wanted.iter().any(|w| w.prefix_len() == k.prefix_len() && w.data() == k.data());
            if !keep {
                self.framed.remove(&k).map_err(err(abi::MAP_N3_FRAMED))?;
            }
        }
        for k in &wanted {
            self.framed.insert(k, 1, 0).map_err(err(abi::MAP_N3_FRAMED))?;
        }
        // The data plane looks routes up only while the config says there are some.
        let mut cfg = self.config()?;
        cfg.framed_routes = wanted.len() as u32;
        self.write_config(&cfg)?;
        Ok(())
    }

    pub fn config(&self) -> Result<GuardConfig, MapsError> {
        self.config.get(&0, 0).map_err(err(abi::MAP_N3_CONFIG))
    }

    /// Packets and bytes per verdict, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<(Verdict, Counter)>, MapsError> {
        let v = sum_counters(&self.verdicts, abi::MAP_N3_VERDICTS, Verdict::COUNT)?;
        Ok(Verdict::ALL.iter().copied().zip(v).collect())
    }

    /// Shadow-mode "would drop" counts per drop verdict.
    pub fn shadow(&self) -> Result<Vec<(Verdict, Counter)>, MapsError> {
        let v = sum_counters(&self.shadow, abi::MAP_N3_SHADOW, Verdict::COUNT)?;
        Ok(Verdict::ALL.iter().copied().zip(v).collect())
    }

    pub fn malformed(&self) -> Result<Vec<(Malformed, Counter)>, MapsError> {
        let v = sum_counters(&self.malformed, abi::MAP_N3_MALFORMED, Malformed::COUNT)?;
        Ok(Malformed::ALL.iter().copied().zip(v).collect())
    }

    /// The misc counters (`STAT_*` indexes), summed over CPUs.
    /// What the unknown sources (outer sources without a record of their own) did, summed over
    /// the CPUs: signalling and new devices admitted, limited or re-admitted, and their packets.
    pub fn unknown_sources(&self) -> Result<CellState, MapsError> {
        let per_cpu = self.unknown_gnb.get(&0, 0).map_err(err(abi::MAP_N3_UNKNOWN_GNB))?;
        let mut t = CellRecord::default();
        for r in per_cpu.iter() {
            t.echo_req += r.echo_req;
            t.err_ind += r.err_ind;
            t.other_msgs += r.other_msgs;
            t.new_devices += r.new_devices;
            t.readmitted += r.readmitted;
        }
        // The shared counters' epoch never changes (no slot, no claims): every CPU's count.
        let counts = self.unknown_hot.get(&0, 0).map_err(err(abi::MAP_N3_UNKNOWN_HOT))?;
        let total = CellCounts::total(0, counts.iter());
        Ok(CellState::of(&t, Some((&CellHot::default(), &total))))
    }

    pub fn stats(&self) -> Result<Vec<Counter>, MapsError> {
        sum_counters(&self.stats, abi::MAP_N3_STATS, STAT_COUNT)
    }

    /// A device's record. A key no device of the data plane can have (`device_id::of_key`) has
    /// none.
    pub fn device(&self, key: &DeviceKey) -> Result<Option<DeviceState>, MapsError> {
        let Some(id) = device_id::of_key(key) else { return Ok(None) };
        optional(self.devices.get(&id, 0), abi::MAP_N3_DEVICES)
    }

    /// A device's stage entry (none for a key without an id, as [`N3Maps::device`]).
    pub fn stage(&self, key: &DeviceKey) -> Result<Option<StageEntry>, MapsError> {
        let Some(id) = device_id::of_key(key) else { return Ok(None) };
        optional(self.stages.get(&id, 0), abi::MAP_N3_STAGES)
    }

    /// Write a device's stage. Every stage write goes through here: the data plane caches a
    /// device's entry (stage, limit, expiry) or its absence per device until the generation this
    /// replaces changes (see `abi::HINT_STAGE_GEN`). A refresh (same stage, flags and limits, packets and bytes, an
    /// expiry no earlier) keeps the generation: it changes nothing a device may have cached but
    /// the expiry, and the data plane looks a cached entry up again once its cached expiry has
    /// passed, finding the later one. The controller refreshes every stage it holds at half its
    /// TTL, so at thousands of staged devices a new generation per refresh would keep every
    /// device's cache cold.
    ///
    /// A new entry also sets the key's bit in `N3_STAGED` (`abi::staged_bit`), *after* the
    /// insert, as the generation is replaced after it: a device the data plane has never seen
    /// looks its stage up only when its bit is set. A refresh found the entry, which its first
    /// write marked; bits of removed entries are cleared only by [`N3Maps::rebuild_staged`].
    ///
    /// A key no device of the data plane can have (`device_id::of_key`) is refused.
    pub fn set_stage(&mut self, key: &DeviceKey, entry: &StageEntry) -> Result<(), MapsError> {
        let id = device_id::of_key(key).ok_or(MapsError::NoDeviceId(*key))?;
        let refresh = matches!(self.stage(key)?, Some(old)
            if old.stage == entry.stage
                && old.flags == entry.flags
                && old.interval_ns == entry.interval_ns
                && old.tau_ns == entry.tau_ns
                && old.bytes == entry.bytes
                && entry.expires_ns >= old.expires_ns);
        self.stages.insert(id, entry, 0).map_err(err(abi::MAP_N3_STAGES))?;
        if refresh {
            return Ok(());
        }
        self.staged.mark(id);
        self.new_generation(abi::HINT_STAGE_GEN)
    }

    /// Remove a device's stage. `Ok(false)` if it had none. The data plane caches quarantine
    /// entries per device, so a removal replaces the generation too.
    pub fn clear_stage(&mut self, key: &DeviceKey) -> Result<bool, MapsError> {
        let Some(id) = device_id::of_key(key) else { return Ok(false) };
        match self.stages.remove(&id) {
            Ok(()) => self.new_generation(abi::HINT_STAGE_GEN).map(|()| true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(MapsError::Map { name: abi::MAP_N3_STAGES, source: e }),
        }
    }

    /// Write a gNB's cap. The data plane caches only the absence of a cap (per gNB), so a new
    /// entry replaces the stage generation and an update of an existing one (a refresh) does not.
    pub fn set_cell_stage(&mut self, key: &CellKey, entry: &CellStageEntry) -> Result<(), MapsError> {
        // Create, or update what exists, by the update's own flags rather than a read first: the
        // controller's prune and an operator's `guard gnb pin` write this map from two
        // processes, and a removal between a read and the write would leave a created cap
        // unannounced (CPUs that cached "no cap" would keep that until the next generation).
        // include/uapi/linux/bpf.h: create only / update only.
        const BPF_NOEXIST: u64 = 1;
        const BPF_EXIST: u64 = 2;
        let errno = |e: &MapError| match e {
            MapError::SyscallError(s) => s.io_error.raw_os_error(),
            _ => None,
        };
        for _ in 0..2 {
            match self.cell_stages.insert(key, entry, BPF_NOEXIST) {
                Ok(()) => return self.new_generation(abi::HINT_STAGE_GEN),
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(MapsError::Map { name: abi::MAP_N3_CELL_STAGES, source: e }),
            }
            match self.cell_stages.insert(key, entry, BPF_EXIST) {
                Ok(()) => return Ok(()),
                // Removed in between: create it (announced) on the next round.
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(MapsError::Map { name: abi::MAP_N3_CELL_STAGES, source: e }),
            }
        }
        // Created and removed by others twice over: write it anyway, announced.
        self.cell_stages.insert(key, entry, 0).map_err(err(abi::MAP_N3_CELL_STAGES))?;
        self.new_generation(abi::HINT_STAGE_GEN)
    }

    /// Replace `N3_HINTS[index]` with a value never written before, *after* the insert it
    /// announces: a device that cached "no entry" at any earlier generation looks up again on
    /// its next packet. A fresh random value rather than an increment, so two writers (the
    /// controller and `guard device pin`, separate processes) need no read-modify-write: the
    /// last write is always a value no device has cached a lookup at. Cell caps are only cached
    /// as absent, so their removals need no new generation.
    fn new_generation(&mut self, index: u32) -> Result<(), MapsError> {
        self.hints.set(index, fresh_generation(), 0).map_err(err(abi::MAP_N3_HINTS))
    }

    /// A gNB's cap, if any.
    pub fn cell_stage(&self, key: &CellKey) -> Result<Option<CellStageEntry>, MapsError> {
        optional(self.cell_stages.get(key, 0), abi::MAP_N3_CELL_STAGES)
    }

    pub fn clear_cell_stage(&mut self, key: &CellKey) -> Result<bool, MapsError> {
        match self.cell_stages.remove(key) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(MapsError::Map { name: abi::MAP_N3_CELL_STAGES, source: e }),
        }
    }

    /// Clear the `N3_STAGED` bits no stage entry has any more (their devices unpinned, released or
    /// expired), so the marks stay about as full as the stages are (`StagedMarks::rebuild`: two
    /// walks of `N3_STAGES` around a compare-and-swap per word, no lock with other writers).
    /// Each walk is batched (`whole`: thousands of entries per syscall, where `keys()` made one
    /// per entry; 200,000 staged devices, debug build, loaded host: 265-335 ms a walk against
    /// 390-600 ms); an entry that stays in the map for a whole walk is read by it, as the rebuild
    /// requires (the batch walks the buckets in order).
    pub fn rebuild_staged(&self) -> StagedRebuild {
        let bits_before = self.staged.count();
        let cleared =
            self.staged.rebuild(|| whole(&self.stages).into_iter().map(|(id, _)| abi::staged_bit(id)).collect());
        StagedRebuild { bits_before, cleared, bits_after: self.staged.count() }
    }

    /// All staged devices. Entries that vanish during the walk are skipped.
    pub fn stages(&self) -> Vec<(DeviceKey, StageEntry)> {
        whole(&self.stages).into_iter().map(|(id, e)| (device_id::to_key(id), e)).collect()
    }

    pub fn cell_stages(&self) -> Vec<(CellKey, CellStageEntry)> {
        whole(&self.cell_stages)
    }

    /// Every gNB: its record joined with its hot slot and the sum of the slot's per-CPU counters
    /// (zero if its slot was taken over).
    pub fn cells(&self) -> Vec<(CellKey, CellState)> {
        whole(&self.cells).into_iter().map(|(k, r)| (k, self.join_cell(&k, &r))).collect()
    }

    /// One gNB, as [`N3Maps::cells`] reports it.
    pub fn cell(&self, key: &CellKey) -> Result<Option<CellState>, MapsError> {
        let r = optional(self.cells.get(key, 0), abi::MAP_N3_CELLS)?;
        Ok(r.map(|r| self.join_cell(key, &r)))
    }

    /// A record with its slot's counters, if the slot is still the gNB's: the sum over the CPUs
    /// of the counts of the slot's current epoch (a CPU that has not seen the gNB since the slot
    /// was claimed still holds an earlier owner's). A failed read counts as "not its slot": the
    /// record's own counters still report.
    fn join_cell(&self, key: &CellKey, r: &CellRecord) -> CellState {
        let hot = self.cell_hot.get(&r.slot, 0).ok().filter(|h| h.owner == *key);
        let counts = hot.and_then(|h| {
            let per_cpu = self.cell_counts.get(&r.slot, 0).ok()?;
            Some((h, CellCounts::total(h.epoch, per_cpu.iter())))
        });
        CellState::of(r, counts.as_ref().map(|(h, c)| (h, c)))
    }

    /// The whole device map, read in batches (see [`crate::bpf::batch`]); if the kernel refuses batched
    /// reads, one entry at a time. The controller reads it in slices instead
    /// ([`N3Maps::device_slice`]).
    pub fn devices(&self) -> Vec<(DeviceKey, DeviceState)> {
        whole(&self.devices).into_iter().map(|(id, d)| (device_id::to_key(id), d)).collect()
    }

    /// Read about `max` more devices (whole hash buckets, so a few more) from where `cursor`
    /// stands, appending them to `out`; `cursor.finished()` says the walk reached the end.
    pub fn device_slice(
        &self,
        cursor: &mut batch::Cursor,
        max: usize,
        out: &mut Vec<(DeviceKey, DeviceState)>,
    ) -> Result<usize, MapsError> {
        use aya::maps::IterableMap as _;
        batch::read_slice_keyed(self.devices.map(), cursor, max, DEVICE_BATCH, out, device_id::to_key)
            .map_err(err(abi::MAP_N3_DEVICES))
    }

    /// Every device of the map handed to `f`, read `step` at a time ([`N3Maps::device_slice`]),
    /// so no more than one slice is held: the one-off whole-map reads (a reload's group
    /// membership, a fleet UE pin's bound TEIDs). A failed read ends the walk and is returned;
    /// the devices not yet read are not visited.
    pub fn for_each_device(&self, step: usize, mut f: impl FnMut(&DeviceKey, &DeviceState)) -> Result<(), MapsError> {
        let (mut cursor, mut buf) = (batch::Cursor::default(), Vec::new());
        while !cursor.finished() {
            buf.clear();
            self.device_slice(&mut cursor, step, &mut buf)?;
            for (k, d) in &buf {
                f(k, d);
            }
        }
        Ok(())
    }
}

/// 64 random bits (std's per-process random hash keys, over the time and a per-process counter),
/// never 0 (a map created empty) or `u64::MAX` (whose complement is a fresh record's 0).
fn fresh_generation() -> u64 {
    use std::{
        hash::{BuildHasher as _, Hasher as _},
        sync::atomic::{AtomicU64, Ordering},
    };
    static COUNT: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        h.write_u128(t.as_nanos());
        h.write_u32(std::process::id());
        h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
        let g = h.finish();
        if g != 0 && g != u64::MAX {
            return g;
        }
    }
}
