//! The etcd side of lists a member publishes under its own lease, with their own expiry, and
//! takes from the others (docs/fleet.md): N2 device back-off lists ([`Backoff`]) and known gNB
//! addresses learned from real N2 sessions ([`Gnbs`]). Each plane's key and value are pure (in
//! [`super::backoff`], [`super::gnbs`]); the mailbox to the N2 controller is a
//! [`ListBox`](crate::n2::fleet_link::ListBox).
//!
//! Bounded here, whatever is in etcd: one key per member, its value at most the plane's
//! `max_value_bytes()` and item count, the list's life bounded, at most `max_members` members
//! taken; a bad value is refused with a log line and
//! `overload_guard_fleet_values_rejected_total{reason}`, and that member's list goes. Published:
//! at most one put per publish interval, only when the list changed or a third of its life has
//! passed; deleted when the list is empty.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use guard_common::abi::L3Addr;
use guard_common::abi_n2::N2DeviceKey;
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

use super::backoff::ListError;
use super::status::FleetMetrics;
use super::sync::prefix_end;
use super::unix_ms;
use crate::config::{FleetBackoff, FleetGnbs};
use crate::n2::fleet_link::{BackoffExchange, GnbExchange, ListBox};

/// One kind of list: where it lives, how it is written and read, its mailbox and its series.
pub trait ListPlane {
    type Item: Clone + PartialEq;
    type Cfg: Clone;
    type Exchange;
    /// What a list is, in log lines.
    const WHAT: &'static str;
    fn prefix(fleet: &str) -> String;
    fn mailbox(x: &Self::Exchange) -> &ListBox<Self::Item>;
    fn ttl_ns(cfg: &Self::Cfg) -> u64;
    fn max_members(cfg: &Self::Cfg) -> u32;
    fn encode(member: &str, at_unix_ms: u64, items: &[Self::Item], cfg: &Self::Cfg) -> Vec<u8>;
    /// The member, how long the list still lives (ms) and its items.
    fn decode(
        prefix: &str,
        key: &[u8],
        value: &[u8],
        now_unix_ms: u64,
        cfg: &Self::Cfg,
    ) -> Result<(String, u64, Vec<Self::Item>), ListError>;
    /// Its series: items held from the others, items published.
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge);
}

/// N2 device back-off lists (an AMF set).
pub struct Backoff;
/// Known gNB addresses learned from real N2 sessions (an AMF set).
pub struct Gnbs;

impl ListPlane for Backoff {
    type Item = (N2DeviceKey, u32);
    type Cfg = FleetBackoff;
    type Exchange = BackoffExchange;
    const WHAT: &'static str = "device back-off list";
    fn prefix(fleet: &str) -> String {
        super::backoff::n2_prefix(fleet)
    }
    fn mailbox(x: &BackoffExchange) -> &ListBox<(N2DeviceKey, u32)> {
        &x.lists
    }
    fn ttl_ns(cfg: &FleetBackoff) -> u64 {
        cfg.ttl.0
    }
    fn max_members(cfg: &FleetBackoff) -> u32 {
        cfg.max_members
    }
    fn encode(member: &str, at: u64, items: &[(N2DeviceKey, u32)], cfg: &FleetBackoff) -> Vec<u8> {
        super::backoff::encode(member, at, items, cfg)
    }
    fn decode(
        p: &str,
        k: &[u8],
        v: &[u8],
        now: u64,
        cfg: &FleetBackoff,
    ) -> Result<(String, u64, Vec<(N2DeviceKey, u32)>), ListError> {
        super::backoff::decode(p, k, v, now, cfg).map(|l| (l.member, l.remaining_ms, l.devices))
    }
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge) {
        (&m.backoff_listed, &m.backoff_published)
    }
}

impl ListPlane for Gnbs {
    type Item = L3Addr;
    type Cfg = FleetGnbs;
    type Exchange = GnbExchange;
    const WHAT: &'static str = "known gNB list";
    fn prefix(fleet: &str) -> String {
        super::gnbs::n2_prefix(fleet)
    }
    fn mailbox(x: &GnbExchange) -> &ListBox<L3Addr> {
        x
    }
    fn ttl_ns(cfg: &FleetGnbs) -> u64 {
        cfg.ttl.0
    }
    fn max_members(cfg: &FleetGnbs) -> u32 {
        cfg.max_members
    }
    fn encode(member: &str, at: u64, items: &[L3Addr], cfg: &FleetGnbs) -> Vec<u8> {
        super::gnbs::encode(member, at, items, cfg)
    }
    fn decode(p: &str, k: &[u8], v: &[u8], now: u64, cfg: &FleetGnbs) -> Result<(String, u64, Vec<L3Addr>), ListError> {
        super::gnbs::decode(p, k, v, now, cfg).map(|l| (l.member, l.remaining_ms, l.gnbs))
    }
    fn gauges(m: &FleetMetrics) -> (&Gauge, &Gauge) {
        (&m.gnbs_listed, &m.gnbs_published)
    }
}

/// This member's link for the lists of plane `P`.
pub struct Lists<P: ListPlane> {
    cfg: P::Cfg,
    prefix: String,
    key: String,
    member: String,
    exchange: Arc<P::Exchange>,
    metrics: FleetMetrics,
    /// What our key holds now, and when it was written (None: no key).
    published: Option<(Vec<P::Item>, Instant)>,
}

impl<P: ListPlane> Lists<P> {
    pub fn new(fleet: &str, member: &str, cfg: P::Cfg, exchange: Arc<P::Exchange>, metrics: FleetMetrics) -> Self {
        let prefix = P::prefix(fleet);
        Lists {
            cfg,
            key: format!("{prefix}{member}"),
            prefix,
            member: member.to_owned(),
            exchange,
            metrics,
            published: None,
        }
    }

    fn mailbox(&self) -> &ListBox<P::Item> {
        P::mailbox(&self.exchange)
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
        let max_members = P::max_members(&self.cfg);
        let limit = i64::from(max_members) + 1;
        let opts = GetOptions::new().with_range(prefix_end(&self.prefix)).with_limit(limit);
        let r =
            client.get(self.prefix.clone(), Some(opts)).await.with_context(|| format!("listing the {}s", P::WHAT))?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.mailbox().clear_lists();
        if r.more() {
            self.metrics.reject("too_many_keys");
            warn!(max_members, "fleet: more {}s than max_members; the first in key order are taken", P::WHAT);
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
                // Deleted by its member (its list emptied) or by its lease running out.
                if let Some(m) = String::from_utf8_lossy(kv.key()).strip_prefix(&self.prefix) {
                    self.mailbox().remove_list(m);
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
        match P::decode(&self.prefix, key, value, unix_ms(SystemTime::now()), &self.cfg) {
            Ok((member, remaining_ms, items)) => {
                let n = items.len();
                let remaining = Duration::from_millis(remaining_ms);
                if !self.mailbox().set_list(&member, items, Instant::now(), remaining) {
                    self.metrics.reject("too_many_keys");
                    warn!(member, "fleet: {} ignored: max_members others already taken", P::WHAT);
                } else {
                    info!(member, items = n, "fleet: {} taken from another member", P::WHAT);
                }
            }
            Err(e) => {
                self.metrics.reject(e.label());
                let key = String::from_utf8_lossy(key);
                warn!(%key, error = %e, "fleet: {} rejected; that member's list is dropped", P::WHAT);
                if let Some(m) = key.strip_prefix(&self.prefix) {
                    self.mailbox().remove_list(m);
                }
            }
        }
    }

    fn report(&self) {
        P::gauges(&self.metrics).0.set(self.mailbox().listed(Instant::now()) as i64);
    }

    /// Write this member's list under its lease when it changed or a third of its life passed;
    /// delete the key once the list is empty.
    pub async fn publish(&mut self, client: &mut Client, lease: i64) -> Result<()> {
        self.report();
        let items = self.mailbox().outgoing();
        let refresh = Duration::from_nanos(P::ttl_ns(&self.cfg) / 3);
        match &self.published {
            None if items.is_empty() => return Ok(()),
            Some((d, at)) if *d == items && at.elapsed() < refresh => return Ok(()),
            _ => {}
        }
        P::gauges(&self.metrics).1.set(items.len() as i64);
        if items.is_empty() {
            client
                .delete(self.key.clone(), None)
                .await
                .with_context(|| format!("deleting this member's {}", P::WHAT))?;
            self.published = None;
            info!("fleet: {} deleted (nothing listed here any more)", P::WHAT);
            return Ok(());
        }
        let v = P::encode(&self.member, unix_ms(SystemTime::now()), &items, &self.cfg);
        client
            .put(self.key.clone(), v, Some(PutOptions::new().with_lease(lease)))
            .await
            .with_context(|| format!("publishing this member's {}", P::WHAT))?;
        if self.published.as_ref().is_none_or(|(d, _)| *d != items) {
            info!(items = items.len(), "fleet: {} published", P::WHAT);
        }
        self.published = Some((items, Instant::now()));
        Ok(())
    }

    /// etcd lost: the others' lists can no longer follow their publishers' leases. Ours, if
    /// any, goes with our lease.
    pub fn lost(&mut self) {
        self.mailbox().clear_lists();
        self.published = None;
        self.report();
    }
}
