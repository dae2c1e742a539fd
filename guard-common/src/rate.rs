//! GCRA (the generic cell rate algorithm, ITU-T I.371): a token bucket that needs one `u64` of
//! state, the theoretical arrival time (TAT), and no floating point, so the same code runs in XDP.

use crate::abi::{ByteLimit, Limit};

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

/// The octets a [`ByteLimit`]'s interval is the time of (64 KiB): per octet, a whole number of
/// nanoseconds would be 8 ns at 1 Gbit/s and 0.8 at 10 (unusable); per 64 KiB, rates up to
/// 10 Gbit/s keep five significant digits (52,428.8 ns, stored as 52,429: 0.0004% slow), and a
/// packet's cost is a multiply and a shift, no division on the data path.
pub const BYTE_LIMIT_UNIT: u64 = 1 << 16;
/// The longest packet a byte limit charges: a T-PDU's length comes from the 16-bit GTP-U Length
/// field, so it is never longer. [`ByteLimit::cost_ns`] masks the length and the interval to
/// their bounds (a mask, not a `min`: no branch for the verifier to explore), which keeps the
/// product `len * unit_ns` below 2^63 whatever it is given, so the cost needs no 128-bit
/// multiply (the BPF backend has no library call for one).
pub const MAX_CHARGED_LEN: u64 = 0xffff;

impl ByteLimit {
    /// No byte limit: only the packet limit beside it applies.
    pub const UNLIMITED: ByteLimit = ByteLimit { unit_ns: 0, tau_ns: 0 };
    /// The longest interval a byte limit holds (2^47 - 1 ns per 64 KiB, about 3.7 bit/s): slower
    /// rates are held at it, so `len * unit_ns` fits 63 bits.
    pub const MAX_UNIT_NS: u64 = (1 << 47) - 1;
    /// The longest burst tolerance a byte limit holds (see [`byte_step`]).
    pub const MAX_TAU_NS: u64 = 1 << 62;

    /// A limit of `bits_per_sec` bits per second (SI prefixes: 1 Mbit/s = 10^6 bit/s, as 3GPP's
    /// bit rates, TS 29.571 §5.5.2 `BitRate`), with bursts of up to `burst_bytes` octets at
    /// once. `bits_per_sec == 0` means no byte limit. The interval is rounded to the nearest
    /// nanosecond per 64 KiB ([`BYTE_LIMIT_UNIT`]), so the long-run rate is exact to 0.001% up
    /// to 10 Gbit/s; rates below ~4 bit/s are held at [`Self::MAX_UNIT_NS`]. The burst tolerance
    /// is at least one clock step ([`CLOCK_STEP_NS`], what [`Limit::effective_tau_ns`] gives a
    /// packet limit at each packet), set here once so the data plane compares without a
    /// `max`: a clock that moves in ticks does not starve the rate.
    pub const fn bits_per_second(bits_per_sec: u64, burst_bytes: u64) -> ByteLimit {
        if bits_per_sec == 0 {
            return ByteLimit::UNLIMITED;
        }
        // 64 KiB = 524,288 bits: their time at the rate, rounded to the nearest ns, at least 1.
        let num = 8 * BYTE_LIMIT_UNIT as u128 * NS_PER_SEC as u128;
        let rate = bits_per_sec as u128;
        let interval = (num + rate / 2) / rate;
        let interval = if interval == 0 {
            1
        } else if interval > ByteLimit::MAX_UNIT_NS as u128 {
            ByteLimit::MAX_UNIT_NS
        } else {
            interval as u64
        };
        // At least one clock step, at most 2^62 ns (146 years: [`byte_step`] needs differences
        // of times and tolerances to fit an i64).
        let tau = ByteLimit::cost_of(interval, burst_bytes);
        let tau = if tau < CLOCK_STEP_NS {
            CLOCK_STEP_NS
        } else if tau > ByteLimit::MAX_TAU_NS {
            ByteLimit::MAX_TAU_NS
        } else {
            tau
        };
        ByteLimit { unit_ns: interval, tau_ns: tau }
    }

    /// [`Self::bits_per_second`] of a rate in octets per second.
    pub const fn bytes_per_second(bytes_per_sec: u64, burst_bytes: u64) -> ByteLimit {
        ByteLimit::bits_per_second(bytes_per_sec.saturating_mul(8), burst_bytes)
    }

    /// The time `bytes` octets take at the rate of `unit_ns`, in ns (saturating).
    const fn cost_of(unit_ns: u64, bytes: u64) -> u64 {
        let c = (unit_ns as u128 * bytes as u128) / BYTE_LIMIT_UNIT as u128;
        if c > u64::MAX as u128 {
            u64::MAX
        } else {
            c as u64
        }
    }

    /// What one packet of `len` octets costs against this limit, in ns: its share of the
    /// interval of 64 KiB. `len` is capped at [`MAX_CHARGED_LEN`] and the interval at
    /// [`Self::MAX_UNIT_NS`], so the product fits 63 bits: a plain multiply and a shift, no
    /// division, on every packet a byte limit sees.
    #[inline(always)]
    pub const fn cost_ns(&self, len: u64) -> u64 {
        let product = (len & MAX_CHARGED_LEN) * (self.unit_ns & Self::MAX_UNIT_NS);
        // Rounded up to a whole ns: a packet never costs less than its octets, so the rate is
        // never exceeded; it costs at most 1 ns more, under 0.1% of any packet costing 1 µs or
        // more (64 octets up to 512 Mbit/s, 1400 up to 11 Gbit/s).
        (product + (BYTE_LIMIT_UNIT - 1)) >> BYTE_LIMIT_UNIT.trailing_zeros()
    }

    /// The sustained rate in bits per second (0 when unlimited), as set (to the rounding of the
    /// interval).
    pub const fn bits_per_sec(&self) -> u64 {
        if self.unit_ns == 0 {
            return 0;
        }
        let num = 8 * BYTE_LIMIT_UNIT as u128 * NS_PER_SEC as u128;
        let i = self.unit_ns as u128;
        ((num + i / 2) / i) as u64
    }

    /// The burst this limit allows at once, in octets (0 when unlimited; at least one clock
    /// step's worth): besides it, the packet that crosses it passes too (see [`admit_bytes`]).
    pub const fn burst_bytes(&self) -> u64 {
        if self.unit_ns == 0 {
            return 0;
        }
        ((self.tau_ns as u128 * BYTE_LIMIT_UNIT as u128) / self.unit_ns as u128) as u64
    }

    pub const fn is_unlimited(&self) -> bool {
        self.unit_ns == 0
    }
}

/// [`admit`] with a byte rate: one packet of `len` octets at `now` against `limit`, updating
/// `tat`. The cost of a packet is its length (GCRA with a variable cost: ITU-T I.371's
/// algorithm, the increment being the length over the rate). A packet conforms while the backlog
/// before it is within the burst tolerance, so a packet larger than the burst still passes when
/// the limit has credit (a bucket that refused it outright would never pass it), and the most a
/// limit passes at one instant is its burst plus that one packet. Over time: the rate exactly,
/// plus the burst. `len` is the T-PDU's (docs/dataplane.md, "Byte limits").
#[inline(always)]
pub fn admit_bytes(tat: &mut u64, now: u64, limit: &ByteLimit, len: u64) -> bool {
    if limit.unit_ns == 0 {
        return true;
    }
    let (ok, t) = byte_step(*tat, now, limit, len, |v| v);
    if ok != 0 {
        *tat = t;
    }
    ok != 0
}

/// What a two-limit stage ([`admit_both`]) says about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Both limits allow it; both were charged.
    Yes,
    /// The packet limit refuses it (whatever the byte limit says); nothing was charged.
    OverPackets,
    /// The packet limit allows it, the byte limit refuses it; nothing was charged.
    OverBytes,
}

/// A packet of `len` octets at `now` against a packet limit and a byte limit, each with its own
/// GCRA state (`tat`, `tat_bytes`): it passes only if both allow it, and only then are both
/// charged, so a packet one limit refuses spends nothing of the other (a flood of large packets
/// refused by the byte limit does not use up the packet budget of the small ones).
///
/// Both sides are GCRA steps without a conditional jump ([`gcra_step`]), joined by masks, and
/// the answer is the one branch: the verifier walks every branch of the data plane's policy for
/// every path that reaches it, and the program is near its limit of a million instructions, so
/// a second limit must not add branches. An unlimited side (interval 0) costs 0 ns, so its state
/// never runs ahead of `now` and every packet conforms on that side, provided the state did not
/// start ahead of `now` by more than the tolerance (a fresh record's 0: userspace writes a
/// stage's states as 0, and the data plane re-seeds its cached copy when a limit changes): no
/// byte limit is the packet limit alone, exactly ([`admit`]'s answers, tested). `opaque` is
/// the identity on the host and the data plane's register barrier in the kernel.
#[inline(always)]
pub fn admit_both(
    tat: &mut u64,
    tat_bytes: &mut u64,
    now: u64,
    limit: &Limit,
    bytes: &ByteLimit,
    len: u64,
    opaque: impl Fn(u64) -> u64,
) -> Admit {
    // The packet side's tolerance is at least one clock step ([`Limit::effective_tau_ns`]),
    // as a mask.
    let short = opaque(((limit.tau_ns.wrapping_sub(CLOCK_STEP_NS) as i64) >> 63) as u64);
    let tau = (limit.tau_ns & !short) | (CLOCK_STEP_NS & short);
    let (ok_p, p) = gcra_step(*tat, now, limit.interval_ns, tau, &opaque);
    let (ok_b, b) = gcra_step(*tat_bytes, now, bytes.cost_ns(len), bytes.tau_ns, &opaque);
    let ok = ok_p & ok_b;
    // Charged only if both conform: all-ones `ok` takes the new states.
    *tat = (p & ok) | (*tat & !ok);
    *tat_bytes = (b & ok) | (*tat_bytes & !ok);
    if ok != 0 {
        Admit::Yes
    } else if ok_p == 0 {
        Admit::OverPackets
    } else {
        Admit::OverBytes
    }
}

/// One GCRA step without a conditional jump: `(ok, tat')`, `ok` all ones when an event costing
/// `cost` ns at `now` conforms from state `tat` (the backlog ahead of `now` is within `tau`),
/// zero when not; `tat'` the state after charging it, which the caller keeps only when `ok`.
/// The same arithmetic as [`admit`], as sign masks: times (ns since boot) and tolerances are
/// below 2^62, so differences fit an `i64`. `opaque` must return its argument; the data plane
/// passes a register barrier so that LLVM cannot turn the masks back into compares and
/// branches (`smax` and `select`, which the BPF backend emits as conditional jumps).
#[inline(always)]
pub fn gcra_step(tat: u64, now: u64, cost: u64, tau: u64, opaque: impl Fn(u64) -> u64) -> (u64, u64) {
    let d = tat.wrapping_sub(now);
    // All ones when `tat` is behind `now`: the backlog is then 0.
    let behind = opaque(((d as i64) >> 63) as u64);
    let backlog = d & !behind;
    let ok = !opaque(((tau.wrapping_sub(backlog) as i64) >> 63) as u64);
    (ok, now.wrapping_add(backlog).wrapping_add(cost))
}

/// [`gcra_step`] of a byte limit: the cost is the packet's length at the rate.
#[inline(always)]
pub fn byte_step(tat: u64, now: u64, limit: &ByteLimit, len: u64, opaque: impl Fn(u64) -> u64) -> (u64, u64) {
    gcra_step(tat, now, limit.cost_ns(len), limit.tau_ns, opaque)
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
        let r: Vec<Admit> =
            (0..30).map(|_| admit_both(&mut tat, &mut tat_b, now, &pkts, &bytes, 1000, |v| v)).collect();
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
        let over: Vec<Admit> =
            (0..5).map(|_| admit_both(&mut tat, &mut tat_b, now, &tight, &bytes, 100, |v| v)).collect();
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
}
