//! The N3 side's Prometheus series (prefix `overload_guard_`, label `interface=` of the N3 NIC):
//! verdicts, events, stages, caps, cell rates, map fill, top offenders, the device walk and the
//! chaining state. Registered into the shared registry ([`crate::metrics::Metrics::interface`]).

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::metrics::{CellLabel, MapLabel, OffenderLabel, OutcomeLabel, ReasonLabel, StageLabel, VerdictLabel};

/// Per-cell series exported (the busiest cells).
pub const TOP_CELLS: usize = 50;

pub struct N3Metrics {
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
    /// Octets per second of the same cells' GTP-U frames (the link's view), beside `cell_pps`.
    pub cell_bytes: Family<CellLabel, Gauge<f64, AtomicU64>>,
    pub map_entries: Family<MapLabel, Gauge>,
    pub map_capacity: Family<MapLabel, Gauge>,
    pub top_offender_pps: Family<OffenderLabel, Gauge<f64, AtomicU64>>,
    /// T-PDU octets per second of the same devices, beside `top_offender_pps` (what their byte
    /// limits count).
    pub top_offender_bytes: Family<OffenderLabel, Gauge<f64, AtomicU64>>,
    pub device_scan_seconds: Gauge<f64, AtomicU64>,
    pub device_scan_read_seconds: Gauge<f64, AtomicU64>,
    /// The next program (`[attach] next`): one series set to 1, labelled with its state.
    pub chain_next: Family<OutcomeLabel, Gauge>,
    /// Passed packets a configured next program did not get (empty slot, tail-call limit).
    pub chain_miss: Counter,
    /// 1 while guard_n3 sits in its `[attach] into` slot, 0 while it does not.
    pub chain_into: Gauge,
    /// Devices the engine tracks (`guard.max_devices` at most).
    pub tracked_devices: Gauge,
    /// Tracks evicted to stay within `guard.max_devices`: a count near the sessions that ended
    /// is the table making room; far above it, live devices are losing their history.
    pub evicted_devices: Counter,
    /// Readings of new devices not tracked: the table full of live devices (tracked at a later
    /// walk), or of staged ones.
    pub untracked_readings: Counter,
}

impl N3Metrics {
    /// The N3 series, registered in `r` (the N3 interface's sub-registry).
    pub fn register(r: &mut Registry) -> Self {
        let self_ = N3Metrics {
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
            cell_bytes: Family::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            top_offender_pps: Family::default(),
            top_offender_bytes: Family::default(),
            chain_next: Family::default(),
            chain_miss: Counter::default(),
            chain_into: Gauge::default(),
            device_scan_seconds: Gauge::default(),
            device_scan_read_seconds: Gauge::default(),
            tracked_devices: Gauge::default(),
            evicted_devices: Counter::default(),
            untracked_readings: Counter::default(),
        };
        r.register("packets", "Packets by data-plane verdict", self_.packets.clone());
        r.register("bytes", "Bytes by data-plane verdict", self_.bytes.clone());
        r.register("shadow_would_drop", "Packets a shadow-mode protection would have dropped", self_.shadow.clone());
        r.register("malformed", "Malformed packets by reason", self_.malformed.clone());
        r.register(
            "ringbuf_events",
            "Data-plane events: sent, lost (ring full), suppressed (event_rate spent: one per refused ask, asked again by the next packet over the limit), discarded (controller backlog full)",
            self_.events.clone(),
        );
        r.register("devices_per_stage", "Devices per stage (manual pins included)", self_.devices_per_stage.clone());
        r.register("cells_capped", "Cells under a cell cap", self_.cells_capped.clone());
        r.register("host_capped", "1 while the host cap is engaged", self_.host_capped.clone());
        r.register("escalations", "Stages and caps set or raised, by reason", self_.escalations.clone());
        r.register(
            "releases",
            "Stages and caps released, stages stepped down (reason quiet) and exempt marks (exempt_group), by reason",
            self_.releases.clone(),
        );
        r.register("cell_pps", "G-PDU packets per second of the busiest cells (gNBs)", self_.cell_pps.clone());
        r.register(
            "cell_bytes_per_second",
            "GTP-U frame octets per second of the busiest cells (gNBs)",
            self_.cell_bytes.clone(),
        );
        r.register("map_entries", "Entries in a BPF map", self_.map_entries.clone());
        r.register("map_capacity", "Capacity of a BPF map", self_.map_capacity.clone());
        r.register(
            "chain_next",
            "The [attach] next program: 1 on the series of its state (linked, gone, unset)",
            self_.chain_next.clone(),
        );
        r.register(
            "chain_miss",
            "Passed packets the configured next program did not get (empty slot or tail-call limit): they went to the kernel stack",
            self_.chain_miss.clone(),
        );
        r.register(
            "chain_into",
            "1 while guard_n3 sits in its [attach] into program-array slot",
            self_.chain_into.clone(),
        );
        r.register("tracked_devices", "Devices the N3 engine tracks", self_.tracked_devices.clone());
        r.register(
            "evicted_devices",
            "Tracks the N3 engine evicted to stay within guard.max_devices (gone sessions first)",
            self_.evicted_devices.clone(),
        );
        r.register(
            "untracked_readings",
            "Readings of new devices the N3 engine did not track yet: its table full of live or staged devices",
            self_.untracked_readings.clone(),
        );
        r.register("top_offender_pps", "Rate of the top-N offending devices", self_.top_offender_pps.clone());
        r.register(
            "top_offender_bytes_per_second",
            "T-PDU octets per second of the top-N offending devices (the unit of their byte limits)",
            self_.top_offender_bytes.clone(),
        );
        r.register(
            "device_scan_seconds",
            "Wall time of the last full walk of the device map (read in slices, one per tick, at scale)",
            self_.device_scan_seconds.clone(),
        );
        r.register(
            "device_scan_read_seconds",
            "Time the last full walk of the device map spent reading the map (summed over its slices)",
            self_.device_scan_read_seconds.clone(),
        );
        self_
    }
}
