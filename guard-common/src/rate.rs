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

    /// The same rate with half the burst tolerance. Charged to the same GCRA state as the whole
    /// limit, it admits only while more than half the burst is unspent: the rest is kept for
    /// what is charged to the whole limit ([`crate::policy::event_budget`]).
    pub const fn half_burst(&self) -> Limit {
        Limit { interval_ns: self.interval_ns, tau_ns: self.tau_ns / 2 }
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
    let (ok, ok_p) = both_step(tat, tat_bytes, now, limit, bytes, len, opaque);
    if ok != 0 {
        Admit::Yes
    } else if ok_p == 0 {
        Admit::OverPackets
    } else {
        Admit::OverBytes
    }
}

/// [`admit_both`] when only the answer matters (the last-resort caps, whose one drop verdict
/// does not say which limit refused): `true` when both limits allow the packet, which then
/// charges both. The same masks, and no branch but the caller's on the answer.
#[inline(always)]
pub fn admits_both(
    tat: &mut u64,
    tat_bytes: &mut u64,
    now: u64,
    limit: &Limit,
    bytes: &ByteLimit,
    len: u64,
    opaque: impl Fn(u64) -> u64,
) -> bool {
    both_step(tat, tat_bytes, now, limit, bytes, len, opaque).0 != 0
}

/// The two-limit step of [`admit_both`] and [`admits_both`]: `(ok, ok_packets)` as masks, the
/// states charged when `ok`.
#[inline(always)]
fn both_step(
    tat: &mut u64,
    tat_bytes: &mut u64,
    now: u64,
    limit: &Limit,
    bytes: &ByteLimit,
    len: u64,
    opaque: impl Fn(u64) -> u64,
) -> (u64, u64) {
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
    (ok, ok_p)
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
mod tests;
