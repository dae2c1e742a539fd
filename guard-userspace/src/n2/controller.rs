//! `guard run --n2-iface <if> [--n2-config n2.toml]`: load and attach `guard_n2`, then tick the
//! N2 storm controller on a thread of its own next to the N3 control loop.
//!
//! Each tick (`tick_ms`, default 1 s): read `N2_CELLS` and `N2_DEVICES` (cumulative counters), call
//! [`N2Engine::tick`], audit its transitions and responses, deliver each response through the hook
//! (blocking, bounded by the hook's timeout), update the `overload_guard_n2_*` metrics. A failed
//! tick or hook call is logged and the loop goes on; the data plane never depends on it.
//!
//! The N2 config file (all sections optional):
//! ```toml
//! tick_ms = 1000
//! [dataplane]
//! ngap_port = 38412
//! s1ap_port = 36412
//! enforce = ["malformed", "setup_limit", "setup_strict", "quarantine"]  # + "allowlist"
//! shadow = []                     # protections computed and counted, not applied
//! allow = ["10.100.0.11"]         # N2_ALLOW entries (used when "allowlist" is enabled)
//! setup_observe_pps = 10          # per-peer INIT / COOKIE-ECHO profile (evidence)
//! setup_observe_burst = 20
//! reestablish_pps = 2             # INITs per s from a known association port while staged
//! reestablish_burst = 5
//! assoc_memory_s = 86400          # how long such a port stays known
//! cookie_life_s = 60              # an INIT ACK's tag admits its COOKIE ECHO this long
//! cookie_check = "require"        # or "prefer" / "off" (docs/n2.md §1.1)
//! max_devices = 1048576
//! [detect]                        # N2Settings, see docs/n2.md
//! cell_ratio = 4.0
//! [setup]                         # the per-peer INIT / COOKIE-ECHO ladder (n2::engine::setup)
//! limit_pps = 5
//! [hook]
//! kind = "exec"
//! command = ["/usr/local/bin/amf-overload"]
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use guard_common::abi::L3Addr;
use guard_common::abi_n2::{N2_DEFAULT_MAX_CELLS, N2_DEFAULT_MAX_PEERS, N2_SETUP_COOKIE_REQUIRED};
use tracing::{error, info, warn};

use super::audit::{audit_hook_failure, audit_response, audit_transition};
use super::engine::known_gnbs::learned_gnbs;
use super::engine::setup::{PeerSample, PeerStageDecision, SetupLadder};
use super::engine::{CellSample, DeviceSample, N2Engine, Response};
use super::fleet_link::{BackoffExchange, CellExchange, GnbExchange};
use super::hook::Hook;
use super::metrics::N2Metrics;
use crate::audit::AuditLog;
use crate::audit::{rfc3339, Actor, AuditRecord};
use crate::bpf::link::ModeRequest;
use crate::clock::monotonic_ns;
use crate::config::n2::N2File;
use crate::n2::{self, LoadOpts, N2Loaded, N2Maps};
use guard_common::abi::STAGE_FLAG_MANUAL;

/// The controller: engine, hook, audit, metrics. [`N2Controller::tick`] is one window; tests
/// drive it with their own clock.
pub struct N2Controller {
    engine: N2Engine,
    setup: SetupLadder,
    hook: Option<Hook>,
    audit: AuditLog,
    metrics: N2Metrics,
    /// Fleet mode's cell summaries (docs/fleet.md); `None`: the local engine alone.
    fleet: Option<Arc<CellExchange>>,
    fleet_published: usize,
    /// Fleet mode's device back-off lists and 5G-S-TMSI pins; `None`: local lists only.
    backoff: Option<Arc<BackoffExchange>>,
    /// Fleet mode's known gNB lists, and the gNBs this member learned at its last tick;
    /// `None`: the configured allow-list alone, as without fleet mode.
    gnbs: Option<Arc<GnbExchange>>,
    learned: Vec<L3Addr>,
}

impl N2Controller {
    pub fn new(file: &N2File, audit: AuditLog, metrics: N2Metrics) -> Result<N2Controller> {
        let hook = file.hook.clone().map(Hook::new).transpose()?;
        Ok(N2Controller {
            engine: N2Engine::new(&file.detect),
            setup: SetupLadder::with_allowed(
                &file.setup,
                file.dataplane.allow.iter().map(|a| match a {
                    IpAddr::V4(v) => L3Addr::v4(v.octets()),
                    IpAddr::V6(v) => L3Addr::v6(v.octets()),
                }),
            ),
            hook,
            audit,
            metrics,
            fleet: None,
            fleet_published: 0,
            backoff: None,
            gnbs: None,
            learned: Vec::new(),
        })
    }

    /// Take the other members' cell summaries into account and publish this member's hot cells
    /// (fleet mode, split storms).
    pub fn with_fleet(mut self, x: Arc<CellExchange>) -> N2Controller {
        self.fleet = Some(x);
        self
    }

    /// Back off the devices the other members list (once they show up here) and the operators'
    /// 5G-S-TMSI pins; publish this member's own list (fleet mode).
    pub fn with_backoff(mut self, x: Arc<BackoffExchange>) -> N2Controller {
        self.backoff = Some(x);
        self
    }

    /// Learn gNBs from real sessions, publish them and treat the fleet's as the setup ladder treats
    /// the allow-list (fleet mode, `n2::engine::known_gnbs`).
    pub fn with_gnbs(mut self, x: Arc<GnbExchange>) -> N2Controller {
        self.gnbs = Some(x);
        self
    }

    pub fn engine(&self) -> &N2Engine {
        &self.engine
    }

    pub fn setup_ladder(&self) -> &SetupLadder {
        &self.setup
    }

    /// The per-peer setup ladder: read `N2_PEERS`, write `N2_PEER_STAGES` (never a manual entry).
    fn tick_peers(&mut self, maps: &mut N2Maps, now_ns: u64, wall: SystemTime) {
        let states = maps.peers();
        self.learn_gnbs(&states, maps, now_ns);
        let peers: Vec<PeerSample> = states.iter().map(|(k, s)| PeerSample::from_state(*k, s)).collect();
        let manual: Vec<_> = peers
            .iter()
            .filter(|p| maps.peer_stage(&p.peer).ok().flatten().is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0))
            .map(|p| p.peer)
            .collect();
        for d in self.setup.tick(now_ns, &peers, &manual) {
            let (peer, refresh, result) = match &d {
                PeerStageDecision::Set { peer, refresh, .. } => {
                    let e = d.entry(now_ns).unwrap_or_default();
                    (*peer, *refresh, maps.set_peer_stage(peer, &e).map(|_| ()))
                }
                PeerStageDecision::Release { peer } => (*peer, false, maps.clear_peer_stage(peer).map(|_| ())),
            };
            if let Err(e) = result {
                error!(error = %e, peer = %crate::addr::addr_str(&peer), "N2: writing N2_PEER_STAGES failed");
                continue;
            }
            if refresh {
                continue;
            }
            let who = crate::addr::addr_str(&peer);
            match &d {
                PeerStageDecision::Set { stage, limit_pps, burst, ttl_ns, over_limit, dropped, .. } => info!(
                    peer = %who,
                    stage,
                    "N2 peer {who}: setup stage {stage} ({}), INIT/COOKIE ECHO limited to {limit_pps}/s burst {burst}, \
                     TTL {} s; last window {over_limit} setup packets over profile, {dropped} dropped",
                    setup_stage_name(*stage),
                    ttl_ns / 1_000_000_000
                ),
                PeerStageDecision::Release { .. } => info!(peer = %who, "N2 peer {who}: setup stage released (quiet)"),
            }
            let evidence = match &d {
                PeerStageDecision::Set { over_limit, dropped, .. } => serde_json::json!({
                    "setups_over_profile_last_window": over_limit,
                    "setups_dropped_last_window": dropped,
                    "setups_total": peers.iter().find(|p| p.peer == peer).map_or(0, |p| p.setups),
                }),
                PeerStageDecision::Release { .. } => serde_json::json!({"quiet": true}),
            };
            let rec = AuditRecord {
                ts: rfc3339(wall),
                actor: Actor::Engine,
                action: match d {
                    PeerStageDecision::Set { .. } => "n2_set_peer_stage",
                    PeerStageDecision::Release { .. } => "n2_release_peer_stage",
                }
                .to_owned(),
                target: format!("peer:{}", crate::addr::addr_str(&peer)),
                reason: "setup_flood".to_owned(),
                evidence,
                detail: serde_json::to_value(&d).unwrap_or_default(),
            };
            if let Err(e) = self.audit.write(&rec) {
                error!(error = %e, "N2: audit write failed");
            }
        }
        let staged = peers.iter().filter(|p| self.setup.stage_of(&p.peer) > 0).count();
        self.metrics.peers_staged.set(staged as i64);
    }

    /// Fleet mode: the gNBs learned here from real sessions (an association the AMF talks to and
    /// an NG Setup, `known_gnbs`), published; the ladder's learned set is those and the fleet's.
    fn learn_gnbs(&mut self, states: &[(L3Addr, guard_common::abi_n2::N2PeerState)], maps: &N2Maps, now_ns: u64) {
        let Some(x) = &self.gnbs else { return };
        let learned = learned_gnbs(states, &maps.assoc_ports(), now_ns, x.max_items);
        for a in learned.iter().filter(|a| !self.learned.contains(a)) {
            let who = crate::addr::addr_str(a);
            info!(gnb = %who, "N2 fleet: gNB {who} learned (an association the AMF talks to, and an NG Setup from it)");
        }
        x.publish(&learned);
        let mut known: std::collections::HashSet<L3Addr> = x.union(Instant::now());
        known.extend(learned.iter().copied());
        self.setup.set_learned(known);
        self.learned = learned;
    }

    /// Sample the maps, run the engine and the setup ladder, audit, deliver. Returns the
    /// responses (delivered or not).
    pub fn tick(&mut self, maps: &mut N2Maps, now_ns: u64, wall: SystemTime) -> Vec<Response> {
        self.tick_peers(maps, now_ns, wall);
        let cells: Vec<CellSample> = maps.cells().iter().map(|(k, s)| CellSample::from_state(*k, s)).collect();
        let devices: Vec<DeviceSample> =
            maps.devices().into_iter().map(|(k, s)| DeviceSample::from_state(k, &s)).collect();
        if let Some(x) = &self.fleet {
            self.engine.set_fleet(x.sums(Instant::now()));
        }
        if let Some(x) = &self.backoff {
            self.engine.set_fleet_backoff(x.view(Instant::now(), now_ns));
        }
        let out = self.engine.tick(now_ns, &cells, &devices);
        if let Some(x) = &self.backoff {
            x.publish(self.engine.backoff_for_fleet());
        }
        if let Some(x) = &self.fleet {
            let cells = self.engine.hot_cells_for_fleet(x.fraction, x.max_cells);
            if cells.len() != self.fleet_published {
                info!(
                    cells = cells.len(),
                    before = self.fleet_published,
                    "N2 fleet: cells published for the other members (close to hot here)"
                );
                self.fleet_published = cells.len();
            }
            x.publish(cells);
        }
        for t in &out.transitions {
            info!(from = ?t.from, to = ?t.to, hot_cells = t.evidence.hot_cells, repeaters = t.evidence.repeaters, "N2 classification");
            if let Err(e) = audit_transition(&self.audit, wall, t) {
                error!(error = %e, "N2: audit write failed");
            }
        }
        for r in &out.responses {
            if let Err(e) = audit_response(&self.audit, wall, r) {
                error!(error = %e, "N2: audit write failed");
            }
            let delivered = self.hook.as_ref().map(|h| match h.send(r) {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, seq = r.seq, "N2: response hook failed");
                    if let Err(e) = audit_hook_failure(&self.audit, wall, r, &e.to_string()) {
                        error!(error = %e, "N2: audit write failed");
                    }
                    false
                }
            });
            let sent = match delivered {
                Some(true) => "delivered",
                Some(false) => "hook failed",
                None => "no hook configured",
            };
            info!(action = ?r.action, level = r.level, reason = r.reason, devices = r.devices.len(), sent, "N2 response");
            self.metrics.response(r, delivered);
        }
        self.metrics.update(&self.engine.status());
        self.metrics.data_plane(maps);
        out.responses
    }
}

pub fn setup_stage_name(stage: u32) -> &'static str {
    match stage {
        1 => "setup limit",
        2 => "strict setup limit",
        3 => "whole-peer quarantine",
        _ => "observe",
    }
}

/// `guard_n2` loaded and attached, not yet ticking.
pub struct Prepared {
    loaded: N2Loaded,
    maps: N2Maps,
    file: N2File,
    audit_path: PathBuf,
    iface: String,
    opts: LoadOpts,
}

/// Load `guard_n2` with its maps pinned under `<pin_base>/n2/<iface>`, write its config and
/// allow-list, attach it.
pub fn prepare(iface: &str, pin_base: &Path, file: N2File, mode: ModeRequest, audit_path: &Path) -> Result<Prepared> {
    let pins = n2::pin_dir(pin_base, iface);
    let opts = LoadOpts {
        max_devices: file.dataplane.max_devices,
        max_cells: N2_DEFAULT_MAX_CELLS,
        max_peers: N2_DEFAULT_MAX_PEERS,
    };
    let cfg = file.dataplane.config()?;
    let (mut loaded, mut maps) =
        n2::load(&pins, &opts, &cfg).with_context(|| format!("loading guard_n2 for {iface}"))?;
    let allow: Vec<L3Addr> = file
        .dataplane
        .allow
        .iter()
        .map(|a| match a {
            IpAddr::V4(v) => L3Addr::v4(v.octets()),
            IpAddr::V6(v) => L3Addr::v6(v.octets()),
        })
        .collect();
    let removed = maps.set_allow(&allow).context("writing the allow-list ([dataplane] allow) into N2_ALLOW")?;
    if !removed.is_empty() {
        let names: Vec<String> = removed.iter().map(crate::addr::addr_str).collect();
        info!(iface, removed = %names.join(", "), "N2 allow-list: removed the addresses the configuration no longer lists");
    }
    // The egress classifier first: a COOKIE ECHO arriving before it watches would be "unissued".
    match loaded.attach_egress(iface) {
        Ok(how) => info!(iface, mode = ?how, "guard_n2_egress attached (INIT ACK and association tracking)"),
        Err(e) => {
            // Fail safe: without it the lanes stay empty, and `require` would limit every
            // COOKIE ECHO with DATA. Fall back to `prefer`, which limits as before issue 18.
            warn!(iface, error = %e, "guard_n2_egress not attached: no issued-cookie or re-establishment lanes; cookie_check falls back to prefer");
            let mut c = cfg;
            c.setup_flags &= !N2_SETUP_COOKIE_REQUIRED;
            maps.write_config(&c).context("writing N2_CONFIG without cookie_check = require")?;
        }
    }
    let how = loaded.attach(iface, mode).with_context(|| format!("attaching guard_n2 to {iface}"))?;
    info!(iface, mode = ?how, pins = %pins.path().display(), "guard_n2 attached");
    Ok(Prepared { loaded, maps, file, audit_path: audit_path.to_owned(), iface: iface.to_owned(), opts })
}

/// The ticking N2 controller thread; [`Running::stop`] ends it.
pub struct Running {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Prepared {
    /// What `/readyz` checks for this interface.
    pub fn health_target(&self) -> crate::service::Attached {
        crate::service::Attached {
            iface: self.iface.clone(),
            program: guard_common::abi_n2::PROG_N2,
            link: Some(crate::n2::link_path(&self.loaded.pins)),
            pins: self.loaded.pins.clone(),
            check: {
                let o = self.opts;
                std::sync::Arc::new(move |p: &crate::bpf::pins::PinDir| crate::n2::check(p, &o))
            },
        }
    }

    /// The N2 interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Start ticking; `fleet`, `backoff`, `gnbs`: the mailboxes of fleet mode's cell summaries,
    /// device back-off lists and known gNB lists, if any.
    pub fn spawn(
        self,
        metrics: N2Metrics,
        fleet: Option<Arc<CellExchange>>,
        backoff: Option<Arc<BackoffExchange>>,
        gnbs: Option<Arc<GnbExchange>>,
    ) -> Result<Running> {
        let audit = AuditLog::open(&self.audit_path)
            .with_context(|| format!("opening the audit log {}", self.audit_path.display()))?;
        let mut ctl = N2Controller::new(&self.file, audit, metrics)?;
        if let Some(x) = fleet {
            ctl = ctl.with_fleet(x);
        }
        if let Some(x) = backoff {
            ctl = ctl.with_backoff(x);
        }
        if let Some(x) = gnbs {
            ctl = ctl.with_gnbs(x);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tick = self.file.tick();
        let Prepared { loaded, mut maps, iface, .. } = self;
        let handle = std::thread::Builder::new()
            .name(format!("n2-{iface}"))
            .spawn(move || {
                // Keep our handle on the program while ticking; the pinned link keeps it attached.
                let _loaded = loaded;
                let mut next = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    next += tick;
                    ctl.tick(&mut maps, monotonic_ns(), SystemTime::now());
                    while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(
                            Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())),
                        );
                    }
                    if Instant::now() > next + tick {
                        next = Instant::now(); // a slow tick: do not try to catch up
                    }
                }
                info!(iface, "N2 controller stopped (guard_n2 stays attached)");
            })
            .context("starting the N2 controller thread")?;
        Ok(Running { stop, handle })
    }
}

impl Running {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.handle.join().is_err() {
            error!("the N2 controller thread panicked");
        }
    }
}
