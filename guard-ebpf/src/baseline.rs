//! Reference programs for `cargo xtask bench` (DESIGN §5 "Per-packet cost"): per-packet cost is
//! always reported as a ratio against programs measured in the same run.
//!
//! - `xdp_baseline`: returns `XDP_PASS` and nothing else — the floor of BPF_PROG_TEST_RUN and of
//!   an attached XDP program.
//! - `xdp_floor`: the least any per-device guard must do: parse to the TEID (Ethernet, IPv4 or
//!   IPv6, UDP to the GTP-U port, the TEID), one hash lookup keyed on it, two atomic counter adds.
//! - `xdp_floor_lru`: the same on an LRU hash (the guard's device map is one).
//! - `xdp_floor_new`: the least any per-device guard must do on a new device's first packet: the
//!   same parse, a miss, the insert of a minimal record (two u64 counters) into an LRU hash the
//!   bench sizes and fills like the guard's device map (so the insert evicts, as the guard's
//!   does), then the two atomic adds on the record.
//! - `xdp_parse_only`: runs only the shared N3 parser (`guard_common::parse::n3`) on the frame
//!   and returns `XDP_PASS`, so the bench can split `guard_n3`'s cost into parse and policy.
//! - `xdp_op_*`: one kind of operation eight times over (a clock read, fine or coarse, a hash
//!   hit, a hash miss, an LRU hit — on 20-byte keys, like the guard's —, a per-CPU array slot
//!   update, an atomic add, a BPF-to-BPF call, a `bpf_loop` iteration), so the bench can price
//!   each operation the guard performs by difference with `xdp_baseline` (or, for the atomic
//!   add, `xdp_op_hash1`) instead of guessing.
//!
//! Neither is loaded by the guard itself; they share the object with `guard_n3`. Their own maps
//! are unpinned and created with a handful of entries: the bench raises the capacities it needs.

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, generated::bpf_loop},
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use guard_common::parse::{n3, Packet};

use crate::{counters::add, cursor::XdpPacket, maps::N3_PKT};

/// The GTP-U port (TS 29.281 §4.4.2); `guard_n3` reads it from `N3_CONFIG`.
const GTPU_PORT: u16 = 2152;

/// TEID → [packets, bytes] of `xdp_floor` and the hash `xdp_op_*` programs.
#[map(name = "BENCH_FLOOR")]
static BENCH_FLOOR: HashMap<u32, [u64; 2]> = HashMap::with_max_entries(64, 0);

/// TEID → [packets, bytes] of `xdp_floor_lru` and `xdp_op_lru`.
#[map(name = "BENCH_FLOOR_LRU")]
static BENCH_FLOOR_LRU: LruHashMap<u32, [u64; 2]> = LruHashMap::with_max_entries(64, 0);

/// TEID → [packets, bytes] of `xdp_floor_new`: the bench gives it the capacity of the guard's
/// `N3_DEVICES` in the same table and fills it first, so every timed first packet evicts.
#[map(name = "BENCH_FLOOR_NEW")]
static BENCH_FLOOR_NEW: LruHashMap<u32, [u64; 2]> = LruHashMap::with_max_entries(64, 0);

/// 20-byte keys, the size of the guard's `DeviceKey` and `CellKey` (the hash function's cost
/// grows with the key): the hash and miss probes use this map.
#[map(name = "BENCH_HASH20")]
static BENCH_HASH20: HashMap<[u32; 5], [u64; 2]> = HashMap::with_max_entries(64, 0);

/// As `BENCH_HASH20`, an LRU hash (as `N3_DEVICES` and `N3_CELLS`).
#[map(name = "BENCH_LRU20")]
static BENCH_LRU20: LruHashMap<[u32; 5], [u64; 2]> = LruHashMap::with_max_entries(64, 0);

/// 8-byte keys, the size of a compact device key (a local-address index and the TEID, or a UE's
/// IPv4 address or IPv6 /64 prefix): what hashing and comparing a key would cost at that size
/// (docs/dataplane.md, "A compact device key").
#[map(name = "BENCH_HASH8")]
static BENCH_HASH8: HashMap<u64, [u64; 2]> = HashMap::with_max_entries(64, 0);

/// As `BENCH_HASH8`, an LRU hash.
#[map(name = "BENCH_LRU8")]
static BENCH_LRU8: LruHashMap<u64, [u64; 2]> = LruHashMap::with_max_entries(64, 0);

/// 12-byte keys, a compact device key with its kind beside it (`{ kind: u32, id: u64 }`): `jhash`
/// takes up to 12 bytes in its final round alone.
#[map(name = "BENCH_HASH12")]
static BENCH_HASH12: HashMap<[u32; 3], [u64; 2]> = HashMap::with_max_entries(64, 0);

/// As `BENCH_HASH12`, an LRU hash.
#[map(name = "BENCH_LRU12")]
static BENCH_LRU12: LruHashMap<[u32; 3], [u64; 2]> = LruHashMap::with_max_entries(64, 0);

/// One per-CPU slot for `xdp_op_percpu` (as the guard's verdict counters).
#[map(name = "BENCH_PCPU")]
static BENCH_PCPU: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// The key the `xdp_op_*` programs look up; the bench inserts it into both 20-byte maps.
const OP_KEY: [u32; 5] = [1, 0, 0, 0, 0];
/// The key `xdp_op_hash8` and `xdp_op_lru8` look up; the bench inserts it into both 8-byte maps.
const OP_KEY8: u64 = 1;
/// The key `xdp_op_hash12` and `xdp_op_lru12` look up.
const OP_KEY12: [u32; 3] = [1, 0, 0];
/// A key the bench never inserts (`xdp_op_miss`).
const MISS_KEY: [u32; 5] = [0xffff_fff0, 0, 0, 0, 0];

#[xdp]
pub fn xdp_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_parse_only(ctx: XdpContext) -> u32 {
    let Some(pp) = N3_PKT.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let p = unsafe { &mut (*pp).pkt };
    // Opaque context pointer, as in `guard_n3`'s `parse_frame`: the verifier forbids arithmetic
    // on a `pkt_end` it did not load itself.
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let r = n3::parse_into_fast(&XdpPacket::new(&ctx), GTPU_PORT, p);
    // Keep the parse from being optimised away.
    core::hint::black_box(&r);
    xdp_action::XDP_PASS
}

/// The TEID of a GTP-U frame, parsed the shortest way that is still correct for untagged IPv4
/// (any IHL) and IPv6 without extension headers. `None` for anything else.
#[inline(always)]
fn floor_teid(ctx: &XdpContext) -> Option<u32> {
    let pkt = XdpPacket::new(ctx);
    let ethertype: [u8; 2] = pkt.read(12)?;
    let (l4, proto) = match u16::from_be_bytes(ethertype) {
        0x0800 => {
            let vihl: [u8; 2] = pkt.read(14)?;
            let ihl = usize::from(vihl[0] & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            // TTL, protocol.
            let p: [u8; 2] = pkt.read(14 + 8)?;
            (14 + ihl, p[1])
        }
        0x86dd => {
            // Next header, hop limit.
            let p: [u8; 2] = pkt.read(14 + 6)?;
            (14 + 40, p[0])
        }
        _ => return None,
    };
    if proto != 17 {
        return None;
    }
    let ports: [u8; 4] = pkt.read(l4)?;
    if u16::from_be_bytes([ports[2], ports[3]]) != GTPU_PORT {
        return None;
    }
    // GTP-U: flags, type, length, then the TEID.
    let teid: [u8; 4] = pkt.read(l4 + 8 + 4)?;
    Some(u32::from_be_bytes(teid))
}

#[xdp]
pub fn xdp_floor(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    if let Some(teid) = floor_teid(&ctx) {
        if let Some(v) = BENCH_FLOOR.get_ptr_mut(&teid) {
            // SAFETY: a live map value, 8-byte aligned u64 fields; updated atomically.
            unsafe {
                add(&mut (*v)[0], 1);
                add(&mut (*v)[1], len);
            }
        }
    }
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_floor_lru(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    if let Some(teid) = floor_teid(&ctx) {
        if let Some(v) = BENCH_FLOOR_LRU.get_ptr_mut(&teid) {
            // SAFETY: as in `xdp_floor`.
            unsafe {
                add(&mut (*v)[0], 1);
                add(&mut (*v)[1], len);
            }
        }
    }
    xdp_action::XDP_PASS
}

/// A new device's first packet at its least: a miss, an insert (`BPF_NOEXIST`: a device another
/// CPU inserted meanwhile keeps its counts), the record looked up again (`bpf_map_update_elem`
/// returns no pointer) and counted with the two atomic adds of `xdp_floor`.
#[xdp]
pub fn xdp_floor_new(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    if let Some(teid) = floor_teid(&ctx) {
        let mut v = BENCH_FLOOR_NEW.get_ptr_mut(&teid);
        if v.is_none() {
            let _ = BENCH_FLOOR_NEW.insert(&teid, &[0u64; 2], u64::from(BPF_NOEXIST));
            v = BENCH_FLOOR_NEW.get_ptr_mut(&teid);
        }
        if let Some(v) = v {
            // SAFETY: as in `xdp_floor`.
            unsafe {
                add(&mut (*v)[0], 1);
                add(&mut (*v)[1], len);
            }
        }
    }
    xdp_action::XDP_PASS
}

/// Repeat a statement eight times (straight-line code: the bench divides by 8).
macro_rules! eight {
    ($($t:tt)*) => {
        { $($t)* }
        { $($t)* }
        { $($t)* }
        { $($t)* }
        { $($t)* }
        { $($t)* }
        { $($t)* }
        { $($t)* }
    };
}

#[xdp]
pub fn xdp_op_ktime(_ctx: XdpContext) -> u32 {
    let mut acc = 0u64;
    // SAFETY: a helper without arguments.
    eight!(acc = acc.wrapping_add(unsafe { bpf_ktime_get_ns() }));
    core::hint::black_box(acc);
    xdp_action::XDP_PASS
}

/// The clock `guard_n3` reads: CLOCK_MONOTONIC as of the last timekeeping update (one tick), no
/// clocksource read.
#[xdp]
pub fn xdp_op_ktime_coarse(_ctx: XdpContext) -> u32 {
    let mut acc = 0u64;
    // SAFETY: a helper without arguments.
    eight!(acc = acc.wrapping_add(unsafe { bpf_ktime_get_coarse_ns() }));
    core::hint::black_box(acc);
    xdp_action::XDP_PASS
}

/// `bpf_jiffies64`: the verifier inlines it on 64-bit JITs into one load of `jiffies_64`, so it
/// costs no call (and no return thunk).
#[xdp]
pub fn xdp_op_jiffies(_ctx: XdpContext) -> u32 {
    let mut acc = 0u64;
    // SAFETY: a helper without arguments.
    eight!(acc = acc.wrapping_add(unsafe { bpf_jiffies64() }));
    core::hint::black_box(acc);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_hash(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_HASH20.get_ptr_mut(&core::hint::black_box(OP_KEY)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_miss(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_HASH20.get_ptr_mut(&core::hint::black_box(MISS_KEY)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_lru(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_LRU20.get_ptr_mut(&core::hint::black_box(OP_KEY)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_hash8(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_HASH8.get_ptr_mut(&core::hint::black_box(OP_KEY8)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_lru8(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_LRU8.get_ptr_mut(&core::hint::black_box(OP_KEY8)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_hash12(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_HASH12.get_ptr_mut(&core::hint::black_box(OP_KEY12)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_lru12(_ctx: XdpContext) -> u32 {
    let mut hits = 0u32;
    eight!(hits += u32::from(BENCH_LRU12.get_ptr_mut(&core::hint::black_box(OP_KEY12)).is_some()));
    core::hint::black_box(hits);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xdp_op_percpu(_ctx: XdpContext) -> u32 {
    eight!(if let Some(c) = BENCH_PCPU.get_ptr_mut(core::hint::black_box(0)) {
        // SAFETY: per-CPU slot, only this CPU touches it while this program runs.
        unsafe {
            (*c)[0] += 1;
            (*c)[1] += 64;
        }
    });
    xdp_action::XDP_PASS
}

/// One hash lookup: the control of `xdp_op_atomic`.
#[xdp]
pub fn xdp_op_hash1(_ctx: XdpContext) -> u32 {
    let hit = BENCH_HASH20.get_ptr_mut(&core::hint::black_box(OP_KEY)).is_some();
    core::hint::black_box(hit);
    xdp_action::XDP_PASS
}

/// One hash lookup, then eight atomic adds on the value: (this − `xdp_op_hash1`) / 8 is the
/// price of one atomic add.
#[xdp]
pub fn xdp_op_atomic(_ctx: XdpContext) -> u32 {
    if let Some(v) = BENCH_HASH20.get_ptr_mut(&core::hint::black_box(OP_KEY)) {
        // SAFETY: a live map value, 8-byte aligned; updated atomically.
        eight!(unsafe { add(&mut (*v)[0], 1) });
    }
    xdp_action::XDP_PASS
}

/// A BPF-to-BPF call's callee for `xdp_op_call`: a separate subprogram (never inlined), whose
/// result depends on its argument so that the calls are not folded.
#[inline(never)]
fn op_callee(x: u64) -> u64 {
    core::hint::black_box(x).wrapping_add(1)
}

/// Eight BPF-to-BPF calls (`guard_n2` walks its chunks and IEs one subprogram call per item): the
/// price of a call and its return, which a CPU whose returns go through a thunk (SRSO's "Safe
/// RET", retpolines) pays many times over.
#[xdp]
pub fn xdp_op_call(_ctx: XdpContext) -> u32 {
    let mut acc = 0u64;
    eight!(acc = op_callee(acc));
    core::hint::black_box(acc);
    xdp_action::XDP_PASS
}

/// `xdp_op_loop`'s callback: one `bpf_loop` iteration (as `guard_n2`'s per-InitialUEMessage walk).
#[inline(never)]
extern "C" fn op_loop_step(_i: u64, data: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `data` is `xdp_op_loop`'s counter, alive during `bpf_loop`.
    unsafe { *(data as *mut u64) += 1 };
    0
}

/// `bpf_loop` with eight iterations: the helper's call once, its callback's eight times.
#[xdp]
pub fn xdp_op_loop(_ctx: XdpContext) -> u32 {
    let mut n = 0u64;
    let cb: extern "C" fn(u64, *mut core::ffi::c_void) -> i64 = op_loop_step;
    // SAFETY: `bpf_loop` calls `cb` at most 8 times with `&mut n`, which outlives the call;
    // flags must be 0.
    unsafe { bpf_loop(8, cb as *mut core::ffi::c_void, &mut n as *mut u64 as *mut core::ffi::c_void, 0) };
    core::hint::black_box(n);
    xdp_action::XDP_PASS
}

/// `xdp_live_sender`'s settings, written by the bench: [`LIVE_IFINDEX`], then the benign TEID
/// base and count (count 0: attack traffic only), then the attacking TEID base and count.
#[map(name = "BENCH_LIVE")]
static BENCH_LIVE: Array<u32> = Array::with_max_entries(8, 0);
const LIVE_IFINDEX: u32 = 0;
const LIVE_BENIGN_BASE: u32 = 1;
const LIVE_BENIGN_N: u32 = 2;
const LIVE_ATTACK_BASE: u32 = 3;
const LIVE_ATTACK_N: u32 = 4;

/// Frames `xdp_live_sender` has sent on this CPU: its sequence number.
#[map(name = "BENCH_LIVE_SEQ")]
static BENCH_LIVE_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Byte offset of the TEID in an untagged IPv4 G-PDU without IP options (Ethernet 14, IPv4 20,
/// UDP 8, then the TEID after the GTP-U flags, type and length: TS 29.281 §5.1).
const LIVE_TEID_OFF: usize = 14 + 20 + 8 + 4;

/// The bench's flood source: run with BPF_PROG_TEST_RUN in `BPF_F_TEST_XDP_LIVE_FRAMES` mode,
/// each run rewrites the frame's TEID to the next device of the flood (alternately a benign and
/// an attacking one, or attackers only) and redirects it out of the configured interface, where
/// veth hands it as an XDP frame to its peer: the filter under test sees it as from a NIC driver,
/// with no socket or skb on the sending side (the AF_PACKET sender was the bottleneck of every
/// filter).
#[xdp]
pub fn xdp_live_sender(ctx: XdpContext) -> u32 {
    let cfg = |i| BENCH_LIVE.get(i).copied().unwrap_or(0);
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + LIVE_TEID_OFF + 4 > end {
        return xdp_action::XDP_ABORTED;
    }
    let Some(seq) = BENCH_LIVE_SEQ.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let n = unsafe {
        let n = *seq;
        *seq = n.wrapping_add(1);
        n
    };
    let (benign_n, attack_n) = (u64::from(cfg(LIVE_BENIGN_N)), u64::from(cfg(LIVE_ATTACK_N)).max(1));
    let teid = if benign_n > 0 && n % 2 == 0 {
        cfg(LIVE_BENIGN_BASE).wrapping_add(((n / 2) % benign_n) as u32)
    } else {
        let i = if benign_n > 0 { n / 2 } else { n };
        cfg(LIVE_ATTACK_BASE).wrapping_add((i % attack_n) as u32)
    };
    // SAFETY: bounds checked above; the TEID field is not aligned, so byte writes.
    unsafe {
        let p = (start + LIVE_TEID_OFF) as *mut [u8; 4];
        core::ptr::write_unaligned(p, teid.to_be_bytes());
    }
    // SAFETY: a helper taking plain integers.
    unsafe { aya_ebpf::helpers::bpf_redirect(cfg(LIVE_IFINDEX), 0) as u32 }
}

/// Drops every frame: the cheapest an XDP filter can be, the reference of the live-frames flood.
#[xdp]
pub fn xdp_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}
