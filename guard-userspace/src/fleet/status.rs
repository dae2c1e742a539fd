//! What a member says about its fleet link: Prometheus series and the `/readyz` detail line.
//!
//! Readiness does not fail on a lost etcd: the data plane and the controller work on, with the
//! local view and the fleet pins already applied (until their own expiry). Failing `/readyz`
//! would make an orchestrator or a load balancer act against a guard that still guards; the
//! detail line and `overload_guard_fleet_connected` say it instead (docs/fleet.md).

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;

use crate::metrics::ReasonLabel;

/// The fleet's series (process-wide: one etcd link per process, no interface label).
#[derive(Clone, Default)]
pub struct FleetMetrics {
    /// 1 while the member hears etcd (its last request or keep-alive answered).
    pub connected: Gauge,
    /// Fleet pins in force in this data plane.
    pub pins_applied: Gauge,
    /// Fleet pins this data plane cannot apply (e.g. a UE pin on a guard keyed by TEID that
    /// learns no UE binding: anti-spoofing off).
    pub pins_not_applied: Gauge,
    /// TEIDs staged for UE pins through their learned UE bindings (a member keyed by TEID).
    pub pin_teids: Gauge,
    /// Keys or values refused, by reason: malformed, oversized, invalid, bad_key, too_many_keys,
    /// expired (a back-off list past its expiry).
    pub rejected: Family<ReasonLabel, Counter>,
    /// Connections to etcd made after a loss.
    pub reconnects: Counter,
    /// Seconds from a pin's creation (its author's clock) to its application here, last pin.
    pub last_apply_delay: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Other members whose cell summaries are summed now.
    pub cell_members: Gauge,
    /// Cells this member published at its last publication.
    pub cells_published: Gauge,
    /// N3: other members whose gNB summaries are summed now, gNBs this member published.
    pub n3_cell_members: Gauge,
    pub n3_cells_published: Gauge,
    /// Devices held from the other members' back-off lists (live lists).
    pub backoff_listed: Gauge,
    /// Devices in this member's own back-off list at its last publication.
    pub backoff_published: Gauge,
    /// gNB addresses held from the other members' known gNB lists (live lists).
    pub gnbs_listed: Gauge,
    /// gNB addresses in this member's own known gNB list at its last publication.
    pub gnbs_published: Gauge,
}

impl FleetMetrics {
    pub fn register(registry: &mut Registry) -> FleetMetrics {
        let m = FleetMetrics::default();
        registry.register("fleet_connected", "1 while this member hears etcd, else 0", m.connected.clone());
        registry.register("fleet_pins_applied", "Fleet pins in force in this data plane", m.pins_applied.clone());
        registry.register(
            "fleet_pins_not_applied",
            "Fleet pins this data plane cannot apply (see the log and the audit trail)",
            m.pins_not_applied.clone(),
        );
        registry.register(
            "fleet_pin_teids",
            "TEIDs staged for fleet UE pins through anti-spoofing's learned UE bindings (members keyed by TEID)",
            m.pin_teids.clone(),
        );
        registry.register("fleet_values_rejected", "Fleet keys or values refused, by reason", m.rejected.clone());
        registry.register("fleet_reconnects", "Connections to etcd after a loss", m.reconnects.clone());
        registry.register(
            "fleet_last_apply_delay_seconds",
            "From the last applied pin's creation (its author's clock) to its application here",
            m.last_apply_delay.clone(),
        );
        registry.register(
            "fleet_cell_members",
            "Other members whose per-cell summaries are summed now",
            m.cell_members.clone(),
        );
        registry.register(
            "fleet_cells_published",
            "Cells this member published in its last per-cell summary",
            m.cells_published.clone(),
        );
        registry.register(
            "fleet_n3_cell_members",
            "Other members whose N3 per-gNB summaries are summed now",
            m.n3_cell_members.clone(),
        );
        registry.register(
            "fleet_n3_cells_published",
            "gNBs this member published in its last N3 summary",
            m.n3_cells_published.clone(),
        );
        registry.register(
            "fleet_backoff_listed",
            "Devices held from the other members' N2 back-off lists",
            m.backoff_listed.clone(),
        );
        registry.register(
            "fleet_backoff_published",
            "Devices in this member's own N2 back-off list at its last publication",
            m.backoff_published.clone(),
        );
        registry.register(
            "fleet_gnbs_listed",
            "gNB addresses held from the other members' known gNB lists (learned from real N2 sessions)",
            m.gnbs_listed.clone(),
        );
        registry.register(
            "fleet_gnbs_published",
            "gNB addresses in this member's own known gNB list at its last publication",
            m.gnbs_published.clone(),
        );
        m
    }

    pub fn reject(&self, reason: &str) {
        self.rejected.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }
}

/// The link's state for `/readyz`.
#[derive(Debug)]
pub struct FleetStatus {
    fleet: String,
    member: String,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
struct State {
    connected: bool,
    since: Instant,
    error: Option<String>,
    applied: usize,
    not_applied: usize,
}

impl FleetStatus {
    pub fn new(fleet: &str, member: &str) -> FleetStatus {
        FleetStatus {
            fleet: fleet.to_owned(),
            member: member.to_owned(),
            state: Mutex::new(State {
                connected: false,
                since: Instant::now(),
                error: Some("not connected yet".into()),
                applied: 0,
                not_applied: 0,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    pub fn connected(&self) {
        self.with(|s| {
            if !s.connected {
                s.since = Instant::now();
            }
            s.connected = true;
            s.error = None;
        });
    }

    pub fn lost(&self, error: &str) {
        self.with(|s| {
            if s.connected {
                s.since = Instant::now();
            }
            s.connected = false;
            s.error = Some(error.to_owned());
        });
    }

    pub fn pins(&self, applied: usize, not_applied: usize) {
        self.with(|s| {
            s.applied = applied;
            s.not_applied = not_applied;
        });
    }

    pub fn is_connected(&self) -> bool {
        self.with(|s| s.connected)
    }

    /// One line for `/readyz` (never a reason to fail it).
    pub fn detail(&self) -> String {
        let s = self.with(|s| s.clone());
        let age = s.since.elapsed().as_secs();
        let pins = format!(
            "{} fleet pin(s) applied{}",
            s.applied,
            if s.not_applied > 0 { format!(", {} not applicable here", s.not_applied) } else { String::new() }
        );
        if s.connected {
            format!("fleet {} (member {}): connected to etcd for {age} s; {pins}", self.fleet, self.member)
        } else {
            format!(
                "fleet {} (member {}): etcd unreachable for {age} s ({}); guarding with the local view and the {pins} until their expiry (readiness not affected)",
                self.fleet,
                self.member,
                s.error.as_deref().unwrap_or("unknown")
            )
        }
    }
}

impl crate::service::ReadyDetail for FleetStatus {
    fn detail(&self) -> String {
        FleetStatus::detail(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_says_connected_or_not_and_what_is_kept() {
        let s = FleetStatus::new("f1", "m1");
        assert!(s.detail().contains("etcd unreachable"), "{}", s.detail());
        s.connected();
        s.pins(3, 1);
        let d = s.detail();
        assert!(d.contains("connected to etcd") && d.contains("3 fleet pin(s) applied, 1 not applicable"), "{d}");
        s.lost("connection refused");
        let d = s.detail();
        assert!(
            d.contains("unreachable") && d.contains("connection refused") && d.contains("until their expiry"),
            "{d}"
        );
    }
}
