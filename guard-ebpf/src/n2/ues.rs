//! What `guard_n2` counts from each InitialUEMessage: access attempts per cell (`N2_CELLS`) and per
//! device (`N2_DEVICES`), by NAS message class and RRC establishment cause.

use super::*;

/// NAS classes: registration (5GMM Registration Request; EMM Attach / TAU Request), service
/// request, other.
#[inline(always)]
pub(super) fn nas_class(proto: u32, msg: u32) -> u32 {
    let m = msg as u8;
    if proto == ngap::PROTO_S1AP as u32 {
        match m {
            ngap::NAS_EMM_ATTACH_REQUEST | ngap::NAS_EMM_TAU_REQUEST => 0,
            ngap::NAS_EMM_SERVICE_REQUEST => 1,
            _ => 2,
        }
    } else {
        match m {
            ngap::NAS_5GMM_REGISTRATION_REQUEST => 0,
            ngap::NAS_5GMM_SERVICE_REQUEST => 1,
            _ => 2,
        }
    }
}

/// RRC establishment causes that must never be barred: emergency (0), highPriorityAccess (1),
/// and in NR mps-PriorityAccess (8), mcs-PriorityAccess (9).
#[inline(always)]
pub(super) fn priority_cause(proto: u32, cause: u32) -> bool {
    cause == 0 || cause == 1 || (proto != ngap::PROTO_S1AP as u32 && (cause == 8 || cause == 9))
}

/// Walk the `i`-th InitialUEMessage of the packet and count it on its cell and device.
#[inline(always)]
pub(super) fn initial_ue(ctx: &XdpContext, p: &N2Packet, i: usize, peer: *mut N2PeerState) {
    let Some(up) = N2_UE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot; cleared with word stores (see `ngap::initial_ue_head`).
    let u = unsafe {
        zero(up);
        &mut *up
    };
    let (Some(&off), Some(&end), Some(&proto)) = (p.ue_off.get(i), p.ue_end.get(i), p.ue_proto.get(i)) else {
        return;
    };
    match parse_ue(ctx, off, end, proto, u) {
        Ok(()) => {}
        // Beyond the parse window: what was read before it is still good.
        Err(NgapError::Window) => stat(N2_STAT_NGAP_UNPARSED),
        Err(_) => {
            stat(N2_STAT_NGAP_UNPARSED);
            return;
        }
    }
    account_ue(p, u, peer);
}

/// Count the message on its cell and device. A BPF subprogram of its own: inlined into the
/// `bpf_loop` callback it cost 27 ns more a message (the A/B of `cargo xtask bench --ab`, AMD EPYC,
/// BENCHMARKS.md §26), though a call and its return cost ~7; together with `parse_ue` inlined the
/// verifier failed ("backtracking call unexpected regs", kernel 6.18).
#[inline(never)]
pub(super) fn account_ue(p: &N2Packet, u: &InitialUe, peer: *mut N2PeerState) {
    let now = crate::clock::n2_ns();
    // SAFETY: the peer's LRU map value, which `policy` looked up in this run of the program: its
    // memory stays valid for the run (RCU) and its counters are atomic. As with any LRU value a
    // program holds, another CPU that evicts the peer meanwhile may recycle the entry for another
    // peer (a full `N2_PEERS`, within the ~200 ns since the lookup): this diagnostic count then
    // lands on that peer.
    unsafe { add(&mut (*peer).ue_walked, 1) };
    let class = nas_class(u.proto, u.nas_msg);
    let has_tmsi = u.present & (ngap::UE_HAS_S_TMSI | ngap::UE_HAS_GUTI) != 0;
    let mut cell_key = N2CellKey::default();
    if u.present & ngap::UE_HAS_CELL != 0 {
        cell_key = N2CellKey { kind: u.cell_kind, plmn: u.plmn, cell_id: u.cell_id };
        if let Some(c) = cell_state(&cell_key, now) {
            // SAFETY: a live LRU map value.
            let c = unsafe { &mut *c };
            add(&mut c.initial_ue, 1);
            match class {
                0 => add(&mut c.registration_requests, 1),
                1 => add(&mut c.service_requests, 1),
                _ => add(&mut c.other_nas, 1),
            }
            if has_tmsi {
                add(&mut c.with_s_tmsi, 1);
            }
            if priority_cause(u.proto, u.rrc_cause) {
                add(&mut c.priority, 1);
            }
            // A permanent identity and no temporary one: the device cannot be told apart from
            // one attempt to the next, so the cell keeps the pattern (docs/n2.md §4.6).
            if u.present & ngap::UE_HAS_SUCI != 0 && !has_tmsi {
                add(&mut c.suci_only, 1);
                let slot = if (u.rrc_cause as usize) < RRC_CAUSE_SLOTS - 1 {
                    u.rrc_cause as usize
                } else {
                    RRC_CAUSE_SLOTS - 1
                };
                if let Some(n) = c.suci_causes.get_mut(slot) {
                    add32(n, 1);
                }
            }
            c.last_seen_ns = now;
            c.last_peer = p.src;
            if u.present & ngap::UE_HAS_TAC != 0 {
                c.tac = u.tac;
            }
        }
    }
    let key = if has_tmsi {
        if u.proto == ngap::PROTO_S1AP as u32 {
            N2DeviceKey::s_tmsi(u.tmsi_hi as u8, u.tmsi)
        } else {
            N2DeviceKey::five_g_s_tmsi(u.amf_set_id(), u.amf_pointer(), u.tmsi)
        }
    } else if u.present & ngap::UE_HAS_RAN_UE_ID != 0 {
        match N2DeviceKey::ran_ue(&p.src, u.ran_ue_id) {
            Some(k) => k,
            None => return,
        }
    } else {
        return;
    };
    let Some(d) = device_state(&key, now) else {
        return;
    };
    // SAFETY: a live LRU map value.
    let d = unsafe { &mut *d };
    add(&mut d.attempts, 1);
    match class {
        0 => add(&mut d.registration_requests, 1),
        1 => add(&mut d.service_requests, 1),
        _ => {}
    }
    d.last_seen_ns = now;
    d.cell = cell_key;
    d.peer = p.src;
    d.ran_ue_id = u.ran_ue_id;
    d.rrc_cause = u.rrc_cause;
    d.nas_msg = u.nas_msg;
}

#[inline(always)]
pub(super) fn cell_state(key: &N2CellKey, now: u64) -> Option<*mut N2CellState> {
    if let Some(c) = N2_CELLS.get_ptr_mut(key) {
        return Some(c);
    }
    let fresh = N2_NEW_CELL.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot; reset in full before each use.
    unsafe {
        zero(fresh);
        (*fresh).first_seen_ns = now;
    }
    // SAFETY: valid map value pointer.
    let _ = N2_CELLS.insert(key, unsafe { &*fresh }, u64::from(BPF_NOEXIST));
    let c = N2_CELLS.get_ptr_mut(key);
    if c.is_none() {
        stat(N2_STAT_MAP_UPDATE_FAILED);
    }
    c
}

#[inline(always)]
pub(super) fn device_state(key: &N2DeviceKey, now: u64) -> Option<*mut N2DeviceState> {
    if let Some(d) = N2_DEVICES.get_ptr_mut(key) {
        return Some(d);
    }
    let fresh = N2_NEW_DEV.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot; reset in full before each use.
    unsafe {
        zero(fresh);
        (*fresh).first_seen_ns = now;
    }
    // SAFETY: valid map value pointer.
    let _ = N2_DEVICES.insert(key, unsafe { &*fresh }, u64::from(BPF_NOEXIST));
    let d = N2_DEVICES.get_ptr_mut(key);
    if d.is_none() {
        stat(N2_STAT_MAP_UPDATE_FAILED);
    }
    d
}
