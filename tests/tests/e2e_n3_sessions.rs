//! Real PDU session variants over veth (issue 17): G-PDUs crafted by scapy and checked by tshark
//! (`labkit::sessions`) are sent from the RAN namespace to the CORE side, where `guard_n3` is
//! attached with every protection enforced, anti-spoofing included; labkit's sink, not the
//! guard's counters, says what was delivered.
//!
//! - two UPF addresses on the host with colliding TEIDs: quarantining one session (by its
//!   F-TEID) cuts only that one;
//! - an IPv6 session (a Router Solicitation from fe80::, SLAAC and privacy addresses inside its
//!   /64), an IPv4v6 session, an Ethernet and an Unstructured session whose T-PDUs start like
//!   IPv4: all delivered in full, none counted as a spoof;
//! - forged inner sources on those sessions (another IPv4 address, another /64): dropped, and
//!   nothing else is.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use guard_common::{
    abi::{DeviceKey, GuardConfig, PROT_ALL, STAGE_QUARANTINE},
    policy::Verdict,
};
use labkit::bpf::stage_entry;
use labkit::lab::{CORE_MAC, GNB_V4_BASE, RAN_MAC};
use labkit::sessions::{scapy_gpdus, SessionFrame, Tpdu};
use labkit::{assert_root, send_frames, Lab, SendOpts, Sink};

const SEC: u64 = 1_000_000_000;
/// The lab's CORE address, and a second N3 address of the same host (another UPF instance).
const UPF_A: &str = "10.200.0.1";
const UPF_B: &str = "10.200.0.2";
/// The lab's first gNB (`labkit::lab::GNB_V4_BASE`).
const GNB: &str = "10.200.0.11";
/// Paced well below what a veth's XDP ring absorbs, so nothing is lost before XDP.
const PPS: u64 = 20_000;

/// One session's frame and what must happen to it.
struct Case {
    frame: SessionFrame,
    delivered: bool,
}

fn case(local: &'static str, teid: u32, tpdu: Tpdu, delivered: bool) -> Case {
    Case { frame: SessionFrame { gnb: GNB, local, teid, tpdu }, delivered }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn real_session_variants_are_delivered_and_only_forgeries_and_the_staged_session_cut() {
    assert_root("e2e_n3_sessions::real_session_variants_are_delivered_and_only_forgeries_and_the_staged_session_cut");
    let teid = 0x0000_0100;
    let v6 = |s: &str| Tpdu::V6(s.to_owned(), "2001:db8:ffff::10");
    let mut raw45 = vec![0x45, 0x00, 0x00];
    raw45.extend_from_slice(&[0x5a; 29]);
    // Benign frames first: each session's first packet is its own, so bindings are the real ones.
    let cases = vec![
        case(UPF_A, teid, Tpdu::V4("10.45.0.2", "192.0.2.10"), true),
        case(UPF_B, teid, Tpdu::V4("10.46.0.9", "192.0.2.10"), false), // quarantined by F-TEID
        case(UPF_A, 0x200, Tpdu::RouterSolicitation("fe80::1c2d:3eff:fe4f:5a6b"), true),
        case(UPF_A, 0x200, v6("2001:db8:45:7:1c2d:3eff:fe4f:5a6b"), true),
        case(UPF_A, 0x200, v6("2001:db8:45:7:8a1f:22c4:9e01:7b3d"), true),
        case(UPF_A, 0x200, v6("2001:db8:45:7:51e0:aa12:3c4d:ee01"), true),
        case(UPF_A, 0x300, Tpdu::V4("10.45.0.7", "192.0.2.10"), true),
        case(UPF_A, 0x300, v6("2001:db8:45:9::7"), true),
        case(UPF_A, 0x400, Tpdu::Ethernet("45:00:00:54:00:01"), true),
        case(UPF_A, 0x401, Tpdu::Raw(raw45), true),
        // Forgeries on live sessions.
        case(UPF_A, 0x300, Tpdu::V4("10.45.0.66", "192.0.2.10"), false),
        case(UPF_A, 0x200, v6("2001:db8:99:7::66"), false),
    ];
    assert_eq!(GNB, GNB_V4_BASE.to_string());
    let specs: Vec<SessionFrame> = cases.iter().map(|c| c.frame.clone()).collect();
    let mut frames = scapy_gpdus(&specs).unwrap_or_else(|e| panic!("{e:#}"));
    // The lab's MACs (what tshark checked is unchanged: GTP-U and everything inside it).
    for f in &mut frames {
        f[0..6].copy_from_slice(&CORE_MAC);
        f[6..12].copy_from_slice(&RAN_MAC);
    }

    let lab = Lab::new().expect("lab");
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() };
    let mut guard = lab.attach_guard("e2e-sess", &cfg);
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let table = guard.maps.sync_local_addrs(&[(ip(UPF_A), 0), (ip(UPF_B), 0)]).expect("N3 addresses");
    let ib = table.index_of(ip(UPF_B)).expect("B listed");
    guard.set_stage(&DeviceKey::fteid(ib, teid), &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC));

    // One round in order (bindings form from the benign frames), then the rest round-robin.
    let n = 12 * 1000;
    let before = guard.counters();
    let sink = Sink::start(&lab.core, lab.core_ifname()).expect("sink");
    let sent = send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(n, Duration::from_secs(10)).pps(PPS))
        .expect("send");
    assert_eq!(sent.sent, n, "the generator hit its deadline: {sent:?}");
    sink.wait_quiet(Duration::from_millis(200), Duration::from_secs(5));
    let got = sink.stop().expect("sink report");
    assert_eq!(got.kernel_drops, 0, "the sink's socket overflowed: its counts are not evidence");
    let d = guard.counters().since(&before);
    println!(
        "sent {:?}; sink per UE {:?}, per TEID {:?}; verdicts {:?}",
        sent.per_frame,
        got.per_ue,
        got.per_teid,
        d.moved_verdicts()
    );

    // Delivered per frame: by inner source where it is unique to the frame, by TEID for the
    // non-IP sessions.
    let per = |i: usize| sent.per_frame[i];
    let ue = |s: &str| got.per_ue.get(&ip(s)).copied().unwrap_or(0);
    let checks: BTreeMap<&str, (u64, u64, bool)> = BTreeMap::from([
        ("UPF A session (10.45.0.2)", (ue("10.45.0.2"), per(0), true)),
        ("UPF B session, same TEID, quarantined (10.46.0.9)", (ue("10.46.0.9"), per(1), false)),
        ("Router Solicitation (fe80::)", (ue("fe80::1c2d:3eff:fe4f:5a6b"), per(2), true)),
        ("SLAAC address", (ue("2001:db8:45:7:1c2d:3eff:fe4f:5a6b"), per(3), true)),
        ("privacy address 1", (ue("2001:db8:45:7:8a1f:22c4:9e01:7b3d"), per(4), true)),
        ("privacy address 2", (ue("2001:db8:45:7:51e0:aa12:3c4d:ee01"), per(5), true)),
        ("IPv4v6 session, IPv4", (ue("10.45.0.7"), per(6), true)),
        ("IPv4v6 session, IPv6", (ue("2001:db8:45:9::7"), per(7), true)),
        ("Ethernet session", (got.teid(0x400), per(8), true)),
        ("Unstructured session starting 0x45", (got.teid(0x401), per(9), true)),
        ("forged IPv4 source", (ue("10.45.0.66"), per(10), false)),
        ("forged IPv6 /64", (ue("2001:db8:99:7::66"), per(11), false)),
    ]);
    for (what, (r, s, delivered)) in &checks {
        assert!(*s > 0, "{what}: nothing sent");
        if *delivered {
            assert!(*r <= *s && r * 100 >= s * 99, "{what}: delivered {r} of {s} (< 99%)");
        } else {
            assert_eq!(*r, 0, "{what}: delivered {r} of {s}");
        }
    }
    assert_eq!(cases.iter().filter(|c| !c.delivered).count(), 3);
    // The guard agrees: the forgeries were dropped as spoofs, the staged session as quarantined,
    // and nothing else was dropped.
    assert_eq!(d.verdict(Verdict::DropSpoof), per(10) + per(11), "DropSpoof vs forged sent");
    assert_eq!(d.verdict(Verdict::DropQuarantine), per(1), "DropQuarantine vs the staged session's sent");
    let dropped: u64 = d.moved_verdicts().iter().filter(|(v, _)| v.is_drop()).map(|(_, n)| n).sum();
    assert_eq!(dropped, per(1) + per(10) + per(11), "only the forgeries and the staged session were dropped");
    let a = guard.device(&DeviceKey::fteid(table.index_of(ip(UPF_A)).expect("A"), teid)).expect("A's session");
    assert_eq!((a.dropped(), a.spoofed), (0, 0), "the session on A with the colliding TEID: {a:?}");
    for t in [0x400, 0x401] {
        let s = guard.device(&DeviceKey::fteid(table.index_of(ip(UPF_A)).expect("A"), t)).expect("non-IP session");
        assert_eq!((s.non_ip, s.dropped(), s.spoofed), (s.packets(), 0, 0), "{t:#x}: {s:?}");
    }
}
