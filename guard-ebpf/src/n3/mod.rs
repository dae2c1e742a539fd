//! `guard_n3`: the XDP program for the N3/S1-U NIC (GTP-U, TS 29.281).
//!
//! Order of checks for a G-PDU, mildest and most specific first (DESIGN §2):
//! per-gNB new-device limit → anti-spoofing → QFI / group exemption → the device's stage →
//! the cell cap → the host cap. Every failure of the guard itself (a map update that fails, no
//! config) passes the packet: the guard must never be the outage.
//!
//! Length: the program and its `policy` subprogram stay in one file, read top to bottom as the
//! packet goes: what is inlined into which decides the verifier's stack and instruction budget
//! (ARCHITECTURE.md, verifier notes). The gNB's state is in `cells.rs`, counters and events in
//! `counters.rs`, the clock in `clock.rs`.

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    macros::xdp,
    maps::{lpm_trie::Key, HashMap},
    programs::XdpContext,
};
use guard_common::{
    abi::{
        local_home_slot, seen_slot, ByteLimit, CellCounts, CellRecord, DeviceKey, DeviceState, FragEntry, FragKey,
        GuardConfig, L3Addr, Limit, StageEntry, CHAIN_FLAG_NEXT, DEVICE_FLAG_ESTABLISHED, DEVICE_KIND_TEID,
        DEVICE_KIND_UE_V6, ECHO_PATH_SLOTS, ESTABLISHED_PACKETS, EVENT_DEVICE_OVER_LIMIT, EVENT_ECHO_LIMITED,
        EVENT_ERR_IND_LIMITED, EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, FAMILY_IPV4, FAMILY_NONE, HINT_STAGE_GEN,
        KEY_MODE_UE_ADDR, LOCAL_FLAG_NON_IP, LOCAL_INDEX_NONE, LOCAL_PROBES, LOCAL_SLOTS, PROT_ANTISPOOF,
        PROT_CELL_CAP, PROT_ECHO, PROT_ERR_IND, PROT_HOST_CAP, PROT_MALFORMED, PROT_NEW_DEVICE, SEEN_ENTRY_BYTES,
        STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAT_CHAIN_MISS, STAT_MAP_UPDATE_FAILED, STAT_NON_IP, STAT_NO_CONFIG,
    },
    parse::{
        gtpu::{self, MSG_ECHO_REQUEST, MSG_ECHO_RESPONSE, MSG_END_MARKER, MSG_ERROR_INDICATION, MSG_G_PDU},
        n3::{self, GtpPacket, FRAG_FIRST, FRAG_LATER},
        Malformed,
    },
    policy::{self, Bind, Gate, StageDecision, StageTats, Verdict},
    rate,
};

use crate::{
    cells::{self, Gnb},
    clock,
    counters::{self, add},
    cursor::XdpPacket,
    maps::{
        N3_CELLS, N3_CELL_STAGES, N3_CHAIN, N3_CONFIG, N3_DEVICES, N3_FRAGS, N3_FRAMED, N3_HINTS, N3_LOCAL, N3_NEW_DEV,
        N3_NEXT, N3_PCPU_TAT, N3_PKT, N3_SEEN, N3_STAGES,
    },
};

#[xdp]
pub fn guard_n3(ctx: XdpContext) -> u32 {
    run::<false>(ctx)
}

/// `guard_n3` for `guard replay` (docs/replay.md): the same program, whose clock is the capture's
/// (`clock::REPLAY_NOW_NS`, written by the replay before each packet). Only the replay loads it.
/// A program of its own rather than a branch on a frozen global: the verifier enters the policy
/// on ~11,000 paths, so even the three instructions of a pruned branch at its top cost ~34,000
/// processed instructions of the 1,000,000 (measured, `tests/tests/replay_cost.rs`); this way
/// `guard_n3`'s code is exactly what it was.
#[xdp]
pub fn guard_n3_replay(ctx: XdpContext) -> u32 {
    run::<true>(ctx)
}

/// The program; `REPLAY` chooses the clock (`clock::coarse_ns`).
#[inline(always)]
fn run<const REPLAY: bool>(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let v = verdict::<REPLAY>(&ctx, len);
    counters::verdict(v, len);
    if v.is_drop() {
        return xdp_action::XDP_DROP;
    }
    chain(&ctx);
    xdp_action::XDP_PASS
}

/// Hand a packet the guard passes to the next program (`[attach] next`), whose verdict then
/// stands: `bpf_tail_call` does not return when it succeeds. Dropped packets never get here.
/// Only when a next program is configured (one array read, inlined by the verifier, otherwise);
/// a call that returns (empty slot, or the kernel's limit of 33 chained tail calls,
/// `MAX_TAIL_CALL_CNT`) passes the packet as without a next program, counted.
///
/// The tail call sits in the program's own body (the verifier's subprogram 0), not in a
/// subprogram: the verifier limits the stack of the frames *below* a subprogram that tail-calls
/// to 256 bytes (`check_max_stack_depth_subprog`, kernel/bpf/verifier.c), and the policy's frame
/// stacks on this one's (docs/dataplane.md, "Chaining").
#[inline(always)]
fn chain(ctx: &XdpContext) {
    let Some(c) = N3_CHAIN.get(0) else {
        return;
    };
    if c.flags & CHAIN_FLAG_NEXT != 0 {
        // SAFETY: `ctx` is this program's context; on success control never comes back, on
        // failure the helper changes nothing (it returns no value, `RET_VOID`).
        unsafe { N3_NEXT.tail_call(ctx, 0) };
        counters::stat(STAT_CHAIN_MISS);
    }
}

/// Whether a protection that would drop this packet actually drops it. In shadow mode the
/// would-be drop is counted in `N3_SHADOW` and the packet goes on.
#[inline(always)]
fn enforced(cfg: &GuardConfig, prot: u32, v: Verdict, len: u64) -> bool {
    match policy::gate(cfg, prot) {
        Gate::Off => false,
        Gate::Shadow => {
            counters::shadow(v, len);
            false
        }
        Gate::Enforce => true,
    }
}

#[inline(always)]
fn verdict<const REPLAY: bool>(ctx: &XdpContext, len: u64) -> Verdict {
    let Some(cfg) = N3_CONFIG.get(0) else {
        counters::stat(STAT_NO_CONFIG);
        return Verdict::PassFailOpen;
    };
    let Some(pp) = N3_PKT.get_ptr_mut(0) else {
        return Verdict::PassFailOpen;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs (XDP does not nest).
    let scratch = unsafe { &mut *pp };
    let p = &mut scratch.pkt;
    match parse_frame(ctx, cfg.gtpu_port as u16, p) {
        Ok(true) => {
            if p.gtp.msg_type == MSG_G_PDU {
                // The F-TEID's local half (TS 29.281 §5.1): which of the host's N3 addresses
                // the TEID was allocated on.
                // A host that lists no N3 address (one address) skips the table: every session
                // is index 0.
                let (local, flags) = if cfg.local_addrs != 0 {
                    local_index(ctx, p.vlan_tags, p.outer_src.family)
                } else {
                    (LOCAL_INDEX_NONE, 0)
                };
                p.local = local;
                // A session configured as non-IP (TS 23.501 §5.6.10), by TEID range or by a
                // local address serving only such sessions, has no inner addresses, whatever
                // its T-PDU's first octets look like: they must not feed anti-spoofing or a UE key.
                if flags & LOCAL_FLAG_NON_IP != 0 || (cfg.non_ip_ranges != 0 && cfg.non_ip_teid(p.gtp.teid)) {
                    gtpu::store_addr(&mut p.inner_src, FAMILY_NONE, [0; 4]);
                    gtpu::store_addr(&mut p.inner_dst, FAMILY_NONE, [0; 4]);
                }
            }
        }
        Ok(false) if p.frag_kind == FRAG_LATER => return later_fragment::<REPLAY>(ctx, p, &mut scratch.clock),
        Ok(false) => return Verdict::PassNotGtp,
        Err(m) => {
            counters::malformed(m, len);
            if m.is_gtp() && p.outer_src.family != FAMILY_NONE {
                // Malformed GTP-U is charged to the gNB that sent it (only existing entries: a
                // flood of garbage from spoofed sources must not churn the cell map).
                if let Some(c) = N3_CELLS.get_ptr_mut(&p.outer_src) {
                    // SAFETY: a live LRU map value; the counter is updated atomically.
                    unsafe { add(&mut (*c).malformed, 1) };
                }
            }
            if m.is_gtp() && enforced(cfg, PROT_MALFORMED, Verdict::DropMalformed, len) {
                return Verdict::DropMalformed;
            }
            return Verdict::PassMalformed;
        }
    }
    // The Echo path's budget slot, from the outer destination (the host's address): read only
    // for an Echo Request, so the G-PDU path is unchanged.
    let echo_slot = if scratch.pkt.gtp.msg_type == MSG_ECHO_REQUEST {
        let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
        n3::outer_dst_words(&XdpPacket::new(&ctx), scratch.pkt.vlan_tags, scratch.pkt.outer_src.family)
            .map_or(0, policy::echo_path_slot) as u32
    } else {
        0
    };
    let v = policy::<REPLAY>(cfg, &scratch.pkt, &mut scratch.clock, len, echo_slot);
    if v.is_drop() && scratch.pkt.frag_kind == FRAG_FIRST {
        first_fragment_dropped::<REPLAY>(ctx, cfg, &scratch.pkt, &mut scratch.clock);
    }
    v
}

/// The index (slot + 1) and flags of the host address `dst` in `N3_LOCAL`, or
/// (`LOCAL_INDEX_NONE`, 0) when the table does not list it. At most `LOCAL_PROBES` array reads
/// (inlined by the verifier: no helper call, no hash lookup); one on a host whose table is empty
/// (the first slot probed is free) or whose address sits in its home slot. A call of its own:
/// inlined, its probe loop's registers spilled into the program's frame, which the policy's
/// stacks on (measured: 48 bytes more, over the 512-byte limit with the policy's chain).
#[inline(never)]
fn local_index(ctx: &XdpContext, vlan_tags: u8, family: u32) -> (u32, u32) {
    // The outer destination, read at its fixed offset (the parse does not keep it: a host with
    // one N3 address never needs it).
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let Some(w) = n3::outer_dst_words(&XdpPacket::new(&ctx), vlan_tags, family) else {
        return (LOCAL_INDEX_NONE, 0);
    };
    let (a, b, c, d) = (w[0].to_be_bytes(), w[1].to_be_bytes(), w[2].to_be_bytes(), w[3].to_be_bytes());
    let addr = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3]];
    let dst = &L3Addr { family, addr };
    let home = local_home_slot(dst);
    for i in 0..LOCAL_PROBES {
        let slot = (home + i) & (LOCAL_SLOTS - 1);
        let Some(e) = N3_LOCAL.get(slot) else {
            break;
        };
        if e.addr.family == FAMILY_NONE {
            break;
        }
        if e.addr == *dst {
            return (slot + 1, e.flags);
        }
    }
    (LOCAL_INDEX_NONE, 0)
}

/// Whether `key` was marked an established session in `N3_SEEN`. A call of its own: its hash
/// would otherwise sit in the policy's frame (the program and the policy share 512 bytes).
#[inline(never)]
fn seen_marked(key: &DeviceKey) -> bool {
    let (entry, octet) = seen_slot(key);
    match N3_SEEN.get(entry) {
        Some(e) => e[octet % SEEN_ENTRY_BYTES] != 0,
        None => false,
    }
}

/// Mark `key` an established session (one octet, written whole: no read-modify-write to race).
#[inline(never)]
fn mark_seen(key: &DeviceKey) {
    let (entry, octet) = seen_slot(key);
    if let Some(e) = N3_SEEN.get_ptr_mut(entry) {
        // SAFETY: a live array value; one octet written whole.
        unsafe { (*e)[octet % SEEN_ENTRY_BYTES] = 1 };
    }
}

/// The datagram key of a fragment (RFC 791 §3.2: source, destination, protocol, Identification;
/// the protocol is UDP for every fragment `parse_into` names).
#[inline(always)]
fn frag_key(ctx: &XdpContext, p: &GtpPacket) -> Option<FragKey> {
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let family = p.outer_src.family;
    let w = n3::outer_dst_words(&XdpPacket::new(&ctx), p.vlan_tags, family)?;
    let (a, b, c, d) = (w[0].to_be_bytes(), w[1].to_be_bytes(), w[2].to_be_bytes(), w[3].to_be_bytes());
    let addr = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3]];
    Some(FragKey { src: p.outer_src, dst: L3Addr { family, addr }, id: p.frag })
}

/// A first fragment was dropped: drop its datagram's later fragments for `frag_window_ns` too,
/// so a fragmented flood of a dropped device does not fill the UPF's reassembly memory.
#[inline(never)]
fn first_fragment_dropped<const REPLAY: bool>(
    ctx: &XdpContext,
    cfg: &GuardConfig,
    p: &GtpPacket,
    clock_cache: &mut [u64; 2],
) {
    let Some(key) = frag_key(ctx, p) else {
        return;
    };
    let now = clock::coarse_ns::<REPLAY>(clock_cache);
    let e = FragEntry { expires_ns: now.saturating_add(cfg.frag_window_ns), dropped: 0 };
    if N3_FRAGS.insert(&key, &e, 0).is_err() {
        counters::stat(STAT_MAP_UPDATE_FAILED);
    }
}

/// A later fragment: dropped when its datagram's first fragment was (and recently), else passed
/// and counted as such: the guard cannot attribute it to a device, and never drops what it cannot
/// attribute.
#[inline(never)]
fn later_fragment<const REPLAY: bool>(ctx: &XdpContext, p: &GtpPacket, clock_cache: &mut [u64; 2]) -> Verdict {
    let Some(key) = frag_key(ctx, p) else {
        return Verdict::PassFragment;
    };
    let Some(e) = N3_FRAGS.get_ptr_mut(&key) else {
        return Verdict::PassFragment;
    };
    let now = clock::coarse_ns::<REPLAY>(clock_cache);
    // SAFETY: a live LRU map value; the counter is updated atomically.
    unsafe {
        if (*e).expires_ns <= now {
            return Verdict::PassFragment;
        }
        add(&mut (*e).dropped, 1);
    }
    Verdict::DropFragment
}

/// Everything after the parse, in a BPF subprogram of its own. Its frame (~120 bytes) stacks on
/// the program's, which holds the inlined parser's temporaries (~250 bytes): together well under
/// the 512-byte limit. Inlined into the program as well, the known-device path measured ~20 ns
/// slower per G-PDU (`cargo xtask bench`), so the policy stays a call.
#[inline(never)]
fn policy<const REPLAY: bool>(
    cfg: &GuardConfig,
    p: &GtpPacket,
    clock_cache: &mut [u64; 2],
    len: u64,
    echo_slot: u32,
) -> Verdict {
    // The coarse clock: CLOCK_MONOTONIC as of the last timekeeping update (each tick, or on
    // interrupt entry after an idle stretch), so it lags the exact clock by a tick (rarely two,
    // see `clock`) and never runs ahead of it. It reads no clocksource, and through its per-CPU
    // cache costs no helper call on most packets: `bpf_ktime_get_ns` (`ktime_get_mono_fast_ns`,
    // the TSC) costs about 30 ns here (BENCHMARKS.md, "Price of one operation"). Expiries the
    // controller writes from its own CLOCK_MONOTONIC therefore end a tick or two late, and
    // `rate::admit` tolerates a burst of one step so that a limit keeps its long-run rate with a
    // clock that moves in steps.
    let now = clock::coarse_ns::<REPLAY>(clock_cache);
    if p.gtp.msg_type == MSG_G_PDU {
        return gpdu(cfg, p, now, len);
    }
    // GTP-U signalling: the gNB's record (its edge limiters and counters) and hot slot, or the
    // unknown sources' shared ones (`cells::lookup`).
    let Some(gnb) = cells::lookup(cfg, &p.outer_src, now, false) else {
        counters::stat(STAT_MAP_UPDATE_FAILED);
        return Verdict::PassFailOpen;
    };
    let (rec, hot) = gnb.parts();
    count_cell(hot, len);
    // SAFETY: `rec` points into a live LRU map value; counters are updated atomically.
    let c = unsafe { &mut *rec };
    let v = match p.gtp.msg_type {
        MSG_ECHO_REQUEST => {
            add(&mut c.echo_req, 1);
            echo_request(cfg, c, echo_slot, p, now, len)
        }
        MSG_ERROR_INDICATION => {
            add(&mut c.err_ind, 1);
            edge_limit(
                cfg,
                PROT_ERR_IND,
                &mut c.tat_err_ind,
                &cfg.err_ind,
                Verdict::DropErrInd,
                EVENT_ERR_IND_LIMITED,
                p,
                now,
                len,
            )
        }
        MSG_ECHO_RESPONSE => {
            add(&mut c.echo_resp, 1);
            Verdict::PassSignalling
        }
        MSG_END_MARKER => {
            add(&mut c.end_marker, 1);
            Verdict::PassSignalling
        }
        _ => {
            add(&mut c.other_msgs, 1);
            Verdict::PassSignalling
        }
    };
    if v.is_drop() {
        // SAFETY: this CPU's counters (`count_cell`).
        unsafe { (*hot).dropped += 1 };
    }
    v
}

/// Count a packet in this CPU's counters of its gNB's hot slot (`cells`): plain adds to a cache
/// line no other CPU writes, where shared atomic adds made one gNB's packets on several CPUs
/// bounce its counters between them (BENCHMARKS.md, "Multi-core").
#[inline(always)]
fn count_cell(hot: *mut CellCounts, len: u64) {
    // SAFETY: `hot` is this CPU's slot of a per-CPU array (`N3_CELL_PCPU` or `N3_UNKNOWN_HOT`),
    // only this CPU touches it while this program runs (XDP does not nest).
    unsafe {
        (*hot).packets += 1;
        (*hot).bytes += len;
    }
}

/// The parse, inlined into `guard_n3`: a BPF-to-BPF call less per packet (~5 ns measured; every
/// call and return goes through the kernel's return thunk where the CPU needs one, e.g. AMD's
/// SRSO "Safe RET"). `Ok(true)`: GTP-U, written to `out`; `Ok(false)`: not GTP-U.
#[inline(always)]
fn parse_frame(ctx: &XdpContext, port: u16, out: &mut GtpPacket) -> Result<bool, Malformed> {
    // Keep the context pointer opaque (as `xdp_parse_only` does): otherwise LLVM may derive
    // `data_end` from values it already holds, and the verifier forbids arithmetic on a `pkt_end`
    // it did not load itself.
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    n3::parse_into_fast(&XdpPacket::new(&ctx), port, out)
}

/// An Echo Request (TS 29.281 §7.2.1): never limited below the host-wide Echo rate, above it
/// limited per path (`policy::echo_admits` says why).
#[inline(always)]
fn echo_request(cfg: &GuardConfig, c: &mut CellRecord, slot: u32, p: &GtpPacket, now: u64, len: u64) -> Verdict {
    if policy::gate(cfg, PROT_ECHO) == Gate::Off {
        return Verdict::PassSignalling;
    }
    let Some(t) = N3_PCPU_TAT.get_ptr_mut(0) else {
        return Verdict::PassFailOpen;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let host = unsafe { &mut (*t).echo_host_tat };
    let path = &mut c.tat_echo_path[slot as usize % ECHO_PATH_SLOTS];
    if policy::echo_admits(cfg, host, path, now) {
        return Verdict::PassSignalling;
    }
    counters::emit(cfg, now, EVENT_ECHO_LIMITED, STAGE_OBSERVE, &teid_key(p.gtp.teid), &p.outer_src, [0; 3]);
    if enforced(cfg, PROT_ECHO, Verdict::DropEcho, len) {
        Verdict::DropEcho
    } else {
        Verdict::PassSignalling
    }
}

/// A per-gNB limit on a GTP-U signalling message (Error Indication).
#[expect(clippy::too_many_arguments, reason = "inlined into the program; a struct would cost stack")]
#[inline(always)]
fn edge_limit(
    cfg: &GuardConfig,
    prot: u32,
    tat: &mut u64,
    limit: &guard_common::abi::Limit,
    drop: Verdict,
    event: u32,
    p: &GtpPacket,
    now: u64,
    len: u64,
) -> Verdict {
    if policy::gate(cfg, prot) == Gate::Off || rate::admit(tat, now, limit) {
        return Verdict::PassSignalling;
    }
    counters::emit(cfg, now, event, STAGE_OBSERVE, &teid_key(p.gtp.teid), &p.outer_src, [0; 3]);
    if enforced(cfg, prot, drop, len) {
        drop
    } else {
        Verdict::PassSignalling
    }
}

#[inline(always)]
fn device_key(cfg: &GuardConfig, p: &GtpPacket) -> DeviceKey {
    if cfg.key_mode == KEY_MODE_UE_ADDR {
        // An IPv6 UE is its prefix (`antispoof_v6_prefix`, a /64 by default: TS 23.501
        // §5.8.2.2), so a UE rotating privacy addresses (RFC 8981) stays one device and keeps
        // its stage; a source that names no UE (link-local or unspecified: neighbour discovery;
        // 0.0.0.0: DHCP; or non-IP) is keyed by its F-TEID instead, so the Router Solicitations
        // of all UEs do not become one device.
        match policy::ue_key_of(cfg, &p.inner_src) {
            policy::UeKey::V4 => {
                if let Some(k) = DeviceKey::ue(&p.inner_src) {
                    return k;
                }
            }
            policy::UeKey::V6Prefix(prefix) => {
                let b = prefix.to_be_bytes();
                // SAFETY: `DeviceKey` is `#[repr(C)]` { u32, [u8; 16] }: 20 bytes, 4-aligned.
                return unsafe { words20(DEVICE_KIND_UE_V6, [b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]) };
            }
            policy::UeKey::None => {}
        }
    }
    fteid_key(p.local, p.gtp.teid)
}

/// A 20-byte record laid out as a u32 then 16 octets (`DeviceKey`, `L3Addr`), with `first`, then
/// `head` in octets 0..4, `second` in 4..8 and zeros after, written as five u32 stores. Built the plain way
/// (`DeviceKey::teid`), LLVM merges the twelve zero octets into a `memset` call, which the BPF
/// backend emits as a byte-at-a-time loop in a subprogram: on every G-PDU. Volatile keeps the
/// stores from being merged back into that call.
///
/// # Safety
/// `T` must be 20 bytes, 4-byte aligned, and valid for any bit pattern.
#[inline(always)]
unsafe fn words20<T>(first: u32, head: [u8; 4], second: [u8; 4]) -> T {
    const { assert!(core::mem::size_of::<T>() == 20 && core::mem::align_of::<T>() == 4) };
    let mut r = core::mem::MaybeUninit::<T>::uninit();
    let w = r.as_mut_ptr() as *mut u32;
    // SAFETY: five aligned u32 stores cover the whole record (asserted above); any bit pattern is
    // a valid `T` (the caller's contract).
    unsafe {
        core::ptr::write_volatile(w, first);
        core::ptr::write_volatile(w.add(1), u32::from_ne_bytes(head));
        core::ptr::write_volatile(w.add(2), u32::from_ne_bytes(second));
        core::ptr::write_volatile(w.add(3), 0);
        core::ptr::write_volatile(w.add(4), 0);
        r.assume_init()
    }
}

/// `DeviceKey::teid(teid)`, without the `memset` (see `words20`).
#[inline(always)]
fn teid_key(teid: u32) -> DeviceKey {
    // SAFETY: `DeviceKey` is `#[repr(C)]` { u32, [u8; 16] }: 20 bytes, 4-aligned, integers only.
    unsafe { words20(DEVICE_KIND_TEID, teid.to_be_bytes(), [0; 4]) }
}

/// `DeviceKey::fteid(local, teid)`, without the `memset` (see `words20`).
#[inline(always)]
fn fteid_key(local: u32, teid: u32) -> DeviceKey {
    // SAFETY: as `teid_key`.
    unsafe { words20(DEVICE_KIND_TEID, teid.to_be_bytes(), local.to_be_bytes()) }
}

/// Whether an inner source lies inside a configured framed route (`N3_FRAMED`, an LPM trie of
/// IPv6 prefixes, IPv4 as IPv4-mapped `::ffff:0:0/96`). A call of its own, with its key in the
/// per-CPU scratch (`Scratch::framed_key`): the policy's frame and the program's share 512 bytes.
#[inline(never)]
fn in_framed_route(src: &L3Addr) -> bool {
    let Some(sp) = N3_PKT.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs; the key words are
    // plain u32 stores (volatile: no merged `memset`), and `Key<[u8; 16]>` is `repr(C, packed)`
    // { u32, [u8; 16] }: 20 bytes, alignment 1, any bit pattern valid.
    unsafe {
        let k = (*sp).framed_key.as_mut_ptr();
        let w = |i: usize| u32::from_ne_bytes([src.addr[i], src.addr[i + 1], src.addr[i + 2], src.addr[i + 3]]);
        core::ptr::write_volatile(k, 128);
        if src.family == FAMILY_IPV4 {
            core::ptr::write_volatile(k.add(1), 0);
            core::ptr::write_volatile(k.add(2), 0);
            core::ptr::write_volatile(k.add(3), u32::from_ne_bytes([0, 0, 0xff, 0xff]));
            core::ptr::write_volatile(k.add(4), w(0));
        } else {
            core::ptr::write_volatile(k.add(1), w(0));
            core::ptr::write_volatile(k.add(2), w(4));
            core::ptr::write_volatile(k.add(3), w(8));
            core::ptr::write_volatile(k.add(4), w(12));
        }
        N3_FRAMED.get(&*(k as *const Key<[u8; 16]>)).is_some()
    }
}

/// The generation of a userspace-owned stage map (`N3_HINTS[index]`, see `abi::HINT_STAGE_GEN`).
/// Read once, before the lookup it vouches for: volatile, so LLVM can neither re-load it after
/// the lookup (a newer generation would then be cached for an older miss) nor drop the read.
/// `None` (nothing may be cached, every packet looks up) if the read fails or the value is
/// `u64::MAX`, whose complement is a fresh record's 0.
#[inline(always)]
fn hint_gen(index: u32) -> Option<u64> {
    let g = N3_HINTS.get_ptr(index)?;
    // SAFETY: a live array value, 8-byte aligned.
    let g = unsafe { core::ptr::read_volatile(g) };
    if g == u64::MAX {
        None
    } else {
        Some(g)
    }
}

/// A device's stage for this packet: its entry in `N3_STAGES`, or the copy its record caches.
#[derive(Clone, Copy)]
enum Staged {
    None,
    Entry(*mut StageEntry),
    /// A non-exempt entry from the device's cache: its stage, expiry and limits (the GCRA states
    /// are the record's `stage_tat` and `stage_tat_bytes`).
    Cached {
        stage: u32,
        until: u64,
        limit: Limit,
        bytes: ByteLimit,
    },
}

/// What the cache tag binds besides the generation and the expiry (see `DeviceState::stage_cache_tag`).
#[inline(always)]
fn cache_mix(stage: u32, limit: &Limit, bytes: &ByteLimit) -> u64 {
    limit.interval_ns
        ^ limit.tau_ns.rotate_left(21)
        ^ (u64::from(stage) << 56)
        ^ bytes.unit_ns.rotate_left(7)
        ^ bytes.tau_ns.rotate_left(42)
}

/// A known device's stage: from its record's cache while the generation `gen` is the one the
/// cache was filled at (`DeviceState::stage_cache_tag`) and a cached entry has not reached its
/// expiry, else from `N3_STAGES`, refilling the cache with "no entry" or the entry's stage,
/// expiry and limit (any non-exempt entry: quarantine, shape, strict), so a staged device skips
/// the lookup too. A cached rate stage keeps its GCRA state in the record (`stage_tat`).
#[inline(always)]
fn known_device_stage(d: *mut DeviceState, key: &DeviceKey, gen: Option<u64>, now: u64) -> Staged {
    // SAFETY: `d` points into a live LRU map value; the cache fields are written only here, by
    // any CPU: a set torn between two CPUs fails the tag check and is looked up again.
    // Volatile: each is read or written exactly once, as the tag check assumes.
    let until_p = unsafe { &raw mut (*d).stage_cache_until_ns };
    let tag_p = unsafe { &raw mut (*d).stage_cache_tag };
    let interval_p = unsafe { &raw mut (*d).stage_cache_interval_ns };
    let tau_p = unsafe { &raw mut (*d).stage_cache_tau_ns };
    let stage_p = unsafe { &raw mut (*d).stage_cache_stage };
    let bunit_p = unsafe { &raw mut (*d).stage_cache_bytes.unit_ns };
    let btau_p = unsafe { &raw mut (*d).stage_cache_bytes.tau_ns };
    if let Some(g) = gen {
        // SAFETY: as above.
        let (until, tag) = unsafe { (core::ptr::read_volatile(until_p), core::ptr::read_volatile(tag_p)) };
        // "No entry" (most devices): a miss writes the other fields as zero, so its tag is `!g`.
        if until == 0 && tag == !g {
            return Staged::None;
        }
        // SAFETY: as above.
        let (interval_ns, tau_ns, stage, unit_ns, btau_ns) = unsafe {
            (
                core::ptr::read_volatile(interval_p),
                core::ptr::read_volatile(tau_p),
                core::ptr::read_volatile(stage_p),
                core::ptr::read_volatile(bunit_p),
                core::ptr::read_volatile(btau_p),
            )
        };
        let limit = Limit { interval_ns, tau_ns };
        let bytes = ByteLimit { unit_ns, tau_ns: btau_ns };
        // A cached entry whose expiry has passed is looked up again: it may have been refreshed
        // to a later expiry, which keeps the generation (`N3Maps::set_stage`).
        if until > now && tag == !g ^ until ^ cache_mix(stage, &limit, &bytes) {
            return Staged::Cached { stage, until, limit, bytes };
        }
    }
    let Some(s) = N3_STAGES.get_ptr_mut(key) else {
        if let Some(g) = gen {
            // SAFETY: as above.
            unsafe {
                core::ptr::write_volatile(until_p, 0);
                core::ptr::write_volatile(interval_p, 0);
                core::ptr::write_volatile(tau_p, 0);
                core::ptr::write_volatile(stage_p, 0);
                core::ptr::write_volatile(bunit_p, 0);
                core::ptr::write_volatile(btau_p, 0);
                core::ptr::write_volatile(tag_p, !g);
            }
        }
        return Staged::None;
    };
    let Some(g) = gen else {
        return Staged::Entry(s);
    };
    // SAFETY: a live value of the userspace-owned stage map.
    let e = unsafe { &*s };
    // Expiry 0 stands for "no entry" in the cache, so such an (expired) entry is not cached;
    // exempt entries are not cached either (`policy::device_stage` decides them).
    if e.flags & STAGE_FLAG_EXEMPT != 0 || e.expires_ns == 0 {
        return Staged::Entry(s);
    }
    let (stage, until, limit) = (e.stage, e.expires_ns, Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns });
    let bytes = e.bytes;
    // The record's GCRA states go on when the same stage and limits are cached again (a refill
    // after another device's stage write, or a refreshed expiry); a new stage or limit starts
    // from the entry's own states, as an uncached device would.
    // SAFETY: as above; `stage_tat` and `stage_tat_bytes` are last-writer-wins GCRA states, as
    // the entry's own are.
    unsafe {
        let same = (*d).stage_cache_stage == stage
            && (*d).stage_cache_interval_ns == limit.interval_ns
            && (*d).stage_cache_tau_ns == limit.tau_ns
            && (*d).stage_cache_bytes == bytes;
        let tat = &raw mut (*d).stage_tat;
        if !same || e.tat > *tat {
            *tat = e.tat;
        }
        let tat_bytes = &raw mut (*d).stage_tat_bytes;
        if !same || e.tat_bytes > *tat_bytes {
            *tat_bytes = e.tat_bytes;
        }
        core::ptr::write_volatile(until_p, until);
        core::ptr::write_volatile(interval_p, limit.interval_ns);
        core::ptr::write_volatile(tau_p, limit.tau_ns);
        core::ptr::write_volatile(stage_p, stage);
        core::ptr::write_volatile(bunit_p, bytes.unit_ns);
        core::ptr::write_volatile(btau_p, bytes.tau_ns);
        core::ptr::write_volatile(tag_p, !g ^ until ^ cache_mix(stage, &limit, &bytes));
    }
    Staged::Cached { stage, until, limit, bytes }
}

/// `key`'s entry in a userspace-owned stage map (`N3_CELL_STAGES`), unless `no_entry_gen` (this
/// CPU's copy, in its counters of the gNB's hot slot: each CPU looks up once per generation) says
/// there was none at generation `gen`; a miss is recorded there. Every writer replaces the
/// generation after its insert, so a cached miss never hides a newer entry: the first packet after
/// any write looks up again. Expired entries are not misses (they stay until userspace prunes them), so
/// expiry is still decided by the entry itself.
#[inline(always)]
fn stage_lookup<K, V>(map: &HashMap<K, V>, key: &K, no_entry_gen: &mut u64, gen: Option<u64>) -> Option<*mut V> {
    if let Some(g) = gen {
        if *no_entry_gen == !g {
            return None;
        }
    }
    let e = map.get_ptr_mut(key);
    if let (None, Some(g)) = (e, gen) {
        *no_entry_gen = !g;
    }
    e
}

#[inline(always)]
fn gpdu(cfg: &GuardConfig, p: &GtpPacket, now: u64, len: u64) -> Verdict {
    let key = device_key(cfg, p);
    // Read before either lookup (see `hint_gen`).
    let stage_gen = hint_gen(HINT_STAGE_GEN);
    let known = N3_DEVICES.get_ptr_mut(&key);
    // The gNB: a known device from the gNB it last came from finds its hot counters through the
    // slot its record caches; anything else looks the gNB up (`cells`). An established session
    // vouches for a source the guard has not seen yet (a handover to a new gNB).
    let (gnb, hot) = match known.and_then(|d| cells::cached_hot(d, &p.outer_src, now)) {
        Some(h) => (None, h),
        None => {
            // SAFETY: a live LRU map value; `flags` is a last-writer-wins sample.
            let vouched = known.is_some_and(|d| unsafe { (*d).flags } & DEVICE_FLAG_ESTABLISHED != 0);
            match cells::lookup(cfg, &p.outer_src, now, vouched) {
                Some(g) => (Some(g), g.parts().1),
                None => {
                    counters::stat(STAT_MAP_UPDATE_FAILED);
                    return Verdict::PassFailOpen;
                }
            }
        }
    };
    count_cell(hot, len);
    // SAFETY: this CPU's counters (`count_cell`).
    unsafe { (*hot).gpdu += 1 };
    let v = gpdu_verdict(cfg, p, &key, known, stage_gen, gnb, hot, now, len);
    if v.is_drop() {
        // SAFETY: as above.
        unsafe { (*hot).dropped += 1 };
    }
    v
}

#[expect(clippy::too_many_arguments, reason = "inlined into the policy; a struct would cost stack")]
#[inline(always)]
fn gpdu_verdict(
    cfg: &GuardConfig,
    p: &GtpPacket,
    key: &DeviceKey,
    known: Option<*mut DeviceState>,
    stage_gen: Option<u64>,
    gnb: Option<Gnb>,
    hot: *mut CellCounts,
    now: u64,
    len: u64,
) -> Verdict {
    let key = *key;
    let stage = match known {
        // A known device with no stage, or quarantined, at this generation skips the hash lookup.
        Some(d) => known_device_stage(d, &key, stage_gen, now),
        // A never-seen device always looks up: a staged (e.g. quarantined) one skips the new-device
        // budget and gets its stage on its first packet.
        None => match N3_STAGES.get_ptr_mut(&key) {
            Some(s) => Staged::Entry(s),
            None => Staged::None,
        },
    };

    // The source is known (its own record or hot slot): only then can a device establish itself.
    let known_gnb = !matches!(gnb, Some(Gnb::Unknown(..)));
    let dev = match (known, gnb) {
        (Some(d), _) => Some(d),
        // Unreachable: an unknown device has no cached slot, so its gNB was looked up.
        (None, None) => return Verdict::PassFailOpen,
        (None, Some(g)) => {
            let (rec, counts) = g.parts();
            // SAFETY: `rec` points into a live map value; counters are updated atomically.
            let c = unsafe { &mut *rec };
            // A device never seen before, or evicted: an established session (`N3_SEEN`) is
            // re-admitted as it was; devices the controller staged are known. Neither is charged
            // to a new-device budget, which is for TEID scans and random-TEID floods: its own
            // gNB's, or the one all unknown sources share.
            let readmitted = seen_marked(&key);
            if readmitted {
                add(&mut c.readmitted, 1);
            }
            let budget = if known_gnb { &cfg.new_device } else { &cfg.unknown_new_device };
            if !readmitted
                && matches!(stage, Staged::None)
                && policy::gate(cfg, PROT_NEW_DEVICE) != Gate::Off
                && !rate::admit(&mut c.tat_new_device, now, budget)
            {
                // Per CPU: a random-TEID flood takes this path on every CPU at once.
                // SAFETY: this CPU's counters (`count_cell`).
                unsafe { (*counts).new_devices_limited += 1 };
                counters::emit(cfg, now, EVENT_NEW_DEVICE_LIMITED, STAGE_OBSERVE, &key, &p.outer_src, [0; 3]);
                if enforced(cfg, PROT_NEW_DEVICE, Verdict::DropNewDevice, len) {
                    // Not inserted: a flood of spoofed TEIDs cannot churn the device map.
                    return Verdict::DropNewDevice;
                }
            }
            if let Some(fresh) = N3_NEW_DEV.get_ptr_mut(0) {
                // SAFETY: per-CPU scratch slot; reset in full before each use.
                unsafe {
                    counters::zero(fresh);
                    let _ = N3_DEVICES.insert(&key, &*fresh, u64::from(BPF_NOEXIST));
                }
            }
            add(&mut c.new_devices, 1);
            let d = N3_DEVICES.get_ptr_mut(&key);
            if d.is_none() {
                counters::stat(STAT_MAP_UPDATE_FAILED);
            }
            d
        }
    };

    let mut bind = Bind::Skip;
    if let Some(d) = dev {
        // SAFETY: `d` points into a live LRU map value; shared counters are atomic, the rest are
        // last-writer-wins samples.
        if let Some(Gnb::Known(r, _)) = gnb {
            cells::cache_hot(d, &p.outer_src, r);
        }
        let d = unsafe { &mut *d };
        add(&mut d.packets, 1);
        // The device's octets are its T-PDUs' (the unit of its byte limits), not the frames'.
        add(&mut d.bytes, tpdu_len(p));
        if d.flags & DEVICE_FLAG_ESTABLISHED == 0 && known_gnb && d.packets >= ESTABLISHED_PACKETS {
            d.flags |= DEVICE_FLAG_ESTABLISHED;
            mark_seen(&key);
        }
        d.last_seen_ns = now;
        d.teid = p.gtp.teid;
        d.local = p.local;
        d.qfi = p.gtp.qfi as u32;
        d.inner_dst = p.inner_dst;
        if p.inner_src.family == FAMILY_NONE {
            // Not IP (TS 23.501 §5.6.10): counted, and judged by the device's stage like any
            // G-PDU, but there is no address to check or learn.
            add(&mut d.non_ip, 1);
            counters::stat(STAT_NON_IP);
        }

        // Anti-spoofing, per family (docs/dataplane.md "Anti-spoofing"): the inner source must
        // match the device's binding of its family (IPv4 address, IPv6 prefix), or the UE
        // address must stay on its F-TEID (UE-address mode). The binding is only *judged* here;
        // it is learned, refreshed or replaced after the verdict, and only if the packet passed.
        if policy::gate(cfg, PROT_ANTISPOOF) != Gate::Off && p.inner_src.family != FAMILY_NONE {
            bind = match policy::binding_of(cfg, &p.inner_src, p.local, p.gtp.teid) {
                Some((bit, value)) => policy::check_binding(cfg, d, bit, value, now),
                None => Bind::Skip,
            };
            // A source inside a configured framed route (TS 23.501 §5.6.14) is accepted: looked
            // up here only for a would-be spoof (a learn or replace is checked in `passed`, once
            // the packet has passed), and only when routes are configured, so neither the common
            // path (a match) nor a dropped flood pays for it.
            if bind == Bind::Spoof && cfg.framed_routes != 0 && in_framed_route(&p.inner_src) {
                bind = Bind::Skip;
            }
            if bind == Bind::Spoof {
                add(&mut d.spoofed, 1);
                counters::emit(
                    cfg,
                    now,
                    EVENT_SPOOF,
                    STAGE_OBSERVE,
                    &key,
                    &p.outer_src,
                    [d.packets, d.bytes, d.over_limit],
                );
                if enforced(cfg, PROT_ANTISPOOF, Verdict::DropSpoof, len) {
                    add(&mut d.dropped, 1);
                    return Verdict::DropSpoof;
                }
            }
        }

        // The profile limit at stage 0: exceeding it is evidence for the controller, not a drop.
        // With a byte profile (`observe_bytes`), a packet within the packet profile is judged
        // against it too, on its own GCRA state: over it, the packet is a volume excess
        // (`over_bytes`, a flood of large packets at a benign packet rate) and evidence like any
        // other (`over_limit`, the event). Without one, the common path pays the one compare.
        let mut over = !rate::admit(&mut d.tat_observe, now, &cfg.observe);
        if !over && cfg.observe_bytes.unit_ns != 0 {
            let (ok, t) = rate::byte_step(d.tat_observe_bytes, now, &cfg.observe_bytes, tpdu_len(p), opaque);
            d.tat_observe_bytes = (t & ok) | (d.tat_observe_bytes & !ok);
            if ok == 0 {
                add(&mut d.over_bytes, 1);
                over = true;
            }
        }
        if over {
            add(&mut d.over_limit, 1);
            if d.last_event_ns == 0 || now.wrapping_sub(d.last_event_ns) >= cfg.event_gap_ns {
                d.last_event_ns = now;
                let st = match stage {
                    // SAFETY: a live map value.
                    Staged::Entry(s) => unsafe { (*s).stage },
                    Staged::Cached { stage, .. } => stage,
                    Staged::None => STAGE_OBSERVE,
                };
                counters::emit(
                    cfg,
                    now,
                    EVENT_DEVICE_OVER_LIMIT,
                    st,
                    &key,
                    &p.outer_src,
                    [d.packets, d.bytes, d.over_limit],
                );
            }
        }
    }

    if policy::qfi_exempt(cfg, p.gtp.qfi) {
        return passed(cfg, p, dev, bind, now, Verdict::PassExempt);
    }

    let decision = match stage {
        Staged::None => StageDecision::Observe,
        // SAFETY: a live value of the userspace-owned stage map; only `tat` and `tat_bytes` are
        // written here.
        Staged::Entry(s) => policy::device_stage(unsafe { &mut *s }, now, tpdu_len(p), opaque),
        Staged::Cached { stage, until, limit, bytes } => match dev {
            Some(d) => {
                // SAFETY: a live LRU map value; `stage_tat` and `stage_tat_bytes` are its cached
                // stage's GCRA states.
                let tats = unsafe { StageTats { packets: &mut (*d).stage_tat, bytes: &mut (*d).stage_tat_bytes } };
                policy::stage_decision(stage, until, &limit, &bytes, tats, now, tpdu_len(p), opaque)
            }
            None => StageDecision::Observe,
        },
    };
    match decision {
        StageDecision::Exempt => return passed(cfg, p, dev, bind, now, Verdict::PassExempt),
        StageDecision::Exceed { prot, verdict } => {
            if enforced(cfg, prot, verdict, len) {
                count_device_drop(dev);
                return verdict;
            }
        }
        StageDecision::Observe | StageDecision::Conform => {}
    }

    // Last resorts, only ever set while device stages are not enough. A cap whose protection is
    // off is not looked up (and does not spend its budget); a gNB whose record says "no cap at
    // this generation" skips the hash miss.
    if policy::gate(cfg, PROT_CELL_CAP) != Gate::Off {
        // The "no cap" cache is a gNB's own (per CPU, in this CPU's counters of its slot): the
        // unknown sources' shared counters do not cache (one unknown source's miss says nothing
        // about another's cap).
        let mut uncached = 0u64;
        let no_cap_gen = match gnb {
            Some(Gnb::Unknown(..)) => &mut uncached,
            // SAFETY: this CPU's counters (`count_cell`).
            _ => unsafe { &mut (*hot).no_cap_gen },
        };
        // The generation read before the device lookup covers `N3_CELL_STAGES` too
        // (`abi::HINT_STAGE_GEN`).
        if let Some(cs) = stage_lookup(&N3_CELL_STAGES, &p.outer_src, no_cap_gen, stage_gen) {
            // SAFETY: a live value of the userspace-owned cell-stage map.
            if !policy::cell_cap_admits(unsafe { &mut *cs }, now, tpdu_len(p), opaque)
                && enforced(cfg, PROT_CELL_CAP, Verdict::DropCellCap, len)
            {
                count_device_drop(dev);
                return Verdict::DropCellCap;
            }
        }
    }
    // The per-CPU slot is only needed while a host cap is live (`host_cap_admits` admits
    // everything otherwise).
    if policy::gate(cfg, PROT_HOST_CAP) != Gate::Off && policy::host_cap_live(cfg, now) {
        if let Some(slot) = N3_PCPU_TAT.get_ptr_mut(0) {
            // SAFETY: per-CPU slot: its two host-cap states are this CPU's alone.
            let (tat, tat_bytes) = unsafe { (&mut (*slot).host_cap_tat, &mut (*slot).host_cap_tat_bytes) };
            if !policy::host_cap_admits(cfg, tat, tat_bytes, now, tpdu_len(p), opaque)
                && enforced(cfg, PROT_HOST_CAP, Verdict::DropHostCap, len)
            {
                count_device_drop(dev);
                return Verdict::DropHostCap;
            }
        }
    }
    passed(cfg, p, dev, bind, now, Verdict::PassGpdu)
}

/// A G-PDU passed: only now does its source change the device's binding (`policy::apply_binding`),
/// so a packet dropped by any later check (a stage, a cap) never teaches the guard a binding. A
/// source inside a framed route is never learned.
#[inline(always)]
fn passed(
    cfg: &GuardConfig,
    p: &GtpPacket,
    dev: Option<*mut DeviceState>,
    bind: Bind,
    now: u64,
    v: Verdict,
) -> Verdict {
    let learns = matches!(bind, Bind::Learn { .. } | Bind::Replace { .. });
    if learns && cfg.framed_routes != 0 && in_framed_route(&p.inner_src) {
        return v;
    }
    if let Some(d) = dev {
        // SAFETY: `d` points into a live LRU map value; the binding fields are last-writer-wins.
        policy::apply_binding(unsafe { &mut *d }, bind, now);
    }
    v
}

/// libbpf's `barrier_var` for a u64 (as `cursor::opaque`): the byte limits' GCRA step
/// (`rate::byte_step`) is sign masks, which LLVM would otherwise fold back into `smax` and
/// `select`, i.e. conditional jumps, each doubling the paths the verifier walks through the rest
/// of the policy (which is near the 1M-instruction limit).
#[inline(always)]
fn opaque(mut v: u64) -> u64 {
    // SAFETY: the asm is one register move; it only tells LLVM that `v` may have changed.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) v, options(pure, nomem, nostack, preserves_flags)) };
    v
}

/// The octets a G-PDU counts against its device's byte limits: its T-PDU's, per the GTP-U Length
/// field (TS 29.281 §5.1: everything after the mandatory header, less the optional fields and
/// extension headers), the whole inner packet even for a first IP fragment. A flow bit rate is
/// the rate of the flow's own packets (TS 23.501 §5.7.2.5, the GFBR and MBR of a QoS Flow), which
/// a UPF meters on the T-PDU it takes out of (or puts into) the tunnel: the outer IPv4/IPv6, UDP
/// and GTP-U headers (36 to 80 octets and more) are N3's overhead, not the device's volume, and
/// an operator setting "20Mbit/s" expects the MBR's count (docs/dataplane.md, "Byte limits").
#[inline(always)]
fn tpdu_len(p: &GtpPacket) -> u64 {
    u64::from(p.gtp.tpdu_len)
}

/// `DeviceState::dropped` counts the device's packets dropped for any reason, the last-resort
/// cell and host caps included.
#[inline(always)]
fn count_device_drop(dev: Option<*mut guard_common::abi::DeviceState>) {
    if let Some(d) = dev {
        // SAFETY: `d` points into a live LRU map value.
        unsafe { add(&mut (*d).dropped, 1) };
    }
}
