//! `guard_n2`: the XDP program for the N2/S1-MME NIC (SCTP carrying NGAP or S1AP).
//!
//! What it may drop, and why only that (DESIGN §2 "Enforcement must respect the protocol"):
//! malformed SCTP; SCTP from peers not on the allow-list (when enabled); association setup
//! (INIT, COOKIE-ECHO) above a peer's stage-1/2 limit; and everything of a peer at stage 3
//! (whole-peer quarantine). A packet carrying DATA is never dropped below stage 3: a dropped DATA
//! chunk is retransmitted and head-of-line blocks its stream, so it sheds no load.
//!
//! Everything else is measurement for the controller: chunk types and NGAP/S1AP procedures per
//! peer (`N2_PEERS`), and, from each InitialUEMessage, access attempts per cell (`N2_CELLS`,
//! NR-CGI / E-UTRAN CGI) and per device (`N2_DEVICES`, 5G-S-TMSI / S-TMSI, else peer +
//! RAN-UE-NGAP-ID). Any failure of the guard itself passes the packet (fail-open).
//!
//! Layout for the verifier, as in `n3/mod.rs`: the parse, the policy and the InitialUEMessage walk are
//! sibling BPF subprograms (their stack frames do not add up), the context pointer goes through
//! `black_box`, the parsed packet and new map entries live in per-CPU scratch slots.

use aya_ebpf::{
    bindings::{xdp_action, xdp_md, BPF_NOEXIST},
    cty::c_void,
    helpers::generated::bpf_loop,
    macros::xdp,
    programs::XdpContext,
};
use guard_common::{
    abi::{Counter, L3Addr, STAGE_OBSERVE},
    abi_n2::{
        N2CellKey, N2CellState, N2Config, N2DeviceKey, N2DeviceState, N2Event, N2PeerState, N2PortKey, N2TagKey,
        CHUNK_CLASS_COUNT, N2_EVENT_SETUP_LIMITED, N2_EVENT_SETUP_OVER_LIMIT, N2_PROT_ALLOWLIST, N2_PROT_MALFORMED,
        N2_PROT_QUARANTINE, N2_SETUP_COOKIE_REQUIRED, N2_STAT_ALIASED, N2_STAT_COOKIE_ISSUED, N2_STAT_COOKIE_UNISSUED,
        N2_STAT_EVENTS_LOST, N2_STAT_EVENTS_SENT, N2_STAT_EVENTS_SUPPRESSED, N2_STAT_FIRST_FRAGMENTS,
        N2_STAT_FRAGMENTS, N2_STAT_INIT_REESTABLISH, N2_STAT_MAP_UPDATE_FAILED, N2_STAT_NGAP_UNPARSED,
        N2_STAT_NO_CONFIG, N2_STAT_UE_SKIPPED, N2_STAT_WALK_CUT, PEER_FLAG_NGAP, PEER_FLAG_S1AP, PROC_CLASS_COUNT,
        RRC_CAUSE_SLOTS,
    },
    parse::{
        n2::{self, N2Malformed, N2Packet, FRAG_FIRST, FRAG_LATER, MAX_CHUNKS, MAX_UE_MSGS},
        ngap::{self, InitialUe, NgapError},
    },
    policy::{self, Gate},
    policy_n2::{self, N2Verdict, PeerDecision, Setup},
    rate,
};

use crate::{
    counters::{add, add32, zero},
    cursor::XdpPacket,
    maps_n2::{
        N2_ALIAS, N2_ALLOW, N2_ASSOC, N2_CELLS, N2_CONFIG, N2_COOKIES, N2_DEVICES, N2_EVENTS, N2_MALFORMED,
        N2_NEW_CELL, N2_NEW_DEV, N2_NEW_PEER, N2_PCPU_TAT, N2_PEERS, N2_PEER_STAGES, N2_PKT, N2_SHADOW, N2_STATS,
        N2_UE, N2_VERDICTS,
    },
};

mod ues;
mod walk;

use self::{ues::*, walk::*};

// `counters::zero` clears whole 8-byte words.
const _: () = assert!(core::mem::size_of::<N2Packet>() % 8 == 0);
const _: () = assert!(core::mem::size_of::<InitialUe>() % 8 == 0);

#[xdp]
pub fn guard_n2(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let v = verdict(&ctx, len);
    bump(N2_VERDICTS.get_ptr_mut(v as u32), len);
    if v.is_drop() {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn bump(c: Option<*mut Counter>, bytes: u64) {
    if let Some(c) = c {
        // SAFETY: a per-CPU array slot is only touched by this CPU while this program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
}

#[inline(always)]
fn stat(index: u32) {
    bump(N2_STATS.get_ptr_mut(index), 0);
}

/// Whether a protection that would drop this packet actually drops it (shadow: counted in
/// `N2_SHADOW`, passed).
#[inline(always)]
fn enforced(cfg: &N2Config, prot: u32, v: N2Verdict, len: u64) -> bool {
    match policy_n2::gate(cfg, prot) {
        Gate::Off => false,
        Gate::Shadow => {
            bump(N2_SHADOW.get_ptr_mut(v as u32), len);
            false
        }
        Gate::Enforce => true,
    }
}

#[inline(always)]
fn verdict(ctx: &XdpContext, len: u64) -> N2Verdict {
    let Some(cfg) = N2_CONFIG.get(0) else {
        stat(N2_STAT_NO_CONFIG);
        return N2Verdict::PassFailOpen;
    };
    let Some(pp) = N2_PKT.get_ptr_mut(0) else {
        return N2Verdict::PassFailOpen;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs; cleared with word
    // stores (the parser writes only what it finds, see `n2::parse_head`).
    let p = unsafe {
        zero(pp);
        &mut *pp
    };
    match parse_frame(ctx, cfg.ngap_port as u16, cfg.s1ap_port as u16, p) {
        Ok(true) => {}
        Ok(false) => return N2Verdict::PassNotN2,
        Err(m) => return malformed(cfg, p, m, len),
    }
    // Another path of a multi-homed peer (RFC 9260 §6.4, learned on egress): the peer is its
    // primary address, for the allow-list, counters and stages alike; a path switch is not a
    // new peer.
    // SAFETY: a live LRU map value, copied out at once.
    if let Some(primary) = unsafe { N2_ALIAS.get(&p.src) }.copied() {
        p.src = primary;
        stat(N2_STAT_ALIASED);
    }
    // The chunk walk: one subprogram call per chunk (see `chunk_step`). The walk's end is seen
    // here, where `n2::chunk_step` would see it first thing: a call that only says "done" costs
    // ~8 ns where returns are dear (BENCHMARKS.md, "Price of one operation").
    for _ in 0..MAX_CHUNKS {
        if p.chunks_done() {
            break;
        }
        match chunk_step(ctx, p) {
            STEP_MORE => {}
            STEP_DONE => break,
            e => return malformed(cfg, p, step_error(e), len),
        }
    }
    if let Err(m) = n2::finish(p) {
        return malformed(cfg, p, m, len);
    }
    if p.walk_cut != 0 {
        stat(N2_STAT_WALK_CUT);
    }
    if p.ue_skipped != 0 {
        stat(N2_STAT_UE_SKIPPED);
    }
    policy(ctx, cfg, p, len)
}

#[inline(always)]
fn malformed(cfg: &N2Config, p: &N2Packet, m: N2Malformed, len: u64) -> N2Verdict {
    bump(N2_MALFORMED.get_ptr_mut(m as u32), len);
    if !m.is_sctp() {
        return N2Verdict::PassMalformed;
    }
    // Counted on a known peer; a malformed packet never creates state.
    let peer = N2_PEERS.get_ptr_mut(&p.src);
    if let Some(peer) = peer {
        // SAFETY: a live LRU map value; counters are atomic.
        unsafe { add(&mut (*peer).malformed, 1) };
    }
    if enforced(cfg, N2_PROT_MALFORMED, N2Verdict::DropMalformed, len) {
        if let Some(peer) = peer {
            // SAFETY: as above.
            unsafe { add(&mut (*peer).dropped, 1) };
        }
        return N2Verdict::DropMalformed;
    }
    N2Verdict::PassMalformed
}

/// The peer's entry in `N2_PEERS`, created on first sight.
#[inline(always)]
fn peer_state(key: &L3Addr, now: u64) -> Option<*mut N2PeerState> {
    if let Some(c) = N2_PEERS.get_ptr_mut(key) {
        return Some(c);
    }
    let fresh = N2_NEW_PEER.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot; reset in full before each use.
    unsafe {
        zero(fresh);
        (*fresh).last_seen_ns = now;
    }
    // SAFETY: `fresh` is a valid map value pointer for the duration of the call.
    let _ = N2_PEERS.insert(key, unsafe { &*fresh }, u64::from(BPF_NOEXIST));
    N2_PEERS.get_ptr_mut(key)
}

/// Everything after the parse, in a BPF subprogram of its own: the verdict, then the walk of a
/// passed packet's InitialUEMessages.
///
/// The walk is here, not in `guard_n2` after the verdict, so that it counts them on the peer
/// [`decide`] already holds: looking the peer up again cost a hash lookup per message (~30 ns
/// where calls are dear). Only the two verdicts that carry DATA reach it, so the verifier walks
/// it at most twice. Only packets with DATA carry NGAP/S1AP, and only well-formed ones are walked.
#[inline(never)]
fn policy(ctx: &XdpContext, cfg: &N2Config, p: &N2Packet, len: u64) -> N2Verdict {
    let mut peer: *mut N2PeerState = core::ptr::null_mut();
    let v = decide(cfg, p, len, &mut peer);
    if matches!(v, N2Verdict::PassData | N2Verdict::PassDataSpared) && !peer.is_null() {
        walk_ues(ctx, peer);
    }
    v
}

/// The verdict; `peer_out` is set to the peer's `N2_PEERS` entry once it is known.
#[inline(always)]
fn decide(cfg: &N2Config, p: &N2Packet, len: u64, peer_out: &mut *mut N2PeerState) -> N2Verdict {
    let now = crate::clock::n2_ns();
    // The allow-list first, before any state is created: a spoofed-source flood cannot churn the
    // peer map while the list is enforced.
    if policy_n2::gate(cfg, N2_PROT_ALLOWLIST) != Gate::Off {
        // SAFETY: a live value of the userspace-owned allow map.
        let listed = |a: &L3Addr| unsafe { N2_ALLOW.get(a) }.is_some_and(|v| *v != 0);
        // The peer (its primary address), or the address the packet came from when that is
        // listed itself: an alias learned from the AMF's chunks (`n2_egress::learn_path`) can
        // name an address as a path of another peer (a gNB that restarted its association on its
        // second path), and an address the operator listed stays admitted whatever it aliases to.
        let allowed = listed(&p.src) || (!p.src.same(&p.wire_src) && listed(&p.wire_src));
        if !allowed && enforced(cfg, N2_PROT_ALLOWLIST, N2Verdict::DropNotAllowed, len) {
            return N2Verdict::DropNotAllowed;
        }
    }
    if p.frag == FRAG_LATER {
        return later_fragment(cfg, p, now, len);
    }
    if p.frag == FRAG_FIRST {
        stat(N2_STAT_FIRST_FRAGMENTS);
    }
    let Some(peer) = peer_state(&p.src, now) else {
        stat(N2_STAT_MAP_UPDATE_FAILED);
        return N2Verdict::PassFailOpen;
    };
    *peer_out = peer;
    // SAFETY: `peer` points into a live LRU map value; shared counters are atomic, the rest are
    // last-writer-wins samples.
    let ps = unsafe { &mut *peer };
    add(&mut ps.packets, 1);
    add(&mut ps.bytes, len);
    ps.last_seen_ns = now;
    ps.last_vtag = p.vtag;
    ps.flags |= if p.port_proto == ngap::PROTO_S1AP { PEER_FLAG_S1AP } else { PEER_FLAG_NGAP };
    for i in 0..CHUNK_CLASS_COUNT {
        let n = p.chunk_counts[i];
        if n != 0 {
            add(&mut ps.chunks[i], n as u64);
        }
    }
    for i in 0..PROC_CLASS_COUNT {
        let n = p.procs[i];
        if n != 0 {
            add(&mut ps.procs[i], n as u64);
        }
    }
    let has_data = p.has_data();
    let has_setup = p.has_setup();
    let stage = N2_PEER_STAGES.get_ptr_mut(&p.src);
    let stage_code = match stage {
        // SAFETY: a live map value.
        Some(s) => unsafe { (*s).stage },
        None => STAGE_OBSERVE,
    };

    // A COOKIE ECHO answering an INIT ACK the AMF really sent to this address and port (the
    // egress classifier recorded its tag): never limited, and not evidence of a flood.
    let mut issued = false;
    let mut unissued = false;
    if p.has_cookie_echo() && cfg.cookie_life_ns != 0 {
        let key = N2TagKey { peer: p.wire_src, port: p.sport, _pad: 0, tag: p.vtag };
        // SAFETY: a live LRU map value, read once.
        issued = match unsafe { N2_COOKIES.get(&key) } {
            Some(t) => now.wrapping_sub(*t) <= cfg.cookie_life_ns,
            None => false,
        };
        if issued {
            stat(N2_STAT_COOKIE_ISSUED);
        } else {
            stat(N2_STAT_COOKIE_UNISSUED);
            unissued = cfg.setup_flags & N2_SETUP_COOKIE_REQUIRED != 0;
        }
    }

    if has_setup && !issued {
        add(&mut ps.setups, 1);
        // Stage-0 profile: evidence for the controller, never a drop.
        if !rate::admit(&mut ps.tat_setup_observe, now, &cfg.setup_observe) {
            add(&mut ps.setup_over_limit, 1);
            event(cfg, ps, now, N2_EVENT_SETUP_OVER_LIMIT, stage_code, &p.src);
        }
    }

    if let Some(s) = stage {
        // An INIT from a port the AMF had an association with gets that port's own lane (looked
        // up only for a staged peer's INIT: the common path does not pay for it).
        let lane = if p.has_init() && cfg.reestablish.interval_ns != 0 {
            let key = N2PortKey { peer: p.wire_src, port: p.sport, _pad: 0 };
            match N2_ASSOC.get_ptr_mut(&key) {
                // SAFETY: a live LRU map value.
                Some(a) if now.wrapping_sub(unsafe { (*a).up_ns }) <= cfg.assoc_memory_ns => Some(a),
                _ => None,
            }
        } else {
            None
        };
        let setup = if !has_setup {
            Setup::None
        } else if issued {
            Setup::Issued
        } else if let Some(a) = lane {
            // SAFETY: a live LRU map value; `tat` is this port's own GCRA state.
            Setup::Lane { tat: unsafe { &mut (*a).tat }, limit: &cfg.reestablish }
        } else {
            Setup::Peer
        };
        // SAFETY: a live value of the userspace-owned stage map; only `tat` is written here.
        let decision = policy_n2::peer_stage(unsafe { &mut *s }, now, setup);
        if let Some(a) = lane {
            stat(N2_STAT_INIT_REESTABLISH);
            // SAFETY: a live LRU map value; counters are atomic.
            unsafe {
                match decision {
                    PeerDecision::Pass => add(&mut (*a).inits, 1),
                    PeerDecision::Exceed { .. } => add(&mut (*a).inits_dropped, 1),
                }
            }
        }
        match decision {
            PeerDecision::Pass => {}
            PeerDecision::Exceed { prot, verdict } => {
                if policy_n2::spares_data(verdict, has_data, unissued) {
                    if policy_n2::gate(cfg, prot) != Gate::Off {
                        add(&mut ps.setup_spared, 1);
                        return N2Verdict::PassDataSpared;
                    }
                } else if enforced(cfg, prot, verdict, len) {
                    add(&mut ps.dropped, 1);
                    if verdict != N2Verdict::DropQuarantine {
                        add(&mut ps.setup_dropped, 1);
                        event(cfg, ps, now, N2_EVENT_SETUP_LIMITED, stage_code, &p.src);
                    }
                    return verdict;
                }
            }
        }
    }
    policy_n2::pass_verdict(has_data, has_setup)
}

/// A later IP fragment of SCTP: no port and no chunk to judge, only its source. The allow-list
/// was applied by the caller; here the whole-peer quarantine. Nothing else can be limited without
/// the transport header, and nothing needs to be: the AMF's stack cannot reassemble the packet
/// without its first fragment, which is judged like a whole packet.
#[inline(always)]
fn later_fragment(cfg: &N2Config, p: &N2Packet, now: u64, len: u64) -> N2Verdict {
    stat(N2_STAT_FRAGMENTS);
    if let Some(s) = N2_PEER_STAGES.get_ptr_mut(&p.src) {
        // SAFETY: a live value of the userspace-owned stage map.
        let e = unsafe { &mut *s };
        if let PeerDecision::Exceed { prot, verdict } = policy_n2::peer_stage(e, now, Setup::None) {
            if prot == N2_PROT_QUARANTINE && enforced(cfg, prot, verdict, len) {
                return verdict;
            }
        }
    }
    N2Verdict::PassFragment
}

/// Send an event unless the peer sent one within `event_gap_ns` or the per-CPU event rate is
/// exhausted.
///
/// As N3's (`policy::event_due`, `policy::event_budget`): the gap starts at an event the budget
/// admitted, so a peer whose event was suppressed asks again with its next setup over the limit
/// instead of staying silent for a whole gap, and a staged peer's event yields to those of peers
/// not yet staged. A full ring counts as sent (asking again would take the ring's lock, shared by
/// all CPUs, on every packet).
#[inline(always)]
fn event(cfg: &N2Config, ps: &mut N2PeerState, now: u64, kind: u32, stage: u32, peer: &L3Addr) {
    if !policy::event_due(ps.last_event_ns, now, cfg.event_gap_ns) {
        return;
    }
    let budget = policy::event_budget(&cfg.event_rate, stage);
    if let Some(slot) = N2_PCPU_TAT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        if !rate::admit(unsafe { &mut (*slot).event_tat }, now, &budget) {
            stat(N2_STAT_EVENTS_SUPPRESSED);
            return;
        }
    }
    ps.last_event_ns = now;
    match N2_EVENTS.reserve::<N2Event>(0) {
        Some(mut entry) => {
            let e = entry.as_mut_ptr();
            // SAFETY: `e` points to a reserved, writable, 8-byte aligned slot of size_of::<N2Event>().
            unsafe {
                (*e).ts_ns = now;
                (*e).kind = kind;
                (*e).stage = stage;
                (*e).peer = *peer;
                (*e).flags = 0;
                (*e).totals = [ps.setups, ps.setup_over_limit, ps.dropped];
            }
            entry.submit(0);
            stat(N2_STAT_EVENTS_SENT);
        }
        None => stat(N2_STAT_EVENTS_LOST),
    }
}
