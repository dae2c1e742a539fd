//! Host tests of the GCRA limiter, packets and bytes (unit and property tests).
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
    for (rate, interval) in
        [(1, 1_000_000_000), (3, 333_333_333), (1000, 1_000_000), (999_999_999, 1), (1_000_000_000, 1), (u64::MAX, 1)]
    {
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

const MS: u64 = 1_000_000;

/// Bit rates in SI units (TS 29.571 §5.5.2: 1 Mbit/s is 10^6 bit/s) become the time of 64
/// KiB, rounded to the nearest ns; the rate and burst read back as set.
#[test]
fn byte_limit_intervals() {
    for (bps, unit_ns) in [
        (8_192_000, 64_000_000),
        (1_000_000, 524_288_000),
        (20_000_000, 26_214_400),
        (100_000_000, 5_242_880),
        (10_000_000_000, 52_429),
        (8, 65_536_000_000_000),
        (3, ByteLimit::MAX_UNIT_NS),
        (1, ByteLimit::MAX_UNIT_NS),
        (u64::MAX, 1),
    ] {
        let l = ByteLimit::bits_per_second(bps, 1500);
        assert_eq!(l.unit_ns, unit_ns, "{bps} bit/s");
    }
    assert_eq!(ByteLimit::bits_per_second(0, 1500), ByteLimit::UNLIMITED);
    assert!(ByteLimit::bits_per_second(0, 1500).is_unlimited());
    assert!(!ByteLimit::bits_per_second(1, 1).is_unlimited());
    assert_eq!(ByteLimit::bytes_per_second(125_000, 9000), ByteLimit::bits_per_second(1_000_000, 9000));
    let l = ByteLimit::bits_per_second(20_000_000, 250_000);
    assert_eq!((l.bits_per_sec(), l.burst_bytes()), (20_000_000, 250_000));
    // 250 kB at 2.5 MB/s: 100 ms of tolerance.
    assert_eq!(l.tau_ns, 100 * MS);
    // A burst below one clock step's worth is raised to it: 10 ms at 1 Mbit/s is 1250 octets.
    let small = ByteLimit::bits_per_second(1_000_000, 100);
    assert_eq!((small.tau_ns, small.burst_bytes()), (CLOCK_STEP_NS, 1250));
}

/// A packet costs its length at the rate: 1400 octets at 1 KiB/ms is 1.367 ms; lengths
/// beyond an IP packet's are charged as 65535, and no interval overflows the product.
#[test]
fn a_packet_costs_its_length() {
    let l = ByteLimit::bits_per_second(8_192_000, 0);
    assert_eq!(l.cost_ns(1400), 1_367_188, "1,367,187.5 ns, rounded up");
    assert_eq!(l.cost_ns(1024), 1_000_000);
    assert_eq!(l.cost_ns(0), 0);
    // Out-of-range inputs are masked, never overflow (a T-PDU is never longer than 65,535).
    let slowest = ByteLimit { unit_ns: u64::MAX, tau_ns: 0 };
    assert_eq!(slowest.cost_ns(u64::MAX), (MAX_CHARGED_LEN * ByteLimit::MAX_UNIT_NS).div_ceil(1 << 16));
    // Rounded up: at 10 Gbit/s 64 octets are 51.2 ns, charged 52 (never faster than the rate).
    assert_eq!(ByteLimit::bits_per_second(10_000_000_000, 0).cost_ns(64), 52);
}

/// At one instant a byte limit passes its burst plus the packet that crosses it (the backlog
/// before a packet is what is judged), then nothing until the rate pays it back.
#[test]
fn byte_burst_then_rate() {
    // 8 Mbit/s = 1 MB/s: a 1000-octet packet costs exactly 1 ms; burst 100 kB = 100 ms.
    let l = ByteLimit::bytes_per_second(1_000_000, 100_000);
    assert_eq!((l.cost_ns(1000), l.tau_ns), (MS, 100 * MS));
    let mut tat = 0;
    let now = 1_000_000_000;
    let admitted = (0..500).filter(|_| admit_bytes(&mut tat, now, &l, 1000)).count();
    assert_eq!(admitted, 101, "100 kB of burst and the packet that crosses it");
    // 10 ms later, 10 kB more (ten packets' worth), not eleven.
    let later = (0..50).filter(|_| admit_bytes(&mut tat, now + 10 * MS, &l, 1000)).count();
    assert_eq!(later, 10);
    // A packet larger than the whole burst still passes once the backlog is paid.
    let mut tat = 0;
    let small = ByteLimit::bytes_per_second(1_000_000, 1);
    assert!(admit_bytes(&mut tat, now, &small, 60_000));
    assert!(!admit_bytes(&mut tat, now, &small, 60_000));
    // 60 ms of backlog; the tolerance is one clock step (10 ms): 11 ms behind is refused,
    // 10 ms behind passes.
    assert!(!admit_bytes(&mut tat, now + 49 * MS, &small, 1));
    assert!(admit_bytes(&mut tat, now + 50 * MS, &small, 60_000));
    // No byte limit: everything, no state.
    let mut tat = 7;
    assert!((0..1000).all(|_| admit_bytes(&mut tat, now, &ByteLimit::UNLIMITED, 9000)));
    assert_eq!(tat, 7);
}

/// Two limits: a packet passes only if both allow it, and a packet one of them refuses
/// charges neither.
#[test]
fn both_limits_must_allow_and_a_refusal_charges_neither() {
    let now = 1_000_000_000;
    // 1000 pps with a burst of 100 packets; 1 MB/s with a burst of 20 kB.
    let pkts = Limit::per_second(1000, 100);
    let bytes = ByteLimit::bytes_per_second(1_000_000, 20_000);
    let (mut tat, mut tat_b) = (0, 0);
    // Large packets at one instant: the byte limit ends the burst (21 x 1000 octets), long
    // before the packet limit would.
    let r: Vec<Admit> = (0..30).map(|_| admit_both(&mut tat, &mut tat_b, now, &pkts, &bytes, 1000, |v| v)).collect();
    assert_eq!(r.iter().filter(|a| **a == Admit::Yes).count(), 21);
    assert!(r[21..].iter().all(|a| *a == Admit::OverBytes), "{r:?}");
    assert_eq!(tat, now + 21 * MS, "only the 21 passed packets were charged to the packet limit");
    // Small packets in the same instant still fit neither: the byte backlog is over the burst.
    assert_eq!(admit_both(&mut tat, &mut tat_b, now, &pkts, &bytes, 40, |v| v), Admit::OverBytes);
    // Small packets at a rate both allow (500 pps x 100 octets = 50 kB/s): all pass.
    let (mut tat, mut tat_b) = (0, 0);
    for k in 0..2000 {
        assert_eq!(
            admit_both(&mut tat, &mut tat_b, now + k * 2 * MS, &pkts, &bytes, 100, |v| v),
            Admit::Yes,
            "packet {k}"
        );
    }
    // The packet limit refuses first: the byte state is not charged.
    let tight = Limit::per_second(10, 1);
    let (mut tat, mut tat_b) = (0, 0);
    assert_eq!(admit_both(&mut tat, &mut tat_b, now, &tight, &bytes, 100, |v| v), Admit::Yes);
    let b = tat_b;
    let over: Vec<Admit> = (0..5).map(|_| admit_both(&mut tat, &mut tat_b, now, &tight, &bytes, 100, |v| v)).collect();
    assert!(over.iter().all(|a| *a == Admit::OverPackets), "{over:?}");
    assert_eq!(tat_b, b, "refused by the packet limit: no bytes charged");
    // No packet limit, a byte limit: the bytes alone decide.
    let (mut tat, mut tat_b) = (0, 0);
    let n = (0..100)
        .filter(|_| admit_both(&mut tat, &mut tat_b, now, &Limit::UNLIMITED, &bytes, 1000, |v| v) == Admit::Yes);
    assert_eq!(n.count(), 21);
    assert_eq!(tat, now, "an unlimited packet limit never runs ahead of now");
}

proptest! {
    /// With no byte limit, [`admit_both`] is [`admit`]: the same answers and the same packet
    /// state, and the byte state never runs ahead of `now` (what keeps old configurations as
    /// they were), from any start not ahead of the first packet; rates of 0 (unlimited) too.
    #[test]
    fn no_byte_limit_is_the_packet_limit_alone(rate in prop::sample::select(vec![0u64, 1, 3, 10, 999, 20_000, 99_999]), burst in 1u64..1000, tb0 in 0u64..1_000_000_000,
                                               steps in proptest::collection::vec((0u64..5_000_000, 0u64..70_000), 1..500)) {
        let l = Limit::per_second(rate, burst);
        let (mut a, mut b, mut tb) = (0u64, 0u64, tb0);
        let mut now = 1_000_000_000u64;
        for (gap, len) in steps {
            now += gap;
            let one = admit(&mut a, now, &l);
            let two = admit_both(&mut b, &mut tb, now, &l, &ByteLimit::UNLIMITED, len, |v| v);
            prop_assert_eq!(two, if one { Admit::Yes } else { Admit::OverPackets });
            if l.interval_ns == 0 {
                // [`admit`] keeps no state for an unlimited limit; this one keeps `now`.
                prop_assert!(b <= now);
            } else {
                prop_assert_eq!(a, b);
            }
            prop_assert!(tb <= now);
        }
    }

    /// Over any window, the octets a byte limit admits are at most its rate over the window,
    /// plus its burst (at least one clock step's worth), plus one packet: the GCRA bound
    /// with a cost per octet.
    #[test]
    fn bytes_never_exceed_rate_plus_burst(bps in 8_000u64..20_000_000_000, burst in 0u64..1_000_000,
                                          steps in proptest::collection::vec((0u64..2_000_000, 1u64..9_000), 1..2000)) {
        let l = ByteLimit::bits_per_second(bps, burst);
        let mut tat = 0;
        let start = 1_000_000_000u64;
        let mut now = start;
        let mut admitted = 0u128;
        let mut max_len = 0u128;
        for (gap, len) in steps {
            now += gap;
            if admit_bytes(&mut tat, now, &l, len) {
                admitted += u128::from(len);
                max_len = max_len.max(u128::from(len));
            }
        }
        // Octets the interval pays for in the window and tolerance (the interval as rounded).
        let per_ns = |ns: u64| u128::from(ns) * 65_536 / u128::from(l.unit_ns) + 1;
        prop_assert!(l.tau_ns >= CLOCK_STEP_NS);
        let bound = per_ns(now - start) + per_ns(l.tau_ns) + max_len;
        prop_assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
    }

    /// The byte form of [`stepped_clock_keeps_the_rate`]: with a clock in ticks and demand
    /// above the rate, the octets admitted over any run of ticks are what the packets' costs
    /// pay for, within one burst and one packet, whatever the packet size; and those costs
    /// are the configured bit rate's to within 1 ns per packet (rounded up, never faster)
    /// and 0.001% of the interval.
    #[test]
    fn stepped_clock_keeps_the_byte_rate(bps in 8_000u64..10_000_000_000, burst in 0u64..200_000,
                                         len in prop::sample::select(vec![64u64, 512, 1400, 9000]),
                                         tick_ms in prop::sample::select(vec![1u64, 4, 10]),
                                         ticks in 1u64..300) {
        let l = ByteLimit::bits_per_second(bps, burst);
        let nominal = 524_288e9 / bps as f64;
        prop_assert!((l.unit_ns as f64 - nominal).abs() / nominal < 0.00001,
                     "interval {} for {bps} bit/s", l.unit_ns);
        let cost = l.cost_ns(len);
        let nominal_cost = len as f64 * 8e9 / bps as f64;
        prop_assert!(cost as f64 >= nominal_cost * (1.0 - 0.00001) && (cost as f64) < nominal_cost * 1.00001 + 1.0,
                     "{len} octets cost {cost} ns at {bps} bit/s, nominally {nominal_cost}");
        let step = tick_ms * MS;
        // Demand: twice the rate, all of a tick's packets at the tick's one `now`.
        let per_tick = (2 * step / cost).max(2);
        prop_assume!(per_tick < 20_000);
        let mut tat = 0;
        let start = 1_000_000_000u64;
        let mut admitted = 0u64;
        for k in 0..ticks {
            let now = start + k * step;
            admitted += (0..per_tick).filter(|_| admit_bytes(&mut tat, now, &l, len)).count() as u64;
        }
        let expected = ticks * step / cost;
        let slack = l.tau_ns / cost + 2;
        prop_assert!(admitted <= expected + slack, "admitted {admitted} > {expected} + {slack} packets");
        prop_assert!(admitted + slack >= expected, "admitted {admitted} starves the rate ({expected}, slack {slack})");
    }

    /// Packets spaced at exactly their cost are never refused, at any rate and size.
    #[test]
    fn conforming_bytes_always_pass(bps in 8_000u64..10_000_000_000, len in 1u64..9_000, n in 1usize..500) {
        let l = ByteLimit::bits_per_second(bps, 0);
        let mut tat = 0;
        let mut now = 1_000u64;
        for _ in 0..n {
            prop_assert!(admit_bytes(&mut tat, now, &l, len));
            now += l.cost_ns(len);
        }
    }

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

/// On one GCRA state, the half-burst limit takes the first half of the burst and leaves the rest
/// to the whole limit; once the whole limit has spent it, the half-burst one waits for the
/// bucket to refill past half.
#[test]
fn a_half_burst_limit_leaves_half_the_burst_to_the_whole_limit() {
    let whole = Limit::per_second(10, 20); // 100 ms a token, 2 s of burst
    let half = whole.half_burst();
    let now = 5_000_000_000;
    let mut tat = 0;
    let repeats = (0..40).filter(|_| admit(&mut tat, now, &half)).count();
    assert_eq!(repeats, 10, "half of the burst (19 intervals / 2 = 9.5, inclusive: 10)");
    let onsets = (0..40).filter(|_| admit(&mut tat, now, &whole)).count();
    assert_eq!(onsets, 10, "the other half is the whole limit's");
    // One interval later the whole limit has a token, the half-burst one none (the bucket is
    // empty, not half full) until half the burst has come back.
    assert!(!admit(&mut tat, now + 100_000_000, &half));
    assert!(admit(&mut tat, now + 100_000_000, &whole));
    assert!(!admit(&mut tat, now + 1_000_000_000, &half), "9 tokens back: not yet more than half");
    assert!(admit(&mut tat, now + 1_200_000_000, &half));
}
