//! The N2 controller's audit lines and metrics.
//!
//! Audit (the JSON-lines trail of [`crate::audit`]): every [`Response`] (`action`
//! `n2_advise` / `n2_overload_start` / `n2_overload_update` / `n2_overload_stop` / `n2_clear`, the
//! whole payload in `detail`), every classification change (`n2_classified`), and every failed
//! hook call (`n2_hook_failed`). Metrics (prefix `overload_guard_n2_`): the level, the storm
//! class, hot cells, repeaters, the recommended reduction, responses by action and hook calls by
//! outcome. No per-device or per-cell label: cardinality stays fixed.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::Value;

use super::engine::{N2Status, N2Transition, Response, StormClass};
use crate::audit::{rfc3339, Actor, AuditError, AuditLog, AuditRecord};
use crate::metrics::{OutcomeLabel, ReasonLabel};

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The audit target of a response: its gNBs, else `n2`.
fn target(r: &Response) -> String {
    match &r.overload {
        Some(o) if !o.gnbs.is_empty() => format!("gnb:{}", o.gnbs.join(",")),
        _ => "n2".to_owned(),
    }
}

pub fn audit_response(log: &AuditLog, wall: SystemTime, r: &Response) -> Result<(), AuditError> {
    let mut detail = serde_json::to_value(r)?;
    let evidence = match &mut detail {
        Value::Object(m) => m.remove("evidence").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: format!("n2_{}", name(&r.action)),
        target: target(r),
        reason: r.reason.to_owned(),
        evidence,
        detail,
    })
}

pub fn audit_transition(log: &AuditLog, wall: SystemTime, t: &N2Transition) -> Result<(), AuditError> {
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: "n2_classified".to_owned(),
        target: "n2".to_owned(),
        reason: name(&t.to),
        evidence: serde_json::to_value(&t.evidence)?,
        detail: serde_json::json!({ "from": t.from, "to": t.to, "at_ns": t.at_ns }),
    })
}

pub fn audit_hook_failure(log: &AuditLog, wall: SystemTime, r: &Response, error: &str) -> Result<(), AuditError> {
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: "n2_hook_failed".to_owned(),
        target: target(r),
        reason: error.to_owned(),
        evidence: Value::Null,
        detail: serde_json::json!({ "seq": r.seq, "action": r.action, "level": r.level }),
    })
}

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
        r.register("responses", "Responses sent to the hook, by action", m.responses.clone());
        r.register("hook_calls", "Hook calls by outcome (ok, failed)", m.hook_calls.clone());
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
        use guard_common::abi_n2::*;
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
            for (i, name) in [
                (N2_STAT_COOKIE_ISSUED, "cookie_issued"),
                (N2_STAT_COOKIE_UNISSUED, "cookie_unissued"),
                (N2_STAT_INIT_REESTABLISH, "init_reestablish"),
                (N2_STAT_EGRESS_INIT_ACK, "egress_init_ack"),
                (N2_STAT_EGRESS_ASSOC, "egress_assoc"),
                (N2_STAT_FRAGMENTS, "fragments"),
                (N2_STAT_FIRST_FRAGMENTS, "first_fragments"),
                (N2_STAT_ALIASED, "aliased"),
                (N2_STAT_EGRESS_ALIAS, "egress_alias"),
            ] {
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

    pub fn response(&self, r: &Response, delivered: bool) {
        self.responses.get_or_create(&ReasonLabel { reason: name(&r.action) }).inc();
        let outcome = if delivered { "ok" } else { "failed" };
        self.hook_calls.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    }
}
