//! Per-CPU counters, shared atomic counters in map values, and the rate-limited event ring.

use guard_common::{
    abi::{
        CellKey, Counter, DeviceId, DeviceState, EventRecord, GuardConfig, STAT_EVENTS_LOST, STAT_EVENTS_SENT,
        STAT_EVENTS_SUPPRESSED,
    },
    parse::Malformed,
    policy::{self, Verdict},
    rate,
};

use crate::maps::{N3_EVENTS, N3_MALFORMED, N3_PCPU_TAT, N3_SHADOW, N3_STATS, N3_VERDICTS};

#[inline(always)]
fn bump(c: Option<*mut Counter>, bytes: u64) {
    if let Some(c) = c {
        // SAFETY: a per-CPU array slot is only touched by this CPU while this program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn verdict(v: Verdict, bytes: u64) {
    bump(N3_VERDICTS.get_ptr_mut(v as u32), bytes);
}

#[inline(always)]
pub fn shadow(v: Verdict, bytes: u64) {
    bump(N3_SHADOW.get_ptr_mut(v as u32), bytes);
}

#[inline(always)]
pub fn malformed(m: Malformed, bytes: u64) {
    bump(N3_MALFORMED.get_ptr_mut(m as u32), bytes);
}

#[inline(always)]
pub fn stat(index: u32) {
    bump(N3_STATS.get_ptr_mut(index), 0);
}

/// Count a G-PDU of `bytes` T-PDU octets on a device record. Its owner CPU (`mark` is this
/// CPU's, `clock::mark`) makes plain adds to its own counters, which no other CPU writes; any other
/// CPU atomic adds to the others' (`DeviceState::owner`). Both stay exact, and the common path
/// (RSS by TEID: the device's packets on the CPU that inserted it) makes no atomic add, which
/// cost the known device's path 2-5 ns (BENCHMARKS.md §14, §24).
#[inline(always)]
pub fn count_device(d: *mut DeviceState, bytes: u64, mark: u32) {
    // SAFETY: `d` points into a live map value; the owner's fields have one writer, this CPU.
    unsafe {
        if (*d).owner == mark {
            (*d).own_packets += 1;
            (*d).own_bytes += bytes;
        } else {
            add(&mut (*d).other_packets, 1);
            add(&mut (*d).other_bytes, bytes);
        }
    }
}

/// Count a dropped packet on a device record, as [`count_device`] counts its G-PDUs.
#[inline(always)]
pub fn count_device_dropped(d: *mut DeviceState, mark: u32) {
    // SAFETY: as in `count_device`.
    unsafe {
        if (*d).owner == mark {
            (*d).own_dropped += 1;
        } else {
            add(&mut (*d).other_dropped, 1);
        }
    }
}

/// Add to a counter in a shared (non-per-CPU) map value: several CPUs may update one device.
#[inline(always)]
pub fn add(field: *mut u64, v: u64) {
    // The BPF target has no stable `AtomicU64::fetch_add`; the intrinsic lowers to BPF_ATOMIC
    // BPF_ADD, which the verifier allows on map values.
    // SAFETY: `field` points into a live map value, 8-byte aligned (all counters are u64 fields
    // of #[repr(C)] structs at 8-byte offsets).
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(field, v);
    }
}

/// [`add`] for a 32-bit counter (BPF_ATOMIC BPF_ADD on a word).
#[inline(always)]
pub fn add32(field: *mut u32, v: u32) {
    // SAFETY: `field` points into a live map value, 4-byte aligned.
    unsafe {
        core::intrinsics::atomic_xadd::<u32, u32, { core::intrinsics::AtomicOrdering::Relaxed }>(field, v);
    }
}

/// Send an event of `kind` about `device` at `stage` unless its claim on the per-CPU event budget
/// is refused: `policy::event_claim` picks the claim from the kind and stage, so a call site says
/// only what it reports. Counts sent, suppressed and lost.
///
/// Returns whether the budget admitted it (`false`: suppressed, nothing sent). A full ring
/// counts as admitted: the event is lost, and asking again on the next packet would take the
/// ring's lock, shared by all CPUs, on every packet of a flood.
#[inline(always)]
pub fn emit(
    cfg: &GuardConfig,
    now: u64,
    kind: u32,
    stage: u32,
    device: &DeviceId,
    cell: &CellKey,
    totals: [u64; 3],
) -> bool {
    if let Some(slot) = N3_PCPU_TAT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
        if !rate::admit(unsafe { &mut (*slot).event_tat }, now, &policy::event_claim(cfg, kind, stage)) {
            stat(STAT_EVENTS_SUPPRESSED);
            return false;
        }
    }
    match N3_EVENTS.reserve::<EventRecord>(0) {
        Some(mut entry) => {
            // Fill the ring slot in place: a 72-byte record on the BPF stack does not fit beside
            // the parser's state.
            let e = entry.as_mut_ptr();
            // SAFETY: `e` points to a reserved, writable, 8-byte aligned slot of size_of::<EventRecord>().
            unsafe {
                (*e).ts_ns = now;
                (*e).kind = kind;
                (*e).stage = stage;
                (*e).device = *device;
                (*e).cell = *cell;
                // Volatile: merged with the zero totals of signalling events, a plain store
                // becomes a `memset` call (a byte loop).
                core::ptr::write_volatile(&raw mut (*e).reserved, 0);
                (*e).packets = totals[0];
                (*e).bytes = totals[1];
                (*e).over_limit = totals[2];
            }
            entry.submit(0);
            stat(STAT_EVENTS_SENT);
        }
        None => stat(STAT_EVENTS_LOST),
    }
    true
}

/// Zero a map-value record with 8-byte volatile stores. `write_bytes` would become a call to
/// `memset`, which the BPF backend emits as a byte-at-a-time loop; volatile stops LLVM from
/// turning this loop back into that call.
///
/// # Safety
/// `p` must point to a writable, 8-byte aligned `T` whose size is a multiple of 8.
#[inline(always)]
pub unsafe fn zero<T>(p: *mut T) {
    let words = core::mem::size_of::<T>() / 8;
    let w = p as *mut u64;
    for i in 0..words {
        // SAFETY: within the record, per the contract above.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
    }
}
