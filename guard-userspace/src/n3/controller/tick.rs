//! One controller tick, and the event passes between ticks: drain the events, read the next
//! slice of the device map, step the engine.
//!
//! The clock and the walk are parameters ([`tick_at`], [`events_pass_at`]) so that `guard replay`
//! runs these same functions on a capture's clock; `guard run` passes `monotonic_ns()` and
//! [`WalkMode::Live`] ([`one_tick`], [`events_pass`]).

use super::*;

/// How a tick reads the device map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkMode {
    /// `guard run`: a slice of at most [`WALK_SHARE`] of the tick; a big map is walked over
    /// several ticks.
    Live,
    /// `guard replay`: the whole map every tick (replayed time does not pass while the map is
    /// read), sorted by key: the kernel's hash-map order depends on a random per-map seed, and
    /// the same capture must give the same samples in the same order run after run.
    Whole,
}

/// The events drained since the last call, into `c.event_buf`'s allocation.
pub(super) fn drain_events(c: &mut Ctl, metrics: &Exported) -> Vec<abi::Event> {
    let mut events = std::mem::take(&mut c.event_buf);
    let discarded = c.events.take_into(&mut events);
    Metrics::raise_to(
        &metrics.n3.events.get_or_create(&crate::metrics::OutcomeLabel { outcome: "discarded".into() }),
        discarded,
    );
    events
}

/// Between ticks: the over-limit readings that confirm a flood are acted on now (see
/// [`Engine::events_pass`]); the other events wait for the tick.
pub(super) fn events_pass(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut super::apply::HostCap,
) {
    events_pass_at(c, engine, audit, metrics, host_cap, monotonic_ns());
}

/// [`events_pass`] at `now`; the decisions it applied (and audited).
pub(super) fn events_pass_at(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut super::apply::HostCap,
    now: u64,
) -> Vec<Decision> {
    let mut events = drain_events(c, metrics);
    if events.is_empty() {
        c.event_buf = events;
        return Vec::new();
    }
    let decisions = engine.events_pass(now, &mut events);
    c.held_events.append(&mut events);
    c.event_buf = events;
    apply_all(c, &decisions, now, host_cap, audit, metrics);
    decisions
}

pub(super) fn one_tick(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut super::apply::HostCap,
) -> Result<()> {
    tick_at(c, engine, audit, metrics, host_cap, monotonic_ns(), WalkMode::Live).map(|_| ())
}

/// One tick at `now`, reading the device map as `walk` says; the decisions it applied.
pub(super) fn tick_at(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut super::apply::HostCap,
    now: u64,
    walk: WalkMode,
) -> Result<Vec<Decision>> {
    if let Some(chain) = c.chain.as_mut() {
        sync_chain(chain, metrics);
    }
    let mut fresh = drain_events(c, metrics);
    // The events held by the passes between ticks are older: they go first.
    let mut events = std::mem::take(&mut c.held_events);
    events.append(&mut fresh);
    c.held_events = fresh;
    // Security-relevant, and rare unless someone floods them: kept in the audit trail, a bounded
    // number of lines a tick (`AUDIT_EVENTS_PER_TICK`, the rest summarised).
    if let Err(e) = audit.record_tick_events(SystemTime::now(), &events) {
        warn!(error = %e, "audit write failed");
    }
    let walked = read_walk_slice(c, metrics, walk);
    let samples = std::mem::take(&mut c.samples);
    // A full pass when the walk completed (every tick while the map is read whole in one);
    // between, only the devices read this tick and the notable ones (see `Pass`).
    let pass = if walked.is_some() { Pass::Full } else { Pass::Changed };
    // Operator pins and releases written since the last tick (by `guard device`, straight into
    // the map) take the device out of the engine's hands before it decides. The tick's one read
    // of N3_STAGES: pruning after the decisions works from it too (`prune_expired`), where it
    // read the map whole a second time (issue 19: each read is ~4 ms of a core at 10k staged
    // devices, as many entries a second as a walk's slice).
    let staged = c.maps.stages();
    let manual: Vec<CurrentStage> = staged
        .iter()
        .filter(|(_, e)| e.flags & STAGE_FLAG_MANUAL != 0)
        .map(|(k, e)| CurrentStage::from_entry(*k, e))
        .collect();
    engine.sync_manual(&manual, now);
    // Fleet mode: the other UPFs' view of the gNBs before, this member's hot gNBs after.
    if let Some(x) = &c.fleet {
        engine.set_fleet(n3_sums(&x.live_members(std::time::Instant::now())));
    }
    let decisions = engine.tick_pass(now, &samples, &events, pass);
    if let Some(x) = &c.fleet {
        x.publish(engine.hot_cells_for_fleet(x.fraction, x.max_cells));
    }
    c.samples = samples;
    c.event_buf = events;
    c.stage_entries_added = 0;
    apply_all(c, &decisions, now, host_cap, audit, metrics);
    let stages = prune_expired(c, now, &staged);
    super::marks::maybe_rebuild(c, stages, now);
    update_metrics(c, engine, metrics, walked.map(|n| n as i64), stages as i64)?;
    Ok(decisions)
}

/// This tick's slice of the device-map walk, into `c.samples`: devices read for at most
/// [`WALK_SHARE`] of the tick (all of it, sorted, with [`WalkMode::Whole`]). Returns the walk's
/// device count if this slice finished it. A failed read is logged and restarts the walk next
/// tick; the tick goes on with the events.
pub(super) fn read_walk_slice(c: &mut Ctl, metrics: &Exported, mode: WalkMode) -> Option<usize> {
    let t0 = Instant::now();
    let budget = Duration::from_secs_f64((c.cfg.guard.tick.as_secs_f64() * WALK_SHARE).max(0.001));
    let w = &mut c.walk;
    if w.started.is_none() {
        w.started = Some(t0);
        w.seen = 0;
        w.reading = Duration::ZERO;
    }
    let key_mode_ue = c.cfg.guard.key_mode == crate::config::KeyMode::UeAddr;
    // Fleet UE pins on a member keyed by TEID: each batch's devices bound to a pinned UE.
    let bound = c.bound.as_ref().filter(|_| !key_mode_ue);
    let (raw, samples) = (&mut c.raw, &mut c.samples);
    raw.clear();
    samples.clear();
    let mut walked = None;
    loop {
        match c.maps.device_slice(&mut w.cursor, WALK_STEP, raw) {
            Ok(n) => w.seen += n,
            Err(e) => {
                warn!(error = %e, "reading the device map failed; the walk restarts next tick");
                *w = Walk::default();
                return None;
            }
        }
        // Each batch becomes samples at once, so the read buffer holds one batch of map entries
        // (~240 bytes each), not the whole slice: at 1M devices a slice is tens of thousands of
        // entries, MiBs the process would keep resident (issue 19).
        if let Some(b) = bound {
            b.offer(raw);
        }
        samples.extend(raw.drain(..).map(|(key, d)| DeviceSample {
            key,
            cell: d.cell,
            packets: d.packets(),
            bytes: d.bytes(),
            over_limit: d.over_limit,
            dropped: d.dropped(),
            inner_dst: d.inner_dst,
            ue_addr: if key_mode_ue { ue_of_key(&key) } else { ue_of_binding(&d) },
            teid: d.teid,
        }));
        if w.cursor.finished() {
            w.reading += t0.elapsed();
            metrics.n3.device_scan_seconds.set(w.started.map_or(0.0, |s| s.elapsed().as_secs_f64()));
            metrics.n3.device_scan_read_seconds.set(w.reading.as_secs_f64());
            walked = Some(w.seen);
            w.started = None;
            break;
        }
        if mode == WalkMode::Live && t0.elapsed() >= budget {
            w.reading += t0.elapsed();
            break;
        }
    }
    if mode == WalkMode::Whole {
        samples.sort_unstable_by_key(|s| s.key);
    }
    walked
}

/// The others' contributions summed per gNB, with who contributed (for the cap's audit line).
fn n3_sums(live: &[(String, Vec<crate::n3::engine::N3HotCell>)]) -> crate::n3::engine::N3FleetCells {
    let mut out = crate::n3::engine::N3FleetCells::new();
    for (member, cells) in live {
        for c in cells {
            let e = out.entry(c.cell).or_default();
            e.demand += c.demand;
            e.offenders = e.offenders.saturating_add(c.offenders);
            e.members += 1;
            e.by.push(member.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::n3_sums;
    use crate::n3::engine::N3HotCell;
    use guard_common::abi::L3Addr;

    #[test]
    fn the_fleet_sums_per_gnb_name_the_members_that_contributed() {
        let (g1, g2) = (L3Addr::v4([192, 0, 2, 1]), L3Addr::v4([192, 0, 2, 2]));
        let hot = |cell, demand, offenders| N3HotCell { cell, demand, offenders };
        let live = vec![
            ("upf-b".to_owned(), vec![hot(g1, 100.0, 3), hot(g2, 5.0, 1)]),
            ("upf-c".to_owned(), vec![hot(g1, 50.0, 2)]),
        ];
        let s = n3_sums(&live);
        assert_eq!((s[&g1].demand, s[&g1].offenders, s[&g1].members), (150.0, 5, 2));
        assert_eq!(s[&g1].by, vec!["upf-b".to_owned(), "upf-c".to_owned()]);
        assert_eq!(s[&g2].by, vec!["upf-b".to_owned()]);
    }
}
