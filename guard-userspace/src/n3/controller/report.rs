//! The N3 series updated each tick from the maps and the engine.

use super::*;

pub(super) fn update_metrics(c: &Ctl, engine: &Engine, m: &Exported, devices: Option<i64>, stages: i64) -> Result<()> {
    use crate::metrics::*;
    for (v, cnt) in c.maps.verdicts()? {
        let l = VerdictLabel { verdict: v.name().to_owned() };
        Metrics::raise_to(&m.n3.packets.get_or_create(&l), cnt.packets);
        Metrics::raise_to(&m.n3.bytes.get_or_create(&l), cnt.bytes);
    }
    for (v, cnt) in c.maps.shadow()? {
        if v.is_drop() {
            Metrics::raise_to(&m.n3.shadow.get_or_create(&VerdictLabel { verdict: v.name().to_owned() }), cnt.packets);
        }
    }
    for (r, cnt) in c.maps.malformed()? {
        Metrics::raise_to(&m.n3.malformed.get_or_create(&ReasonLabel { reason: r.name().to_owned() }), cnt.packets);
    }
    let stats = c.maps.stats()?;
    for (i, name) in
        [(abi::STAT_EVENTS_SENT, "sent"), (abi::STAT_EVENTS_LOST, "lost"), (abi::STAT_EVENTS_SUPPRESSED, "suppressed")]
    {
        let v = stats.get(i as usize).map(|c| c.packets).unwrap_or(0);
        Metrics::raise_to(&m.n3.events.get_or_create(&OutcomeLabel { outcome: name.to_owned() }), v);
    }
    Metrics::raise_to(&m.n3.chain_miss, stats.get(abi::STAT_CHAIN_MISS as usize).map_or(0, |c| c.packets));
    let s = engine.snapshot();
    for (i, name) in ["observe", "shape", "strict", "quarantine"].iter().enumerate() {
        m.n3.devices_per_stage
            .get_or_create(&StageLabel { stage: (*name).to_owned() })
            .set(s.devices_per_stage[i] as i64);
    }
    m.n3.cells_capped.set(s.cells_capped.len() as i64);
    m.n3.tracked_devices.set(s.tracked_devices as i64);
    Metrics::raise_to(&m.n3.evicted_devices, s.evicted_devices);
    Metrics::raise_to(&m.n3.untracked_readings, s.untracked_readings);
    m.n3.host_capped.set(i64::from(s.host_capped));
    m.n3.top_offender_pps.clear();
    m.n3.top_offender_bytes.clear();
    for (rank, o) in s.top_offenders.iter().enumerate() {
        let l = OffenderLabel {
            rank: rank.to_string(),
            device: o.key.clone(),
            reason: o.reason.map(|r| r.name().to_owned()).unwrap_or_default(),
        };
        m.n3.top_offender_pps.get_or_create(&l).set(o.rate_pps);
        m.n3.top_offender_bytes.get_or_create(&l).set(o.rate_bps / 8.0);
    }
    let cells = c.maps.cells();
    if let Some(n) = devices {
        m.n3.map_entries.get_or_create(&MapLabel { map: abi::MAP_N3_DEVICES.to_owned() }).set(n);
    }
    m.n3.map_capacity
        .get_or_create(&MapLabel { map: abi::MAP_N3_DEVICES.to_owned() })
        .set(c.cfg.guard.max_devices as i64);
    for (name, n, cap) in [
        (abi::MAP_N3_STAGES, stages, abi::DEFAULT_MAX_STAGED as i64),
        (abi::MAP_N3_CELLS, cells.len() as i64, abi::DEFAULT_MAX_CELLS as i64),
    ] {
        m.n3.map_entries.get_or_create(&MapLabel { map: name.to_owned() }).set(n);
        m.n3.map_capacity.get_or_create(&MapLabel { map: name.to_owned() }).set(cap);
    }
    update_cell_rates(m, cells);
    Ok(())
}

/// Per-cell G-PDU rates of the busiest cells now, from two consecutive readings: ranked by the
/// G-PDUs since the last reading, not by their lifetime count, under which a small cell flooding
/// now stayed behind big cells' histories (a cell first seen counts from its first reading).
pub(super) fn update_cell_rates(m: &Exported, cells: Vec<(abi::CellKey, abi::CellState)>) {
    use std::sync::Mutex;
    type Last = Option<(u64, std::collections::HashMap<abi::CellKey, (u64, u64)>)>;
    static LAST: Mutex<Last> = Mutex::new(None);
    let now = monotonic_ns();
    let Ok(mut last) = LAST.lock() else { return };
    m.n3.cell_pps.clear();
    m.n3.cell_bytes.clear();
    if let Some((t0, prev)) = last.as_ref() {
        let dt = (now.saturating_sub(*t0)) as f64 / 1e9;
        if dt > 0.0 {
            for (k, d_gpdu, d_bytes) in busiest_now(&cells, prev, TOP_CELLS) {
                let label = crate::metrics::CellLabel { cell: crate::n3::engine::decision::addr_str(&k) };
                m.n3.cell_pps.get_or_create(&label).set(d_gpdu as f64 / dt);
                m.n3.cell_bytes.get_or_create(&label).set(d_bytes as f64 / dt);
            }
        }
    }
    *last = Some((now, cells.iter().map(|(k, c)| (*k, (c.gpdu, c.bytes))).collect()));
}

/// The `top` cells by G-PDUs since `prev`'s reading: (cell, G-PDUs, octets) since then.
fn busiest_now(
    cells: &[(abi::CellKey, abi::CellState)],
    prev: &std::collections::HashMap<abi::CellKey, (u64, u64)>,
    top: usize,
) -> Vec<(abi::CellKey, u64, u64)> {
    let mut d: Vec<(abi::CellKey, u64, u64)> = cells
        .iter()
        .map(|(k, c)| {
            let (g, b) = prev.get(k).copied().unwrap_or((c.gpdu, c.bytes));
            (*k, c.gpdu.saturating_sub(g), c.bytes.saturating_sub(b))
        })
        .collect();
    d.sort_by_key(|&(_, g, _)| std::cmp::Reverse(g));
    d.truncate(top);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_cells_are_the_busiest_now_not_the_oldest() {
        let cell = |i: u8| abi::L3Addr::v4([10, 200, 0, i]);
        let state = |gpdu: u64| abi::CellState { gpdu, bytes: gpdu * 100, ..Default::default() };
        // Cell 1 carried 10M G-PDUs over its life and 10 since the last reading; cell 2 is new
        // in the top and floods now: 5000 since.
        let prev = [(cell(1), (10_000_000, 1_000_000_000)), (cell(2), (100, 10_000))].into_iter().collect();
        let now = vec![(cell(1), state(10_000_010)), (cell(2), state(5_100))];
        let top = busiest_now(&now, &prev, 1);
        assert_eq!(top, vec![(cell(2), 5_000, 500_000)]);
        // A cell with no earlier reading counts from its first.
        assert_eq!(busiest_now(&[(cell(3), state(7))], &prev, 5), vec![(cell(3), 0, 0)]);
    }
}
