//! A device's and a gNB's stage on the common path: the stage maps' generation hint
//! (`N3_HINTS`), the stage a known device's record caches, and the cached miss of a stage map.

use aya_ebpf::maps::HashMap;
use guard_common::abi::{ByteLimit, DeviceId, DeviceState, Limit, StageEntry, STAGE_FLAG_EXEMPT};

use crate::maps::{N3_HINTS, N3_STAGES};

/// The generation of a userspace-owned stage map (`N3_HINTS[index]`, see `abi::HINT_STAGE_GEN`).
/// Read once, before the lookup it vouches for: volatile, so LLVM can neither re-load it after
/// the lookup (a newer generation would then be cached for an older miss) nor drop the read.
/// `None` (nothing may be cached, every packet looks up) if the read fails or the value is
/// `u64::MAX`, whose complement is a fresh record's 0.
#[inline(always)]
pub(super) fn hint_gen(index: u32) -> Option<u64> {
    let g = N3_HINTS.get_ptr(index)?;
    // SAFETY: a live array value, 8-byte aligned.
    let g = unsafe { core::ptr::read_volatile(g) };
    if g == u64::MAX {
        None
    } else {
        Some(g)
    }
}

/// A device's stage for this packet: its entry in `N3_STAGES`, or the copy its record caches.
#[derive(Clone, Copy)]
pub(super) enum Staged {
    None,
    Entry(*mut StageEntry),
    /// A non-exempt entry from the device's cache: its stage, expiry and limits (the GCRA states
    /// are the record's `stage_tat` and `stage_tat_bytes`).
    Cached {
        stage: u32,
        until: u64,
        limit: Limit,
        bytes: ByteLimit,
    },
}

/// What the cache tag binds besides the generation and the expiry (see `DeviceState::stage_cache_tag`).
#[inline(always)]
pub(super) fn cache_mix(stage: u32, limit: &Limit, bytes: &ByteLimit) -> u64 {
    limit.interval_ns
        ^ limit.tau_ns.rotate_left(21)
        ^ (u64::from(stage) << 56)
        ^ bytes.unit_ns.rotate_left(7)
        ^ bytes.tau_ns.rotate_left(42)
}

/// A known device's stage: from its record's cache while the generation `gen` is the one the
/// cache was filled at (`DeviceState::stage_cache_tag`) and a cached entry has not reached its
/// expiry, else from `N3_STAGES`, refilling the cache with "no entry" or the entry's stage,
/// expiry and limit (any non-exempt entry: quarantine, shape, strict), so a staged device skips
/// the lookup too. A cached rate stage keeps its GCRA state in the record (`stage_tat`).
#[inline(always)]
pub(super) fn known_device_stage(d: *mut DeviceState, key: &DeviceId, gen: Option<u64>, now: u64) -> Staged {
    // SAFETY: `d` points into a live LRU map value; the cache fields are written only here, by
    // any CPU: a set torn between two CPUs fails the tag check and is looked up again.
    // Volatile: each is read or written exactly once, as the tag check assumes.
    let until_p = unsafe { &raw mut (*d).stage_cache_until_ns };
    let tag_p = unsafe { &raw mut (*d).stage_cache_tag };
    let interval_p = unsafe { &raw mut (*d).stage_cache_interval_ns };
    let tau_p = unsafe { &raw mut (*d).stage_cache_tau_ns };
    let stage_p = unsafe { &raw mut (*d).stage_cache_stage };
    let bunit_p = unsafe { &raw mut (*d).stage_cache_bytes.unit_ns };
    let btau_p = unsafe { &raw mut (*d).stage_cache_bytes.tau_ns };
    if let Some(g) = gen {
        // SAFETY: as above.
        let (until, tag) = unsafe { (core::ptr::read_volatile(until_p), core::ptr::read_volatile(tag_p)) };
        // "No entry" (most devices): a miss writes the other fields as zero, so its tag is `!g`.
        if until == 0 && tag == !g {
            return Staged::None;
        }
        // SAFETY: as above.
        let (interval_ns, tau_ns, stage, unit_ns, btau_ns) = unsafe {
            (
                core::ptr::read_volatile(interval_p),
                core::ptr::read_volatile(tau_p),
                core::ptr::read_volatile(stage_p),
                core::ptr::read_volatile(bunit_p),
                core::ptr::read_volatile(btau_p),
            )
        };
        let limit = Limit { interval_ns, tau_ns };
        let bytes = ByteLimit { unit_ns, tau_ns: btau_ns };
        // A cached entry whose expiry has passed is looked up again: it may have been refreshed
        // to a later expiry, which keeps the generation (`N3Maps::set_stage`).
        if until > now && tag == !g ^ until ^ cache_mix(stage, &limit, &bytes) {
            return Staged::Cached { stage, until, limit, bytes };
        }
    }
    let Some(s) = N3_STAGES.get_ptr_mut(key) else {
        if let Some(g) = gen {
            // SAFETY: as above.
            unsafe {
                core::ptr::write_volatile(until_p, 0);
                core::ptr::write_volatile(interval_p, 0);
                core::ptr::write_volatile(tau_p, 0);
                core::ptr::write_volatile(stage_p, 0);
                core::ptr::write_volatile(bunit_p, 0);
                core::ptr::write_volatile(btau_p, 0);
                core::ptr::write_volatile(tag_p, !g);
            }
        }
        return Staged::None;
    };
    let Some(g) = gen else {
        return Staged::Entry(s);
    };
    // SAFETY: a live value of the userspace-owned stage map.
    let e = unsafe { &*s };
    // Expiry 0 stands for "no entry" in the cache, so such an (expired) entry is not cached;
    // exempt entries are not cached either (`policy::device_stage` decides them).
    if e.flags & STAGE_FLAG_EXEMPT != 0 || e.expires_ns == 0 {
        return Staged::Entry(s);
    }
    let (stage, until, limit) = (e.stage, e.expires_ns, Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns });
    let bytes = e.bytes;
    // The record's GCRA states go on when the same stage and limits are cached again (a refill
    // after another device's stage write, or a refreshed expiry); a new stage or limit starts
    // from the entry's own states, as an uncached device would.
    // SAFETY: as above; `stage_tat` and `stage_tat_bytes` are last-writer-wins GCRA states, as
    // the entry's own are.
    unsafe {
        let same = (*d).stage_cache_stage == stage
            && (*d).stage_cache_interval_ns == limit.interval_ns
            && (*d).stage_cache_tau_ns == limit.tau_ns
            && (*d).stage_cache_bytes == bytes;
        let tat = &raw mut (*d).stage_tat;
        if !same || e.tat > *tat {
            *tat = e.tat;
        }
        let tat_bytes = &raw mut (*d).stage_tat_bytes;
        if !same || e.tat_bytes > *tat_bytes {
            *tat_bytes = e.tat_bytes;
        }
        core::ptr::write_volatile(until_p, until);
        core::ptr::write_volatile(interval_p, limit.interval_ns);
        core::ptr::write_volatile(tau_p, limit.tau_ns);
        core::ptr::write_volatile(stage_p, stage);
        core::ptr::write_volatile(bunit_p, bytes.unit_ns);
        core::ptr::write_volatile(btau_p, bytes.tau_ns);
        core::ptr::write_volatile(tag_p, !g ^ until ^ cache_mix(stage, &limit, &bytes));
    }
    Staged::Cached { stage, until, limit, bytes }
}

/// `key`'s entry in a userspace-owned stage map (`N3_CELL_STAGES`), unless `no_entry_gen` (this
/// CPU's copy, in its counters of the gNB's hot slot: each CPU looks up once per generation) says
/// there was none at generation `gen`; a miss is recorded there. Every writer replaces the
/// generation after its insert, so a cached miss never hides a newer entry: the first packet after
/// any write looks up again. Expired entries are not misses (they stay until userspace prunes them), so
/// expiry is still decided by the entry itself.
#[inline(always)]
pub(super) fn stage_lookup<K, V>(
    map: &HashMap<K, V>,
    key: &K,
    no_entry_gen: &mut u64,
    gen: Option<u64>,
) -> Option<*mut V> {
    if let Some(g) = gen {
        if *no_entry_gen == !g {
            return None;
        }
    }
    let e = map.get_ptr_mut(key);
    if let (None, Some(g)) = (e, gen) {
        *no_entry_gen = !g;
    }
    e
}
