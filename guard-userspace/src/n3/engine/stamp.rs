//! Times in a track: `u32` milliseconds of CLOCK_MONOTONIC (the engine's `now_ns` / 10^6), kept
//! modulo 2^32 (they wrap every 49.7 days) and compared by their wrapping difference, 4 bytes
//! where a `u64` of nanoseconds took 8 (issue 19: a track's seven times and three durations).
//!
//! Why milliseconds are precise enough: every rate divides a counter delta by a reading's elapsed
//! time, and the readings' own times are coarser than that (a walk slice is stamped with its
//! tick's time while it is read over up to 20 ms; an event carries the data plane's coarse clock,
//! one jiffy, 1-4 ms). A whole-millisecond interval gives exactly the `f64` it gave in
//! nanoseconds (both are the correctly rounded quotient of the same number of seconds), so the
//! tests, whose times are whole milliseconds, decide as before.
//!
//! Why the wrap is safe: a difference is read as signed (`age`), exact while the two times are
//! less than 2^31 ms (24.8 days) apart. Every full pass ages the track's times out
//! (`Track::age_out`): a time more than 2^30 ms (12.4 days) old is moved up to 12.4 days old (the
//! "never" ones, a deviation or a fresh window, are cleared), so no time a track keeps is ever
//! half a wrap away from `now`. What that changes, only for a device unread or idle for 12 days:
//! it is ranked as idle for 12.4 days for eviction (among the least recently active anyway), and
//! a burst interval longer than that is measured as 12.4 days (an expected period up to 2.4 days
//! still finds it off by its factor of 5).

/// A time: milliseconds of CLOCK_MONOTONIC modulo 2^32. 0 doubles as "never" where a field
/// says so (a deviation, a burst onset, a fresh window), as 0 ns did before.
pub(super) type Ms = u32;

pub(super) const NS_PER_MS: u64 = 1_000_000;

/// Ages beyond this are moved back to it by [`Track::age_out`](super::track::Track::age_out).
pub(super) const MAX_AGE_MS: u32 = 1 << 30;

/// `now_ns` as a time.
pub(super) fn ms(ns: u64) -> Ms {
    (ns / NS_PER_MS) as u32
}

/// How long before `now` the time `t` was, in ms; 0 if `t` is not before `now` (as
/// `saturating_sub` read the nanoseconds).
pub(super) fn age(now: Ms, t: Ms) -> u32 {
    (now.wrapping_sub(t) as i32).max(0) as u32
}

/// [`age`] in nanoseconds, to compare with a configured duration.
pub(super) fn age_ns(now: Ms, t: Ms) -> u64 {
    u64::from(age(now, t)) * NS_PER_MS
}

/// Whether `t` is after `since` (strictly).
pub(super) fn after(t: Ms, since: Ms) -> bool {
    (t.wrapping_sub(since) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_order_hold_across_the_wrap() {
        let before_wrap = u32::MAX - 5;
        let after_wrap = 10;
        assert_eq!(age(after_wrap, before_wrap), 16);
        assert!(after(after_wrap, before_wrap));
        assert!(!after(before_wrap, after_wrap));
        assert_eq!(age(before_wrap, after_wrap), 0, "not before now: 0, as saturating_sub");
        assert_eq!(age(1000, 1000), 0);
        assert_eq!(age_ns(2000, 1000), 1_000_000_000);
        assert_eq!(ms(1_999_999), 1);
        assert_eq!(ms((1u64 << 32) * NS_PER_MS + 7 * NS_PER_MS), 7, "wraps");
    }
}
