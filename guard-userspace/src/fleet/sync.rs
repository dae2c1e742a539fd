//! The member's task: register under a lease, list the pins, then watch them; on any failure keep
//! what is applied (each pin until its own expiry), say so, and start over with back-off: list
//! again (catching up with what changed meanwhile), then watch.
//!
//! How a lost etcd is noticed: every request and the lease keep-alive (every third of
//! `lease_ttl`) has a deadline (`sync.timeout`), and the client asks for a leader
//! (`require_leader`), so a cluster without quorum fails requests and watches instead of hanging.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{Client, EventType, PutOptions, WatchOptions};
use tracing::{debug, info, warn};

mod list;

use super::apply::Applier;
use super::lists::{Backoff, Gnbs, Lists};
use super::pins::{decode, members_prefix, pins_prefix, PinValue};
use super::status::{FleetMetrics, FleetStatus};
use super::summaries::{Summaries, N2, N3};
use super::unix_ms;
use crate::config::FleetSection;

/// Keys read per list request. A page whose values are too large for one gRPC message (etcd's own
/// value limit is 1.5 MiB) is re-read one key at a time.
const PAGE: i64 = 64;

/// One member of a fleet.
pub struct Member {
    cfg: FleetSection,
    member: String,
    /// What this member says about itself under `members/` (JSON).
    about: String,
    applier: Applier,
    status: Arc<FleetStatus>,
    metrics: FleetMetrics,
    /// Per-cell summaries (with an N2 controller and `fleet.cells.enabled`).
    summaries: Option<Summaries<N2>>,
    /// Per-gNB summaries on N3 (`fleet.cells.enabled`).
    n3: Option<Summaries<N3>>,
    /// Device back-off lists (with an N2 controller and `fleet.backoff.enabled`).
    lists: Option<Lists<Backoff>>,
    /// Known gNB addresses learned from real N2 sessions (with an N2 controller and
    /// `fleet.gnbs.enabled`).
    gnbs: Option<Lists<Gnbs>>,
    /// Connection attempts so far (which endpoint to try first).
    attempts: usize,
}

/// Why a session ended: it never got going, or it ran and then lost etcd.
enum Ended {
    Failed(anyhow::Error),
    Lost(anyhow::Error),
}

impl Member {
    pub fn new(
        cfg: FleetSection,
        about: serde_json::Value,
        applier: Applier,
        status: Arc<FleetStatus>,
        metrics: FleetMetrics,
        summaries: Option<Summaries<N2>>,
        lists: Option<Lists<Backoff>>,
    ) -> Member {
        let member = cfg.member_name();
        Member {
            cfg,
            member,
            about: about.to_string(),
            applier,
            status,
            metrics,
            summaries,
            n3: None,
            lists,
            gnbs: None,
            attempts: 0,
        }
    }

    /// Publish and sum N3 per-gNB summaries too.
    pub fn with_n3(mut self, n3: Option<Summaries<N3>>) -> Member {
        self.n3 = n3;
        self
    }

    /// Publish and take known gNB lists too.
    pub fn with_gnbs(mut self, gnbs: Option<Lists<Gnbs>>) -> Member {
        self.gnbs = gnbs;
        self
    }

    /// Run until the task is aborted.
    pub async fn run(mut self) {
        let retry = Duration::from_nanos(self.cfg.sync.retry.0);
        let retry_max = Duration::from_nanos(self.cfg.sync.retry_max.0);
        let mut backoff = retry;
        let mut sessions = 0u64;
        let mut announced_down = false;
        loop {
            let ended = self.session(sessions).await;
            let (e, ran) = match ended {
                Ended::Lost(e) => (e, true),
                Ended::Failed(e) => (e, false),
            };
            if ran {
                sessions += 1;
                backoff = retry;
                announced_down = false;
            }
            self.metrics.connected.set(0);
            self.status.lost(&format!("{e:#}"));
            if let Some(sm) = &mut self.summaries {
                // Without etcd the others' contributions cannot be refreshed: local view only.
                sm.lost();
            }
            if let Some(l) = &mut self.lists {
                l.lost();
            }
            if let Some(g) = &mut self.gnbs {
                g.lost();
            }
            if let Some(n3) = &mut self.n3 {
                n3.lost();
            }
            if !announced_down {
                warn!(
                    fleet = self.cfg.name,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "fleet: etcd unreachable; guarding with the local view and the fleet pins already applied until their expiry"
                );
                announced_down = true;
            } else {
                debug!(error = format!("{e:#}"), "fleet: still no etcd");
            }
            self.applier.expire(SystemTime::now());
            self.applier.reach(SystemTime::now());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry_max);
        }
    }

    /// The endpoint this session tries first: the member's own spread, moved on by one per
    /// attempt (`attempts`).
    fn start_endpoint(&mut self) -> usize {
        self.attempts = self.attempts.wrapping_add(1);
        let spread: usize = self.member.bytes().map(usize::from).sum();
        spread.wrapping_add(self.attempts)
    }

    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.cfg.sync.timeout.0)
    }

    async fn deadline<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        tokio::time::timeout(self.timeout(), f)
            .await
            .map_err(|_| anyhow!("{what}: no answer within {}", self.cfg.sync.timeout))?
            .with_context(|| what.to_owned())
    }

    /// Connect, register, list, watch: returns when etcd is lost.
    async fn session(&mut self, sessions: u64) -> Ended {
        // Each session starts at the next endpoint: one lost member moves us to another.
        let first = self.start_endpoint();
        let mut client = match super::client::connect_from(&self.cfg, first).await {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e),
        };
        let ttl_s = (self.cfg.lease_ttl.0 / 1_000_000_000) as i64;
        let lease = match self.deadline("granting this member's lease", client.lease_grant(ttl_s, None)).await {
            Ok(l) => l.id(),
            Err(e) => return Ended::Failed(e),
        };
        let member_key = format!("{}{}", members_prefix(&self.cfg.name), self.member);
        let put = client.put(member_key.clone(), self.about.clone(), Some(PutOptions::new().with_lease(lease)));
        if let Err(e) = self.deadline("registering this member", put).await {
            return Ended::Failed(e);
        }
        let (mut keeper, mut acks) =
            match self.deadline("keeping the lease alive", client.lease_keep_alive(lease)).await {
                Ok(k) => k,
                Err(e) => return Ended::Failed(e),
            };
        let rev = match self.list_and_reconcile(&mut client).await {
            Ok(r) => r,
            Err(e) => return Ended::Failed(e),
        };
        let prefix = pins_prefix(&self.cfg.name);
        let opts = WatchOptions::new().with_prefix().with_start_revision(rev + 1).with_prev_key();
        let mut stream = match self.deadline("watching the pins", client.watch(prefix.clone(), Some(opts))).await {
            Ok(s) => s,
            Err(e) => return Ended::Failed(e),
        };
        // Cell summaries, device back-off lists, known gNB lists, N3 per-gNB summaries: the
        // others' now, then their changes; ours every publish tick.
        let (t, tn) = (self.timeout(), self.cfg.sync.timeout.to_string());
        let (mut cells_stream, mut lists_stream, mut gnbs_stream, mut n3_stream) = (None, None, None, None);
        if let Some(sm) = &mut self.summaries {
            let (p, o) = (sm.prefix().to_owned(), Summaries::<N2>::watch_options);
            match follow("cell summaries", p, o, &mut client, t, &tn, async |c| sm.list(c).await).await {
                Ok(st) => cells_stream = Some(st),
                Err(e) => return Ended::Failed(e),
            }
        }
        if let Some(l) = &mut self.lists {
            let (p, o) = (l.prefix().to_owned(), Lists::<Backoff>::watch_options);
            match follow("device back-off lists", p, o, &mut client, t, &tn, async |c| l.list(c).await).await {
                Ok(st) => lists_stream = Some(st),
                Err(e) => return Ended::Failed(e),
            }
        }
        if let Some(g) = &mut self.gnbs {
            let (p, o) = (g.prefix().to_owned(), Lists::<Gnbs>::watch_options);
            match follow("known gNB lists", p, o, &mut client, t, &tn, async |c| g.list(c).await).await {
                Ok(st) => gnbs_stream = Some(st),
                Err(e) => return Ended::Failed(e),
            }
        }
        if let Some(n3) = &mut self.n3 {
            let (p, o) = (n3.prefix().to_owned(), Summaries::<N3>::watch_options);
            match follow("N3 cell summaries", p, o, &mut client, t, &tn, async |c| n3.list(c).await).await {
                Ok(st) => n3_stream = Some(st),
                Err(e) => return Ended::Failed(e),
            }
        }
        // One publish tick for all: the summaries' interval, else a second for the lists.
        let every = Duration::from_nanos(self.cfg.cells.interval.0);
        let mut publish = tokio::time::interval(every);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.metrics.connected.set(1);
        self.status.connected();
        if sessions > 0 {
            self.metrics.reconnects.inc();
        }
        info!(
            fleet = self.cfg.name,
            member = self.member,
            revision = rev,
            "fleet: connected to etcd; pins listed and watched"
        );

        let ka_every = Duration::from_nanos(self.cfg.lease_ttl.0 / 3).max(Duration::from_millis(500));
        let mut ka = tokio::time::interval(ka_every);
        ka.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval(Duration::from_nanos(self.cfg.sync.resync.0));
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        let mut expire = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ended::Lost(anyhow!("the watch stream ended")),
                        Err(e) => return Ended::Lost(anyhow!(e).context("watching the pins")),
                    };
                    if resp.canceled() {
                        // Compacted past our revision, or no leader: list again from scratch.
                        return Ended::Lost(anyhow!(
                            "the watch was canceled ({}; compacted at revision {})",
                            resp.cancel_reason(),
                            resp.compact_revision()
                        ));
                    }
                    for ev in resp.events() {
                        self.on_event(ev);
                    }
                }
                _ = ka.tick() => {
                    if let Err(e) = self.keep_alive(&mut keeper, &mut acks).await {
                        return Ended::Lost(e);
                    }
                }
                _ = resync.tick() => {
                    if let Err(e) = self.list_and_reconcile(&mut client).await {
                        return Ended::Lost(e);
                    }
                }
                _ = expire.tick() => {
                    self.applier.expire(SystemTime::now());
                    self.applier.restore(SystemTime::now());
                    // UE pins on a member keyed by TEID: the TEIDs that bound since.
                    self.applier.reach(SystemTime::now());
                }
                msg = next_message(&mut cells_stream) => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ended::Lost(anyhow!("the cell summaries' watch ended")),
                        Err(e) => return Ended::Lost(anyhow!(e).context("watching the cell summaries")),
                    };
                    if resp.canceled() {
                        return Ended::Lost(anyhow!("the cell summaries' watch was canceled ({})", resp.cancel_reason()));
                    }
                    if let Some(sm) = &mut self.summaries {
                        for ev in resp.events() {
                            sm.on_event(ev);
                        }
                    }
                }
                msg = next_message(&mut n3_stream) => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ended::Lost(anyhow!("the N3 cell summaries' watch ended")),
                        Err(e) => return Ended::Lost(anyhow!(e).context("watching the N3 cell summaries")),
                    };
                    if resp.canceled() {
                        return Ended::Lost(anyhow!("the N3 cell summaries' watch was canceled ({})", resp.cancel_reason()));
                    }
                    if let Some(n3) = &mut self.n3 {
                        for ev in resp.events() {
                            n3.on_event(ev);
                        }
                    }
                }
                msg = next_message(&mut lists_stream) => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ended::Lost(anyhow!("the device back-off lists' watch ended")),
                        Err(e) => return Ended::Lost(anyhow!(e).context("watching the device back-off lists")),
                    };
                    if resp.canceled() {
                        return Ended::Lost(anyhow!("the device back-off lists' watch was canceled ({})", resp.cancel_reason()));
                    }
                    if let Some(l) = &mut self.lists {
                        for ev in resp.events() {
                            l.on_event(ev);
                        }
                    }
                }
                msg = next_message(&mut gnbs_stream) => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ended::Lost(anyhow!("the known gNB lists' watch ended")),
                        Err(e) => return Ended::Lost(anyhow!(e).context("watching the known gNB lists")),
                    };
                    if resp.canceled() {
                        return Ended::Lost(anyhow!("the known gNB lists' watch was canceled ({})", resp.cancel_reason()));
                    }
                    if let Some(g) = &mut self.gnbs {
                        for ev in resp.events() {
                            g.on_event(ev);
                        }
                    }
                }
                _ = publish.tick(), if self.summaries.is_some() || self.lists.is_some() || self.n3.is_some() || self.gnbs.is_some() => {
                    let t = self.timeout();
                    if let Some(sm) = &mut self.summaries {
                        match tokio::time::timeout(t, sm.publish(&mut client, lease)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Ended::Lost(e),
                            Err(_) => return Ended::Lost(anyhow!("publishing the cell summary: no answer within {}", self.cfg.sync.timeout)),
                        }
                    }
                    if let Some(n3) = &mut self.n3 {
                        match tokio::time::timeout(t, n3.publish(&mut client, lease)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Ended::Lost(e),
                            Err(_) => return Ended::Lost(anyhow!("publishing the N3 cell summary: no answer within {}", self.cfg.sync.timeout)),
                        }
                    }
                    if let Some(l) = &mut self.lists {
                        match tokio::time::timeout(t, l.publish(&mut client, lease)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Ended::Lost(e),
                            Err(_) => return Ended::Lost(anyhow!("publishing the device back-off list: no answer within {}", self.cfg.sync.timeout)),
                        }
                    }
                    if let Some(g) = &mut self.gnbs {
                        match tokio::time::timeout(t, g.publish(&mut client, lease)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Ended::Lost(e),
                            Err(_) => return Ended::Lost(anyhow!("publishing the known gNB list: no answer within {}", self.cfg.sync.timeout)),
                        }
                    }
                }
            }
        }
    }

    async fn keep_alive(
        &self,
        keeper: &mut etcd_client::LeaseKeeper,
        acks: &mut etcd_client::LeaseKeepAliveStream,
    ) -> Result<()> {
        self.deadline("sending the lease keep-alive", keeper.keep_alive()).await?;
        match self.deadline("the lease keep-alive answer", acks.message()).await? {
            Some(r) if r.ttl() > 0 => Ok(()),
            Some(_) => bail!("this member's lease expired"),
            None => bail!("the lease keep-alive stream ended"),
        }
    }

    fn on_event(&mut self, ev: &etcd_client::Event) {
        let Some(kv) = ev.kv() else { return };
        let prefix = pins_prefix(&self.cfg.name);
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let Some(suffix) = key.strip_prefix(&prefix).map(str::to_owned) else { return };
        let now = SystemTime::now();
        match ev.event_type() {
            EventType::Delete => {
                // A lease's expiry deletes the key too; the previous value says which it was.
                let why = match ev.prev_kv().and_then(|p| serde_json::from_slice::<PinValue>(p.value()).ok()) {
                    Some(v) if v.remaining_ms(unix_ms(now) + 1000).is_none() => "expired",
                    _ => "deleted",
                };
                self.applier.remove(&suffix, why, now);
            }
            EventType::Put => {
                let max_keys = self.cfg.sync.max_keys as usize;
                if !self.applier.holds(&suffix) && self.applier.len() >= max_keys {
                    self.metrics.reject("too_many_keys");
                    warn!(key, max_keys, "fleet: pin ignored: this member already holds fleet.sync.max_keys pins");
                    return;
                }
                match decode(&prefix, kv.key(), kv.value(), self.cfg.sync.max_value_bytes as usize) {
                    Ok((t, v)) => self.applier.upsert(t, v, now),
                    Err(e) => {
                        self.metrics.reject(e.label());
                        warn!(key, error = %e, "fleet: value rejected; the key is skipped");
                        // The key no longer holds a valid pin: what this member applied for it goes.
                        self.applier.remove(&suffix, "replaced by an invalid value", now);
                    }
                }
            }
        }
    }
}

/// The next message of an optional watch (never ready without one).
/// Following one prefix of the others' values (`what`, in errors): `list` them now, then watch
/// from that revision on; each step within the request deadline `t` (`tn` as configured).
async fn follow(
    what: &str,
    prefix: String,
    opts: fn(i64) -> WatchOptions,
    client: &mut Client,
    t: Duration,
    tn: &str,
    list: impl AsyncFnOnce(&mut Client) -> Result<i64>,
) -> Result<etcd_client::WatchStream> {
    let rev = tokio::time::timeout(t, list(client))
        .await
        .map_err(|_| anyhow!("listing the {what}: no answer within {tn}"))??;
    tokio::time::timeout(t, client.watch(prefix, Some(opts(rev))))
        .await
        .map_err(|_| anyhow!("watching the {what}: no answer within {tn}"))?
        .with_context(|| format!("watching the {what}"))
}

async fn next_message(
    w: &mut Option<etcd_client::WatchStream>,
) -> Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match w {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

/// The end of the key range of everything under `prefix` (etcd's range_end: the prefix with its
/// last byte incremented). Fleet prefixes end in `/`, so this never carries.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_end_covers_exactly_the_prefix() {
        let p = super::pins_prefix("f1");
        let end = super::prefix_end(&p);
        assert_eq!(end, b"/overload-guard/f1/pins0".to_vec());
        let inside = format!("{p}ue-prefix/10.0.0.0/24");
        assert!(inside.as_bytes() >= p.as_bytes() && inside.as_bytes() < end.as_slice());
        assert!(b"/overload-guard/f1/pinsx".as_slice() >= end.as_slice());
    }
}
