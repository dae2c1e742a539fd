//! The checks of a real-n2 run and its `report.md` / `report.json`.
//!
//! What each check proves:
//! - handshake: each gNB's stack completed INIT / INIT ACK / COOKIE ECHO / COOKIE ACK (RFC 9260
//!   §5.1) through the guard and the AMF answered its NGSetupRequest (TS 38.413 §8.7.1);
//! - no abort, no restart: the endpoints' own association events (COMM_LOST, RESTART,
//!   CANT_STR_ASSOC; RFC 9260 §10.2 notifications) show that nothing the guard did, through the
//!   storm and the forged INIT flood, cost a benign gNB its association;
//! - delivery: every NGAP message a gNB's stack accepted was delivered to the AMF's application
//!   (counted by each stack, not by the guard);
//! - heartbeats: every association kept its HEARTBEAT / HEARTBEAT ACK exchange (§8.3);
//! - the storm: the guard's N2 controller answers as in the n2 lab (`n2lab::judge`);
//! - the capture oracle (see [`super::oracle`]);
//! - the forged INIT flood (issue 18): the real gNB associates within 3 s of its first INIT, and
//!   the AMF sees at most the setup limit once the peer is staged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::oracle::OracleResult;
use super::plan::{Params, Plan};
use super::{reconnect_id, Measured, SCENARIO};
use crate::n2lab::judge;
use crate::n2lab::ran::{gnb_addr, AMF};
use crate::n2lab::spec::{BackgroundSpec, ExpectSpec, N2Scenario, RanSpec, StormSpec};
use crate::n2lab::topo::RunFiles;
use crate::n2lab::{Recorded, ResponseLine};
use crate::realpeers::RealCheck;

/// The forged INIT flood must send at least this share of its INITs for its bound to mean anything.
const MIN_FLOOD_SENT: f64 = 0.90;

/// One gNB's association as both ends and the capture saw it.
#[derive(Clone, Debug, Serialize)]
pub struct GnbLine {
    pub addr: Ipv4Addr,
    pub role: &'static str,
    pub setup_ms: Option<f64>,
    pub sent: u64,
    pub send_fail: u64,
    pub received_at_amf: u64,
    pub aborts_restarts: u64,
    pub heartbeats: u64,
    pub heartbeat_acks: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub pass: bool,
    pub checks: Vec<RealCheck>,
    pub measured: Measured,
    pub gnbs: Vec<GnbLine>,
    pub oracle: OracleResult,
    pub responses: Vec<ResponseLine>,
    pub verdicts: BTreeMap<String, u64>,
    pub stacks: Vec<Value>,
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// INIT retransmission timeouts of the victim's re-establishment: the gNB stack's `timoinit`
/// between the `stats` before it and the one at exit (no other INIT is outstanding then).
pub fn init_timeouts(gev: &[Value]) -> Option<u64> {
    let st: Vec<u64> = gev.iter().filter(|v| v["ev"] == "stack").filter_map(|v| v["timoinit"].as_u64()).collect();
    (st.len() >= 2).then(|| st[st.len() - 1].saturating_sub(st[0]))
}

fn bad_state(v: &Value) -> bool {
    v["ev"] == "assoc" && ["comm_lost", "restart", "cant_str_assoc"].iter().any(|s| v["state"] == *s)
}

/// The flash crowd beside the storm: no response may name one of its devices, bar one of its
/// cells, or ask its gNB to reduce load (NGMN: deny specific devices, not a natural crowd).
fn crowd_check(p: &Params, plan: &Plan, files: &RunFiles, start_ns: u64) -> RealCheck {
    let hook = json_lines(&files.hook);
    // Naming nothing proves nothing unless the guard saw the crowd: it must have classified a
    // flash crowd while the crowd ran (the audit log's `n2_classified`, CLOCK_MONOTONIC `at_ns`).
    let (from, to) = (p.storm_onset_s, p.storm_onset_s + p.crowd_len_s);
    let classified: Vec<f64> = json_lines(&files.audit)
        .iter()
        .filter(|a| a["action"] == "n2_classified" && a["reason"] == "flash_crowd")
        .filter_map(|a| a["detail"]["at_ns"].as_u64())
        .filter(|&at| at >= start_ns)
        .map(|at| (at - start_ns) as f64 / 1e9)
        .filter(|t| (from..=to).contains(t))
        .collect();
    let strs = |v: &serde_json::Value, field: &str| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|d| d[field].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut named = 0usize;
    let mut barred = std::collections::BTreeSet::new();
    let mut overloaded = false;
    let gnb0 = crate::n2lab::ran::gnb_addr(0).to_string();
    for v in &hook {
        named += strs(&v["devices"], "id").iter().filter(|d| plan.crowd.contains(*d)).count();
        barred.extend(strs(&v["access_barring"], "cell").into_iter().filter(|c| plan.crowd_cells.contains(c)));
        overloaded |= v["overload"]["gnbs"].as_array().is_some_and(|g| g.iter().any(|x| x.as_str() == Some(&gnb0)));
    }
    RealCheck::new(
        SCENARIO,
        "flash crowd beside the storm: classified as a flash crowd, none of its devices, cells or gNB named",
        !classified.is_empty() && named == 0 && barred.is_empty() && !overloaded,
        format!(
            "{} crowd devices in {} cells of {gnb0} over {} s: classified flash_crowd at {:?} s (crowd {from:.1}-{to:.1} s); \
             {named} named in back-off lists, cells barred {barred:?}, OVERLOAD towards {gnb0}: {overloaded} ({} responses in all)",
            plan.crowd.len(),
            plan.crowd_cells.len(),
            p.crowd_len_s,
            classified.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>(),
            hook.len()
        ),
    )
}

/// The n2 lab's storm judge, fed with this run's ground truth and hook payloads.
fn storm_checks(
    p: &Params,
    plan: &Plan,
    files: &RunFiles,
    start_ns: u64,
    n2: toml::Table,
) -> (Vec<RealCheck>, Vec<ResponseLine>) {
    let s = N2Scenario {
        name: SCENARIO.into(),
        title: "registration storm over real SCTP".into(),
        threat: "T2".into(),
        description: String::new(),
        duration_s: p.horizon_s(),
        slot_ms: 250,
        seed: 0,
        ran: RanSpec { gnbs: p.benign, cells_per_gnb: p.cells_per_gnb, heartbeat_s: 1.0 },
        background: BackgroundSpec::default(),
        storm: Some(StormSpec {
            onset_s: p.storm_onset_s,
            length_s: p.storm_len_s,
            gnb: p.storm_gnb,
            cell: p.storm_cell,
            infected: p.infected,
            rate_per_device: p.rate_per_device,
            jitter: 0.3,
            benign_in_cell: 0,
        }),
        crowd: None,
        init_flood: None,
        suci_storm: None,
        expect: ExpectSpec { overload_within_s: 20.0, ..ExpectSpec::default() },
        n2,
    };
    let rec = Recorded {
        sent: Default::default(),
        received: Default::default(),
        rogue_slots: Vec::new(),
        capture_drops: 0,
        start_ns,
        hook: json_lines(&files.hook),
        audit: json_lines(&files.audit),
    };
    let checks = judge::judge(&s, &plan.truth, &rec)
        .into_iter()
        .map(|c| RealCheck::new(SCENARIO, &format!("storm: {}", c.name), c.pass, c.detail))
        .collect();
    (checks, judge::responses(&rec))
}

/// What a run observed: both stacks' events, the capture compared with tshark, the guard's
/// verdict counters, and where its hook and audit files are.
pub struct Observed {
    pub gnb_events: Vec<Value>,
    pub amf_events: Vec<Value>,
    pub oracle: OracleResult,
    pub verdicts: BTreeMap<String, u64>,
    pub files: RunFiles,
    /// CLOCK_MONOTONIC when the timed traffic started (the hook's `at_ns` clock).
    pub start_ns: u64,
    /// The `--n2-config` the guard ran with.
    pub n2: toml::Table,
}

impl Report {
    pub fn build(p: &Params, plan: &Plan, m: Measured, obs: Observed) -> Report {
        let Observed { gnb_events, amf_events, oracle: orc, verdicts, files, start_ns, n2 } = obs;
        let (gev, aev) = (&gnb_events[..], &amf_events[..]);
        let mut checks = Vec::new();
        let c = |name: &str, pass: bool, detail: String| RealCheck::new(SCENARIO, name, pass, detail);
        // Per gNB, from both stacks and the capture.
        let counts = |id: u32, k: &str| -> u64 {
            // The last report of the socket: the peer prints them at `stats` and at exit.
            gev.iter()
                .filter(|v| v["ev"] == "counts" && v["id"] == id)
                .filter_map(|v| v[k].as_u64())
                .next_back()
                .unwrap_or(0)
        };
        let mut gnbs = Vec::new();
        for g in 0..=p.victim() {
            let addr = gnb_addr(g);
            let ids: Vec<u32> = if g == p.victim() { vec![g, reconnect_id(p)] } else { vec![g] };
            let per = orc.per_src.get(&addr);
            gnbs.push(GnbLine {
                addr,
                role: if g == p.victim() {
                    "victim (re-establishes during the flood)"
                } else if g == p.storm_gnb {
                    "benign, storm cell"
                } else {
                    "benign"
                },
                setup_ms: m.setup_ms.get(g as usize).copied().flatten(),
                sent: ids.iter().map(|i| counts(*i, "sent")).sum(),
                send_fail: ids.iter().map(|i| counts(*i, "send_fail")).sum(),
                received_at_amf: aev
                    .iter()
                    .filter(|v| v["ev"] == "data" && v["peer"] == addr.to_string() && v["ppid"] == 60)
                    .count() as u64,
                aborts_restarts: gev.iter().filter(|v| ids.iter().any(|i| v["id"] == *i) && bad_state(v)).count()
                    as u64,
                heartbeats: per.and_then(|x| x.get(&4)).copied().unwrap_or(0),
                heartbeat_acks: per.and_then(|x| x.get(&5)).copied().unwrap_or(0),
            });
        }
        let n = gnbs.len();
        let up = m.setup_ms.iter().filter(|x| x.is_some()).count();
        checks.push(c(
            "every gNB's four-way handshake and NG Setup completed",
            up == n && m.ng_setup_responses >= n,
            format!(
                "{up} of {n} associations up (connect → COMM_UP {} ms, libusrsctp events); {} NGSetupResponses from the AMF",
                m.setup_ms.iter().map(|x| x.map_or("-".into(), |v| format!("{v:.1}"))).collect::<Vec<_>>().join(", "),
                m.ng_setup_responses
            ),
        ));
        let benign = &gnbs[..p.benign as usize];
        let bad_g: u64 = benign.iter().map(|g| g.aborts_restarts).sum();
        let bad_a = aev.iter().filter(|v| bad_state(v)).count();
        let stacks: Vec<Value> = gev.iter().chain(aev).filter(|v| v["ev"] == "stack").cloned().collect();
        let last = |role: &str, k: &str| {
            stacks.iter().filter(|v| v["role"] == role).filter_map(|v| v[k].as_u64()).next_back().unwrap_or(0)
        };
        checks.push(c(
            "benign gNBs keep their associations (aborts + restarts = 0)",
            bad_g == 0 && bad_a == 0,
            format!(
                "gNB side: {bad_g} COMM_LOST/RESTART/CANT_STR_ASSOC on {} benign associations; AMF side: {bad_a}; \
                 stacks' counters: gNB aborted {} restarted {}, AMF aborted {} restarted {}",
                benign.len(),
                last("gnb", "aborted"),
                last("gnb", "restartestab"),
                last("amf", "aborted"),
                last("amf", "restartestab")
            ),
        ));
        let mism: Vec<String> = gnbs
            .iter()
            .filter(|g| g.sent != g.received_at_amf || g.send_fail > 0)
            .map(|g| format!("{} sent {} (failed {}) AMF got {}", g.addr, g.sent, g.send_fail, g.received_at_amf))
            .collect();
        let (sent, got): (u64, u64) = (gnbs.iter().map(|g| g.sent).sum(), gnbs.iter().map(|g| g.received_at_amf).sum());
        checks.push(c(
            "NGAP messages sent = received at the AMF (per gNB, the stacks' counts)",
            mism.is_empty() && sent > 0,
            if mism.is_empty() { format!("{sent} sent, {got} received") } else { mism.join("; ") },
        ));
        // RFC 9260 §8.3: a stack sends HEARTBEATs to idle destinations only, so a gNB that
        // sends NGAP all along sends few; the AMF, which only SACKs, probes each gNB every
        // interval. Each benign gNB must have answered the AMF's probes (its HEARTBEAT ACKs
        // crossed the guard), and the AMF every probe of the gNBs that made it.
        let no_hb: Vec<String> = benign
            .iter()
            .filter(|g| g.heartbeat_acks == 0)
            .map(|g| format!("{} answered no HEARTBEAT", g.addr))
            .collect();
        let amf_hb = orc.per_src.get(&AMF).map(|x| (x.get(&4).copied().unwrap_or(0), x.get(&5).copied().unwrap_or(0)));
        let gnb_hb: u64 = benign.iter().map(|g| g.heartbeats).sum();
        checks.push(c(
            "HEARTBEATs answered on every benign association",
            no_hb.is_empty() && amf_hb.is_some_and(|(h, a)| h > 0 && a >= gnb_hb.saturating_sub(benign.len() as u64)),
            format!(
                "gNB HEARTBEAT / HEARTBEAT ACK: {}; AMF HEARTBEAT {} HEARTBEAT ACK {} (capture on the guard's \
                 interface){}",
                benign
                    .iter()
                    .map(|g| format!("{} {}/{}", g.addr, g.heartbeats, g.heartbeat_acks))
                    .collect::<Vec<_>>()
                    .join(", "),
                amf_hb.map_or(0, |x| x.0),
                amf_hb.map_or(0, |x| x.1),
                if no_hb.is_empty() { String::new() } else { format!("; {}", no_hb.join(", ")) }
            ),
        ));
        let (storm, responses) = storm_checks(p, plan, &files, start_ns, n2);
        checks.extend(storm);
        checks.push(crowd_check(p, plan, &files, start_ns));
        let procs: Vec<String> = orc.ngap_procs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        checks.push(c(
            "capture oracle: the guard's parser agrees with tshark, packet by packet",
            orc.disagreements == 0 && orc.initial_ue_compared > 0 && orc.frames_n2 > 0,
            format!(
                "{} disagreements over {} frames ({} to port 38412, {} chunks, {} NGAP messages [pdu/code {}], \
                 {} InitialUEMessages: {} with 5G-S-TMSI, {} with an extension RRC cause; {} beyond the read window; {} packets' NGAP past the 16-chunk walk){}",
                orc.disagreements,
                orc.frames,
                orc.frames_n2,
                orc.chunks_compared,
                orc.ngap_messages,
                procs.join(", "),
                orc.initial_ue_compared,
                orc.initial_ue_with_s_tmsi,
                orc.initial_ue_extension_cause,
                orc.initial_ue_beyond_window,
                orc.ngap_beyond_walk,
                if orc.examples.is_empty() { String::new() } else { format!("; first: {}", orc.examples.join(" | ")) }
            ),
        ));
        let v = |k: &str| verdicts.get(k).copied().unwrap_or(0);
        let flood = m.flood.as_ref().map_or((0, 0.0), |f| (f.sent, f.seconds));
        let tta = match m.victim_flood_ms {
            Some(ms) => format!("{ms:.1} ms"),
            None => format!("not associated after {:.0} s", m.victim_wait_s),
        };
        // Issue 18: the blind forger's INITs share the peer's setup budget, but the real gNB's
        // INIT from its association's port has its own lane and its COOKIE ECHO carries the
        // AMF's tag, so it establishes on its first INIT. The AMF sees the flood unlimited only
        // until the ladder stages the peer (trigger_windows ticks: allow 3 s), then at most the
        // stage-1 limit (5/s, burst 10).
        let tta_ok = flood.0 > 0 && m.victim_flood_ms.is_some_and(|ms| ms <= 3000.0);
        checks.push(c(
            "forged INIT flood on an allow-listed gNB: the real gNB associates within 3 s",
            tta_ok,
            format!(
                "{tta} (without a flood: {}); flood {} forged INITs in {:.1} s with {}'s address from random ports; \
                 the real gNB's own INITs past XDP {} ({} INIT timeouts in its stack); its ABORTs (T bit) to the \
                 AMF's INIT ACKs {}; guard_n2 drop_setup_limit {} drop_setup_strict {}",
                m.victim_baseline_ms.map_or("n/a".into(), |b| format!("{:.1} ms", b)),
                flood.0,
                flood.1,
                gnb_addr(p.victim()),
                orc.victim_real_inits,
                m.victim_init_timeouts.map_or("?".into(), |t| t.to_string()),
                orc.victim_aborts_t,
                v("drop_setup_limit"),
                v("drop_setup_strict"),
            ),
        ));
        let bound = (p.flood_pps as f64 * 3.0 + 5.0 * flood.1 + 10.0) as u64;
        // A flood that never got going stays under the bound without any limit: it must have
        // sent at least 90% of its INITs, and more than the bound.
        let intended = m.flood.as_ref().map_or(0, |f| f.intended);
        let full = flood.0 as f64 >= MIN_FLOOD_SENT * intended as f64 && flood.0 > bound;
        checks.push(c(
            "forged INIT flood (>= 90% of it sent): the AMF sees at most the setup limit once the peer is staged",
            full && orc.victim_forged_inits <= bound,
            format!(
                "{} of {} forged INITs reached the AMF ({} intended); bound {} = {}/s for 3 s before staging + 5/s × {:.1} s + burst 10",
                orc.victim_forged_inits, flood.0, intended, bound, p.flood_pps, flood.1
            ),
        ));
        let pass = checks.iter().all(|c| c.pass);
        Report {
            schema: "overload-guard/lab-real-n2-report",
            pass,
            checks,
            measured: m,
            gnbs,
            oracle: orc,
            responses,
            verdicts,
            stacks,
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.measured;
        let _ = writeln!(s, "# real-n2: the N2 guard in front of real SCTP stacks\n");
        let _ = writeln!(
            s,
            "Overall **{}**, wall time {:.1} s{}. Endpoints: libusrsctp (RFC 9260) over raw IPv4 in each \
             namespace; NGAP from pycrate; the guard's `guard_n2` on the AMF side.\n",
            if self.pass { "PASS" } else { "FAIL" },
            m.wall_s,
            if m.params.as_ref().is_some_and(|p| p.benign < 4) { " (quick)" } else { "" }
        );
        let _ = writeln!(s, "| result | check | detail |\n|---|---|---|");
        for c in &self.checks {
            let word = if !c.pass {
                "FAIL"
            } else if c.detail.starts_with("OPEN:") {
                "OPEN"
            } else {
                "PASS"
            };
            let _ = writeln!(s, "| {word} | {} | {} |", c.criterion, c.detail.replace('|', "/"));
        }
        let _ = writeln!(s, "\n## Associations\n");
        let _ = writeln!(
            s,
            "| gNB | role | setup (ms) | NGAP sent | failed | at the AMF | aborts+restarts | HB | HB ACK |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for g in &self.gnbs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                g.addr,
                g.role,
                g.setup_ms.map_or("-".into(), |x| format!("{x:.1}")),
                g.sent,
                g.send_fail,
                g.received_at_amf,
                g.aborts_restarts,
                g.heartbeats,
                g.heartbeat_acks
            );
        }
        let _ = writeln!(
            s,
            "\nMessages: {} background, {} storm; send errors {}.",
            m.background_messages, m.storm_messages, m.send_errors
        );
        let o = &self.oracle;
        let types: Vec<String> = o.chunk_types.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        let _ = writeln!(
            s,
            "\n## Capture oracle\n\nSCTP chunk types in the capture (RFC 9260 numbers): {}.\n",
            types.join(", ")
        );
        for e in &o.examples {
            let _ = writeln!(s, "- {e}");
        }
        let _ = writeln!(s, "\n## Storm responses through the hook\n");
        let _ = writeln!(s, "| t (s) | action | level | reason | devices | gNBs | cells | reduction |\n|---|---|---|---|---|---|---|---|");
        for r in &self.responses {
            let _ = writeln!(
                s,
                "| {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                r.t_s,
                r.action,
                r.level,
                r.reason,
                r.devices,
                r.gnbs.join(" "),
                r.cells.join(" "),
                r.reduction_pct.map(|x| format!("{x}%")).unwrap_or_default()
            );
        }
        let v: Vec<String> = self.verdicts.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "\n`guard_n2` verdicts (packets): {}.\n", v.join(", "));
        let _ = writeln!(
            s,
            "Files: `n2.pcap` (capture on the guard's interface), `ran-n2.pcap` (on the RAN end of the veth, \
             both ways: what `guard replay` reads), `gnb.jsonl` / `amf.jsonl` (the stacks' events), `guard.toml`, `n2.toml`, `audit.jsonl`, `hook.jsonl`, `guard.log`."
        );
        s
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join("report.md"), self.markdown()).context("writing report.md")?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?).context("writing report.json")?;
        Ok(())
    }
}
