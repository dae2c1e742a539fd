//! The etcd side of N2 device back-off lists (docs/fleet.md "Device back-off lists"): publish
//! this member's listed devices under its own lease, read and watch the others', and hand them to
//! the N2 controller through its mailbox ([`BackoffExchange`]).
//!
//! Bounded here, whatever is in etcd: one key per member, its value at most
//! `max_value_bytes()` and `max_devices` devices, each T3346 and the list's life bounded, at most
//! `max_members` members taken; a bad value is refused with a log line and
//! `overload_guard_fleet_values_rejected_total{reason}`, and that member's list goes. Published:
//! at most one put per publish interval, only when the list changed or a third of its life has
//! passed; deleted when the list is empty.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use guard_common::abi_n2::N2DeviceKey;
use tracing::{info, warn};

use super::backoff::{decode, encode, n2_key, n2_prefix};
use super::status::FleetMetrics;
use super::sync::prefix_end;
use super::unix_ms;
use crate::config::FleetBackoff;
use crate::n2::fleet_link::BackoffExchange;

/// This member's back-off lists link.
pub struct Lists {
    cfg: FleetBackoff,
    prefix: String,
    key: String,
    member: String,
    exchange: Arc<BackoffExchange>,
    metrics: FleetMetrics,
    /// What our key holds now, and when it was written (None: no key).
    published: Option<(Vec<(N2DeviceKey, u32)>, Instant)>,
}

impl Lists {
    pub fn new(
        fleet: &str,
        member: &str,
        cfg: FleetBackoff,
        exchange: Arc<BackoffExchange>,
        metrics: FleetMetrics,
    ) -> Lists {
        Lists {
            cfg,
            prefix: n2_prefix(fleet),
            key: n2_key(fleet, member),
            member: member.to_owned(),
            exchange,
            metrics,
            published: None,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn watch_options(rev: i64) -> WatchOptions {
        WatchOptions::new().with_prefix().with_start_revision(rev + 1)
    }

    /// The others' lists now (at most `max_members` + 1 keys: ours is among them). Returns the
    /// revision read at.
    pub async fn list(&mut self, client: &mut Client) -> Result<i64> {
        let limit = i64::from(self.cfg.max_members) + 1;
        let opts = GetOptions::new().with_range(prefix_end(&self.prefix)).with_limit(limit);
        let r = client.get(self.prefix.clone(), Some(opts)).await.context("listing the device back-off lists")?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.exchange.clear_lists();
        if r.more() {
            self.metrics.reject("too_many_keys");
            warn!(
                max_members = self.cfg.max_members,
                "fleet: more device back-off lists than fleet.backoff.max_members; the first in key order are taken"
            );
        }
        for kv in r.kvs() {
            self.take(kv.key(), kv.value());
        }
        self.report();
        Ok(rev)
    }

    /// One watch event on the lists' prefix.
    pub fn on_event(&mut self, ev: &etcd_client::Event) {
        let Some(kv) = ev.kv() else { return };
        match ev.event_type() {
            EventType::Delete => {
                // Deleted by its member (its storm is over) or by its lease running out.
                if let Some(m) = String::from_utf8_lossy(kv.key()).strip_prefix(&self.prefix) {
                    self.exchange.remove_list(m);
                }
            }
            EventType::Put => self.take(kv.key(), kv.value()),
        }
        self.report();
    }

    fn take(&self, key: &[u8], value: &[u8]) {
        if key == self.key.as_bytes() {
            return; // our own
        }
        match decode(&self.prefix, key, value, unix_ms(SystemTime::now()), &self.cfg) {
            Ok(l) => {
                let n = l.devices.len();
                let remaining = Duration::from_millis(l.remaining_ms);
                if !self.exchange.set_list(&l.member, l.devices, Instant::now(), remaining) {
                    self.metrics.reject("too_many_keys");
                    warn!(
                        member = l.member,
                        "fleet: device back-off list ignored: fleet.backoff.max_members others already taken"
                    );
                } else {
                    info!(member = l.member, devices = n, "fleet: device back-off list taken from another member");
                }
            }
            Err(e) => {
                self.metrics.reject(e.label());
                let key = String::from_utf8_lossy(key);
                warn!(%key, error = %e, "fleet: device back-off list rejected; that member's list is dropped");
                if let Some(m) = key.strip_prefix(&self.prefix) {
                    self.exchange.remove_list(m);
                }
            }
        }
    }

    fn report(&self) {
        self.metrics.backoff_listed.set(self.exchange.listed(Instant::now()) as i64);
    }

    /// Write this member's list under its lease when it changed or a third of its life passed;
    /// delete the key once the list is empty.
    pub async fn publish(&mut self, client: &mut Client, lease: i64) -> Result<()> {
        self.report();
        let devices = self.exchange.outgoing();
        let refresh = Duration::from_nanos(self.cfg.ttl.0 / 3);
        match &self.published {
            None if devices.is_empty() => return Ok(()),
            Some((d, at)) if *d == devices && at.elapsed() < refresh => return Ok(()),
            _ => {}
        }
        self.metrics.backoff_published.set(devices.len() as i64);
        if devices.is_empty() {
            client.delete(self.key.clone(), None).await.context("deleting this member's device back-off list")?;
            self.published = None;
            info!("fleet: device back-off list deleted (no device listed here any more)");
            return Ok(());
        }
        let v = encode(&self.member, unix_ms(SystemTime::now()), &devices, &self.cfg);
        client
            .put(self.key.clone(), v, Some(PutOptions::new().with_lease(lease)))
            .await
            .context("publishing this member's device back-off list")?;
        if self.published.as_ref().is_none_or(|(d, _)| *d != devices) {
            info!(devices = devices.len(), "fleet: device back-off list published");
        }
        self.published = Some((devices, Instant::now()));
        Ok(())
    }

    /// etcd lost: the others' lists can no longer follow their publishers' leases. Ours, if
    /// any, goes with our lease.
    pub fn lost(&mut self) {
        self.exchange.clear_lists();
        self.published = None;
        self.report();
    }
}
