//! Fragmented G-PDUs (RFC 791 §3.2): a dropped first fragment drops its datagram's later
//! fragments for a short window (`N3_FRAGS`); any other later fragment passes, unattributed.

use aya_ebpf::programs::XdpContext;
use guard_common::{
    abi::{FragEntry, FragKey, GuardConfig, STAT_MAP_UPDATE_FAILED},
    parse::n3::{self, GtpPacket},
    policy::Verdict,
};

use crate::{
    clock,
    counters::{self, add},
    cursor::XdpPacket,
    maps::N3_FRAGS,
};

/// The datagram key of a fragment (RFC 791 §3.2: source, destination, protocol, Identification;
/// the protocol is UDP for every fragment `parse_into` names).
#[inline(always)]
pub(super) fn frag_key(ctx: &XdpContext, p: &GtpPacket) -> Option<FragKey> {
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let family = p.outer_src.family;
    let dst = n3::outer_dst_addr(&XdpPacket::new(&ctx), p.vlan_tags, family)?;
    Some(FragKey { src: p.outer_src, dst, id: p.frag })
}

/// A first fragment was dropped: drop its datagram's later fragments for `frag_window_ns` too,
/// so a fragmented flood of a dropped device does not fill the UPF's reassembly memory.
#[inline(never)]
pub(super) fn first_fragment_dropped<const REPLAY: bool>(
    ctx: &XdpContext,
    cfg: &GuardConfig,
    p: &GtpPacket,
    cpu: &mut clock::CpuCache,
) {
    let Some(key) = frag_key(ctx, p) else {
        return;
    };
    let now = clock::n3_ns::<REPLAY>(cpu);
    let e = FragEntry { expires_ns: now.saturating_add(cfg.frag_window_ns), dropped: 0 };
    if N3_FRAGS.insert(&key, &e, 0).is_err() {
        counters::stat(STAT_MAP_UPDATE_FAILED);
    }
}

/// A later fragment: dropped when its datagram's first fragment was (and recently), else passed
/// and counted as such: the guard cannot attribute it to a device, and never drops what it cannot
/// attribute.
#[inline(never)]
pub(super) fn later_fragment<const REPLAY: bool>(
    ctx: &XdpContext,
    p: &GtpPacket,
    cpu: &mut clock::CpuCache,
) -> Verdict {
    let Some(key) = frag_key(ctx, p) else {
        return Verdict::PassFragment;
    };
    let Some(e) = N3_FRAGS.get_ptr_mut(&key) else {
        return Verdict::PassFragment;
    };
    let now = clock::n3_ns::<REPLAY>(cpu);
    // SAFETY: a live LRU map value; the counter is updated atomically.
    unsafe {
        if (*e).expires_ns <= now {
            return Verdict::PassFragment;
        }
        add(&mut (*e).dropped, 1);
    }
    Verdict::DropFragment
}
