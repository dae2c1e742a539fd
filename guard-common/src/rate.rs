//! GCRA (the generic cell rate algorithm, ITU-T I.371): a token bucket that needs one `u64` of
//! state, the theoretical arrival time (TAT), and no floating point, so the same code runs in XDP.

use crate::abi::Limit;

const NS_PER_SEC: u64 = 1_000_000_000;

/// The most the data plane's clock may step at once: one kernel tick at the coarsest `CONFIG_HZ`
/// (100). `guard_n3` reads `bpf_ktime_get_coarse_ns`, which advances once per tick, so every
/// packet within a tick sees the same `now`. GCRA whose burst tolerance is shorter than a step
/// would then admit only about `burst` packets per tick and starve the configured rate (1000 pps
/// with burst 1 would pass 100 pps at HZ = 100); [`admit`] therefore tolerates at least one step.
/// The cost: a limit whose burst covers less than 10 ms of its rate bursts up to 10 ms' worth
/// (`rate / 100 + 1` packets). The long-run rate is unchanged. (`guard_n2` reads the exact clock;
/// for it the tolerance only means that larger minimum burst.)
pub const CLOCK_STEP_NS: u64 = 10_000_000;

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

    /// The burst tolerance [`admit`] applies: `tau_ns`, but at least one clock step
    /// ([`CLOCK_STEP_NS`]). Within one tick GCRA admits until the TAT is more than the tolerance
    /// ahead of `now`, so with a tolerance of a step the TAT ends each busy tick at or beyond the
    /// next tick's `now` and no credit is lost between ticks (a step minus one interval is not
    /// enough: whole intervals can fall short of the step).
    #[inline(always)]
    pub const fn effective_tau_ns(&self) -> u64 {
        if self.tau_ns > CLOCK_STEP_NS {
            self.tau_ns
        } else {
            CLOCK_STEP_NS
        }
    }
}

/// Admit one event at `now` against `limit`, updating `tat`. Returns `true` if the event conforms.
///
/// A non-conforming event does not advance `tat`, so a flood above the rate still lets the
/// sustained rate through instead of starving. The burst tolerance is
/// [`Limit::effective_tau_ns`]: `now` may advance in steps of up to [`CLOCK_STEP_NS`].
#[inline(always)]
pub fn admit(tat: &mut u64, now: u64, limit: &Limit) -> bool {
    if limit.interval_ns == 0 {
        return true;
    }
    let t = if *tat > now { *tat } else { now };
    if t - now > limit.effective_tau_ns() {
        return false;
    }
    *tat = t.saturating_add(limit.interval_ns);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// At one instant a limit admits exactly its burst: the tolerance is inclusive (an event
    /// whose TAT lands exactly `tau` ahead still conforms), for tolerances above the clock step
    /// and at it.
    #[test]
    fn one_instant_admits_exactly_the_burst() {
        for (rate, burst) in [(10, 4), (1, 2), (100, 1), (50, 8)] {
            let l = Limit::per_second(rate, burst);
            let mut tat = 0;
            let now = 5_000_000_000;
            let admitted = (0..2 * burst).filter(|_| admit(&mut tat, now, &l)).count() as u64;
            assert_eq!(admitted, burst.max((CLOCK_STEP_NS / l.interval_ns) + 1), "{rate}/s burst {burst}");
        }
        // A tolerance exactly one clock step: the step itself, admitted inclusively.
        let l = Limit { interval_ns: CLOCK_STEP_NS / 4, tau_ns: CLOCK_STEP_NS };
        assert_eq!(l.effective_tau_ns(), CLOCK_STEP_NS);
        let mut tat = 0;
        assert_eq!((0..10).filter(|_| admit(&mut tat, 1_000_000_000, &l)).count(), 5);
    }

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
    fn a_burst_below_one_clock_step_is_raised_to_it() {
        // 1000 pps, burst 1: 1 ms of credit, less than a 10 ms tick. Every packet of a tick sees
        // the same `now`: plain GCRA would pass 1 per tick (100 pps at HZ = 100).
        let l = Limit::per_second(1000, 1);
        assert_eq!(l.effective_tau_ns(), CLOCK_STEP_NS);
        let mut tat = 0;
        let mut admitted = 0;
        for tick in 0..100u64 {
            let now = 1_000_000_000 + tick * CLOCK_STEP_NS;
            admitted += (0..50).filter(|_| admit(&mut tat, now, &l)).count();
        }
        // One second of ticks: the configured rate, plus one tick's worth of burst at most.
        assert!((1000..=1011).contains(&admitted), "admitted {admitted}");
        // A burst that already covers a step is left alone.
        let wide = Limit::per_second(10, 5);
        assert_eq!(wide.effective_tau_ns(), wide.tau_ns);
    }

    /// A rate's interval is a whole number of nanoseconds, at least 1: above 10^9 per second
    /// it is 1 ns, below it `10^9 / rate` rounded down; the burst is kept.
    #[test]
    fn per_second_intervals() {
        for (rate, interval) in [
            (1, 1_000_000_000),
            (3, 333_333_333),
            (1000, 1_000_000),
            (999_999_999, 1),
            (1_000_000_000, 1),
            (u64::MAX, 1),
        ] {
            let l = Limit::per_second(rate, 4);
            assert_eq!((l.interval_ns, l.tau_ns, l.burst()), (interval, 3 * interval, 4), "{rate}/s");
        }
        assert_eq!(Limit::per_second(0, 4), Limit::UNLIMITED);
        assert_eq!(Limit::per_second(10, 0).burst(), 1, "a burst of 0 is 1");
    }

    #[test]
    fn only_a_zero_interval_is_unlimited() {
        assert!(Limit::default().is_unlimited());
        assert!(!Limit::per_second(1, 1).is_unlimited());
        assert!(!Limit::per_interval(1, 1).is_unlimited());
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
            prop_assert_eq!(l.interval_ns, 1_000_000_000 / rate);
            let mut tat = 0;
            let start = 1_000_000_000u64;
            let mut now = start;
            let mut admitted = 0u64;
            for g in gaps {
                now += g;
                if admit(&mut tat, now, &l) { admitted += 1; }
            }
            let window = now - start;
            // The burst [`admit`] allows: the configured one, or one clock step's worth.
            let burst = l.effective_tau_ns() / l.interval_ns + 1;
            let bound = burst + window / l.interval_ns + 1;
            prop_assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
        }

        /// With a clock that advances only once per tick (`bpf_ktime_get_coarse_ns`) and demand
        /// above the rate, the admitted count over any run of ticks is the configured rate, within
        /// one burst either way, whatever the burst: nothing starves, nothing exceeds.
        #[test]
        fn stepped_clock_keeps_the_rate(rate in 1u64..200_000, burst in 1u64..1000,
                                         tick_ms in prop::sample::select(vec![1u64, 4, 10]),
                                         ticks in 1u64..500) {
            let l = Limit::per_second(rate, burst);
            // The limit asked for, before the demand is sized from it (a wrong interval would
            // size it in the millions per tick).
            prop_assert_eq!((l.interval_ns, l.burst()), (1_000_000_000 / rate, burst));
            let step = tick_ms * 1_000_000;
            // Demand: twice the rate, all of a tick's packets at the tick's one `now`.
            let per_tick = (2 * step / l.interval_ns).max(2);
            let mut tat = 0;
            let start = 1_000_000_000u64;
            let mut admitted = 0u64;
            for k in 0..ticks {
                let now = start + k * step;
                admitted += (0..per_tick).filter(|_| admit(&mut tat, now, &l)).count() as u64;
            }
            let window = ticks * step;
            let b = l.effective_tau_ns() / l.interval_ns + 1;
            let expected = window / l.interval_ns;
            prop_assert!(admitted <= expected + b + 1, "admitted {admitted} > {expected} + burst {b}");
            prop_assert!(admitted + b + 1 >= expected, "admitted {admitted} starves the rate ({expected}, burst {b})");
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
