//! Path supervision cannot be turned against a real peer (issue 16, item 1): GTP-U Echo Requests
//! (TS 29.281 §7.2.1) through the real `guard_n3` by BPF_PROG_TEST_RUN, crafted by scapy (an
//! encoder nobody on this project wrote) and checked by tshark before they are used.
//!
//! - Below the host-wide Echo rate nothing is limited: a forger sending Echo Requests with a
//!   gNB's address cannot empty any budget the real gNB depends on, and a real gNB's
//!   retransmissions and second path all pass.
//! - Above it, each path (gNB address, host address) has its own budget: an Echo flood on one
//!   path does not silence another path of the same gNB, nor another gNB. Also through 802.1Q and
//!   an IPv6 outer header, where the host address sits at other offsets.

use std::net::IpAddr;

use guard_common::{
    abi::{GuardConfig, Limit, PROT_ALL},
    policy::{echo_path_slot, Verdict},
};
use labkit::assert_root;
use labkit::bpf::Guard;
use labkit::oracle::{run_python, tshark_fields, TempDir};
use labkit::pcap::read_pcap;

const SEC: u64 = 1_000_000_000;

/// Writes one Echo Request per line of argv[1] ("src dst seq vlan") to the pcap argv[2].
const SCAPY: &str = r#"
import sys
from scapy.all import Ether, Dot1Q, IP, IPv6, UDP, wrpcap
from scapy.contrib.gtp import GTP_U_Header, GTPEchoRequest
frames = []
for line in open(sys.argv[1]):
    src, dst, seq, vlan = line.split()
    l3 = IPv6(src=src, dst=dst) if ':' in src else IP(src=src, dst=dst)
    eth = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
    if vlan != '0':
        eth = eth / Dot1Q(vlan=int(vlan))
    frames.append(eth / l3 / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0, S=1, seq=int(seq)) / GTPEchoRequest())
wrpcap(sys.argv[2], frames)
print(len(frames))
"#;

/// Echo Requests crafted by scapy, each checked by tshark to be a GTP-U Echo Request (type 1)
/// between the addresses asked for.
fn echo_frames(specs: &[(&str, &str, u16, u16)]) -> Vec<Vec<u8>> {
    let dir = TempDir::new("echo-frames").expect("temp dir");
    let list = dir.join("echo.txt");
    let text: String = specs.iter().map(|(s, d, seq, vlan)| format!("{s} {d} {seq} {vlan}\n")).collect();
    std::fs::write(&list, text).expect("write the frame list");
    let pcap = dir.join("echo.pcap");
    let out = run_python(SCAPY, &[list.to_str().expect("utf-8"), pcap.to_str().expect("utf-8")])
        .expect("scapy (python3-scapy) builds the Echo Requests");
    assert_eq!(out.trim(), specs.len().to_string());
    let rows = tshark_fields(&pcap, &["gtp.message", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst"], None)
        .expect("tshark dissects the frames");
    assert_eq!(rows.len(), specs.len());
    for (row, (src, dst, _, _)) in rows.iter().zip(specs) {
        assert_eq!(row[0], "0x01", "tshark reads an Echo Request: {row:?}");
        let (s, d) = if src.contains(':') { (&row[2], &row[4]) } else { (&row[1], &row[3]) };
        assert_eq!((s.as_str(), d.as_str()), (*src, *dst), "tshark reads the addresses asked for");
    }
    read_pcap(&pcap).expect("read scapy's pcap")
}

fn config(echo_host: Limit) -> GuardConfig {
    GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: SEC,
        // One Echo per path per 60 s, a burst of 3 (TS 29.281 §7.2.1 plus retransmissions).
        echo: Limit::per_interval(60 * SEC, 3),
        echo_host,
        ..Default::default()
    }
}

fn run_all(g: &mut Guard, frames: &[Vec<u8>]) -> (usize, usize) {
    let (mut pass, mut drop) = (0, 0);
    for f in frames {
        let (_, d) = g.run_delta(f);
        pass += d.verdict(Verdict::PassSignalling) as usize;
        drop += d.verdict(Verdict::DropEcho) as usize;
    }
    (pass, drop)
}

fn slot(a: &str) -> usize {
    match a.parse::<IpAddr>().expect("address") {
        IpAddr::V4(v4) => echo_path_slot([u32::from(v4), 0, 0, 0]),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            echo_path_slot([w(0), w(4), w(8), w(12)])
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn below_the_host_rate_no_echo_request_is_ever_limited() {
    assert_root("verdict::n3::echo::below_the_host_rate_no_echo_request_is_ever_limited");
    // The forger: 200 Echo Requests with the real gNB's address, far more than the path budget
    // (3) and than any real peer sends, but below the host rate the UPF answers without harm.
    let forged: Vec<(&str, &str, u16, u16)> = (0..200).map(|i| ("10.200.0.11", "10.200.0.1", i, 0)).collect();
    // The real gNB afterwards: a request and its retransmissions (same sequence number), on
    // both of its paths (two host addresses).
    let real = [
        ("10.200.0.11", "10.200.0.1", 7, 0),
        ("10.200.0.11", "10.200.0.1", 7, 0),
        ("10.200.0.11", "10.200.0.1", 7, 0),
        ("10.200.0.11", "10.200.0.2", 9, 0),
        ("10.200.0.11", "10.200.0.2", 9, 0),
    ];
    let mut g = Guard::load(&config(Limit::per_second(1000, 1000))).expect("load guard_n3");
    let (pass, drop) = run_all(&mut g, &echo_frames(&forged));
    assert_eq!((pass, drop), (200, 0), "the forger's Echo Requests are answered, not limited");
    let (pass, drop) = run_all(&mut g, &echo_frames(&real));
    assert_eq!((pass, drop), (5, 0), "every real Echo Request and retransmission passes");
    let c = g.cell("10.200.0.11".parse().expect("addr")).expect("the gNB's record");
    assert_eq!((c.echo_req, c.dropped), (205, 0), "counted, none dropped");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn above_the_host_rate_each_path_keeps_its_own_budget() {
    assert_root("verdict::n3::echo::above_the_host_rate_each_path_keeps_its_own_budget");
    // Host addresses on different budget slots (as the data plane hashes them).
    let (v4a, v4b) = ("10.200.0.1", "10.200.0.2");
    let (v6a, v6b) = ("fd00:200::1", "fd00:200::2");
    assert_ne!(slot(v4a), slot(v4b), "the test's two IPv4 host addresses use two budgets");
    assert_ne!(slot(v6a), slot(v6b), "the test's two IPv6 host addresses use two budgets");
    // All frames first (one scapy run), then the verdicts back to back: the host budget refills
    // once an hour, so the time scapy takes cannot hand out extra tokens.
    let variants = [("10.200.0.11", v4a, v4b, 0u16), ("fd00:200::11", v6a, v6b, 0), ("10.200.0.11", v4a, v4b, 100)];
    let mut specs = Vec::new();
    for (gnb, local, other, vlan) in variants {
        let other_gnb = if gnb.contains(':') { "fd00:200::12" } else { "10.200.0.12" };
        specs.extend((0..50).map(|i| (gnb, local, i, vlan)));
        specs.extend((0..4).map(|i| (gnb, other, 100 + i, vlan)));
        specs.push((other_gnb, local, 1, vlan));
    }
    let frames = echo_frames(&specs);
    for (n, (gnb, local, other, vlan)) in variants.into_iter().enumerate() {
        let f = &frames[n * 55..(n + 1) * 55];
        // A host budget of 10, then an Echo flood of 50 on one path.
        let mut g = Guard::load(&config(Limit::per_interval(3600 * SEC, 10))).expect("load guard_n3");
        let (pass, drop) = run_all(&mut g, &f[..50]);
        assert_eq!((pass, drop), (10 + 3, 37), "{gnb}->{local} vlan {vlan}: the host burst, then the path's own 3");
        // The same gNB's other path, and another gNB, keep their budgets.
        let (pass, drop) = run_all(&mut g, &f[50..54]);
        assert_eq!((pass, drop), (3, 1), "{gnb}->{other}: its own budget of 3, untouched by the flood");
        let (pass, drop) = run_all(&mut g, &f[54..]);
        assert_eq!((pass, drop), (1, 0), "another gNB on the flooded host address is not affected");
    }
}
