//! `guard run`: resolve the configuration, take the run lock, load and attach `guard_n3` (and
//! `guard_n2` when an N2 interface is configured), then hand them to the control loops
//! ([`crate::n3::controller::run`], the N2 controller on its own thread).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tracing::{info, warn};

use super::Target;
use crate::{
    bpf::link::ModeRequest,
    fleet::status::FleetMetrics,
    metrics::Metrics,
    n2::{
        fleet_link::{BackoffExchange, CellExchange},
        metrics::N2Metrics,
    },
    n3::{controller, load, maps::N3Maps, metrics::N3Metrics},
    runlock::Resource,
};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub mode: AttachMode,
    /// Attach and exit without running the controller (the data plane keeps its pinned stages,
    /// which expire).
    #[arg(long)]
    pub no_controller: bool,
    /// Stop after this many seconds (for tests and demos; default: until SIGINT/SIGTERM).
    #[arg(long, value_parser = seconds)]
    pub duration: Option<Duration>,
    /// Detach (but keep pinned maps) when the controller stops.
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Also guard N2/S1-MME (SCTP: NGAP, S1AP) on this interface: `guard_n2` and the storm
    /// controller (docs/n2.md). Default: `[guard] n2_interface` of the config file.
    #[arg(long, value_parser = super::ifname)]
    pub n2_iface: Option<String>,
    /// The N2 settings (TOML: `tick`, `[dataplane]`, `[detect]`, `[setup]`, `[hook]`); default:
    /// `[guard] n2_config`, else built-in defaults.
    #[arg(long)]
    pub n2_config: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AttachMode {
    /// Native XDP, falling back to generic.
    Auto,
    Native,
    Generic,
}

impl From<AttachMode> for ModeRequest {
    fn from(m: AttachMode) -> Self {
        match m {
            AttachMode::Auto => ModeRequest::Auto,
            AttachMode::Native => ModeRequest::Native,
            AttachMode::Generic => ModeRequest::Generic,
        }
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    crate::bpf::object::require_root()?;
    let cfg = a.target.load_config()?;
    let iface = a.target.iface(&cfg)?;
    crate::bpf::object::require_interface(&iface)?;
    let pins = a.target.pins(&cfg)?;
    // One controller per interface and pin directory, taken before anything is touched; held
    // until this process exits (the kernel releases it even on SIGKILL).
    let n2_base = a.target.pin_base.clone().unwrap_or_else(|| cfg.guard.pin_dir.clone());
    // N2: the flag, else the config file's `[guard] n2_interface` / `n2_config`.
    let n2_iface = a.n2_iface.clone().or_else(|| cfg.guard.n2_interface.clone());
    let n2_config = a.n2_config.clone().or_else(|| cfg.guard.n2_config.clone());
    if n2_config.is_some() && n2_iface.is_none() {
        anyhow::bail!("an N2 config is given but no N2 interface: set --n2-iface or [guard] n2_interface");
    }
    if let Some(i) = &n2_iface {
        crate::bpf::object::require_interface(i)?;
    }
    // Everything that can refuse the start is checked before the first program is attached: the
    // N2 settings here, the metrics listener once the lock is held. A bad file or a port in use
    // then leaves the interfaces as they were, not the guard attached without its controller.
    let n2_file = match &n2_iface {
        Some(_) => Some(crate::config::n2::N2File::read(n2_config.as_deref())?),
        None => None,
    };
    let n2_pins = n2_iface.as_deref().map(|i| crate::n2::pin_dir(&n2_base, i));
    let mut locks = vec![Resource::Interface(&iface), Resource::Pins(pins.path())];
    if let (Some(i), Some(p)) = (n2_iface.as_deref(), n2_pins.as_ref()) {
        locks.push(Resource::Interface(i));
        locks.push(Resource::Pins(p.path()));
    }
    let _lock = crate::runlock::acquire(&locks).context("refusing to start a second controller")?;
    let listener = if a.no_controller { None } else { Some(crate::metrics::bind(cfg.metrics.listen)?) };
    let ncpus = crate::config::online_cpus();
    let dp = cfg.dataplane(ncpus);
    let mut loaded =
        load::load(&pins, cfg.guard.max_devices, &dp).with_context(|| format!("loading the guard for {iface}"))?;
    match loaded.state {
        crate::bpf::pins::PinState::Fresh => info!(pins = %pins.path().display(), "no earlier state: starting fresh"),
        crate::bpf::pins::PinState::Reusable => {
            info!(pins = %pins.path().display(), "found pinned maps of this schema: counters, bindings and stages are kept")
        }
    }
    let fresh = matches!(loaded.state, crate::bpf::pins::PinState::Fresh);
    // The host's N3 addresses before the first packet: every device's F-TEID carries the index
    // of its address (docs/dataplane.md, "F-TEID").
    controller::sync_tables(&mut N3Maps::from_ebpf_ref(&mut loaded.ebpf)?, &cfg)
        .with_context(|| format!("writing the N3 addresses and framed routes of {iface}"))?;
    let into = match cfg.attach.into.as_deref() {
        Some(i) => Some(crate::n3::chain::IntoSlot::parse(i).map_err(anyhow::Error::msg).context("[attach] into")?),
        None => None,
    };
    // `[attach] next` before the program sees a packet; a next program set with `guard chain
    // set` and not in the file is kept (N3_CHAIN is pinned).
    if let Some(next) = &cfg.attach.next {
        let st =
            crate::n3::chain::configure(&pins, next).with_context(|| format!("[attach] next = {}", next.display()))?;
        match st {
            crate::n3::chain::NextState::Gone { .. } => warn!(
                next = %next.display(),
                "[attach] next: nothing is pinned there (yet); passed packets go to the kernel stack until it is (the controller links it when it appears)"
            ),
            _ => info!(next = %next.display(), state = ?st, "passed packets go on to the next program"),
        }
    }
    // One way of attaching at a time: a pinned link (interface) and the guard's program pin
    // (a program-array slot) left by a run configured the other way would make two guards.
    match &into {
        Some(_) if pins.link_path().exists() => anyhow::bail!(
            "[attach] into is set but the guard is attached to {iface} (pinned link {}): \
             `guard detach --iface {iface}` first (with the previous configuration)",
            pins.link_path().display()
        ),
        None if pins.path().join(crate::n3::chain::PROG_PIN).exists() => anyhow::bail!(
            "the guard sits in a program-array slot ({} exists) but [attach] into is not set: \
             `guard detach --iface {iface} --config <the configuration naming that slot>` first",
            pins.path().join(crate::n3::chain::PROG_PIN).display()
        ),
        _ => {}
    }
    let attached = match &into {
        Some(i) => loaded.place_into(i),
        None => loaded.attach(&iface, a.mode.into()),
    };
    let how = match attached {
        Ok(how) => how,
        Err(e) => {
            // Pins this run created for nothing are removed, so a failed start leaves no state
            // behind (pins of an earlier run are kept: they hold its stages).
            if fresh {
                drop(loaded);
                if let Err(pe) = load::detach(&pins, true) {
                    warn!(error = %pe, pins = %pins.path().display(), "removing the pins of the failed start");
                }
            }
            return Err(e).with_context(|| format!("attaching to {iface}"));
        }
    };
    info!(iface, mode = ?how, "guard_n3 attached");
    // N2/S1-MME (docs/n2.md): guard_n2 on its own interface, its storm controller on a thread.
    // From here on a failure leaves guard_n3 attached (its pinned link): say so.
    let attached_note = || {
        format!("guard_n3 stays attached to {iface} without a controller (stages expire on their own; `guard detach --iface {iface}` removes it)")
    };
    // What the N2 thread runs with, for SIGHUP to compare with the file (it applies only at a
    // restart: `n3::controller::reload`).
    let n2_running = n2_file.clone().map(|f| (n2_config.clone(), f));
    let n2 = match (&n2_iface, n2_file) {
        (Some(n2_iface), Some(file)) => Some(
            crate::n2::controller::prepare(n2_iface, &n2_base, file, a.mode.into(), &cfg.guard.audit_log)
                .with_context(attached_note)?,
        ),
        _ => None,
    };
    if a.no_controller {
        println!("attached to {iface} ({how:?}); no controller running, stages expire on their own");
        return Ok(());
    }
    let mut targets = vec![crate::service::Attached {
        iface: iface.clone(),
        program: guard_common::abi::PROG_N3,
        link: if into.is_some() { None } else { Some(pins.link_path()) },
        pins: pins.clone(),
        check: {
            let max_devices = cfg.guard.max_devices;
            std::sync::Arc::new(move |p: &crate::bpf::pins::PinDir| crate::n3::check(p, max_devices))
        },
    }];
    targets.extend(n2.as_ref().map(|p| p.health_target()));
    let health = crate::service::Health::new(cfg.guard.tick.0.max(10_000_000), targets, cfg.guard.audit_log.clone());
    let audit_path = cfg.guard.audit_log.clone();
    let into_slot = into.clone();
    let fleet_cfg = cfg.fleet.clone();
    let fleet_view = cfg.clone();
    let ctl = controller::prepare(
        &mut loaded,
        controller::Start {
            cfg,
            config_path: a.target.config.clone(),
            pins: pins.clone(),
            ncpus,
            duration: a.duration,
            into,
            health: health.clone(),
        },
    )
    .with_context(attached_note)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .with_context(attached_note)?;
    let listener = listener.context("the metrics listener was bound before the attach")?;
    let result = rt.block_on(async {
        // One registry: the process-wide series, then each side's under its interface label
        // (an operator sees no N2 series on a host that does not guard N2), and the fleet's
        // only with `[fleet]`.
        let mut core = Metrics::new();
        let n3_metrics = N3Metrics::register(core.interface(Some(&iface)));
        let n2_metrics = n2.as_ref().map(|p| N2Metrics::register(core.interface(Some(p.iface()))));
        let fleet_metrics = fleet_cfg.as_ref().map(|_| FleetMetrics::register(&mut core.registry));
        let core = Arc::new(core);
        let encode = {
            let core = core.clone();
            Arc::new(move || core.encode())
        };
        let server = crate::metrics::serve(listener, encode, health.clone())?;
        // Per-cell summaries (split storms, docs/fleet.md): only with both [fleet] and an N2
        // controller, and `fleet.cells.enabled`.
        let cells = match (&fleet_cfg, &n2) {
            (Some(f), Some(_)) if f.cells.enabled => Some(Arc::new(CellExchange::new(&f.cells))),
            _ => None,
        };
        // N3 per-gNB summaries (UPFs behind the same gNBs): with [fleet] and `fleet.cells.enabled`.
        let n3_cells = match &fleet_cfg {
            Some(f) if f.cells.enabled => Some(Arc::new(crate::n2::fleet_link::Exchange::new(&f.cells))),
            _ => None,
        };
        // Device back-off lists and 5G-S-TMSI pins likewise (`fleet.backoff.enabled`).
        let backoff = match (&fleet_cfg, &n2) {
            (Some(f), Some(_)) if f.backoff.enabled => Some(Arc::new(BackoffExchange::new(&f.backoff))),
            _ => None,
        };
        // Known gNB addresses learned from real N2 sessions likewise (`fleet.gnbs.enabled`).
        let gnbs = match (&fleet_cfg, &n2) {
            (Some(f), Some(_)) if f.gnbs.enabled => {
                Some(Arc::new(crate::n2::fleet_link::GnbExchange::new(f.gnbs.max_gnbs, f.gnbs.max_members)))
            }
            _ => None,
        };
        // UE pins on a member keyed by TEID, through the bindings the N3 controller's walk reads.
        let bound = fleet_cfg.as_ref().map(|_| Arc::new(crate::n3::bound::BoundPins::new()));
        let fleet = match (fleet_cfg, fleet_metrics) {
            (Some(f), Some(fm)) => {
                let links = crate::fleet::Links {
                    cells: cells.clone(),
                    backoff: backoff.clone(),
                    n3_cells: n3_cells.clone(),
                    gnbs: gnbs.clone(),
                    bound: bound.clone(),
                };
                Some(
                    crate::fleet::start(f, &fleet_view, &iface, &pins, &health, fm, links)
                        .with_context(attached_note)?,
                )
            }
            _ => None,
        };
        // N2/S1-MME: its storm controller ticks on its own thread.
        let n2 = match (n2, n2_metrics) {
            (Some(p), Some(m)) => Some(p.spawn(m, cells, backoff, gnbs).with_context(attached_note)?),
            _ => None,
        };
        let result = controller::run(
            ctl.with_fleet(n3_cells).with_bound_pins(bound).with_n2_settings(n2_running),
            core,
            n3_metrics,
        )
        .await;
        server.abort();
        if let Some(f) = fleet {
            f.abort();
        }
        if let Some(n2) = n2 {
            n2.stop();
        }
        result
    });
    if a.detach_on_exit {
        // Audited as `guard detach` is: the data plane leaves the interface.
        if let Ok(audit) = crate::audit::AuditLog::open(&audit_path) {
            let _ = audit.write(&crate::audit::AuditRecord {
                ts: crate::audit::rfc3339(std::time::SystemTime::now()),
                actor: crate::audit::Actor::Operator,
                action: "detach".into(),
                target: format!("iface:{iface}"),
                reason: "detach_on_exit".into(),
                evidence: serde_json::Value::Null,
                detail: serde_json::json!({ "pins": pins.path().display().to_string(), "n2": n2_iface }),
            });
        }
        load::detach_chained(&pins, false, into_slot.as_ref()).context("detaching on exit")?;
        info!(iface, "detached (pinned maps kept)");
        if let Some(n2_iface) = &n2_iface {
            crate::n2::detach(&crate::n2::pin_dir(&n2_base, n2_iface), false).context("detaching guard_n2 on exit")?;
            info!(iface = n2_iface, "guard_n2 detached (pinned maps kept)");
        }
    }
    // Keep the program loaded until here: dropping `loaded` releases our handles only; the pinned
    // link keeps the program attached.
    drop(loaded);
    result
}

/// `--duration`: a positive, finite number of seconds that a `Duration` can hold (a negative,
/// NaN or infinite one is refused here rather than panicking in `Duration::from_secs_f64`).
fn seconds(s: &str) -> Result<Duration, String> {
    let x: f64 = s.parse().map_err(|e| format!("`{s}` is not a number of seconds: {e}"))?;
    if x.is_nan() || x <= 0.0 {
        return Err(format!("`{s}`: the duration must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(x).map_err(|e| format!("`{s}`: {e}"))
}
