//! The programs' clock: the coarse clock (`ktime_get_coarse_ns()`, CLOCK_MONOTONIC as of the last
//! timekeeping update), read through a per-CPU cache keyed on `jiffies_64`.
//!
//! Why: the coarse clock only changes when the tick updates timekeeping, and the same update
//! advances `jiffies_64`. `bpf_jiffies64` is inlined by the verifier (one load on a 64-bit JIT),
//! while `bpf_ktime_get_coarse_ns` is a helper call (~14-18 ns here, with the return thunk AMD's
//! SRSO mitigation puts on every return; BENCHMARKS.md, "Price of one operation"). So the helper
//! is called once per tick per CPU, and every other packet reads the cached value.
//!
//! The cache never runs ahead of the coarse clock. The tick advances `jiffies_64` just before it
//! updates timekeeping (`tick_do_update_jiffies64`, then `update_wall_time`); a packet in between
//! sees the new jiffy and the old coarse time. If the cache was filled in the previous tick, that
//! old time equals the cached one, and the cache is not re-keyed until the coarse clock moves. A
//! CPU idle for longer may cache the old time for one tick: the clock then lags by up to two
//! ticks instead of one, for that CPU and that tick.
//!
//! **Replay** (`guard replay`, docs/replay.md): the same programs run on a capture's packets
//! through BPF_PROG_TEST_RUN, and their clock must be the capture's, not the machine's: the time
//! is then [`REPLAY_NOW_NS`], which the replay writes before each packet. It is a plain global
//! (`.bss`), read with one load: no map lookup, so no key on the stack (`guard_n3` runs near the
//! 512-byte stack limit) and no helper call.
//! - `guard_n3` has a replay twin, `guard_n3_replay` (`n3_ns::<true>`): the live program's
//!   code does not change at all (why: `n3/mod.rs`).
//! - `guard_n2` and its egress classifier read [`n2_ns`], which checks [`REPLAY_CLOCK`], a
//!   `.rodata` global only a replay's loader sets (`EbpfLoader::override_global`). aya freezes
//!   `.rodata` before the programs load, so the verifier knows its value and walks only the live
//!   branch: the live programs pay one load and one jump per clock read (+0.5% of `guard_n2`'s
//!   processed instructions, measured).
//!
//! **N2 on the coarse clock too** (issue 19). `guard_n2` read the fine clock twice per packet
//! with an InitialUEMessage (the policy, then the UE's accounting): `bpf_ktime_get_ns` costs
//! ~37 ns here (a TSC read under a hypervisor; BENCHMARKS.md "Price of one operation"), 13% of
//! the program's samples in its perf profile. Nothing on N2 needs better than a tick: the setup
//! limits are GCRA with a tolerance of at least one clock step (`rate::effective_tau_ns`), the
//! cookie and association memories last seconds, the cell and device windows are the
//! controller's ticks. The egress classifier must read the same clock: it stamps the INIT ACK
//! tags that `guard_n2` ages (`now - stamp <= cookie_life_ns`, unsigned), and a fine stamp read
//! against a coarse `now` up to two ticks behind would age a COOKIE ECHO that follows its INIT
//! ACK within a few ms (any LAN) to ~2^64 ns: not fresh, no lane.

use core::cell::UnsafeCell;

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_jiffies64, bpf_ktime_get_coarse_ns};

/// Non-zero only in a replay's load (`guard replay`): [`n2_ns`] reads [`REPLAY_NOW_NS`]. The
/// symbol name is the loader's contract (`guard_common::abi::GLOBAL_REPLAY_CLOCK`).
#[no_mangle]
static REPLAY_CLOCK: u8 = 0;

/// The capture's time in ns on the replay's monotonic scale, written by the replay before each
/// packet (from userspace, between two runs: no program writes it).
#[no_mangle]
static REPLAY_NOW_NS: ReplayNow = ReplayNow(UnsafeCell::new(0));

/// Interior mutability, so the global lands in the writable `.bss` and not in `.rodata` (an
/// `AtomicU64` would too, but its load does not select on the BPF target).
#[repr(transparent)]
struct ReplayNow(UnsafeCell<u64>);

// SAFETY: programs only read it, with one 8-byte load; userspace writes it between runs.
unsafe impl Sync for ReplayNow {}

impl ReplayNow {
    #[inline(always)]
    fn get(&self) -> u64 {
        // SAFETY: a valid, aligned u64 global.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}

/// Whether this load is a replay's. A volatile read, so LLVM keeps the load (the value in the
/// object is 0) and the verifier, which sees the frozen value, decides the branch.
#[inline(always)]
fn replaying() -> bool {
    // SAFETY: a read of an initialised static.
    unsafe { core::ptr::read_volatile(&REPLAY_CLOCK) != 0 }
}

/// `guard_n2`'s and its egress classifier's clock: the coarse clock through the per-CPU cache
/// `N2_CLOCK` (one inlined array lookup and one load of `jiffies_64` per read), or the capture's
/// in a replay.
#[inline(always)]
pub fn n2_ns() -> u64 {
    if replaying() {
        return REPLAY_NOW_NS.get();
    }
    match crate::maps_n2::N2_CLOCK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array; nothing else runs on it meanwhile.
        Some(c) => coarse_ns::<false>(unsafe { &mut *c }),
        // SAFETY: a helper without arguments (bpf_base_func_proto).
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}

/// The coarse clock in ns, through the per-CPU cache `c` (`[jiffies_64, coarse ns]` as of the last
/// re-key, in the packet scratch `maps::Scratch`; all zero at first: jiffy 0 never matches). Not
/// pinned: it holds nothing a restart must keep.
/// With `REPLAY`, the capture's time instead ([`REPLAY_NOW_NS`]).
#[inline(always)]
pub fn coarse_ns<const REPLAY: bool>(c: &mut [u64; 2]) -> u64 {
    coarse_ns_then::<REPLAY>(c, || {})
}

/// `guard_n3`'s per-CPU cache (in its scratch slot, `maps::Scratch`): the clock's, and this
/// CPU's mark ([`CpuCache::mark`]).
/// Its fields are private: every re-key goes through [`n3_ns`], so the mark is set before any
/// packet on this CPU can read it (a re-key that skipped it would leave 0, the mark of records
/// no CPU owns, for the rest of the tick).
#[repr(C)]
pub struct CpuCache {
    /// [`coarse_ns`]'s cache.
    clock: [u64; 2],
    /// This CPU's id + 1 (0 until the clock's first re-key on this CPU), the owner mark of the
    /// device records it inserts (`counters::count_device`). Set where the clock re-keys, once
    /// a tick at most, so the per-packet path reads a word instead of calling
    /// `bpf_get_smp_processor_id`: a call there moved the registers of the whole policy and cost
    /// ~140,000 of the verifier's processed instructions (`tests/tests/replay_cost.rs`).
    mark: u64,
}

/// The owner mark of a replay's records: one thread runs each replay's program, one frame at a
/// time, whatever CPU it is on (docs/replay.md).
const REPLAY_MARK: u32 = u32::MAX;

/// [`coarse_ns`] through `guard_n3`'s cache, which re-keys the CPU's mark with the clock.
#[inline(always)]
pub fn n3_ns<const REPLAY: bool>(c: &mut CpuCache) -> u64 {
    let mark = &mut c.mark;
    coarse_ns_then::<REPLAY>(&mut c.clock, || {
        // SAFETY: a helper without arguments (bpf_base_func_proto); the verifier inlines it.
        *mark = u64::from(unsafe { bpf_get_smp_processor_id() }) + 1;
    })
}

/// This CPU's owner mark ([`CpuCache::mark`]), once [`n3_ns`] has run on this CPU; a replay's.
#[inline(always)]
pub fn mark<const REPLAY: bool>(c: &CpuCache) -> u32 {
    if REPLAY {
        REPLAY_MARK
    } else {
        c.mark as u32
    }
}

#[inline(always)]
fn coarse_ns_then<const REPLAY: bool>(c: &mut [u64; 2], on_rekey: impl FnOnce()) -> u64 {
    if REPLAY {
        return REPLAY_NOW_NS.get();
    }
    // SAFETY: a helper without arguments, inlined by the verifier.
    let j = unsafe { bpf_jiffies64() };
    if c[0] == j {
        return c[1];
    }
    on_rekey();
    // SAFETY: a helper without arguments (bpf_base_func_proto, allowed for XDP).
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now != c[1] {
        *c = [j, now];
    }
    now
}
