//! `guard_n3`: the XDP program for the N3/S1-U NIC (GTP-U, TS 29.281).
//!
//! Order of checks for a G-PDU, mildest and most specific first (DESIGN §2):
//! per-gNB new-device limit → anti-spoofing → QFI / group exemption → the device's stage →
//! the cell cap → the host cap. Every failure of the guard itself (a map update that fails, no
//! config) passes the packet: the guard must never be the outage.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns, macros::xdp, programs::XdpContext};
use guard_common::{
    abi::{
        CellKey, CellState, DeviceKey, GuardConfig, L3Addr, BIND_TEID, EVENT_DEVICE_OVER_LIMIT, EVENT_ECHO_LIMITED,
        EVENT_ERR_IND_LIMITED, EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, FAMILY_NONE, KEY_MODE_UE_ADDR, PROT_ANTISPOOF,
        PROT_CELL_CAP, PROT_ECHO, PROT_ERR_IND, PROT_HOST_CAP, PROT_MALFORMED, PROT_NEW_DEVICE, STAGE_OBSERVE,
        STAT_MAP_UPDATE_FAILED, STAT_NO_CONFIG,
    },
    parse::{
        gtpu::{MSG_ECHO_REQUEST, MSG_ECHO_RESPONSE, MSG_END_MARKER, MSG_ERROR_INDICATION, MSG_G_PDU},
        n3::{self, GtpPacket},
        Malformed,
    },
    policy::{self, Gate, StageDecision, Verdict},
    rate,
};

use crate::{
    counters::{self, add},
    cursor::XdpPacket,
    maps::{N3_CELLS, N3_CELL_STAGES, N3_CONFIG, N3_DEVICES, N3_NEW_CELL, N3_NEW_DEV, N3_PCPU_TAT, N3_PKT, N3_STAGES},
};

/// BPF_NOEXIST: insert only if absent (another CPU may have inserted the same key first).
const BPF_NOEXIST: u64 = 1;

#[xdp]
pub fn guard_n3(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let v = verdict(&ctx, len);
    counters::verdict(v, len);
    if v.is_drop() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
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
fn verdict(ctx: &XdpContext, len: u64) -> Verdict {
    let Some(cfg) = N3_CONFIG.get(0) else {
        counters::stat(STAT_NO_CONFIG);
        return Verdict::PassFailOpen;
    };
    let Some(pp) = N3_PKT.get_ptr_mut(0) else {
        return Verdict::PassFailOpen;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let p = unsafe { &mut *pp };
    match parse_frame(ctx, cfg.gtpu_port as u16, p) {
        Ok(true) => {}
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
    policy(cfg, p, len)
}

/// Everything after the parse, in a BPF subprogram of its own: the parser's and the policy's
/// stack frames are siblings, so only the larger of the two counts against the 512-byte limit.
#[inline(never)]
fn policy(cfg: &GuardConfig, p: &GtpPacket, len: u64) -> Verdict {
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(cell) = cell_state(&p.outer_src, now) else {
        counters::stat(STAT_MAP_UPDATE_FAILED);
        return Verdict::PassFailOpen;
    };
    // SAFETY: `cell` points into a live LRU map value; counters are updated atomically.
    unsafe {
        add(&mut (*cell).packets, 1);
        add(&mut (*cell).bytes, len);
        (*cell).last_seen_ns = now;
    }
    let v = match p.gtp.msg_type {
        MSG_G_PDU => gpdu(cfg, p, cell, now, len),
        MSG_ECHO_REQUEST => {
            // SAFETY: as above.
            let c = unsafe { &mut *cell };
            add(&mut c.echo_req, 1);
            edge_limit(cfg, PROT_ECHO, &mut c.tat_echo, &cfg.echo, Verdict::DropEcho, EVENT_ECHO_LIMITED, p, now, len)
        }
        MSG_ERROR_INDICATION => {
            // SAFETY: as above.
            let c = unsafe { &mut *cell };
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
            // SAFETY: as above.
            unsafe { add(&mut (*cell).echo_resp, 1) };
            Verdict::PassSignalling
        }
        MSG_END_MARKER => {
            // SAFETY: as above.
            unsafe { add(&mut (*cell).end_marker, 1) };
            Verdict::PassSignalling
        }
        _ => {
            // SAFETY: as above.
            unsafe { add(&mut (*cell).other_msgs, 1) };
            Verdict::PassSignalling
        }
    };
    if v.is_drop() {
        // SAFETY: as above.
        unsafe { add(&mut (*cell).dropped, 1) };
    }
    v
}

/// Parse in a BPF subprogram of its own: the parser's temporaries then never share the 512-byte
/// stack with the policy's. `Ok(true)`: GTP-U, written to `out`; `Ok(false)`: not GTP-U.
#[inline(never)]
fn parse_frame(ctx: &XdpContext, port: u16, out: &mut GtpPacket) -> Result<bool, Malformed> {
    // Keep the context pointer opaque: otherwise LLVM passes `data` and `data_end` as promoted
    // arguments, and the verifier forbids arithmetic on a `pkt_end` it did not load itself.
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    n3::parse_into(&XdpPacket::new(&ctx), port, out)
}

/// The gNB's entry in `N3_CELLS`, created on first sight.
#[inline(always)]
fn cell_state(key: &CellKey, now: u64) -> Option<*mut CellState> {
    if let Some(c) = N3_CELLS.get_ptr_mut(key) {
        return Some(c);
    }
    let fresh = N3_NEW_CELL.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot; reset in full before each use.
    unsafe {
        counters::zero(fresh);
        (*fresh).last_seen_ns = now;
    }
    // Another CPU may win the race; either way the entry then exists.
    // SAFETY: `fresh` is a valid map value pointer for the duration of the call.
    let _ = N3_CELLS.insert(key, unsafe { &*fresh }, BPF_NOEXIST);
    N3_CELLS.get_ptr_mut(key)
}

/// A per-gNB limit on a GTP-U signalling message (Echo Request, Error Indication).
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
    counters::emit(cfg, now, event, STAGE_OBSERVE, &DeviceKey::teid(p.gtp.teid), &p.outer_src, [0; 3]);
    if enforced(cfg, prot, drop, len) {
        drop
    } else {
        Verdict::PassSignalling
    }
}

#[inline(always)]
fn device_key(cfg: &GuardConfig, p: &GtpPacket) -> DeviceKey {
    if cfg.key_mode == KEY_MODE_UE_ADDR {
        if let Some(k) = DeviceKey::ue(&p.inner_src) {
            return k;
        }
    }
    DeviceKey::teid(p.gtp.teid)
}

/// The learned binding of a new device: TEID mode binds the inner source address, UE-address
/// mode binds the TEID.
#[inline(always)]
fn binding(cfg: &GuardConfig, p: &GtpPacket) -> L3Addr {
    if cfg.key_mode == KEY_MODE_UE_ADDR {
        let t = p.gtp.teid.to_be_bytes();
        let mut b = L3Addr { family: BIND_TEID, addr: [0; 16] };
        b.addr[0] = t[0];
        b.addr[1] = t[1];
        b.addr[2] = t[2];
        b.addr[3] = t[3];
        b
    } else {
        p.inner_src
    }
}

#[inline(always)]
fn gpdu(cfg: &GuardConfig, p: &GtpPacket, cell: *mut CellState, now: u64, len: u64) -> Verdict {
    // SAFETY: `cell` points into a live LRU map value.
    let c = unsafe { &mut *cell };
    add(&mut c.gpdu, 1);
    let key = device_key(cfg, p);
    let stage = N3_STAGES.get_ptr_mut(&key);

    let dev = match N3_DEVICES.get_ptr_mut(&key) {
        Some(d) => Some(d),
        None => {
            // A TEID never seen before. Devices the controller staged are known, so the per-gNB
            // new-device limit (TEID scans, random-TEID floods) does not apply to them.
            if stage.is_none()
                && policy::gate(cfg, PROT_NEW_DEVICE) != Gate::Off
                && !rate::admit(&mut c.tat_new_device, now, &cfg.new_device)
            {
                add(&mut c.new_devices_limited, 1);
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
                    (*fresh).bound = binding(cfg, p);
                    let _ = N3_DEVICES.insert(&key, &*fresh, BPF_NOEXIST);
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

    if let Some(d) = dev {
        // SAFETY: `d` points into a live LRU map value; shared counters are atomic, the rest are
        // last-writer-wins samples.
        let d = unsafe { &mut *d };
        add(&mut d.packets, 1);
        add(&mut d.bytes, len);
        d.last_seen_ns = now;
        d.teid = p.gtp.teid;
        d.cell = p.outer_src;
        d.qfi = p.gtp.qfi as u32;
        d.inner_dst = p.inner_dst;

        // Anti-spoofing: the inner source must match what this TEID carried first (TEID mode),
        // or the UE address must stay on its TEID (UE-address mode).
        if policy::gate(cfg, PROT_ANTISPOOF) != Gate::Off && p.inner_src.family != FAMILY_NONE {
            let seen = binding(cfg, p);
            if d.bound.family == FAMILY_NONE {
                d.bound = seen;
            } else if d.bound != seen {
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
        if !rate::admit(&mut d.tat_observe, now, &cfg.observe) {
            add(&mut d.over_limit, 1);
            if d.last_event_ns == 0 || now.wrapping_sub(d.last_event_ns) >= cfg.event_gap_ns {
                d.last_event_ns = now;
                let st = match stage {
                    // SAFETY: a live map value.
                    Some(s) => unsafe { (*s).stage },
                    None => STAGE_OBSERVE,
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
        return Verdict::PassExempt;
    }

    if let Some(s) = stage {
        // SAFETY: a live value of the userspace-owned stage map; only `tat` is written here.
        match policy::device_stage(unsafe { &mut *s }, now) {
            StageDecision::Exempt => return Verdict::PassExempt,
            StageDecision::Exceed { prot, verdict } => {
                if enforced(cfg, prot, verdict, len) {
                    count_device_drop(dev);
                    return verdict;
                }
            }
            StageDecision::Observe | StageDecision::Conform => {}
        }
    }

    // Last resorts, only ever set while device stages are not enough.
    if let Some(cs) = N3_CELL_STAGES.get_ptr_mut(&p.outer_src) {
        // SAFETY: a live value of the userspace-owned cell-stage map.
        // A cap whose protection is off does not spend its budget either.
        if policy::gate(cfg, PROT_CELL_CAP) != Gate::Off
            && !policy::cell_cap_admits(unsafe { &mut *cs }, now)
            && enforced(cfg, PROT_CELL_CAP, Verdict::DropCellCap, len)
        {
            count_device_drop(dev);
            return Verdict::DropCellCap;
        }
    }
    if let Some(slot) = N3_PCPU_TAT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        if policy::gate(cfg, PROT_HOST_CAP) != Gate::Off
            && !policy::host_cap_admits(cfg, unsafe { &mut (*slot).host_cap_tat }, now)
            && enforced(cfg, PROT_HOST_CAP, Verdict::DropHostCap, len)
        {
            count_device_drop(dev);
            return Verdict::DropHostCap;
        }
    }
    Verdict::PassGpdu
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
