//! `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns` reads, and
//! `bpf_ktime_get_coarse_ns` (both programs' clock) as of the last kernel tick, so expiries
//! written by userspace compare correctly with the data plane's `now` (a tick late, rarely two:
//! `guard-ebpf/src/clock.rs`).

/// Current `CLOCK_MONOTONIC` time in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
