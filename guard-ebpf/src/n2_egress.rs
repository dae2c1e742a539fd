//! `guard_n2_egress`: a TC classifier on the N2 NIC's egress that watches what the AMF sends to
//! the RAN, so that `guard_n2` can tell a real peer's association setup from a blind forger's.
//!
//! - An INIT ACK (RFC 9260 §3.3.3) to `peer`:`port` records the AMF's Initiate Tag in
//!   `N2_COOKIES`. The peer's COOKIE ECHO must carry that tag (§5.1, §8.5), which a forger who
//!   cannot receive the INIT ACK never learns: such a COOKIE ECHO is never setup-limited.
//! - A chunk only an association sends (COOKIE ACK, DATA, I-DATA, SACK, HEARTBEAT, HEARTBEAT
//!   ACK) records `peer`:`port` in `N2_ASSOC`: an INIT from there later gets that port's own
//!   re-establishment lane while the peer is setup-limited.
//!
//! It never changes or drops a packet (always `TC_ACT_OK`), and costs one parse of the first
//! chunk and at most one map write per INIT ACK, one per association port per second otherwise.

use aya_ebpf::{bindings::TC_ACT_OK, helpers::bpf_ktime_get_ns, macros::classifier, programs::TcContext};
use guard_common::{
    abi_n2::{N2AssocState, N2PortKey, N2TagKey, N2_STAT_EGRESS_ASSOC, N2_STAT_EGRESS_INIT_ACK},
    parse::n2::{self, Egress},
};

use crate::{
    cursor::TcPacket,
    maps_n2::{N2_ASSOC, N2_CONFIG, N2_COOKIES, N2_STATS},
};

/// Refresh an association port at most this often (its `up_ns` is a "seen recently" mark).
const ASSOC_REFRESH_NS: u64 = 1_000_000_000;

#[classifier]
pub fn guard_n2_egress(ctx: TcContext) -> i32 {
    observe(&ctx);
    TC_ACT_OK
}

#[inline(always)]
fn stat(index: u32) {
    if let Some(c) = N2_STATS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array slot is only touched by this CPU while this program runs.
        unsafe { (*c).packets += 1 };
    }
}

#[inline(never)]
fn observe(ctx: &TcContext) {
    let Some(cfg) = N2_CONFIG.get(0) else {
        return;
    };
    let ctx = TcContext::new(core::hint::black_box(ctx.skb.skb));
    let Some(e) = n2::parse_egress(&TcPacket::new(&ctx), cfg.ngap_port as u16, cfg.s1ap_port as u16) else {
        return;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    match e {
        Egress::InitAck { peer, port, tag } => {
            let key = N2TagKey { peer, port, _pad: 0, tag };
            if N2_COOKIES.insert(&key, &now, 0).is_ok() {
                stat(N2_STAT_EGRESS_INIT_ACK);
            }
        }
        Egress::Assoc { peer, port } => {
            let key = N2PortKey { peer, port, _pad: 0 };
            if let Some(a) = N2_ASSOC.get_ptr_mut(&key) {
                // SAFETY: a live LRU map value; `up_ns` is a last-writer-wins sample.
                unsafe {
                    if now.wrapping_sub((*a).up_ns) >= ASSOC_REFRESH_NS {
                        (*a).up_ns = now;
                        stat(N2_STAT_EGRESS_ASSOC);
                    }
                }
                return;
            }
            let fresh = N2AssocState { up_ns: now, tat: 0, inits: 0, inits_dropped: 0 };
            if N2_ASSOC.insert(&key, &fresh, 0).is_ok() {
                stat(N2_STAT_EGRESS_ASSOC);
            }
        }
    }
}
