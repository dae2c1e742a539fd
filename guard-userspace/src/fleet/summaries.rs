//! The etcd side of per-cell summaries (docs/fleet.md "Cell summaries"): publish this member's
//! hot cells under its own lease, read and watch the others', and hand them to the N2 controller
//! through its mailbox ([`CellExchange`]).
//!
//! What one member can do to the others is bounded here, whatever is in etcd: one key per
//! member, its value at most `max_value_bytes()` and `max_cells` cells, each rate clamped to
//! `max_rate`, at most `max_members` members summed; a bad value is refused with a log line and
//! `overload_guard_fleet_values_rejected_total{reason}`, and that member's contribution goes.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use tracing::{debug, warn};

use super::cells::{Contribution, SummaryError};
use super::status::FleetMetrics;
use super::sync::prefix_end;
use super::unix_ms;
use crate::config::FleetCells;
use crate::n2::engine::HotCell;
use crate::n2::fleet_link::Exchange;
use crate::n3::engine::N3HotCell;
use prometheus_client::metrics::gauge::Gauge;

/// A plane's summaries: where they live and how they are written and read (pure, in
/// [`super::cells`] and [`super::cells_n3`]).
pub trait Plane {
    type Cell: Clone;
    /// `n2` or `n3`, in log lines.
    const NAME: &'static str;
    fn prefix(fleet: &str, group: Option<&str>) -> String;
    fn encode(member: &str, at_unix_ms: u64, cells: &[Self::Cell], cfg: &FleetCells) -> Vec<u8>;
    fn decode(
        prefix: &str,
        key: &[u8],
        value: &[u8],
        cfg: &FleetCells,
    ) -> Result<Contribution<Self::Cell>, SummaryError>;
    /// Its series: other members summed, cells published.
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge);
}

/// N2: cells' access-attempt rates and baselines (an AMF set).
pub struct N2;
/// N3: gNBs' G-PDU demand and offenders (UPFs behind the same gNBs).
pub struct N3;

impl Plane for N2 {
    type Cell = HotCell;
    const NAME: &'static str = "n2";
    fn prefix(fleet: &str, group: Option<&str>) -> String {
        super::cells::n2_prefix(fleet, group)
    }
    fn encode(member: &str, at: u64, cells: &[HotCell], cfg: &FleetCells) -> Vec<u8> {
        super::cells::encode(member, at, cells, cfg)
    }
    fn decode(p: &str, k: &[u8], v: &[u8], cfg: &FleetCells) -> Result<Contribution<HotCell>, SummaryError> {
        super::cells::decode(p, k, v, cfg)
    }
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge) {
        (&m.cell_members, &m.cells_published)
    }
}

impl Plane for N3 {
    type Cell = N3HotCell;
    const NAME: &'static str = "n3";
    fn prefix(fleet: &str, group: Option<&str>) -> String {
        super::cells_n3::n3_prefix(fleet, group)
    }
    fn encode(member: &str, at: u64, cells: &[N3HotCell], cfg: &FleetCells) -> Vec<u8> {
        super::cells_n3::encode(member, at, cells, cfg)
    }
    fn decode(p: &str, k: &[u8], v: &[u8], cfg: &FleetCells) -> Result<Contribution<N3HotCell>, SummaryError> {
        super::cells_n3::decode(p, k, v, cfg)
    }
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge) {
        (&m.n3_cell_members, &m.n3_cells_published)
    }
}

/// This member's summaries link for plane `P`.
pub struct Summaries<P: Plane> {
    cfg: FleetCells,
    prefix: String,
    key: String,
    member: String,
    exchange: Arc<Exchange<P::Cell>>,
    metrics: FleetMetrics,
    /// Whether our key holds cells (so an empty set is written once, as a delete).
    published: bool,
}

impl<P: Plane> Summaries<P> {
    /// The summaries of `member` in `fleet`, within its summary `group` (`[fleet]
    /// summary_group`; None: the whole fleet).
    pub fn new(
        fleet: &str,
        group: Option<&str>,
        member: &str,
        cfg: FleetCells,
        exchange: Arc<Exchange<P::Cell>>,
        metrics: FleetMetrics,
    ) -> Summaries<P> {
        let prefix = P::prefix(fleet, group);
        Summaries {
            cfg,
            key: format!("{prefix}{member}"),
            prefix,
            member: member.to_owned(),
            exchange,
            metrics,
            published: false,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.cfg.interval.0)
    }

    pub fn watch_options(rev: i64) -> WatchOptions {
        WatchOptions::new().with_prefix().with_start_revision(rev + 1)
    }

    /// The others' summaries now (at most `max_members` + 1 keys: ours is among them).
    /// Returns the revision read at.
    pub async fn list(&mut self, client: &mut Client) -> Result<i64> {
        let limit = i64::from(self.cfg.max_members) + 1;
        let opts = GetOptions::new().with_range(prefix_end(&self.prefix)).with_limit(limit);
        let r = client.get(self.prefix.clone(), Some(opts)).await.context("listing the cell summaries")?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.exchange.clear();
        if r.more() {
            self.metrics.reject("too_many_keys");
            warn!(
                max_members = self.cfg.max_members,
                "fleet: more cell summaries than fleet.cells.max_members; the first in key order are summed"
            );
        }
        let now = Instant::now();
        for kv in r.kvs() {
            self.take(kv.key(), kv.value(), now);
        }
        self.report();
        Ok(rev)
    }

    /// One watch event on the summaries' prefix.
    pub fn on_event(&mut self, ev: &etcd_client::Event) {
        let Some(kv) = ev.kv() else { return };
        match ev.event_type() {
            EventType::Delete => {
                // Deleted by its member (no hot cell left) or by its lease running out.
                if let Some(m) = String::from_utf8_lossy(kv.key()).strip_prefix(&self.prefix) {
                    self.exchange.remove(m);
                }
            }
            EventType::Put => self.take(kv.key(), kv.value(), Instant::now()),
        }
        self.report();
    }

    fn take(&self, key: &[u8], value: &[u8], now: Instant) {
        if key == self.key.as_bytes() {
            return; // our own: the controller has its own counts
        }
        match P::decode(&self.prefix, key, value, &self.cfg) {
            Ok(c) => {
                if !self.exchange.set(&c.member, c.cells, now) {
                    self.metrics.reject("too_many_keys");
                    warn!(
                        member = c.member,
                        "fleet: cell summary ignored: fleet.cells.max_members others already counted"
                    );
                }
            }
            Err(e) => {
                self.metrics.reject(e.label());
                let key = String::from_utf8_lossy(key);
                warn!(%key, plane = P::NAME, error = %e, "fleet: cell summary rejected; that member's contribution is dropped");
                if let Some(m) = key.strip_prefix(&self.prefix) {
                    self.exchange.remove(m);
                }
            }
        }
    }

    fn report(&self) {
        P::gauges(&self.metrics).0.set(self.exchange.members() as i64);
    }

    /// Write this member's hot cells under its lease (the key goes with the lease if this host
    /// dies); delete the key once no cell is left to publish.
    pub async fn publish(&mut self, client: &mut Client, lease: i64) -> Result<()> {
        let cells = self.exchange.outgoing();
        P::gauges(&self.metrics).1.set(cells.len().min(self.cfg.max_cells as usize) as i64);
        if cells.is_empty() {
            if self.published {
                client.delete(self.key.clone(), None).await.context("deleting this member's cell summary")?;
                self.published = false;
                debug!("fleet: no hot cell left; summary deleted");
            }
            return Ok(());
        }
        let v = P::encode(&self.member, unix_ms(SystemTime::now()), &cells, &self.cfg);
        client
            .put(self.key.clone(), v, Some(PutOptions::new().with_lease(lease)))
            .await
            .context("publishing this member's cell summary")?;
        self.published = true;
        Ok(())
    }

    /// etcd lost: the others' contributions are no longer current; the controller goes on with
    /// its local view. Our key, if any, goes with our lease.
    pub fn lost(&mut self) {
        self.exchange.clear();
        self.published = false;
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a member writes and the prefix it reads follow its summary group (and are the
    /// fleet's own without one, as before groups).
    #[test]
    fn a_member_writes_and_reads_its_summary_groups_keys() {
        let cfg = FleetCells::default();
        let n3 = |group| {
            let x = Arc::new(Exchange::new(&cfg));
            Summaries::<N3>::new("f1", group, "upf-1", cfg.clone(), x, FleetMetrics::default())
        };
        let n2 = |group| {
            let x = Arc::new(Exchange::new(&cfg));
            Summaries::<N2>::new("f1", group, "amf-1", cfg.clone(), x, FleetMetrics::default())
        };
        let (g, none) = (n3(Some("pool-a")), n3(None));
        assert_eq!(
            (g.prefix(), g.key.as_str()),
            ("/overload-guard/f1/groups/pool-a/cells/n3/", "/overload-guard/f1/groups/pool-a/cells/n3/upf-1")
        );
        assert_eq!(
            (none.prefix(), none.key.as_str()),
            ("/overload-guard/f1/cells/n3/", "/overload-guard/f1/cells/n3/upf-1")
        );
        assert_eq!(n2(Some("set-1")).key, "/overload-guard/f1/groups/set-1/cells/n2/amf-1");
        assert_eq!(n2(None).key, "/overload-guard/f1/cells/n2/amf-1");
    }
}
