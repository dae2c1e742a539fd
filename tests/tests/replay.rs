//! `guard replay` (issue 21) on captures written here: the same capture and configuration give
//! the same decisions twice; benign traffic stages nothing; a flooding device is staged and no
//! benign one; bad captures give a clear error, the report of what was read and a non-zero exit.
//! (The lab capture against the live run: `replay_lab.rs`.)

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use guard::replay::{self, Options, Pacing, Quiet};
use labkit::assert_root;
use labkit::capture::write_pcap_ns;
use labkit::frames::GtpFrame;
use labkit::oracle::TempDir;

/// 2025-12-05 12:00:00 UTC.
const T0: u64 = 1_764_936_000_000_000_000;
const BENIGN: u32 = 20;
const FLOOD_TEID: u32 = 0x00ff_0001;

fn gpdu(teid: u32, gnb: u8, ue: u32) -> Vec<u8> {
    GtpFrame::gpdu(teid)
        .outer_v4(Ipv4Addr::new(10, 200, 0, gnb), Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::from(0x0a2d_0000 + ue), Ipv4Addr::new(192, 0, 2, 10))
        .build()
}

/// `secs` seconds of 20 devices at 5 pps on two gNBs and, with `flood`, one more device at
/// 2,000 pps from 4 s on; in time order.
fn traffic(secs: u64, flood: bool) -> Vec<(u64, Vec<u8>)> {
    let mut v = Vec::new();
    for d in 0..BENIGN {
        let f = gpdu(0x0010_0000 + d, 11 + (d % 2) as u8, d + 2);
        // Each device on its own phase, so packets interleave as on a wire.
        for k in 0..secs * 5 {
            v.push((T0 + k * 200_000_000 + u64::from(d) * 7_000_000, f.clone()));
        }
    }
    if flood {
        let f = gpdu(FLOOD_TEID, 12, 500);
        for k in 0..(secs - 4) * 2000 {
            v.push((T0 + 4_000_000_000 + k * 500_000, f.clone()));
        }
    }
    v.sort_by_key(|(t, _)| *t);
    v
}

/// The lab's base configuration (200 ms ticks, 50 pps profile) as a file.
fn config(dir: &Path) -> PathBuf {
    config_with(dir, "guard.toml", "")
}

/// The lab's base configuration with `extra` (TOML) merged in, as the file `name`.
fn config_with(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let mut cfg = labkit::scenario::base_guard_config();
    labkit::scenario::merge(
        &mut cfg,
        &toml::from_str(&format!("[guard]\naudit_log = \"{}\"\n", dir.join("unused-audit.jsonl").display()))
            .expect("toml"),
    );
    labkit::scenario::merge(&mut cfg, &toml::from_str(extra).expect("extra toml"));
    let p = dir.join(name);
    std::fs::write(&p, toml::to_string(&cfg).expect("config text")).expect("writing the config");
    p
}

fn opts(capture: &Path, config: &Path, out: PathBuf) -> Options {
    Options {
        capture: capture.to_owned(),
        config: config.to_owned(),
        compare: None,
        n2_config: None,
        local: Vec::new(),
        out,
        pacing: Pacing::AsFastAsPossible,
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn same_capture_same_decisions_and_the_flood_is_staged() {
    assert_root("replay::same_capture_same_decisions_and_the_flood_is_staged");
    let dir = TempDir::new("replay-det").expect("temp dir");
    let cap = dir.path().join("flood.pcap");
    write_pcap_ns(&cap, 1, &traffic(12, true)).expect("writing the capture");
    let cfg = config(dir.path());
    let a = replay::replay(&opts(&cap, &cfg, dir.path().join("a")), &mut Quiet).expect("first replay");
    let b = replay::replay(&opts(&cap, &cfg, dir.path().join("b")), &mut Quiet).expect("second replay");
    let da = std::fs::read_to_string(dir.path().join("a/decisions.json")).expect("a's decisions");
    let db = std::fs::read_to_string(dir.path().join("b/decisions.json")).expect("b's decisions");
    assert!(a.complete() && b.complete());
    assert_eq!(da, db, "the same capture and configuration must give the same decisions");
    let r = &a.report;
    eprintln!("{}", r.markdown());
    assert_eq!(r.capture.frames_replayed, r.capture.frames_read);
    assert_eq!(r.staged_devices(), vec![format!("teid:{FLOOD_TEID:#010x}")], "only the flooding device is staged");
    let first = r.devices.iter().find(|d| d.max_stage > 0).and_then(|d| d.first_staged_s).expect("staged at a time");
    assert!((4.0..7.0).contains(&first), "staged {first:.3} s into the capture; the flood began at 4 s");
    assert!(r.actions.dropped > 10_000, "the flood was cut: {:?}", r.actions);
    assert!(r.gnbs.iter().all(|g| !g.capped) && !r.host_capped, "no cell or host stage for one device");
    for f in ["report.md", "report.json", "timeline.svg", "audit.jsonl"] {
        assert!(dir.path().join("a").join(f).exists(), "{f} written");
    }
    let md = std::fs::read_to_string(dir.path().join("a/report.md")).expect("report.md");
    assert!(md.contains("set_device_stage") && md.contains("flood"), "the decision and its reason are reported");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn benign_capture_stages_nothing_and_compare_shows_the_difference() {
    assert_root("replay::benign_capture_stages_nothing_and_compare_shows_the_difference");
    let dir = TempDir::new("replay-benign").expect("temp dir");
    let cap = dir.path().join("benign.pcap");
    write_pcap_ns(&cap, 1, &traffic(12, false)).expect("writing the capture");
    let cfg = config(dir.path());
    let o = replay::replay(&opts(&cap, &cfg, dir.path().join("out")), &mut Quiet).expect("replay");
    let r = &o.report;
    assert!(r.capture.complete);
    assert_eq!(r.capture.frames_replayed, u64::from(BENIGN) * 60);
    assert!(r.staged_devices().is_empty(), "benign traffic staged {:?}", r.staged_devices());
    assert_eq!(r.actions.dropped, 0);

    // The flood capture, with the lab's config against one whose profile is far above the flood:
    // the comparison lists the device only A staged.
    let flood = dir.path().join("flood.pcap");
    write_pcap_ns(&flood, 1, &traffic(10, true)).expect("writing the capture");
    let lax = config_with(
        dir.path(),
        "lax.toml",
        "[dataplane]\nobserve = { pps = 5000, burst = 10000 }\n[classify]\nmin_profile_pps = 3000.0\n",
    );
    let mut o = opts(&flood, &cfg, dir.path().join("cmp"));
    o.compare = Some(lax);
    let out = replay::replay(&o, &mut Quiet).expect("replay with --compare");
    let (_, c) = out.compared.expect("a comparison");
    assert_eq!(c.staged_only_a, vec![format!("teid:{FLOOD_TEID:#010x}")]);
    assert!(c.staged_only_b.is_empty() && c.staged_both.is_empty(), "{c:?}");
    assert!(dir.path().join("cmp/compare.md").exists() && dir.path().join("cmp/compare/report.md").exists());
}

/// The `guard` binary on bad captures: exit status, message, and the report of what was read.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn bad_captures_fail_loudly_with_a_report_of_what_was_read() {
    assert_root("replay::bad_captures_fail_loudly_with_a_report_of_what_was_read");
    let dir = TempDir::new("replay-bad").expect("temp dir");
    let cfg = config(dir.path());
    let bin = labkit::guard_bin::for_test();
    let frames = traffic(2, false);
    let n = frames.len();
    let good = dir.path().join("good.pcap");
    write_pcap_ns(&good, 1, &frames).expect("capture");
    let bytes = std::fs::read(&good).expect("read back");

    let truncated = dir.path().join("truncated.pcap");
    std::fs::write(&truncated, &bytes[..bytes.len() - 20]).expect("write");
    let wifi = dir.path().join("wifi.pcap");
    write_pcap_ns(&wifi, 105, &frames[..3]).expect("capture");
    // Frame 31 half a second before frame 30.
    let mut late = frames.clone();
    late[30].0 = late[29].0 - 500_000_000;
    let disorder = dir.path().join("disorder.pcap");
    write_pcap_ns(&disorder, 1, &late).expect("capture");
    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all, just text").expect("write");

    for (cap, words, read) in [
        (&truncated, "truncated", Some(n as u64 - 1)),
        (&wifi, "link type 105", Some(0)),
        (&disorder, "out of time order", Some(30)),
        (&garbage, "not a pcap or pcapng", None),
    ] {
        let out = dir.path().join(format!("out-{}", cap.file_stem().and_then(|s| s.to_str()).unwrap_or("x")));
        let o = Command::new(&bin)
            .arg("replay")
            .arg(cap)
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("running guard replay");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{}: exit 0 on a bad capture; stderr: {err}", cap.display());
        assert!(err.contains(words), "{}: the message names the problem ({words}): {err}", cap.display());
        if let Some(read) = read {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json written"))
                    .expect("report.json parses");
            assert_eq!(json["capture"]["complete"], false, "{}", cap.display());
            assert_eq!(json["capture"]["frames_read"], read, "{}", cap.display());
            let md = std::fs::read_to_string(out.join("report.md")).expect("report.md written");
            assert!(md.contains("INCOMPLETE"), "{}: the markdown says it is incomplete", cap.display());
        }
    }
    // The good file: exit 0.
    let o = Command::new(&bin)
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out-good"))
        .arg(&good)
        .output()
        .expect("running guard replay");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{n} frames replayed")));
}

/// A pcapng that scapy (an encoder that is not ours) writes: an IPv6-outer flood behind an
/// 802.1Q tag and IPv4-outer benign devices behind QinQ tags, nanosecond timestamps.
const SCAPY_CAPTURE: &str = r#"
import sys
from scapy.all import Ether, Dot1Q, IP, IPv6, UDP, Raw
from scapy.contrib.gtp import GTP_U_Header
from scapy.utils import wrpcapng
t0 = 1764936000.0
# Explicit MACs: without them scapy resolves the destination by ARP / neighbour discovery on the
# host's own interfaces, which a test must never send anything to.
MACS = dict(src="02:00:00:00:00:11", dst="02:00:00:00:00:01")
pkts = []
for d in range(10):
    for k in range(50):
        p = (Ether(**MACS) / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(src="10.200.0.%d" % (11 + d % 2), dst="10.200.0.1")
             / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x100000 + d, gtp_type=255)
             / IP(src="10.45.0.%d" % (2 + d), dst="192.0.2.10") / UDP(sport=4000, dport=5000) / Raw(b"m" * 20))
        p.time = t0 + k * 0.2 + d * 0.007
        pkts.append(p)
for k in range(8000):
    p = (Ether(**MACS) / Dot1Q(vlan=30) / IPv6(src="2001:db8::11", dst="2001:db8::1")
         / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0xff0002, gtp_type=255)
         / IP(src="10.45.1.2", dst="192.0.2.10") / UDP(sport=4000, dport=5000) / Raw(b"f" * 20))
    p.time = t0 + 4.0 + k * 0.0005
    pkts.append(p)
pkts.sort(key=lambda p: p.time)
wrpcapng(sys.argv[1], pkts)
"#;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn scapy_pcapng_with_vlan_tags_and_ipv6_outer() {
    assert_root("replay::scapy_pcapng_with_vlan_tags_and_ipv6_outer");
    let dir = TempDir::new("replay-scapy").expect("temp dir");
    let cap = dir.path().join("scapy.pcapng");
    labkit::oracle::run_python(SCAPY_CAPTURE, &[&cap.display().to_string()]).expect("scapy writes the capture (~20 s)");
    let cfg = config(dir.path());
    let o = replay::replay(&opts(&cap, &cfg, dir.path().join("out")), &mut Quiet).expect("replay");
    let r = &o.report;
    assert!(r.capture.complete, "{:?}", r.capture.error);
    assert_eq!(r.capture.format, "pcapng");
    assert_eq!(r.capture.frames_replayed, 500 + 8_000);
    assert_eq!(r.verdicts.get("pass_not_gtp"), None, "every frame was parsed as GTP-U: {:?}", r.verdicts);
    assert_eq!(r.staged_devices(), vec!["teid:0x00ff0002".to_owned()], "the IPv6-outer flood, only");
    let flood_gnb = r.devices.iter().find(|d| d.max_stage > 0).map(|d| d.gnb.clone()).unwrap_or_default();
    assert_eq!(flood_gnb, "2001:db8::11", "the gNB is the outer IPv6 source");
}
