//! scapy as the independent encoder: frames crafted by `scapy.contrib.gtp` (GTP_U_Header,
//! GTPPDUSessionContainer) are parsed by `guard_common::parse::n3::parse`, which must recover
//! exactly what scapy was told. The same cases built by labkit's builder must parse the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use guard_common::abi::{L3Addr, FAMILY_IPV4, FAMILY_IPV6, QFI_NONE};
use guard_common::parse::n3::{self, N3};
use labkit::frames::{self, GtpFrame};
use labkit::oracle::{run_python, TempDir};
use labkit::pcap::read_pcap;
use serde::Serialize;

/// The QoS Monitoring timestamps of the "qmp" chains, as the scapy script sets them.
const QMP_STAMPS: [u64; 3] = [0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324_2526_2728];

const SCAPY_SCRIPT: &str = r#"
import json, sys
from scapy.all import Ether, Dot1Q, Dot1AD, IP, IPv6, UDP, Raw, wrpcap
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer, GTP_UDPPort_ExtensionHeader

# QoS Monitoring timestamps (TS 38.415 5.5.2.2): a UL container of 7 units.
QMP = dict(QMP=1, dlSendTimeRpt=0x0102030405060708, dlRecvTime=0x1112131415161718,
           ulSendTime=0x2122232425262728)

def l3(src, dst):
    return IPv6(src=src, dst=dst) if ':' in src else IP(src=src, dst=dst)

cases = json.load(open(sys.argv[1]))
pkts = []
for c in cases:
    p = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
    if len(c['vlans']) == 2:
        p = p / Dot1AD(vlan=c['vlans'][0]) / Dot1Q(vlan=c['vlans'][1])
    elif len(c['vlans']) == 1:
        p = p / Dot1Q(vlan=c['vlans'][0])
    p = p / l3(c['outer_src'], c['outer_dst']) / UDP(sport=2152, dport=2152)
    g = dict(teid=c['teid'], gtp_type=c['msg'])
    ch = c['chain']
    if c['qfi'] is not None:
        g.update(E=1, next_ex=0x40 if ch.startswith('udp') else 0x85)
    if c['seq'] is not None:
        g.update(S=1, seq=c['seq'])
    p = p / GTP_U_Header(**g)
    if c['qfi'] is not None:
        if ch.startswith('udp'):
            p = p / GTP_UDPPort_ExtensionHeader(udp_port=2152, next_ex=0x85)
        extra = QMP if 'qmp' in ch else {}
        p = p / GTPPDUSessionContainer(type=1, QFI=c['qfi'], NextExtHdr=0x40 if ch.endswith('udp') else 0, **extra)
        if ch.endswith('udp'):
            p = p / GTP_UDPPort_ExtensionHeader(udp_port=2152, next_ex=0)
    if c['inner_src'] is not None:
        p = p / l3(c['inner_src'], c['inner_dst']) / UDP(sport=40000, dport=50000) / Raw(b'\x00' * 32)
    pkts.append(p)
wrpcap(sys.argv[2], pkts)
print(len(pkts))
"#;

/// What scapy is told, and what the parser must find.
#[derive(Clone, Debug, Serialize)]
struct Case {
    name: &'static str,
    teid: u32,
    msg: u8,
    qfi: Option<u8>,
    /// The extension-header chain around the PDU Session Container (when `qfi` is set): "" the
    /// one-unit container alone; "qmp" a 7-unit container (QoS Monitoring timestamps); "qmp+udp"
    /// and "udp+qmp" that container followed or preceded by a UDP Port header. A walk that reads
    /// a Next Extension Header Type from the wrong unit of a multi-unit header fails these.
    chain: &'static str,
    seq: Option<u16>,
    /// Outermost first; two tags means 802.1ad + 802.1Q.
    vlans: Vec<u16>,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    inner_src: Option<IpAddr>,
    inner_dst: Option<IpAddr>,
}

impl Case {
    /// The same frame from labkit's builder.
    fn builder(&self) -> GtpFrame {
        let mut f = GtpFrame::message(self.msg, self.teid);
        f = match (self.outer_src, self.outer_dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => f.outer_v4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => f.outer_v6(s, d),
            _ => panic!("mixed outer families in case {}", self.name),
        };
        f = match self.vlans.as_slice() {
            [] => f,
            [v] => f.vlan(*v),
            [s, c] => f.qinq(*s, *c),
            _ => panic!("too many tags in case {}", self.name),
        };
        if let Some(q) = self.qfi {
            if self.chain.starts_with("udp") {
                f = f.udp_port_ext(frames::GTPU_PORT);
            }
            f = if self.chain.contains("qmp") { f.pdu_session_ul_qmp(q, QMP_STAMPS) } else { f.qfi(q) };
            if self.chain.ends_with("udp") {
                f = f.udp_port_ext(frames::GTPU_PORT);
            }
        }
        if let Some(s) = self.seq {
            f = f.seq(s);
        }
        match (self.inner_src, self.inner_dst) {
            (Some(IpAddr::V4(s)), Some(IpAddr::V4(d))) => f.inner_v4(s, d).payload(&[0; 32]),
            (Some(IpAddr::V6(s)), Some(IpAddr::V6(d))) => f.inner_v6(s, d).payload(&[0; 32]),
            _ => f,
        }
    }
}

fn l3(a: Option<IpAddr>) -> L3Addr {
    match a {
        None => L3Addr::NONE,
        Some(IpAddr::V4(v)) => L3Addr::v4(v.octets()),
        Some(IpAddr::V6(v)) => L3Addr::v6(v.octets()),
    }
}

fn to_ip(a: &L3Addr) -> Option<IpAddr> {
    match a.family {
        FAMILY_IPV4 => Some(IpAddr::V4(Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3]))),
        FAMILY_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(a.addr))),
        _ => None,
    }
}

fn cases() -> Vec<Case> {
    let gnb: IpAddr = Ipv4Addr::new(10, 200, 0, 11).into();
    let upf: IpAddr = Ipv4Addr::new(10, 200, 0, 1).into();
    let gnb6: IpAddr = "fd00:200::11".parse().expect("v6");
    let upf6: IpAddr = "fd00:200::1".parse().expect("v6");
    let ue: IpAddr = Ipv4Addr::new(10, 45, 0, 7).into();
    let ue6: IpAddr = "2001:db8:45::7".parse().expect("v6");
    let srv: IpAddr = Ipv4Addr::new(192, 0, 2, 10).into();
    let srv6: IpAddr = "2001:db8::10".parse().expect("v6");
    let base = Case {
        name: "",
        teid: 0,
        msg: frames::MSG_G_PDU,
        qfi: None,
        chain: "",
        seq: None,
        vlans: vec![],
        outer_src: gnb,
        outer_dst: upf,
        inner_src: Some(ue),
        inner_dst: Some(srv),
    };
    vec![
        Case { name: "v4 G-PDU QFI 9", teid: 0x0012_3456, qfi: Some(9), ..base.clone() },
        Case { name: "v4 G-PDU QFI 63 high TEID", teid: 0xffff_fff0, qfi: Some(63), ..base.clone() },
        Case { name: "v4 G-PDU no extension", teid: 77, ..base.clone() },
        Case { name: "v4 G-PDU seq + QFI 1", teid: 78, qfi: Some(1), seq: Some(0x4242), ..base.clone() },
        Case { name: "VLAN 100", teid: 0x1000, qfi: Some(5), vlans: vec![100], ..base.clone() },
        Case { name: "QinQ 300/200", teid: 0x1001, qfi: Some(6), vlans: vec![300, 200], ..base.clone() },
        Case { name: "IPv6 outer", teid: 0x2000, qfi: Some(2), outer_src: gnb6, outer_dst: upf6, ..base.clone() },
        Case {
            name: "IPv6 outer + inner, VLAN",
            teid: 0x2001,
            qfi: Some(4),
            vlans: vec![7],
            outer_src: gnb6,
            outer_dst: upf6,
            inner_src: Some(ue6),
            inner_dst: Some(srv6),
            ..base.clone()
        },
        Case { name: "v4 G-PDU 7-unit QMP container", teid: 0x3000, qfi: Some(12), chain: "qmp", ..base.clone() },
        Case {
            name: "QMP container then UDP Port, seq",
            teid: 0x3001,
            qfi: Some(13),
            chain: "qmp+udp",
            seq: Some(7),
            ..base.clone()
        },
        Case {
            name: "UDP Port then QMP container, IPv6 outer + inner",
            teid: 0x3002,
            qfi: Some(14),
            chain: "udp+qmp",
            outer_src: gnb6,
            outer_dst: upf6,
            inner_src: Some(ue6),
            inner_dst: Some(srv6),
            ..base.clone()
        },
        Case {
            name: "Echo Request",
            msg: frames::MSG_ECHO_REQUEST,
            seq: Some(1),
            inner_src: None,
            inner_dst: None,
            ..base.clone()
        },
        Case {
            name: "End Marker",
            teid: 0x0012_3456,
            msg: frames::MSG_END_MARKER,
            inner_src: None,
            inner_dst: None,
            ..base.clone()
        },
    ]
}

fn check(case: &Case, frame: &[u8], origin: &str) {
    let ctx = format!("{origin} frame for case {:?}: {frame:02x?}", case.name);
    let parsed = n3::parse(frame, frames::GTPU_PORT).unwrap_or_else(|e| panic!("parser rejected {ctx}: {e:?}"));
    let N3::Gtp(p) = parsed else { panic!("parser says not GTP-U: {ctx}") };
    assert_eq!(p.gtp.teid, case.teid, "TEID, {ctx}");
    assert_eq!(p.gtp.msg_type, case.msg, "message type, {ctx}");
    assert_eq!(p.gtp.qfi, case.qfi.unwrap_or(QFI_NONE as u8), "QFI, {ctx}");
    if case.qfi.is_some() {
        assert_eq!(p.gtp.pdu_type, frames::PDU_TYPE_UL, "PDU type, {ctx}");
        assert_eq!(p.gtp.ext_count, 1 + u8::from(case.chain.contains("udp")), "extension headers, {ctx}");
    }
    assert_eq!(usize::from(p.vlan_tags), case.vlans.len(), "VLAN tags, {ctx}");
    assert_eq!(to_ip(&p.outer_src), Some(case.outer_src), "outer source, {ctx}");
    assert_eq!(p.inner_src, l3(case.inner_src), "inner source, {ctx}");
    assert_eq!(p.inner_dst, l3(case.inner_dst), "inner destination, {ctx}");
    assert_eq!(p.gtp.end, frame.len(), "GTP-U message ends at the frame's end, {ctx}");
}

#[test]
fn parser_reads_scapy_frames() {
    let cases = cases();
    let dir = TempDir::new("labkit-scapy").expect("temp dir");
    let spec = dir.join("cases.json");
    let pcap = dir.join("scapy.pcap");
    std::fs::write(&spec, serde_json::to_vec(&cases).expect("json")).expect("write cases");
    let out = run_python(SCAPY_SCRIPT, &[spec.to_str().expect("utf-8 path"), pcap.to_str().expect("utf-8 path")])
        .expect("scapy (apt-get install -y python3-scapy)");
    assert_eq!(out.trim(), cases.len().to_string(), "scapy wrote every case");
    let frames = read_pcap(&pcap).expect("read scapy's pcap");
    assert_eq!(frames.len(), cases.len());
    for (case, frame) in cases.iter().zip(&frames) {
        check(case, frame, "scapy");
    }
}

#[test]
fn builder_and_scapy_agree_through_the_parser() {
    let cases = cases();
    let dir = TempDir::new("labkit-scapy2").expect("temp dir");
    let spec = dir.join("cases.json");
    let pcap = dir.join("scapy.pcap");
    std::fs::write(&spec, serde_json::to_vec(&cases).expect("json")).expect("write cases");
    let out = run_python(SCAPY_SCRIPT, &[spec.to_str().expect("utf-8 path"), pcap.to_str().expect("utf-8 path")])
        .expect("scapy");
    assert_eq!(out.trim(), cases.len().to_string(), "scapy wrote every case");
    let scapy = read_pcap(&pcap).expect("read scapy's pcap");
    // Every case is compared: `zip` would stop quietly at a short pcap.
    assert_eq!(scapy.len(), cases.len(), "scapy's pcap holds every case");
    for (case, s) in cases.iter().zip(&scapy) {
        let b = case.builder().build();
        check(case, &b, "builder");
        // Both encoders must put the same GTP-U message on the wire (IP/UDP headers differ in
        // incidental fields such as the IPv4 ID, DF and checksums).
        let ps = match n3::parse(s.as_slice(), frames::GTPU_PORT) {
            Ok(N3::Gtp(p)) => p,
            other => panic!("scapy frame for {}: {other:?}", case.name),
        };
        let pb = match n3::parse(b.as_slice(), frames::GTPU_PORT) {
            Ok(N3::Gtp(p)) => p,
            other => panic!("builder frame for {}: {other:?}", case.name),
        };
        let gtp_start = |p: &n3::GtpPacket| p.gtp.end - 8 - usize::from(p.gtp.length);
        assert_eq!(
            &s[gtp_start(&ps)..ps.gtp.payload],
            &b[gtp_start(&pb)..pb.gtp.payload],
            "GTP-U header bytes differ for case {:?}",
            case.name
        );
    }
}
