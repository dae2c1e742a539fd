//! A gNB's state for one packet: its record in `N3_CELLS`, its hot slot in `N3_CELL_HOT` and this
//! CPU's counters of that slot in `N3_CELL_PCPU` (`guard_common::abi::CellRecord`, `CellHot`,
//! `CellCounts`).
//!
//! The slow path looks the record up by the outer source (creating it on first sight) and follows
//! its slot. A known device's G-PDU takes the fast path instead: the slot cached in the device's
//! record, checked against the slot's owner, so the gNB costs two array lookups (inlined by the
//! verifier), not a second LRU hash lookup.
//!
//! A slot is a gNB's while its `owner` says so. Claims (`claim`) probe from a hash of the address,
//! so a gNB keeps its slot while its record comes and goes; a slot idle for five minutes, or the
//! least recently used of the probed ones, is taken over by a new gNB.
//!
//! Multi-core: nothing here writes a cache line other CPUs write on the common path. The slot
//! (`CellHot`) is read per packet and written only by a claim and by the coarse `last_seen_ns`
//! (once per `SLOT_SEEN_STEP_NS`); the counters are this CPU's own (`CellCounts`, plain adds).

use aya_ebpf::bindings::BPF_NOEXIST;
use guard_common::{
    abi::{
        mix_addr, CellCounts, CellHot, CellKey, CellRecord, DeviceState, GuardConfig, Limit, CELL_SLOTS, FAMILY_NONE,
        SLOT_SEEN_STEP_NS,
    },
    rate,
};

use crate::{
    counters,
    maps::{N3_CELLS, N3_CELL_HOT, N3_CELL_PCPU, N3_NEW_CELL, N3_PCPU_TAT, N3_UNKNOWN_GNB, N3_UNKNOWN_HOT},
};

const _: () = assert!(CELL_SLOTS.is_power_of_two());

/// A gNB's record: its own, or the one all unknown sources share.
#[derive(Clone, Copy)]
pub enum Gnb {
    /// The source's own record in `N3_CELLS` and this CPU's counters of its hot slot.
    Known(*mut CellRecord, *mut CellCounts),
    /// No record of its own (this CPU's shared `N3_UNKNOWN_GNB` / `N3_UNKNOWN_HOT`).
    Unknown(*mut CellRecord, *mut CellCounts),
}

impl Gnb {
    #[inline(always)]
    pub fn parts(self) -> (*mut CellRecord, *mut CellCounts) {
        match self {
            Gnb::Known(r, h) | Gnb::Unknown(r, h) => (r, h),
        }
    }
}

/// The gNB `key` for one packet. A source the guard knows (it has a record, or owns a hot slot:
/// it carried traffic within minutes), or whose packet belongs to an established session
/// (`vouched`), gets its own record, created on first sight. Any other source gets one only
/// within the host's budget for new sources (`GuardConfig::new_gnb`, per CPU); past it, it shares
/// the unknown sources' record: a forger rotating source addresses gets one set of edge budgets in
/// all, and cannot churn `N3_CELLS` faster than the budget.
#[inline(always)]
pub fn lookup(cfg: &GuardConfig, key: &CellKey, now: u64, vouched: bool) -> Option<Gnb> {
    let rec = match N3_CELLS.get_ptr_mut(key) {
        Some(c) => Some(c),
        None if (vouched && vouch_admitted(cfg, now)) || owns_slot(key, now) || new_source_admitted(cfg, now) => {
            create(key, now)
        }
        None => None,
    };
    match rec {
        Some(c) => Some(Gnb::Known(c, hot(c, key, now)?)),
        None => Some(Gnb::Unknown(N3_UNKNOWN_GNB.get_ptr_mut(0)?, N3_UNKNOWN_HOT.get_ptr_mut(0)?)),
    }
}

/// One record for a new source from this CPU's share of the host budget.
#[inline(always)]
fn new_source_admitted(cfg: &GuardConfig, now: u64) -> bool {
    if cfg.new_gnb.interval_ns == 0 {
        return true;
    }
    match N3_PCPU_TAT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
        Some(t) => rate::admit(unsafe { &mut (*t).new_gnb_tat }, now, &cfg.new_gnb),
        None => false,
    }
}

/// How many times `new_gnb`'s burst a source vouched for by an established session may draw on.
const VOUCHED_BURSTS: u64 = 10;

/// A record for a source an established session vouches for (a handover to a gNB the guard has
/// not seen), from the same host budget as any new source but with a deeper burst
/// ([`VOUCHED_BURSTS`]): it gets its record while a rotating-source scan keeps the budget spent,
/// and a forger who made one session of its own established cannot mint a record (each with its
/// own new-device budget) per source it rotates through, as it could when a vouched source
/// skipped the budget. Past it the source is judged as any new one (its home slot, the plain
/// budget), and else shares the unknown sources' record; the session's packets pass either way.
#[inline(always)]
fn vouch_admitted(cfg: &GuardConfig, now: u64) -> bool {
    if cfg.new_gnb.interval_ns == 0 {
        return true;
    }
    // A plain multiply: a saturating one is a 128-bit `__multi3` call, which BPF has not; a
    // burst tolerance is hours of ns at most.
    let deeper = Limit {
        interval_ns: cfg.new_gnb.interval_ns,
        tau_ns: cfg.new_gnb.tau_ns.wrapping_mul(VOUCHED_BURSTS).wrapping_add(cfg.new_gnb.interval_ns),
    };
    match N3_PCPU_TAT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
        Some(t) => rate::admit(unsafe { &mut (*t).new_gnb_tat }, now, &deeper),
        None => false,
    }
}

/// Whether `key` owns its home hot slot and used it within [`SLOT_IDLE_NS`]: a gNB whose record
/// was evicted (by pressure on `N3_CELLS`) is still known. Only the home slot (where most gNBs
/// live): a probe loop here would cost the policy's stack frame more than it finds.
#[inline(always)]
fn owns_slot(key: &CellKey, now: u64) -> bool {
    let Some(h) = N3_CELL_HOT.get_ptr_mut(hash(key) & (CELL_SLOTS - 1)) else {
        return false;
    };
    // SAFETY: a live array value.
    unsafe { (*h).owner.same(key) && now.saturating_sub((*h).last_seen_ns) <= SLOT_IDLE_NS }
}

/// Create `key`'s record with a claimed hot slot.
#[inline(always)]
fn create(key: &CellKey, now: u64) -> Option<*mut CellRecord> {
    let fresh = N3_NEW_CELL.get_ptr_mut(0)?;
    let slot = claim(key, now)?;
    // SAFETY: per-CPU scratch slot; reset in full before each use.
    unsafe {
        counters::zero(fresh);
        (*fresh).slot = slot;
    }
    // Another CPU may win the race; either way the entry then exists. Both usually claimed the
    // same slot (`claim` probes from a hash of the address); a loser's other slot goes idle and
    // is taken over later.
    // SAFETY: `fresh` is a valid map value pointer (BPF_NOEXIST: insert only if absent).
    let _ = N3_CELLS.insert(key, unsafe { &*fresh }, u64::from(BPF_NOEXIST));
    N3_CELLS.get_ptr_mut(key)
}

/// This CPU's counters of the hot slot of the gNB whose record is `rec`, claiming a fresh slot
/// if its slot was reused.
#[inline(always)]
pub fn hot(rec: *mut CellRecord, key: &CellKey, now: u64) -> Option<*mut CellCounts> {
    // SAFETY: `rec` points into a live LRU map value; `slot` is one u32, written whole.
    let slot = unsafe { (*rec).slot };
    if let Some(c) = owned(slot, key, now) {
        return Some(c);
    }
    let slot = claim(key, now)?;
    // SAFETY: as above.
    unsafe { (*rec).slot = slot };
    this_cpu(slot, N3_CELL_HOT.get_ptr_mut(slot)?, now)
}

/// The fast path: this CPU's counters of the hot slot `d` cached for the gNB `key`, if `d` last
/// came from `key` and the slot still counts for it.
#[inline(always)]
pub fn cached_hot(d: *mut DeviceState, key: &CellKey, now: u64) -> Option<*mut CellCounts> {
    // SAFETY: `d` points into a live LRU map value; both fields are last-writer-wins samples.
    let (cell, slot) = unsafe { (&(*d).cell, (*d).cell_slot) };
    if !cell.same(key) {
        return None;
    }
    owned(slot, key, now)
}

/// Record in `d` that `key`'s hot counters are in `slot`.
#[inline(always)]
pub fn cache_hot(d: *mut DeviceState, key: &CellKey, rec: *mut CellRecord) {
    // SAFETY: `d` and `rec` point into live LRU map values.
    unsafe {
        (*d).cell = *key;
        (*d).cell_slot = (*rec).slot;
    }
}

/// This CPU's counters of `slot` if the slot's owner is `key`.
#[inline(always)]
fn owned(slot: u32, key: &CellKey, now: u64) -> Option<*mut CellCounts> {
    let h = N3_CELL_HOT.get_ptr_mut(slot)?;
    // SAFETY: a live array value; `owner` changes only when the slot is claimed again.
    if !unsafe { &(*h).owner }.same(key) {
        return None;
    }
    this_cpu(slot, h, now)
}

/// This CPU's counters of `slot` (whose shared part is `h`), reset first if they counted for an
/// earlier owner (another epoch). Keeps the slot's `last_seen_ns` within `SLOT_SEEN_STEP_NS` of
/// `now`: a store to the shared slot once per step, not per packet, so the other CPUs' copies of
/// its cache line stay valid.
#[inline(always)]
fn this_cpu(slot: u32, h: *mut CellHot, now: u64) -> Option<*mut CellCounts> {
    let c = N3_CELL_PCPU.get_ptr_mut(slot)?;
    // SAFETY: `h` is a live array value (read-mostly; `last_seen_ns` is a last-writer-wins
    // sample); `c` is this CPU's slot of a per-CPU array, only this CPU touches it while this
    // program runs.
    unsafe {
        let epoch = (*h).epoch;
        if (*c).epoch != epoch {
            counters::zero(c);
            (*c).epoch = epoch;
        }
        if now.saturating_sub((*h).last_seen_ns) >= SLOT_SEEN_STEP_NS {
            (*h).last_seen_ns = now;
        }
    }
    Some(c)
}

/// Slots probed for a claim: the gNB's home slot (a hash of its address) and the next ones.
const CLAIM_PROBES: u32 = 4;
/// A slot whose gNB sent nothing for this long may be claimed by another gNB.
const SLOT_IDLE_NS: u64 = 300_000_000_000;

/// Find `key` a slot: among the probed slots, the one it already owns (its record was evicted
/// from `N3_CELLS` and came back: its counts go on), else a free or idle one, else the least
/// recently used (every probed gNB is live: a flood of new outer sources, or a hash cluster).
/// A claimed slot's counters start from zero; its previous gNB claims again on its next packet.
///
/// Why not round-robin: an atomic fetch-and-add needs BPF ISA v3 (the object is built for the
/// generic CPU), and hashing keeps a gNB on the same slot across its record's evictions.
#[inline(always)]
fn claim(key: &CellKey, now: u64) -> Option<u32> {
    let home = hash(key);
    let mut best = home & (CELL_SLOTS - 1);
    let mut best_seen = u64::MAX;
    for i in 0..CLAIM_PROBES {
        let slot = home.wrapping_add(i) & (CELL_SLOTS - 1);
        let h = N3_CELL_HOT.get_ptr_mut(slot)?;
        // SAFETY: a live array value.
        let (mine, free, seen) = unsafe { ((*h).owner.same(key), (*h).owner.family == FAMILY_NONE, (*h).last_seen_ns) };
        if mine {
            return Some(slot);
        }
        if free || now.saturating_sub(seen) > SLOT_IDLE_NS {
            best = slot;
            break;
        }
        if seen < best_seen {
            best = slot;
            best_seen = seen;
        }
    }
    let h = N3_CELL_HOT.get_ptr_mut(best)?;
    // A new epoch: every CPU's counts of the previous owner (and its cached "no cell cap") stop
    // counting for the slot; each CPU resets its own on its next packet there (`this_cpu`).
    // SAFETY: a live array value; a CPU still counting for the previous owner may add a packet
    // to the new epoch (it read the owner before this store), once per reuse; two CPUs claiming
    // at once may both bump the epoch, which only resets the counts once more.
    unsafe {
        (*h).epoch = (*h).epoch.wrapping_add(1);
        (*h).last_seen_ns = now;
        (*h).owner = *key;
    }
    Some(best)
}

/// A gNB address's home slot (`abi::mix_addr` of its words). Only claims and the known-source
/// check hash, so its cost is off the per-packet path.
#[inline(always)]
fn hash(key: &CellKey) -> u32 {
    mix_addr(key)
}

/// Count a packet in this CPU's counters of its gNB's hot slot: plain adds to a cache
/// line no other CPU writes, where shared atomic adds made one gNB's packets on several CPUs
/// bounce its counters between them (BENCHMARKS.md, "Multi-core").
#[inline(always)]
pub fn count_packet(hot: *mut CellCounts, len: u64) {
    // SAFETY: `hot` is this CPU's slot of a per-CPU array (`N3_CELL_PCPU` or `N3_UNKNOWN_HOT`),
    // only this CPU touches it while this program runs (XDP does not nest).
    unsafe {
        (*hot).packets += 1;
        (*hot).bytes += len;
    }
}
