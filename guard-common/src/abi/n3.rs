//! The BPF map ABI of the N3 program `guard_n3` (GTP-U): its map names, its schema version,
//! and its `#[repr(C)]` records. Same rules as [`crate::abi`], where the records both programs
//! share live.
//!
//! Changing any layout here **must** bump [`SCHEMA_VERSION`]: a controller that finds pinned maps
//! of another schema refuses to use them instead of misreading them.
//!
//! Length: one file on purpose. Every record `guard_n3` and its controller share sits beside
//! [`SCHEMA_VERSION`]'s history, the layout fingerprint and the size asserts at the end, which must
//! name every record: a record in another file is one the fingerprint could miss. Its host tests
//! are in `n3/tests.rs`.

use super::{
    device_id::{self, DeviceId},
    ByteLimit, Counter, L3Addr, Limit, Meta, FAMILY_IPV4, FAMILY_IPV6, META_MAGIC,
};

/// Bump on any change to a map's key or value layout, a map's type, or the meaning of a field.
///
/// 5 (issue 17): devices keyed by F-TEID, per-family anti-spoofing bindings, non-IP T-PDUs
/// counted per device, the host's N3 address table; a release of schema 4 left pins this one
/// refuses (`guard_userspace::pins`).
///
/// 6 (issue 22): maps added, none changed: `N3_NEXT` (the program passed packets are handed
/// to), `N3_CHAIN` ([`ChainConfig`]) and `N3_STATS` index [`STAT_CHAIN_MISS`] (always zero
/// before). Pins of schema 5 are therefore re-used as they are ([`COMPATIBLE_SCHEMAS`]); a
/// schema-5 binary refuses schema-6 pins, so a downgrade cannot silently stop handing packets
/// to the next program.
///
/// 7 (issue 27): byte limits beside the packet limits. `N3_CONFIG` ([`GuardConfig::observe_bytes`]),
/// `N3_STAGES` ([`StageEntry::bytes`], [`StageEntry::tat_bytes`]; N2's peer stages keep their
/// own record, [`super::n2::N2StageEntry`], unchanged) and `N3_DEVICES` (the byte profile's
/// state, [`DeviceState::over_bytes`], the cached stage's byte limit) grew, and
/// [`DeviceState::bytes`] now counts T-PDU octets (it counted frames): no pins of an older
/// schema are re-used.
/// Also in 7 (issue 19, multi-core): a gNB's per-packet counters moved out of the shared
/// `N3_CELL_HOT` slot ([`CellHot`]: owner, claim epoch, coarse last-seen) into the per-CPU
/// `N3_CELL_PCPU` ([`CellCounts`], summed where read), with the count of new devices over the
/// gNB's budget (out of [`CellRecord`]), and `N3_UNKNOWN_HOT` holds [`CellCounts`]. `N3_CELL_HOT`'s value changed size, so pins of schemas 5 and 6 are refused
/// (`guard detach --purge` starts clean; the controller re-issues the stages it holds).
///
/// 8 (issue 27): the last-resort caps have a byte form beside the packet form: `N3_CELL_STAGES`
/// ([`CellStageEntry::bytes`], [`CellStageEntry::tat_bytes`]), `N3_CONFIG`
/// ([`GuardConfig::host_cap_bytes`]) and `N3_PCPU_TAT` (now [`N3TatSlot`], with
/// [`N3TatSlot::host_cap_tat_bytes`]; N2's `N2_PCPU_TAT` keeps [`super::TatSlot`]) grew: pins of schema
/// 7 are refused (`guard detach --purge` starts clean; the controller re-issues its stages).
///
/// 9 (issue 19, a new device's first packet): a map added, `N3_STAGED` ([`staged_bit`]: one
/// bit per slot of a hash of the device key, set by every stage write), which lets a never-seen
/// device skip its `N3_STAGES` lookup when no stage entry can be its own. Pins of schema 8 are
/// refused rather than re-used: their stage entries have no marks, so a never-seen staged device
/// would pass its first packet unstaged (`guard detach --purge` starts clean; the controller
/// re-issues its stages).
///
/// 10 (issue 19, the compact device key): `N3_DEVICES` and `N3_STAGES` are keyed by an 8-byte
/// [`DeviceId`] ([`device_id`]: an IPv6 UE's prefix, or an F-TEID or IPv4 UE in the link-local
/// region no prefix key uses) instead of the 20-byte [`DeviceKey`], which stays userspace's name
/// for a device; `N3_SEEN`'s octet and `N3_STAGED`'s bit hash the id ([`device_id::mix`]), and the
/// ring buffer carries [`EventRecord`]s (the id where [`Event`] has the key). Pins of schema 9 are
/// refused (`guard detach --purge` starts clean; the controller re-issues its stages).
/// [`DeviceState`] is padded to 328 bytes in the same schema, so that its hash element fills whole
/// cache lines ([`HTAB_ELEM_HEADER`]).
///
/// 11 (issue 19, a new device's first packet): `N3_SEEN` holds one bit per mark ([`seen_slot`],
/// [`SEEN_ENTRY_WORDS`]), 512 KiB where it held one octet per mark in 4 MiB, the same 4 Mi
/// marks. Pins of schema 10 are refused: their octets would read as other devices' bits
/// (`guard detach --purge` starts clean; established sessions are marked again as they send).
///
/// 12 (issue 19, no atomic add on the common path): [`DeviceState`] names the CPU that inserted
/// it ([`DeviceState::owner`]), which counts the device with plain adds; other CPUs count into
/// `other_packets`, `other_bytes`, `other_dropped`, carved out of the reserved words (the record
/// keeps its size and every other field its offset). A schema-11 record reads as one with no
/// owner and nothing counted by other CPUs, which is what it is: pins of schema 11 are re-used
/// ([`COMPATIBLE_SCHEMAS`]), and a schema-11 binary refuses schema-12 pins, whose `packets`
/// would be only the owner's share.
pub const SCHEMA_VERSION: u32 = 12;
/// Older schemas whose pins this build re-uses unchanged: schema 11, whose device records have
/// no owner (every CPU counts them with atomic adds, as schema 11 did) and zero in the words
/// schema 12 counts other CPUs in.
pub const COMPATIBLE_SCHEMAS: &[u32] = &[11];

// Map names. BPF object names are at most 15 bytes; these are also the pin file names.
pub const MAP_N3_CONFIG: &str = "N3_CONFIG";
pub const MAP_N3_DEVICES: &str = "N3_DEVICES";
pub const MAP_N3_STAGES: &str = "N3_STAGES";
pub const MAP_N3_CELLS: &str = "N3_CELLS";
pub const MAP_N3_CELL_HOT: &str = "N3_CELL_HOT";
/// The per-CPU counters of the hot slots ([`CellCounts`]), indexed like `N3_CELL_HOT`.
pub const MAP_N3_CELL_PCPU: &str = "N3_CELL_PCPU";
pub const MAP_N3_CELL_STAGES: &str = "N3_CELL_STAGES";
pub const MAP_N3_VERDICTS: &str = "N3_VERDICTS";
pub const MAP_N3_SHADOW: &str = "N3_SHADOW";
pub const MAP_N3_MALFORMED: &str = "N3_MALFORMED";
pub const MAP_N3_STATS: &str = "N3_STATS";
pub const MAP_N3_EVENTS: &str = "N3_EVENTS";
pub const MAP_N3_PERCPU_TAT: &str = "N3_PCPU_TAT";
pub const MAP_N3_HINTS: &str = "N3_HINTS";
pub const MAP_N3_FRAGS: &str = "N3_FRAGS";
pub const MAP_N3_SEEN: &str = "N3_SEEN";
/// Marks of possibly staged devices ([`staged_bit`]): [`STAGED_WORDS`] u64 words, mmapable.
pub const MAP_N3_STAGED: &str = "N3_STAGED";
pub const MAP_N3_UNKNOWN_GNB: &str = "N3_UNKNOWN_GNB";
pub const MAP_N3_UNKNOWN_HOT: &str = "N3_UNKNOWN_HOT";
pub const MAP_N3_LOCAL: &str = "N3_LOCAL";
pub const MAP_N3_FRAMED: &str = "N3_FRAMED";
/// A one-slot `BPF_MAP_TYPE_PROG_ARRAY`: the XDP program the guard hands the packets it passes
/// to by `bpf_tail_call` (`[attach] next`, `guard chain set`); empty: they pass to the stack.
pub const MAP_N3_NEXT: &str = "N3_NEXT";
/// One [`ChainConfig`]: whether a next program is configured, where it is pinned.
pub const MAP_N3_CHAIN: &str = "N3_CHAIN";
/// Capacity of `N3_FRAMED` (framed routes, an LPM trie keyed by IPv6 / IPv4-mapped prefixes).
pub const DEFAULT_MAX_FRAMED: u32 = 4096;
/// Name of the N3 XDP program in the object file.
pub const PROG_N3: &str = "guard_n3";
/// `guard_n3` on a replay's clock (`guard replay`, docs/replay.md): loaded only by the replay.
pub const PROG_N3_REPLAY: &str = "guard_n3_replay";

/// Default capacity of the per-device LRU map (overridable at load time).
pub const DEFAULT_MAX_DEVICES: u32 = 1 << 20;
/// Capacity of the userspace-owned stage map: the devices under a non-observe stage or exempt.
pub const DEFAULT_MAX_STAGED: u32 = 1 << 18;
/// Capacity of the per-cell (per-gNB) LRU map.
pub const DEFAULT_MAX_CELLS: u32 = 1 << 16;
/// Slots of `N3_CELL_HOT`, one per gNB record (and as many as `N3_CELLS` holds).
pub const CELL_SLOTS: u32 = DEFAULT_MAX_CELLS;
/// Capacity of the userspace-owned cell-stage map.
pub const DEFAULT_MAX_CELL_STAGES: u32 = 1 << 12;
/// Ring buffer size in bytes (a power of two, a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 18;

/// The outer source of a GTP-U packet: the gNB, which stands in for "the cell" on N3.
pub type CellKey = L3Addr;

/// How a device is identified on N3 ([`GuardConfig::key_mode`]).
pub const KEY_MODE_TEID: u32 = 0;
pub const KEY_MODE_UE_ADDR: u32 = 1;

/// [`DeviceKey::kind`] values.
pub const DEVICE_KIND_TEID: u32 = 1;
pub const DEVICE_KIND_UE_V4: u32 = 4;
pub const DEVICE_KIND_UE_V6: u32 = 6;

/// A stage set by userspace on one device (map `N3_STAGES`, userspace-owned, never evicted by the
/// data plane). Every entry expires: if the controller dies, enforcement decays.
///
/// Stages 1 and 2 carry two limits, a packet rate (`interval_ns`, `tau_ns`) and a byte rate
/// (`bytes`), each with its own GCRA state: a packet passes only if both allow it
/// (`rate::admit_both`). Either may be unlimited (interval 0); a stage written without a byte
/// rate limits packets exactly as before byte limits existed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageEntry {
    pub stage: u32,
    pub flags: u32,
    /// GCRA emission interval for stages 1 and 2 (`1e9 / pps`); 0 = unlimited.
    pub interval_ns: u64,
    /// GCRA burst tolerance (`(burst - 1) * interval_ns`).
    pub tau_ns: u64,
    /// Monotonic ns after which the entry no longer applies.
    pub expires_ns: u64,
    /// GCRA state, kernel-owned (userspace writes 0 when it sets a stage). Advanced here only
    /// while the device's record does not cache the entry (`DeviceState::stage_tat`).
    pub tat: u64,
    /// Monotonic ns when userspace set the entry.
    pub set_ns: u64,
    /// Controller reason code (userspace-defined, for `guard status` and audit).
    pub reason: u32,
    /// Device group id (0 = none).
    pub group: u32,
    /// The byte rate of stages 1 and 2, beside the packet rate (T-PDU octets: docs/dataplane.md,
    /// "Byte limits"); unlimited (0) = packets only.
    pub bytes: ByteLimit,
    /// GCRA state of `bytes`, kernel-owned as `tat` is (`DeviceState::stage_tat_bytes` while
    /// cached).
    pub tat_bytes: u64,
}

/// One device: an F-TEID (one PDU session: a TEID with the local address it was allocated on, TS
/// 29.281 §5.1, TS 29.244 §8.2.3) or an inner UE address.
///
/// Userspace's name for a device (the controller's index, `guard device`, fleet pins, audit
/// lines). The maps are keyed by its 8-byte [`DeviceId`] ([`device_id::of_key`],
/// [`device_id::to_key`]; schema 10).
///
/// The F-TEID is kept compact, 8 octets: the TEID and the *index* of the local address (the
/// outer destination) in the host's N3 address table (`N3_LOCAL`, [`LocalAddr`]), not the
/// address itself, so the key is no longer than a UE address key and the common path stays one
/// hash lookup. Index 0 ([`LOCAL_INDEX_NONE`]) is every address the table does not list: on a
/// host with one N3 address and no table, every session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub kind: u32,
    /// F-TEID: the TEID big-endian in bytes 0..4, the local-address index big-endian in 4..8, the
    /// rest zero. UE address: as in [`L3Addr::addr`].
    pub id: [u8; 16],
}

impl DeviceKey {
    /// The F-TEID of `teid` on an unlisted local address (index 0): a host with one N3 address.
    #[inline(always)]
    pub const fn teid(teid: u32) -> Self {
        Self::fteid(LOCAL_INDEX_NONE, teid)
    }

    /// The F-TEID (`local` index, `teid`).
    #[inline(always)]
    pub const fn fteid(local: u32, teid: u32) -> Self {
        let b = teid.to_be_bytes();
        let l = local.to_be_bytes();
        DeviceKey {
            kind: DEVICE_KIND_TEID,
            id: [b[0], b[1], b[2], b[3], l[0], l[1], l[2], l[3], 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// The TEID and local-address index of an F-TEID key (`None` for a UE-address key).
    #[inline(always)]
    pub const fn as_fteid(&self) -> Option<(u32, u32)> {
        if self.kind != DEVICE_KIND_TEID {
            return None;
        }
        let i = &self.id;
        Some((u32::from_be_bytes([i[4], i[5], i[6], i[7]]), u32::from_be_bytes([i[0], i[1], i[2], i[3]])))
    }

    /// The device key of an inner UE address, or `None` when the address family is unknown.
    #[inline(always)]
    pub const fn ue(addr: &L3Addr) -> Option<Self> {
        match addr.family {
            FAMILY_IPV4 => Some(DeviceKey { kind: DEVICE_KIND_UE_V4, id: addr.addr }),
            FAMILY_IPV6 => Some(DeviceKey { kind: DEVICE_KIND_UE_V6, id: addr.addr }),
            _ => None,
        }
    }
}

/// One of the host's N3 addresses, in the array `N3_LOCAL` ([`LOCAL_SLOTS`] entries, written by
/// userspace): its index in a device's F-TEID is its slot + 1. An address sits in one of
/// [`LOCAL_PROBES`] slots from its home slot ([`local_home_slot`]), so the data plane finds it
/// with a few array reads (inlined by the verifier) and no hash lookup. Entries are never moved
/// or removed while the pins live (an address dropped from the configuration keeps its slot, so
/// stages and counters keyed by its index never land on another address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddr {
    /// [`FAMILY_NONE`](super::FAMILY_NONE): a free slot, which ends a probe.
    pub addr: L3Addr,
    /// [`LOCAL_FLAG_NON_IP`].
    pub flags: u32,
}

/// Slots of `N3_LOCAL` (a power of two).
pub const LOCAL_SLOTS: u32 = 64;
/// Slots probed from an address's home slot.
pub const LOCAL_PROBES: u32 = 4;
/// The local-address index of an address `N3_LOCAL` does not list.
pub const LOCAL_INDEX_NONE: u32 = 0;
/// [`LocalAddr::flags`]: this address serves only non-IP PDU sessions (an Ethernet or
/// Unstructured DNN on a UPF address of its own, TS 23.501 §5.6.10): its G-PDUs are non-IP.
pub const LOCAL_FLAG_NON_IP: u32 = 1;

/// The home slot of a local address in `N3_LOCAL`: its words folded and multiplied (Fibonacci
/// hashing), the top bits kept. Cheap on purpose (it runs on every G-PDU); not for security.
#[inline(always)]
pub fn local_home_slot(a: &L3Addr) -> u32 {
    // The octets' native words (`L3Addr::words`), as aligned loads.
    let w = a.words();
    let x = w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[0];
    x.wrapping_mul(0x9e37_79b1) >> (32 - LOCAL_SLOTS.trailing_zeros())
}

/// Per-device counters and learned bindings, in the LRU map `N3_DEVICES` (data-plane owned).
///
/// Enforcement state deliberately does **not** live here: if this entry is evicted by an LRU
/// flood, the device's stage (in `N3_STAGES`, which the data plane never evicts) still applies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// G-PDUs counted by the record's [`Self::owner`] CPU: plain adds, which only that CPU makes.
    /// What the device sent is [`Self::packets`], this and [`Self::other_packets`] together.
    pub own_packets: u64,
    /// Octets of the device's G-PDUs' T-PDUs (the inner packets, per the GTP-U Length field:
    /// what its byte limits count, docs/dataplane.md "Byte limits"), not of the frames: the N3
    /// encapsulation is the transport's, not the device's. The owner's share, as `own_packets`;
    /// all of them: [`Self::bytes`].
    pub own_bytes: u64,
    pub last_seen_ns: u64,
    /// GCRA theoretical arrival time of the observe-level profile limit ([`GuardConfig::observe`]).
    pub tat_observe: u64,
    pub last_event_ns: u64,
    /// Packets dropped for this device, any reason: the owner's share, as `own_packets`; all of
    /// them: [`Self::dropped`].
    pub own_dropped: u64,
    /// Packets above the observe-level limit (passed or not): the evidence the controller reads.
    pub over_limit: u64,
    /// G-PDUs whose inner source did not match the learned binding.
    pub spoofed: u64,
    /// Learned IPv4 binding (TEID mode): the inner source address, as its four octets in
    /// memory order; valid with [`BIND_V4`] in `bind_flags` (docs/dataplane.md, "Anti-spoofing").
    pub bound_v4: u32,
    /// [`BIND_V4`], [`BIND_V6`], [`BIND_FTEID`]: which bindings are learned.
    pub bind_flags: u32,
    /// The F-TEID local index of the last G-PDU ([`DeviceKey::fteid`]).
    pub local: u32,
    /// The CPU that inserted the record, as its id + 1 (0: none, as in a record of schema 11,
    /// or one userspace wrote). It counts the device's packets with plain adds (`own_*`); any
    /// other CPU with atomic adds (`other_*`). With RSS by TEID a device's packets land on the
    /// CPU that saw its first one, so the common path makes no atomic add, and the counts stay
    /// exact whatever CPUs they land on: each field has one writer, or only atomic ones
    /// (docs/dataplane.md, "Concurrency: several CPUs"). Schema 12.
    pub owner: u32,
    /// G-PDUs counted by CPUs other than [`Self::owner`] (atomic adds).
    pub other_packets: u64,
    /// T-PDU octets counted by CPUs other than [`Self::owner`] (atomic adds).
    pub other_bytes: u64,
    /// Drops counted by CPUs other than [`Self::owner`] (atomic adds).
    pub other_dropped: u64,
    /// Reserved, zero: pads the record so that its hash element is whole cache lines
    /// ([`HTAB_ELEM_HEADER`]).
    pub reserved: [u32; 7],
    /// Last TEID seen.
    pub teid: u32,
    /// Last gNB (outer source) seen.
    pub cell: CellKey,
    /// Last QFI seen in a PDU Session Container, or [`QFI_NONE`].
    pub qfi: u32,
    /// Inner destination of the last G-PDU: a sample the controller compares with the device
    /// group's expected servers (bulk-misprovisioning detection).
    pub inner_dst: L3Addr,
    /// The slot of `cell`'s hot counters in `N3_CELL_HOT` as last resolved ([`CellRecord::slot`]):
    /// the next G-PDU from the same gNB counts there without looking the gNB up, as long as the
    /// slot's owner is still that gNB.
    pub cell_slot: u32,
    /// The device's entry in `N3_STAGES` as the data plane last looked it up, so a device skips
    /// the per-packet stage lookup: 0 for "no entry", else the entry's `expires_ns` (a
    /// non-exempt entry; exempt ones are not cached). Valid only with [`Self::stage_cache_tag`].
    pub stage_cache_until_ns: u64,
    /// `!g ^ stage_cache_until_ns ^` a mix of the cached stage and limit, `g` being
    /// `N3_HINTS[HINT_STAGE_GEN]` read before that lookup: the cache holds while the generation
    /// is still `g` (every stage write or removal that changes more than the expiry replaces it).
    /// The tag binds the cached fields, so a set torn by two CPUs writing at once is rejected, not
    /// misread. A fresh record (all zero) caches nothing. Data-plane owned, as are the fields below.
    pub stage_cache_tag: u64,
    /// The cached entry's `interval_ns` and `tau_ns` (shape and strict stages).
    pub stage_cache_interval_ns: u64,
    pub stage_cache_tau_ns: u64,
    /// GCRA state of a cached shape or strict stage: the device's own, seeded from the entry's
    /// `tat` when cached (the larger of the two), advanced here instead of in the entry.
    pub stage_tat: u64,
    /// The cached entry's `stage`.
    pub stage_cache_stage: u32,
    /// [`DEVICE_FLAG_ESTABLISHED`].
    pub flags: u32,
    /// G-PDUs whose T-PDU is not an IP packet (an Ethernet or Unstructured PDU session, TS 23.501
    /// §5.6.10, or a session configured as non-IP: [`GuardConfig::non_ip_teid`]): counted and
    /// judged like any G-PDU of the device, never used for anti-spoofing or a UE-address key.
    pub non_ip: u64,
    /// Learned IPv6 binding (TEID mode): the prefix ([`GuardConfig::antispoof_v6_prefix`] bits)
    /// of the inner source, big-endian in a u64; valid with [`BIND_V6`].
    pub bound_v6: u64,
    /// Learned F-TEID (UE-address mode: the session the UE address stays on), `local << 32 |
    /// teid`; valid with [`BIND_FTEID`].
    pub bound_fteid: u64,
    /// When each binding (v4, v6, F-TEID) was last matched by a G-PDU that passed: a binding
    /// unmatched for [`GuardConfig::antispoof_rebind_ns`] is replaced by the next source that
    /// passes (how a forged first packet's binding is corrected).
    pub bound_ns: [u64; 3],
    /// Bindings replaced that way.
    pub rebinds: u64,
    /// GCRA state of the byte form of the profile limit ([`GuardConfig::observe_bytes`]).
    pub tat_observe_bytes: u64,
    /// Packets within the packet profile but above the byte profile (passed or not): the
    /// evidence of a volume flood (large packets at a benign packet rate), as `over_limit` is of
    /// a packet flood.
    pub over_bytes: u64,
    /// The cached entry's byte limit ([`StageEntry::bytes`]), beside `stage_cache_interval_ns`.
    pub stage_cache_bytes: ByteLimit,
    /// GCRA state of a cached shape or strict stage's byte limit, as `stage_tat` is of its
    /// packet limit.
    pub stage_tat_bytes: u64,
}

impl DeviceState {
    /// The device's G-PDUs: its owner CPU's count and every other CPU's.
    #[inline(always)]
    pub fn packets(&self) -> u64 {
        self.own_packets.wrapping_add(self.other_packets)
    }

    /// The device's T-PDU octets ([`Self::own_bytes`]), over every CPU.
    #[inline(always)]
    pub fn bytes(&self) -> u64 {
        self.own_bytes.wrapping_add(self.other_bytes)
    }

    /// The device's dropped packets, any reason, over every CPU.
    #[inline(always)]
    pub fn dropped(&self) -> u64 {
        self.own_dropped.wrapping_add(self.other_dropped)
    }
}

/// [`DeviceState::bind_flags`] bits, and the index of each in [`DeviceState::bound_ns`]
/// ([`bind_slot`]).
pub const BIND_V4: u32 = 1;
pub const BIND_V6: u32 = 2;
pub const BIND_FTEID: u32 = 4;

/// The index of a `BIND_*` bit in [`DeviceState::bound_ns`].
#[inline(always)]
pub const fn bind_slot(bit: u32) -> usize {
    match bit {
        BIND_V4 => 0,
        BIND_V6 => 1,
        _ => 2,
    }
}

/// [`DeviceState::flags`]: the device has sent [`ESTABLISHED_PACKETS`] G-PDUs from a gNB the
/// guard knows, and is marked in `N3_SEEN`, so if its record is evicted it is re-admitted without
/// a new-device budget.
pub const DEVICE_FLAG_ESTABLISHED: u32 = 1;
/// G-PDUs after which a device counts as an established session. A TEID scan sends each guessed
/// TEID once; a real session sends many.
pub const ESTABLISHED_PACKETS: u64 = 8;
/// Entries of `N3_SEEN`, each [`SEEN_ENTRY_WORDS`] u64 words of marks (one bit each, set with an
/// atomic OR, so CPUs never lose each other's marks). 4 Mi marks: with 1M established devices
/// about a fifth of them are set, which is the chance a random TEID passes as re-admitted.
/// One bit a mark (schema 11; one octet before): the marks are 512 KiB instead of 4 MiB, so the
/// read every never-seen device makes (a random-TEID flood's every packet) stays in the CPU's
/// caches and TLB far more often (docs/dataplane.md, "A new device's first packet").
pub const SEEN_ENTRIES: u32 = 1 << 13;
pub const SEEN_ENTRY_WORDS: usize = 8;
/// Marks in all: `SEEN_ENTRIES` entries of `SEEN_ENTRY_WORDS` 64-bit words.
pub const SEEN_MARKS: u32 = SEEN_ENTRIES * SEEN_ENTRY_WORDS as u32 * 64;

/// A 32-bit hash of an address record (its family and octets): its five words
/// ([`L3Addr::words`]) mixed by multiply-xorshift. For slot choices (a gNB's home hot slot), not
/// for security. A device's slots hash its 8-byte id instead ([`device_id::mix`]). From the
/// words, not the octets: built from octets, LLVM split the address's words into octets on the
/// known device's path too, ahead of the compare that decides whether the hash is needed at all
/// (~30 instructions per G-PDU).
#[inline(always)]
pub fn mix_addr(a: &L3Addr) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in a.words() {
        h = (h ^ u64::from(w)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    (h >> 32) as u32
}

/// The `N3_SEEN` mark of a device's id ([`device_id::mix`]), one of [`SEEN_MARKS`], as (entry,
/// word in the entry, bit in the word).
#[inline(always)]
pub fn seen_slot(id: DeviceId) -> (u32, usize, u32) {
    let mark = device_id::mix(id) & (SEEN_MARKS - 1);
    (mark / (SEEN_ENTRY_WORDS as u32 * 64), (mark / 64) as usize % SEEN_ENTRY_WORDS, mark % 64)
}

/// Bits of `N3_STAGED`, in [`STAGED_WORDS`] u64 words: 32 KiB, small enough to stay in a CPU's
/// cache where `N3_STAGES`' 262,144 buckets (4 MiB) do not, which is the reason for the marks
/// (docs/dataplane.md, "A new device's first packet"). With 10,000 staged devices about 4% of
/// never-seen keys find their bit set and look up anyway.
pub const STAGED_BITS: u32 = 1 << 18;
/// `N3_STAGED`'s entries: u64 words of 64 bits. The map is `BPF_F_MMAPABLE`: userspace sets a bit
/// with an atomic OR on the mapped words, so two writers (the controller and `guard device pin`)
/// never lose each other's bits, which a whole-value map update of a shared word would.
pub const STAGED_WORDS: u32 = STAGED_BITS / 64;

/// The `N3_STAGED` bit of a device's id, as (word, bit): [`device_id::mix`]'s high 18 bits (`N3_SEEN`
/// takes its low 22). A bit is set once a stage entry of any key with this bit has been written
/// through `guard_userspace::n3::maps::N3Maps::set_stage`, which sets it *after* inserting the
/// entry; bits are never cleared (a stale bit costs the lookup every new device made before the
/// marks). A clear bit therefore means "no stage entry of this key": the data plane skips its
/// `N3_STAGES` lookup for a never-seen device.
#[inline(always)]
pub fn staged_bit(id: DeviceId) -> (u32, u32) {
    let b = device_id::mix(id) >> (32 - STAGED_BITS.trailing_zeros());
    (b / 64, b % 64)
}

/// No PDU Session Container seen.
pub const QFI_NONE: u32 = 0xff;

/// A gNB's record in the LRU map `N3_CELLS` (data-plane owned): its edge limiters, its counters
/// of what only the slow path sees, and the slot of its hot counters in `N3_CELL_HOT`.
///
/// Why two maps: a known device's G-PDU from the gNB it last came from finds the gNB's hot
/// counters through the slot its own record caches (`DeviceState::cell_slot`), an array lookup,
/// instead of a second LRU hash lookup per packet (~30 ns; BENCHMARKS.md). Everything else (a
/// new device, signalling, a device whose gNB changed) looks the gNB up here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellRecord {
    pub echo_req: u64,
    pub echo_resp: u64,
    pub err_ind: u64,
    pub end_marker: u64,
    pub other_msgs: u64,
    pub malformed: u64,
    /// Never-seen TEIDs admitted (new entries created in `N3_DEVICES`). (Those over the budget
    /// are counted per CPU: [`CellCounts::new_devices_limited`].)
    pub new_devices: u64,
    /// Devices re-admitted without the new-device budget: established sessions whose record had
    /// been evicted (`N3_SEEN`).
    pub readmitted: u64,
    pub tat_new_device: u64,
    /// Echo Request budgets of this gNB's paths (TS 29.281 §7.2.1: a path is a pair of GTP-U
    /// endpoints, here this gNB and one of the host's addresses), the host address hashed into
    /// [`ECHO_PATH_SLOTS`] slots ([`crate::policy::echo_path_slot`]). Used only while the host's
    /// Echo Request rate is above [`GuardConfig::echo_host`].
    pub tat_echo_path: [u64; ECHO_PATH_SLOTS],
    pub tat_err_ind: u64,
    /// The gNB's slot in `N3_CELL_HOT`, valid while that slot's `owner` is this gNB: a slot idle
    /// for minutes, or under pressure from many new gNBs, is taken over (`guard-ebpf/src/cells.rs`),
    /// and its old owner claims another on its next packet.
    pub slot: u32,
    /// Reserved, zero.
    pub flags: u32,
}

/// Echo Request budgets per gNB, one per local address hash ([`CellRecord::tat_echo_path`]). Two
/// host addresses that hash to one slot share it (a budget sized for two paths' retransmissions).
pub const ECHO_PATH_SLOTS: usize = 4;

/// A gNB's slot in the array `N3_CELL_HOT` (indexed by [`CellRecord::slot`]; data-plane owned,
/// shared by all CPUs): who owns it, and since which claim. Read on every G-PDU (a known device
/// checks its cached slot's owner here) and written only when a gNB claims it and, for
/// `last_seen_ns`, at most once per [`SLOT_SEEN_STEP_NS`]: every CPU keeps a read-only copy of its
/// cache line, so one gNB's packets on many CPUs do not bounce it between them. The per-packet
/// counters are per CPU ([`CellCounts`], `N3_CELL_PCPU`), summed where read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellHot {
    /// The gNB this slot counts for. A reader (the data plane through a device's cached slot,
    /// userspace joining it to `N3_CELLS`) uses the slot only if this matches.
    pub owner: CellKey,
    /// Reserved, zero.
    pub flags: u32,
    /// Claims of this slot by a new owner, counted: a CPU's [`CellCounts`] count for `owner` only
    /// while their `epoch` equals this one (a CPU resets its own on its next packet there; a
    /// reader skips the others), so a claim need not (and cannot) zero the other CPUs' counts.
    pub epoch: u64,
    /// When `owner` last sent, as of the last update: written when the data plane's clock is
    /// [`SLOT_SEEN_STEP_NS`] or more past it, so it lags by up to that step. Claims use it
    /// (a slot idle for minutes is taken over), and `guard status` shows it.
    pub last_seen_ns: u64,
}

/// How far [`CellHot::last_seen_ns`] may lag the last packet: a gNB's slot is written at most
/// once per step, by one of the CPUs its packets land on.
pub const SLOT_SEEN_STEP_NS: u64 = 1_000_000_000;

/// One CPU's counters of one hot slot (per-CPU array `N3_CELL_PCPU`, indexed like `N3_CELL_HOT`;
/// also the unknown sources' `N3_UNKNOWN_HOT`): plain adds on a cache line no other CPU writes.
/// A gNB's totals are the sum over the CPUs whose `epoch` is the slot's ([`CellCounts::total`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellCounts {
    /// The [`CellHot::epoch`] these counts belong to; another epoch means they counted for an
    /// earlier owner of the slot (the data plane zeroes them on this CPU's next packet there).
    pub epoch: u64,
    /// `!g` when this CPU found no entry for the slot's gNB in `N3_CELL_STAGES` while
    /// `N3_HINTS[HINT_STAGE_GEN]` read `g`: until the generation changes, the per-packet cap
    /// lookup is skipped on this CPU. 0 (fresh counts) caches nothing.
    pub no_cap_gen: u64,
    pub packets: u64,
    pub bytes: u64,
    pub gpdu: u64,
    pub dropped: u64,
    /// Never-seen TEIDs over the gNB's new-device budget: counted here, per CPU, because a
    /// random-TEID flood is dropped on this path on every CPU at once (its record only reads).
    pub new_devices_limited: u64,
}

impl CellCounts {
    /// The sum of the per-CPU counts `per_cpu` of a slot whose [`CellHot::epoch`] is `epoch`:
    /// counts of another epoch (an earlier owner's, not yet reset by their CPU) are left out.
    /// `epoch` and `no_cap_gen` of the result are `epoch` and 0.
    pub fn total<'a>(epoch: u64, per_cpu: impl IntoIterator<Item = &'a CellCounts>) -> CellCounts {
        let mut t = CellCounts { epoch, ..CellCounts::default() };
        for c in per_cpu.into_iter().filter(|c| c.epoch == epoch) {
            t.packets = t.packets.wrapping_add(c.packets);
            t.bytes = t.bytes.wrapping_add(c.bytes);
            t.gpdu = t.gpdu.wrapping_add(c.gpdu);
            t.dropped = t.dropped.wrapping_add(c.dropped);
            t.new_devices_limited = t.new_devices_limited.wrapping_add(c.new_devices_limited);
        }
        t
    }
}

/// One gNB as userspace reports it: its [`CellRecord`] joined with its [`CellHot`] slot and the
/// sum of that slot's per-CPU [`CellCounts`]. Not a map layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellState {
    pub packets: u64,
    pub bytes: u64,
    pub gpdu: u64,
    pub echo_req: u64,
    pub echo_resp: u64,
    pub err_ind: u64,
    pub end_marker: u64,
    pub other_msgs: u64,
    pub malformed: u64,
    pub new_devices: u64,
    pub new_devices_limited: u64,
    pub readmitted: u64,
    pub dropped: u64,
    pub last_seen_ns: u64,
}

impl CellState {
    /// `hot` is the slot and the sum of its per-CPU counts ([`CellCounts::total`]) if its owner
    /// is this gNB (else the hot counters read 0: the slot was reused, or the read raced the
    /// gNB's first packet).
    pub fn of(r: &CellRecord, hot: Option<(&CellHot, &CellCounts)>) -> Self {
        let (h, c) = match hot {
            Some((h, c)) => (*h, *c),
            None => (CellHot::default(), CellCounts::default()),
        };
        CellState {
            packets: c.packets,
            bytes: c.bytes,
            gpdu: c.gpdu,
            echo_req: r.echo_req,
            echo_resp: r.echo_resp,
            err_ind: r.err_ind,
            end_marker: r.end_marker,
            other_msgs: r.other_msgs,
            malformed: r.malformed,
            new_devices: r.new_devices,
            new_devices_limited: c.new_devices_limited,
            readmitted: r.readmitted,
            dropped: c.dropped,
            last_seen_ns: h.last_seen_ns,
        }
    }
}

/// Cell stages: last resort, only set when device stages cannot hold the aggregate.
pub const CELL_STAGE_NONE: u32 = 0;
pub const CELL_STAGE_CAP: u32 = 1;

/// A cap on one gNB's G-PDU rate (map `N3_CELL_STAGES`, userspace-owned): a packet rate
/// (`interval_ns`, `tau_ns`, state `tat`) and a byte rate beside it (`bytes`, state
/// `tat_bytes`), judged as a device stage's two limits are (`rate::admits_both`: a G-PDU passes
/// only if both allow it, and only then are both charged). `bytes` unlimited: packets only, as
/// before schema 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellStageEntry {
    pub stage: u32,
    pub flags: u32,
    pub interval_ns: u64,
    pub tau_ns: u64,
    pub expires_ns: u64,
    pub tat: u64,
    pub set_ns: u64,
    /// The cap's byte rate (T-PDU octets, as the device stages count them).
    pub bytes: ByteLimit,
    pub tat_bytes: u64,
}

/// Protection bits for [`GuardConfig::enabled`] / [`GuardConfig::shadow`]. A protection whose bit
/// is clear in `enabled` is not computed; set in both, it is computed and counted as "would drop"
/// (in `N3_SHADOW`) but the packet passes; set only in `enabled`, it drops.
pub const PROT_SHAPE: u32 = 1 << 0;
pub const PROT_STRICT: u32 = 1 << 1;
pub const PROT_QUARANTINE: u32 = 1 << 2;
pub const PROT_CELL_CAP: u32 = 1 << 3;
pub const PROT_HOST_CAP: u32 = 1 << 4;
pub const PROT_ANTISPOOF: u32 = 1 << 5;
pub const PROT_NEW_DEVICE: u32 = 1 << 6;
pub const PROT_ECHO: u32 = 1 << 7;
pub const PROT_ERR_IND: u32 = 1 << 8;
pub const PROT_MALFORMED: u32 = 1 << 9;
pub const PROT_ALL: u32 = (1 << 10) - 1;

/// The N3 program's configuration, one entry in the array `N3_CONFIG`. Userspace writes it whole.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardConfig {
    /// UDP destination port of GTP-U (TS 29.281 §4.4.2: 2152).
    pub gtpu_port: u32,
    /// [`KEY_MODE_TEID`] or [`KEY_MODE_UE_ADDR`].
    pub key_mode: u32,
    pub enabled: u32,
    pub shadow: u32,
    /// QFIs (bit n = QFI n, TS 23.501 §5.7.2.1) that are never shaped or dropped by rate stages.
    pub exempt_qfi: u64,
    /// The per-device profile limit at stage 0: exceeding it passes the packet but is evidence.
    pub observe: Limit,
    /// Per-gNB rate of never-seen TEIDs (a TEID scan / random-TEID flood is capped here).
    pub new_device: Limit,
    /// Per-path Echo Request budget (TS 29.281 §7.2.1: one per path per 60 s, plus the
    /// retransmissions T3-RESPONSE / N3-REQUESTS allow), applied only above `echo_host`.
    pub echo: Limit,
    /// Per-gNB Error Indication rate.
    pub err_ind: Limit,
    /// Host-wide G-PDU cap, per CPU (userspace divides the host cap by the CPU count).
    pub host_cap: Limit,
    /// The host cap applies while `now < host_cap_expires_ns`.
    pub host_cap_expires_ns: u64,
    /// Minimum gap between two over-limit events of one device.
    pub event_gap_ns: u64,
    /// Per-CPU event rate limit, so a flood cannot flood the ring.
    pub event_rate: Limit,
    /// Host-wide Echo Request rate, metered per CPU at the full rate on each (one path's Echo
    /// Requests arrive on one receive queue, so a per-CPU share would limit them below it), up to which no
    /// Echo Request is limited at all: an Echo costs the UPF next to nothing to answer, so only a
    /// rate that loads it is limited, and then per path (`echo`), so a forger cannot spend a
    /// real peer's budget without first overloading the host. `interval_ns == 0`: never limited.
    pub echo_host: Limit,
    /// How long the later fragments of a datagram whose first fragment was dropped are dropped
    /// too. Short: fragments of one datagram arrive back to back, and a longer window would let
    /// an IP Identification reused by the same gNB for a benign datagram match.
    pub frag_window_ns: u64,
    /// Records for outer sources the guard does not know yet (no record, no hot slot: never
    /// carried traffic it saw), per CPU. A source that does not get one shares the per-CPU
    /// "unknown sources" record and its new-device budget `unknown_new_device`, so a forger who
    /// rotates source addresses gets one budget in all, not one per address.
    pub new_gnb: Limit,
    /// New-device budget shared by all unknown sources, per CPU.
    pub unknown_new_device: Limit,
    /// TEID ranges of non-IP PDU sessions (TS 23.501 §5.6.10: Ethernet, Unstructured), the first
    /// [`GuardConfig::non_ip_ranges`] of them used: a G-PDU whose TEID falls in one is non-IP
    /// whatever its T-PDU looks like. A UPF that allocates TEIDs per network instance (TS 29.244
    /// §8.2.82, User Plane IP Resource Information: a TEID range per DNN) gives its Ethernet and
    /// Unstructured DNNs ranges of their own, which is what this names.
    pub non_ip_teid: [TeidSpan; NON_IP_TEID_RANGES],
    pub non_ip_ranges: u32,
    /// Addresses listed in `N3_LOCAL`: 0 (a host with one N3 address) skips the table, every
    /// session's F-TEID is index 0.
    pub local_addrs: u32,
    /// Prefixes in `N3_FRAMED`: 0 skips the framed-route lookups.
    pub framed_routes: u32,
    /// Length of the IPv6 prefix a device is bound to (anti-spoofing) and keyed by (UE-address
    /// mode), 1..=64; 0 reads as 64. TS 23.501 §5.8.2.2: an IPv6 PDU session is given a /64, and
    /// the UE forms its SLAAC and privacy addresses (RFC 8981) inside it.
    pub antispoof_v6_prefix: u32,
    /// A binding not matched by a passed G-PDU for this long is replaced by the next source that
    /// passes (0: never replaced).
    pub antispoof_rebind_ns: u64,
    /// The byte form of the stage-0 profile limit, beside `observe` (T-PDU octets): a G-PDU
    /// within `observe` but above this is evidence of a volume flood ([`DeviceState::over_bytes`],
    /// [`EVENT_DEVICE_OVER_BYTES`]), never a drop. Unlimited (0): no byte profile, and the data
    /// plane's only extra work is the one compare that finds so.
    pub observe_bytes: ByteLimit,
    /// The byte form of `host_cap` (T-PDU octets, per CPU like it), live under the same
    /// `host_cap_expires_ns`; the state is [`N3TatSlot::host_cap_tat_bytes`]. Unlimited: the host
    /// cap is packets only.
    pub host_cap_bytes: ByteLimit,
}

/// Per-CPU limiter state of `guard_n3` that no map entry owns (array `N3_PCPU_TAT`, one entry):
/// [`super::TatSlot`]'s fields (N2's `N2_PCPU_TAT` keeps that record) and the host cap's byte state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N3TatSlot {
    pub event_tat: u64,
    pub host_cap_tat: u64,
    /// This CPU's share of [`GuardConfig::echo_host`].
    pub echo_host_tat: u64,
    /// This CPU's share of [`GuardConfig::new_gnb`].
    pub new_gnb_tat: u64,
    /// The GCRA state of [`GuardConfig::host_cap_bytes`].
    pub host_cap_tat_bytes: u64,
}

/// An inclusive TEID range ([`GuardConfig::non_ip_teid`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeidSpan {
    pub first: u32,
    pub last: u32,
}

/// Entries of [`GuardConfig::non_ip_teid`].
pub const NON_IP_TEID_RANGES: usize = 4;

impl GuardConfig {
    /// Whether `teid` belongs to a session configured as non-IP ([`GuardConfig::non_ip_teid`]).
    #[inline(always)]
    pub fn non_ip_teid(&self, teid: u32) -> bool {
        let n = (self.non_ip_ranges as usize).min(NON_IP_TEID_RANGES);
        let mut i = 0;
        while i < n {
            let r = &self.non_ip_teid[i];
            if r.first <= teid && teid <= r.last {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Index of the array `N3_HINTS` (u64 values) holding the generation of the userspace-owned stage
/// maps, `N3_STAGES` and `N3_CELL_STAGES` both: every writer replaces it with a fresh, never-reused
/// value *after* each change that a cache may hide (`guard_userspace::maps::N3Maps::set_stage`,
/// `clear_stage`, `set_cell_stage`). The data plane reads it once per G-PDU, before its lookups,
/// and caches what it found at generation g in the device's record and in this CPU's counts of
/// the gNB's hot slot ([`DeviceState::stage_cache_tag`], [`CellCounts::no_cap_gen`]), so a device
/// without a stage (or quarantined) skips the `N3_STAGES` lookup, and its gNB the `N3_CELL_STAGES` miss, until some
/// stage is written. One generation for both maps: one read per packet, and a write to either
/// (rare for cell caps, the last resort) costs every device and gNB one lookup again. Written
/// whole: two writers (controller, `guard device pin`) never read-modify-write.
pub const HINT_STAGE_GEN: u32 = 0;
pub const HINT_COUNT: u32 = 1;

/// A datagram whose first IP fragment `guard_n3` dropped (LRU hash `N3_FRAGS`): its later
/// fragments (RFC 791 §3.2: same source, destination, protocol UDP and Identification) are
/// dropped too while the entry lives, so a fragmented flood of a quarantined device costs the UPF
/// no reassembly memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragKey {
    pub src: L3Addr,
    pub dst: L3Addr,
    /// IPv4 Identification (16 bits) or IPv6 Fragment Identification (32 bits).
    pub id: u32,
}

/// [`FragKey`]'s value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragEntry {
    /// The later fragments are dropped until then ([`GuardConfig::frag_window_ns`] after the first).
    pub expires_ns: u64,
    /// Later fragments dropped for this datagram.
    pub dropped: u64,
}

/// Capacity of `N3_FRAGS`: datagrams whose first fragment was dropped, least recently used
/// evicted (an evicted entry only lets that datagram's later fragments pass, which the receiver
/// discards without their first).
pub const DEFAULT_MAX_FRAGS: u32 = 16_384;

/// Indexes of `N3_STATS` (misc per-CPU counters).
pub const STAT_EVENTS_SENT: u32 = 0;
/// The ring buffer was full: the event is lost.
pub const STAT_EVENTS_LOST: u32 = 1;
/// The per-CPU event rate limit suppressed the event.
pub const STAT_EVENTS_SUPPRESSED: u32 = 2;
/// A map update failed (map full for a non-LRU map, or memory): the packet passed (fail-open).
pub const STAT_MAP_UPDATE_FAILED: u32 = 3;
/// The config entry could not be read: the packet passed untouched.
pub const STAT_NO_CONFIG: u32 = 4;
/// G-PDUs whose T-PDU is not IP (or whose session is configured non-IP), all devices together.
pub const STAT_NON_IP: u32 = 5;
/// A next program is configured ([`CHAIN_FLAG_NEXT`]) but the tail call did not happen (the
/// slot is empty, e.g. its program's pin went away, or the tail-call limit was reached): the
/// packet passed to the kernel stack, as without a next program.
pub const STAT_CHAIN_MISS: u32 = 6;
pub const STAT_COUNT: u32 = 8;

/// [`ChainConfig::flags`]: a next program is configured; passed packets are handed to
/// `N3_NEXT` slot 0 (and counted in [`STAT_CHAIN_MISS`] when that slot is empty).
pub const CHAIN_FLAG_NEXT: u32 = 1;
/// Octets of [`ChainConfig::next_path`] (a bpffs path, NUL-padded).
pub const CHAIN_PATH_MAX: usize = 248;

/// The single entry of `N3_CHAIN`, written by userspace. The data plane reads `flags` only (one
/// array read, inlined by the verifier, on passed packets); the path lives here, in the pinned
/// map, so the choice survives restarts of the controller and `guard chain set` needs no file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    pub flags: u32,
    /// ID of the program userspace last put in `N3_NEXT` (0: none); for `guard status`.
    pub next_id: u32,
    /// The bpffs path of the next program, NUL-padded.
    pub next_path: [u8; CHAIN_PATH_MAX],
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig { flags: 0, next_id: 0, next_path: [0; CHAIN_PATH_MAX] }
    }
}

/// [`Event::kind`] values.
pub const EVENT_DEVICE_OVER_LIMIT: u32 = 1;
pub const EVENT_NEW_DEVICE_LIMITED: u32 = 2;
pub const EVENT_SPOOF: u32 = 3;
pub const EVENT_ECHO_LIMITED: u32 = 4;
pub const EVENT_ERR_IND_LIMITED: u32 = 5;
/// A device within its packet profile went above its byte profile ([`GuardConfig::observe_bytes`]):
/// [`Event::over_limit`] carries its [`DeviceState::over_bytes`], [`Event::bytes`] its T-PDU octets.
pub const EVENT_DEVICE_OVER_BYTES: u32 = 6;

/// A ring-buffer record: something userspace should look at now, without scanning the maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventRecord {
    pub ts_ns: u64,
    pub kind: u32,
    /// The device's stage when the event fired.
    pub stage: u32,
    /// The device's id ([`device_id`]).
    pub device: DeviceId,
    pub cell: CellKey,
    /// Reserved, zero (keeps the counters 8-byte aligned).
    pub reserved: u32,
    pub packets: u64,
    /// The device's T-PDU octets ([`DeviceState::bytes`]).
    pub bytes: u64,
    /// [`DeviceState::over_limit`], or [`DeviceState::over_bytes`] for
    /// [`EVENT_DEVICE_OVER_BYTES`].
    pub over_limit: u64,
}

/// An [`EventRecord`] as userspace reads it: the device named by its [`DeviceKey`]. Not a map
/// record (the ring carries [`EventRecord`]s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub kind: u32,
    /// The device's stage when the event fired.
    pub stage: u32,
    pub device: DeviceKey,
    pub cell: CellKey,
    pub packets: u64,
    /// The device's T-PDU octets ([`DeviceState::bytes`]).
    pub bytes: u64,
    /// [`DeviceState::over_limit`], or [`DeviceState::over_bytes`] for
    /// [`EVENT_DEVICE_OVER_BYTES`].
    pub over_limit: u64,
}

impl From<&EventRecord> for Event {
    fn from(r: &EventRecord) -> Self {
        Event {
            ts_ns: r.ts_ns,
            kind: r.kind,
            stage: r.stage,
            device: device_id::to_key(r.device),
            cell: r.cell,
            packets: r.packets,
            bytes: r.bytes,
            over_limit: r.over_limit,
        }
    }
}

/// Which program's maps a META entry describes.
pub const META_PROG_N3: u32 = 3;

/// A fingerprint of every record's size, so a layout change without a version bump is still
/// caught when pins are reused.
pub const fn layout_fingerprint() -> u64 {
    let sizes = [
        core::mem::size_of::<DeviceId>(),
        core::mem::size_of::<DeviceState>(),
        core::mem::size_of::<StageEntry>(),
        core::mem::size_of::<CellKey>(),
        core::mem::size_of::<CellRecord>(),
        core::mem::size_of::<CellHot>(),
        core::mem::size_of::<CellCounts>(),
        core::mem::size_of::<CellStageEntry>(),
        core::mem::size_of::<GuardConfig>(),
        core::mem::size_of::<Counter>(),
        core::mem::size_of::<EventRecord>(),
        core::mem::size_of::<N3TatSlot>(),
        core::mem::size_of::<FragKey>(),
        core::mem::size_of::<FragEntry>(),
        core::mem::size_of::<LocalAddr>(),
        // N3_HINTS values (u64) per entry, times the entry count.
        8 * HINT_COUNT as usize,
        // N3_STAGED's marks.
        8 * STAGED_WORDS as usize,
    ];
    // FNV-1a over the sizes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < sizes.len() {
        h ^= sizes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

impl Meta {
    pub const fn current(program: u32) -> Self {
        Meta { magic: META_MAGIC, schema_version: SCHEMA_VERSION, program, layout: layout_fingerprint() }
    }
}

/// The kernel's `struct htab_elem` before the key (kernel/bpf/hashtab.c: the bucket list node, 16
/// bytes; the LRU list node, 24; the hash, 4; the key aligned to 8): an `N3_DEVICES` element is
/// this, the 8-byte key and the record, laid out back to back in one preallocated array.
pub const HTAB_ELEM_HEADER: usize = 48;

// Each device's element is whole cache lines (48 + 8 + 328 = 384 = 6 x 64), so no two devices'
// records share one: with 336-byte elements, two CPUs each dropping its own shaped device's
// packets scaled 1.27-1.63x instead of 2x (`cargo xtask bench`, multi-core table, 2026-12-06),
// the line at the seam of two neighbours' elements bouncing between them. Costs 48 bytes a
// device (384 MiB of kernel memory at 1M devices, not 336).
const _: () =
    assert!((HTAB_ELEM_HEADER + core::mem::size_of::<DeviceId>() + core::mem::size_of::<DeviceState>()) % 64 == 0);

// No implicit padding: each size equals the sum of the field sizes.
const _: () = assert!(core::mem::size_of::<DeviceKey>() == 20);
const _: () = assert!(
    core::mem::size_of::<DeviceState>()
        == 8 * 8 + 5 * 4 + 4 + 20 + 4 + 20 + 4 + 8 * 5 + 4 + 4 + 8 + 8 * 2 + 8 * 3 + 8 + 8 * 2 + 16 + 8 + 48
);
const _: () = assert!(core::mem::size_of::<StageEntry>() == 4 + 4 + 8 * 5 + 4 + 4 + 16 + 8);
const _: () = assert!(core::mem::size_of::<CellRecord>() == (10 + ECHO_PATH_SLOTS) * 8 + 4 + 4);
const _: () = assert!(core::mem::size_of::<CellHot>() == 20 + 4 + 2 * 8);
const _: () = assert!(core::mem::size_of::<CellCounts>() == 7 * 8);
const _: () = assert!(core::mem::size_of::<CellStageEntry>() == 4 + 4 + 8 * 5 + 16 + 8);
const _: () = assert!(core::mem::size_of::<N3TatSlot>() == 8 * 5);
const _: () = assert!(
    core::mem::size_of::<GuardConfig>()
        == 4 * 4 + 8 + 16 * 5 + 8 + 8 + 16 + 16 + 8 + 16 * 2 + 8 * 4 + 4 * 4 + 8 + 16 + 16
);
const _: () = assert!(core::mem::size_of::<TeidSpan>() == 8);
const _: () = assert!(core::mem::size_of::<FragKey>() == 20 + 20 + 4);
const _: () = assert!(core::mem::size_of::<FragEntry>() == 16);
const _: () = assert!(core::mem::size_of::<EventRecord>() == 8 + 4 + 4 + 8 + 20 + 4 + 8 * 3);
const _: () = assert!(core::mem::size_of::<ChainConfig>() == 4 + 4 + CHAIN_PATH_MAX);
const _: () = assert!(core::mem::size_of::<LocalAddr>() == 24);
const _: () = assert!(LOCAL_SLOTS.is_power_of_two() && LOCAL_PROBES <= LOCAL_SLOTS);
const _: () = assert!(STAGED_BITS.is_power_of_two() && STAGED_BITS >= 64 && STAGED_BITS <= 1 << 31);
// Whole pages: userspace maps them all (`BPF_F_MMAPABLE`).
const _: () = assert!((STAGED_WORDS * 8) % 4096 == 0);

#[cfg(test)]
mod tests;
