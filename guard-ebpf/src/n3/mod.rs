//! `guard_n3`: the XDP program for the N3/S1-U NIC (GTP-U, TS 29.281).
//!
//! Order of checks for a G-PDU, mildest and most specific first (DESIGN §2):
//! per-gNB new-device limit → anti-spoofing → QFI / group exemption → the device's stage →
//! the cell cap → the host cap. Every failure of the guard itself (a map update that fails, no
//! config) passes the packet: the guard must never be the outage.
//!
//! Length: the program and its `policy` subprogram stay in one file, read top to bottom as the
//! packet goes: what is inlined into which decides the verifier's stack and instruction budget
//! (ARCHITECTURE.md, verifier notes). The device key is built in `key.rs`, the cached stage
//! lookups are in `stage.rs`, fragments in `fragments.rs`; the gNB's state is in `../cells.rs`,
//! counters and events in `../counters.rs`, the clock in `../clock.rs`.

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    macros::xdp,
    programs::XdpContext,
};
use guard_common::{
    abi::{
        CellCounts, CellRecord, DeviceId, DeviceState, GuardConfig, CHAIN_FLAG_NEXT, DEVICE_FLAG_ESTABLISHED,
        ECHO_PATH_SLOTS, ESTABLISHED_PACKETS, EVENT_DEVICE_OVER_LIMIT, EVENT_ECHO_LIMITED, EVENT_ERR_IND_LIMITED,
        EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, FAMILY_NONE, HINT_STAGE_GEN, LOCAL_FLAG_NON_IP, LOCAL_INDEX_NONE,
        PROT_ANTISPOOF, PROT_CELL_CAP, PROT_ECHO, PROT_ERR_IND, PROT_HOST_CAP, PROT_MALFORMED, PROT_NEW_DEVICE,
        STAGE_OBSERVE, STAT_CHAIN_MISS, STAT_MAP_UPDATE_FAILED, STAT_NON_IP, STAT_NO_CONFIG,
    },
    parse::{
        gtpu::{self, MSG_ECHO_REQUEST, MSG_ECHO_RESPONSE, MSG_END_MARKER, MSG_ERROR_INDICATION, MSG_G_PDU},
        n3::{self, Common, GtpPacket, FRAG_FIRST, FRAG_LATER},
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
        N3_CELLS, N3_CELL_STAGES, N3_CHAIN, N3_CONFIG, N3_DEVICES, N3_NEW_DEV, N3_NEXT, N3_PCPU_TAT, N3_PKT, N3_STAGES,
    },
};

mod fragments;
mod key;
mod stage;

use fragments::{first_fragment_dropped, later_fragment};
use key::{device_key, in_framed_route, local_index, mark_seen, seen_marked, staged_marked, teid_key};
use stage::{hint_gen, known_device_stage, stage_lookup, Staged};

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
fn gpdu(cfg: &GuardConfig, p: &GtpPacket, now: u64, mark: u32, len: u64) -> Verdict {
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
    let v = gpdu_verdict(cfg, p, &key, known, stage_gen, gnb, hot, now, mark, len);
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
    key: &DeviceId,
    known: Option<*mut DeviceState>,
    stage_gen: Option<u64>,
    gnb: Option<Gnb>,
    hot: *mut CellCounts,
    now: u64,
    mark: u32,
    len: u64,
) -> Verdict {
    let key = *key;
    let stage = match known {
        // A known device with no stage, or quarantined, at this generation skips the hash lookup.
        Some(d) => known_device_stage(d, &key, stage_gen, now),
        // A never-seen device looks up unless its slot in `N3_STAGED` is unmarked (no entry can be
        // its own): a staged (e.g. quarantined) one skips the new-device budget and gets its stage
        // on its first packet. The marks spare the rest a cache miss into `N3_STAGES`' buckets.
        None if !staged_marked(key) => Staged::None,
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
            let readmitted = seen_marked(key);
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
                // SAFETY: this CPU's slot of a per-CPU array; nothing else runs on it meanwhile.
                let fresh = unsafe { &mut *fresh };
                // The record is born owned by this CPU (`DeviceState::owner`): only an insert that
                // creates it writes the mark, so no two CPUs ever own one record.
                fresh.owner = mark;
                let _ = N3_DEVICES.insert(&key, fresh, u64::from(BPF_NOEXIST));
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
        // The device's octets are its T-PDUs' (the unit of its byte limits), not the frames'.
        counters::count_device(d, tpdu_len(p), mark);
        if d.flags & DEVICE_FLAG_ESTABLISHED == 0 && known_gnb && d.packets() >= ESTABLISHED_PACKETS {
            d.flags |= DEVICE_FLAG_ESTABLISHED;
            mark_seen(key);
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
                    [d.packets(), d.bytes(), d.over_limit],
                );
                if enforced(cfg, PROT_ANTISPOOF, Verdict::DropSpoof, len) {
                    counters::count_device_dropped(d, mark);
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
            // One event per gap, starting at an event sent, and a staged device's event
            // yields to those of floods not yet pinned (`policy::event_due`, `event_claim`).
            if policy::event_due(d.last_event_ns, now, cfg.event_gap_ns) {
                let st = match stage {
                    // SAFETY: a live map value.
                    Staged::Entry(s) => unsafe { (*s).stage },
                    Staged::Cached { stage, .. } => stage,
                    Staged::None => STAGE_OBSERVE,
                };
                if counters::emit(
                    cfg,
                    now,
                    EVENT_DEVICE_OVER_LIMIT,
                    st,
                    &key,
                    &p.outer_src,
                    [d.packets(), d.bytes(), d.over_limit],
                ) {
                    d.last_event_ns = now;
                }
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
                count_device_drop(dev, mark);
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
                count_device_drop(dev, mark);
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
                count_device_drop(dev, mark);
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
fn count_device_drop(dev: Option<*mut guard_common::abi::DeviceState>, mark: u32) {
    if let Some(d) = dev {
        counters::count_device_dropped(d, mark);
    }
}
