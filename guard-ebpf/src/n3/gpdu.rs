//! A G-PDU's verdict (TS 29.281 §5.1), inlined into `policy` (`mod.rs`): its device (the record's
//! lookup, a new device's admission and insert), its counters and samples, anti-spoofing, the
//! stage-0 profile, the device's stage, then the last-resort caps, in the order of checks `mod.rs`
//! names.

use aya_ebpf::bindings::BPF_NOEXIST;
use guard_common::{
    abi::{
        CellCounts, DeviceId, DeviceState, GuardConfig, DEVICE_FLAG_ESTABLISHED, ESTABLISHED_PACKETS,
        EVENT_DEVICE_OVER_LIMIT, EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, FAMILY_NONE, HINT_STAGE_GEN, PROT_ANTISPOOF,
        PROT_CELL_CAP, PROT_HOST_CAP, PROT_NEW_DEVICE, STAGE_OBSERVE, STAT_MAP_UPDATE_FAILED, STAT_NON_IP,
    },
    parse::n3::GtpPacket,
    policy::{self, Bind, Gate, StageDecision, StageTats, Verdict},
    rate,
};

use crate::{
    cells::{self, Gnb},
    counters::{self, add},
    maps::{N3_CELL_STAGES, N3_DEVICES, N3_NEW_DEV, N3_PCPU_TAT, N3_STAGES},
};

use super::{
    enforce::enforced,
    key::{device_key, in_framed_route, mark_seen, seen_marked, staged_marked},
    stage::{hint_gen, known_device_stage, stage_lookup, Staged},
};

#[inline(always)]
pub(super) fn gpdu(cfg: &GuardConfig, p: &GtpPacket, now: u64, mark: u32, len: u64) -> Verdict {
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
    cells::count_packet(hot, len);
    // SAFETY: this CPU's counters (`cells::count_packet`).
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
                // SAFETY: this CPU's counters (`cells::count_packet`).
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
        // An enforced anti-spoofing drop is judged before the device is counted: a spoof it
        // drops counts in `spoofed` and nowhere else on the device (not its packets, octets or
        // drops, its samples, its stage-0 profile or the packets that make it "established").
        // Else a forger who knows a device's TEID could raise the device's rate and drops with
        // packets the guard drops anyway, until the controller staged it (docs/dataplane.md,
        // "What a forger can do with a device's TEID"). Judged again below with the rest of
        // anti-spoofing (a match refreshes, a shadow spoof is counted): one early branch here
        // costs the verifier less than moving the counting after the whole judgement (+136k and
        // +272k processed instructions for guard_n3 and its replay twin, measured).
        if policy::gate(cfg, PROT_ANTISPOOF) == Gate::Enforce && p.inner_src.family != FAMILY_NONE {
            if let Some((bit, value)) = policy::binding_of(cfg, &p.inner_src, p.local, p.gtp.teid) {
                if policy::check_binding(cfg, d, bit, value, now) == Bind::Spoof
                    && !(cfg.framed_routes != 0 && in_framed_route(&p.inner_src))
                {
                    spoof_seen(cfg, d, &key, p, now);
                    return Verdict::DropSpoof;
                }
            }
        }
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
                // In shadow (an enforced spoof returned above): the packet goes on as the
                // device's, as it reaches the UPF; counted as a would-be drop.
                spoof_seen(cfg, d, &key, p, now);
                counters::shadow(Verdict::DropSpoof, len);
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
            // SAFETY: this CPU's counters (`cells::count_packet`).
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

/// A G-PDU judged a spoof: counted on its device as one, and an event.
#[inline(always)]
fn spoof_seen(cfg: &GuardConfig, d: &mut DeviceState, key: &DeviceId, p: &GtpPacket, now: u64) {
    add(&mut d.spoofed, 1);
    counters::emit(cfg, now, EVENT_SPOOF, STAGE_OBSERVE, key, &p.outer_src, [d.packets(), d.bytes(), d.over_limit]);
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
