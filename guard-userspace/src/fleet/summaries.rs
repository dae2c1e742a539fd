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

use super::cells::{decode, encode, n2_key, n2_prefix};
use super::status::FleetMetrics;
use super::sync::prefix_end;
use super::unix_ms;
use crate::config::FleetCells;
use crate::n2::fleet_link::CellExchange;

/// This member's summaries link.
pub struct Summaries {
    cfg: FleetCells,
    prefix: String,
    key: String,
    member: String,
    exchange: Arc<CellExchange>,
    metrics: FleetMetrics,
    /// Whether our key holds cells (so an empty set is written once, as a delete).
    published: bool,
}

impl Summaries {
    pub fn new(
        fleet: &str,
        member: &str,
        cfg: FleetCells,
        exchange: Arc<CellExchange>,
        metrics: FleetMetrics,
    ) -> Summaries {
        Summaries {
            cfg,
            prefix: n2_prefix(fleet),
            key: n2_key(fleet, member),
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
        match decode(&self.prefix, key, value, &self.cfg) {
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
                warn!(%key, error = %e, "fleet: cell summary rejected; that member's contribution is dropped");
                if let Some(m) = key.strip_prefix(&self.prefix) {
                    self.exchange.remove(m);
                }
            }
        }
    }

    fn report(&self) {
        self.metrics.cell_members.set(self.exchange.members() as i64);
    }

    /// Write this member's hot cells under its lease (the key goes with the lease if this host
    /// dies); delete the key once no cell is left to publish.
    pub async fn publish(&mut self, client: &mut Client, lease: i64) -> Result<()> {
        let cells = self.exchange.outgoing();
        self.metrics.cells_published.set(cells.len().min(self.cfg.max_cells as usize) as i64);
        if cells.is_empty() {
            if self.published {
                client.delete(self.key.clone(), None).await.context("deleting this member's cell summary")?;
                self.published = false;
                debug!("fleet: no hot cell left; summary deleted");
            }
            return Ok(());
        }
        let v = encode(&self.member, unix_ms(SystemTime::now()), &cells, &self.cfg);
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
