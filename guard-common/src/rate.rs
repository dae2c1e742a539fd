//! GCRA (the generic cell rate algorithm, ITU-T I.371): a token bucket that needs one `u64` of
//! state, the theoretical arrival time (TAT), and no floating point, so the same code runs in XDP.

use crate::abi::Limit;

const NS_PER_SEC: u64 = 1_000_000_000;

impl Limit {
    /// No limit.
    pub const UNLIMITED: Limit = Limit { interval_ns: 0, tau_ns: 0 };

    /// A limit of `per_sec` events per second with bursts of up to `burst` back-to-back events.
    /// `per_sec == 0` means unlimited; a `burst` of 0 is treated as 1.
    pub const fn per_second(per_sec: u64, burst: u64) -> Limit {
        if per_sec == 0 {
            return Limit::UNLIMITED;
        }
        let interval = NS_PER_SEC / per_sec;
        let interval = if interval == 0 { 1 } else { interval };
        Limit::per_interval(interval, burst)
    }

    /// One event per `interval_ns`, bursts of up to `burst`.
    pub const fn per_interval(interval_ns: u64, burst: u64) -> Limit {
        let burst = if burst == 0 { 1 } else { burst };
        Limit { interval_ns, tau_ns: interval_ns.saturating_mul(burst - 1) }
    }

    /// The sustained rate in events per second (0 when unlimited).
    pub const fn rate_per_sec(&self) -> u64 {
        match NS_PER_SEC.checked_div(self.interval_ns) {
            Some(r) => r,
            None => 0,
        }
    }

    /// The burst size this limit allows (0 when unlimited).
    pub const fn burst(&self) -> u64 {
        match self.tau_ns.checked_div(self.interval_ns) {
            Some(b) => b + 1,
            None => 0,
        }
    }

    pub const fn is_unlimited(&self) -> bool {
        self.interval_ns == 0
    }
}

/// Admit one event at `now` against `limit`, updating `tat`. Returns `true` if the event conforms.
///
/// A non-conforming event does not advance `tat`, so a flood above the rate still lets the
/// sustained rate through instead of starving.
#[inline(always)]
pub fn admit(tat: &mut u64, now: u64, limit: &Limit) -> bool {
    if limit.interval_ns == 0 {
        return true;
    }
    let t = if *tat > now { *tat } else { now };
    if t - now > limit.tau_ns {
        return false;
    }
    *tat = t.saturating_add(limit.interval_ns);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_rate() {
        let l = Limit::per_second(10, 5);
        let mut tat = 0;
        let now = 1_000_000_000;
        let admitted = (0..20).filter(|_| admit(&mut tat, now, &l)).count();
        assert_eq!(admitted, 5, "a burst of exactly `burst` passes at one instant");
        // 100 ms later one more token is there.
        assert!(admit(&mut tat, now + 100_000_000, &l));
        assert!(!admit(&mut tat, now + 100_000_000, &l));
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut tat = 0;
        assert!((0..1000).all(|_| admit(&mut tat, 5, &Limit::UNLIMITED)));
    }

    #[test]
    fn parameters_round_trip() {
        let l = Limit::per_second(1000, 50);
        assert_eq!(l.rate_per_sec(), 1000);
        assert_eq!(l.burst(), 50);
    }

    proptest! {
        /// Over any window, admitted <= burst + window * rate: the defining GCRA bound.
        #[test]
        fn never_exceeds_rate_plus_burst(rate in 1u64..100_000, burst in 1u64..1000,
                                          gaps in proptest::collection::vec(0u64..5_000_000, 1..2000)) {
            let l = Limit::per_second(rate, burst);
            let mut tat = 0;
            let start = 1_000_000_000u64;
            let mut now = start;
            let mut admitted = 0u64;
            for g in gaps {
                now += g;
                if admit(&mut tat, now, &l) { admitted += 1; }
            }
            let window = now - start;
            let bound = burst + window / l.interval_ns + 1;
            prop_assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
        }

        /// Traffic at or below the rate is never refused.
        #[test]
        fn conforming_traffic_always_passes(rate in 1u64..10_000, n in 1usize..500) {
            let l = Limit::per_second(rate, 1);
            let mut tat = 0;
            let mut now = 1_000u64;
            for _ in 0..n {
                prop_assert!(admit(&mut tat, now, &l));
                now += l.interval_ns;
            }
        }
    }
}
