//! The controller's batched, resumable walk of the device map (`N3Maps::device_slice`,
//! `BPF_MAP_LOOKUP_BATCH`) reads every device exactly once, with the values the map holds, across
//! as many slices as it takes; and a finished walk starts over.
use std::collections::HashMap;

use guard::{bpf::batch::Cursor, n3::load, n3::maps::N3Maps};
use guard_common::abi::{device_id, DeviceKey, DeviceState, GuardConfig};

mod common;
use common::Pins;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn batched_walk_reads_every_device_once_across_slices() {
    labkit::netns::assert_root("device_walk::batched_walk_reads_every_device_once_across_slices");
    let pins = Pins::new("walk");
    let mut l = load::load(&pins.0, 1 << 16, &GuardConfig { gtpu_port: 2152, ..Default::default() }).expect("load");
    let mut maps = N3Maps::from_ebpf_ref(&mut l.ebpf).expect("maps");
    const N: u32 = 50_000;
    for i in 0..N {
        let d = DeviceState { own_packets: u64::from(i) * 3 + 1, teid: i, ..Default::default() };
        // The map's own key (schema 10): the walk hands back the `DeviceKey` it stands for.
        maps.devices.insert(device_id::fteid(0, i), d, 0).expect("insert");
    }

    let mut cursor = Cursor::default();
    let mut seen: HashMap<DeviceKey, DeviceState> = HashMap::new();
    let mut slices = 0;
    while !cursor.finished() {
        let mut out = Vec::new();
        let n = maps.device_slice(&mut cursor, 1000, &mut out).expect("slice");
        assert_eq!(n, out.len(), "the count returned is what was appended");
        for (k, v) in out {
            assert!(seen.insert(k, v).is_none(), "device {k:?} read twice in one walk");
        }
        slices += 1;
        assert!(slices < 1000, "the walk does not end");
    }
    assert!(slices > 1, "50000 devices need more than one slice of ~1000 (took {slices})");
    assert_eq!(seen.len(), N as usize, "every device read");
    for i in 0..N {
        let v = seen.get(&DeviceKey::teid(i)).unwrap_or_else(|| panic!("TEID {i} missing"));
        assert_eq!((v.packets(), v.teid), (u64::from(i) * 3 + 1, i), "TEID {i}: the value the map holds");
    }

    // A finished cursor starts a new walk; the whole-map read agrees.
    let mut again = Vec::new();
    maps.device_slice(&mut cursor, usize::MAX, &mut again).expect("second walk");
    assert!(cursor.finished());
    assert_eq!(again.len(), N as usize, "a finished cursor walks the map again from the start");
    assert_eq!(maps.devices().len(), N as usize);
}
