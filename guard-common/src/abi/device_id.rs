//! The 8-byte key of `N3_DEVICES` and `N3_STAGES` (schema 10, issue 19): a device's identity
//! packed into a u64, and its inverse, the [`DeviceKey`] userspace names devices by.
//!
//! Why 8 bytes: the kernel hashes (`jhash2`) and compares (`memcmp`) the whole key on every lookup,
//! and a 20-byte key cost 10.1 ns a hit where an 8-byte one costs 6.4 (probes `xdp_op_lru*`,
//! BENCHMARKS.md §9). What identifies a device fits:
//!
//! - an IPv6 UE (UE-address mode) is its prefix, at most 64 bits (`antispoof_v6_prefix` is
//!   validated 1..=64; TS 23.501 §5.8.2.2.2 hands a UE a /64): **the id is the masked prefix
//!   itself**, big-endian, so every one of the 2^64 values may be a UE's;
//! - an F-TEID (the TEID and the index 1..=64 of the local address, [`LOCAL_SLOTS`]) and a UE's
//!   IPv4 address are 40 and 32 bits. They are put in the one region of the prefix space that no
//!   IPv6 UE is ever keyed by: **link-local, fe80::/10** (RFC 4291 §2.5.6). The data plane never
//!   keys a link-local source by its prefix (`policy::n3::names_ue`: it is a UE's neighbour
//!   discovery, keyed by its F-TEID instead), so `0xfe80 << 48 | kind << 40 | id` is free. The
//!   kind byte (never 0) tells them apart.
//!
//! So one map holds every kind, still injective: a prefix of 10 bits or more that names a UE
//! never starts with fe80::/10, and a shorter one (/1 to /9, absurd but valid) has zeros where
//! the kind byte sits. [`ue_v6`] refuses the few values that would collide anyway (`None`, which
//! the data plane can never produce), so injectivity holds by construction, not only by that
//! argument; the proptests below check both. A second map for IPv6 (the first design) would have
//! cost a second capacity, a second walk, and the verifier a second copy of everything after the
//! lookup (a map value pointer remembers its map, so the states of the two never merge).

use super::{DeviceKey, DEVICE_KIND_TEID, DEVICE_KIND_UE_V4, DEVICE_KIND_UE_V6, LOCAL_SLOTS};

/// A device's key in `N3_DEVICES` and `N3_STAGES`.
pub type DeviceId = u64;

/// The top 16 bits of an F-TEID's or an IPv4 UE's id: fe80::, the start of link-local.
pub const ID_TAG: u64 = 0xfe80 << 48;
/// Mask of the tag and kind byte.
const TAG_KIND_MASK: u64 = 0xffff_ff00_0000_0000;
/// Kind byte (bits 40..48) of an F-TEID id.
pub const ID_KIND_FTEID: u64 = 1;
/// Kind byte of an IPv4 UE's id.
pub const ID_KIND_UE_V4: u64 = 4;

// The local index fits the kind byte's 8 bits below it (bits 32..40).
const _: () = assert!(LOCAL_SLOTS < 256);

/// The id of the F-TEID (`local` index, `teid`). `local` is at most [`LOCAL_SLOTS`]; only its low 8
/// bits are kept.
#[inline(always)]
pub const fn fteid(local: u32, teid: u32) -> DeviceId {
    ID_TAG | ID_KIND_FTEID << 40 | ((local & 0xff) as u64) << 32 | teid as u64
}

/// The id of an IPv4 UE, `addr` its four octets in network order.
#[inline(always)]
pub const fn ue_v4(addr: [u8; 4]) -> DeviceId {
    ID_TAG | ID_KIND_UE_V4 << 40 | u32::from_be_bytes(addr) as u64
}

/// The id of an IPv6 UE's prefix (big-endian, the bits after the prefix length zero), or `None`
/// for a value in the F-TEID and IPv4 region, which no UE prefix the data plane keys by can be
/// (see the module's doc).
#[inline(always)]
pub const fn ue_v6(prefix: u64) -> Option<DeviceId> {
    if is_tagged(prefix) {
        None
    } else {
        Some(prefix)
    }
}

/// Whether an id is an F-TEID's or an IPv4 UE's (else it is an IPv6 prefix).
#[inline(always)]
const fn is_tagged(id: DeviceId) -> bool {
    let t = id & TAG_KIND_MASK;
    t == ID_TAG | ID_KIND_FTEID << 40 || t == ID_TAG | ID_KIND_UE_V4 << 40
}

/// The F-TEID (local index, TEID) of an id, `None` for a UE's.
#[inline(always)]
pub const fn as_fteid(id: DeviceId) -> Option<(u32, u32)> {
    if id & TAG_KIND_MASK == ID_TAG | ID_KIND_FTEID << 40 {
        Some(((id >> 32) as u32 & 0xff, id as u32))
    } else {
        None
    }
}

/// The [`DeviceKey`] of an id: the inverse of [`of_key`], defined for every u64.
pub const fn to_key(id: DeviceId) -> DeviceKey {
    if let Some((local, teid)) = as_fteid(id) {
        return DeviceKey::fteid(local, teid);
    }
    if id & TAG_KIND_MASK == ID_TAG | ID_KIND_UE_V4 << 40 {
        let a = (id as u32).to_be_bytes();
        return DeviceKey { kind: DEVICE_KIND_UE_V4, id: [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
    }
    let p = id.to_be_bytes();
    DeviceKey { kind: DEVICE_KIND_UE_V6, id: [p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 0, 0, 0, 0, 0, 0, 0, 0] }
}

/// The id of a [`DeviceKey`], or `None` for a key no device of the data plane can have: an
/// F-TEID with a local index above [`LOCAL_SLOTS`] or stray octets, an IPv4 key with octets past
/// the fourth, an IPv6 key longer than 64 bits or in the F-TEID and IPv4 region ([`ue_v6`]), an
/// unknown kind. `to_key(of_key(k)?) == k`.
pub const fn of_key(k: &DeviceKey) -> Option<DeviceId> {
    let i = &k.id;
    let tail8 = u64::from_ne_bytes([i[8], i[9], i[10], i[11], i[12], i[13], i[14], i[15]]);
    if tail8 != 0 {
        return None;
    }
    match k.kind {
        DEVICE_KIND_TEID => match k.as_fteid() {
            Some((local, teid)) if local <= LOCAL_SLOTS => Some(fteid(local, teid)),
            _ => None,
        },
        DEVICE_KIND_UE_V4 => {
            if i[4] != 0 || i[5] != 0 || i[6] != 0 || i[7] != 0 {
                return None;
            }
            Some(ue_v4([i[0], i[1], i[2], i[3]]))
        }
        DEVICE_KIND_UE_V6 => ue_v6(u64::from_be_bytes([i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7]])),
        _ => None,
    }
}

/// A 32-bit hash of an id (the splitmix64 finaliser, the top half), for slot choices
/// (`N3_SEEN`'s octet, `N3_STAGED`'s bit), the same in the kernel and in userspace. Not for
/// security.
#[inline(always)]
pub const fn mix(id: DeviceId) -> u32 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        abi::{GuardConfig, L3Addr, LOCAL_INDEX_NONE},
        policy::{self, UeKey},
    };

    /// The ids the data plane builds for one inner source in UE-address mode, as
    /// `guard-ebpf/src/n3/key.rs` builds them.
    fn ue_mode_id(cfg: &GuardConfig, src: &L3Addr, local: u32, teid: u32) -> DeviceId {
        match policy::ue_key_of(cfg, src) {
            UeKey::V4 => ue_v4([src.addr[0], src.addr[1], src.addr[2], src.addr[3]]),
            UeKey::V6Prefix(p) => ue_v6(p).unwrap_or(fteid(local, teid)),
            UeKey::None => fteid(local, teid),
        }
    }

    #[test]
    fn each_kind_round_trips_and_keeps_its_fields() {
        assert_eq!(fteid(3, 0x1f00), 0xfe80_0103_0000_1f00);
        assert_eq!(as_fteid(fteid(3, 0x1f00)), Some((3, 0x1f00)));
        assert_eq!(to_key(fteid(LOCAL_INDEX_NONE, 7)), DeviceKey::teid(7));
        assert_eq!(ue_v4([10, 0, 0, 1]), 0xfe80_0400_0a00_0001);
        assert_eq!(to_key(ue_v4([10, 0, 0, 1])), DeviceKey::ue(&L3Addr::v4([10, 0, 0, 1])).unwrap());
        assert_eq!(as_fteid(ue_v4([10, 0, 0, 1])), None);
        let p = 0x2001_0db8_0000_0001;
        assert_eq!(ue_v6(p), Some(p));
        assert_eq!(to_key(p).kind, DEVICE_KIND_UE_V6);
        assert_eq!(to_key(p).id[..8], p.to_be_bytes());
        // A /9 prefix of fec0::/10 (site-local, names a UE) is 0xfe80 << 48: its kind byte is 0,
        // so it is a prefix, not a tagged id.
        assert_eq!(ue_v6(0xfe80 << 48), Some(0xfe80 << 48));
        assert_eq!(ue_v6(fteid(1, 2)), None);
        assert_eq!(ue_v6(ue_v4([1, 2, 3, 4])), None);
    }

    #[test]
    fn keys_no_device_can_have_have_no_id() {
        assert_eq!(of_key(&DeviceKey::fteid(LOCAL_SLOTS + 1, 5)), None);
        let mut k = DeviceKey::teid(5);
        k.id[12] = 1;
        assert_eq!(of_key(&k), None);
        let mut v4 = DeviceKey::ue(&L3Addr::v4([10, 0, 0, 1])).unwrap();
        v4.id[5] = 1;
        assert_eq!(of_key(&v4), None);
        let v6 = DeviceKey::ue(&L3Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(of_key(&v6), None, "a /128 is longer than any prefix the data plane keys by");
        assert_eq!(of_key(&DeviceKey { kind: 9, id: [0; 16] }), None);
    }

    #[test]
    fn the_hash_spreads_neighbouring_ids() {
        let mut slots = std::collections::HashSet::new();
        for t in 0..4096 {
            slots.insert(mix(fteid(0, t)) >> 20);
        }
        // 4096 ids into 4096 slots: about 63% distinct if uniform.
        assert!(slots.len() > 2400, "{}", slots.len());
    }

    /// The top 24 bits of an id in or near the tagged region: fe80::/9 (link-local and
    /// site-local) with the tag's kind bytes, 0 or any.
    fn near_tag() -> impl Strategy<Value = u64> {
        let second = prop_oneof![Just(0x80u64), Just(0xc0), 0x80u64..=0xff];
        let kind = prop_oneof![Just(ID_KIND_FTEID), Just(ID_KIND_UE_V4), Just(0), 0u64..=0xff];
        (second, kind).prop_map(|(s, k)| 0xfe << 56 | s << 48 | k << 40)
    }

    /// 16 octets, a third of them with the first three from [`near_tag`].
    fn any_v6() -> impl Strategy<Value = [u8; 16]> {
        (any::<[u8; 16]>(), proptest::option::weighted(0.3, near_tag())).prop_map(|(mut a, hi)| {
            if let Some(hi) = hi {
                a[..3].copy_from_slice(&hi.to_be_bytes()[..3]);
            }
            a
        })
    }

    fn any_key() -> impl Strategy<Value = DeviceKey> {
        prop_oneof![
            (0..=LOCAL_SLOTS, any::<u32>()).prop_map(|(l, t)| DeviceKey::fteid(l, t)),
            any::<[u8; 4]>().prop_map(|a| DeviceKey::ue(&L3Addr::v4(a)).unwrap()),
            (any::<u64>(), 1u32..=64).prop_map(|(p, len)| {
                let p = p & (u64::MAX << (64 - len));
                let b = p.to_be_bytes();
                DeviceKey {
                    kind: DEVICE_KIND_UE_V6,
                    id: [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 0, 0, 0, 0, 0, 0, 0, 0],
                }
            }),
            // Prefixes in and near the tagged region, where a collision would be.
            (any::<u64>(), near_tag()).prop_map(|(lo, hi)| {
                let b = (hi | lo & 0xff_ffff_ffff).to_be_bytes();
                DeviceKey {
                    kind: DEVICE_KIND_UE_V6,
                    id: [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 0, 0, 0, 0, 0, 0, 0, 0],
                }
            }),
        ]
    }

    proptest! {
        /// Every id is some key's, and every key with an id comes back from it: `of_key` is
        /// injective (two keys with one id would break the round trip of one of them).
        #[test]
        fn ids_round_trip(k in any_key(), id in any::<u64>()) {
            if let Some(i) = of_key(&k) {
                prop_assert_eq!(to_key(i), k);
            }
            prop_assert_eq!(of_key(&to_key(id)), Some(id));
        }

        /// Two different keys never share an id.
        #[test]
        fn different_keys_get_different_ids(a in any_key(), b in any_key()) {
            if a != b {
                if let (Some(x), Some(y)) = (of_key(&a), of_key(&b)) {
                    prop_assert_ne!(x, y);
                }
            }
        }

        /// UE-address mode: every source the data plane keys by its prefix gets a prefix id (the
        /// `None` of `ue_v6` is never taken), and two sources get one id only when they are one
        /// device (the same IPv4 UE, the same masked prefix, or the same F-TEID for sources that
        /// name no UE).
        #[test]
        fn ue_mode_ids_are_one_per_device(
            a in any_v6(), b in any_v6(), v4 in any::<bool>(), ll in any::<bool>(),
            len in 1u32..=64, local in 0..=LOCAL_SLOTS, teid in any::<u32>(), teid2 in any::<u32>(),
        ) {
            let cfg = GuardConfig { antispoof_v6_prefix: len, ..GuardConfig::default() };
            let mut a6 = a;
            if ll {
                a6[0] = 0xfe;
                a6[1] = 0x80 | (a6[1] & 0x3f);
            }
            let src = if v4 { L3Addr::v4([a[0], a[1], a[2], a[3]]) } else { L3Addr::v6(a6) };
            if let UeKey::V6Prefix(p) = policy::ue_key_of(&cfg, &src) {
                prop_assert!(ue_v6(p).is_some(), "prefix {p:#x} /{len}");
            }
            let other = L3Addr::v6(b);
            let (x, y) = (ue_mode_id(&cfg, &src, local, teid), ue_mode_id(&cfg, &other, local, teid2));
            if x == y {
                let same = match (policy::ue_key_of(&cfg, &src), policy::ue_key_of(&cfg, &other)) {
                    (UeKey::V6Prefix(p), UeKey::V6Prefix(q)) => p == q,
                    (UeKey::None, UeKey::None) => teid == teid2,
                    _ => false,
                };
                prop_assert!(same, "{src:?} and {other:?} share {x:#x}");
            }
        }
    }
}
