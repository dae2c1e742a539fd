//! `guard_n3`'s clock: the coarse clock (`ktime_get_coarse_ns()`, CLOCK_MONOTONIC as of the last
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

use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};

/// The coarse clock in ns, through the per-CPU cache `c` (`[jiffies_64, coarse ns]` as of the last
/// re-key, in the packet scratch `maps::Scratch`; all zero at first: jiffy 0 never matches). Not
/// pinned: it holds nothing a restart must keep.
#[inline(always)]
pub fn coarse_ns(c: &mut [u64; 2]) -> u64 {
    // SAFETY: a helper without arguments, inlined by the verifier.
    let j = unsafe { bpf_jiffies64() };
    if c[0] == j {
        return c[1];
    }
    // SAFETY: a helper without arguments (bpf_base_func_proto, allowed for XDP).
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now != c[1] {
        *c = [j, now];
    }
    now
}
