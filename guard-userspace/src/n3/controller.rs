//! The N3 control loop (the wiring of `guard run` is in `crate::cli::run`).
//!
//! Each tick (the config's `guard.tick`, default 1 s):
//! 1. take the events (over-limit, spoof, new-device) that the event thread ([`EventPump`])
//!    drained from the ring buffer since the last tick;
//! 2. read the next slice of the device map (cumulative counters; the engine diffs them over each
//!    device's own elapsed time). Reads are batched (`BPF_MAP_LOOKUP_BATCH`, [`crate::bpf::batch`]) and
//!    a tick reads for at most [`WALK_SHARE`] of the tick time, so a small map is read whole every
//!    tick and a large one in slices over several ticks, the tick never blocking for long; the
//!    devices in between are covered by their over-limit events;
//! 3. ask the [`Engine`] for decisions, stepping every device when the walk completed and only
//!    the devices read this tick plus the notable ones (staged, counting toward a stage) between
//!    ([`Pass`]), so a tick's cost follows what changed, not the map's size; apply the decisions
//!    to the maps: stage entries, cell caps, the host cap in the config record. Manual (operator)
//!    pins are never touched;
//! 4. audit every non-refresh decision (JSON lines) and update the metrics.
//!
//! SIGHUP reloads the config file: a file that fails validation is logged and audited, and the
//! running config stays. SIGINT/SIGTERM stop the loop; the pinned link keeps the data plane
//! running with its current stages, which expire on their own.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};
use aya::maps::RingBuf;
use guard_common::abi::{self, GuardConfig, STAGE_FLAG_MANUAL};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::{
    audit::AuditLog,
    clock::monotonic_ns,
    config::Config,
    metrics::Metrics,
    n2::metrics::N2Metrics,
    n3::audit::N3Audit as _,
    n3::engine::{decision::Decision, CurrentStage, DeviceSample, Engine, Pass},
    n3::events::EventPump,
    n3::load,
    n3::maps::N3Maps,
    n3::metrics::{N3Metrics, TOP_CELLS},
};

/// Events the event thread keeps between two ticks at most; more are discarded and counted
/// (`ringbuf_events{outcome="discarded"}`). 262144 × 80 B = 20 MiB.
const EVENT_BACKLOG: usize = 1 << 18;

/// The share of a tick spent reading the device map, at most (one more batch may overrun it).
/// The engine's work per device read is a few times the read itself, so 2% of the tick reading
/// keeps the whole controller near a tenth of a core at 1M devices (a walk every ~30 s there;
/// offenders are found from their events in between), and reads a map of ~30k devices whole
/// every tick.
pub const WALK_SHARE: f64 = 0.02;

/// Devices read per step of a slice, between two checks of the tick's time budget.
const WALK_STEP: usize = 16_384;

/// What `guard run` hands the N3 control loop: the program loaded and attached, its
/// configuration, and the N2 side when there is one.
pub struct Start {
    /// The N3 interface (the `interface` label of its metrics).
    pub iface: String,
    pub cfg: Config,
    pub config_path: Option<PathBuf>,
    pub pins: crate::bpf::pins::PinDir,
    /// The CPUs the per-CPU limits are split over.
    pub ncpus: u32,
    /// Stop after this long (tests and demos); None: until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// `[attach] into`: the program-array slot the guard sits in instead of the interface.
    pub into: Option<crate::n3::chain::IntoSlot>,
    /// `guard_n2`, attached, when an N2 interface is configured: its controller ticks on a thread.
    pub n2: Option<crate::n2::controller::Prepared>,
    /// Liveness and readiness for `/healthz`, `/readyz` (and the watchdog).
    pub health: Arc<crate::service::Health>,
}

/// Run the control loop on `loaded` until SIGINT/SIGTERM (or `duration`), with the event thread
/// draining its ring buffer.
pub fn run(loaded: &mut load::Loaded, s: Start) -> Result<()> {
    let events = loaded.ebpf.take_map(abi::MAP_N3_EVENTS).context("the object has no N3_EVENTS ring buffer")?;
    let ring = RingBuf::try_from(events).context("N3_EVENTS is not a ring buffer")?;
    let events = EventPump::start(ring, EVENT_BACKLOG)?;
    let maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf)?;
    let Start { iface, cfg, config_path, pins, ncpus, duration, into, n2, health } = s;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let own_prog = {
        let p = loaded.program()?;
        let id = p.info().context("guard_n3's program id")?.id();
        (p.fd().context("guard_n3's descriptor")?.try_clone().context("duplicating guard_n3's descriptor")?, id)
    };
    rt.block_on(control_loop(Ctl {
        chain: ChainWatch { pins: pins.clone(), into, own_prog, next: None, in_slot: None },
        iface,
        cfg,
        config_path,
        maps,
        events,
        ncpus,
        duration,
        walk: Walk::default(),
        raw: Vec::new(),
        samples: Vec::new(),
        event_buf: Vec::new(),
        held_events: Vec::new(),
        n2,
        health,
        pins,
    }))
}

/// What the controller keeps of the chaining (`[attach]`), to say each change once.
struct ChainWatch {
    pins: crate::bpf::pins::PinDir,
    into: Option<crate::n3::chain::IntoSlot>,
    own_prog: (aya::programs::ProgramFd, u32),
    /// The last next-program state reported (None: none yet).
    next: Option<crate::n3::chain::NextState>,
    in_slot: Option<crate::n3::chain::IntoState>,
}

/// Re-resolve the next program's pin and the guard's own slot (every tick), log each change
/// once, and export the state.
fn sync_chain(w: &mut ChainWatch, m: &Exported) {
    use crate::n3::chain::{IntoState, NextState};
    match crate::n3::chain::sync_next(&w.pins) {
        Ok(st) => {
            let label = match &st {
                NextState::Unset => "unset",
                NextState::Linked { .. } => "linked",
                NextState::Gone { .. } => "gone",
            };
            let changed = match (&w.next, &st) {
                (Some(NextState::Linked { id: a, .. }), NextState::Linked { id: b, changed: false, .. }) => a != b,
                (Some(prev), _) => {
                    std::mem::discriminant(prev) != std::mem::discriminant(&st)
                        || matches!(st, NextState::Linked { changed: true, .. })
                }
                (None, _) => true,
            };
            if changed {
                match &st {
                    NextState::Linked { id, name, .. } => info!(id, name, "next program linked: passed packets go on to it"),
                    NextState::Gone { .. } => warn!(
                        "the next program's pin is gone: its slot is emptied and passed packets go to the kernel stack (counted as chain_miss) until a program is pinned there again"
                    ),
                    NextState::Unset => info!("no next program: passed packets go to the kernel stack"),
                }
            }
            for l in ["unset", "linked", "gone"] {
                m.n3.chain_next
                    .get_or_create(&crate::metrics::OutcomeLabel { outcome: l.into() })
                    .set(i64::from(l == label));
            }
            w.next = Some(st);
        }
        Err(e) => warn!(error = %e, "re-resolving the next program"),
    }
    if let Some(into) = &w.into {
        match crate::n3::chain::sync_into(&w.pins, into, &w.own_prog.0, w.own_prog.1) {
            Ok(st) => {
                if w.in_slot.as_ref() != Some(&st) {
                    match &st {
                        IntoState::InSlot { replaced: true } => {
                            warn!(array = %into.array.display(), slot = into.slot, "the guard's slot was empty (root restarted?): guard_n3 put back")
                        }
                        IntoState::InSlot { replaced: false } => {
                            info!(array = %into.array.display(), slot = into.slot, "guard_n3 is in its slot")
                        }
                        IntoState::ArrayGone => {
                            warn!(array = %into.array.display(), "the program array the guard sits in is no longer pinned: the guard runs only if the root still holds it")
                        }
                        IntoState::Taken(id) => {
                            warn!(array = %into.array.display(), slot = into.slot, id, "another program took the guard's slot: it is left there; the guard does not run")
                        }
                    }
                }
                m.n3.chain_into.set(i64::from(matches!(st, IntoState::InSlot { .. })));
                // Report a put-back once, then as in the slot.
                w.in_slot = Some(match st {
                    IntoState::InSlot { .. } => IntoState::InSlot { replaced: false },
                    s => s,
                });
            }
            Err(e) => warn!(error = %e, "checking the guard's program-array slot"),
        }
    }
}

/// What the control loop exports: the process-wide series and each side's, in one registry.
struct Exported {
    core: Metrics,
    n3: N3Metrics,
    /// `overload_guard_n2_*` (docs/n2.md): registered only when N2 runs.
    n2: N2Metrics,
}

struct Ctl {
    chain: ChainWatch,
    /// The N3 interface (the `interface` label of its metrics).
    iface: String,
    cfg: Config,
    config_path: Option<PathBuf>,
    maps: N3Maps,
    events: EventPump,
    ncpus: u32,
    duration: Option<Duration>,
    walk: Walk,
    /// Buffers for the walk's slices and the engine's samples, kept across ticks: at scale they
    /// hold megabytes, which fresh allocations would page-fault in every tick.
    raw: Vec<(abi::DeviceKey, abi::DeviceState)>,
    samples: Vec<DeviceSample>,
    event_buf: Vec<abi::Event>,
    /// Events the between-tick event passes left for the tick (see [`Engine::events_pass`]).
    held_events: Vec<abi::Event>,
    /// `guard_n2`, attached, when `--n2-iface` was given: its controller ticks on a thread.
    n2: Option<crate::n2::controller::Prepared>,
    /// Liveness and readiness for `/healthz`, `/readyz` (and the watchdog).
    health: Arc<crate::service::Health>,
    /// The N3 pin directory (the fleet task opens its own handle on the maps).
    pins: crate::bpf::pins::PinDir,
}

/// The walk of the device map in progress, read a slice per tick.
#[derive(Default)]
struct Walk {
    cursor: crate::bpf::batch::Cursor,
    /// When the walk's first slice was read.
    started: Option<Instant>,
    /// Devices read so far in this walk.
    seen: usize,
    /// Time spent reading, summed over this walk's slices.
    reading: Duration,
}

async fn control_loop(mut c: Ctl) -> Result<()> {
    let mut core = Metrics::new();
    let n3 = N3Metrics::register(core.interface(Some(&c.iface)));
    let n2 = match c.n2.as_ref() {
        Some(p) => N2Metrics::register(core.interface(Some(p.iface()))),
        None => N2Metrics::default(),
    };
    let mut m = Exported { core, n3, n2 };
    // Fleet mode only with `[fleet]`: without it no fleet series, no etcd code path.
    let fleet_metrics =
        c.cfg.fleet.as_ref().map(|_| crate::fleet::status::FleetMetrics::register(&mut m.core.registry));
    let metrics = Arc::new(m);
    let encode = {
        let m = metrics.clone();
        Arc::new(move || m.core.encode())
    };
    let server = crate::metrics::serve(c.cfg.metrics.listen, encode, c.health.clone()).await?;
    let fleet = match (&c.cfg.fleet, fleet_metrics) {
        (Some(f), Some(fm)) => Some(start_fleet(&c, f.clone(), fm)?),
        _ => None,
    };
    let n2 = match c.n2.take() {
        Some(p) => Some(p.spawn(metrics.n2.clone())?),
        None => None,
    };
    let audit = AuditLog::open(&c.cfg.guard.audit_log)
        .with_context(|| format!("opening the audit log {}", c.cfg.guard.audit_log.display()))?;
    let mut engine = Engine::new(&c.cfg);
    let now = monotonic_ns();
    let existing: Vec<_> = c.maps.stages().iter().map(|(k, e)| CurrentStage::from_entry(*k, e)).collect();
    engine.restore(&existing, now);
    info!(stages = existing.len(), "resumed the stages found in the pinned maps");

    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_nanos(c.cfg.guard.tick.0.max(10_000_000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut event_pass = tokio::time::interval(event_pass_period(c.cfg.guard.tick.0));
    event_pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = c.duration.map(|d| tokio::time::Instant::now() + d);
    let mut host_cap: Option<(abi::Limit, u64)> = None;
    let period = Duration::from_nanos(c.cfg.guard.tick.0.max(10_000_000));
    let mut announced = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let t0 = Instant::now();
                if let Err(e) = one_tick(&mut c, &mut engine, &audit, &metrics, &mut host_cap) {
                    // A failed tick must not stop the guard: the data plane keeps running, and
                    // stages expire if this keeps failing.
                    error!(error = format!("{e:#}"), "controller tick failed");
                }
                let took = t0.elapsed();
                metrics.core.tick_seconds.observe(took.as_secs_f64());
                metrics.core.last_tick.set(
                    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
                );
                Metrics::raise_to(
                    &metrics.core.audit_write_failures,
                    crate::audit::WRITE_FAILURES.load(std::sync::atomic::Ordering::Relaxed),
                );
                c.health.ticked();
                if !announced {
                    // Every interface was attached before the loop began; the first tick ran.
                    crate::service::ready(&format!("guarding {}", c.health.attached.iter().map(|a| a.iface.as_str()).collect::<Vec<_>>().join(", ")));
                    announced = true;
                }
                // The watchdog is fed only by ticks that kept to their period.
                if took <= period {
                    crate::service::watchdog();
                }
            }
            _ = event_pass.tick() => events_pass(&mut c, &mut engine, &audit, &metrics, &mut host_cap),
            _ = hup.recv() => {
                crate::service::reloading();
                reload(&mut c, &mut engine, &audit, &metrics, host_cap);
                crate::service::ready("configuration reloaded");
            }
            _ = int.recv() => { info!("SIGINT: stopping the controller (the data plane stays attached)"); crate::service::stopping(); break; }
            _ = term.recv() => { info!("SIGTERM: stopping the controller (the data plane stays attached)"); crate::service::stopping(); break; }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                info!("--duration reached: stopping the controller");
                break;
            }
        }
    }
    server.abort();
    if let Some(f) = fleet {
        f.abort();
    }
    if let Some(n2) = n2 {
        n2.stop();
    }
    audit.sync().ok();
    Ok(())
}

/// Start this member's fleet task (docs/fleet.md): its own handle on the pinned maps and the
/// audit log, so that applying a pin is what `guard device pin` does, whatever the tick is doing.
fn start_fleet(
    c: &Ctl,
    f: crate::config::FleetSection,
    fm: crate::fleet::status::FleetMetrics,
) -> Result<tokio::task::JoinHandle<()>> {
    use crate::fleet::{apply::Applier, status::FleetStatus, sync::Member};
    let member = f.member_name();
    let status = Arc::new(FleetStatus::new(&f.name, &member));
    c.health.set_fleet(status.clone());
    let maps = N3Maps::open_pinned(&c.pins)
        .with_context(|| format!("opening the pinned maps in {} for the fleet", c.pins.path().display()))?;
    let audit = Arc::new(
        AuditLog::open(&c.cfg.guard.audit_log)
            .with_context(|| format!("opening the audit log {} for the fleet", c.cfg.guard.audit_log.display()))?,
    );
    let applier = Applier::new(maps, c.cfg.ladder.clone(), audit, member.clone(), fm.clone(), status.clone());
    let about = serde_json::json!({
        "member": member,
        "version": env!("CARGO_PKG_VERSION"),
        "interface": c.iface,
        "key_mode": c.cfg.guard.key_mode,
        "started_unix_ms": crate::fleet::unix_ms(SystemTime::now()),
    });
    info!(fleet = f.name, member, endpoints = f.endpoints.join(","), tls = f.tls(), "fleet mode: following etcd");
    Ok(tokio::spawn(Member::new(f, about, applier, status, fm).run()))
}

/// How often the event ring's readings are looked at between ticks: a tenth of a tick, within
/// [20 ms, 250 ms]. A flood confirmed by an event is pinned this long after the event at most,
/// instead of up to a tick.
fn event_pass_period(tick_ns: u64) -> Duration {
    Duration::from_nanos(tick_ns / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
}

/// The events drained since the last call, into `c.event_buf`'s allocation.
fn drain_events(c: &mut Ctl, metrics: &Exported) -> Vec<abi::Event> {
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
fn events_pass(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut Option<(abi::Limit, u64)>,
) {
    let now = monotonic_ns();
    let mut events = drain_events(c, metrics);
    if events.is_empty() {
        c.event_buf = events;
        return;
    }
    let decisions = engine.events_pass(now, &mut events);
    c.held_events.append(&mut events);
    c.event_buf = events;
    apply_all(c, &decisions, now, host_cap, audit, metrics);
}

fn one_tick(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    metrics: &Exported,
    host_cap: &mut Option<(abi::Limit, u64)>,
) -> Result<()> {
    let now = monotonic_ns();
    sync_chain(&mut c.chain, metrics);
    let mut fresh = drain_events(c, metrics);
    // The events held by the passes between ticks are older: they go first.
    let mut events = std::mem::take(&mut c.held_events);
    events.append(&mut fresh);
    c.held_events = fresh;
    for ev in &events {
        if ev.kind == abi::EVENT_SPOOF || ev.kind == abi::EVENT_NEW_DEVICE_LIMITED {
            // Rare and security-relevant: keep them in the audit trail.
            if let Err(e) = audit.record_event(SystemTime::now(), ev) {
                warn!(error = %e, "audit write failed");
            }
        }
    }
    let key_mode_ue = c.cfg.guard.key_mode == crate::config::KeyMode::UeAddr;
    let walked = read_walk_slice(c, metrics);
    let mut samples = std::mem::take(&mut c.samples);
    samples.clear();
    samples.extend(c.raw.drain(..).map(|(key, d)| DeviceSample {
        key,
        cell: d.cell,
        packets: d.packets,
        bytes: d.bytes,
        over_limit: d.over_limit,
        dropped: d.dropped,
        inner_dst: d.inner_dst,
        ue_addr: if key_mode_ue { ue_of_key(&key) } else { ue_of_binding(&d) },
        teid: d.teid,
    }));
    // A full pass when the walk completed (every tick while the map is read whole in one);
    // between, only the devices read this tick and the notable ones (see `Pass`).
    let pass = if walked.is_some() { Pass::Full } else { Pass::Changed };
    // Operator pins and releases written since the last tick (by `guard device`, straight into
    // the map) take the device out of the engine's hands before it decides.
    let manual: Vec<CurrentStage> = c
        .maps
        .stages()
        .iter()
        .filter(|(_, e)| e.flags & STAGE_FLAG_MANUAL != 0)
        .map(|(k, e)| CurrentStage::from_entry(*k, e))
        .collect();
    engine.sync_manual(&manual, now);
    let decisions = engine.tick_pass(now, &samples, &events, pass);
    c.samples = samples;
    c.event_buf = events;
    apply_all(c, &decisions, now, host_cap, audit, metrics);
    let stages = prune_expired(c, now);
    update_metrics(c, engine, metrics, walked.map(|n| n as i64), stages as i64)
}

/// Apply decisions to the maps; audit, log and count the ones that change something. A decision
/// that fails to apply is logged and not audited (it did not happen); the others still apply.
fn apply_all(
    c: &mut Ctl,
    decisions: &[Decision],
    now: u64,
    host_cap: &mut Option<(abi::Limit, u64)>,
    audit: &AuditLog,
    metrics: &Exported,
) {
    for d in decisions {
        match apply(c, d, now, host_cap) {
            Ok(Applied::Yes) => {}
            // An operator pin or release won: nothing changed, so nothing is audited as done.
            Ok(Applied::OperatorWins) => continue,
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    decision = d.action(),
                    target = d.target(),
                    "applying a decision failed"
                );
                continue;
            }
        }
        if !d.is_refresh() {
            info!(action = d.action(), target = d.target(), "{}", d.summary());
            if let Err(e) = audit.record(SystemTime::now(), d) {
                warn!(error = %e, "audit write failed");
            }
            match d {
                Decision::SetDeviceStage { .. } | Decision::SetCellCap { .. } | Decision::SetHostCap { .. } => {
                    metrics.n3.escalations.get_or_create(&reason_label(d)).inc();
                }
                Decision::ReleaseDevice { .. } | Decision::ReleaseCell { .. } | Decision::ReleaseHost { .. } => {
                    metrics.n3.releases.get_or_create(&reason_label(d)).inc();
                }
                _ => {}
            }
        }
    }
}

/// This tick's slice of the device-map walk, into `c.raw`: devices read for at most
/// [`WALK_SHARE`] of the tick. Returns the walk's device count if this slice finished it. A failed
/// read is logged and restarts the walk next tick; the tick goes on with the events.
fn read_walk_slice(c: &mut Ctl, metrics: &Exported) -> Option<usize> {
    let t0 = Instant::now();
    let budget = Duration::from_secs_f64((c.cfg.guard.tick.as_secs_f64() * WALK_SHARE).max(0.001));
    let w = &mut c.walk;
    if w.started.is_none() {
        w.started = Some(t0);
        w.seen = 0;
        w.reading = Duration::ZERO;
    }
    let out = &mut c.raw;
    out.clear();
    let mut walked = None;
    loop {
        match c.maps.device_slice(&mut w.cursor, WALK_STEP, out) {
            Ok(n) => w.seen += n,
            Err(e) => {
                warn!(error = %e, "reading the device map failed; the walk restarts next tick");
                *w = Walk::default();
                return None;
            }
        }
        if w.cursor.finished() {
            w.reading += t0.elapsed();
            metrics.n3.device_scan_seconds.set(w.started.map_or(0.0, |s| s.elapsed().as_secs_f64()));
            metrics.n3.device_scan_read_seconds.set(w.reading.as_secs_f64());
            walked = Some(w.seen);
            w.started = None;
            break;
        }
        if t0.elapsed() >= budget {
            w.reading += t0.elapsed();
            break;
        }
    }
    walked
}

fn ue_of_key(k: &abi::DeviceKey) -> abi::L3Addr {
    match k.kind {
        abi::DEVICE_KIND_UE_V4 => abi::L3Addr { family: abi::FAMILY_IPV4, addr: k.id },
        abi::DEVICE_KIND_UE_V6 => abi::L3Addr { family: abi::FAMILY_IPV6, addr: k.id },
        _ => abi::L3Addr::NONE,
    }
}

fn reason_label(d: &Decision) -> crate::metrics::ReasonLabel {
    crate::metrics::ReasonLabel { reason: d.reason().name().to_owned() }
}

/// Whether a decision changed the maps.
enum Applied {
    Yes,
    /// The device carries an operator's pin or release, which always wins.
    OperatorWins,
}

/// Apply one decision to the maps. Operator pins always win.
fn apply(c: &mut Ctl, d: &Decision, now: u64, host_cap: &mut Option<(abi::Limit, u64)>) -> Result<Applied> {
    match d {
        Decision::SetDeviceStage { key, refresh, .. } => {
            let existing = c.maps.stage(key)?;
            if existing.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0) {
                return Ok(Applied::OperatorWins);
            }
            if let Some((k, mut entry)) = d.stage_entry(now) {
                // A refresh keeps the rate limiter's state, so re-issuing a stage does not hand
                // the device a fresh burst.
                if let (true, Some(old)) = (*refresh, existing) {
                    if old.stage == entry.stage {
                        entry.tat = old.tat;
                    }
                }
                c.maps.set_stage(&k, &entry)?;
            }
        }
        Decision::ReleaseDevice { key, .. } => {
            if c.maps.stage(key)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0) {
                return Ok(Applied::OperatorWins);
            }
            c.maps.clear_stage(key)?;
        }
        Decision::SetCellCap { .. } => {
            if let Some((cell, entry)) = d.cell_entry(now) {
                // An operator's gNB pin (a fleet pin, `crate::n3::manual`) wins like a device pin.
                if c.maps.cell_stage(&cell)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0 && e.expires_ns > now) {
                    return Ok(Applied::OperatorWins);
                }
                c.maps.set_cell_stage(&cell, &entry)?;
            }
        }
        Decision::ReleaseCell { cell, .. } => {
            if c.maps.cell_stage(cell)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0 && e.expires_ns > now) {
                return Ok(Applied::OperatorWins);
            }
            c.maps.clear_cell_stage(cell)?;
        }
        Decision::SetHostCap { limit, ttl_ns, .. } => {
            *host_cap = Some((*limit, now.saturating_add(*ttl_ns)));
            write_dataplane(c, *host_cap)?;
        }
        Decision::ReleaseHost { .. } => {
            *host_cap = None;
            write_dataplane(c, None)?;
        }
        Decision::FlagCohort { .. } | Decision::Classified { .. } => {}
    }
    Ok(Applied::Yes)
}

/// The UE address a TEID-keyed device is bound to, for group matching (`ue_prefixes`): its IPv4
/// binding, else its IPv6 prefix (the rest zero), else none.
fn ue_of_binding(d: &abi::DeviceState) -> abi::L3Addr {
    if d.bind_flags & abi::BIND_V4 != 0 {
        abi::L3Addr::v4(d.bound_v4.to_ne_bytes())
    } else if d.bind_flags & abi::BIND_V6 != 0 {
        abi::L3Addr::v6((u128::from(d.bound_v6) << 64).to_be_bytes())
    } else {
        abi::L3Addr::NONE
    }
}

/// The tables the configuration fills besides the config record: the host's N3 addresses
/// (`N3_LOCAL`: the F-TEID's local index) and the framed routes (`N3_FRAMED`).
pub fn sync_tables(maps: &mut N3Maps, cfg: &Config) -> Result<()> {
    maps.sync_local_addrs(&cfg.local_addrs())?;
    maps.sync_framed_routes(&cfg.framed_routes())?;
    Ok(())
}

/// Write the data-plane config record, with the host cap (host-wide limit, divided per CPU).
fn write_dataplane(c: &mut Ctl, host_cap: Option<(abi::Limit, u64)>) -> Result<()> {
    let mut dp: GuardConfig = c.cfg.dataplane(c.ncpus);
    if let Some((limit, expires)) = host_cap {
        let per_cpu = (limit.rate_per_sec() / c.ncpus as u64).max(1);
        dp.host_cap = abi::Limit::per_second(per_cpu, (limit.burst() / c.ncpus as u64).max(1));
        dp.host_cap_expires_ns = expires;
    }
    c.maps.write_config(&dp)?;
    Ok(())
}

/// Remove stage entries that expired (the data plane already ignores them); the number of
/// device stage entries left.
fn prune_expired(c: &mut Ctl, now: u64) -> usize {
    let mut left = 0;
    for (k, e) in c.maps.stages() {
        if e.expires_ns > now || c.maps.clear_stage(&k).is_err() {
            left += 1;
        }
    }
    for (k, e) in c.maps.cell_stages() {
        if e.expires_ns <= now {
            let _ = c.maps.clear_cell_stage(&k);
        }
    }
    left
}

fn update_metrics(c: &Ctl, engine: &Engine, m: &Exported, devices: Option<i64>, stages: i64) -> Result<()> {
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
    m.n3.host_capped.set(i64::from(s.host_capped));
    m.n3.top_offender_pps.clear();
    for (rank, o) in s.top_offenders.iter().enumerate() {
        let l = OffenderLabel {
            rank: rank.to_string(),
            device: o.key.clone(),
            reason: o.reason.map(|r| r.name().to_owned()).unwrap_or_default(),
        };
        m.n3.top_offender_pps.get_or_create(&l).set(o.rate_pps);
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

/// Per-cell G-PDU rates of the busiest cells, from two consecutive readings.
fn update_cell_rates(m: &Exported, mut cells: Vec<(abi::CellKey, abi::CellState)>) {
    use std::sync::Mutex;
    static LAST: Mutex<Option<(u64, std::collections::HashMap<abi::CellKey, u64>)>> = Mutex::new(None);
    let now = monotonic_ns();
    let Ok(mut last) = LAST.lock() else { return };
    cells.sort_by_key(|(_, c)| std::cmp::Reverse(c.gpdu));
    m.n3.cell_pps.clear();
    if let Some((t0, prev)) = last.as_ref() {
        let dt = (now.saturating_sub(*t0)) as f64 / 1e9;
        if dt > 0.0 {
            for (k, c) in cells.iter().take(TOP_CELLS) {
                let before = prev.get(k).copied().unwrap_or(c.gpdu);
                let pps = c.gpdu.saturating_sub(before) as f64 / dt;
                m.n3.cell_pps
                    .get_or_create(&crate::metrics::CellLabel { cell: crate::n3::engine::decision::addr_str(k) })
                    .set(pps);
            }
        }
    }
    *last = Some((now, cells.iter().map(|(k, c)| (*k, c.gpdu)).collect()));
}

fn reload(c: &mut Ctl, engine: &mut Engine, audit: &AuditLog, m: &Exported, host_cap: Option<(abi::Limit, u64)>) {
    // Log rotation (logrotate moves the file, then sends SIGHUP): reopen the audit trail first,
    // so the reload's own record lands in the new file. The N2 controller's log follows at its
    // next line.
    crate::audit::request_reopen();
    match audit.reopen_if_requested() {
        Ok(true) => info!(path = %audit.path().display(), "SIGHUP: audit log reopened"),
        Ok(false) => {}
        Err(e) => error!(error = %e, "SIGHUP: reopening the audit log failed; still writing to the file open before"),
    }
    let outcome = |o: &str| crate::metrics::OutcomeLabel { outcome: o.to_owned() };
    let Some(path) = c.config_path.clone() else {
        warn!("SIGHUP: no --config file to reload; nothing changed");
        return;
    };
    match Config::load(&path) {
        Ok(new) => {
            let (new, changes) = c.cfg.reload_from(new);
            let old = std::mem::replace(&mut c.cfg, new);
            let listed = sync_tables(&mut c.maps, &c.cfg);
            if let Err(e) = listed.and_then(|()| write_dataplane(c, host_cap)) {
                error!(
                    error = format!("{e:#}"),
                    "SIGHUP: writing the new data-plane config failed; keeping the old one"
                );
                c.cfg = old;
                let _ = write_dataplane(c, host_cap);
                m.core.config_reloads.get_or_create(&outcome("failed")).inc();
                return;
            }
            engine.reconfigure(&c.cfg);
            if old.attach.next != c.cfg.attach.next {
                let r = match &c.cfg.attach.next {
                    Some(p) => crate::n3::chain::configure(&c.chain.pins, p).map(|_| ()),
                    None => crate::n3::chain::clear_next(&c.chain.pins),
                };
                match r {
                    Ok(()) => info!(next = ?c.cfg.attach.next, "SIGHUP: next program changed"),
                    Err(e) => error!(error = %e, "SIGHUP: changing the next program failed"),
                }
                c.chain.next = None;
            }
            let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
            info!(
                path = %path.display(),
                "SIGHUP: configuration reloaded; changed: {}",
                list(&changes.applied)
            );
            if !changes.needs_restart.is_empty() {
                warn!(
                    "SIGHUP: {} changed in the file but only a restart applies it; the running value stays",
                    list(&changes.needs_restart)
                );
            }
            m.core.config_reloads.get_or_create(&outcome("ok")).inc();
            let _ = audit.write(&crate::audit::AuditRecord {
                ts: crate::audit::rfc3339(SystemTime::now()),
                actor: crate::audit::Actor::Operator,
                action: "config_reload".into(),
                target: path.display().to_string(),
                reason: "sighup".into(),
                evidence: config_file_evidence(&path),
                detail: serde_json::json!({
                    "outcome": "ok", "changed": changes.applied, "needs_restart": changes.needs_restart,
                }),
            });
        }
        Err(e) => {
            error!(path = %path.display(), error = %e, "SIGHUP: the new configuration is invalid; the running configuration stays");
            m.core.config_reloads.get_or_create(&outcome("rejected")).inc();
            let _ = audit.write(&crate::audit::AuditRecord {
                ts: crate::audit::rfc3339(SystemTime::now()),
                actor: crate::audit::Actor::Operator,
                action: "config_reload".into(),
                target: path.display().to_string(),
                reason: "sighup".into(),
                evidence: {
                    let mut ev = config_file_evidence(&path);
                    ev["error"] = serde_json::Value::String(e.to_string());
                    ev
                },
                detail: serde_json::json!({"outcome": "rejected"}),
            });
        }
    }
}

/// Who changed the configuration, as far as the file tells: a signal does not say who sent it,
/// so the audit keeps the file's owner, mode, size and modification time.
fn config_file_evidence(path: &std::path::Path) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(m) => serde_json::json!({
            "file_uid": m.uid(),
            "file_gid": m.gid(),
            "file_mode": format!("{:o}", m.mode() & 0o7777),
            "file_size": m.size(),
            "file_mtime": crate::audit::rfc3339(m.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
        }),
        Err(e) => serde_json::json!({ "file_error": e.to_string() }),
    }
}
