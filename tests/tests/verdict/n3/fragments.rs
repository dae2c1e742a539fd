//! Outer IP fragments of G-PDUs (issue 16, item 3) through the real `guard_n3` by
//! BPF_PROG_TEST_RUN, the fragments cut by scapy (`fragment`, `fragment6`: an implementation
//! nobody on this project wrote) and read back by tshark before use.
//!
//! - The first fragment carries the UDP and GTP-U headers (RFC 791 §3.2, RFC 8200 §4.5): it is
//!   judged like the whole G-PDU, so a quarantined device's fragmented flood is dropped.
//! - The later fragments of a datagram whose first fragment was dropped are dropped too (same
//!   source, destination and Identification, within `frag_window_ns`); every other later
//!   fragment passes and is counted as `pass_fragment` (the guard never drops what it cannot
//!   attribute).
//! - An IPv6 atomic fragment (RFC 6946) is a whole packet and is judged as one.

use guard_common::{
    abi::{DeviceKey, GuardConfig, PROT_ALL, STAGE_QUARANTINE},
    policy::Verdict,
};
use labkit::assert_root;
use labkit::bpf::{stage_entry, Guard};
use labkit::oracle::{run_python, TempDir};
use labkit::pcap::read_pcap;

const SEC: u64 = 1_000_000_000;
const QUARANTINED: u32 = 0x100;
const BENIGN: u32 = 0x101;

/// One case per line of argv[1]: "name teid v4|v6|atomic ident"; writes every case's frames, in
/// order, to argv[2] and prints "name count" per case.
const SCAPY: &str = r#"
import sys
from scapy.all import Ether, IP, IPv6, IPv6ExtHdrFragment, UDP, Raw, fragment, fragment6, wrpcap
from scapy.contrib.gtp import GTP_U_Header
eth = lambda: Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
out = []
for line in open(sys.argv[1]):
    name, teid, kind, ident = line.split()
    teid, ident = int(teid, 0), int(ident)
    inner = IP(src='10.45.0.2', dst='192.0.2.10') / UDP(sport=1000, dport=2000) / Raw(b'x' * 1400)
    g = UDP(sport=2152, dport=2152) / GTP_U_Header(teid=teid, gtp_type=255) / inner
    if kind == 'v4':
        frags = fragment(IP(src='10.200.0.11', dst='10.200.0.1', id=ident) / g, fragsize=800)
    elif kind == 'v6':
        frags = fragment6(IPv6(src='fd00:200::11', dst='fd00:200::1') / IPv6ExtHdrFragment(id=ident) / g, 900)
    else:
        frags = [IPv6(src='fd00:200::11', dst='fd00:200::1') / IPv6ExtHdrFragment(id=ident, offset=0, m=0) / g]
    out += [eth() / f for f in frags]
    print(name, len(frags))
wrpcap(sys.argv[2], out)
"#;

/// The frames of each case, in order, after tshark has confirmed what they are: fragments
/// (offset, more-fragments) of the Identification asked for, with a GTP-U header only in the first.
fn cases(specs: &[(&str, u32, &str, u32)]) -> Vec<(String, Vec<Vec<u8>>)> {
    let dir = TempDir::new("frag-frames").expect("temp dir");
    let list = dir.join("cases.txt");
    let text: String = specs.iter().map(|(n, t, k, i)| format!("{n} {t:#x} {k} {i}\n")).collect();
    std::fs::write(&list, text).expect("write cases");
    let pcap = dir.join("frags.pcap");
    let out = run_python(SCAPY, &[list.to_str().expect("utf-8"), pcap.to_str().expect("utf-8")])
        .expect("scapy (python3-scapy) cuts the fragments");
    let frames = read_pcap(&pcap).expect("read scapy's pcap");
    // tshark without reassembly, so each frame is dissected on its own.
    let fields = [
        "frame.number",
        "ip.flags.mf",
        "ip.frag_offset",
        "ip.id",
        "ipv6.fraghdr.offset",
        "ipv6.fraghdr.more",
        "ipv6.fraghdr.ident",
        "gtp.teid",
    ];
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-r"]).arg(&pcap);
    // The first occurrence of each field: the outer header (the inner IPv4 header of the T-PDU
    // has ip.* fields too).
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let ts = cmd.output().expect("tshark (apt-get install -y tshark)");
    assert!(ts.status.success(), "tshark: {}", String::from_utf8_lossy(&ts.stderr));
    let rows: Vec<Vec<String>> =
        String::from_utf8_lossy(&ts.stdout).lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect();
    assert_eq!(rows.len(), frames.len());
    let mut at = 0;
    let mut res = Vec::new();
    for (line, (name, teid, kind, ident)) in out.lines().zip(specs) {
        let n: usize = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("scapy's count");
        for (i, row) in rows[at..at + n].iter().enumerate() {
            let (more, off, id) = match *kind {
                "v4" => (row[1] == "1" || row[1] == "True", row[2].clone(), row[3].clone()),
                _ => (row[5] == "1" || row[5] == "True", row[4].clone(), row[6].clone()),
            };
            if *kind == "atomic" {
                assert!(!more && (off == "0" || off.is_empty()), "{name}: an atomic fragment: {row:?}");
                continue;
            }
            assert_eq!(more, i + 1 < n, "{name} fragment {i}: more-fragments flag {row:?}");
            assert_eq!(off == "0", i == 0, "{name} fragment {i}: offset {row:?}");
            let id_num = match id.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => id.parse().ok(),
            };
            assert_eq!(id_num, Some(*ident), "{name} fragment {i}: Identification {row:?}");
        }
        assert!(
            rows[at][7].contains(&format!("{teid:#x}")) || rows[at][7].contains(&format!("{teid:#010x}")),
            "{name}: GTP-U TEID in the first fragment: {:?}",
            rows[at]
        );
        res.push((name.to_string(), frames[at..at + n].to_vec()));
        at += n;
    }
    res
}

fn guard(window_ns: u64) -> Guard {
    let cfg = GuardConfig {
        gtpu_port: 2152,
        enabled: PROT_ALL,
        event_gap_ns: SEC,
        frag_window_ns: window_ns,
        ..Default::default()
    };
    let mut g = Guard::load(&cfg).expect("load guard_n3");
    g.set_stage(&DeviceKey::teid(QUARANTINED), &stage_entry(STAGE_QUARANTINE, 0, 0, 600 * SEC));
    g
}

fn verdicts(g: &mut Guard, frames: &[Vec<u8>]) -> Vec<Verdict> {
    frames
        .iter()
        .map(|f| {
            let (_, d) = g.run_delta(f);
            let moved = d.moved_verdicts();
            assert_eq!(moved.len(), 1, "one verdict per frame: {moved:?}");
            moved[0].0
        })
        .collect()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_dropped_first_fragment_takes_its_later_fragments_with_it_and_nothing_else() {
    assert_root("verdict::n3::fragments::a_dropped_first_fragment_takes_its_later_fragments_with_it_and_nothing_else");
    let c = cases(&[
        ("quarantined-v4", QUARANTINED, "v4", 1),
        ("benign-v4", BENIGN, "v4", 2),
        ("quarantined-v6", QUARANTINED, "v6", 3),
        ("benign-v6", BENIGN, "v6", 4),
        ("atomic-quarantined", QUARANTINED, "atomic", 5),
        ("atomic-benign", BENIGN, "atomic", 6),
    ]);
    let mut g = guard(50_000_000);
    let by = |n: &str| c.iter().find(|(name, _)| name == n).map(|(_, f)| f.clone()).expect("case");
    let q4 = verdicts(&mut g, &by("quarantined-v4"));
    assert_eq!(
        q4,
        vec![Verdict::DropQuarantine, Verdict::DropFragment],
        "IPv4: judged by the first, followed by the rest"
    );
    let b4 = verdicts(&mut g, &by("benign-v4"));
    assert_eq!(b4, vec![Verdict::PassGpdu, Verdict::PassFragment], "a benign datagram from the same gNB passes whole");
    assert_eq!(g.teid(BENIGN).map(|d| d.packets()), Some(1), "the first fragment counts for its device");
    let q6 = verdicts(&mut g, &by("quarantined-v6"));
    assert_eq!(q6.first(), Some(&Verdict::DropQuarantine), "IPv6 first fragment: {q6:?}");
    assert!(q6[1..].iter().all(|v| *v == Verdict::DropFragment), "IPv6 later fragments: {q6:?}");
    let b6 = verdicts(&mut g, &by("benign-v6"));
    assert_eq!(b6.first(), Some(&Verdict::PassGpdu), "{b6:?}");
    assert!(b6[1..].iter().all(|v| *v == Verdict::PassFragment), "{b6:?}");
    assert_eq!(
        verdicts(&mut g, &by("atomic-quarantined")),
        vec![Verdict::DropQuarantine],
        "an atomic fragment is whole"
    );
    assert_eq!(verdicts(&mut g, &by("atomic-benign")), vec![Verdict::PassGpdu]);
    // A later fragment whose first was never seen: not attributable, passed and counted.
    let lone = &by("quarantined-v4")[1];
    let mut fresh = guard(50_000_000);
    assert_eq!(verdicts(&mut fresh, std::slice::from_ref(lone)), vec![Verdict::PassFragment]);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn later_fragments_pass_once_the_window_has_closed() {
    assert_root("verdict::n3::fragments::later_fragments_pass_once_the_window_has_closed");
    let c = cases(&[("quarantined", QUARANTINED, "v4", 9)]);
    // A window of 1 ns: closed once the (coarse, jiffy-stepped) clock has moved on.
    let mut g = guard(1);
    assert_eq!(verdicts(&mut g, &c[0].1[..1]), vec![Verdict::DropQuarantine]);
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(verdicts(&mut g, &c[0].1[1..]), vec![Verdict::PassFragment], "after the window: passed");
    // And within a window of a second, the same datagram's later fragment is dropped.
    let mut g = guard(SEC);
    assert_eq!(verdicts(&mut g, &c[0].1), vec![Verdict::DropQuarantine, Verdict::DropFragment]);
}

/// A later fragment re-keys its CPU's clock cache (`clock::n3_ns`), and so sets the CPU's owner
/// mark, as a G-PDU does: a CPU whose first packet in a tick is a later fragment must still stamp
/// the device records it then inserts as its own (`DeviceState::owner`, CPU id + 1). A re-key that
/// skipped the mark would leave 0, the mark of records no CPU owns, for the rest of the tick.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_cpu_whose_first_packet_is_a_later_fragment_owns_what_it_inserts() {
    assert_root("verdict::n3::fragments::a_cpu_whose_first_packet_is_a_later_fragment_owns_what_it_inserts");
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    assert!(cpus >= 2, "this test moves between two CPUs; this machine has {cpus}");
    let c = cases(&[("quarantined", QUARANTINED, "v4", 21)]);
    let mut g = guard(SEC);
    // The first fragment dropped on CPU 1, so CPU 0's scratch (a fresh load's) is never touched.
    g.on_cpu(1);
    assert_eq!(verdicts(&mut g, &c[0].1[..1]), vec![Verdict::DropQuarantine]);
    g.on_cpu(0);
    assert_eq!(verdicts(&mut g, &c[0].1[1..]), vec![Verdict::DropFragment], "CPU 0's first packet");
    let gpdu = labkit::frames::GtpFrame::gpdu(0x77)
        .outer_v4(std::net::Ipv4Addr::new(10, 200, 0, 11), std::net::Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(std::net::Ipv4Addr::new(10, 45, 0, 9), std::net::Ipv4Addr::new(192, 0, 2, 10))
        .build();
    assert_eq!(verdicts(&mut g, &[gpdu]), vec![Verdict::PassGpdu], "a new device, right after, on CPU 0");
    let d = g.teid(0x77).expect("the new device's record");
    assert_eq!((d.owner, d.own_packets, d.other_packets), (1, 1, 0), "CPU 0 owns the record it inserted: {d:?}");
}
