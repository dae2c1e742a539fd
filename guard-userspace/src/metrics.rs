//! Prometheus metrics (prometheus-client): the shared registry, the process-wide series (build,
//! controller ticks, reloads, audit trail), the label types, and the HTTP listener. Each side
//! registers its own series under its interface's label (`crate::n3::metrics`,
//! `crate::n2::metrics`, `crate::fleet::status`).
//!
//! Cardinality stays bounded at a million devices: no per-device label anywhere except the
//! top-N offenders gauge (N = 20), and per-cell series are limited to the busiest cells.

use std::{net::SocketAddr, sync::atomic::AtomicU64, sync::Arc};

use anyhow::{Context, Result};
use tracing::{error, info};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

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

/// The registry and the series of the process as a whole (no `interface` label).
pub struct Metrics {
    pub registry: Registry,
    pub tick_seconds: Histogram,
    pub config_reloads: Family<OutcomeLabel, Counter>,
    /// Audit lines not written (raised each tick to `audit::WRITE_FAILURES`).
    pub audit_write_failures: Counter,
    /// Unix time of the last controller tick that completed (alert when it stops moving).
    pub last_tick: Gauge<f64, AtomicU64>,
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
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("overload_guard"),
            tick_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            config_reloads: Family::default(),
            audit_write_failures: Counter::default(),
            last_tick: Gauge::default(),
        };
        let registry = &mut m.registry;
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
        m
    }

    /// The sub-registry of one interface's series: each carries its name (`interface="ens1f0"`),
    /// so an operator sees no N2 series on a host that does not guard N2. None: no label (tests
    /// of the encoding).
    pub fn interface(&mut self, iface: Option<&str>) -> &mut Registry {
        match iface {
            Some(i) => self.registry.sub_registry_with_label((
                std::borrow::Cow::Borrowed("interface"),
                std::borrow::Cow::Owned(i.to_owned()),
            )),
            None => &mut self.registry,
        }
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

/// Bind the metrics listener (`metrics.listen`). Apart from [`serve`], so that `guard run` finds
/// a port in use before it attaches anything.
pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(listen)
        .with_context(|| format!("binding the metrics listener on {listen} (metrics.listen)"))?;
    l.set_nonblocking(true).context("the metrics listener: non-blocking mode")?;
    Ok(l)
}

/// Serve `/metrics` (what `encode` returns), `/healthz` and `/readyz` (see [`crate::service`]) on
/// `listener` ([`bind`]) until aborted; needs a tokio runtime.
pub fn serve(
    listener: std::net::TcpListener,
    encode: Arc<dyn Fn() -> String + Send + Sync>,
    health: Arc<crate::service::Health>,
) -> Result<tokio::task::JoinHandle<()>> {
    use axum::http::StatusCode;
    let code = |ok: bool| if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let (h1, h2) = (health.clone(), health);
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let encode = encode.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        encode(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let h = h1.clone();
                async move {
                    let (ok, body) = h.healthz();
                    (code(ok), body)
                }
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let h = h2.clone();
                // `ip link` and map reads block: off the async workers.
                async move {
                    let (ok, body) = tokio::task::spawn_blocking(move || h.readyz())
                        .await
                        .unwrap_or((false, "readyz failed\n".into()));
                    (code(ok), body)
                }
            }),
        );
    let listen = listener.local_addr().context("the metrics listener's address")?;
    let listener = tokio::net::TcpListener::from_std(listener).context("the metrics listener")?;
    info!(%listen, "serving Prometheus metrics at /metrics, health at /healthz and /readyz");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "metrics server stopped");
        }
    }))
}
