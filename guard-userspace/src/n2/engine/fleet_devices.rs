//! Device back-off lists and 5G-S-TMSI pins shared through a fleet (issue 23, docs/fleet.md
//! "Device back-off lists"): an input of the engine like the cell sums of `fleet.rs`.
//!
//! The members of an AMF set share their UEs (TS 23.501 §5.21.1: any AMF of the set can serve a
//! UE, its context moves with it), so a device one member's hook backs off (5GMM cause #22 and
//! T3346, TS 24.501 §5.5.1.2.5) may come back through another AMF of the set: an AMF that
//! failed or was overloaded, a re-selection by the gNB. Each member publishes the devices of its
//! response in force (its **own** repeaters: never what it learned from others, so a forged
//! entry is not laundered through an honest member), and each member takes the others' lists
//! as this input.
//!
//! What a member does with an entry it did not see itself: **nothing, until the device shows up
//! here** (an InitialUEMessage with that 5G-S-TMSI / S-TMSI within the device window). Then it
//! is on this member's hook list, marked with where the entry came from, with the publisher's
//! T3346 (capped at this member's `t3346_max_s`), for as long as the entry lives (the
//! publisher's lease and the list's own expiry, both applied by the caller). A forged list can
//! therefore make this member back off, at level 1 only, devices that do register here; it never
//! raises barring or overload, never counts as evidence, and is never republished.
//!
//! An operator's fleet pin by 5G-S-TMSI is different: an operator's decision (etcd RBAC: members
//! cannot write pins), it is on every member's hook list at once, whether the device showed up or
//! not, until the pin expires. That is the pin on N2: the data plane never drops a device's DATA
//! chunks mid-association (DESIGN §2), so the "pin" is the AMF's back-off.

use super::*;

/// Where a fleet back-off entry comes from (in the hook payload's device entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetOrigin {
    /// Another member's back-off list: the device is one of its repeaters.
    List { member: String },
    /// An operator's fleet pin (`guard fleet pin --tmsi`).
    Pin { author: String },
}

/// One device on the fleet's lists or pins, as this member holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetDevice {
    /// The T3346 the publisher asked for (a pin: its remaining life).
    pub t3346_s: u32,
    /// CLOCK_MONOTONIC of the entry's end (the list's expiry, the pin's).
    pub expires_ns: u64,
    pub origin: FleetOrigin,
}

/// Every device the others listed or an operator pinned, as this member holds them now.
pub type FleetBackoff = HashMap<N2DeviceKey, FleetDevice>;

/// Only identities that name the device wherever it shows up are shared: a RAN-UE-NGAP-ID names
/// one UE-associated connection on one association (TS 38.413 §9.3.3.2).
pub fn shareable(k: &N2DeviceKey) -> bool {
    k.kind == N2_DEV_KIND_5G_S_TMSI || k.kind == N2_DEV_KIND_S_TMSI
}

impl N2Engine {
    /// The others' lists and the operators' pins for the next [`N2Engine::tick`]s (replaces the
    /// previous input; an empty map is the local-only engine).
    pub fn set_fleet_backoff(&mut self, b: FleetBackoff) {
        self.fleet_backoff = b;
    }

    /// What this member publishes: the shareable devices of its own response in force, with
    /// their T3346 (empty at level 0). Never an entry it took from the fleet.
    pub fn backoff_for_fleet(&self) -> &[(N2DeviceKey, u32)] {
        &self.own_listed
    }

    /// The fleet entries that apply here at `now`: pins always; list entries only for devices
    /// that made an access attempt here within the device window. In key order.
    pub(super) fn fleet_devices_now(&self, now: u64) -> BTreeMap<N2DeviceKey, FleetDevice> {
        self.fleet_backoff
            .iter()
            .filter(|(_, d)| d.expires_ns > now)
            .filter(|(k, d)| match d.origin {
                FleetOrigin::Pin { .. } => true,
                FleetOrigin::List { .. } => self.devices.get(k).is_some_and(|t| t.in_window > 0),
            })
            .map(|(k, d)| (*k, d.clone()))
            .collect()
    }

    /// The hook's entries for the fleet devices of `now` that are not among `local`, at most
    /// `room`; and how many did not fit.
    pub(super) fn fleet_device_advice(
        &self,
        now: &BTreeMap<N2DeviceKey, FleetDevice>,
        local: &HashSet<N2DeviceKey>,
        room: usize,
    ) -> (Vec<DeviceAdvice>, u64) {
        let s = &self.s;
        let rest: Vec<_> = now.iter().filter(|(k, _)| !local.contains(*k)).collect();
        let advice = rest
            .iter()
            .take(room)
            .map(|(k, d)| {
                let t = self.devices.get(*k);
                DeviceAdvice {
                    id: n2_device_str(k),
                    cell: t.map(|t| cell_str(&t.cell)).unwrap_or_default(),
                    gnb: t.map(|t| addr_str(&t.peer)).unwrap_or_default(),
                    attempts: t.map_or(0, |t| t.in_window),
                    t3346_s: d.t3346_s.clamp(1, s.t3346_max_s.max(1)),
                    fleet: Some(d.origin.clone()),
                }
            })
            .collect::<Vec<_>>();
        let omitted = (rest.len() - advice.len()) as u64;
        (advice, omitted)
    }
}
