//! The N2 controller's metrics (prefix `overload_guard_n2_`, label `interface=` of the N2 NIC):
//! the level, the storm class, hot cells, repeaters, the recommended reduction, responses by
//! action and hook calls by outcome, and `guard_n2`'s verdict counters. No per-device or
//! per-cell label: cardinality stays fixed.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::audit::name;
use super::engine::{N2Status, Response, StormClass};
use crate::metrics::{OutcomeLabel, ReasonLabel};

/// The N2 controller's metrics, registered into the guard's registry.
#[derive(Clone, Default)]
pub struct N2Metrics {
    pub level: Gauge,
    pub storm_class: Family<ReasonLabel, Gauge>,
    pub hot_cells: Gauge,
    pub affected_cells: Gauge,
    pub repeaters: Gauge,
    pub reduction_pct: Gauge,
    pub tracked_devices: Gauge,
    pub peers_staged: Gauge,
    pub responses: Family<ReasonLabel, Counter>,
    pub hook_calls: Family<OutcomeLabel, Counter>,
    pub region_rate: Gauge<f64, AtomicU64>,
    /// `guard_n2`'s packets by verdict, and what shadow-mode protections would have dropped (the
    /// data plane's cumulative per-CPU counters, raised to each tick).
    pub packets: Family<crate::metrics::VerdictLabel, Counter>,
    pub shadow: Family<crate::metrics::VerdictLabel, Counter>,
    /// The setup lanes and fragments (docs/n2.md §1.1): `N2_STAT_*` counters by name.
    pub setup_events: Family<ReasonLabel, Counter>,
}

/// The `N2_STATS` counters of the setup lanes and multi-homing, by the name the
/// `setup_events` metric and `guard replay`'s N2 report give them.
pub const SETUP_EVENTS: [(u32, &str); 9] = {
    use guard_common::abi_n2::*;
    [
        (N2_STAT_COOKIE_ISSUED, "cookie_issued"),
        (N2_STAT_COOKIE_UNISSUED, "cookie_unissued"),
        (N2_STAT_INIT_REESTABLISH, "init_reestablish"),
        (N2_STAT_EGRESS_INIT_ACK, "egress_init_ack"),
        (N2_STAT_EGRESS_ASSOC, "egress_assoc"),
        (N2_STAT_FRAGMENTS, "fragments"),
        (N2_STAT_FIRST_FRAGMENTS, "first_fragments"),
        (N2_STAT_ALIASED, "aliased"),
        (N2_STAT_EGRESS_ALIAS, "egress_alias"),
    ]
};

impl N2Metrics {
    /// Register under `<registry prefix>_n2_*`.
    pub fn register(registry: &mut Registry) -> N2Metrics {
        let m = N2Metrics::default();
        let r = registry.sub_registry_with_prefix("n2");
        r.register("level", "N2 response level: 0 none, 1 devices, 2 cell barring, 3 NGAP overload", m.level.clone());
        r.register("storm_class", "1 for the current classification of the hot cells", m.storm_class.clone());
        r.register("hot_cells", "Cells whose InitialUEMessage rate is well above baseline", m.hot_cells.clone());
        r.register("affected_cells", "Cells in the scope of the current response", m.affected_cells.clone());
        r.register("repeaters", "Devices retrying access in the hot cells", m.repeaters.clone());
        r.register("reduction_pct", "Recommended NGAP traffic load reduction", m.reduction_pct.clone());
        r.register("tracked_devices", "Devices the N2 controller tracks", m.tracked_devices.clone());
        r.register("peers_staged", "SCTP peers under an automatic INIT / COOKIE-ECHO stage", m.peers_staged.clone());
        r.register(
            "responses",
            "Responses decided, by action (each sent to the hook when one is configured: hook_calls)",
            m.responses.clone(),
        );
        r.register("hook_calls", "Hook calls by outcome (ok, failed); none without a hook", m.hook_calls.clone());
        r.register("region_rate", "InitialUEMessages per second in the hot cells", m.region_rate.clone());
        r.register("packets", "guard_n2 packets by verdict", m.packets.clone());
        r.register(
            "shadow_would_drop",
            "guard_n2 packets a shadow-mode protection would have dropped",
            m.shadow.clone(),
        );
        r.register(
            "setup_events",
            "Setup lanes, fragments and multi-homing: cookie_issued, cookie_unissued, init_reestablish, egress_init_ack, egress_assoc, fragments, first_fragments, aliased, egress_alias",
            m.setup_events.clone(),
        );
        m
    }

    /// Raise the data-plane counters to the maps' cumulative totals.
    pub fn data_plane(&self, maps: &crate::n2::N2Maps) {
        let label =
            |v: guard_common::policy_n2::N2Verdict| crate::metrics::VerdictLabel { verdict: v.name().to_owned() };
        if let Ok(v) = maps.verdicts() {
            for (verdict, c) in v {
                crate::metrics::Metrics::raise_to(&self.packets.get_or_create(&label(verdict)), c.packets);
            }
        }
        if let Ok(v) = maps.shadow() {
            for (verdict, c) in v.into_iter().filter(|(v, _)| v.is_drop()) {
                crate::metrics::Metrics::raise_to(&self.shadow.get_or_create(&label(verdict)), c.packets);
            }
        }
        if let Ok(st) = maps.stats() {
            for (i, name) in SETUP_EVENTS {
                if let Some(c) = st.get(i as usize) {
                    let l = ReasonLabel { reason: name.to_owned() };
                    crate::metrics::Metrics::raise_to(&self.setup_events.get_or_create(&l), c.packets);
                }
            }
        }
    }

    pub fn update(&self, st: &N2Status) {
        self.level.set(i64::from(st.level));
        for c in [StormClass::None, StormClass::FlashCrowd, StormClass::RegistrationStorm] {
            self.storm_class.get_or_create(&ReasonLabel { reason: name(&c) }).set(i64::from(c == st.class));
        }
        self.hot_cells.set(st.hot_cells as i64);
        self.affected_cells.set(st.affected_cells as i64);
        self.repeaters.set(st.repeaters as i64);
        self.reduction_pct.set(i64::from(st.reduction_pct));
        self.tracked_devices.set(st.tracked_devices as i64);
        self.region_rate.set(st.region_rate_per_s);
    }

    /// A response decided; `delivered`: the hook's outcome, None when no hook is configured (a
    /// call that was never made is no failed call).
    pub fn response(&self, r: &Response, delivered: Option<bool>) {
        self.responses.get_or_create(&ReasonLabel { reason: name(&r.action) }).inc();
        if let Some(ok) = delivered {
            let outcome = if ok { "ok" } else { "failed" };
            self.hook_calls.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
        }
    }
}
