//! `guard_n3`: the XDP program for the N3/S1-U NIC (GTP-U, TS 29.281).
//!
//! Order of checks for a G-PDU, mildest and most specific first (DESIGN §2):
//! per-gNB new-device limit → anti-spoofing → QFI / group exemption → the device's stage →
//! the cell cap → the host cap. Every failure of the guard itself (a map update that fails, no
//! config) passes the packet: the guard must never be the outage.
//!
//! Where things are, as the packet goes: this file holds the program (the parse, the dispatch)
//! and its `policy` subprogram with GTP-U signalling (Echo, Error Indication); a G-PDU's verdict
//! is in `gpdu.rs`, inlined into the policy (what is inlined into which decides the verifier's
//! stack and instruction budget: ARCHITECTURE.md, verifier notes). The device key is built in
//! `key.rs`, the cached stage lookups are in `stage.rs`, fragments in `fragments.rs`, whether a
//! protection drops or only counts (shadow mode) in `enforce.rs`; the gNB's state is in
//! `../cells.rs`, counters and events in `../counters.rs`, the clock in `../clock.rs`.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use guard_common::{
    abi::{
        CellRecord, GuardConfig, CHAIN_FLAG_NEXT, ECHO_PATH_SLOTS, EVENT_ECHO_LIMITED, EVENT_ERR_IND_LIMITED,
        FAMILY_NONE, LOCAL_FLAG_NON_IP, LOCAL_INDEX_NONE, PROT_ECHO, PROT_ERR_IND, PROT_MALFORMED, STAGE_OBSERVE,
        STAT_CHAIN_MISS, STAT_MAP_UPDATE_FAILED, STAT_NO_CONFIG,
    },
    parse::{
        gtpu::{self, MSG_ECHO_REQUEST, MSG_ECHO_RESPONSE, MSG_END_MARKER, MSG_ERROR_INDICATION, MSG_G_PDU},
        n3::{self, Common, GtpPacket, FRAG_FIRST, FRAG_LATER},
    },
    policy::{self, Gate, Verdict},
    rate,
};

use crate::{
    cells, clock,
    counters::{self, add},
    cursor::XdpPacket,
    maps::{N3_CELLS, N3_CHAIN, N3_CONFIG, N3_NEXT, N3_PCPU_TAT, N3_PKT},
};

mod enforce;
mod fragments;
mod gpdu;
mod key;
mod stage;

use enforce::enforced;
use fragments::{first_fragment_dropped, later_fragment};
use gpdu::gpdu;
use key::{local_index, teid_key};

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

#[inline(always)]
fn verdict<const REPLAY: bool>(ctx: &XdpContext, len: u64) -> Verdict {
    let Some(cfg) = N3_CONFIG.get(0) else {
        counters::stat(STAT_NO_CONFIG);
        return Verdict::PassFailOpen;
    };
    let port = cfg.gtpu_port as u16;
    // Keep the context pointer opaque (as `xdp_parse_only` does): otherwise LLVM may derive
    // `data_end` from values it already holds, and the verifier forbids arithmetic on a `pkt_end`
    // it did not load itself.
    let octx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let pkt = XdpPacket::new(&octx);
    // The fixed-offset parse (`parse_common_with`, inlined: a BPF-to-BPF call less per packet,
    // ~5 ns measured) decides the common frames that are not GTP-U before the per-CPU scratch
    // slot is looked up: the pass-through every other packet on the NIC takes reads the
    // configuration and the frame, nothing else (issue 19). Only a G-PDU it parses asks for the
    // slot.
    let mut slot = None;
    let common = n3::parse_common_with(&pkt, port, || {
        slot = N3_PKT.get_ptr_mut(0);
        // SAFETY: per-CPU slot, only this CPU uses it while this program runs (XDP does not nest).
        slot.map(|s| unsafe { &mut (*s).pkt })
    });
    if common == Common::NotGtp {
        return Verdict::PassNotGtp;
    }
    let Some(pp) = slot.or_else(|| N3_PKT.get_ptr_mut(0)) else {
        return Verdict::PassFailOpen;
    };
    // SAFETY: as above.
    let scratch = unsafe { &mut *pp };
    let p = &mut scratch.pkt;
    let parsed = if common == Common::Gtp { Ok(true) } else { n3::parse_into(&pkt, port, p) };
    match parsed {
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
        Ok(false) if p.frag_kind == FRAG_LATER => return later_fragment::<REPLAY>(ctx, p, &mut scratch.cpu),
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
    let v = policy::<REPLAY>(cfg, &scratch.pkt, &mut scratch.cpu, len, echo_slot);
    if v.is_drop() && scratch.pkt.frag_kind == FRAG_FIRST {
        first_fragment_dropped::<REPLAY>(ctx, cfg, &scratch.pkt, &mut scratch.cpu);
    }
    v
}

/// Everything after the parse, in a BPF subprogram of its own. Its frame (~120 bytes) stacks on
/// the program's, which holds the inlined parser's temporaries (~250 bytes): together well under
/// the 512-byte limit. Inlined into the program as well, the known-device path measured ~20 ns
/// slower per G-PDU (`cargo xtask bench`), so the policy stays a call.
#[inline(never)]
fn policy<const REPLAY: bool>(
    cfg: &GuardConfig,
    p: &GtpPacket,
    cpu: &mut clock::CpuCache,
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
    let now = clock::n3_ns::<REPLAY>(cpu);
    if p.gtp.msg_type == MSG_G_PDU {
        return gpdu(cfg, p, now, clock::mark::<REPLAY>(cpu), len);
    }
    // GTP-U signalling: the gNB's record (its edge limiters and counters) and hot slot, or the
    // unknown sources' shared ones (`cells::lookup`).
    let Some(gnb) = cells::lookup(cfg, &p.outer_src, now, false) else {
        counters::stat(STAT_MAP_UPDATE_FAILED);
        return Verdict::PassFailOpen;
    };
    let (rec, hot) = gnb.parts();
    cells::count_packet(hot, len);
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
        // SAFETY: this CPU's counters (`cells::count_packet`).
        unsafe { (*hot).dropped += 1 };
    }
    v
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
