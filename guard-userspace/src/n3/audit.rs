//! N3's audit lines: engine decisions, operator pins (by device key, or a gNB's cap, target
//! `cell:<addr>` as the engine's cell caps), and data-plane events, each
//! written through the shared trail ([`AuditLog::write`]).

use std::time::SystemTime;

use guard_common::abi::{ByteLimit, CellKey, DeviceKey, Event, Limit};
use serde_json::Value;

use crate::{
    audit::{rfc3339, Actor, AuditError, AuditLog, AuditRecord},
    n3::engine::{addr_str, device_key_str, Decision},
};

/// An operator's manual override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    Pin {
        key: DeviceKey,
        stage: u32,
        ttl_ns: u64,
        /// The stage's packet limit (unlimited for a quarantine) ...
        limit: Limit,
        /// ... and its byte rate (`--rate`; unlimited: packets only).
        bytes: ByteLimit,
    },
    Unpin {
        key: DeviceKey,
    },
    /// "Not an offender" for `ttl_ns`: held at stage 0, the engine keeps off it.
    Release {
        key: DeviceKey,
        ttl_ns: u64,
        /// Over a fleet pin, on this host alone (`--override-fleet`).
        override_fleet: bool,
    },
    /// A cap on one gNB's G-PDUs (`guard gnb pin`): a packet rate, a byte rate, or both.
    PinGnb {
        gnb: CellKey,
        ttl_ns: u64,
        limit: Limit,
        bytes: ByteLimit,
    },
    UnpinGnb {
        gnb: CellKey,
    },
}

impl OperatorAction {
    /// The audit record's `action` and `target` for this override (and for its failure,
    /// `AuditLog::record_failed`).
    pub fn name_target(&self) -> (&'static str, String) {
        match self {
            OperatorAction::Pin { key, .. } => ("pin", device_key_str(key)),
            OperatorAction::Unpin { key } => ("unpin", device_key_str(key)),
            OperatorAction::Release { key, .. } => ("release", device_key_str(key)),
            OperatorAction::PinGnb { gnb, .. } => ("pin_gnb", format!("cell:{}", addr_str(gnb))),
            OperatorAction::UnpinGnb { gnb } => ("unpin_gnb", format!("cell:{}", addr_str(gnb))),
        }
    }
}

/// The N3 records, written to an [`AuditLog`].
pub trait N3Audit {
    /// Record one engine decision.
    fn record(&self, now_wall: SystemTime, d: &Decision) -> Result<(), AuditError>;
    /// Record an operator's pin or unpin; `operator` is who (e.g. the peer uid of the control
    /// socket), `comment` their stated reason.
    fn record_operator(
        &self,
        now_wall: SystemTime,
        operator: &str,
        action: &OperatorAction,
        comment: &str,
    ) -> Result<(), AuditError>;
    /// Record a data-plane event (e.g. a spoofing or over-limit event worth keeping).
    fn record_event(&self, now_wall: SystemTime, ev: &Event) -> Result<(), AuditError>;
    /// Record a tick's spoof and new-device-limited events, bounded: the first
    /// [`AUDIT_EVENTS_PER_TICK`] (kind, device) pairs one line each, spoofs first, and the rest
    /// in one summary line (`reason` "summarised"): the events of pairs not written, by kind, and
    /// apart the repeats of pairs that were. Returns how many lines it wrote.
    fn record_tick_events(&self, now_wall: SystemTime, events: &[Event]) -> Result<usize, AuditError>;
}

/// The most spoof and new-device-limited events a tick writes one line each
/// ([`N3Audit::record_tick_events`]). They are one per packet (within the data plane's event
/// budget, 20,000 a second per CPU), and a spoofed-TEID flood costs nothing to send: written each,
/// they would fill the disk of the host the guard protects at megabytes a second. Bounded, a tick
/// writes at most this many plus one summary line, whatever the flood.
pub const AUDIT_EVENTS_PER_TICK: usize = 20;

impl N3Audit for AuditLog {
    fn record(&self, now_wall: SystemTime, d: &Decision) -> Result<(), AuditError> {
        let mut detail = serde_json::to_value(d)?;
        let mut evidence = Value::Null;
        if let Value::Object(m) = &mut detail {
            evidence = m.remove("evidence").unwrap_or(Value::Null);
            m.remove("action");
            m.remove("reason");
        }
        self.write(&AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Engine,
            action: d.action().to_owned(),
            target: d.target(),
            reason: d.reason().name().to_owned(),
            evidence,
            detail,
        })
    }

    fn record_operator(
        &self,
        now_wall: SystemTime,
        operator: &str,
        action: &OperatorAction,
        comment: &str,
    ) -> Result<(), AuditError> {
        // What a pin lets through, so the trail says what the operator asked for.
        let rates = |d: &mut Value, limit: &Limit, bytes: &ByteLimit| {
            if !limit.is_unlimited() {
                d["pps"] = limit.rate_per_sec().into();
                d["burst"] = limit.burst().into();
            }
            if !bytes.is_unlimited() {
                d["bit_rate"] = guard_common::units::BitRate(bytes.bits_per_sec()).to_string().into();
                d["burst_bytes"] = bytes.burst_bytes().into();
            }
        };
        let (name, target) = action.name_target();
        let detail = match action {
            OperatorAction::Pin { stage, ttl_ns, limit, bytes, .. } => {
                let mut d = serde_json::json!({ "operator": operator, "stage": stage, "ttl_ns": ttl_ns });
                rates(&mut d, limit, bytes);
                d
            }
            OperatorAction::Unpin { .. } | OperatorAction::UnpinGnb { .. } => {
                serde_json::json!({ "operator": operator })
            }
            OperatorAction::Release { ttl_ns, override_fleet, .. } => serde_json::json!({
                "operator": operator, "stage": 0, "ttl_ns": ttl_ns, "override_fleet": override_fleet,
            }),
            OperatorAction::PinGnb { ttl_ns, limit, bytes, .. } => {
                let mut d = serde_json::json!({ "operator": operator, "ttl_ns": ttl_ns });
                // A gNB quarantine is a cap no G-PDU outlasts (`GNB_QUARANTINE`): say so, not
                // its rate of one packet per pin.
                if *limit == crate::n3::manual::GNB_QUARANTINE {
                    d["quarantine"] = true.into();
                } else {
                    rates(&mut d, limit, bytes);
                }
                d
            }
        };
        self.write(&AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Operator,
            action: name.to_owned(),
            target,
            reason: "operator".to_owned(),
            evidence: serde_json::json!({ "comment": comment }),
            detail,
        })
    }

    fn record_event(&self, now_wall: SystemTime, ev: &Event) -> Result<(), AuditError> {
        let kind = match ev.kind {
            guard_common::abi::EVENT_DEVICE_OVER_LIMIT => "device_over_limit",
            guard_common::abi::EVENT_NEW_DEVICE_LIMITED => "new_device_limited",
            guard_common::abi::EVENT_SPOOF => "spoof",
            guard_common::abi::EVENT_ECHO_LIMITED => "echo_limited",
            guard_common::abi::EVENT_ERR_IND_LIMITED => "err_ind_limited",
            _ => "unknown",
        };
        self.write(&AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Dataplane,
            action: "event".to_owned(),
            target: device_key_str(&ev.device),
            reason: kind.to_owned(),
            evidence: serde_json::json!({
                "packets": ev.packets, "bytes": ev.bytes, "over_limit": ev.over_limit, "stage": ev.stage,
            }),
            detail: serde_json::json!({ "cell": addr_str(&ev.cell), "ts_ns": ev.ts_ns }),
        })
    }

    fn record_tick_events(&self, now_wall: SystemTime, events: &[Event]) -> Result<usize, AuditError> {
        use guard_common::abi::{EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF};
        let mut written: Vec<(u32, DeviceKey)> = Vec::new();
        // Past the bound, by kind: events of (kind, device) pairs not written this tick. Apart
        // from them, repeats of a pair that was: those devices are in the trail already.
        let (mut spoof, mut new_device, mut repeats) = (0u64, 0u64, 0u64);
        // Spoofs first: each names a device that was admitted (its own counters, its binding),
        // where a new-device-limited event names any TEID a scan makes up, so a scan cannot
        // push the spoofers out of the trail.
        let spoofs = events.iter().filter(|e| e.kind == EVENT_SPOOF);
        for ev in spoofs.chain(events.iter().filter(|e| e.kind == EVENT_NEW_DEVICE_LIMITED)) {
            let pair = (ev.kind, ev.device);
            if written.contains(&pair) {
                repeats += 1;
            } else if written.len() < AUDIT_EVENTS_PER_TICK {
                self.record_event(now_wall, ev)?;
                written.push(pair);
            } else if ev.kind == EVENT_SPOOF {
                spoof += 1;
            } else {
                new_device += 1;
            }
        }
        if spoof + new_device + repeats == 0 {
            return Ok(written.len());
        }
        self.write(&AuditRecord {
            ts: rfc3339(now_wall),
            actor: Actor::Dataplane,
            action: "event".to_owned(),
            target: "*".to_owned(),
            reason: "summarised".to_owned(),
            evidence: serde_json::json!({
                "spoof": spoof, "new_device_limited": new_device, "repeats_of_written": repeats,
            }),
            detail: serde_json::json!({ "written_this_tick": written.len(), "bound": AUDIT_EVENTS_PER_TICK }),
        })?;
        Ok(written.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::{Path, PathBuf},
        time::{Duration, UNIX_EPOCH},
    };

    use super::*;
    use crate::{
        audit::read_audit,
        n3::engine::{Evidence, Reason},
    };

    /// A path in a fresh directory (its `sub/` not created yet), the directory removed when the
    /// returned guard drops, also when the test panics.
    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new().prefix(&format!("guard-audit-n3-{name}-")).tempdir().expect("a temp dir");
        let path = dir.path().join("sub").join("audit.jsonl");
        (dir, path)
    }

    /// A spoofed-TEID flood's tick: thousands of events, a bounded number of lines. Repeats of a
    /// (kind, device) already written and everything past the bound are counted in one summary.
    #[test]
    fn a_ticks_flood_of_signal_events_writes_a_bounded_number_of_lines() {
        use guard_common::abi::{CellKey, EVENT_DEVICE_OVER_LIMIT, EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF};
        let (_dir, path) = temp_path("bound");
        let log = AuditLog::open(&path).expect("open");
        let ev = |kind: u32, teid: u32| Event {
            ts_ns: 1,
            kind,
            stage: 0,
            device: DeviceKey::teid(teid),
            cell: CellKey::default(),
            packets: 0,
            bytes: 0,
            over_limit: 0,
        };
        let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // A quiet tick: a spoof twice from one device (one line), one new device: two lines.
        let quiet =
            [ev(EVENT_SPOOF, 7), ev(EVENT_SPOOF, 7), ev(EVENT_NEW_DEVICE_LIMITED, 8), ev(EVENT_DEVICE_OVER_LIMIT, 9)];
        assert_eq!(log.record_tick_events(when, &quiet).expect("write"), 3);
        // A flood: 10,000 scanned TEIDs, then 100 spoofs from three devices: the spoofers are
        // written first, the scan fills the rest.
        let mut flood: Vec<Event> = (0..10_000).map(|t| ev(EVENT_NEW_DEVICE_LIMITED, 0x1_0000 + t)).collect();
        flood.extend((0..100).map(|i| ev(EVENT_SPOOF, 7 + i % 3)));
        assert_eq!(log.record_tick_events(when, &flood).expect("write"), AUDIT_EVENTS_PER_TICK + 1);
        log.sync().expect("fsync");
        let recs = read_audit(&path).expect("read back");
        assert_eq!(recs.len(), 3 + AUDIT_EVENTS_PER_TICK + 1);
        assert_eq!((recs[0]["reason"].as_str(), recs[0]["target"].as_str()), (Some("spoof"), Some("teid:0x00000007")));
        assert_eq!(recs[1]["reason"], "new_device_limited");
        assert_eq!(recs[2]["reason"], "summarised", "the quiet tick's repeat");
        assert_eq!(
            (&recs[2]["evidence"]["spoof"], &recs[2]["evidence"]["repeats_of_written"]),
            (&serde_json::json!(0), &serde_json::json!(1)),
            "a repeat of a written spoofer is not an unwritten spoof"
        );
        let targets: Vec<_> = recs[3..6].iter().map(|r| (r["reason"].clone(), r["target"].clone())).collect();
        assert_eq!(
            targets,
            [7, 8, 9].map(|t| (serde_json::json!("spoof"), serde_json::json!(format!("teid:0x{t:08x}"))))
        );
        let last = &recs[recs.len() - 1];
        assert_eq!((last["actor"].as_str(), last["reason"].as_str()), (Some("dataplane"), Some("summarised")));
        assert_eq!(last["evidence"]["new_device_limited"], 10_000 - (AUDIT_EVENTS_PER_TICK as u64 - 3));
        assert_eq!(last["evidence"]["spoof"], 0, "all three spoofers were written");
        assert_eq!(last["evidence"]["repeats_of_written"], 97);
    }

    #[test]
    fn a_gnb_quarantine_is_audited_as_one_and_a_failure_after_its_record_as_one() {
        let (_dir, path) = temp_path("gnb");
        let log = AuditLog::open(&path).expect("open");
        let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let gnb = guard_common::abi::L3Addr::v4([192, 0, 2, 10]);
        let q = OperatorAction::PinGnb {
            gnb,
            ttl_ns: 1,
            limit: crate::n3::manual::GNB_QUARANTINE,
            bytes: ByteLimit::UNLIMITED,
        };
        log.record_operator(when, "uid:0", &q, "rogue gNB").expect("write");
        let (name, target) = q.name_target();
        let r: Result<(), String> = log.then(name, &target, || Err("the cap map is full".to_owned()));
        assert!(r.is_err(), "the action's own error reaches the caller");
        let recs = read_audit(&path).expect("read back");
        assert_eq!(recs[0]["detail"]["quarantine"], true, "{}", recs[0]);
        assert!(recs[0]["detail"].get("pps").is_none(), "not a rate of one packet: {}", recs[0]);
        assert_eq!((recs[1]["action"].as_str(), recs[1]["reason"].as_str()), (Some("pin_gnb"), Some("failed")));
        assert_eq!(recs[1]["target"], recs[0]["target"]);
        assert_eq!(recs[1]["detail"]["error"], "the cap map is full");
    }

    #[test]
    fn decisions_and_operator_actions_are_one_line_each_with_reason_and_evidence() {
        let (_dir, path) = temp_path("lines");
        let log = AuditLog::open(&path).expect("open creates the directory");
        let key = DeviceKey::teid(0x1234);
        let d = Decision::SetDeviceStage {
            key,
            stage: 1,
            flags: 0,
            group: 0,
            limit: Limit::per_second(100, 200),
            bytes: guard_common::abi::ByteLimit::UNLIMITED,
            ttl_ns: 60_000_000_000,
            refresh: false,
            reason: Reason::Flood,
            evidence: Evidence { rate_pps: Some(2000.0), ratio: Some(200.0), ..Evidence::default() },
        };
        let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        log.record(when, &d).expect("write");
        let pin = OperatorAction::Pin {
            key,
            stage: 1,
            ttl_ns: 1,
            limit: Limit::per_second(100, 200),
            bytes: ByteLimit::bits_per_second(5_000_000, 62_500),
        };
        log.record_operator(when, "uid:0", &pin, "lab test").expect("write");
        log.record_operator(when, "uid:0", &OperatorAction::Unpin { key }, "done").expect("write");
        log.sync().expect("fsync");
        drop(log);
        // Reopening appends.
        let log = AuditLog::open(&path).expect("reopen");
        log.record(when, &Decision::ReleaseDevice { key, reason: Reason::Quiet, evidence: Evidence::default() })
            .expect("write");

        let recs = read_audit(&path).expect("read back");
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0]["ts"], "2023-11-14T22:13:20.000Z");
        assert_eq!(recs[0]["actor"], "engine");
        assert_eq!(recs[0]["action"], "set_device_stage");
        assert_eq!(recs[0]["target"], "teid:0x00001234");
        assert_eq!(recs[0]["reason"], "flood");
        assert_eq!(recs[0]["evidence"]["ratio"], 200.0);
        assert_eq!(recs[0]["detail"]["stage"], 1);
        assert_eq!(recs[1]["actor"], "operator");
        assert_eq!(recs[1]["action"], "pin");
        assert_eq!(recs[1]["detail"]["stage"], 1);
        // What the pin lets through is in the trail (`guard device pin --pps --rate`).
        assert_eq!(recs[1]["detail"]["pps"], 100);
        assert_eq!(recs[1]["detail"]["burst"], 200);
        assert_eq!(recs[1]["detail"]["bit_rate"], guard_common::units::BitRate(5_000_000).to_string());
        assert_eq!(recs[1]["detail"]["burst_bytes"], 62_500);
        assert_eq!(recs[2]["action"], "unpin");
        assert_eq!(recs[3]["action"], "release_device");
        assert_eq!(recs[3]["reason"], "quiet");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 4, "one line per record");
        let _ = std::fs::remove_dir_all(path.parent().and_then(Path::parent).unwrap_or(&path));
    }

    #[test]
    fn a_gnb_cap_from_the_fleet_sums_is_marked_in_its_line_with_the_members() {
        let (_dir, path) = temp_path("fleet-cap");
        let log = AuditLog::open(&path).expect("open");
        let fleet = crate::n3::engine::FleetEvidence {
            members: vec!["upf-b".into()],
            local_demand_pps: 30_000.0,
            local_offenders: 300,
            others_demand_pps: 30_000.0,
            others_offenders: 300,
            share: 0.5,
        };
        let cap = |fleet| Decision::SetCellCap {
            cell: guard_common::abi::L3Addr::v4([192, 0, 2, 1]),
            limit: Limit::per_second(25_000, 5_000),
            bytes: ByteLimit::UNLIMITED,
            ttl_ns: 60_000_000_000,
            refresh: false,
            reason: Reason::CellOverload,
            evidence: Evidence { demand_pps: Some(60_000.0), offenders: Some(600), fleet, ..Evidence::default() },
        };
        let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        log.record(when, &cap(Some(fleet))).expect("write");
        log.record(when, &cap(None)).expect("write");
        let recs = read_audit(&path).expect("read back");
        assert_eq!(recs[0]["action"], "set_cell_cap");
        assert_eq!(recs[0]["evidence"]["fleet"]["members"], serde_json::json!(["upf-b"]));
        assert_eq!(recs[0]["evidence"]["fleet"]["share"], 0.5);
        assert_eq!(recs[0]["evidence"]["demand_pps"], 60_000.0, "the fleet's demand, beside whose it is");
        assert!(recs[1]["evidence"].get("fleet").is_none(), "a local cap's line is unchanged: {}", recs[1]);
    }
}
