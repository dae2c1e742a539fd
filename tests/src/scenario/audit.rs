//! Reading what a run left in the audit trail: timestamps, events, device targets.

use super::*;

/// Seconds since the epoch of an RFC 3339 UTC timestamp as the audit log writes it
/// (`2025-01-02T03:04:05.678Z`).
pub fn parse_rfc3339(ts: &str) -> Option<f64> {
    let b = ts.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |a: usize, z: usize| ts.get(a..z)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    let frac: f64 = match ts.get(19..)?.trim_end_matches('Z') {
        "" => 0.0,
        f => format!("0{f}").parse().ok()?,
    };
    // H. Hinnant's days_from_civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + frac)
}

/// Data-plane events of one kind in the audit log: how many, and the first one verbatim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventSummary {
    pub count: u64,
    pub first_t_s: f64,
    pub first: serde_json::Value,
    /// The devices the events named (`target`), each once.
    #[serde(default)]
    pub targets: BTreeSet<String>,
}

/// The audit log: the engine's (and operators') decisions line by line, and the data plane's
/// events (`"actor": "dataplane"`) summarised per reason, since a TEID scan produces one per
/// limited packet (tens of thousands) and each says the same thing.
pub fn read_audit(path: &Path, wall0: SystemTime) -> (Vec<AuditLine>, BTreeMap<String, EventSummary>) {
    let t0 = wall0.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut events: BTreeMap<String, EventSummary> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else { return (Vec::new(), events) };
    let mut lines = Vec::new();
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let t_s = v["ts"].as_str().and_then(parse_rfc3339).map(|t| t - t0).unwrap_or(f64::NAN);
        if v["actor"] == "dataplane" {
            let e = events.entry(s("reason")).or_insert_with(|| EventSummary {
                count: 0,
                first_t_s: t_s,
                first: v.clone(),
                targets: BTreeSet::new(),
            });
            e.count += 1;
            e.targets.insert(s("target"));
            continue;
        }
        let flags = v["detail"]["flags"].as_u64().unwrap_or(0);
        lines.push(AuditLine {
            t_s,
            action: s("action"),
            target: s("target"),
            reason: s("reason"),
            stage: v["detail"]["stage"].as_u64(),
            exempt: flags & u64::from(STAGE_FLAG_EXEMPT) != 0,
            refresh: v["detail"]["refresh"].as_bool().unwrap_or(false),
            raw: v,
        });
    }
    (lines, events)
}

/// The TEID of an audit target `teid:0x...` or `teid:0x...@localN` (an F-TEID).
pub fn teid_of_target(target: &str) -> Option<u32> {
    fteid_of_target(target).map(|(_, t)| t)
}

/// The local-address index and TEID of an audit target: `teid:0x...` (index 0) or
/// `teid:0x...@localN`.
pub fn fteid_of_target(target: &str) -> Option<(u32, u32)> {
    let rest = target.strip_prefix("teid:")?;
    let (teid, local) = match rest.split_once("@local") {
        Some((t, l)) => (t, l.parse().ok()?),
        None => (rest, 0),
    };
    Some((local, u32::from_str_radix(teid.trim_start_matches("0x"), 16).ok()?))
}
