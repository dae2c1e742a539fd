//! Fleet mode (issue 23, docs/fleet.md): guards on many hosts share operator pins that are not
//! host-local (by UE address or prefix, by gNB address) through etcd.
//!
//! - [`pins`]: keys and JSON values, their bounds and checks (pure);
//! - [`client`]: the etcd connection from `[fleet]` (TLS unless `insecure`);
//! - [`apply`]: a pin into this host's data plane, through the same code path as
//!   `guard device pin` ([`crate::n3::manual`]), audited with the pin's author;
//!   UE pins on a member keyed by TEID are resolved through anti-spoofing's learned UE bindings
//!   ([`crate::n3::bound`], the mailbox the N3 controller offers its device walk to);
//! - [`status`]: what the member reports: metrics and the `/readyz` detail line;
//! - [`cells`], [`summaries`]: per-cell summaries for storms split over members (an AMF set):
//!   the key and value (pure), and publishing / summing them for the N2 controller;
//! - [`backoff`], [`lists`]: N2 device back-off lists shared by an AMF set: the key and value
//!   (pure), and publishing / taking them for the N2 controller;
//! - [`gnbs`]: known gNB addresses learned from real N2 sessions, the key and value (pure);
//!   published and taken through [`lists`] like the back-off lists;
//! - [`sync`]: the member's task: list, then watch; on loss of etcd keep what it has and catch up.
//!
//! Nothing here runs without `[fleet]` in the configuration.

pub mod apply;
pub mod backoff;
pub mod cells;
pub mod cells_n3;
pub mod client;
pub mod gnbs;
pub mod lists;
pub mod pins;
pub mod status;
pub mod summaries;
pub mod sync;

pub use pins::{PinStage, PinTarget, PinValue};

use crate::{
    bpf::pins::PinDir,
    config::{Config, FleetSection},
    service::Health,
};

/// Unix time in milliseconds (pins carry wall-clock expiries: they cross hosts).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The controllers' mailboxes the fleet task serves.
#[derive(Default)]
pub struct Links {
    /// N3 per-gNB summaries (`fleet.cells.enabled`).
    pub n3_cells: Option<std::sync::Arc<crate::n2::fleet_link::Exchange<crate::n3::engine::N3HotCell>>>,
    /// Per-cell summaries (`fleet.cells.enabled`).
    pub cells: Option<std::sync::Arc<crate::n2::fleet_link::CellExchange>>,
    /// Device back-off lists and 5G-S-TMSI pins (`fleet.backoff.enabled`).
    pub backoff: Option<std::sync::Arc<crate::n2::fleet_link::BackoffExchange>>,
    /// Known gNB addresses learned from real N2 sessions (`fleet.gnbs.enabled`).
    pub gnbs: Option<std::sync::Arc<crate::n2::fleet_link::GnbExchange>>,
    /// UE pins resolved through learned bindings (a member keyed by TEID): the N3 controller
    /// offers its walk here.
    pub bound: Option<std::sync::Arc<crate::n3::bound::BoundPins>>,
}

/// Start this member's fleet task (docs/fleet.md): its own handle on the pinned maps and the
/// audit log, so that applying a pin is what `guard device pin` does, whatever the tick is doing.
///
/// Runs on the caller's tokio runtime; `health` reports the etcd link in `/readyz`.
pub fn start(
    f: FleetSection,
    cfg: &Config,
    iface: &str,
    pins: &PinDir,
    health: &Health,
    fm: status::FleetMetrics,
    n2: Links,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    use apply::Applier;
    use status::FleetStatus;
    use sync::Member;
    let member = f.member_name();
    let status = std::sync::Arc::new(FleetStatus::new(&f.name, &member));
    health.set_fleet(status.clone());
    let maps = crate::n3::maps::N3Maps::open_pinned(pins)
        .with_context(|| format!("opening the pinned maps in {} for the fleet", pins.path().display()))?;
    let audit = std::sync::Arc::new(
        crate::audit::AuditLog::open(&cfg.guard.audit_log)
            .with_context(|| format!("opening the audit log {} for the fleet", cfg.guard.audit_log.display()))?,
    );
    let applier = Applier::new(maps, cfg.ladder.clone(), audit, member.clone(), fm.clone(), status.clone())
        .with_n2_backoff(n2.backoff.clone());
    let applier = match &n2.bound {
        Some(b) => applier.with_bound(b.clone()),
        None => applier,
    };
    let about = serde_json::json!({
        "member": member,
        "version": env!("CARGO_PKG_VERSION"),
        "interface": iface,
        "key_mode": cfg.guard.key_mode,
        "started_unix_ms": unix_ms(std::time::SystemTime::now()),
    });
    // Only with a group: without one the member's key holds what it held before groups.
    let about = match (&f.summary_group, about) {
        (Some(g), serde_json::Value::Object(mut o)) => {
            o.insert("summary_group".into(), g.clone().into());
            serde_json::Value::Object(o)
        }
        (_, about) => about,
    };
    tracing::info!(
        fleet = f.name,
        member,
        endpoints = f.endpoints.join(","),
        tls = f.tls(),
        summary_group = f.summary_group.as_deref().unwrap_or("(the whole fleet)"),
        "fleet mode: following etcd"
    );
    // Cell summaries within the member's summary group (the whole fleet without one); pins,
    // device lists and known gNB lists fleet-wide.
    let group = f.summary_group.as_deref();
    let summaries =
        n2.cells.map(|x| summaries::Summaries::new(&f.name, group, &member, f.cells.clone(), x, fm.clone()));
    let n3 = n2.n3_cells.map(|x| summaries::Summaries::new(&f.name, group, &member, f.cells.clone(), x, fm.clone()));
    let lists = n2.backoff.map(|x| lists::Lists::new(&f.name, &member, f.backoff.clone(), x, fm.clone()));
    let gnbs = n2.gnbs.map(|x| lists::Lists::new(&f.name, &member, f.gnbs.clone(), x, fm.clone()));
    Ok(tokio::spawn(Member::new(f, about, applier, status, fm, summaries, lists).with_n3(n3).with_gnbs(gnbs).run()))
}
