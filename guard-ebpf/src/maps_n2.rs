//! The N2 program's maps (layout in `guard_common::abi_n2`; bump `N2_SCHEMA_VERSION` on any
//! change). Pinned by name like N3's; `GUARD_META` (in [`crate::maps`]) is shared.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use guard_common::abi::Counter;
use guard_common::{
    abi::{n2::N2StageEntry, L3Addr, TatSlot},
    abi_n2::{
        N2AssocState, N2CellKey, N2CellState, N2Config, N2DeviceKey, N2DeviceState, N2PeerState, N2PortKey, N2TagKey,
        N2VtagKey, N2_DEFAULT_MAX_ALIAS, N2_DEFAULT_MAX_ALLOW, N2_DEFAULT_MAX_ASSOC, N2_DEFAULT_MAX_CELLS,
        N2_DEFAULT_MAX_COOKIES, N2_DEFAULT_MAX_DEVICES, N2_DEFAULT_MAX_PEERS, N2_DEFAULT_MAX_PEER_STAGES,
        N2_DEFAULT_MAX_VTAGS, N2_EVENTS_RING_BYTES, N2_STAT_COUNT,
    },
    parse::{n2::N2Malformed, n2::N2Packet, ngap::InitialUe},
    policy_n2::N2Verdict,
};

/// Written by userspace; all zero (ports 0) until then: every packet passes.
#[map(name = "N2_CONFIG")]
pub static N2_CONFIG: Array<N2Config> = Array::pinned(1, 0);

/// Per-peer counters (LRU, data-plane owned).
#[map(name = "N2_PEERS")]
pub static N2_PEERS: LruHashMap<L3Addr, N2PeerState> = LruHashMap::pinned(N2_DEFAULT_MAX_PEERS, 0);

/// Peer stages, userspace-owned (the data plane only writes the GCRA `tat`).
#[map(name = "N2_PEER_STAGES")]
pub static N2_PEER_STAGES: HashMap<L3Addr, N2StageEntry> = HashMap::pinned(N2_DEFAULT_MAX_PEER_STAGES, 0);

/// The peer allow-list, userspace-owned: key present with a non-zero value = allowed.
#[map(name = "N2_ALLOW")]
pub static N2_ALLOW: HashMap<L3Addr, u32> = HashMap::pinned(N2_DEFAULT_MAX_ALLOW, 0);

#[map(name = "N2_CELLS")]
pub static N2_CELLS: LruHashMap<N2CellKey, N2CellState> = LruHashMap::pinned(N2_DEFAULT_MAX_CELLS, 0);

#[map(name = "N2_DEVICES")]
pub static N2_DEVICES: LruHashMap<N2DeviceKey, N2DeviceState> = LruHashMap::pinned(N2_DEFAULT_MAX_DEVICES, 0);

#[map(name = "N2_VERDICTS")]
pub static N2_VERDICTS: PerCpuArray<Counter> = PerCpuArray::pinned(N2Verdict::COUNT, 0);

#[map(name = "N2_SHADOW")]
pub static N2_SHADOW: PerCpuArray<Counter> = PerCpuArray::pinned(N2Verdict::COUNT, 0);

#[map(name = "N2_MALFORMED")]
pub static N2_MALFORMED: PerCpuArray<Counter> = PerCpuArray::pinned(N2Malformed::COUNT, 0);

#[map(name = "N2_STATS")]
pub static N2_STATS: PerCpuArray<Counter> = PerCpuArray::pinned(N2_STAT_COUNT, 0);

#[map(name = "N2_PCPU_TAT")]
pub static N2_PCPU_TAT: PerCpuArray<TatSlot> = PerCpuArray::pinned(1, 0);

/// INIT ACKs the AMF sent (egress classifier `guard_n2_egress`): (peer, port, the AMF's Initiate
/// Tag) → when. A COOKIE ECHO naming one is never setup-limited.
#[map(name = "N2_COOKIES")]
pub static N2_COOKIES: LruHashMap<N2TagKey, u64> = LruHashMap::pinned(N2_DEFAULT_MAX_COOKIES, 0);

/// (peer, port) the AMF had an association with (egress), and that port's re-establishment lane
/// (ingress).
#[map(name = "N2_ASSOC")]
pub static N2_ASSOC: LruHashMap<N2PortKey, N2AssocState> = LruHashMap::pinned(N2_DEFAULT_MAX_ASSOC, 0);

/// The peer's verification tag of each association → the address the AMF first sent it to
/// (egress).
#[map(name = "N2_VTAGS")]
pub static N2_VTAGS: LruHashMap<N2VtagKey, L3Addr> = LruHashMap::pinned(N2_DEFAULT_MAX_VTAGS, 0);

/// Other addresses of multi-homed peers → the peer (egress writes, ingress reads).
#[map(name = "N2_ALIAS")]
pub static N2_ALIAS: LruHashMap<L3Addr, L3Addr> = LruHashMap::pinned(N2_DEFAULT_MAX_ALIAS, 0);

#[map(name = "N2_EVENTS")]
pub static N2_EVENTS: RingBuf = RingBuf::pinned(N2_EVENTS_RING_BYTES, 0);

/// Per-CPU scratch (not pinned): the parsed packet, one InitialUEMessage walk, and new entries.
#[map(name = "N2_PKT")]
pub static N2_PKT: PerCpuArray<N2Packet> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "N2_UE")]
pub static N2_UE: PerCpuArray<InitialUe> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "N2_NEW_PEER")]
pub static N2_NEW_PEER: PerCpuArray<N2PeerState> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "N2_NEW_CELL")]
pub static N2_NEW_CELL: PerCpuArray<N2CellState> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "N2_NEW_DEV")]
pub static N2_NEW_DEV: PerCpuArray<N2DeviceState> = PerCpuArray::with_max_entries(1, 0);

/// `[jiffies_64, coarse ns]` as of the last re-key on this CPU (`clock::n2_ns`), shared by
/// `guard_n2` and its egress classifier so both stamp and compare times on one clock.
#[map(name = "N2_CLOCK")]
pub static N2_CLOCK: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);
