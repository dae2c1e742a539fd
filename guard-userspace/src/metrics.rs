//! Prometheus metrics (prometheus-client), served over HTTP by the controller.
//!
//! Cardinality stays bounded at a million devices: no per-device label anywhere except the
//! top-N offenders gauge (N = 20), and per-cell series are limited to the busiest cells.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Per-cell series exported (the busiest cells).
pub const TOP_CELLS: usize = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CellLabel {
    pub cell: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabel {
    pub map: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OffenderLabel {
    pub rank: String,
    pub device: String,
    pub reason: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub packets: Family<VerdictLabel, Counter>,
    pub bytes: Family<VerdictLabel, Counter>,
    pub shadow: Family<VerdictLabel, Counter>,
    pub malformed: Family<ReasonLabel, Counter>,
    pub events: Family<OutcomeLabel, Counter>,
    pub devices_per_stage: Family<StageLabel, Gauge>,
    pub cells_capped: Gauge,
    pub host_capped: Gauge,
    pub escalations: Family<ReasonLabel, Counter>,
    pub releases: Family<ReasonLabel, Counter>,
    pub cell_pps: Family<CellLabel, Gauge<f64, AtomicU64>>,
    pub map_entries: Family<MapLabel, Gauge>,
    pub map_capacity: Family<MapLabel, Gauge>,
    pub top_offender_pps: Family<OffenderLabel, Gauge<f64, AtomicU64>>,
    pub tick_seconds: Histogram,
    pub device_scan_seconds: Gauge<f64, AtomicU64>,
    pub device_scan_read_seconds: Gauge<f64, AtomicU64>,
    pub config_reloads: Family<OutcomeLabel, Counter>,
    /// The next program (`[attach] next`): one series set to 1, labelled with its state.
    pub chain_next: Family<OutcomeLabel, Gauge>,
    /// Passed packets a configured next program did not get (empty slot, tail-call limit).
    pub chain_miss: Counter,
    /// 1 while guard_n3 sits in its `[attach] into` slot, 0 while it does not.
    pub chain_into: Gauge,
    /// Audit lines not written (raised each tick to `audit::WRITE_FAILURES`).
    pub audit_write_failures: Counter,
    /// Unix time of the last controller tick that completed (alert when it stops moving).
    pub last_tick: Gauge<f64, AtomicU64>,
    /// The N2 storm controller's metrics (`overload_guard_n2_*`, docs/n2.md); exported only when
    /// N2 runs ([`Metrics::for_interfaces`]).
    pub n2: crate::n2::report::N2Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    pub version: String,
    pub schema: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics of a controller guarding `n3` and, when N2 runs, `n2`: each interface's series
    /// carry its name (`interface="ens1f0"`), process-wide ones (build, ticks, reloads, audit)
    /// none; an operator sees no N2 series on a host that does not guard N2.
    pub fn for_interfaces(n3: &str, n2: Option<&str>) -> Self {
        Self::build(Some(n3), n2)
    }

    /// The N3 metrics without an interface label (tests of the encoding).
    pub fn new() -> Self {
        Self::build(None, None)
    }

    fn build(n3: Option<&str>, n2: Option<&str>) -> Self {
        let mut registry = Registry::with_prefix("overload_guard");
        let m = Metrics {
            packets: Family::default(),
            bytes: Family::default(),
            shadow: Family::default(),
            malformed: Family::default(),
            events: Family::default(),
            devices_per_stage: Family::default(),
            cells_capped: Gauge::default(),
            host_capped: Gauge::default(),
            escalations: Family::default(),
            releases: Family::default(),
            cell_pps: Family::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            top_offender_pps: Family::default(),
            tick_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            config_reloads: Family::default(),
            chain_next: Family::default(),
            chain_miss: Counter::default(),
            chain_into: Gauge::default(),
            audit_write_failures: Counter::default(),
            device_scan_seconds: Gauge::default(),
            device_scan_read_seconds: Gauge::default(),
            last_tick: Gauge::default(),
            n2: crate::n2::report::N2Metrics::default(),
            registry: Registry::default(),
        };
        let build: Family<BuildLabel, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                schema: guard_common::abi::SCHEMA_VERSION.to_string(),
            })
            .set(1);
        registry.register("build_info", "The guard's version and map schema (always 1)", build);
        registry.register(
            "controller_last_tick_timestamp_seconds",
            "Unix time of the last completed controller tick",
            m.last_tick.clone(),
        );
        // Process-wide: the controller's ticks, reloads and audit trail.
        registry.register("controller_tick_seconds", "Duration of one controller tick", m.tick_seconds.clone());
        registry.register("config_reloads", "SIGHUP reloads by outcome", m.config_reloads.clone());
        registry.register(
            "audit_write_failures",
            "Audit lines that could not be written (the trail has holes)",
            m.audit_write_failures.clone(),
        );
        let label = |i: &str| (std::borrow::Cow::Borrowed("interface"), std::borrow::Cow::Owned(i.to_owned()));
        let r3 = match n3 {
            Some(i) => registry.sub_registry_with_label(label(i)),
            None => &mut registry,
        };
        r3.register("packets", "Packets by data-plane verdict", m.packets.clone());
        r3.register("bytes", "Bytes by data-plane verdict", m.bytes.clone());
        r3.register("shadow_would_drop", "Packets a shadow-mode protection would have dropped", m.shadow.clone());
        r3.register("malformed", "Malformed packets by reason", m.malformed.clone());
        r3.register(
            "ringbuf_events",
            "Data-plane events: sent, lost (ring full), suppressed (rate limit), discarded (controller backlog full)",
            m.events.clone(),
        );
        r3.register("devices_per_stage", "Devices per stage (manual pins included)", m.devices_per_stage.clone());
        r3.register("cells_capped", "Cells under a cell cap", m.cells_capped.clone());
        r3.register("host_capped", "1 while the host cap is engaged", m.host_capped.clone());
        r3.register("escalations", "Stages and caps set, by reason", m.escalations.clone());
        r3.register("releases", "Stages and caps released, by reason", m.releases.clone());
        r3.register("cell_pps", "G-PDU packets per second of the busiest cells (gNBs)", m.cell_pps.clone());
        r3.register("map_entries", "Entries in a BPF map", m.map_entries.clone());
        r3.register("map_capacity", "Capacity of a BPF map", m.map_capacity.clone());
        r3.register(
            "chain_next",
            "The [attach] next program: 1 on the series of its state (linked, gone, unset)",
            m.chain_next.clone(),
        );
        r3.register(
            "chain_miss",
            "Passed packets the configured next program did not get (empty slot or tail-call limit): they went to the kernel stack",
            m.chain_miss.clone(),
        );
        r3.register(
            "chain_into",
            "1 while guard_n3 sits in its [attach] into program-array slot",
            m.chain_into.clone(),
        );
        r3.register("top_offender_pps", "Rate of the top-N offending devices", m.top_offender_pps.clone());
        r3.register(
            "device_scan_seconds",
            "Wall time of the last full walk of the device map (read in slices, one per tick, at scale)",
            m.device_scan_seconds.clone(),
        );
        r3.register(
            "device_scan_read_seconds",
            "Time the last full walk of the device map spent reading the map (summed over its slices)",
            m.device_scan_read_seconds.clone(),
        );
        let mut m = m;
        if let Some(i) = n2 {
            m.n2 = crate::n2::report::N2Metrics::register(registry.sub_registry_with_label(label(i)));
        }
        Metrics { registry, ..m }
    }

    /// Raise a counter to `total` (the data plane's own cumulative count, which survives restarts).
    pub fn raise_to(c: &Counter, total: u64) {
        let cur = c.get();
        if total > cur {
            c.inc_by(total - cur);
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
