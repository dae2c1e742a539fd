//! The BPF map ABI: names, schema versions, and the `#[repr(C)]` records both sides read and write.
//! This module holds what both programs use (addresses, stage codes and flags, limits, counters,
//! the META record); [`n3`] is `guard_n3`'s ABI and [`n2`] is `guard_n2`'s.
//!
//! Rules for every type here and in [`n3`] and [`n2`] (checked by the `const` assertions at the
//! bottom of each file):
//! - `#[repr(C)]`, fields ordered so there is no implicit padding, sizes asserted;
//! - integers only (no `bool`, no `Option`, no enums in the layout) so any bit pattern is valid;
//! - times are `CLOCK_MONOTONIC` nanoseconds: both programs (and N2's egress classifier) read the
//!   coarse clock (`bpf_ktime_get_coarse_ns` through a per-CPU cache keyed on jiffies,
//!   `guard-ebpf/src/clock.rs`: the same clock as of the last tick, a tick or two behind, see
//!   `rate::CLOCK_STEP_NS`).
//!
//! Changing any layout **must** bump the schema version of every program whose maps use it
//! ([`SCHEMA_VERSION`] for N3, [`n2::N2_SCHEMA_VERSION`] for N2): a controller that finds pinned
//! maps of another schema refuses to use them instead of misreading them.

pub mod device_id;
pub mod n2;
pub mod n3;

// `guard_common::abi::X` names N3's records too, as it did before they moved to `n3`
// (guard-ebpf, guard-userspace and the tests use that path).
pub use n3::*;

pub use device_id::DeviceId;

/// `b"OVLGUARD"` read as a little-endian u64: marks our META map.
pub const META_MAGIC: u64 = u64::from_le_bytes(*b"OVLGUARD");

// Map names. BPF object names are at most 15 bytes; these are also the pin file names.
pub const MAP_META: &str = "GUARD_META";

/// The `.rodata` global (a `u8`) that only a replay's loader sets: `guard_n2`'s clock then reads
/// [`GLOBAL_REPLAY_NOW`] instead of the kernel's (guard-ebpf `clock.rs`, docs/replay.md;
/// `guard_n3` has a replay twin instead, [`n3::PROG_N3_REPLAY`]).
pub const GLOBAL_REPLAY_CLOCK: &str = "REPLAY_CLOCK";
/// The `.bss` global (a `u64`, ns) holding the capture's time during a replay.
pub const GLOBAL_REPLAY_NOW: &str = "REPLAY_NOW_NS";
/// The map aya makes of the object's `.bss` section (it holds [`GLOBAL_REPLAY_NOW`] alone).
pub const MAP_BSS: &str = ".bss";

/// Address family codes used in [`L3Addr::family`] (not the kernel's AF_* values, to stay
/// independent of libc).
pub const FAMILY_NONE: u32 = 0;
pub const FAMILY_IPV4: u32 = 4;
pub const FAMILY_IPV6: u32 = 6;

/// An IPv4 or IPv6 address. IPv4 sits in the first 4 bytes, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct L3Addr {
    pub family: u32,
    pub addr: [u8; 16],
}

impl L3Addr {
    pub const NONE: L3Addr = L3Addr { family: FAMILY_NONE, addr: [0; 16] };

    #[inline(always)]
    pub const fn v4(a: [u8; 4]) -> Self {
        L3Addr { family: FAMILY_IPV4, addr: [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }
    }

    #[inline(always)]
    pub const fn v6(addr: [u8; 16]) -> Self {
        L3Addr { family: FAMILY_IPV6, addr }
    }

    /// `self == o`, compared as five aligned words. The derived `==` compares the octets with
    /// `bcmp`, which LLVM expands into 8-byte loads of alignment 1 (the array's), and the BPF
    /// backend splits each of those into eight octet loads and the shifts and ors that rebuild
    /// the word: ~50 instructions per compare of two addresses, where this is ten word loads,
    /// the xors and ors, and one branch. The data plane compares a known device's gNB twice per
    /// G-PDU (its cached gNB, its hot slot's owner: guard-ebpf `cells.rs`; issue 19).
    #[inline(always)]
    pub fn same(&self, o: &L3Addr) -> bool {
        let (a, b) = (self.words(), o.words());
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }

    /// The record whose [`Self::words`] are `w`: the family, then the octets four by four as
    /// native-endian words (a word read from a packet with `u32::from_ne_bytes` puts its octets
    /// back in wire order).
    #[inline(always)]
    pub const fn from_words(w: [u32; 5]) -> Self {
        // SAFETY: as in `words`: the same 20 bytes, and every bit pattern is a valid `L3Addr`
        // (a u32 and 16 octets).
        unsafe { core::mem::transmute::<[u32; 5], L3Addr>(w) }
    }

    /// The record as five native-endian words: the family, then the octets four by four.
    #[inline(always)]
    pub fn words(&self) -> [u32; 5] {
        // SAFETY: `L3Addr` is `repr(C)`, a u32 then 16 octets: 20 bytes at the u32's alignment
        // and no padding (size asserted below), i.e. five aligned words, and every bit pattern is
        // a valid u32.
        unsafe { *(self as *const L3Addr).cast::<[u32; 5]>() }
    }
}

/// Device stages (DESIGN §2 "Graduated stages").
pub const STAGE_OBSERVE: u32 = 0;
pub const STAGE_SHAPE: u32 = 1;
pub const STAGE_STRICT: u32 = 2;
pub const STAGE_QUARANTINE: u32 = 3;
pub const STAGE_MAX: u32 = STAGE_QUARANTINE;

/// [`StageEntry::flags`]: set by an operator (`guard device pin`); the controller never changes it.
pub const STAGE_FLAG_MANUAL: u32 = 1 << 0;
/// [`StageEntry::flags`]: never shaped (priority / emergency device group). Overrides the stage.
pub const STAGE_FLAG_EXEMPT: u32 = 1 << 1;

/// A GCRA limit: `interval_ns = 1e9 / rate`, `tau_ns = (burst - 1) * interval_ns`. `interval_ns == 0`
/// means unlimited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub interval_ns: u64,
    pub tau_ns: u64,
}

/// A GCRA byte-rate limit, the byte form beside a [`Limit`]: a packet costs its length, the T-PDU's
/// (docs/dataplane.md, "Byte limits"). `unit_ns` is the time 65,536 octets take at the rate
/// (`524288e9 / bits_per_sec`, `rate::BYTE_LIMIT_UNIT`, `ByteLimit::bits_per_second`), `tau_ns`
/// the burst tolerance (the time of the burst's octets at the rate). `unit_ns == 0` means no
/// byte limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteLimit {
    pub unit_ns: u64,
    pub tau_ns: u64,
}

/// A packet and byte counter (per-CPU arrays `N3_VERDICTS`, `N3_SHADOW`, `N3_MALFORMED`,
/// `N3_STATS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Per-CPU limiter state that no map entry owns (array `N3_PCPU_TAT`, one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TatSlot {
    pub event_tat: u64,
    pub host_cap_tat: u64,
    /// This CPU's share of [`GuardConfig::echo_host`].
    pub echo_host_tat: u64,
    /// This CPU's share of [`GuardConfig::new_gnb`].
    pub new_gnb_tat: u64,
}

/// The single entry of `GUARD_META`: who wrote these pinned maps and in which layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub magic: u64,
    pub schema_version: u32,
    pub program: u32,
    pub layout: u64,
}

// No implicit padding: each size equals the sum of the field sizes.
const _: () = assert!(core::mem::size_of::<L3Addr>() == 20);
const _: () = assert!(core::mem::align_of::<L3Addr>() == core::mem::align_of::<[u32; 5]>());
const _: () = assert!(core::mem::size_of::<Limit>() == 16);
const _: () = assert!(core::mem::size_of::<ByteLimit>() == 16);
const _: () = assert!(core::mem::size_of::<Counter>() == 16);
const _: () = assert!(core::mem::size_of::<TatSlot>() == 32);
const _: () = assert!(core::mem::size_of::<Meta>() == 24);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr() -> impl Strategy<Value = L3Addr> {
        (prop_oneof![Just(FAMILY_NONE), Just(FAMILY_IPV4), Just(FAMILY_IPV6), any::<u32>()], any::<[u8; 16]>())
            .prop_map(|(family, addr)| L3Addr { family, addr })
    }

    proptest! {
        /// `L3Addr::same` is `==`: for two unrelated addresses, and for an address against a
        /// copy of itself with one octet (or the family) changed, whichever octet it is (the
        /// data plane's gNB checks rest on it: a forged source that differed only in its last
        /// octet must not pass for the cached gNB).
        #[test]
        fn same_is_equality(a in addr(), b in addr(), i in 0usize..17, bit in 0u32..8) {
            prop_assert_eq!(a.same(&b), a == b);
            prop_assert!(a.same(&a));
            let mut c = a;
            if i == 16 {
                c.family ^= 1 << bit;
            } else {
                c.addr[i] ^= 1 << bit;
            }
            prop_assert!(!a.same(&c) && !c.same(&a));
        }

        /// `from_words` is `words` undone, and the words are the octets four by four as native
        /// words (what a packet read with `u32::from_ne_bytes` gives: the data plane builds the
        /// outer destination this way, `parse::n3::outer_dst_addr`).
        #[test]
        fn from_words_undoes_words(a in addr()) {
            let w = a.words();
            prop_assert_eq!(L3Addr::from_words(w), a);
            let o = |i: usize| u32::from_ne_bytes([a.addr[i], a.addr[i + 1], a.addr[i + 2], a.addr[i + 3]]);
            prop_assert_eq!(w, [a.family, o(0), o(4), o(8), o(12)]);
        }

        /// The home slot of a local address is what it was when it read the octets (userspace
        /// placed the pinned `N3_LOCAL` with it: a different hash would send the data plane's
        /// probe to other slots after an upgrade).
        #[test]
        fn local_home_slot_is_the_octet_hash(a in addr()) {
            let o = |i: usize| u32::from_ne_bytes([a.addr[i], a.addr[i + 1], a.addr[i + 2], a.addr[i + 3]]);
            let x = o(0) ^ o(4) ^ o(8) ^ o(12) ^ a.family;
            prop_assert_eq!(local_home_slot(&a), x.wrapping_mul(0x9e37_79b1) >> (32 - LOCAL_SLOTS.trailing_zeros()));
        }
    }
}
