//! G-PDUs of real PDU session types (issue 17), crafted by scapy, an encoder this project did not
//! write, and checked by tshark before a test uses them: IPv4, IPv6 (SLAAC and privacy
//! addresses, a Router Solicitation from a link-local address), Ethernet sessions (an Ethernet
//! frame as the T-PDU, TS 23.501 §5.6.10.2) and Unstructured ones (any octets, §5.6.10.3), to any
//! of the host's N3 addresses (the F-TEID, TS 29.281 §5.1).

use anyhow::{ensure, Context, Result};

use crate::oracle::{run_python, tshark_fields, TempDir};
use crate::pcap::read_pcap;

/// What a G-PDU carries.
#[derive(Clone, Debug)]
pub enum Tpdu {
    /// An IPv4 / UDP packet from `src` to `dst`.
    V4(&'static str, &'static str),
    /// An IPv6 / UDP packet from `src` to `dst`.
    V6(String, &'static str),
    /// An ICMPv6 Router Solicitation from `src` (link-local or unspecified) to ff02::2
    /// (RFC 4861 §6.3.7), what a UE sends first on an IPv6 PDU session (TS 23.501 §5.8.2.2.1).
    RouterSolicitation(&'static str),
    /// An Ethernet frame (an Ethernet PDU session) to the destination MAC given, carrying IPv4.
    Ethernet(&'static str),
    /// Unstructured octets (an Unstructured PDU session).
    Raw(Vec<u8>),
}

/// One G-PDU: outer source (the gNB), outer destination (one of the host's N3 addresses), TEID,
/// and what it carries.
#[derive(Clone, Debug)]
pub struct SessionFrame {
    pub gnb: &'static str,
    pub local: &'static str,
    pub teid: u32,
    pub tpdu: Tpdu,
}

const SCAPY: &str = r#"
import sys
from scapy.all import Ether, IP, IPv6, UDP, Raw, ICMPv6ND_RS, wrpcap
from scapy.contrib.gtp import GTP_U_Header
frames = []
for line in open(sys.argv[1]):
    gnb, local, teid, kind, a, b = line.split()
    if kind == 'v4':
        t = IP(src=a, dst=b) / UDP(sport=40000, dport=5683) / Raw(b'meter reading')
    elif kind == 'v6':
        t = IPv6(src=a, dst=b) / UDP(sport=40000, dport=5683) / Raw(b'meter reading')
    elif kind == 'rs':
        t = IPv6(src=a, dst='ff02::2', hlim=255) / ICMPv6ND_RS()
    elif kind == 'eth':
        t = Ether(src='02:00:00:00:aa:01', dst=a) / IP(src='192.168.7.2', dst='192.168.7.1') / UDP(sport=1, dport=2) / Raw(b'plc')
    else:
        t = Raw(bytes.fromhex(a))
    outer = IPv6(src=gnb, dst=local) if ':' in gnb else IP(src=gnb, dst=local)
    frames.append(Ether(src='02:00:00:00:00:11', dst='02:00:00:00:00:01') / outer / UDP(sport=2152, dport=2152)
                  / GTP_U_Header(teid=int(teid), gtp_type=255) / t)
wrpcap(sys.argv[2], frames)
print(len(frames))
"#;

/// Build the frames with scapy; tshark must read each as a G-PDU with its TEID, to the host
/// address asked for.
pub fn scapy_gpdus(specs: &[SessionFrame]) -> Result<Vec<Vec<u8>>> {
    let dir = TempDir::new("session-frames")?;
    let list = dir.join("frames.txt");
    let text: String = specs
        .iter()
        .map(|s| {
            let (kind, a, b) = match &s.tpdu {
                Tpdu::V4(a, b) => ("v4", a.to_string(), b.to_string()),
                Tpdu::V6(a, b) => ("v6", a.clone(), b.to_string()),
                Tpdu::RouterSolicitation(a) => ("rs", a.to_string(), "-".into()),
                Tpdu::Ethernet(mac) => ("eth", mac.to_string(), "-".into()),
                Tpdu::Raw(bytes) => ("raw", bytes.iter().map(|b| format!("{b:02x}")).collect(), "-".into()),
            };
            format!("{} {} {} {kind} {a} {b}\n", s.gnb, s.local, s.teid)
        })
        .collect();
    std::fs::write(&list, text)?;
    let pcap = dir.join("frames.pcap");
    let out = run_python(SCAPY, &[list.to_str().context("utf-8")?, pcap.to_str().context("utf-8")?])
        .context("scapy (python3-scapy) builds the G-PDUs")?;
    ensure!(out.trim() == specs.len().to_string(), "scapy wrote {out}");
    let rows = tshark_fields(&pcap, &["gtp.message", "gtp.teid", "ip.dst", "ipv6.dst"], None)
        .context("tshark dissects the frames")?;
    ensure!(rows.len() == specs.len(), "tshark read {} frames of {}", rows.len(), specs.len());
    for (row, s) in rows.iter().zip(specs) {
        ensure!(row[0] == "0xff", "tshark reads no G-PDU: {row:?} for {s:?}");
        let teid = u32::from_str_radix(row[1].trim_start_matches("0x"), 16).context("TEID")?;
        ensure!(teid == s.teid, "tshark reads TEID {teid:#x}, asked {:#x}", s.teid);
        // The first ip.dst / ipv6.dst is the outer header's.
        let dst = if s.local.contains(':') { &row[3] } else { &row[2] };
        ensure!(dst.split(',').next() == Some(s.local), "tshark reads outer destination {dst}, asked {}", s.local);
    }
    Ok(read_pcap(&pcap)?)
}
