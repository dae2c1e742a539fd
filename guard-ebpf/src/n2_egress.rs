//! `guard_n2_egress`: a TC classifier on the N2 NIC's egress that watches what the AMF sends to
//! the RAN, so that `guard_n2` can tell a real peer's association setup from a blind forger's.
//!
//! - An INIT ACK (RFC 9260 §3.3.3) to `peer`:`port` records the AMF's Initiate Tag in
//!   `N2_COOKIES`. The peer's COOKIE ECHO must carry that tag (§5.1, §8.5), which a forger who
//!   cannot receive the INIT ACK never learns: such a COOKIE ECHO is never setup-limited.
//! - A chunk only an association sends (COOKIE ACK, DATA, I-DATA, SACK, HEARTBEAT, HEARTBEAT
//!   ACK) records `peer`:`port` in `N2_ASSOC`: an INIT from there later gets that port's own
//!   re-establishment lane while the peer is setup-limited.
//! - The same chunks, by their verification tag, tie the other addresses of a multi-homed peer to
//!   it (`N2_VTAGS`, `N2_ALIAS`; see [`learn_path`]).
//!
//! It never changes or drops a packet (always `TC_ACT_OK`), and costs one parse of the first
//! chunk and at most one map write per INIT ACK, one per association port per second otherwise.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_OK},
    macros::classifier,
    programs::TcContext,
};
use guard_common::{
    abi::L3Addr,
    abi_n2::{
        N2AssocState, N2PortKey, N2TagKey, N2VtagKey, N2_STAT_EGRESS_ALIAS, N2_STAT_EGRESS_ASSOC,
        N2_STAT_EGRESS_INIT_ACK,
    },
    parse::n2::{self, Egress},
};

use crate::{
    cursor::TcPacket,
    maps_n2::{N2_ALIAS, N2_ASSOC, N2_CONFIG, N2_COOKIES, N2_STATS, N2_VTAGS},
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
    let now = crate::clock::n2_ns();
    match e {
        Egress::InitAck { peer, port, tag } => {
            let key = N2TagKey { peer, port, _pad: 0, tag };
            if N2_COOKIES.insert(&key, &now, 0).is_ok() {
                stat(N2_STAT_EGRESS_INIT_ACK);
            }
        }
        Egress::Assoc { peer, port, vtag } => {
            let key = N2PortKey { peer, port, _pad: 0 };
            if let Some(a) = N2_ASSOC.get_ptr_mut(&key) {
                // SAFETY: a live LRU map value; `up_ns` is a last-writer-wins sample.
                let due = unsafe { now.wrapping_sub((*a).up_ns) >= ASSOC_REFRESH_NS };
                if !due {
                    return;
                }
                // SAFETY: as above.
                unsafe { (*a).up_ns = now };
                stat(N2_STAT_EGRESS_ASSOC);
            } else {
                let fresh = N2AssocState { up_ns: now, tat: 0, inits: 0, inits_dropped: 0 };
                if N2_ASSOC.insert(&key, &fresh, 0).is_ok() {
                    stat(N2_STAT_EGRESS_ASSOC);
                }
            }
            // At most once per path and second: which association this is, and whether this
            // address is another path of a peer already known by another address.
            learn_path(&peer, port, vtag);
        }
    }
}

/// Multi-homing (RFC 9260 §6.4) and added addresses (RFC 5061 ASCONF): every path of an
/// association carries the peer's same verification tag, and the AMF sends to a path only once
/// the association exists (its HEARTBEATs to each address, §5.4). The first address the AMF
/// sends an association's chunks to is its peer (`N2_VTAGS`); any other address it sends the same
/// association's chunks to becomes an alias of that peer (`N2_ALIAS`), so `guard_n2` counts,
/// allows and stages it as the peer. A blind forger cannot make the AMF send association chunks
/// to an address of its choosing: that takes an established association (a valid cookie) or an
/// authenticated ASCONF (RFC 5061 requires AUTH, RFC 4895).
#[inline(always)]
fn learn_path(peer: &L3Addr, port: u16, vtag: u32) {
    if vtag == 0 {
        return;
    }
    let vk = N2VtagKey { tag: vtag, port, _pad: 0 };
    // SAFETY: a live LRU map value, copied out at once.
    let owner = unsafe { N2_VTAGS.get(&vk) }.copied();
    match owner {
        None => {
            let _ = N2_VTAGS.insert(&vk, peer, u64::from(BPF_NOEXIST));
        }
        Some(o) if !o.same(peer) => {
            // SAFETY: as above.
            let known = unsafe { N2_ALIAS.get(peer) }.is_some_and(|a| a.same(&o));
            if !known && N2_ALIAS.insert(peer, &o, 0).is_ok() {
                stat(N2_STAT_EGRESS_ALIAS);
            }
        }
        Some(_) => {}
    }
}
