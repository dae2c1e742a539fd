//! The N3 controller on a capture's clock, for `guard replay` (docs/replay.md): the same tick and
//! event passes as `guard run` ([`tick_at`], [`events_pass_at`], the same `apply.rs`), stepped by
//! the replay at the capture's times instead of by tokio's timers.
//!
//! What differs from the live loop, and why:
//! - the clock is the caller's (`now`), on the replay's monotonic scale;
//! - the device map is read whole every tick, sorted ([`WalkMode::Whole`]): replayed time does not
//!   pass while the map is read, and the same capture must give the same decisions;
//! - the event ring is drained on the caller's thread after every packet
//!   ([`ReplayController::drain_events`]), so a tick sees exactly the events of the packets before
//!   it, and the ring never overflows (the live ring can: docs/replay.md, "Limits");
//! - there is no chain to watch, no SIGHUP, no health endpoint.

use super::*;

/// The controller of a replay: the loop's state, its engine, and what it applies decisions with.
pub struct ReplayController {
    c: Ctl,
    engine: Engine,
    audit: AuditLog,
    metrics: Exported,
    host_cap: super::apply::HostCap,
}

impl ReplayController {
    /// The controller for `loaded` (a replay's load, `load::load_replay`), its audit trail written
    /// to `audit_path`. `ncpus` is what the data-plane config was divided by (the replay runs
    /// every packet on one CPU: 1).
    pub fn new(loaded: &mut load::Loaded, cfg: Config, audit_path: &std::path::Path, ncpus: u32) -> Result<Self> {
        let events = loaded.ebpf.take_map(abi::MAP_N3_EVENTS).context("the object has no N3_EVENTS ring buffer")?;
        let ring = RingBuf::try_from(events).context("N3_EVENTS is not a ring buffer")?;
        let maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf)?;
        let audit =
            AuditLog::open(audit_path).with_context(|| format!("opening the audit log {}", audit_path.display()))?;
        let mut core = Metrics::new();
        let n3 = N3Metrics::register(core.interface(Some("replay")));
        let health = crate::service::Health::new(cfg.guard.tick.0, Vec::new(), audit_path.to_path_buf());
        let engine = Engine::new(&cfg);
        let c = Ctl {
            chain: None,
            cfg,
            config_path: None,
            maps,
            events: EventPump::inline(ring, EVENT_BACKLOG),
            ncpus,
            duration: None,
            walk: Walk::default(),
            raw: Vec::new(),
            samples: Vec::new(),
            event_buf: Vec::new(),
            held_events: Vec::new(),
            stage_entries_added: 0,
            health,
            fleet: None,
            bound: None,
            marks_rebuilt_ns: 0,
            n2_settings: None,
        };
        Ok(ReplayController { c, engine, audit, metrics: Exported { core: Arc::new(core), n3 }, host_cap: None })
    }

    /// The controller's tick period, ns (the config's `guard.tick`, at least 10 ms as in `run`).
    pub fn tick_ns(&self) -> u64 {
        self.c.cfg.guard.tick.0.max(10_000_000)
    }

    /// The period of the event passes between ticks, ns (as `guard run`'s).
    pub fn event_pass_ns(&self) -> u64 {
        event_pass_period(self.c.cfg.guard.tick.0).as_nanos() as u64
    }

    /// Move the events the data plane wrote into the controller's backlog (after each packet).
    pub fn drain_events(&mut self) {
        self.c.events.drain_now();
    }

    /// One controller tick at `now`: the decisions applied.
    pub fn tick(&mut self, now: u64) -> Result<Vec<Decision>> {
        let r = tick_at(
            &mut self.c,
            &mut self.engine,
            &self.audit,
            &self.metrics,
            &mut self.host_cap,
            now,
            WalkMode::Whole,
        );
        self.audit.sync().ok();
        r
    }

    /// One between-tick event pass at `now`: the decisions applied.
    pub fn events_pass(&mut self, now: u64) -> Vec<Decision> {
        events_pass_at(&mut self.c, &mut self.engine, &self.audit, &self.metrics, &mut self.host_cap, now)
    }

    /// The data plane's maps (counters, stages).
    pub fn maps(&self) -> &N3Maps {
        &self.c.maps
    }

    /// The engine's view now (stages, offenders, classes).
    pub fn snapshot(&self) -> crate::n3::engine::EngineStatus {
        self.engine.snapshot()
    }
}

#[cfg(test)]
mod tests;
