//! The checks of `real-n3` and its report (`report.md`, `report.json`). Every number a check
//! gates on comes from a peer's own count (sgsnemu's statistics, osmo-ggsn's Echo answers) or
//! from tshark; the guard's maps and audit log only say what it staged and when.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::json;

use super::{echo, epoch, Measured, SCENARIO};
use crate::realpeers::RealCheck;

/// Targets (issue 15).
pub const MAX_BENIGN_LOSS: f64 = 0.01;
pub const MIN_OFFENDER_REDUCTION: f64 = 0.90;
pub const MAX_ONSET_TO_STAGE_S: f64 = 2.0;
/// Each benign instance must have sent this share of its ping count for its loss to count.
pub const MIN_PINGS_SENT: f64 = 0.95;

/// TEIDs of the run, by who sent them (from the RAN capture: the uplink G-PDUs' outer source).
pub struct Teids {
    pub benign: BTreeSet<u32>,
    pub offender: BTreeSet<u32>,
    /// TEID → first uplink packet (Unix s).
    pub first: BTreeMap<u32, f64>,
}

pub fn teids(m: &Measured) -> Option<Teids> {
    let ran = m.ran.as_ref().ok()?;
    let flood_addr: Ipv4Addr = m.flood.0.listen;
    let benign_addrs: BTreeSet<Ipv4Addr> = m.benign.iter().map(|(s, _)| s.listen).collect();
    let mut t = Teids { benign: BTreeSet::new(), offender: BTreeSet::new(), first: ran.teid_first.clone() };
    for (&teid, &gnb) in &ran.teid_gnb {
        if gnb == flood_addr {
            t.offender.insert(teid);
        } else if benign_addrs.contains(&gnb) {
            t.benign.insert(teid);
        }
    }
    Some(t)
}

/// TEIDs the guard staged (pinned stage map samples ∪ audit log), with the first time seen.
fn staged(m: &Measured) -> BTreeMap<u32, f64> {
    let mut s: BTreeMap<u32, f64> = m.stages.first_staged.iter().map(|(&t, &(w, _))| (t, w)).collect();
    for (&t, &w) in &m.audit_staged {
        let e = s.entry(t).or_insert(w);
        *e = e.min(w);
    }
    s
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

pub fn checks(m: &Measured) -> Vec<RealCheck> {
    let c = |crit: &str, pass: bool, detail: String| RealCheck::new(SCENARIO, crit, pass, detail);
    let mut out = Vec::new();
    let teids = teids(m);
    let staged = staged(m);

    // 1. Every PDP context came up (else the loss figures would not cover them), and osmo-ggsn
    // itself created at least every benign and flooding one.
    let up: usize = m.benign.iter().filter_map(|(_, s)| s.as_ref().ok()).map(|s| s.contexts_up).sum();
    let want = m.plan.benign_total() as usize;
    let all = want + m.plan.flood_contexts as usize;
    out.push(c(
        "every benign PDP context created (sgsnemu + osmo-ggsn logs)",
        up == want && m.ggsn_contexts >= all,
        format!(
            "{up}/{want} benign contexts up per sgsnemu; osmo-ggsn logged {} creations in all (at least {all}: {want} benign + {} flooding)",
            m.ggsn_contexts, m.plan.flood_contexts
        ),
    ));

    // 2. Benign loss from sgsnemu's own statistics, over pings that were actually sent: each
    // instance must have transmitted at least 95% of its ping count.
    let mut tx = 0u64;
    let mut rx = 0u64;
    let mut worst: Option<(String, usize, f64)> = None;
    let mut errs = Vec::new();
    let mut short = Vec::new();
    for (spec, st) in &m.benign {
        match st {
            Ok(s) => {
                tx += s.transmitted;
                rx += s.received;
                if (s.transmitted as f64) < MIN_PINGS_SENT * spec.pingcount as f64 || spec.pingcount == 0 {
                    short.push(format!("{} sent {} of {}", spec.name, s.transmitted, spec.pingcount));
                }
                if let Some((ctx, l)) = s.worst_context() {
                    if worst.as_ref().is_none_or(|w| l > w.2) {
                        worst = Some((spec.name.clone(), ctx, l));
                    }
                }
            }
            Err(e) => errs.push(format!("{}: {e:#}", spec.name)),
        }
    }
    let loss = if tx == 0 { 1.0 } else { tx.saturating_sub(rx) as f64 / tx as f64 };
    let worst_s = worst.map(|(n, c, l)| format!("; worst context {n} #{c}: {}", pct(l))).unwrap_or_default();
    let to_itself: u64 = m.benign.iter().filter_map(|(_, s)| s.as_ref().ok()).map(|s| s.pings_to_itself).sum();
    let worst_s = if to_itself > 0 {
        format!("{worst_s}; {to_itself} of the lost were sent by sgsnemu to itself before their context was up (never reached the guard)")
    } else {
        worst_s
    };
    let short_s = if short.is_empty() {
        format!("; every instance sent >= {:.0}% of its ping count", 100.0 * MIN_PINGS_SENT)
    } else {
        format!("; SHORT: {}", short.join(", "))
    };
    out.push(c(
        "benign loss <= 1% (sgsnemu's own ping statistics, >= 95% of each instance's pings sent)",
        errs.is_empty() && short.is_empty() && !m.benign.is_empty() && tx > 0 && loss <= MAX_BENIGN_LOSS,
        if errs.is_empty() {
            format!("{} lost: {rx}/{tx} echo replies over {} instances{worst_s}{short_s}", pct(loss), m.benign.len())
        } else {
            format!("no statistics from {}", errs.join("; "))
        },
    ));

    // 3. No benign context staged.
    match &teids {
        Some(t) => {
            let benign_staged: Vec<u32> = staged.keys().copied().filter(|x| t.benign.contains(x)).collect();
            let unknown: Vec<u32> =
                staged.keys().copied().filter(|x| !t.benign.contains(x) && !t.offender.contains(x)).collect();
            out.push(c(
                "0 benign contexts staged (pinned stage map + audit log)",
                benign_staged.is_empty() && unknown.is_empty() && !t.benign.is_empty(),
                format!(
                    "{} benign TEIDs seen, {} staged{}; {} staged TEIDs not attributable to any instance{}; {} stage-map samples",
                    t.benign.len(),
                    benign_staged.len(),
                    if benign_staged.is_empty() { String::new() } else { format!(" {benign_staged:x?}") },
                    unknown.len(),
                    if unknown.is_empty() { String::new() } else { format!(" {unknown:x?}") },
                    m.stages.samples
                ),
            ));
        }
        None => out.push(c(
            "0 benign contexts staged (pinned stage map + audit log)",
            false,
            "no RAN capture to map TEIDs to instances".into(),
        )),
    }

    // 4. Offender reduction from the flooding instance's own statistics, confirmed on the wire:
    // the CORE capture (after XDP) holds at most 10% of the flooding TEIDs' G-PDUs the RAN capture
    // holds, and every benign TEID's G-PDUs.
    let crit = "offender reduction >= 90% (flooding sgsnemu's own statistics; the captures: flood G-PDUs past the guard <= 10%, benign all)";
    let wire = match (&teids, &m.ran, &m.core) {
        (Some(t), Ok(r), Ok(k)) => {
            let sum = |cap: &super::oracle::CaptureCheck, set: &BTreeSet<u32>| -> u64 {
                set.iter().map(|x| cap.teid_packets.get(x).copied().unwrap_or(0)).sum()
            };
            let (fr, fk) = (sum(r, &t.offender), sum(k, &t.offender));
            let (br, bk) = (sum(r, &t.benign), sum(k, &t.benign));
            // Benign: all, but for frames the CORE capture says it lost (sgsnemu's own statistics
            // judge the benign loss above).
            let ok = fr > 0
                && fk as f64 <= (1.0 - MIN_OFFENDER_REDUCTION) * fr as f64
                && br > 0
                && bk <= br
                && bk + k.capture_lost() >= br;
            (
                ok,
                format!(
                    "captures: flooding TEIDs' G-PDUs {fk} past the guard of {fr} sent, benign TEIDs' {bk} of {br} (the CORE capture lost {} by its own count)",
                    k.capture_lost()
                ),
            )
        }
        (None, ..) => (false, "no RAN capture to map TEIDs to instances".into()),
        (_, Err(e), _) | (_, _, Err(e)) => (false, format!("no capture: {e:#}")),
    };
    match &m.flood.1 {
        Ok(s) => {
            let red = if s.transmitted == 0 { 0.0 } else { 1.0 - s.received as f64 / s.transmitted as f64 };
            out.push(c(
                crit,
                s.transmitted > 0 && red >= MIN_OFFENDER_REDUCTION && wire.0,
                format!(
                    "{} of its pings unanswered: {}/{} replies over {:.1} s ({} contexts at {} pps each); {}",
                    pct(red),
                    s.received,
                    s.transmitted,
                    s.elapsed_s,
                    m.flood.0.contexts,
                    m.plan.flood_pps,
                    wire.1
                ),
            ));
        }
        Err(e) => out.push(c(crit, false, format!("no statistics: {e:#}; {}", wire.1))),
    }

    // 5. Onset to stage, per flooding context.
    match &teids {
        Some(t) if !t.offender.is_empty() => {
            let mut parts = Vec::new();
            let mut worst = 0.0f64;
            let mut all = true;
            for o in &t.offender {
                let onset = t.first.get(o).copied().unwrap_or(f64::NAN);
                match staged.get(o) {
                    Some(&st) => {
                        let d = st - onset;
                        worst = worst.max(d);
                        parts.push(format!("TEID {o:#x}: {d:.2} s"));
                    }
                    None => {
                        all = false;
                        parts.push(format!("TEID {o:#x}: never staged"));
                    }
                }
            }
            out.push(c(
                "onset to stage <= 2 s (automatic controller, no pin)",
                all && worst <= MAX_ONSET_TO_STAGE_S,
                format!(
                    "worst {worst:.2} s from the context's first flood packet (RAN capture) to its stage (audit log / map sample): {}; \
                     first stage {:.2} s after the flooding sgsnemu was started",
                    parts.join(", "),
                    t.offender.iter().filter_map(|o| staged.get(o)).fold(f64::INFINITY, |a, &b| a.min(b)) - m.flood_started
                ),
            ));
        }
        _ => out.push(c(
            "onset to stage <= 2 s (automatic controller, no pin)",
            false,
            "no flooding TEID found in the RAN capture".into(),
        )),
    }

    // 6. GTP-U path supervision: every Echo Request answered.
    match &m.echoes {
        Ok(ex) => {
            let (sent, answered, lost) = echo::totals(ex);
            let retrans: Vec<String> = ex
                .iter()
                .filter(|e| e.attempts > 1 || e.answered == 0)
                .map(|e| format!("{} round {}: {} sent, answered at {}", e.path, e.round, e.attempts, e.answered))
                .collect();
            // The captures say whether the guard let each request through (RAN side = sent,
            // CORE side = passed XDP).
            let passed = match (&m.ran, &m.core) {
                (Ok(r), Ok(k)) => Some((r.gtpu_echo_requests, k.gtpu_echo_requests)),
                _ => None,
            };
            out.push(c(
                "GTP-U Echo Requests answered: all (osmo-ggsn, TS 29.281 §7.2.1 rate)",
                !ex.is_empty()
                    && sent == answered
                    && lost == 0
                    && ex.iter().all(|e| e.recovery_ie)
                    && passed.is_some_and(|(r, k)| r == k && r == u64::from(sent)),
                format!(
                    "{answered}/{sent} requests answered on {} paths × {} rounds; the guard passed {}{}",
                    m.benign.len() + 1,
                    m.plan.echo_rounds_s.len(),
                    passed
                        .map(|(r, k)| format!("{k} of the {r} on the wire"))
                        .unwrap_or_else(|| "? (no capture)".into()),
                    if retrans.is_empty() { String::new() } else { format!("; {}", retrans.join("; ")) }
                ),
            ));
        }
        Err(e) => {
            out.push(c("GTP-U Echo Requests answered: all (osmo-ggsn, TS 29.281 §7.2.1 rate)", false, format!("{e:#}")))
        }
    }

    // 7. GTP-C path supervision between the real peers (both directions), from the CORE capture;
    // the guard must pass every uplink GTP-C frame the RAN side sent (it is not GTP-U).
    let crit = "GTP-C Echo answered: all (osmo-ggsn <-> sgsnemu), uplink GTP-C all passed";
    match (&m.core, &m.ran) {
        (Ok(cc), Ok(rc)) => out.push(c(
            crit,
            // Every uplink GTP-C frame the RAN side saw is on the CORE side, but for frames the
            // CORE capture itself says it lost (dumpcap's own count, reported).
            cc.gtpc_echo_requests > 0
                && cc.gtpc_echo_answered == cc.gtpc_echo_requests
                && cc.gtpc_uplink <= rc.gtpc_uplink
                && cc.gtpc_uplink + cc.capture_lost() >= rc.gtpc_uplink,
            format!(
                "{}/{} Echo exchanges answered ({} retransmitted requests, CORE capture); uplink GTP-C frames {} sent (RAN side), {} passed (CORE side; the CORE capture lost {} by its own count)",
                cc.gtpc_echo_answered, cc.gtpc_echo_requests, cc.gtpc_echo_retransmissions, rc.gtpc_uplink, cc.gtpc_uplink, cc.capture_lost()
            ),
        )),
        (Err(e), _) | (_, Err(e)) => out.push(c(crit, false, format!("{e:#}"))),
    }

    // 8-9. The capture oracle on both sides.
    for (side, cap) in [("RAN", &m.ran), ("CORE", &m.core)] {
        let crit = format!("{side} capture: guard parser agrees with tshark, packet by packet");
        match cap {
            Ok(cc) => {
                let gpdus = cc.per_message.get("G-PDU").copied().unwrap_or(0);
                out.push(c(
                    &crit,
                    cc.disagreements == 0 && gpdus > 0,
                    format!(
                        "{} disagreements over {} GTP-U frames ({} frames in all; {:?}; S flag on {}, QFI on {}){}",
                        cc.disagreements,
                        cc.gtpu_compared,
                        cc.frames,
                        cc.per_message,
                        cc.with_seq,
                        cc.with_qfi,
                        if cc.examples.is_empty() { String::new() } else { format!(": {}", cc.examples.join(" | ")) }
                    ),
                ));
            }
            Err(e) => out.push(c(&crit, false, format!("{e:#}"))),
        }
    }

    // 10. A few flooding contexts must never raise a cell- or host-wide stage (DESIGN.md T4).
    out.push(c(
        "no cell or host stage raised (T4)",
        m.stages.max_cells_capped == 0 && !m.stages.host_capped,
        format!("max cells capped {}, host capped {}", m.stages.max_cells_capped, m.stages.host_capped),
    ));
    out
}

/// Write `report.md` and `report.json` into `dir`.
pub fn write(dir: &Path, m: &Measured, checks: &[RealCheck]) -> Result<()> {
    let instances: Vec<serde_json::Value> = m
        .benign
        .iter()
        .chain(std::iter::once(&m.flood))
        .map(|(spec, st)| match st {
            Ok(s) => json!({"spec": spec, "stats": s, "loss": s.loss(), "worst_context": s.worst_context()}),
            Err(e) => json!({"spec": spec, "error": format!("{e:#}")}),
        })
        .collect();
    let cap = |c: &Result<super::oracle::CaptureCheck>| match c {
        Ok(c) => json!(c),
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    let teid_map = teids(m).map(|t| json!({"benign": t.benign.len(), "offender": t.offender}));
    let j = json!({
        "scenario": SCENARIO,
        "plan": m.plan,
        "ggsn": m.ggsn_addr,
        "wall_s": m.wall_s,
        "guard_cpu_s": m.guard_cpu_s,
        "guard_bin": {"path": m.guard_bin.0, "mtime_unix_s": m.guard_bin.1},
        "flood_started_unix_s": m.flood_started,
        "checks": checks,
        "instances": instances,
        "teids": teid_map,
        "staged": super::report::staged(m),
        "stage_trace": m.stages,
        "audit_lines": m.audit_lines,
        "echo": m.echoes.as_ref().map_err(|e| format!("{e:#}")).ok(),
        "captures": {"ran": cap(&m.ran), "core": cap(&m.core)},
    });
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&j)?).context("writing report.json")?;

    let mut md = String::new();
    let _ = writeln!(md, "# real-n3: the guard in front of osmo-ggsn and sgsnemu\n");
    let p = &m.plan;
    let _ = writeln!(
        md,
        "{} benign sgsnemu instances × {} contexts at {} ping/s per context for {} s; one flooding instance with {} contexts at {} ping/s each from {:.0} s for {} s; GTP-U Echo rounds at {:?} s. Wall time {:.0} s, guard CPU {:.2} s.\n",
        p.benign_instances,
        p.benign_contexts,
        p.benign_pps,
        p.benign_s,
        p.flood_contexts,
        p.flood_pps,
        p.flood_at_s,
        p.flood_s,
        p.echo_rounds_s,
        m.wall_s,
        m.guard_cpu_s.unwrap_or(f64::NAN)
    );
    let _ = writeln!(
        md,
        "Guard binary: `{}` (built {:.0} s before this report).\n",
        m.guard_bin.0.display(),
        epoch(SystemTime::now()) - m.guard_bin.1
    );
    let _ = writeln!(md, "## Checks\n\n| result | criterion | measured |\n|---|---|---|");
    for c in checks {
        let w = if !c.pass {
            "FAIL"
        } else if c.detail.starts_with("OPEN:") {
            "OPEN"
        } else {
            "PASS"
        };
        let _ = writeln!(md, "| {w} | {} | {} |", c.criterion, c.detail.replace('|', "/"));
    }
    let _ = writeln!(md, "\n## The peers' own statistics\n\n| instance | address | contexts up | sent | received | loss | worst context |\n|---|---|---|---|---|---|---|");
    for (spec, st) in m.benign.iter().chain(std::iter::once(&m.flood)) {
        match st {
            Ok(s) => {
                let w = s.worst_context().map(|(c, l)| format!("#{c}: {}", pct(l))).unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| {} | {} | {}/{} | {} | {} | {} | {w} |",
                    spec.name,
                    spec.listen,
                    s.contexts_up,
                    spec.contexts,
                    s.transmitted,
                    s.received,
                    pct(s.loss())
                );
            }
            Err(e) => {
                let _ = writeln!(md, "| {} | {} | - | - | - | - | {e:#} |", spec.name, spec.listen);
            }
        }
    }
    if let Ok(ex) = &m.echoes {
        let _ = writeln!(md, "\n## GTP-U Echo (path supervision)\n\n| path | round | seq | requests sent | answered at | RTT ms | Recovery IE |\n|---|---|---|---|---|---|---|");
        for e in ex {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                e.path,
                e.round,
                e.seq,
                e.attempts,
                e.answered,
                e.rtt_ms.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
                e.recovery_ie
            );
        }
    }
    let _ = writeln!(md, "\nFiles: `ran.pcap`, `core.pcap` (dumpcap), `sgsnemu-*.log`, `osmo-ggsn.cfg/.log`, `guard.toml`, `guard.log`, `audit.jsonl`, `echo.log`, `report.json`.");
    std::fs::write(dir.join("report.md"), md).context("writing report.md")
}
