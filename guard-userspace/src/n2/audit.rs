//! The N2 controller's audit lines (the JSON-lines trail of [`crate::audit`]): every
//! [`Response`] (`action` `n2_advise` / `n2_overload_start` / `n2_overload_update` /
//! `n2_overload_stop` / `n2_clear`, the whole payload in `detail`), every classification change
//! (`n2_classified`), and every failed hook call (`n2_hook_failed`).

use std::time::SystemTime;

use serde_json::Value;

use super::engine::{N2Transition, Response};
use crate::audit::{rfc3339, Actor, AuditError, AuditLog, AuditRecord};

/// The serde name of a unit variant (as the JSON and the labels spell it).
pub(super) fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The audit target of a response: its gNBs, else `n2`.
fn target(r: &Response) -> String {
    match &r.overload {
        Some(o) if !o.gnbs.is_empty() => format!("gnb:{}", o.gnbs.join(",")),
        _ => "n2".to_owned(),
    }
}

pub fn audit_response(log: &AuditLog, wall: SystemTime, r: &Response) -> Result<(), AuditError> {
    let mut detail = serde_json::to_value(r)?;
    let evidence = match &mut detail {
        Value::Object(m) => m.remove("evidence").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: format!("n2_{}", name(&r.action)),
        target: target(r),
        reason: r.reason.to_owned(),
        evidence,
        detail,
    })
}

pub fn audit_transition(log: &AuditLog, wall: SystemTime, t: &N2Transition) -> Result<(), AuditError> {
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: "n2_classified".to_owned(),
        target: "n2".to_owned(),
        reason: name(&t.to),
        evidence: serde_json::to_value(&t.evidence)?,
        detail: serde_json::json!({ "from": t.from, "to": t.to, "at_ns": t.at_ns }),
    })
}

pub fn audit_hook_failure(log: &AuditLog, wall: SystemTime, r: &Response, error: &str) -> Result<(), AuditError> {
    log.write(&AuditRecord {
        ts: rfc3339(wall),
        actor: Actor::Engine,
        action: "n2_hook_failed".to_owned(),
        target: target(r),
        reason: error.to_owned(),
        evidence: Value::Null,
        detail: serde_json::json!({ "seq": r.seq, "action": r.action, "level": r.level }),
    })
}
