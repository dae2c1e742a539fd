//! Fleet pins into this host's data plane. Device pins are written exactly as `guard device pin`
//! writes them ([`crate::n3::manual`]: the same key, a `STAGE_FLAG_MANUAL` entry the controller never
//! overrides), gNB pins as a manual cap in `N3_CELL_STAGES`. Each application, refusal and removal
//! is audited with the pin's author.
//!
//! A UE pin on a data plane keyed by TEID (`key_mode = "teid"`) has no entry keyed by UE address
//! to stage: it is resolved through anti-spoofing's learned bindings ([`crate::n3::bound`]) to the
//! F-TEIDs bound to the UE here, now (a walk of the device map when the pin arrives) and later
//! (each device the N3 controller's walk finds bound to it, [`Applier::reach`]). Each F-TEID
//! reached is staged as a UE would be, with the pin's expiry, and audited with the pin's author;
//! F-TEIDs never leave this host. Where no binding is learned (anti-spoofing `off`) the pin is not
//! applied, and the member says so (log, audit, `overload_guard_fleet_pins_not_applied`) instead
//! of claiming it applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use guard_common::abi::{
    ByteLimit, CellKey, CellStageEntry, DeviceKey, Limit, StageEntry, KEY_MODE_UE_ADDR, STAGE_FLAG_MANUAL,
    STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT,
};
use guard_common::units::BitRate;
use serde_json::json;
use tracing::{info, warn};

use super::pins::{PinStage, PinTarget, PinValue};
use super::status::{FleetMetrics, FleetStatus};
use super::unix_ms;
use crate::audit::{rfc3339, Actor, AuditLog, AuditRecord};
use crate::clock::monotonic_ns;
use crate::config::{LadderSection, Rate};
use crate::n2::fleet_link::BackoffExchange;
use crate::n3::manual::{
    fleet_entry, is_fleet_cell, is_fleet_entry, manual_cell_entry, pin_byte_limit, CELL_FLAG_FLEET, GNB_QUARANTINE,
};
use crate::n3::maps::N3Maps;

mod restore;
mod teids;
use crate::n3::bound::BoundPins;
pub use teids::resolvable;
use teids::{teid_list, teid_words, PENDING, THROUGH_BINDINGS};

/// What this member wrote for one pin (so that it removes only its own entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Device entries, each with the `set_ns` it was written with.
    Devices(Vec<(DeviceKey, u64)>),
    /// A UE pin on a member keyed by TEID: the F-TEID entries reached through their learned
    /// bindings, each with its `set_ns` and the UE key its binding named ([`crate::n3::bound`]).
    Teids(Vec<(DeviceKey, u64, DeviceKey)>),
    Gnb(CellKey, u64),
    /// A 5G-S-TMSI pin handed to the N2 controller's back-off list (its key below `pins/`).
    N2Backoff(String),
    /// Not applied here, and why.
    NotApplied(String),
}

#[derive(Debug, Clone)]
struct Held {
    target: PinTarget,
    value: PinValue,
    written: Written,
}

/// The fleet pins held in this data plane, by key below `pins/`.
pub struct Applier {
    maps: N3Maps,
    ladder: LadderSection,
    audit: Arc<AuditLog>,
    member: String,
    held: BTreeMap<String, Held>,
    metrics: FleetMetrics,
    status: Arc<FleetStatus>,
    /// The N2 controller's back-off mailbox (5G-S-TMSI pins); None: no N2 controller here.
    backoff: Option<Arc<BackoffExchange>>,
    /// UE pins resolved through bindings, shared with the N3 controller (which finds the devices
    /// that bind later).
    bound: Arc<BoundPins>,
}

impl Applier {
    pub fn new(
        maps: N3Maps,
        ladder: LadderSection,
        audit: Arc<AuditLog>,
        member: String,
        metrics: FleetMetrics,
        status: Arc<FleetStatus>,
    ) -> Applier {
        Applier {
            maps,
            ladder,
            audit,
            member,
            held: BTreeMap::new(),
            metrics,
            status,
            backoff: None,
            bound: Arc::new(BoundPins::new()),
        }
    }

    /// The mailbox the N3 controller offers its walk to (UE pins on a member keyed by TEID).
    pub fn with_bound(mut self, x: Arc<BoundPins>) -> Applier {
        self.bound = x;
        self
    }

    /// 5G-S-TMSI pins go to this N2 controller's back-off list (fleet mode with N2).
    pub fn with_n2_backoff(mut self, x: Option<Arc<BackoffExchange>>) -> Applier {
        self.backoff = x;
        self
    }

    /// What is held, by key below `pins/` (tests, `guard status`).
    pub fn held(&self) -> Vec<(String, Written)> {
        self.held.iter().map(|(k, h)| (k.clone(), h.written.clone())).collect()
    }

    /// Pins held (applied or not), for the `max_keys` bound.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn holds(&self, suffix: &str) -> bool {
        self.held.contains_key(suffix)
    }

    /// Apply `value` for `target` (a new pin or a changed one). The same value again changes nothing.
    pub fn upsert(&mut self, target: PinTarget, value: PinValue, now_wall: SystemTime) {
        let suffix = target.suffix();
        // The same value again changes nothing, unless it could not be applied: then it is tried
        // again (at each listing: a failure that passed, or a SIGHUP that made it applicable) and
        // said again only once it applies.
        let retry = match self.held.get(&suffix) {
            Some(h) if h.value == value => match h.written {
                Written::NotApplied(_) => true,
                _ => return,
            },
            _ => false,
        };
        let now_ms = unix_ms(now_wall);
        let Some(remaining_ms) = value.remaining_ms(now_ms) else {
            // Expired already (its lease is about to delete it): nothing to apply.
            self.remove(&suffix, "expired", now_wall);
            return;
        };
        let written = self.write(&target, &value, remaining_ms.saturating_mul(1_000_000));
        if retry && matches!(written, Written::NotApplied(_)) {
            return;
        }
        if !matches!(written, Written::Teids(_)) {
            self.bound.remove(&suffix);
        }
        // Entries of the previous value that the new one did not rewrite (same target: only when
        // the member's key mode or device prefix changed in between).
        if let Some(old) = self.held.remove(&suffix) {
            self.clear(&old.written, Some(&written));
        }
        let (action, level_ok) = match &written {
            Written::NotApplied(_) => ("fleet-pin-not-applied", false),
            _ => ("fleet-pin", true),
        };
        let (devices, why) = match &written {
            Written::Devices(d) => (d.len(), None),
            Written::Teids(d) => (d.len(), None),
            Written::Gnb(..) | Written::N2Backoff(_) => (1, None),
            Written::NotApplied(w) => (0, Some(w.clone())),
        };
        if level_ok {
            let delay = now_ms.saturating_sub(value.created_unix_ms) as f64 / 1e3;
            self.metrics.last_apply_delay.set(delay);
            let bytes = byte_limit(&self.ladder, &target, &value).ok().filter(|b| !b.is_unlimited());
            info!(
                pin = target.describe(),
                stage = value.stage.name(),
                bit_rate = bytes.map_or("none".to_owned(), |b| BitRate(b.bits_per_sec()).to_string()),
                entries = devices,
                teids = teid_words(&written),
                author = value.author,
                expires_in_s = remaining_ms / 1000,
                delay_s = delay,
                "fleet pin applied"
            );
        } else {
            warn!(
                pin = target.describe(),
                stage = value.stage.name(),
                author = value.author,
                reason = why.as_deref().unwrap_or(""),
                "fleet pin NOT applied on this member"
            );
        }
        let mut extra = json!({ "entries": devices, "not_applied": why });
        if let (Written::Teids(t), Some(x)) = (&written, extra.as_object_mut()) {
            x.insert("teids".into(), teid_list(t));
            x.insert("through".into(), THROUGH_BINDINGS.into());
            if t.is_empty() {
                x.insert("pending".into(), PENDING.into());
            }
        }
        self.audit_line(action, &target, &value, "operator", extra, now_wall);
        self.held.insert(suffix, Held { target, value, written });
        self.publish();
    }

    /// The pin at `suffix` is gone (`why`: deleted, expired, gone from etcd): remove what this
    /// member wrote for it, unless someone wrote over it since.
    pub fn remove(&mut self, suffix: &str, why: &str, now_wall: SystemTime) {
        self.bound.remove(suffix);
        let Some(h) = self.held.remove(suffix) else { return };
        let cleared = self.clear(&h.written, None);
        info!(pin = h.target.describe(), author = h.value.author, why, entries_cleared = cleared, "fleet pin removed");
        self.audit_line("fleet-unpin", &h.target, &h.value, why, json!({ "entries_cleared": cleared }), now_wall);
        self.publish();
    }

    /// Make what is held match `desired` (a full listing of etcd). `unread`: keys the listing
    /// saw but could not read; what is held for them stays (they are not gone from etcd).
    pub fn reconcile(
        &mut self,
        desired: BTreeMap<String, (PinTarget, PinValue)>,
        unread: &std::collections::BTreeSet<String>,
        now_wall: SystemTime,
    ) {
        let gone: Vec<String> =
            self.held.keys().filter(|k| !desired.contains_key(*k) && !unread.contains(*k)).cloned().collect();
        for k in gone {
            self.remove(&k, "gone from etcd", now_wall);
        }
        for (_, (t, v)) in desired {
            self.upsert(t, v, now_wall);
        }
    }

    /// Clear fleet entries in the maps that no held pin wrote: left by an earlier run of this
    /// member for pins deleted while it was down (a running member removes its own at once).
    /// Called after each full listing, when `held` is etcd's view.
    pub fn sweep_orphans(&mut self, now_wall: SystemTime) {
        let mut ours_dev = std::collections::HashSet::new();
        let mut ours_cell = std::collections::HashSet::new();
        for h in self.held.values() {
            match &h.written {
                Written::Devices(d) => ours_dev.extend(d.iter().map(|(k, set)| (*k, *set))),
                Written::Teids(d) => ours_dev.extend(d.iter().map(|(k, set, _)| (*k, *set))),
                Written::Gnb(k, set) => {
                    ours_cell.insert((*k, *set));
                }
                Written::N2Backoff(_) | Written::NotApplied(_) => {}
            }
        }
        let mut cleared = 0usize;
        for (k, e) in self.maps.stages() {
            if is_fleet_entry(&e) && !ours_dev.contains(&(k, e.set_ns)) && self.maps.clear_stage(&k).unwrap_or(false) {
                cleared += 1;
            }
        }
        for (k, e) in self.maps.cell_stages() {
            if is_fleet_cell(&e)
                && !ours_cell.contains(&(k, e.set_ns))
                && self.maps.clear_cell_stage(&k).unwrap_or(false)
            {
                cleared += 1;
            }
        }
        if cleared == 0 {
            return;
        }
        info!(
            entries = cleared,
            "fleet: cleared entries of pins no longer in etcd (written before this member restarted)"
        );
        let rec = AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Fleet,
            action: "fleet-unpin".to_owned(),
            target: format!("{cleared} entries"),
            reason: "no longer in etcd (written before this member restarted)".to_owned(),
            evidence: serde_json::Value::Null,
            detail: json!({ "member": self.member, "entries_cleared": cleared }),
        };
        if let Err(e) = self.audit.write(&rec) {
            warn!(error = %e, "audit line for cleared fleet entries not written");
        }
    }

    /// Drop pins past their expiry. Their data-plane entries expire by themselves at the same
    /// time; this keeps the bookkeeping (and the metrics) honest while etcd is unreachable.
    pub fn expire(&mut self, now_wall: SystemTime) {
        let now_ms = unix_ms(now_wall);
        let due: Vec<String> =
            self.held.iter().filter(|(_, h)| h.value.remaining_ms(now_ms).is_none()).map(|(k, _)| k.clone()).collect();
        for k in due {
            self.remove(&k, "expired", now_wall);
        }
    }

    fn write(&mut self, target: &PinTarget, value: &PinValue, ttl_ns: u64) -> Written {
        let now = monotonic_ns();
        if let PinTarget::Tmsi(k) = target {
            // On N2 the pin is the hook's back-off, never a drop (DESIGN §2): the controller lists
            // the device at its next tick, until the pin's expiry.
            let Some(x) = &self.backoff else {
                return Written::NotApplied(
                    "no N2 controller with fleet.backoff on this member: a 5G-S-TMSI pin is answered by an \
                     AMF-side guard's hook"
                        .to_owned(),
                );
            };
            let suffix = target.suffix();
            let expires = std::time::Instant::now() + std::time::Duration::from_nanos(ttl_ns);
            x.set_pin(&suffix, *k, expires, &value.author);
            return Written::N2Backoff(suffix);
        }
        let bytes = match byte_limit(&self.ladder, target, value) {
            Ok(b) => b,
            Err(e) => return Written::NotApplied(e),
        };
        if let PinTarget::Gnb(a) = target {
            let limit = match value.stage {
                PinStage::Quarantine => GNB_QUARANTINE,
                // `check` made pps or rate_bps present for a gNB; a second's worth is the burst by
                // default, as `guard gnb pin --pps` has it.
                _ => {
                    let pps = value.pps.unwrap_or(0);
                    Limit::per_second(pps, value.burst.unwrap_or(pps))
                }
            };
            let key = crate::n3::local::l3_of(*a);
            let mut entry = CellStageEntry { bytes, ..manual_cell_entry(limit, now, ttl_ns) };
            entry.flags |= CELL_FLAG_FLEET;
            return match self.maps.set_cell_stage(&key, &entry) {
                Ok(()) => Written::Gnb(key, entry.set_ns),
                Err(e) => Written::NotApplied(format!("writing the gNB cap failed: {e}")),
            };
        }
        let dp = match self.maps.config() {
            Ok(dp) => dp,
            Err(e) => return Written::NotApplied(format!("reading the data plane's configuration failed: {e}")),
        };
        // The UE keys the target names (as `key_mode = "ue_addr"` keys them).
        let keys = match target.device_keys(dp.antispoof_v6_prefix) {
            Ok(k) => k,
            Err(e) => return Written::NotApplied(e),
        };
        let entry = match device_entry(&self.ladder, value, bytes, now, ttl_ns) {
            Ok(e) => e,
            Err(e) => return Written::NotApplied(e),
        };
        if dp.key_mode != KEY_MODE_UE_ADDR {
            return self.write_bound(target, &entry, &dp, keys);
        }
        let mut done = Vec::with_capacity(keys.len());
        for k in keys {
            match self.maps.set_stage(&k, &entry) {
                Ok(()) => done.push((k, entry.set_ns)),
                Err(e) => {
                    // The stage map is full or gone: undo, and say it was not applied.
                    self.clear(&Written::Devices(done), None);
                    return Written::NotApplied(format!("writing the device stage failed: {e}"));
                }
            }
        }
        Written::Devices(done)
    }

    /// Clear the entries of `w` still as this member wrote them (manual, same `set_ns`), except
    /// those `keep` rewrote. Returns how many were cleared.
    fn clear(&mut self, w: &Written, keep: Option<&Written>) -> usize {
        let kept_dev = |k: &DeviceKey| match keep {
            Some(Written::Devices(d)) => d.iter().any(|(x, _)| x == k),
            Some(Written::Teids(d)) => d.iter().any(|(x, ..)| x == k),
            _ => false,
        };
        let mut n = 0;
        match w {
            Written::Devices(_) | Written::Teids(_) => {
                let d: Vec<(DeviceKey, u64)> = match w {
                    Written::Devices(d) => d.clone(),
                    Written::Teids(d) => d.iter().map(|(k, set, _)| (*k, *set)).collect(),
                    _ => Vec::new(),
                };
                for (k, set) in &d {
                    if kept_dev(k) {
                        continue;
                    }
                    let ours = matches!(self.maps.stage(k), Ok(Some(e)) if e.flags & STAGE_FLAG_MANUAL != 0 && e.set_ns == *set);
                    if ours && self.maps.clear_stage(k).unwrap_or(false) {
                        n += 1;
                    }
                }
            }
            Written::Gnb(k, set) => {
                let kept = matches!(keep, Some(Written::Gnb(x, _)) if x == k);
                let ours = matches!(self.maps.cell_stage(k), Ok(Some(e)) if e.flags & STAGE_FLAG_MANUAL != 0 && e.set_ns == *set);
                if !kept && ours && self.maps.clear_cell_stage(k).unwrap_or(false) {
                    n += 1;
                }
            }
            Written::N2Backoff(suffix) => {
                let kept = matches!(keep, Some(Written::N2Backoff(x)) if x == suffix);
                if let (false, Some(x)) = (kept, &self.backoff) {
                    x.remove_pin(suffix);
                    n += 1;
                }
            }
            Written::NotApplied(_) => {}
        }
        n
    }

    fn audit_line(
        &self,
        action: &str,
        target: &PinTarget,
        value: &PinValue,
        reason: &str,
        extra: serde_json::Value,
        now_wall: SystemTime,
    ) {
        let mut detail = json!({
            "author": value.author,
            "member": self.member,
            "stage": value.stage.name(),
            "pps": value.pps,
            "burst": value.burst,
            "created_unix_ms": value.created_unix_ms,
            "expires_unix_ms": value.expires_unix_ms,
        });
        // The byte rate this member applies (or applied), in the words of the local pins' lines
        // (`n3::audit`): the pin's own rate or this member's ladder default.
        if let Ok(b) = byte_limit(&self.ladder, target, value).map(|b| (!b.is_unlimited()).then_some(b)) {
            if let (Some(d), Some(b)) = (detail.as_object_mut(), b) {
                d.insert("bit_rate".into(), BitRate(b.bits_per_sec()).to_string().into());
                d.insert("burst_bytes".into(), b.burst_bytes().into());
            }
        }
        if let (Some(d), serde_json::Value::Object(x)) = (detail.as_object_mut(), extra) {
            d.extend(x);
        }
        let rec = AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Fleet,
            action: action.to_owned(),
            target: target.describe(),
            reason: reason.to_owned(),
            evidence: json!({ "comment": value.comment }),
            detail,
        };
        if let Err(e) = self.audit.write(&rec) {
            // The pin stays applied: the data plane must match etcd; the hole is counted.
            warn!(error = %e, pin = target.describe(), "audit line for a fleet pin not written");
        }
    }

    fn publish(&self) {
        let not = self.held.values().filter(|h| matches!(h.written, Written::NotApplied(_))).count();
        let applied = self.held.len() - not;
        let teids: usize =
            self.held.values().map(|h| if let Written::Teids(d) = &h.written { d.len() } else { 0 }).sum();
        self.metrics.pin_teids.set(teids as i64);
        self.metrics.pins_applied.set(applied as i64);
        self.metrics.pins_not_applied.set(not as i64);
        self.status.pins(applied, not);
    }
}

/// A UE pin's device entry on this member: its stage, its packet rate (or this member's ladder's)
/// and `bytes`, for `ttl_ns` from `now`.
fn device_entry(
    ladder: &LadderSection,
    value: &PinValue,
    bytes: ByteLimit,
    now: u64,
    ttl_ns: u64,
) -> Result<StageEntry, String> {
    let (stage, limit) = match value.stage {
        PinStage::Quarantine => (STAGE_QUARANTINE, Limit::UNLIMITED),
        PinStage::Shape => {
            let d = &ladder.shape;
            (STAGE_SHAPE, Limit::per_second(value.pps.unwrap_or(d.rate_pps), value.burst.unwrap_or(d.burst)))
        }
        PinStage::Strict => {
            let d = &ladder.strict;
            (STAGE_STRICT, Limit::per_second(value.pps.unwrap_or(d.rate_pps), value.burst.unwrap_or(d.burst)))
        }
        // `PinValue::check` allows it on a 5G-S-TMSI only, handled above.
        PinStage::Backoff => return Err("backoff is a 5G-S-TMSI pin's stage".to_owned()),
    };
    Ok(StageEntry { bytes, ..fleet_entry(stage, limit, now, ttl_ns) })
}

/// The byte limit a pin sets on this member, through the local pins' rules
/// ([`pin_byte_limit`]): the pin's `rate_bps`/`burst_bytes`, or, where absent, this member's
/// ladder for a device's shape/strict (as `guard device pin` without `--rate`) and none for a
/// gNB (as `guard gnb pin`). A quarantine, a back-off: none.
pub fn byte_limit(ladder: &LadderSection, target: &PinTarget, value: &PinValue) -> Result<ByteLimit, String> {
    let (rate, burst) = match (target, value.stage) {
        (_, PinStage::Quarantine | PinStage::Backoff) | (PinTarget::Tmsi(_), _) => return Ok(ByteLimit::UNLIMITED),
        (PinTarget::Gnb(_), _) => (Rate::NONE, 0),
        (_, PinStage::Shape) => (ladder.shape.rate, ladder.shape.burst_bytes),
        (_, PinStage::Strict) => (ladder.strict.rate, ladder.strict.burst_bytes),
    };
    let asked = value.rate_bps.map(|b| Rate(BitRate(b)));
    pin_byte_limit(asked, value.burst_bytes, rate, burst).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::pins::VALUE_VERSION;

    fn pin(stage: PinStage, rate_bps: Option<u64>, burst_bytes: Option<u64>) -> PinValue {
        PinValue {
            v: VALUE_VERSION,
            stage,
            pps: None,
            burst: None,
            rate_bps,
            burst_bytes,
            author: "a".into(),
            comment: "c".into(),
            created_unix_ms: 1,
            expires_unix_ms: 2,
        }
    }

    #[test]
    fn a_pin_reaches_at_most_15_sessions_of_each_device_a_pin_may_name() {
        assert_eq!(crate::n3::bound::MAX_TEIDS_PER_PIN as u64, 15 * crate::fleet::pins::MAX_PREFIX_DEVICES);
    }

    #[test]
    fn a_ue_pins_entry_is_the_local_pins_with_the_fleet_mark() {
        let ladder = LadderSection::default();
        let e = device_entry(&ladder, &pin(PinStage::Quarantine, None, None), ByteLimit::UNLIMITED, 10, 5)
            .expect("an entry");
        assert_eq!((e.stage, e.expires_ns, e.set_ns), (STAGE_QUARANTINE, 15, 10));
        assert!(crate::n3::manual::is_fleet_entry(&e));
        let e = device_entry(&ladder, &pin(PinStage::Strict, None, None), ByteLimit::UNLIMITED, 0, 1).expect("entry");
        assert_eq!(e.stage, STAGE_STRICT);
        assert_eq!(
            (e.interval_ns, e.tau_ns),
            {
                let l = Limit::per_second(ladder.strict.rate_pps, ladder.strict.burst);
                (l.interval_ns, l.tau_ns)
            },
            "the member's own ladder rate when the pin names none"
        );
        assert!(device_entry(&ladder, &pin(PinStage::Backoff, None, None), ByteLimit::UNLIMITED, 0, 1).is_err());
    }

    #[test]
    fn a_pins_byte_rate_is_applied_as_the_local_pins_with_this_members_ladder_for_what_it_omits() {
        let mut ladder = LadderSection::default();
        ladder.shape.rate = "2Mbit/s".parse().expect("a rate");
        ladder.shape.burst_bytes = 0;
        let ue = PinTarget::Ue("10.45.0.7".parse().expect("address"));
        let gnb = PinTarget::Gnb("192.0.2.10".parse().expect("address"));
        let got = |t: &PinTarget, v: PinValue| byte_limit(&ladder, t, &v).expect("valid");
        // The pin's own rate and burst, as `guard device pin --rate 5Mbit/s --burst-bytes 3000`.
        let asked = pin(PinStage::Shape, Some(5_000_000), Some(3000));
        assert_eq!(got(&ue, asked.clone()), ByteLimit::bits_per_second(5_000_000, 3000));
        assert_eq!(got(&gnb, asked), ByteLimit::bits_per_second(5_000_000, 3000));
        // Omitted: a device takes this member's ladder (one second of burst for 0), a gNB none.
        assert_eq!(got(&ue, pin(PinStage::Shape, None, None)), ByteLimit::bits_per_second(2_000_000, 250_000));
        assert!(got(&gnb, pin(PinStage::Shape, None, None)).is_unlimited());
        // 0: no byte rate, even where the ladder has one; a quarantine has none.
        assert!(got(&ue, pin(PinStage::Shape, Some(0), None)).is_unlimited());
        assert!(got(&ue, pin(PinStage::Quarantine, None, None)).is_unlimited());
    }
}
