//! Captures as oracles (issue 15, item 3): what the real peers exchange through the guard is
//! captured with dumpcap on both sides of the N3 veth (the RAN side: what the peers sent; the
//! CORE side: what passed the guard's XDP program, plus the GGSN's replies), and every packet is
//! read twice: by tshark (Wireshark's GTP dissector) and by the guard's own parser
//! (`guard_common::parse::n3`, both the full parser and the fast path `guard_n3` runs). For every
//! frame addressed to the GTP-U port they must agree on message type, TEID, QFI (absent for
//! sgsnemu's GTPv1-U without extension headers: agreeing on absence counts), the S flag and the
//! presence of the optional fields, and for G-PDUs the outer source and the inner addresses;
//! any disagreement fails the check. The same rows map each uplink TEID to the RAN address that
//! sent it (which sgsnemu instance, so benign or offender) and date each TEID's first packet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use guard_common::abi::{L3Addr, FAMILY_IPV4, FAMILY_NONE, QFI_NONE};
use guard_common::parse::{gtpu, n3};
use serde::Serialize;

use super::peer::PeerProc;
use crate::netns::Netns;

pub const GTPU_PORT: u16 = 2152;
pub const GTPC_PORT: u16 = 2123;

/// dumpcap on one interface of one namespace, bounded in time and size; Drop stops it.
pub struct Capture {
    proc: PeerProc,
    pub path: PathBuf,
}

impl Capture {
    /// Start capturing GTP (ports 2152 and 2123) on `iface` in `ns` into `path` (classic pcap),
    /// for at most `max_s` seconds and `max_mb` MB; returns once dumpcap says it captures.
    pub fn start(ns: &Netns, iface: &str, path: &Path, max_s: u32, max_mb: u32) -> Result<Capture> {
        let _ = std::fs::remove_file(path);
        let log = path.with_extension("dumpcap.log");
        let argv: Vec<String> = [
            "dumpcap",
            "-q",
            "-P",
            "-i",
            iface,
            "-f",
            "udp port 2152 or udp port 2123",
            "-w",
            &path.display().to_string(),
            "-a",
            &format!("duration:{max_s}"),
            "-a",
            &format!("filesize:{}", max_mb * 1000),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut proc = PeerProc::spawn("dumpcap", ns, &argv, &log, None)?;
        let end = Instant::now() + Duration::from_secs(10);
        while !proc.output().contains("Capturing on") {
            if let Some(st) = proc.exited() {
                bail!("dumpcap exited ({st}): {}", proc.tail(5));
            }
            if Instant::now() > end {
                bail!("dumpcap did not start within 10 s: {}", proc.tail(5));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Capture { proc, path: path.to_owned() })
    }

    /// Stop it (dumpcap finishes the file on SIGTERM) and return its own drop report line.
    pub fn stop(mut self) -> String {
        // Let the last packets in flight reach the file.
        std::thread::sleep(Duration::from_millis(300));
        self.proc.stop(Duration::from_secs(5));
        self.proc.output().lines().filter(|l| l.contains("received/dropped")).collect::<Vec<_>>().join("; ")
    }
}

/// Wait until none of the `files` has grown for `quiet` (what dumpcap has read is written out),
/// at most `limit`.
pub fn wait_written(files: &[&Path], quiet: Duration, limit: Duration) {
    let size = || files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum::<u64>();
    let end = Instant::now() + limit;
    let (mut last, mut since) = (size(), Instant::now());
    while Instant::now() < end && since.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(50));
        let now = size();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// One frame as tshark sees it.
#[derive(Clone, Debug, Default)]
struct TsRow {
    time: f64,
    ip_src: Vec<String>,
    ip_dst: Vec<String>,
    dst_port: Option<u16>,
    flags: Option<u8>,
    msg: Option<u8>,
    teid: Option<u32>,
    seq_present: bool,
    s_flag: Option<bool>,
    qfi: Option<u8>,
}

const FIELDS: &[&str] = &[
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "udp.dstport",
    "gtp.flags",
    "gtp.message",
    "gtp.teid",
    "gtp.seq_number",
    "gtp.flags.s",
    "gtp.ext_hdr.pdu_ses_con.qos_flow_id",
];

fn hex_or_dec(s: &str) -> Option<u64> {
    let s = s.split(',').next()?.trim();
    if s.is_empty() {
        return None;
    }
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn tshark_rows(pcap: &Path) -> Result<Vec<TsRow>> {
    // Decode both GTP ports as GTP whatever the heuristics say (they already do by default).
    let rows = crate::oracle::tshark_fields(pcap, FIELDS, None)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let f = |i: usize| r.get(i).map(String::as_str).unwrap_or("");
            let list = |i: usize| f(i).split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            TsRow {
                time: f(0).parse().unwrap_or(f64::NAN),
                ip_src: list(1),
                ip_dst: list(2),
                dst_port: hex_or_dec(f(3)).map(|v| v as u16),
                flags: hex_or_dec(f(4)).map(|v| v as u8),
                msg: hex_or_dec(f(5)).map(|v| v as u8),
                teid: hex_or_dec(f(6)).map(|v| v as u32),
                seq_present: !f(7).is_empty(),
                s_flag: match f(8).split(',').next().unwrap_or("") {
                    "" => None,
                    v => Some(v == "1" || v.eq_ignore_ascii_case("true")),
                },
                qfi: hex_or_dec(f(9)).map(|v| v as u8),
            }
        })
        .collect())
}

fn v4(a: &L3Addr) -> Option<Ipv4Addr> {
    (a.family == FAMILY_IPV4).then(|| Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3]))
}

/// What one capture showed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureCheck {
    pub side: String,
    pub frames: usize,
    /// Frames addressed to the GTP-U port, compared field by field.
    pub gtpu_compared: usize,
    pub per_message: BTreeMap<String, u64>,
    pub with_seq: u64,
    pub with_qfi: u64,
    /// Frames where the guard's full parser and its fast path differ.
    pub fast_path_mismatch: u64,
    /// Every disagreement (the first 20 spelled out).
    pub disagreements: u64,
    pub examples: Vec<String>,
    /// Uplink G-PDU TEID → the RAN address that sent it, and its first packet (Unix s).
    #[serde(skip)]
    pub teid_gnb: BTreeMap<u32, Ipv4Addr>,
    #[serde(skip)]
    pub teid_first: BTreeMap<u32, f64>,
    /// Uplink G-PDUs per TEID.
    #[serde(skip)]
    pub teid_packets: BTreeMap<u32, u64>,
    /// GTP-C Echo exchanges (port 2123; one per path and sequence number, retransmissions
    /// keep the number, TS 29.060 §7.6), those with a response (same sequence number, reverse
    /// direction), and the retransmitted request frames.
    pub gtpc_echo_requests: u64,
    pub gtpc_echo_answered: u64,
    pub gtpc_echo_retransmissions: u64,
    /// GTP-C frames towards the GGSN (uplink): what the guard must pass untouched.
    pub gtpc_uplink: u64,
    /// GTP-U Echo Requests / Responses seen.
    pub gtpu_echo_requests: u64,
    pub gtpu_echo_responses: u64,
    pub dumpcap: String,
}

impl CaptureCheck {
    /// Frames the capture itself says it lost: dumpcap's report, "Packets received/dropped on
    /// interface 'x': R/D (pcap:P/dumpcap:Q/flushed:F/ps_ifdrop:I)", D plus F (F: frames still
    /// in the kernel's buffer when it stopped, never written). A count the guard's verdicts
    /// cannot explain; 0 when there is no report.
    pub fn capture_lost(&self) -> u64 {
        let num = |after: &str| -> u64 {
            self.dumpcap
                .split(after)
                .nth(1)
                .map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
        };
        let dropped = self
            .dumpcap
            .split("': ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|rd| rd.split('/').nth(1))
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or(0);
        dropped + num("flushed:")
    }
}

fn msg_name(t: u8) -> String {
    match t {
        gtpu::MSG_G_PDU => "G-PDU".into(),
        gtpu::MSG_ECHO_REQUEST => "Echo Request".into(),
        gtpu::MSG_ECHO_RESPONSE => "Echo Response".into(),
        gtpu::MSG_ERROR_INDICATION => "Error Indication".into(),
        gtpu::MSG_END_MARKER => "End Marker".into(),
        other => format!("type {other}"),
    }
}

/// Compare tshark and the guard's parser on every frame of `pcap`; `ggsn` is the core address
/// (uplink = towards it).
pub fn check_capture(side: &str, pcap: &Path, ggsn: Ipv4Addr, dumpcap: String) -> Result<CaptureCheck> {
    let frames = crate::pcap::read_pcap(pcap).with_context(|| format!("reading {}", pcap.display()))?;
    let rows = tshark_rows(pcap)?;
    if rows.len() != frames.len() {
        bail!("{}: tshark read {} frames, the pcap reader {}", pcap.display(), rows.len(), frames.len());
    }
    let mut c = CaptureCheck { side: side.into(), frames: frames.len(), dumpcap, ..CaptureCheck::default() };
    let disagree = |c: &mut CaptureCheck, i: usize, what: String| {
        c.disagreements += 1;
        if c.examples.len() < 20 {
            c.examples.push(format!("{side} frame {}: {what}", i + 1));
        }
    };
    // GTP-C echo requests by (src, dst, seq), to match responses.
    let mut gtpc_req: BTreeMap<(String, String, u32), bool> = BTreeMap::new();
    let mut gtpc_resp: Vec<(String, String, u32)> = Vec::new();
    for (i, (frame, row)) in frames.iter().zip(&rows).enumerate() {
        let mut full = n3::GtpPacket::EMPTY;
        let mut fast = n3::GtpPacket::EMPTY;
        let res_full = n3::parse_into(&frame[..], GTPU_PORT, &mut full);
        let res_fast = n3::parse_into_fast(&frame[..], GTPU_PORT, &mut fast);
        if res_full != res_fast || (matches!(res_full, Ok(true)) && full != fast) {
            c.fast_path_mismatch += 1;
            disagree(&mut c, i, format!("full parser {res_full:?}/{full:?} vs fast path {res_fast:?}/{fast:?}"));
        }
        if row.dst_port == Some(GTPC_PORT) {
            if let (Some(m), Some(src), Some(dst)) = (row.msg, row.ip_src.first(), row.ip_dst.first()) {
                let sq = row_seq(frame).unwrap_or(0);
                if *dst == ggsn.to_string() {
                    c.gtpc_uplink += 1;
                }
                if m == gtpu::MSG_ECHO_REQUEST {
                    if gtpc_req.insert((src.clone(), dst.clone(), sq), false).is_some() {
                        c.gtpc_echo_retransmissions += 1;
                    }
                } else if m == gtpu::MSG_ECHO_RESPONSE {
                    gtpc_resp.push((dst.clone(), src.clone(), sq));
                }
            }
            if !matches!(res_full, Ok(false)) {
                disagree(&mut c, i, format!("GTP-C (port 2123) but the guard's parser says {res_full:?}"));
            }
            continue;
        }
        if row.dst_port != Some(GTPU_PORT) {
            // Not addressed to GTP-U (e.g. an Echo Response back to the prober's port): the
            // guard must pass it as not GTP-U.
            if row.msg == Some(gtpu::MSG_ECHO_RESPONSE) {
                c.gtpu_echo_responses += 1;
            }
            if !matches!(res_full, Ok(false)) {
                disagree(
                    &mut c,
                    i,
                    format!("to UDP port {:?}, yet the guard's parser says {res_full:?}", row.dst_port),
                );
            }
            continue;
        }
        c.gtpu_compared += 1;
        let Ok(true) = res_full else {
            disagree(
                &mut c,
                i,
                format!("to port 2152 and tshark reads {:?}, the guard's parser {res_full:?}", row.msg),
            );
            continue;
        };
        let g = &full.gtp;
        let Some(msg) = row.msg else {
            disagree(&mut c, i, "the guard parses GTP-U, tshark no GTP message".into());
            continue;
        };
        *c.per_message.entry(msg_name(msg)).or_insert(0) += 1;
        if msg == gtpu::MSG_ECHO_REQUEST {
            c.gtpu_echo_requests += 1;
        } else if msg == gtpu::MSG_ECHO_RESPONSE {
            c.gtpu_echo_responses += 1;
        }
        for what in compare_gtpu(row, &full) {
            disagree(&mut c, i, what);
        }
        c.with_seq += u64::from(g.flags & 0x02 != 0);
        c.with_qfi += u64::from(u32::from(g.qfi) != QFI_NONE);
        if msg == gtpu::MSG_G_PDU {
            let to_ggsn = row.ip_dst.first().is_some_and(|d| *d == ggsn.to_string());
            if let (true, Some(src)) = (to_ggsn, v4(&full.outer_src)) {
                c.teid_gnb.entry(g.teid).or_insert(src);
                c.teid_first.entry(g.teid).or_insert(row.time);
                *c.teid_packets.entry(g.teid).or_insert(0) += 1;
            }
        }
    }
    for r in gtpc_resp {
        if let Some(answered) = gtpc_req.get_mut(&r) {
            *answered = true;
        }
    }
    c.gtpc_echo_requests = gtpc_req.len() as u64;
    c.gtpc_echo_answered = gtpc_req.values().filter(|a| **a).count() as u64;
    Ok(c)
}

/// The fields of one GTP-U frame on which tshark and the guard's parser must agree; one line per
/// disagreement.
fn compare_gtpu(row: &TsRow, full: &n3::GtpPacket) -> Vec<String> {
    let g = &full.gtp;
    let mut d = Vec::new();
    if row.msg != Some(g.msg_type) {
        d.push(format!("message type: tshark {:?}, guard {}", row.msg, g.msg_type));
    }
    if row.flags != Some(g.flags) {
        d.push(format!("flags: tshark {:?}, guard {:#04x}", row.flags, g.flags));
    }
    if row.teid != Some(g.teid) {
        d.push(format!("TEID: tshark {:?}, guard {:#010x}", row.teid, g.teid));
    }
    // TS 29.281 §5.1: the sequence number, N-PDU number and next-extension octets are present
    // when any of E, S, PN is set; tshark shows gtp.seq_number exactly then.
    let guard_opt = g.flags & 0x07 != 0;
    if row.seq_present != guard_opt {
        d.push(format!("optional fields: tshark {}, guard {guard_opt}", row.seq_present));
    }
    let guard_s = g.flags & 0x02 != 0;
    if row.s_flag != Some(guard_s) {
        d.push(format!("S flag: tshark {:?}, guard {guard_s}", row.s_flag));
    }
    // QFI from a PDU Session Container (TS 38.415 §5.5.2); absent on both sides counts.
    let guard_qfi = (u32::from(g.qfi) != QFI_NONE).then_some(g.qfi);
    if row.qfi != guard_qfi {
        d.push(format!("QFI: tshark {:?}, guard {guard_qfi:?}", row.qfi));
    }
    let outer = v4(&full.outer_src).map(|a| a.to_string());
    if row.ip_src.first() != outer.as_ref() {
        d.push(format!("outer source: tshark {:?}, guard {outer:?}", row.ip_src.first()));
    }
    if g.msg_type == gtpu::MSG_G_PDU {
        let (is, id) = (v4(&full.inner_src).map(|a| a.to_string()), v4(&full.inner_dst).map(|a| a.to_string()));
        if row.ip_src.get(1) != is.as_ref() || row.ip_dst.get(1) != id.as_ref() {
            d.push(format!(
                "inner addresses: tshark {:?}→{:?}, guard {is:?}→{id:?}",
                row.ip_src.get(1),
                row.ip_dst.get(1)
            ));
        }
    } else if full.inner_src.family != FAMILY_NONE {
        d.push("the guard reads inner addresses in a non-G-PDU".into());
    }
    d
}

/// The GTPv1 sequence number of a GTP-C frame (untagged IPv4 + UDP, S flag set), read directly:
/// only used to pair Echo Requests with their responses.
fn row_seq(frame: &[u8]) -> Option<u32> {
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let g = 14 + ihl + 8;
    if frame.get(g)? & 0x02 == 0 {
        return None;
    }
    Some(u32::from(u16::from_be_bytes([*frame.get(g + 8)?, *frame.get(g + 9)?])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::GtpFrame;

    fn parsed(frame: &[u8]) -> n3::GtpPacket {
        let mut out = n3::GtpPacket::EMPTY;
        assert_eq!(n3::parse_into(frame, GTPU_PORT, &mut out), Ok(true));
        out
    }

    /// The row tshark would give for `f` when it agrees with the guard.
    fn agreeing_row(f: &n3::GtpPacket) -> TsRow {
        let a = |x: &L3Addr| v4(x).map(|a| a.to_string());
        TsRow {
            time: 0.0,
            ip_src: [a(&f.outer_src), a(&f.inner_src)].into_iter().flatten().collect(),
            ip_dst: vec!["10.200.0.1".into(), "172.20.0.1".into()],
            dst_port: Some(GTPU_PORT),
            flags: Some(f.gtp.flags),
            msg: Some(f.gtp.msg_type),
            teid: Some(f.gtp.teid),
            seq_present: f.gtp.flags & 0x07 != 0,
            s_flag: Some(f.gtp.flags & 0x02 != 0),
            qfi: (u32::from(f.gtp.qfi) != QFI_NONE).then_some(f.gtp.qfi),
        }
    }

    /// Changes one field of an agreeing row.
    type Mutation = Box<dyn Fn(&mut TsRow)>;

    #[test]
    fn every_compared_field_is_caught_when_it_differs() {
        let frame = GtpFrame::gpdu(0x33)
            .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
            .inner_v4(Ipv4Addr::new(172, 20, 0, 2), Ipv4Addr::new(172, 20, 0, 1))
            .qfi(9)
            .seq(7)
            .build();
        let f = parsed(&frame);
        let ok = agreeing_row(&f);
        assert_eq!(compare_gtpu(&ok, &f), Vec::<String>::new());
        let cases: Vec<(&str, Mutation)> = vec![
            ("message type", Box::new(|r| r.msg = Some(1))),
            ("flags", Box::new(|r| r.flags = Some(0x30))),
            ("TEID", Box::new(|r| r.teid = Some(0x34))),
            ("optional fields", Box::new(|r| r.seq_present = false)),
            ("S flag", Box::new(|r| r.s_flag = Some(false))),
            ("QFI", Box::new(|r| r.qfi = None)),
            ("outer source", Box::new(|r| r.ip_src[0] = "10.200.0.12".into())),
            ("inner addresses", Box::new(|r| r.ip_dst[1] = "172.20.0.9".into())),
        ];
        for (what, mutate) in cases {
            let mut r = ok.clone();
            mutate(&mut r);
            let d = compare_gtpu(&r, &f);
            assert!(d.iter().any(|l| l.starts_with(what)), "{what}: {d:?}");
        }
    }

    #[test]
    fn absent_qfi_agrees_only_with_absent() {
        let frame = GtpFrame::gpdu(1)
            .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
            .inner_v4(Ipv4Addr::new(172, 20, 0, 2), Ipv4Addr::new(172, 20, 0, 1))
            .seq(1)
            .build();
        let f = parsed(&frame);
        let mut r = agreeing_row(&f);
        assert_eq!(r.qfi, None);
        assert!(compare_gtpu(&r, &f).is_empty());
        r.qfi = Some(0);
        assert!(compare_gtpu(&r, &f).iter().any(|l| l.starts_with("QFI")));
    }

    #[test]
    fn tshark_numbers_read_hex_and_decimal() {
        assert_eq!(hex_or_dec("0xff"), Some(255));
        assert_eq!(hex_or_dec("0x00000033,0x1"), Some(0x33));
        assert_eq!(hex_or_dec("2152"), Some(2152));
        assert_eq!(hex_or_dec(""), None);
    }
}

#[cfg(test)]
mod capture_lost_tests {
    use super::*;

    #[test]
    fn the_capture_counts_its_own_losses_from_dumpcaps_report() {
        let c = |d: &str| CaptureCheck { dumpcap: d.to_owned(), ..CaptureCheck::default() };
        let lost =
            c("Packets received/dropped on interface 'n3': 8968/3 (pcap:0/dumpcap:0/flushed:27/ps_ifdrop:0) (99.7%)");
        assert_eq!(lost.capture_lost(), 30);
        let clean =
            c("Packets received/dropped on interface 'n3': 10028/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0) (100.0%)");
        assert_eq!(clean.capture_lost(), 0);
        assert_eq!(c("").capture_lost(), 0);
    }
}
