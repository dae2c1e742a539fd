//! The checks of an N2 lab run, from what the lab knows (the ground truth of the traffic model)
//! against what the guard did (hook payloads, audit log) and what got past XDP (the capture).
//!
//! - Storm (T2): an OVERLOAD START recommendation (docs/n2.md §4.2, level 3) naming the storm's
//!   gNB and only it, barring the storm cell and only it, and listing the infected devices with
//!   the scenario's precision and recall; levels entered one at a time (T4).
//! - Flash crowd: the hot cells are seen and classified as a crowd, never as a storm, and no
//!   device is named in any response.
//! - INIT flood: every DATA chunk of the established associations arrives, the rogue's INITs are
//!   capped by its setup stage, and only the rogue is staged (DESIGN §2: only setup is shed).
//! - SUCI-only storm (issue 18): attributed by cell and pattern (`cell_pattern`); the cells the
//!   responses name (pattern back-off or barring) against the storm's true cells, with the
//!   scenario's precision and recall; no other cell ever barred, no gNB outside the storm sent an
//!   overload, no device listed (a SUCI-only attempt has no identity that lasts).

use std::collections::BTreeSet;

use serde_json::Value;

use super::ran::{Truth, TxKind};
use super::spec::{Kind, N2Scenario};
use super::{Check, Recorded, ResponseLine};

fn check(name: &str, pass: bool, detail: String) -> Check {
    Check { name: name.to_owned(), pass, detail }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn t_of(rec: &Recorded, v: &Value) -> f64 {
    v["at_ns"].as_u64().map(|a| a.saturating_sub(rec.start_ns) as f64 / 1e9).unwrap_or(f64::NAN)
}

/// The hook payloads as report lines.
pub fn responses(rec: &Recorded) -> Vec<ResponseLine> {
    rec.hook
        .iter()
        .map(|v| ResponseLine {
            t_s: t_of(rec, v),
            action: v["action"].as_str().unwrap_or("?").to_owned(),
            level: v["level"].as_u64().unwrap_or(0),
            reason: v["reason"].as_str().unwrap_or("").to_owned(),
            devices: v["devices"].as_array().map_or(0, Vec::len),
            gnbs: strs(&v["overload"]["gnbs"]),
            cells: v["access_barring"]
                .as_array()
                .map(|a| a.iter().filter_map(|b| b["cell"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            reduction_pct: v["overload"]["traffic_load_reduction_pct"].as_u64(),
            attribution: v["attribution"].as_str().unwrap_or("").to_owned(),
            pattern_cells: v["pattern"]
                .as_array()
                .map(|a| a.iter().filter_map(|b| b["cell"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        })
        .collect()
}

pub fn judge(s: &N2Scenario, truth: &Truth, rec: &Recorded) -> Vec<Check> {
    let mut out = Vec::new();
    if rec.hook.iter().any(|v| v["schema"] != "overload-guard/n2-response" || v["version"] != 1) {
        out.push(check("hook payloads are overload-guard/n2-response v1", false, "another schema".into()));
    }
    match s.kind() {
        Kind::Storm => storm(s, truth, rec, &mut out),
        Kind::Crowd => crowd(rec, &mut out),
        Kind::InitFlood => init_flood(s, truth, rec, &mut out),
        Kind::SuciStorm => suci_storm(s, truth, rec, &mut out),
    }
    out
}

fn storm(s: &N2Scenario, truth: &Truth, rec: &Recorded, out: &mut Vec<Check>) {
    let e = &s.expect;
    let start = rec.hook.iter().find(|v| v["action"] == "overload_start");
    let name = format!("OVERLOAD START recommended, from the storm's onset to {} s after it", e.overload_within_s);
    let Some(p) = start else {
        let levels: Vec<String> = rec.hook.iter().map(|v| format!("{}@{:.1}s", v["action"], t_of(rec, v))).collect();
        out.push(check(&name, false, format!("none; responses: {levels:?}")));
        return;
    };
    let after = t_of(rec, p) - truth.onset_s;
    out.push(check(
        &name,
        // Before the onset is not an answer to the storm (and a hook line from another clock would
        // read as negative).
        (0.0..=e.overload_within_s).contains(&after),
        format!("{after:.1} s after the storm's onset (from 0 to {} s)", e.overload_within_s),
    ));
    let gnbs = strs(&p["overload"]["gnbs"]);
    let want_gnb = truth.storm_gnb.clone().unwrap_or_default();
    out.push(check(
        "OVERLOAD START names the storm's gNB, and only it",
        gnbs == vec![want_gnb.clone()],
        format!("gnbs {gnbs:?}, expected [{want_gnb}]; reduction {}%", p["overload"]["traffic_load_reduction_pct"]),
    ));
    let cells: BTreeSet<String> = p["access_barring"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["cell"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let want_cell = truth.storm_cell.clone().unwrap_or_default();
    out.push(check(
        "barring names the storm's cell, and only it",
        cells.len() == 1 && cells.contains(&want_cell),
        format!("cells {cells:?}, expected {want_cell}"),
    ));
    let listed: BTreeSet<String> = p["devices"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let omitted = p["devices_omitted"].as_u64().unwrap_or(0);
    let hit = listed.intersection(&truth.infected).count() as f64;
    let precision = if listed.is_empty() { 0.0 } else { hit / listed.len() as f64 };
    let recall = if truth.infected.is_empty() { 0.0 } else { hit / truth.infected.len() as f64 };
    out.push(check(
        "offending devices: precision",
        precision >= e.min_precision,
        format!(
            "{precision:.3} ({hit} of {} listed are infected; {omitted} omitted; at least {})",
            listed.len(),
            e.min_precision
        ),
    ));
    out.push(check(
        "offending devices: recall",
        recall >= e.min_recall,
        format!("{recall:.3} ({hit} of {} infected listed; at least {})", truth.infected.len(), e.min_recall),
    ));
    // T4: levels one at a time up to the OVERLOAD START.
    let mut steps = Vec::new();
    let mut ok = true;
    for v in &rec.hook {
        let (l, pl) = (v["level"].as_u64().unwrap_or(0), v["previous_level"].as_u64().unwrap_or(0));
        if l != pl {
            steps.push(format!("{pl}→{l}@{:.1}s", t_of(rec, v)));
            ok &= l == pl + 1;
        }
        if v["action"] == "overload_start" {
            break;
        }
    }
    out.push(check("escalated one level at a time", ok && steps.len() == 3, steps.join(", ")));
}

/// Cell-level precision and recall of a SUCI-only storm's attribution.
///
/// - *Named*: every cell any response names, in its pattern back-off or its barring.
/// - *Precision*: the share of named cells that are the storm's cells; *recall*: the share of the
///   storm's cells that are named. (Devices: none may be named, see below.)
fn suci_storm(s: &N2Scenario, truth: &Truth, rec: &Recorded, out: &mut Vec<Check>) {
    let e = &s.expect;
    let cells_of = |v: &Value, field: &str| -> Vec<String> {
        v[field]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["cell"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut named = BTreeSet::new();
    let mut barred = BTreeSet::new();
    let mut gnbs = BTreeSet::new();
    for v in &rec.hook {
        named.extend(cells_of(v, "pattern"));
        named.extend(cells_of(v, "access_barring"));
        barred.extend(cells_of(v, "access_barring"));
        gnbs.extend(strs(&v["overload"]["gnbs"]));
    }
    let first = rec.hook.iter().find(|v| v["level"].as_u64().unwrap_or(0) >= 1);
    let attr: Vec<String> = rec.hook.iter().filter_map(|v| v["attribution"].as_str().map(str::to_owned)).collect();
    out.push(check(
        "attributed by cell and pattern",
        first.is_some() && attr.iter().all(|a| a == "cell_pattern"),
        match first {
            Some(f) => format!(
                "first response {:.1} s after the onset, attribution {:?}; all: {:?}",
                t_of(rec, f) - truth.onset_s,
                f["attribution"],
                attr.iter().collect::<BTreeSet<_>>()
            ),
            None => "no response".to_owned(),
        },
    ));
    let hit = named.intersection(&truth.suci_cells).count() as f64;
    let precision = if named.is_empty() { 0.0 } else { hit / named.len() as f64 };
    let recall = if truth.suci_cells.is_empty() { 0.0 } else { hit / truth.suci_cells.len() as f64 };
    out.push(check(
        "storm cells named: precision",
        precision >= e.min_precision,
        format!(
            "{precision:.3} ({hit} of {} named cells are the storm's: {named:?}; at least {})",
            named.len(),
            e.min_precision
        ),
    ));
    out.push(check(
        "storm cells named: recall",
        recall >= e.min_recall,
        format!(
            "{recall:.3} ({hit} of {} storm cells named: {:?}; at least {})",
            truth.suci_cells.len(),
            truth.suci_cells,
            e.min_recall
        ),
    ));
    let benign_barred: Vec<&String> = barred.difference(&truth.suci_cells).collect();
    let all_barred = truth.suci_cells.is_subset(&barred);
    out.push(check(
        "the storm's cells barred, no benign cell barred",
        all_barred && benign_barred.is_empty(),
        format!("barred {barred:?}; benign barred {benign_barred:?}"),
    ));
    let stray: Vec<&String> = gnbs.difference(&truth.suci_gnbs).collect();
    out.push(check(
        "overload only to the storm's gNBs",
        stray.is_empty(),
        format!("overload gNBs {gnbs:?}, storm gNBs {:?}", truth.suci_gnbs),
    ));
    let listed: usize = rec.hook.iter().map(|v| v["devices"].as_array().map_or(0, Vec::len)).sum();
    out.push(check(
        "no one-shot identity listed as a device",
        listed == 0,
        format!(
            "{} responses, {listed} device entries; {} SUCI-only storm attempts",
            rec.hook.len(),
            truth.attempts_suci
        ),
    ));
}

fn crowd(rec: &Recorded, out: &mut Vec<Check>) {
    let classes: Vec<String> = rec
        .audit
        .iter()
        .filter(|a| a["action"] == "n2_classified")
        .filter_map(|a| a["reason"].as_str().map(str::to_owned))
        .collect();
    let hot = rec
        .audit
        .iter()
        .filter(|a| a["action"] == "n2_classified")
        .filter_map(|a| a["evidence"]["hot_cells"].as_u64())
        .max()
        .unwrap_or(0);
    out.push(check(
        "the crowd's cells are hot and classified as a flash crowd",
        classes.iter().any(|c| c == "flash_crowd"),
        format!("classifications {classes:?}, up to {hot} hot cells"),
    ));
    out.push(check(
        "never classified as a registration storm",
        !classes.iter().any(|c| c == "registration_storm"),
        format!("{} classification changes", classes.len()),
    ));
    let named: usize = rec.hook.iter().map(|v| v["devices"].as_array().map_or(0, Vec::len)).sum();
    out.push(check("no device named", named == 0, format!("{} responses, {named} device entries", rec.hook.len())));
}

fn init_flood(s: &N2Scenario, truth: &Truth, rec: &Recorded, out: &mut Vec<Check>) {
    let e = &s.expect;
    let Some(rogue) = truth.rogue else { return };
    let get = |c: &super::Counts, a, k| c.get(&(a, k)).copied().unwrap_or(0);
    let (mut sent, mut got, mut worst) = (0, 0, (1.0f64, String::new()));
    for g in &truth.gnbs {
        let (s_, r_) = (get(&rec.sent, *g, TxKind::Data), get(&rec.received, *g, TxKind::Data));
        sent += s_;
        got += r_;
        let share = if s_ == 0 { 1.0 } else { r_ as f64 / s_ as f64 };
        if share <= worst.0 {
            worst = (share, g.to_string());
        }
    }
    let share = if sent == 0 { 0.0 } else { got as f64 / sent as f64 };
    out.push(check(
        "established associations' DATA delivered",
        sent > 0 && share >= e.data_delivery && worst.0 >= e.data_delivery,
        format!(
            "{got} of {sent} DATA chunks arrived ({:.2}%), worst gNB {:.2}% {}; capture drops {}",
            share * 100.0,
            worst.0 * 100.0,
            worst.1,
            rec.capture_drops
        ),
    ));
    let setups_sent: u64 =
        truth.gnbs.iter().map(|g| get(&rec.sent, *g, TxKind::Init) + get(&rec.sent, *g, TxKind::CookieEcho)).sum();
    let setups_got: u64 = truth
        .gnbs
        .iter()
        .map(|g| get(&rec.received, *g, TxKind::Init) + get(&rec.received, *g, TxKind::CookieEcho))
        .sum();
    out.push(check(
        "established gNBs' own association setup passed",
        setups_got == setups_sent,
        format!("{setups_got} of {setups_sent} INIT / COOKIE ECHO"),
    ));
    let (rs, rr) = (get(&rec.sent, rogue, TxKind::Init), get(&rec.received, rogue, TxKind::Init));
    let rshare = if rs == 0 { 1.0 } else { rr as f64 / rs as f64 };
    // The second half of the flood: the rogue is staged by then, so at most its stage-1 limit
    // gets through (the scenario's [n2.setup], else the defaults of docs/n2.md §6.1).
    let setup = s.n2.get("setup").and_then(|v| v.as_table());
    let lim = |k: &str, d: i64| setup.and_then(|t| t.get(k)).and_then(|v| v.as_integer()).unwrap_or(d) as f64;
    let (pps, burst) = (lim("limit_pps", 5), lim("limit_burst", 10));
    let (mut half_sent, mut half_got, mut half_s) = (0, 0, 0.0);
    if let Some(f) = &s.init_flood {
        let mid = f.onset_s + f.length_s / 2.0;
        for (t, sn, gt) in &rec.rogue_slots {
            if *t >= mid && *t < f.onset_s + f.length_s {
                half_sent += sn;
                half_got += gt;
                half_s += s.slot_ms as f64 / 1000.0;
            }
        }
    }
    let allowed = pps * half_s + burst;
    out.push(check(
        "the rogue's INIT flood is capped",
        rs > 0 && rshare <= e.max_init_share && (half_got as f64) <= allowed,
        format!(
            "{rr} of {rs} INITs arrived ({:.1}%, at most {:.0}%); second half of the flood: {half_got} of {half_sent} \
             (stage-1 limit allows {allowed:.0})",
            rshare * 100.0,
            e.max_init_share * 100.0
        ),
    ));
    let staged: BTreeSet<String> = rec
        .audit
        .iter()
        .filter(|a| a["action"] == "n2_set_peer_stage")
        .filter_map(|a| a["target"].as_str().map(str::to_owned))
        .collect();
    let want = format!("peer:{rogue}");
    let stages: Vec<String> = rec
        .audit
        .iter()
        .filter(|a| a["action"] == "n2_set_peer_stage")
        .map(|a| format!("{}→{}", a["target"].as_str().unwrap_or("?"), a["detail"]["stage"]))
        .collect();
    out.push(check(
        "only the rogue is staged",
        staged.len() == 1 && staged.contains(&want),
        format!("stage decisions {stages:?}"),
    ));
}
