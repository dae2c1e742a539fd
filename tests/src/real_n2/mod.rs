//! `real-n2` (issue 15, items 2-4): the N2 guard in front of real SCTP stacks carrying NGAP
//! encoded by an independent encoder.
//!
//! ```text
//!   RAN netns                                       CORE netns
//!   usrsctp_peer gnb  (one stack, one socket per gNB,  usrsctp_peer amf (one stack, 10.100.0.1:38412)
//!     each bound to 10.100.0.11+g:38412)               guard run --n2-iface n2  (guard_n2 XDP + controller)
//!   forged-INIT sender (AF_PACKET, bounded)            dumpcap on n2 (what got past XDP, and the replies)
//!   dumpcap on n2-ran (everything, both ways)
//!   n2-ran ================ N2 veth ================== n2
//! ```
//!
//! The kernel has no SCTP (DESIGN §7): both ends are libusrsctp over raw IPv4, one stack per
//! namespace ([`peers`]). The gNBs do the four-way handshake (RFC 9260 §5.1), NG Setup
//! (TS 38.413 §8.7.1, answered by the AMF), then InitialUEMessage / UplinkNASTransport
//! (§8.6.1, §8.6.3) from pycrate ([`plan`]) for the whole run, with HEARTBEATs every second.
//! Phases: a registration storm in one cell (T2), then a forged INIT flood carrying the address
//! of a real gNB that re-establishes its association meanwhile. What is checked: [`report`].

pub mod oracle;
pub mod peers;
pub mod plan;
pub mod report;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::generator::{send_frames, SendOpts, SendReport};
use crate::n2lab::ran::{gnb_addr, AMF, CORE_MAC, RAN_MAC};
use crate::n2lab::topo::{N2Topo, RunFiles, N2_CORE_IF};
use crate::realpeers::{RealCheck, RealOpts};
use crate::sctp_frames::{Chunk, SctpFrame};
use peers::Peer;
use plan::{Params, Plan};

pub const SCENARIO: &str = "real-n2";
/// The RAN-side capture of a run (in `<out>/real-n2/`): every SCTP frame both ways.
pub const RAN_CAPTURE: &str = "ran-n2.pcap";
const NGAP_PORT: u16 = 38412;

/// What the run measured, for the checks and the report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Measured {
    pub params: Option<Params>,
    pub wall_s: f64,
    /// Association setup times (connect → COMM_UP) of every gNB at the start, ms.
    pub setup_ms: Vec<Option<f64>>,
    pub ng_setup_responses: usize,
    /// The victim: its association before the flood (ms), and during the flood.
    pub victim_baseline_ms: Option<f64>,
    pub victim_flood_ms: Option<f64>,
    pub victim_wait_s: f64,
    pub victim_init_timeouts: Option<u64>,
    pub flood: Option<FloodSent>,
    pub storm_messages: usize,
    pub background_messages: usize,
    pub send_errors: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct FloodSent {
    pub sent: u64,
    pub seconds: f64,
    /// The INITs it was to send (`flood_pps` × `flood_len_s`).
    pub intended: u64,
}

/// The guard's N2 configuration: the `n2_storm` lab's shortened windows (500 ms tick, 4 s device
/// window) and the `n2_init_flood` lab's setup ladder (docs/n2.md §4.5, §6.1).
fn n2_config(p: &Params) -> Result<toml::Table> {
    let text = format!(
        r#"
tick_ms = 500
[dataplane]
max_devices = 65536
enforce = ["malformed", "setup_limit", "setup_strict", "quarantine", "allowlist"]
allow = [{}]
setup_observe_pps = 10
setup_observe_burst = 20
[detect]
rate_smoothing_s = 1.5
warmup_windows = 4
device_repeat = 3
device_window_s = 4.0
persist_windows = 3
min_offenders = 3
min_offenders_barring = {}
min_offenders_overload = {}
escalate_windows = 4
quiet_windows = 10
refresh_s = 5.0
[setup]
trigger_windows = 3
limit_pps = 5
limit_burst = 10
strict_pps = 1
strict_burst = 2
escalate_windows = 6
allow_quarantine = false
"#,
        (0..=p.victim()).map(|g| format!("\"{}\"", gnb_addr(g))).collect::<Vec<_>>().join(", "),
        p.min_offenders_barring,
        p.min_offenders_overload
    );
    toml::from_str(&text).context("the real-n2 [n2] table")
}

/// Tools the scenario needs; a missing one is an error (never a skip).
fn preflight() -> Result<()> {
    if !crate::netns::is_root() {
        bail!("needs root (network namespaces, XDP, raw sockets)");
    }
    for (tool, arg) in [("tshark", "-v"), ("dumpcap", "-v"), ("cc", "--version"), ("pkg-config", "--version")] {
        let ok = std::process::Command::new(tool).arg(arg).output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            bail!("{tool} is missing (cargo xtask setup installs it)");
        }
    }
    crate::realpeers::python()?;
    Ok(())
}

fn t_of(v: &Value) -> Option<u64> {
    v["t"].as_u64()
}

/// The gNB socket of the victim's second association (the C helper's ids are single-use).
fn reconnect_id(p: &Params) -> u32 {
    p.victim() + 32
}

fn connect_line(id: u32, g: u32) -> String {
    format!("connect {id} {} {NGAP_PORT} {AMF} {NGAP_PORT}", gnb_addr(g))
}

fn send_line(id: u32, stream: u16, pdu: &[u8]) -> String {
    let mut s = format!("send {id} {stream} ");
    for b in pdu {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// connect → COMM_UP of socket `id`, in ms, if it came up.
fn setup_ms(gnb: &Peer, id: u32) -> Option<f64> {
    let ev = gnb.events();
    let c = ev.iter().find(|v| v["ev"] == "connect" && v["id"] == id).and_then(t_of)?;
    let u = ev.iter().find(|v| v["ev"] == "assoc" && v["id"] == id && v["state"] == "comm_up").and_then(t_of)?;
    Some(u.saturating_sub(c) as f64 / 1e6)
}

/// Forged INITs with the victim's address (RFC 9260 §8.5.1: verification tag 0), random source
/// ports other than the victim's own and random Initiate Tags, as an attacker on the RAN side
/// would send them: bounded in count and rate.
fn forged_inits(victim: Ipv4Addr) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x0f0e_0d0c_0b0a_0901;
    (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let sport = 1024 + (x % 60000) as u16;
            let sport = if sport == NGAP_PORT { sport + 1 } else { sport };
            let mut f = SctpFrame::ngap()
                .v4(victim, AMF)
                .ports(sport, NGAP_PORT)
                .vtag(0)
                .chunk(Chunk::init((x >> 16) as u32 | 1, (x >> 32) as u32))
                .build();
            f[0..6].copy_from_slice(&CORE_MAC);
            f[6..12].copy_from_slice(&RAN_MAC);
            f
        })
        .collect()
}

/// Run the scenario, write its report under `<out>/real-n2/`, return its checks.
pub fn run(opts: &RealOpts) -> Result<Vec<RealCheck>> {
    let t_wall = Instant::now();
    preflight()?;
    let p = Params::new(opts.quick);
    let dir = opts.out.join(SCENARIO);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let say = |m: &str| {
        if opts.verbose {
            eprintln!("real-n2 [{:5.1}s]: {m}", t_wall.elapsed().as_secs_f64());
        }
    };
    let helper = peers::build_helper()?;
    // Every NGAP PDU of the run, encoded by pycrate up front.
    let plan = Plan::new(&p);
    let mut specs: Vec<Value> = plan.msgs.iter().map(|m| m.spec.clone()).collect();
    let setup_base = specs.len();
    specs.extend((0..=p.victim()).map(plan::ng_setup));
    specs.push(plan::ng_setup_response());
    let pdus = peers::encode_ngap(&specs)?;
    let rsp_hex: String = pdus[pdus.len() - 1].iter().map(|b| format!("{b:02x}")).collect();
    say(&format!("{} NGAP PDUs encoded by pycrate", pdus.len()));

    let files = RunFiles::new(&dir);
    let mut topo = N2Topo::new(&opts.guard_bin, files.clone())?;
    topo.lab.core.ip(&["addr", "add", &format!("{AMF}/24"), "dev", N2_CORE_IF])?;
    for g in 0..=p.victim() {
        topo.lab.ran.ip(&["addr", "add", &format!("{}/24", gnb_addr(g)), "dev", topo.ran_n2_if()])?;
    }
    let n2 = n2_config(&p)?;
    topo.write_configs(&n2)?;
    topo.start_guard()?;
    say(&format!("guard up (netns {})", topo.core_ns()));
    let pcap = dir.join("n2.pcap");
    // Classic pcap, SCTP only.
    let mut cap =
        crate::capture::Dumpcap::start_with(&topo.lab.core, N2_CORE_IF, &pcap, &["-P", "-f", "sctp", "-s", "2048"])?;
    // The RAN end of the N2 veth too, both ways and whole frames: what the gNBs and the forger
    // sent before the guard judged it (the capture above misses what XDP dropped) and the AMF's
    // replies; `guard replay` is checked on it against this run (tests/tests/real_n2.rs).
    let mut ran_cap = crate::capture::Dumpcap::start_with(
        &topo.lab.ran,
        topo.ran_n2_if(),
        &dir.join(RAN_CAPTURE),
        &["-P", "-f", "sctp"],
    )?;
    let hb = p.heartbeat_ms.to_string();
    let mut amf = Peer::spawn(
        &topo.lab.core,
        &helper,
        &["amf".into(), AMF.to_string(), NGAP_PORT.to_string(), rsp_hex, hb.clone()],
        &dir.join("amf"),
    )?;
    let mut gnb = Peer::spawn(&topo.lab.ran, &helper, &["gnb".into(), hb], &dir.join("gnb"))?;

    let mut m = Measured { params: Some(p.clone()), ..Measured::default() };
    // The four-way handshake of every gNB, then NG Setup.
    for g in 0..=p.victim() {
        gnb.cmd(&connect_line(g, g))?;
    }
    for g in 0..=p.victim() {
        gnb.wait_for(Duration::from_secs(10), |v| v["ev"] == "assoc" && v["id"] == g && v["state"] == "comm_up");
        m.setup_ms.push(setup_ms(&gnb, g));
    }
    m.victim_baseline_ms = setup_ms(&gnb, p.victim());
    for g in 0..=p.victim() {
        gnb.cmd(&send_line(g, 0, &pdus[setup_base + g as usize]))?;
    }
    let n_gnbs = p.victim() as usize + 1;
    let t0 = Instant::now();
    while amf.events().iter().filter(|v| v["ev"] == "ng_setup_response").count() < n_gnbs
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    say(&format!("associations up: {:?} ms", m.setup_ms));

    // The timed traffic, the victim's re-establishment and the flood.
    let start = Instant::now();
    let start_ns = guard::clock::monotonic_ns();
    let rid = reconnect_id(&p);
    let (mut next, mut closed, mut reconnected, mut victim_setup) = (0usize, false, None::<Instant>, false);
    let horizon = p.horizon_s();
    let ran = &topo.lab.ran;
    let ran_if = topo.ran_n2_if();
    // The flood runs on a scoped thread beside the schedule; both end within the loop's bounds.
    let flood = std::thread::scope(|sc| -> Result<Option<SendReport>> {
        let mut flood = None;
        let mut last_note = 0.0;
        loop {
            let el = start.elapsed().as_secs_f64();
            while next < plan.msgs.len() && plan.msgs[next].t_s <= el {
                let msg = &plan.msgs[next];
                gnb.cmd(&send_line(msg.gnb, msg.stream, &pdus[next]))?;
                if msg.storm {
                    m.storm_messages += 1;
                } else {
                    m.background_messages += 1;
                }
                next += 1;
            }
            if !closed && el >= p.flood_onset_s - 1.5 {
                // The victim leaves gracefully (SHUTDOWN, RFC 9260 §9.2) before the flood.
                gnb.cmd(&format!("close {}", p.victim()))?;
                closed = true;
            }
            if flood.is_none() && el >= p.flood_onset_s {
                let frames = forged_inits(gnb_addr(p.victim()));
                let count = p.flood_inits();
                let o = SendOpts::new(count, Duration::from_secs_f64(p.flood_len_s + 2.0)).pps(p.flood_pps).batch(8);
                say(&format!("forged INIT flood: {count} INITs at {}/s from {}", p.flood_pps, gnb_addr(p.victim())));
                flood = Some(sc.spawn(move || send_frames(ran, ran_if, &frames, &o)));
            }
            if reconnected.is_none() && el >= p.flood_onset_s + p.reconnect_after_s {
                gnb.cmd("stats")?;
                gnb.cmd(&connect_line(rid, p.victim()))?;
                reconnected = Some(Instant::now());
                say("the victim gNB re-establishes its association");
            }
            let up = gnb.events().iter().any(|v| v["ev"] == "assoc" && v["id"] == rid && v["state"] == "comm_up");
            if up && !victim_setup {
                gnb.cmd(&send_line(rid, 0, &pdus[setup_base + p.victim() as usize]))?;
                victim_setup = true;
                say("the victim gNB's association is up");
            }
            let waited = reconnected.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
            if el >= horizon && next >= plan.msgs.len() && (up || waited >= p.assoc_wait_s) {
                m.victim_wait_s = waited;
                break;
            }
            if el - last_note >= 5.0 {
                last_note = el;
                say(&format!("t={el:.0}s: {next} of {} messages sent", plan.msgs.len()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match flood.map(|f| f.join()) {
            None => Ok(None),
            Some(Ok(r)) => r.map(Some).context("the forged INIT sender"),
            Some(Err(_)) => bail!("the forged INIT sender panicked"),
        }
    })?;
    m.flood = flood.map(|r| FloodSent { sent: r.sent, seconds: r.elapsed.as_secs_f64(), intended: p.flood_inits() });
    m.victim_flood_ms = setup_ms(&gnb, rid);
    // Heartbeats and SACKs of the last messages, then the counters.
    std::thread::sleep(Duration::from_millis(2500));
    let verdicts = guard::n2::N2Maps::open_pinned(&topo.n2_pins())
        .and_then(|mp| mp.verdicts())
        .map(|v| v.into_iter().map(|(v, c)| (v.name().to_owned(), c.packets)).collect())
        .unwrap_or_default();
    gnb.quit(Duration::from_secs(8));
    amf.quit(Duration::from_secs(8));
    cap.stop();
    ran_cap.stop();
    topo.stop_guard();
    let (gev, aev) = (gnb.events(), amf.events());
    drop(topo);
    say("peers and guard stopped; comparing the capture with tshark");
    m.send_errors = gev.iter().filter(|v| v["ev"] == "send_error").count();
    m.ng_setup_responses = aev.iter().filter(|v| v["ev"] == "ng_setup_response").count();
    m.victim_init_timeouts = report::init_timeouts(&gev);
    let orc = oracle::compare(&pcap, gnb_addr(p.victim()))?;
    m.wall_s = t_wall.elapsed().as_secs_f64();
    let obs = report::Observed { gnb_events: gev, amf_events: aev, oracle: orc, verdicts, files, start_ns, n2 };
    let r = report::Report::build(&p, &plan, m, obs);
    r.write(&dir)?;
    Ok(r.checks)
}
