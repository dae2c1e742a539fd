//! The last resorts in octets, end to end over veth (issue 27): a per-gNB cap set by an operator
//! with the real binary (`guard gnb pin --rate`, against the pinned maps of the guard attached to
//! the lab's CORE veth) and the host cap's byte rate (`GuardConfig::host_cap_bytes`, as the
//! controller writes it for an overload in octets). Real frames from the RAN namespace, counted
//! by labkit's sink, not by the guard:
//!
//! 1. gNB A capped at 2 Mbit/s and offered 4 Mbit/s delivers 2 Mbit/s ± 5%; gNB B, capped at
//!    8 Mbit/s and offered the same 4 Mbit/s, loses nothing.
//! 2. After `guard gnb unpin` of both, a host cap of 3 Mbit/s passes everything offered under it,
//!    then, offered 8 Mbit/s, delivers 3 Mbit/s ± 5% in all.
//!
//! Why ±5%: it is issue 27's accuracy criterion, and the error budget is far inside it. The caps
//! are GCRA on T-PDU octets, exact to 0.001% in the long run (`ByteLimit::bits_per_second`): a
//! flow offered more than its cap from a start with its burst unspent gets the burst, then the
//! rate, so the expected figure is rate + burst / span (50,000 octets at gNB A, 93,750 at the
//! host: +0.13 and +0.25 Mbit/s over 3 s); the edge of the span (one 10 ms clock step of the
//! rate, 2,500 octets at 2 Mbit/s) is under 0.5% of the ~800,000 octets a 3 s span delivers;
//! and the sink's counts are exact (its socket must report no drops). The bursts are a quarter
//! second of the rate or less, not the smallest the data plane holds, because the machine is
//! shared: a sender descheduled for longer than a burst's worth of time sends its backlog at
//! once, which a tiny burst cuts (a run with 3,000-octet bursts at load 6 saw gNB B, under its
//! cap, lose packets); gNB B has the default, one second of its rate. A cap that leaked (an
//! unlimited byte rate) would deliver +88% for gNB A and +151% for the host; one that
//! over-dropped, under -5%.
//!
//! Bounded: every send has a packet cap and a deadline (about 12 s in all). The lab, the guard's
//! pins and the temporary directory are removed on exit and while unwinding (RAII).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use guard_common::abi::{ByteLimit, GuardConfig, Limit, PROT_ALL, STAGE_FLAG_MANUAL};
use labkit::bpf::Guard;
use labkit::oracle::TempDir;
use labkit::{assert_root, send_frames, Lab, SendOpts, Sink};

const SEC: u64 = 1_000_000_000;
/// T-PDU octets of every frame (the unit the caps count).
const TPDU: usize = 1000;
/// Each gNB's offered rate: 500 pps of 1000-octet T-PDUs is 4 Mbit/s.
const PPS_EACH: u64 = 500;
const TEID_A: u32 = 0x6a00;
const TEID_B: u32 = 0x6b00;
const SPAN: Duration = Duration::from_secs(3);
const TOLERANCE: f64 = 0.05;
/// Burst allowances, octets: a quarter second of the rate or less (see the module's notes).
const GNB_A_BURST: u64 = 50_000;
const HOST_BURST: u64 = 93_750;

fn frame(lab: &Lab, gnb: usize, teid: u32) -> Vec<u8> {
    lab.gpdu_v4(gnb, teid)
        .inner_v4(Ipv4Addr::new(10, 45, 2, gnb as u8 + 1), Ipv4Addr::new(192, 0, 2, 10))
        .payload_len(TPDU - 28)
        .build()
}

/// Send `frames` round-robin at `pps` in all for `span`, all from CPU 0 (on a veth the
/// receiver's XDP runs on the sending CPU, so the host cap's per-CPU state is one state), and
/// return (seconds sent, packets the sink got of each TEID, packets sent of each).
fn offer(lab: &Lab, frames: &[Vec<u8>], teids: &[u32], pps: u64, span: Duration) -> (f64, Vec<u64>, Vec<u64>) {
    let n = (pps as f64 * span.as_secs_f64()) as u64;
    let opts = SendOpts { cpu: Some(0), ..SendOpts::new(n, span + Duration::from_secs(2)).pps(pps) };
    let sink = Sink::start(&lab.core, lab.core_ifname()).expect("sink");
    let sent = send_frames(&lab.ran, lab.ran_ifname(), frames, &opts).expect("send");
    assert_eq!(sent.sent, n, "the generator hit its deadline: {sent:?}");
    sink.wait_quiet(Duration::from_millis(200), Duration::from_secs(5));
    let got = sink.stop().expect("sink report");
    assert_eq!(got.kernel_drops, 0, "the sink's socket overflowed: its counts are not evidence");
    (sent.elapsed.as_secs_f64().max(1e-3), teids.iter().map(|&t| got.teid(t)).collect(), sent.per_frame.clone())
}

/// T-PDU bits per second of `packets` over `secs`.
fn bps(packets: u64, secs: f64) -> f64 {
    packets as f64 * 8.0 * TPDU as f64 / secs
}

/// `got` bit/s over `secs` against a cap of `rate` bit/s with a burst of `burst` octets, which
/// a flow offered more than the rate from the start, with the burst unspent, delivers: the
/// burst, then the rate (GCRA; the span starts a while after the flow's previous packets, so
/// with its whole burst).
fn within(what: &str, got: f64, secs: f64, rate: f64, burst: u64) {
    let want = rate + burst as f64 * 8.0 / secs;
    let err = got / want - 1.0;
    println!("{what}: {:.3} Mbit/s against {:.3} ({:+.2}%)", got / 1e6, want / 1e6, err * 100.0);
    assert!(err.abs() <= TOLERANCE, "{what}: {got:.0} bit/s is {:+.2}% off {want:.0}", err * 100.0);
}

/// `guard gnb ...` (or, with `cmd`, another command) with the real binary against the attached
/// guard's pins, audited to `dir`; its output.
fn guard_gnb(guard: &Guard, dir: &TempDir, args: &[&str]) -> String {
    guard_cli(guard, dir, "gnb", args)
}

fn guard_cli(guard: &Guard, dir: &TempDir, cmd: &str, args: &[&str]) -> String {
    let config = dir.path().join("guard.toml");
    let audit = dir.path().join("audit.jsonl");
    std::fs::write(&config, format!("[guard]\naudit_log = {:?}\n", audit.display().to_string())).expect("config");
    let pins = guard.scope.pins.path();
    let (base, iface) = (pins.parent().expect("a pin base"), pins.file_name().expect("an interface"));
    let out = Command::new(labkit::guard_bin::for_test())
        .arg(cmd)
        .args(args)
        .arg("--pin-base")
        .arg(base)
        .arg("--iface")
        .arg(iface)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running guard gnb");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("guard {cmd} {}: {text}", args.join(" "));
    assert!(out.status.success(), "guard {cmd} {args:?} failed: {text}");
    text
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn gnb_and_host_byte_caps_deliver_their_rate_and_spare_traffic_under_them() {
    assert_root("e2e_n3_byte_caps::gnb_and_host_byte_caps_deliver_their_rate_and_spare_traffic_under_them");
    let lab = Lab::new().expect("lab");
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() };
    let mut guard = lab.attach_guard("bytecap", &cfg);
    let dir = TempDir::new("e2e-byte-caps").expect("temp dir");
    let (gnb_a, gnb_b) = (lab.gnb_v4[0], lab.gnb_v4[1]);
    let frames = [frame(&lab, 0, TEID_A), frame(&lab, 1, TEID_B)];
    let teids = [TEID_A, TEID_B];

    // 1. Per-gNB caps, pinned by the operator in bit rates.
    let comment = ["--ttl", "10m", "--comment", "e2e byte caps"];
    // gNB B with the default burst, one second of its rate.
    let rates: [(Ipv4Addr, &[&str]); 2] =
        [(gnb_a, &["--rate", "2Mbit/s", "--burst-bytes", &GNB_A_BURST.to_string()]), (gnb_b, &["--rate", "8Mbit/s"])];
    for (gnb, rate) in rates {
        let gnb = gnb.to_string();
        let args = [&["pin", "--gnb", gnb.as_str()][..], rate, &comment[..]].concat();
        let _ = guard_gnb(&guard, &dir, &args);
    }
    // The pin is in the map the data plane reads, as an operator's byte rate and nothing else.
    let key = guard::n3::local::l3_of(IpAddr::V4(gnb_a));
    let e = guard.maps.cell_stage(&key).expect("reading N3_CELL_STAGES").expect("gNB A's cap");
    assert_eq!((e.bytes, e.interval_ns), (ByteLimit::bits_per_second(2_000_000, GNB_A_BURST), 0), "{e:?}");
    let b = guard.maps.cell_stage(&guard::n3::local::l3_of(IpAddr::V4(gnb_b))).expect("N3_CELL_STAGES");
    assert_eq!(b.map(|e| e.bytes), Some(ByteLimit::bits_per_second(8_000_000, 1_000_000)), "one second of 8 Mbit/s");
    assert_ne!(e.flags & STAGE_FLAG_MANUAL, 0, "an operator's entry: {e:?}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("the audit log");
    assert!(audit.contains(r#""action":"pin_gnb""#) && audit.contains("2Mbit/s"), "{audit}");
    let status = guard_cli(&guard, &dir, "status", &[]);
    let line = status.lines().find(|l| l.contains(&gnb_a.to_string())).unwrap_or_else(|| panic!("{status}"));
    assert!(line.contains("no packet rate and 2Mbit/s, pinned"), "guard status shows the cap as pinned: {line}");

    let (secs, got, sent) = offer(&lab, &frames, &teids, 2 * PPS_EACH, SPAN);
    println!("gNB caps: {secs:.2} s, sent {sent:?}, delivered {got:?}");
    within("gNB A (capped at 2 Mbit/s, offered 4)", bps(got[0], secs), secs, 2e6, GNB_A_BURST);
    assert_eq!(got[1], sent[1], "gNB B, under its 8 Mbit/s cap, lost traffic");

    // 2. The host cap's byte rate, with no gNB cap left.
    for gnb in [gnb_a, gnb_b] {
        let _ = guard_gnb(&guard, &dir, &["unpin", "--gnb", &gnb.to_string(), "--comment", "e2e byte caps"]);
    }
    assert!(guard.maps.cell_stage(&key).expect("reading N3_CELL_STAGES").is_none(), "unpinned");
    let host = GuardConfig {
        host_cap: Limit::UNLIMITED,
        host_cap_bytes: ByteLimit::bits_per_second(3_000_000, HOST_BURST),
        host_cap_expires_ns: guard::clock::monotonic_ns() + 600 * SEC,
        ..cfg
    };
    guard.write_config(&host);
    // Under the cap (1.6 Mbit/s in all): nothing lost.
    let (_, got, sent) = offer(&lab, &frames, &teids, 200, Duration::from_secs(1));
    assert_eq!(got, sent, "under the host cap, traffic was lost");
    // Over it (8 Mbit/s in all): 3 Mbit/s leave.
    let (secs, got, sent) = offer(&lab, &frames, &teids, 2 * PPS_EACH, SPAN);
    println!("host cap: {secs:.2} s, sent {sent:?}, delivered {got:?}");
    within("host (capped at 3 Mbit/s, offered 8)", bps(got.iter().sum(), secs), secs, 3e6, HOST_BURST);
}
