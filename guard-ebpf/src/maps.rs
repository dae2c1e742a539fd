//! The N3 program's maps. Every map is pinned by name, so a restarted controller (or a reloaded
//! program) finds the same state: counters, learned bindings and stages survive restarts.
//! Layouts and names: `guard_common::abi` (bump `SCHEMA_VERSION` on any change).

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use guard_common::{
    abi::{
        CellCounts, CellHot, CellKey, CellRecord, CellStageEntry, ChainConfig, Counter, DeviceId, DeviceState,
        FragEntry, FragKey, GuardConfig, LocalAddr, Meta, N3TatSlot, StageEntry, CELL_SLOTS, DEFAULT_MAX_CELLS,
        DEFAULT_MAX_CELL_STAGES, DEFAULT_MAX_DEVICES, DEFAULT_MAX_FRAGS, DEFAULT_MAX_FRAMED, DEFAULT_MAX_STAGED,
        EVENTS_RING_BYTES, HINT_COUNT, LOCAL_SLOTS, SEEN_ENTRIES, SEEN_ENTRY_WORDS, STAGED_WORDS, STAT_COUNT,
    },
    parse::Malformed,
    policy::Verdict,
};

/// Written by userspace at load: who owns these pins and in which layout.
#[map(name = "GUARD_META")]
pub static GUARD_META: Array<Meta> = Array::pinned(1, 0);

/// Written by userspace; all zero (GTP-U port 0) until then, which matches nothing: a program
/// loaded without config passes every packet.
#[map(name = "N3_CONFIG")]
pub static N3_CONFIG: Array<GuardConfig> = Array::pinned(1, 0);

/// Per-device counters, keyed by the 8-byte device id (`abi::device_id`). LRU: at capacity the
/// least recently seen device is evicted, never a staged device's enforcement (that lives in
/// `N3_STAGES`).
#[map(name = "N3_DEVICES")]
pub static N3_DEVICES: LruHashMap<DeviceId, DeviceState> = LruHashMap::pinned(DEFAULT_MAX_DEVICES, 0);

/// Device stages, userspace-owned. A plain hash: the data plane never inserts or evicts here.
#[map(name = "N3_STAGES")]
pub static N3_STAGES: HashMap<DeviceId, StageEntry> = HashMap::pinned(DEFAULT_MAX_STAGED, 0);

/// The host's N3 addresses (`abi::LocalAddr`), written by userspace: a device's F-TEID carries
/// the index of the one its G-PDUs are sent to. All empty: every address is index 0.
#[map(name = "N3_LOCAL")]
pub static N3_LOCAL: Array<LocalAddr> = Array::pinned(LOCAL_SLOTS, 0);

/// Framed routes (TS 23.501 §5.6.14): prefixes behind UEs whose sources anti-spoofing accepts
/// without binding them. IPv6 prefixes; IPv4 as IPv4-mapped (`::ffff:a.b.c.d`, length + 96).
/// Written by userspace (`[dataplane] framed_routes`).
#[map(name = "N3_FRAMED")]
pub static N3_FRAMED: LpmTrie<[u8; 16], u32> = LpmTrie::pinned(DEFAULT_MAX_FRAMED, 0);

/// Established sessions (`abi::seen_slot`, one bit each): a device whose record was evicted
/// is re-admitted without the new-device budget.
#[map(name = "N3_SEEN")]
pub static N3_SEEN: Array<[u64; SEEN_ENTRY_WORDS]> = Array::pinned(SEEN_ENTRIES, 0);

/// Marks of devices that may have a stage entry (`abi::staged_bit`), set by userspace after each
/// stage write (through a mapping of the map: `BPF_F_MMAPABLE`): a never-seen device whose bit
/// is clear skips its `N3_STAGES` lookup, a cache miss into that map's 4 MiB of buckets
/// (docs/dataplane.md, "A new device's first packet").
#[map(name = "N3_STAGED")]
pub static N3_STAGED: Array<u64> = Array::pinned(STAGED_WORDS, BPF_F_MMAPABLE);

/// The record and hot counters shared by every outer source that has none of its own (per CPU):
/// its edge limiters are one budget for all unknown sources (`GuardConfig::new_gnb`).
#[map(name = "N3_UNKNOWN_GNB")]
pub static N3_UNKNOWN_GNB: PerCpuArray<CellRecord> = PerCpuArray::pinned(1, 0);
#[map(name = "N3_UNKNOWN_HOT")]
pub static N3_UNKNOWN_HOT: PerCpuArray<CellCounts> = PerCpuArray::pinned(1, 0);

/// Datagrams whose first IP fragment was dropped (`abi::FragKey`): their later fragments follow.
#[map(name = "N3_FRAGS")]
pub static N3_FRAGS: LruHashMap<FragKey, FragEntry> = LruHashMap::pinned(DEFAULT_MAX_FRAGS, 0);

/// gNB records (`abi::CellRecord`): edge limiters, slow-path counters, the hot slot.
#[map(name = "N3_CELLS")]
pub static N3_CELLS: LruHashMap<CellKey, CellRecord> = LruHashMap::pinned(DEFAULT_MAX_CELLS, 0);

/// gNBs' hot slots (`abi::CellHot`: owner, claim epoch, coarse last-seen), by
/// `CellRecord::slot`. Read on every G-PDU, written only by claims and once per
/// `SLOT_SEEN_STEP_NS`: shared by the CPUs without bouncing between them.
#[map(name = "N3_CELL_HOT")]
pub static N3_CELL_HOT: Array<CellHot> = Array::pinned(CELL_SLOTS, 0);

/// gNBs' per-packet counters (`abi::CellCounts`), per CPU, indexed like `N3_CELL_HOT`: plain adds
/// to this CPU's own copy, summed by userspace (`CellCounts::total`).
#[map(name = "N3_CELL_PCPU")]
pub static N3_CELL_PCPU: PerCpuArray<CellCounts> = PerCpuArray::pinned(CELL_SLOTS, 0);

#[map(name = "N3_CELL_STAGES")]
pub static N3_CELL_STAGES: HashMap<CellKey, CellStageEntry> = HashMap::pinned(DEFAULT_MAX_CELL_STAGES, 0);

#[map(name = "N3_VERDICTS")]
pub static N3_VERDICTS: PerCpuArray<Counter> = PerCpuArray::pinned(Verdict::COUNT, 0);

/// "Would drop" counts of protections in shadow mode, indexed by the drop verdict.
#[map(name = "N3_SHADOW")]
pub static N3_SHADOW: PerCpuArray<Counter> = PerCpuArray::pinned(Verdict::COUNT, 0);

#[map(name = "N3_MALFORMED")]
pub static N3_MALFORMED: PerCpuArray<Counter> = PerCpuArray::pinned(Malformed::COUNT, 0);

#[map(name = "N3_STATS")]
pub static N3_STATS: PerCpuArray<Counter> = PerCpuArray::pinned(STAT_COUNT, 0);

#[map(name = "N3_PCPU_TAT")]
pub static N3_PCPU_TAT: PerCpuArray<N3TatSlot> = PerCpuArray::pinned(1, 0);

/// Generations of the userspace-owned stage maps (`guard_common::abi::HINT_*`): let a device or
/// gNB with no stage skip its per-packet lookup in `N3_STAGES` / `N3_CELL_STAGES`.
#[map(name = "N3_HINTS")]
pub static N3_HINTS: Array<u64> = Array::pinned(HINT_COUNT, 0);

/// The XDP program the packets `guard_n3` passes are handed to (slot 0), by `bpf_tail_call`:
/// `[attach] next`. Userspace owns the slot (`guard_userspace::chain`); the kernel takes a
/// reference to the program it holds, and empties the map when its last user reference (pin or
/// descriptor) goes, which the pin prevents.
#[map(name = "N3_NEXT")]
pub static N3_NEXT: ProgramArray = ProgramArray::pinned(1, 0);

/// Whether a next program is configured (`abi::ChainConfig`): read on passed packets only, and
/// only then is the tail call tried; a host without one pays this array read and nothing else.
#[map(name = "N3_CHAIN")]
pub static N3_CHAIN: Array<ChainConfig> = Array::pinned(1, 0);

#[map(name = "N3_EVENTS")]
pub static N3_EVENTS: RingBuf = RingBuf::pinned(EVENTS_RING_BYTES, 0);

/// Per-CPU scratch records: new map entries are built here, not on the 512-byte BPF stack.
/// Not pinned: they hold nothing between packets. `N3_NEW_DEV` is the record a new device is
/// inserted as (`n3::gpdu::gpdu_verdict`): all zero but its owner, this CPU's mark, the only field
/// ever written.
#[map(name = "N3_NEW_DEV")]
pub static N3_NEW_DEV: PerCpuArray<DeviceState> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "N3_NEW_CELL")]
pub static N3_NEW_CELL: PerCpuArray<CellRecord> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch of one packet: the parse result (so it needs neither stack nor a zeroing
/// memset) and the clock cache (`clock`), one lookup for both.
#[repr(C)]
pub struct Scratch {
    pub pkt: guard_common::parse::n3::GtpPacket,
    /// The clock's cache and this CPU's owner mark (`clock::n3_ns`).
    pub cpu: crate::clock::CpuCache,
    /// The `N3_FRAMED` lookup key (an LPM trie key: prefix length, then 16 octets), built here
    /// rather than on the stack, which the program and the policy already share.
    pub framed_key: [u32; 5],
}

#[map(name = "N3_PKT")]
pub static N3_PKT: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);
