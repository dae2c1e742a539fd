//! UE pins on a member keyed by TEID (docs/fleet.md "UE pins on members keyed by TEID"): the
//! F-TEIDs bound to the pinned UE, staged when the pin arrives ([`Applier::write_bound`]) and as
//! they bind later ([`Applier::reach`], from the N3 controller's walk through
//! [`crate::n3::bound::BoundPins`]), audited with the pin's author and the F-TEIDs.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use guard_common::abi::{DeviceKey, GuardConfig, StageEntry, PROT_ANTISPOOF};
use serde_json::json;
use tracing::{info, warn};

use super::{byte_limit, device_entry, Applier, Held, Written};
use crate::clock::monotonic_ns;
use crate::fleet::pins::PinTarget;
use crate::fleet::unix_ms;
use crate::n3::bound::{bound_ue_keys, MAX_TEIDS_PER_PIN};
use crate::n3::engine::device_key_str;

impl Applier {
    /// A UE pin on a member keyed by TEID: stage the F-TEIDs whose learned binding names one of
    /// the target's UE keys `ue` (one walk of the device map, now), and leave the target to the N3
    /// controller's walks for the F-TEIDs that bind later ([`Applier::reach`]).
    pub(super) fn write_bound(
        &mut self,
        target: &PinTarget,
        entry: &StageEntry,
        dp: &GuardConfig,
        ue: Vec<DeviceKey>,
    ) -> Written {
        if let Err(e) = resolvable(dp) {
            return Written::NotApplied(e);
        }
        let want: HashSet<DeviceKey> = ue.iter().copied().collect();
        let (mut done, mut seen) = (Vec::new(), HashSet::new());
        // A changed pin keeps the F-TEIDs its previous value reached, whatever their binding
        // says now: nothing but the pin's end releases a reached F-TEID (`crate::n3::bound`).
        if let Some(Held { written: Written::Teids(prior), .. }) = self.held.get(&target.suffix()) {
            for (k, _, u) in prior.clone() {
                if seen.insert(k) && self.maps.set_stage(&k, entry).is_ok() {
                    done.push((k, entry.set_ns, u));
                }
            }
        }
        // The devices bound to a pinned UE, read first (the map is borrowed while it is read),
        // then staged in map order as before.
        let mut found = Vec::new();
        let read = self.maps.for_each_device(16_384, |k, d| {
            if let Some(u) = bound_ue_keys(k, d).into_iter().flatten().find(|u| want.contains(u)) {
                found.push((*k, u));
            }
        });
        if let Err(e) = read {
            // What was not read is found by the controller's walks.
            warn!(pin = target.describe(), error = %e, "fleet: reading the device map for a UE pin's TEIDs failed");
        }
        for (k, u) in found {
            if done.len() >= MAX_TEIDS_PER_PIN || !seen.insert(k) {
                continue;
            }
            match self.maps.set_stage(&k, entry) {
                Ok(()) => done.push((k, entry.set_ns, u)),
                // The stage map is full: the controller's walk offers it again.
                Err(e) => {
                    seen.remove(&k);
                    warn!(pin = target.describe(), device = device_key_str(&k), error = %e, "fleet: a TEID of a UE pin not staged");
                }
            }
        }
        self.bound.set(&target.suffix(), ue, done.iter().map(|(k, ..)| *k));
        Written::Teids(done)
    }

    /// Stage the F-TEIDs the N3 controller found bound to a held UE pin since the last call (they
    /// bound after the pin arrived), each with what is left of the pin's life, and audit them
    /// (`fleet-pin-reach`) with the pin's author. Called every second, with or without etcd: a
    /// pin in force keeps reaching the UE's new sessions until its expiry.
    pub fn reach(&mut self, now_wall: SystemTime) {
        let found = self.bound.take_found();
        if found.is_empty() {
            return;
        }
        let mut by_pin: BTreeMap<String, Vec<(DeviceKey, DeviceKey)>> = BTreeMap::new();
        for f in found {
            by_pin.entry(f.suffix).or_default().push((f.device, f.ue));
        }
        let now_ms = unix_ms(now_wall);
        for (suffix, devices) in by_pin {
            let Some(h) = self.held.get(&suffix) else { continue };
            let (Written::Teids(had), Some(left_ms)) = (&h.written, h.value.remaining_ms(now_ms)) else { continue };
            let (target, value) = (h.target, h.value.clone());
            let had: HashSet<DeviceKey> = had.iter().map(|(k, ..)| *k).collect();
            let entry = byte_limit(&self.ladder, &target, &value)
                .and_then(|b| device_entry(&self.ladder, &value, b, monotonic_ns(), left_ms.saturating_mul(1_000_000)));
            let entry = match entry {
                Ok(e) => e,
                Err(_) => continue,
            };
            let mut new = Vec::new();
            for (k, u) in devices {
                if had.contains(&k) {
                    continue;
                }
                match self.maps.set_stage(&k, &entry) {
                    Ok(()) => new.push((k, entry.set_ns, u)),
                    Err(e) => {
                        self.bound.unreach(&suffix, &k);
                        warn!(pin = target.describe(), device = device_key_str(&k), error = %e, "fleet: a TEID of a UE pin not staged");
                    }
                }
            }
            if new.is_empty() {
                continue;
            }
            let total = if let Some(Held { written: Written::Teids(d), .. }) = self.held.get_mut(&suffix) {
                d.extend(new.iter().copied());
                d.len()
            } else {
                0
            };
            info!(
                pin = target.describe(),
                stage = value.stage.name(),
                author = value.author,
                teids = teid_words(&Written::Teids(new.clone())),
                entries = total,
                expires_in_s = left_ms / 1000,
                "fleet pin reached TEIDs bound to its UE since it was applied"
            );
            let extra = json!({ "entries": total, "teids": teid_list(&new), "through": THROUGH_BINDINGS });
            self.audit_line("fleet-pin-reach", &target, &value, "bound since", extra, now_wall);
        }
        self.publish();
    }
}

/// The audit lines' words for how a UE pin reached a member keyed by TEID.
pub(super) const THROUGH_BINDINGS: &str = "anti-spoofing's learned UE bindings (this member keys devices by TEID)";
/// ... and for a pin that reached none yet.
pub(super) const PENDING: &str =
    "no TEID bound to this UE here yet: each one that binds is pinned when the controller's walk reads it";

/// Whether this data plane learns the UE bindings a UE pin is resolved through when it keys
/// devices by TEID: anti-spoofing must be computed (`shadow` or `enforce`; `off` learns nothing).
pub fn resolvable(dp: &GuardConfig) -> Result<(), String> {
    if guard_common::policy::gate(dp, PROT_ANTISPOOF) == guard_common::policy::Gate::Off {
        return Err("this member keys devices by TEID (key_mode = \"teid\") and learns no UE binding \
                    (dataplane.modes.antispoof = \"off\"): nothing here ties a UE address to its TEIDs"
            .to_owned());
    }
    Ok(())
}

/// The F-TEIDs a pin reached, for its audit line: each device and the UE its binding names.
pub(super) fn teid_list(t: &[(DeviceKey, u64, DeviceKey)]) -> serde_json::Value {
    t.iter().map(|(k, _, u)| json!({ "device": device_key_str(k), "ue": device_key_str(u) })).collect()
}

/// The F-TEIDs of `w`, for a log line (empty for other entries).
pub(super) fn teid_words(w: &Written) -> String {
    match w {
        Written::Teids(t) => t.iter().map(|(k, ..)| device_key_str(k)).collect::<Vec<_>>().join(","),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_teid_keyed_member_resolves_ue_pins_only_where_it_learns_bindings() {
        use guard_common::abi::{PROT_ALL, PROT_ANTISPOOF};
        let dp = |enabled, shadow| GuardConfig { enabled, shadow, ..Default::default() };
        // Shadow and enforce both learn the bindings (docs/dataplane.md "Anti-spoofing").
        assert_eq!(resolvable(&dp(PROT_ALL, PROT_ANTISPOOF)), Ok(()));
        assert_eq!(resolvable(&dp(PROT_ALL, 0)), Ok(()));
        let off = resolvable(&dp(PROT_ALL & !PROT_ANTISPOOF, 0)).expect_err("off learns nothing");
        assert!(off.contains("antispoof = \"off\"") && off.contains("key_mode = \"teid\""), "{off}");
    }

    #[test]
    fn a_ue_pins_audit_names_each_teid_and_the_ue_its_binding_names() {
        let ue = crate::n3::manual::ue_device_key("10.45.0.7".parse().expect("address"), 64).expect("a UE");
        let t = vec![(DeviceKey::teid(0x1001), 5, ue), (DeviceKey::fteid(2, 0x1002), 5, ue)];
        assert_eq!(
            teid_list(&t),
            json!([
                { "device": "teid:0x00001001", "ue": "ue:10.45.0.7" },
                { "device": "teid:0x00001002@local2", "ue": "ue:10.45.0.7" },
            ])
        );
        assert_eq!(teid_words(&Written::Teids(t)), "teid:0x00001001,teid:0x00001002@local2");
    }
}
