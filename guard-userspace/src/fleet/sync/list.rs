//! The full listing of the fleet's pins: pages of `PAGE` keys at one revision, a page too large
//! for one message key by key, and the data plane made to match (`Applier::reconcile`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::Result;
use etcd_client::{Client, GetOptions};
use tracing::warn;

use super::{prefix_end, Member, PAGE};
use crate::fleet::pins::{decode, pins_prefix, PinTarget, PinValue};

impl Member {
    /// Read every pin (at most `max_keys`, in key order) and make the data plane match. Returns
    /// the revision the listing was read at, to watch from.
    pub(super) async fn list_and_reconcile(&mut self, client: &mut Client) -> Result<i64> {
        let prefix = pins_prefix(&self.cfg.name);
        let end = prefix_end(&prefix);
        let max_keys = self.cfg.sync.max_keys as usize;
        let max_value = self.cfg.sync.max_value_bytes as usize;
        let mut start = prefix.clone().into_bytes();
        let mut rev = 0i64;
        let mut kvs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // Keys listed whose value could not be read: not gone from etcd (`Applier::reconcile`).
        let mut unread: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut truncated = false;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if rev > 0 {
                opts = opts.with_revision(rev);
            }
            let page = match self.deadline("listing the pins", client.get(start.clone(), Some(opts.clone()))).await {
                Ok(r) => {
                    if rev == 0 {
                        rev = r.header().map(|h| h.revision()).unwrap_or(0);
                    }
                    let more = r.more();
                    let page: Vec<_> = r.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect();
                    (page, more)
                }
                Err(e) => {
                    let (page, more, skipped) = self
                        .page_key_by_key(client, &start, &end, rev)
                        .await
                        .map_err(|e2| e2.context(format!("{e:#}")))?;
                    unread.extend(
                        skipped.iter().map(|k| String::from_utf8_lossy(k).trim_start_matches(&prefix).to_owned()),
                    );
                    (page, more)
                }
            };
            let (page, more) = page;
            let Some(last) = page.last().map(|(k, _)| k.clone()) else { break };
            for kv in page {
                if kvs.len() >= max_keys {
                    truncated = true;
                    break;
                }
                kvs.push(kv);
            }
            if truncated || !more {
                break;
            }
            start = last;
            start.push(0);
        }
        if truncated {
            self.metrics.reject("too_many_keys");
            warn!(
                max_keys,
                "fleet: more pins than fleet.sync.max_keys; the first ones in key order apply, the rest are ignored"
            );
        }
        let mut desired: BTreeMap<String, (PinTarget, PinValue)> = BTreeMap::new();
        for (k, v) in kvs {
            match decode(&prefix, &k, &v, max_value) {
                Ok((t, val)) => {
                    desired.insert(t.suffix(), (t, val));
                }
                Err(e) => {
                    self.metrics.reject(e.label());
                    warn!(key = %String::from_utf8_lossy(&k), error = %e, "fleet: value rejected; the key is skipped");
                }
            }
        }
        let now = SystemTime::now();
        self.applier.reconcile(desired, &unread, now);
        if !truncated && unread.is_empty() {
            // Only with the whole listing: a pin past `max_keys`, or one that could not be read,
            // is not an orphan.
            self.applier.sweep_orphans(now);
        }
        Ok(rev)
    }

    /// A page that could not be read whole (values too large for one message): its keys alone,
    /// then each value alone. An unreadable one is reported as oversized and skipped, and
    /// returned apart: (pins read, more pages, keys not read).
    async fn page_key_by_key(
        &self,
        client: &mut Client,
        start: &[u8],
        end: &[u8],
        rev: i64,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, bool, Vec<Vec<u8>>)> {
        let mut opts = GetOptions::new().with_range(end.to_vec()).with_limit(PAGE).with_keys_only();
        if rev > 0 {
            opts = opts.with_revision(rev);
        }
        let keys = self.deadline("listing the pins' keys", client.get(start.to_vec(), Some(opts))).await?;
        let more = keys.more();
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for kv in keys.kvs() {
            let mut o = GetOptions::new();
            if rev > 0 {
                o = o.with_revision(rev);
            }
            match self.deadline("reading one pin", client.get(kv.key().to_vec(), Some(o))).await {
                Ok(r) => out.extend(r.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec()))),
                Err(e) => {
                    self.metrics.reject("oversized");
                    warn!(key = %String::from_utf8_lossy(kv.key()), error = format!("{e:#}"), "fleet: pin unreadable; skipped (what is held for it stays)");
                    skipped.push(kv.key().to_vec());
                }
            }
        }
        Ok((out, more, skipped))
    }
}
