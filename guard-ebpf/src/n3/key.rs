//! Who a G-PDU belongs to: the host address it arrived at (`N3_LOCAL`), its device key (an
//! F-TEID, or the UE address or IPv6 prefix: TS 23.501 §5.8.2.2), whether its inner source lies in a
//! framed route, and whether its session is established (`N3_SEEN`).

use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};
use guard_common::{
    abi::{
        device_id, local_home_slot, seen_slot, staged_bit, DeviceId, GuardConfig, L3Addr, FAMILY_IPV4, FAMILY_NONE,
        KEY_MODE_UE_ADDR, LOCAL_INDEX_NONE, LOCAL_PROBES, LOCAL_SLOTS, SEEN_ENTRY_WORDS,
    },
    parse::n3::{self, GtpPacket},
    policy,
};

use crate::{
    cursor::XdpPacket,
    maps::{N3_FRAMED, N3_LOCAL, N3_PKT, N3_SEEN, N3_STAGED},
};

/// The index (slot + 1) and flags of the host address `dst` in `N3_LOCAL`, or
/// (`LOCAL_INDEX_NONE`, 0) when the table does not list it. At most `LOCAL_PROBES` array reads
/// (inlined by the verifier: no helper call, no hash lookup); one on a host whose table is empty
/// (the first slot probed is free) or whose address sits in its home slot. A call of its own:
/// inlined, its probe loop's registers spilled into the program's frame, which the policy's
/// stacks on (measured: 48 bytes more, over the 512-byte limit with the policy's chain).
#[inline(never)]
pub(super) fn local_index(ctx: &XdpContext, vlan_tags: u8, family: u32) -> (u32, u32) {
    // The outer destination, read at its fixed offset (the parse does not keep it: a host with
    // one N3 address never needs it).
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    let Some(dst) = n3::outer_dst_addr(&XdpPacket::new(&ctx), vlan_tags, family) else {
        return (LOCAL_INDEX_NONE, 0);
    };
    let home = local_home_slot(&dst);
    for i in 0..LOCAL_PROBES {
        let slot = (home + i) & (LOCAL_SLOTS - 1);
        let Some(e) = N3_LOCAL.get(slot) else {
            break;
        };
        if e.addr.family == FAMILY_NONE {
            break;
        }
        // Five word compares (`L3Addr::same`), not the derived `==`, which the BPF backend turns
        // into octet loads (BENCHMARKS.md §14).
        if e.addr.same(&dst) {
            return (slot + 1, e.flags);
        }
    }
    (LOCAL_INDEX_NONE, 0)
}

/// Whether a never-seen device may have a stage entry: its bit in `N3_STAGED` is set (a failed
/// read counts as set: the lookup it would spare is made). A call of its own, as `seen_marked`:
/// its hash would otherwise sit in the policy's frame, and a value carried from here to the
/// insert would cost the known devices' paths a register.
#[inline(never)]
pub(super) fn staged_marked(key: DeviceId) -> bool {
    let (word, bit) = staged_bit(key);
    match N3_STAGED.get(word) {
        // SAFETY: a live array value, 8-byte aligned; userspace sets bits in it atomically.
        Some(w) => (unsafe { core::ptr::read_volatile(w) } >> bit) & 1 != 0,
        None => true,
    }
}

/// Whether `key` was marked an established session in `N3_SEEN`. A call of its own: its hash
/// would otherwise sit in the policy's frame (the program and the policy share 512 bytes).
#[inline(never)]
pub(super) fn seen_marked(key: DeviceId) -> bool {
    let (entry, word, bit) = seen_slot(key);
    match N3_SEEN.get(entry) {
        Some(e) => e[word % SEEN_ENTRY_WORDS] >> (bit % 64) & 1 != 0,
        None => false,
    }
}

/// Mark `key` an established session: an atomic OR of its bit (other CPUs mark other bits of the
/// same word; a plain read-modify-write could lose theirs). Once in a device's life.
#[inline(never)]
pub(super) fn mark_seen(key: DeviceId) {
    let (entry, word, bit) = seen_slot(key);
    if let Some(e) = N3_SEEN.get_ptr_mut(entry) {
        // SAFETY: a live array value; the word is updated atomically (BPF_ATOMIC | BPF_OR).
        unsafe {
            core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                &mut (*e)[word % SEEN_ENTRY_WORDS],
                1 << (bit % 64),
            );
        }
    }
}

/// The device's id (`abi::device_id`): 8 bytes, built in a register, so the lookups hash and
/// compare 8 bytes, not the 20 of a `DeviceKey` (schema 10).
#[inline(always)]
pub(super) fn device_key(cfg: &GuardConfig, p: &GtpPacket) -> DeviceId {
    if cfg.key_mode == KEY_MODE_UE_ADDR {
        // An IPv6 UE is its prefix (`antispoof_v6_prefix`, a /64 by default: TS 23.501
        // §5.8.2.2), so a UE rotating privacy addresses (RFC 8981) stays one device and keeps
        // its stage; a source that names no UE (link-local or unspecified: neighbour discovery;
        // 0.0.0.0: DHCP; or non-IP) is keyed by its F-TEID instead, so the Router Solicitations
        // of all UEs do not become one device.
        match policy::ue_key_of(cfg, &p.inner_src) {
            policy::UeKey::V4 => {
                let a = &p.inner_src.addr;
                return device_id::ue_v4([a[0], a[1], a[2], a[3]]);
            }
            // `None` only for a prefix in link-local's region, which `ue_key_of` never keys by
            // (`device_id`): the F-TEID then, as for a link-local source.
            policy::UeKey::V6Prefix(prefix) => {
                if let Some(k) = device_id::ue_v6(prefix) {
                    return k;
                }
            }
            policy::UeKey::None => {}
        }
    }
    device_id::fteid(p.local, p.gtp.teid)
}

/// The id of `teid` on an unlisted local address: the device GTP-U signalling's events name.
#[inline(always)]
pub(super) fn teid_key(teid: u32) -> DeviceId {
    device_id::fteid(LOCAL_INDEX_NONE, teid)
}

/// Whether an inner source lies inside a configured framed route (`N3_FRAMED`, an LPM trie of
/// IPv6 prefixes, IPv4 as IPv4-mapped `::ffff:0:0/96`). A call of its own, with its key in the
/// per-CPU scratch (`Scratch::framed_key`): the policy's frame and the program's share 512 bytes.
#[inline(never)]
pub(super) fn in_framed_route(src: &L3Addr) -> bool {
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
