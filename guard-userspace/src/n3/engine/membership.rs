//! Group membership without a kept UE address: a device's group is computed from its first
//! reading (which carries the address) and, at a reload, from the data plane's map
//! (docs/controller.md, "Memory").

use guard_common::abi::{DeviceKey, L3Addr};

use super::cohort::GroupState;
use super::{notable, Engine};
use crate::config::Config;

impl Engine {
    /// Apply a new (validated) configuration. Learned baselines are kept; group membership is
    /// recomputed; stage limits change at the next refresh; group flags restart.
    ///
    /// The engine keeps no UE address (20 bytes a device; only membership needs it), so it
    /// recomputes membership here from what it has: the TEID, and the key itself in UE-address
    /// mode. `devices` gives the rest: it calls its argument for every device of the data plane's
    /// map, with the UE address and the inner destination the map now holds (the controller
    /// reads the map in batches, as a walk does). A track missing from the map keeps the
    /// membership its TEID (or UE key) gives.
    pub fn reconfigure(&mut self, cfg: &Config, devices: impl FnOnce(&mut dyn FnMut(&DeviceKey, &L3Addr, &L3Addr))) {
        self.cfg = cfg.clone();
        self.groups = vec![GroupState::default(); cfg.groups.len()];
        for t in self.tracks.values_mut() {
            t.set_group(cfg.group_of(t.teid, &ue_of_key(&t.key)));
        }
        let (tracks, dst_ids) = (&mut self.tracks, &mut self.dst_ids);
        devices(&mut |key, ue, dst| {
            if let Some(t) = tracks.get_mut(key) {
                t.set_group(cfg.group_of(t.teid, ue));
                let keep = if t.checks_servers(cfg) { *dst } else { L3Addr::NONE };
                dst_ids.set(&mut t.dst, keep);
            }
        });
        // A member no longer checked against servers lets its destination go.
        for t in self.tracks.values_mut() {
            if !t.checks_servers(cfg) {
                self.dst_ids.set(&mut t.dst, L3Addr::NONE);
            }
        }
        // Thresholds may have changed what counts as notable.
        self.notable.clear();
        for (at, t) in self.tracks.values_mut().enumerate() {
            t.notable = notable(t, &self.cfg);
            if t.notable {
                self.notable.insert(t.key, at as u32);
            }
        }
    }
}

/// The UE address a key is, in UE-address mode (`DeviceKey::kind`); none for a TEID key.
pub(super) fn ue_of_key(k: &DeviceKey) -> L3Addr {
    use guard_common::abi::{DEVICE_KIND_UE_V4, DEVICE_KIND_UE_V6, FAMILY_IPV4, FAMILY_IPV6};
    match k.kind {
        DEVICE_KIND_UE_V4 => L3Addr { family: FAMILY_IPV4, addr: k.id },
        DEVICE_KIND_UE_V6 => L3Addr { family: FAMILY_IPV6, addr: k.id },
        _ => L3Addr::NONE,
    }
}
