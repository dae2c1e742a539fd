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

use crate::n2::fleet_link::Exchange;
use crate::n3::engine::N3HotCell;
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
    n3::audit::N3Audit as _,
    n3::engine::{decision::Decision, CurrentStage, DeviceSample, Engine, Pass},
    n3::events::EventPump,
    n3::load,
    n3::maps::N3Maps,
    n3::metrics::{N3Metrics, TOP_CELLS},
};

mod apply;
mod chain_watch;
mod marks;
mod reload;
pub mod replay;
mod report;
mod tick;

use self::{apply::*, chain_watch::*, reload::*, report::*, tick::*};
pub use apply::sync_tables;
pub use tick::WalkMode;

/// Events the event thread keeps between two ticks at most; more are discarded and counted
/// (`ringbuf_events{outcome="discarded"}`). 262144 × 80 B = 20 MiB.
const EVENT_BACKLOG: usize = 1 << 18;

/// The share of a tick spent reading the device map, at most (one more step may overrun it).
/// The engine's work per device read is a few times the read itself, so 2% of the tick reading
/// keeps the whole controller near a twentieth of a core at 1M devices (a walk every ~40 s there;
/// offenders are found from their events in between), and reads a map of ~30k devices whole
/// every tick.
pub const WALK_SHARE: f64 = 0.02;

/// Devices read per step of a slice, between two checks of the tick's time budget. Small
/// enough that the step which overruns the budget overruns it by little: 16,384 (before) took
/// 7-18 ms at 1M devices (0.4-1.1 µs a device, the machine's load deciding), so a tick read for
/// 27-34 ms of its 20 ms share and the walk ran ~1.5x faster than designed (BENCHMARKS.md
/// section 20). The read buffer is one step of entries (~1 MiB).
const WALK_STEP: usize = 4_096;

/// What `guard run` hands the N3 control loop: the program loaded and attached, and its
/// configuration.
pub struct Start {
    pub cfg: Config,
    pub config_path: Option<PathBuf>,
    pub pins: crate::bpf::pins::PinDir,
    /// The CPUs the per-CPU limits are split over.
    pub ncpus: u32,
    /// Stop after this long (tests and demos); None: until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// `[attach] into`: the program-array slot the guard sits in instead of the interface.
    pub into: Option<crate::n3::chain::IntoSlot>,
    /// Liveness and readiness for `/healthz`, `/readyz` (and the watchdog).
    pub health: Arc<crate::service::Health>,
}

/// The control loop for `loaded`, ready to [`run`]: its maps, and the event thread draining its
/// ring buffer from now on.
pub fn prepare(loaded: &mut load::Loaded, s: Start) -> Result<Ctl> {
    let events = loaded.ebpf.take_map(abi::MAP_N3_EVENTS).context("the object has no N3_EVENTS ring buffer")?;
    let ring = RingBuf::try_from(events).context("N3_EVENTS is not a ring buffer")?;
    let events = EventPump::start(ring, EVENT_BACKLOG)?;
    let maps = N3Maps::from_ebpf_ref(&mut loaded.ebpf)?;
    let Start { cfg, config_path, pins, ncpus, duration, into, health } = s;
    let own_prog = {
        let p = loaded.program()?;
        let id = p.info().context("guard_n3's program id")?.id();
        (p.fd().context("guard_n3's descriptor")?.try_clone().context("duplicating guard_n3's descriptor")?, id)
    };
    Ok(Ctl {
        chain: Some(ChainWatch { pins: pins.clone(), into, own_prog, next: None, in_slot: None }),
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
        stage_entries_added: 0,
        health,
        fleet: None,
        bound: None,
        marks_rebuilt_ns: 0,
        n2_settings: None,
    })
}

/// What the control loop exports: the process-wide series (their registry is served by
/// `guard run`'s HTTP listener) and N3's.
struct Exported {
    core: Arc<Metrics>,
    n3: N3Metrics,
}

/// The N3 control loop's state between ticks (see [`prepare`] and [`run`]).
pub struct Ctl {
    /// None in a replay (`replay.rs`): nothing is attached, there is no chain to watch.
    chain: Option<ChainWatch>,
    cfg: Config,
    config_path: Option<PathBuf>,
    maps: N3Maps,
    events: EventPump,
    ncpus: u32,
    duration: Option<Duration>,
    walk: Walk,
    /// Buffers for the walk's batches (one batch of map entries: each is turned into samples at
    /// once) and the engine's samples (a slice), kept across ticks: at scale they hold
    /// megabytes, which fresh allocations would page-fault in every tick.
    raw: Vec<(abi::DeviceKey, abi::DeviceState)>,
    samples: Vec<DeviceSample>,
    event_buf: Vec<abi::Event>,
    /// Events the between-tick event passes left for the tick (see [`Engine::events_pass`]).
    held_events: Vec<abi::Event>,
    /// Device stage entries the tick's decisions added, less those they released (the
    /// N3_STAGES count of `apply::prune_expired`).
    stage_entries_added: i64,
    /// Liveness and readiness for `/healthz`, `/readyz` (and the watchdog).
    health: Arc<crate::service::Health>,
    /// Fleet mode's per-gNB summaries (docs/fleet.md); `None`: the local engine alone.
    fleet: Option<Arc<Exchange<N3HotCell>>>,
    /// Fleet mode: UE pins resolved through learned bindings (key_mode teid), offered each walk
    /// slice; `None` without `[fleet]`.
    bound: Option<Arc<crate::n3::bound::BoundPins>>,
    /// When `marks::maybe_rebuild` last rebuilt `N3_STAGED` (monotonic ns; 0: not yet).
    marks_rebuilt_ns: u64,
    /// The N2 settings file (None: built-in defaults) and the settings the N2 thread runs with:
    /// SIGHUP compares them with the file's, so that a changed N2 file is reported as needing a
    /// restart rather than left out of "changed: none". None without N2.
    n2_settings: Option<(Option<PathBuf>, crate::config::n2::N2File)>,
}

impl Ctl {
    /// Judge gNB caps with the other members' summaries and publish this member's hot gNBs.
    pub fn with_fleet(mut self, x: Option<Arc<Exchange<N3HotCell>>>) -> Ctl {
        self.fleet = x;
        self
    }

    /// The N2 settings the N2 thread runs with, and their file (`reload::n2_settings_changed`).
    pub fn with_n2_settings(mut self, x: Option<(Option<PathBuf>, crate::config::n2::N2File)>) -> Ctl {
        self.n2_settings = x;
        self
    }

    /// Offer each walk slice to the fleet's UE pins on a member keyed by TEID (docs/fleet.md).
    pub fn with_bound_pins(mut self, x: Option<Arc<crate::n3::bound::BoundPins>>) -> Ctl {
        self.bound = x;
        self
    }
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

/// Run the control loop until SIGINT/SIGTERM (or the `duration` of [`Start`]), exporting through
/// `core` (the process-wide series) and `n3`.
pub async fn run(mut c: Ctl, core: Arc<Metrics>, n3: N3Metrics) -> Result<()> {
    let metrics = Exported { core, n3 };
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
    let mut host_cap: apply::HostCap = None;
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
            _ = int.recv() => { info!("SIGINT: stopping the controller (the data plane stays attached, unless --detach-on-exit)"); crate::service::stopping(); break; }
            _ = term.recv() => { info!("SIGTERM: stopping the controller (the data plane stays attached, unless --detach-on-exit)"); crate::service::stopping(); break; }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                info!("--duration reached: stopping the controller");
                break;
            }
        }
    }
    audit.sync().ok();
    Ok(())
}

/// How often the event ring's readings are looked at between ticks: a tenth of a tick, within
/// [20 ms, 250 ms]. A flood confirmed by an event is pinned this long after the event at most,
/// instead of up to a tick.
fn event_pass_period(tick_ns: u64) -> Duration {
    Duration::from_nanos(tick_ns / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
}
