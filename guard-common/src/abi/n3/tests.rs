//! Host tests of the N3 map contract (`abi::n3`): keys, slots and their spread.

use super::*;

/// An F-TEID key round-trips, and two local addresses with one TEID are two devices.
#[test]
fn fteid_keys_keep_the_local_index() {
    let a = DeviceKey::fteid(3, 0x1f00);
    assert_eq!(a.as_fteid(), Some((3, 0x1f00)));
    assert_ne!(a, DeviceKey::fteid(4, 0x1f00));
    assert_eq!(DeviceKey::teid(0x1f00), DeviceKey::fteid(LOCAL_INDEX_NONE, 0x1f00));
    assert_eq!(DeviceKey::ue(&L3Addr::v4([10, 0, 0, 1])).and_then(|k| k.as_fteid()), None);
}

/// A gNB's totals are the sum of its slot's per-CPU counts of the slot's current epoch: a
/// CPU still holding an earlier owner's counts (not yet reset: no packet of the new owner on
/// that CPU since the claim) adds nothing.
#[test]
fn cell_totals_sum_the_cpus_of_the_current_epoch_only() {
    let c = |epoch, packets, bytes, gpdu, dropped| CellCounts {
        epoch,
        no_cap_gen: 7,
        packets,
        bytes,
        gpdu,
        dropped,
        new_devices_limited: dropped,
    };
    let per_cpu = [c(3, 10, 1000, 9, 1), c(3, 5, 500, 5, 0), c(2, 99, 9900, 99, 99), c(3, 0, 0, 0, 0)];
    let t = CellCounts::total(3, &per_cpu);
    assert_eq!((t.packets, t.bytes, t.gpdu, t.dropped, t.new_devices_limited), (15, 1500, 14, 1, 1));
    assert_eq!((t.epoch, t.no_cap_gen), (3, 0));
    assert_eq!(CellCounts::total(4, &per_cpu), CellCounts { epoch: 4, ..CellCounts::default() });
    let hot = CellHot { owner: L3Addr::v4([10, 0, 0, 1]), flags: 0, epoch: 3, last_seen_ns: 42 };
    let st = CellState::of(&CellRecord { echo_req: 2, ..CellRecord::default() }, Some((&hot, &t)));
    assert_eq!(
        (st.packets, st.gpdu, st.dropped, st.new_devices_limited, st.last_seen_ns, st.echo_req),
        (15, 14, 1, 1, 42, 2)
    );
    assert_eq!(CellState::of(&CellRecord::default(), None).packets, 0);
}

/// The gNB hash is what it was when it read the octets (the hot slots of a gNB stay where
/// they were across an upgrade that keeps the pins): the family, then the octets four by four
/// as native words, mixed.
#[test]
fn mix_addr_is_the_octet_hash() {
    let octets = |tag: u32, a: &[u8; 16]| {
        let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for x in [tag, w(0), w(4), w(8), w(12)] {
            h = (h ^ u64::from(x)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 31;
        }
        (h >> 32) as u32
    };
    let mut a = [0u8; 16];
    for i in 0..2000u32 {
        for (j, o) in a.iter_mut().enumerate() {
            *o = (i.wrapping_mul(2_654_435_761) >> (j % 4 * 8)) as u8 ^ j as u8;
        }
        let x = L3Addr { family: [FAMILY_IPV4, FAMILY_IPV6, i][i as usize % 3], addr: a };
        assert_eq!(mix_addr(&x), octets(x.family, &x.addr), "{x:?}");
    }
}

/// Home slots are inside the table and spread a host's addresses.
#[test]
fn local_home_slots_spread() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..16u8 {
        let s = local_home_slot(&L3Addr::v4([10, 200, 0, i]));
        assert!(s < LOCAL_SLOTS);
        seen.insert(s);
    }
    assert!(seen.len() >= 12, "16 consecutive addresses share too few home slots: {}", seen.len());
}
