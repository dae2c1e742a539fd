//! UE pins on a member keyed by TEID (`key_mode = "teid"`, a UPF's default): the fleet names a UE by
//! its address or prefix, this data plane keys devices by F-TEID, and the only link between the
//! two on this host is anti-spoofing's **learned** binding of each F-TEID to the inner source its
//! session uses (`DeviceState::bound_v4`, `bound_v6`, `bind_flags`; docs/dataplane.md
//! "Anti-spoofing"). A UE pin reaches the F-TEIDs bound to the UE's address (IPv4) or device
//! prefix (IPv6), and those that bind later.
//!
//! - [`bound_ue_keys`]: the UE keys (as `key_mode = "ue_addr"` keys them) a TEID device's learned
//!   bindings name; nothing for a family whose bit is not in `bind_flags`, whatever the field
//!   holds, and nothing for a UE-address device;
//! - [`BoundPins`]: the mailbox between the fleet task (`fleet::apply::Applier`, which writes
//!   the stages and audits them) and the N3 controller, which offers every device of each walk
//!   slice it reads ([`BoundPins::offer`]): those bound to a pinned UE and not yet reached are
//!   queued for the fleet task. No etcd, no maps here: F-TEIDs stay on this host, never in etcd.
//!
//! What counts is the binding, never the packet: a G-PDU whose inner source is not its F-TEID's
//! binding is a spoof and changes nothing (`policy::check_binding`, `apply_binding`), so a forger
//! putting a victim's address on its own F-TEID neither gets the victim's F-TEID reached by a pin
//! on the forger's address nor moves its own F-TEID out of one. A reached F-TEID stays pinned
//! until the pin ends, whatever its binding does meanwhile (a shaped forger could otherwise let
//! its binding go idle and rebind to another address to escape).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use guard_common::abi::{DeviceKey, DeviceState, L3Addr, BIND_V4, BIND_V6, DEVICE_KIND_TEID};

use crate::n3::manual::v6_prefix_key;

/// The most F-TEIDs one pin reaches: a UE has at most 15 PDU sessions (PDU session identities
/// 1..=15, TS 24.007 §11.2.3.1b), each one N3 tunnel, times the most devices a prefix pin names
/// (1024, `fleet::pins::MAX_PREFIX_DEVICES`). More are not reached.
pub const MAX_TEIDS_PER_PIN: usize = 15 * 1024;

/// Matches queued for the fleet task at most; more wait for the next walk (they are offered again).
pub const MAX_QUEUED: usize = 65_536;

/// The UE keys a device's learned bindings name: its IPv4 address and its IPv6 prefix (an IPv4v6
/// session has both, TS 23.501 §5.8.2.1). Only F-TEID devices, only bindings whose bit is set.
pub fn bound_ue_keys(key: &DeviceKey, d: &DeviceState) -> [Option<DeviceKey>; 2] {
    if key.kind != DEVICE_KIND_TEID {
        return [None, None];
    }
    let v4 = (d.bind_flags & BIND_V4 != 0).then(|| DeviceKey::ue(&L3Addr::v4(d.bound_v4.to_ne_bytes()))).flatten();
    // `bound_v6` is already the prefix of `antispoof_v6_prefix` bits, as `v6_prefix_key` keys it.
    let v6 = (d.bind_flags & BIND_V6 != 0).then(|| v6_prefix_key(d.bound_v6));
    [v4, v6]
}

/// A TEID device bound to a pinned UE: for the pin at `suffix` (below `pins/`), the device, and
/// the UE key its binding names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub suffix: String,
    pub device: DeviceKey,
    pub ue: DeviceKey,
}

#[derive(Debug, Default)]
struct Index {
    /// UE key → the pins naming it (a UE may be under a `ue/` pin and a `ue-prefix/` pin).
    by_ue: HashMap<DeviceKey, Vec<String>>,
    /// Per pin: its UE keys, and the F-TEIDs already reached (or queued), not offered again.
    pins: HashMap<String, (Vec<DeviceKey>, HashSet<DeviceKey>)>,
    found: Vec<Found>,
}

/// The UE pins resolved through bindings, shared by the fleet task and the N3 controller.
#[derive(Debug, Default)]
pub struct BoundPins {
    inner: Mutex<Index>,
}

impl BoundPins {
    pub fn new() -> BoundPins {
        BoundPins::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Index) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// The fleet task: the pin at `suffix` names `ue` (its UE keys) and has reached `reached`
    /// (replacing what it named before).
    pub fn set(&self, suffix: &str, ue: Vec<DeviceKey>, reached: impl IntoIterator<Item = DeviceKey>) {
        self.remove(suffix);
        self.with(|i| {
            for k in &ue {
                i.by_ue.entry(*k).or_default().push(suffix.to_owned());
            }
            i.pins.insert(suffix.to_owned(), (ue, reached.into_iter().collect()));
        });
    }

    /// The fleet task: the pin at `suffix` is gone (or no longer resolved through bindings).
    pub fn remove(&self, suffix: &str) {
        self.with(|i| {
            let Some((ue, _)) = i.pins.remove(suffix) else { return };
            for k in ue {
                if let Some(v) = i.by_ue.get_mut(&k) {
                    v.retain(|s| s != suffix);
                    if v.is_empty() {
                        i.by_ue.remove(&k);
                    }
                }
            }
            i.found.retain(|f| f.suffix != suffix);
        });
    }

    /// The fleet task: what the controller found since the last call.
    pub fn take_found(&self) -> Vec<Found> {
        self.with(|i| std::mem::take(&mut i.found))
    }

    /// The fleet task: a queued device was not pinned after all (the stage map refused it); offer
    /// it again on a later walk.
    pub fn unreach(&self, suffix: &str, device: &DeviceKey) {
        self.with(|i| {
            if let Some((_, r)) = i.pins.get_mut(suffix) {
                r.remove(device);
            }
        });
    }

    /// Whether any pin is resolved through bindings (the controller skips its offer otherwise).
    pub fn is_empty(&self) -> bool {
        self.with(|i| i.pins.is_empty())
    }

    /// The N3 controller, with each walk slice it reads: the TEID devices bound to a pinned UE and
    /// not reached yet are queued for the fleet task (at most [`MAX_QUEUED`] at a time, and
    /// [`MAX_TEIDS_PER_PIN`] per pin). Returns how many were queued. With no such pin this is one
    /// lock and a length check.
    pub fn offer(&self, devices: &[(DeviceKey, DeviceState)]) -> usize {
        self.with(|i| {
            if i.by_ue.is_empty() {
                return 0;
            }
            let mut n = 0;
            for (key, d) in devices {
                for ue in bound_ue_keys(key, d).into_iter().flatten() {
                    let Some(suffixes) = i.by_ue.get(&ue) else { continue };
                    for s in suffixes {
                        let Some((_, reached)) = i.pins.get_mut(s) else { continue };
                        if i.found.len() >= MAX_QUEUED || reached.len() >= MAX_TEIDS_PER_PIN {
                            continue;
                        }
                        if reached.insert(*key) {
                            i.found.push(Found { suffix: s.clone(), device: *key, ue });
                            n += 1;
                        }
                    }
                }
            }
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::abi::{DEVICE_KIND_UE_V4, KEY_MODE_TEID};
    use guard_common::policy::{apply_binding, binding_of, check_binding, Bind};

    const REBIND: u64 = 60_000_000_000;

    fn cfg() -> guard_common::abi::GuardConfig {
        guard_common::abi::GuardConfig {
            key_mode: KEY_MODE_TEID,
            antispoof_v6_prefix: 64,
            antispoof_rebind_ns: REBIND,
            ..Default::default()
        }
    }

    /// A G-PDU from `src` on the device at `now`, as the data plane judges it and, if it passed,
    /// records it (`passed`: not dropped by a stage or, for a spoof, by an enforcing mode).
    fn gpdu(d: &mut DeviceState, src: &str, now: u64, passed: bool) -> Bind {
        let a = crate::n3::local::l3_of(src.parse().expect("address"));
        let b = match binding_of(&cfg(), &a, 0, 7) {
            Some((bit, v)) => check_binding(&cfg(), d, bit, v, now),
            None => Bind::Skip,
        };
        if passed && b != Bind::Spoof {
            apply_binding(d, b, now);
        }
        b
    }

    /// The UE keys of a pin's target (`ue/A` or a `ue-prefix/N/24`), as `PinTarget::device_keys`
    /// names them.
    fn keys(t: &str) -> Vec<DeviceKey> {
        match t.strip_prefix("ue-prefix/").and_then(|p| p.strip_suffix("/24")) {
            Some(net) => {
                let base = u32::from(net.parse::<std::net::Ipv4Addr>().expect("a /24"));
                (0..256u32).map(|i| ue(&std::net::Ipv4Addr::from(base + i).to_string())).collect()
            }
            None => vec![ue(t.strip_prefix("ue/").expect("ue/<address>"))],
        }
    }

    fn ue(a: &str) -> DeviceKey {
        crate::n3::manual::ue_device_key(a.parse().expect("address"), 64).expect("a UE")
    }

    #[test]
    fn only_learned_bindings_of_teid_devices_name_a_ue() {
        let teid = DeviceKey::teid(7);
        let mut d = DeviceState::default();
        // Nothing learned: neither the zero address nor anything else is named.
        assert_eq!(bound_ue_keys(&teid, &d), [None, None]);
        d.bound_v4 = u32::from_ne_bytes([10, 45, 0, 7]);
        assert_eq!(bound_ue_keys(&teid, &d), [None, None], "a value without its bit is not a binding");
        d.bind_flags = BIND_V4;
        assert_eq!(bound_ue_keys(&teid, &d), [Some(ue("10.45.0.7")), None]);
        // IPv4v6: both, the IPv6 one by its device prefix (any address of the /64).
        gpdu(&mut d, "2001:db8:45:7::a", 1, true);
        assert_eq!(bound_ue_keys(&teid, &d), [Some(ue("10.45.0.7")), Some(ue("2001:db8:45:7:ffff::1"))]);
        // A UE-address device is no F-TEID: nothing to resolve.
        let k = DeviceKey::ue(&L3Addr::v4([10, 45, 0, 7])).expect("key");
        assert_eq!(k.kind, DEVICE_KIND_UE_V4);
        assert_eq!(bound_ue_keys(&k, &d), [None, None]);
    }

    #[test]
    fn a_pin_reaches_the_teids_bound_to_its_ue_once_each_and_those_that_bind_later() {
        let b = BoundPins::new();
        let dev = |teid: u32, src: &str| {
            let mut d = DeviceState::default();
            gpdu(&mut d, src, 1, true);
            (DeviceKey::teid(teid), d)
        };
        let walk = vec![dev(1, "10.45.0.7"), dev(2, "10.45.0.8"), dev(3, "10.45.1.9"), dev(4, "fe80::1")];
        assert_eq!(b.offer(&walk), 0, "no pin: nothing queued");
        b.set("ue/10.45.0.7", keys("ue/10.45.0.7"), []);
        b.set("ue-prefix/10.45.1.0/24", keys("ue-prefix/10.45.1.0/24"), []);
        assert_eq!(b.offer(&walk), 2);
        let mut got = b.take_found();
        got.sort_by_key(|f| f.suffix.clone());
        assert_eq!(
            got,
            vec![
                Found { suffix: "ue-prefix/10.45.1.0/24".into(), device: DeviceKey::teid(3), ue: ue("10.45.1.9") },
                Found { suffix: "ue/10.45.0.7".into(), device: DeviceKey::teid(1), ue: ue("10.45.0.7") },
            ]
        );
        // The next walk offers them again: already reached, nothing queued.
        assert_eq!(b.offer(&walk), 0);
        // A second session of the same UE binds later: reached at the walk that sees it.
        assert_eq!(b.offer(&[dev(9, "10.45.0.7")]), 1);
        assert_eq!(b.take_found()[0].device, DeviceKey::teid(9));
        // A refused write is offered again.
        b.unreach("ue/10.45.0.7", &DeviceKey::teid(9));
        assert_eq!(b.offer(&[dev(9, "10.45.0.7")]), 1);
        b.take_found();
        // Gone: nothing more, and what was queued for it is dropped.
        assert_eq!(b.offer(&[dev(10, "10.45.0.7")]), 1);
        b.remove("ue/10.45.0.7");
        assert!(b.take_found().is_empty());
        assert_eq!(b.offer(&[dev(11, "10.45.0.7")]), 0);
        assert!(!b.is_empty());
        b.remove("ue-prefix/10.45.1.0/24");
        assert!(b.is_empty());
    }

    #[test]
    fn one_ue_under_two_pins_is_reached_by_each() {
        let b = BoundPins::new();
        b.set("ue/10.45.1.9", keys("ue/10.45.1.9"), []);
        b.set("ue-prefix/10.45.1.0/24", keys("ue-prefix/10.45.1.0/24"), [DeviceKey::teid(3)]);
        let mut d = DeviceState::default();
        gpdu(&mut d, "10.45.1.9", 1, true);
        // Already reached by the prefix pin (its own walk), new to the address pin.
        assert_eq!(b.offer(&[(DeviceKey::teid(3), d)]), 1);
        assert_eq!(b.take_found()[0].suffix, "ue/10.45.1.9");
        // One pin removed, the other still reaches the UE's new sessions.
        b.remove("ue/10.45.1.9");
        assert_eq!(b.offer(&[(DeviceKey::teid(4), d)]), 1);
    }

    /// The threat (docs/fleet.md "UE pins on members keyed by TEID"): a forger whose own session
    /// is bound to its address puts the victim's address as the inner source. Its G-PDUs are
    /// spoofs (passed in shadow mode, dropped in enforce): its F-TEID stays bound to its own
    /// address, so a pin on the forger reaches its F-TEID and never the victim's, and a pin on
    /// the victim never reaches the forger's.
    #[test]
    fn a_forger_with_the_victims_address_on_its_own_teid_moves_no_pin() {
        let (victim, forger) = (DeviceKey::teid(0x100), DeviceKey::teid(0x200));
        let mut dv = DeviceState::default();
        let mut df = DeviceState::default();
        gpdu(&mut dv, "10.45.0.2", 1, true);
        gpdu(&mut df, "10.45.0.66", 1, true);
        for t in 2..100 {
            // Shadow mode: the spoofs pass, and still teach nothing.
            assert_eq!(gpdu(&mut df, "10.45.0.2", t, true), Bind::Spoof);
        }
        let walk = [(victim, dv), (forger, df)];
        let on_forger = BoundPins::new();
        on_forger.set("ue/10.45.0.66", keys("ue/10.45.0.66"), []);
        on_forger.offer(&walk);
        assert_eq!(on_forger.take_found().iter().map(|f| f.device).collect::<Vec<_>>(), vec![forger]);
        let on_victim = BoundPins::new();
        on_victim.set("ue/10.45.0.2", keys("ue/10.45.0.2"), []);
        on_victim.offer(&walk);
        assert_eq!(on_victim.take_found().iter().map(|f| f.device).collect::<Vec<_>>(), vec![victim]);
        // Once reached, the forger stays pinned: letting its binding idle past antispoof_rebind
        // and rebinding to the victim's address (a shaped pin passes some packets) changes
        // nothing for the pin that reached it (nothing un-reaches a device but the pin's end).
        assert!(matches!(gpdu(&mut df, "10.45.0.2", 100 + REBIND, true), Bind::Replace { .. }));
        assert_eq!(on_forger.offer(&[(forger, df)]), 0);
        assert!(on_forger.with(|i| i.pins["ue/10.45.0.66"].1.contains(&forger)), "still reached");
    }

    #[test]
    fn the_queue_and_a_pins_reach_are_bounded() {
        let b = BoundPins::new();
        b.set("ue/10.45.0.7", keys("ue/10.45.0.7"), []);
        let mut d = DeviceState::default();
        gpdu(&mut d, "10.45.0.7", 1, true);
        let many: Vec<_> = (0..(MAX_TEIDS_PER_PIN as u32 + 10)).map(|t| (DeviceKey::teid(t), d)).collect();
        assert_eq!(b.offer(&many), MAX_TEIDS_PER_PIN);
        assert_eq!(b.take_found().len(), MAX_TEIDS_PER_PIN);
    }
}
