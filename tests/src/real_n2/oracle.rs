//! Captures as oracles (issue 15, item 3): every SCTP packet the real peers exchanged through the
//! guard's interface is read twice, by the guard's own N2 parser (`guard_common::parse::n2`, the
//! code the XDP program runs) and by tshark's SCTP / NGAP dissectors, and the two must agree on
//! - the chunk types (as the guard's chunk classes, RFC 9260 §3.2; the walk covers `n2::MAX_CHUNKS`, 16),
//! - the NGAP messages: PDU choice and procedure code (TS 38.413 §9.4), as the guard's
//!   procedure classes,
//! - each InitialUEMessage's IEs (TS 38.413 §9.2.5.1): RAN-UE-NGAP-ID, NR-CGI (PLMN, NCI), TAC,
//!   5G-S-TMSI (AMF Set ID, AMF Pointer, 5G-TMSI) and RRCEstablishmentCause.
//!
//! Any difference is a disagreement and fails the check. An InitialUEMessage that starts past the
//! parser's read window (`WIDE_PARSE_OFFSET`, past any IP packet) is not read: counted apart.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use guard_common::abi_n2::*;
use guard_common::parse::n2;
use guard_common::parse::ngap::{InitialUe, NgapError, UE_HAS_RRC_CAUSE, UE_HAS_S_TMSI};
use serde::Serialize;
use serde_json::Value;

use crate::oracle::tshark_fields;
use crate::pcap::read_pcap;

const NGAP_PORT: u16 = 38412;

/// What the comparison found, and what the capture shows per source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OracleResult {
    pub frames: u64,
    /// Frames to the NGAP port, which the parser reads.
    pub frames_n2: u64,
    pub chunks_compared: u64,
    /// tshark's chunk types over every frame (RFC 9260 §3.2 numbers).
    pub chunk_types: BTreeMap<u8, u64>,
    pub ngap_messages: u64,
    /// tshark's NGAP messages by "pdu/procedureCode" (pdu 0 initiating, 1 successful).
    pub ngap_procs: BTreeMap<String, u64>,
    pub initial_ue_compared: u64,
    pub initial_ue_with_s_tmsi: u64,
    pub initial_ue_extension_cause: u64,
    pub initial_ue_beyond_window: u64,
    /// Packets whose DATA chunks go past the 16-chunk walk: their NGAP is not compared.
    pub ngap_beyond_walk: u64,
    pub disagreements: u64,
    /// The first disagreements, for the report.
    pub examples: Vec<String>,
    /// Per source address: chunks by type (for heartbeats, aborts, INITs).
    pub per_src: BTreeMap<Ipv4Addr, BTreeMap<u8, u64>>,
    /// The victim: its own INITs (from the NGAP port, as its stack binds it), the forged ones
    /// (other ports), and ABORTs with the T bit (RFC 9260 §8.4: its answer to out-of-the-blue
    /// INIT ACKs).
    pub victim_real_inits: u64,
    pub victim_forged_inits: u64,
    pub victim_aborts_t: u64,
}

impl OracleResult {
    fn disagree(&mut self, frame: usize, what: String) {
        self.disagreements += 1;
        if self.examples.len() < 12 {
            self.examples.push(format!("frame {frame}: {what}"));
        }
    }
}

/// RFC 9260 §3.2 chunk type → the guard's chunk class (written from the RFC, not taken from the
/// parser).
fn class_of(t: u8) -> usize {
    match t {
        0 => CHUNK_CLASS_DATA,
        1 => CHUNK_CLASS_INIT,
        2 => CHUNK_CLASS_INIT_ACK,
        3 => CHUNK_CLASS_SACK,
        4 => CHUNK_CLASS_HEARTBEAT,
        5 => CHUNK_CLASS_HEARTBEAT_ACK,
        6 => CHUNK_CLASS_ABORT,
        7 | 8 | 14 => CHUNK_CLASS_SHUTDOWN,
        9 => CHUNK_CLASS_ERROR,
        10 => CHUNK_CLASS_COOKIE_ECHO,
        11 => CHUNK_CLASS_COOKIE_ACK,
        _ => CHUNK_CLASS_OTHER,
    }
}

/// TS 38.413 §9.4: PDU choice (0 initiating, 1 successful, 2 unsuccessful) and procedure code
/// → the guard's procedure class.
fn proc_of(pdu: u64, code: u64) -> usize {
    match (pdu, code) {
        (0, 15) => PROC_INITIAL_UE,
        (0, 46) => PROC_UPLINK_NAS,
        (0, 21) => PROC_SETUP,
        (0, 42) => PROC_UE_CTX_RELEASE_REQ,
        (0, _) => PROC_OTHER_INITIATING,
        (1, _) => PROC_SUCCESSFUL,
        (2, _) => PROC_UNSUCCESSFUL,
        _ => PROC_UNPARSED,
    }
}

fn num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn list(s: &str) -> Vec<u64> {
    s.split(',').filter(|x| !x.is_empty()).filter_map(num).collect()
}

fn hexbytes(s: &str) -> Vec<u8> {
    s.split(':').filter_map(|b| u8::from_str_radix(b.trim(), 16).ok()).collect()
}

/// tshark's view of one InitialUEMessage.
#[derive(Debug, Default)]
struct TsUe {
    ran_ue: Option<u64>,
    nci: Option<u64>,
    plmn: Vec<u8>,
    tac: Option<u64>,
    s_tmsi: Option<(u64, u64, u64)>,
    cause: Option<u64>,
}

/// The first value under `key` anywhere in `v` (depth first).
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(key) {
                return Some(x);
            }
            m.values().find_map(|x| find(x, key))
        }
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

fn find_str(v: &Value, key: &str) -> Option<String> {
    match find(v, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|x| x.as_str().map(str::to_owned)),
        _ => None,
    }
}

fn ts_ue(msg: &Value) -> TsUe {
    let cgi = find(msg, "ngap.nR_CGI_element");
    let tmsi = find(msg, "ngap.FiveG_S_TMSI_element");
    TsUe {
        ran_ue: find_str(msg, "ngap.RAN_UE_NGAP_ID").and_then(|s| num(&s)),
        nci: cgi.and_then(|c| find_str(c, "ngap.NRCellIdentity")).and_then(|s| num(&s)),
        plmn: cgi.and_then(|c| find_str(c, "ngap.pLMNIdentity")).map(|s| hexbytes(&s)).unwrap_or_default(),
        tac: find(msg, "ngap.tAI_element").and_then(|t| find_str(t, "ngap.tAC")).and_then(|s| num(&s)),
        s_tmsi: tmsi.and_then(|t| {
            // BIT STRINGs as tshark prints them: left-aligned octets (AMF Set ID 10 bits,
            // AMF Pointer 6 bits, TS 38.413 §9.3.3.20-21).
            let set = hexbytes(&find_str(t, "ngap.aMFSetID")?);
            let ptr = hexbytes(&find_str(t, "ngap.aMFPointer")?);
            let tm = num(&find_str(t, "ngap.fiveG_TMSI")?)?;
            let set = (u64::from(*set.first()?) << 2) | u64::from(*set.get(1)? >> 6);
            Some((set, u64::from(*ptr.first()? >> 2), tm))
        }),
        cause: find_str(msg, "ngap.RRCEstablishmentCause").and_then(|s| num(&s)),
    }
}

/// tshark's InitialUEMessages per frame number (in message order).
fn tshark_initial_ues(pcap: &Path) -> Result<BTreeMap<u64, Vec<TsUe>>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "ngap.procedureCode == 15", "-T", "json", "--no-duplicate-keys", "-J", "frame ngap"])
        .output()
        .context("running tshark -T json")?;
    if !out.status.success() {
        bail!("tshark -T json failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let frames: Vec<Value> = serde_json::from_slice(&out.stdout).context("tshark's JSON")?;
    let mut by_frame = BTreeMap::new();
    for f in &frames {
        let layers = &f["_source"]["layers"];
        let Some(no) = layers["frame"]["frame.number"].as_str().and_then(num) else { continue };
        let msgs: Vec<&Value> = match &layers["ngap"] {
            Value::Array(a) => a.iter().collect(),
            v @ Value::Object(_) => vec![v],
            _ => Vec::new(),
        };
        let ues = msgs.into_iter().filter(|m| find(m, "ngap.InitialUEMessage_element").is_some()).map(ts_ue).collect();
        by_frame.insert(no, ues);
    }
    Ok(by_frame)
}

/// Compare the guard's parser with tshark on every frame of `pcap`. `victim` is the gNB whose
/// address the forged INITs carry.
pub fn compare(pcap: &Path, victim: Ipv4Addr) -> Result<OracleResult> {
    let frames = read_pcap(pcap).with_context(|| format!("reading {}", pcap.display()))?;
    let cols = [
        "frame.number",
        "ip.src",
        "sctp.srcport",
        "sctp.dstport",
        "sctp.chunk_type",
        "sctp.chunk_flags",
        "ngap.NGAP_PDU",
        "ngap.procedureCode",
    ];
    let rows = tshark_fields(pcap, &cols, None)?;
    if rows.len() != frames.len() {
        bail!("tshark read {} frames, the pcap reader {}", rows.len(), frames.len());
    }
    let ues = tshark_initial_ues(pcap)?;
    let mut r = OracleResult { frames: frames.len() as u64, ..OracleResult::default() };
    for (i, (f, row)) in frames.iter().zip(&rows).enumerate() {
        let no = i + 1;
        let col = |k: usize| row.get(k).map(String::as_str).unwrap_or("");
        let src: Option<Ipv4Addr> = col(1).split(',').next().and_then(|s| s.parse().ok());
        let (sport, dport) = (num(col(2)).unwrap_or(0), num(col(3)).unwrap_or(0));
        let types: Vec<u8> = list(col(4)).into_iter().map(|t| t as u8).collect();
        let flags: Vec<u64> = list(col(5));
        for (k, t) in types.iter().enumerate() {
            *r.chunk_types.entry(*t).or_default() += 1;
            if let Some(s) = src {
                *r.per_src.entry(s).or_default().entry(*t).or_default() += 1;
                if s == victim && *t == 1 {
                    if sport == u64::from(NGAP_PORT) {
                        r.victim_real_inits += 1;
                    } else {
                        r.victim_forged_inits += 1;
                    }
                }
                if s == victim && *t == 6 && flags.get(k).is_some_and(|f| f & 1 == 1) {
                    r.victim_aborts_t += 1;
                }
            }
        }
        let pdus = list(col(6));
        let codes = list(col(7));
        for (p, c) in pdus.iter().zip(&codes) {
            *r.ngap_procs.entry(format!("{p}/{c}")).or_default() += 1;
        }
        r.ngap_messages += codes.len() as u64;
        let parsed = match n2::parse(&f[..], NGAP_PORT, 36412) {
            Ok(p) => p,
            Err(e) => {
                r.disagree(
                    no,
                    format!("the guard's parser calls it malformed ({}); tshark: chunks {types:?}", e.name()),
                );
                continue;
            }
        };
        if dport != u64::from(NGAP_PORT) {
            if parsed.is_some() {
                r.disagree(no, format!("parsed as N2 but tshark's destination port is {dport}"));
            }
            continue;
        }
        let Some(p) = parsed else {
            r.disagree(no, "to the NGAP port but not parsed as N2".into());
            continue;
        };
        r.frames_n2 += 1;
        // Chunks: the walk covers the first MAX_CHUNKS (RFC 9260 allows any number).
        let walked = &types[..types.len().min(n2::MAX_CHUNKS)];
        let mut want = [0u8; 16];
        for t in walked {
            want[class_of(*t)] += 1;
        }
        r.chunks_compared += walked.len() as u64;
        if want != p.pkt.chunk_counts || usize::from(p.pkt.chunks) != walked.len() {
            r.disagree(no, format!("chunk classes: tshark types {types:?}, parser counts {:?}", p.pkt.chunk_counts));
        }
        // NGAP messages, when every DATA chunk was walked.
        let data_walked = walked.iter().filter(|t| **t == 0).count();
        let data_all = types.iter().filter(|t| **t == 0).count();
        if data_walked == data_all {
            let mut want = [0u8; PROC_CLASS_COUNT];
            for (pdu, code) in pdus.iter().zip(&codes) {
                want[proc_of(*pdu, *code)] += 1;
            }
            if want != p.pkt.procs {
                r.disagree(no, format!("NGAP procedures: tshark {pdus:?}/{codes:?}, parser classes {:?}", p.pkt.procs));
            }
        } else {
            r.ngap_beyond_walk += 1;
        }
        compare_ues(&mut r, no, &p, ues.get(&(no as u64)).map(Vec::as_slice).unwrap_or(&[]));
    }
    Ok(r)
}

/// The fields of one InitialUEMessage on which the guard's walk and tshark differ.
fn ue_diffs(t: &TsUe, u: &InitialUe) -> Vec<String> {
    let mut bad = Vec::new();
    if t.ran_ue != Some(u64::from(u.ran_ue_id)) {
        bad.push(format!("RAN-UE-NGAP-ID {} vs {:?}", u.ran_ue_id, t.ran_ue));
    }
    // tshark prints the 36-bit NR Cell Identity itself (§9.3.1.7), as the guard keeps it.
    if u.cell_kind != CELL_KIND_NR || t.nci != Some(u.cell_id) {
        bad.push(format!("NR-CGI NCI {:#x} (kind {}) vs {:?}", u.cell_id, u.cell_kind, t.nci));
    }
    if t.plmn.as_slice() != &u.plmn[..3] {
        bad.push(format!("PLMN {:02x?} vs {:02x?}", &u.plmn[..3], t.plmn));
    }
    if t.tac != Some(u64::from(u.tac)) {
        bad.push(format!("TAC {} vs {:?}", u.tac, t.tac));
    }
    let ours = (u.present & UE_HAS_S_TMSI != 0)
        .then(|| (u64::from(u.amf_set_id()), u64::from(u.amf_pointer()), u64::from(u.tmsi)));
    if ours != t.s_tmsi {
        bad.push(format!("5G-S-TMSI {ours:?} vs {:?}", t.s_tmsi));
    }
    // RRCEstablishmentCause is an extensible ENUMERATED with 10 root values (§9.3.1.111): the
    // guard reports the enumeration's own number, extension values after the roots
    // (notAvailable 10, mo-ExceptionData 11), as tshark does.
    let want_cause = t.cause.map(|c| c as u32);
    let got_cause = (u.present & UE_HAS_RRC_CAUSE != 0).then_some(u.rrc_cause);
    if want_cause != got_cause {
        bad.push(format!("RRCEstablishmentCause {got_cause:?} vs {:?}", t.cause));
    }
    bad
}

fn compare_ues(r: &mut OracleResult, no: usize, p: &n2::N2Parsed, ts: &[TsUe]) {
    let n = usize::from(p.pkt.ue_count);
    if n != ts.len().min(n2::MAX_UE_MSGS) || usize::from(p.pkt.ue_skipped) != ts.len().saturating_sub(n) {
        r.disagree(no, format!("InitialUEMessages: tshark {}, parser {n} (+{} skipped)", ts.len(), p.pkt.ue_skipped));
        return;
    }
    for (k, t) in ts.iter().enumerate().take(n) {
        let u = match p.ues[k] {
            Some(Ok(u)) => u,
            Some(Err(NgapError::Window)) => {
                r.initial_ue_beyond_window += 1;
                continue;
            }
            other => {
                r.disagree(no, format!("InitialUEMessage {k}: parser {other:?}, tshark {t:?}"));
                continue;
            }
        };
        r.initial_ue_compared += 1;
        r.initial_ue_with_s_tmsi += u64::from(t.s_tmsi.is_some());
        r.initial_ue_extension_cause += u64::from(t.cause.is_some_and(|c| c >= 10));
        let bad = ue_diffs(t, &u);
        if !bad.is_empty() {
            r.disagree(no, format!("InitialUEMessage {k}: {}", bad.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::parse::ngap::{UE_HAS_CELL, UE_HAS_RAN_UE_ID, UE_HAS_TAC};

    /// One InitialUEMessage as tshark 4.0 prints it in `-T json` (the keys the oracle reads).
    const TSHARK_UE: &str = r#"{"ngap.NGAP_PDU_tree": {"ngap.initiatingMessage_element": {
        "ngap.procedureCode": "15", "ngap.value_element": {"ngap.InitialUEMessage_element": {
        "ngap.protocolIEs_tree": {
          "Item 0: id-RAN-UE-NGAP-ID": {"ngap.ProtocolIE_Field_element": {"ngap.value_element": {"ngap.RAN_UE_NGAP_ID": "77"}}},
          "Item 2: id-UserLocationInformation": {"ngap.ProtocolIE_Field_element": {"ngap.value_element": {
            "ngap.UserLocationInformation_tree": {"ngap.userLocationInformationNR_element": {
              "ngap.nR_CGI_element": {"ngap.pLMNIdentity": "00:f1:10", "ngap.NRCellIdentity": "0x0000000000404002"},
              "ngap.tAI_element": {"ngap.pLMNIdentity": "00:f1:11", "ngap.tAC": "1"}}}}}},
          "Item 3: id-RRCEstablishmentCause": {"ngap.ProtocolIE_Field_element": {"ngap.value_element": {"ngap.RRCEstablishmentCause": "3"}}},
          "Item 4: id-FiveG-S-TMSI": {"ngap.ProtocolIE_Field_element": {"ngap.value_element": {"ngap.FiveG_S_TMSI_element": {
            "ngap.aMFSetID": "00:40", "ngap.aMFPointer": "04", "ngap.fiveG_TMSI": "3221225473"}}}}}}}}}}"#;

    fn guard_ue() -> InitialUe {
        InitialUe {
            cell_id: 0x404002,
            present: UE_HAS_RAN_UE_ID | UE_HAS_CELL | UE_HAS_TAC | UE_HAS_S_TMSI | UE_HAS_RRC_CAUSE,
            cell_kind: CELL_KIND_NR,
            plmn: [0x00, 0xf1, 0x10, 0],
            tac: 1,
            ran_ue_id: 77,
            tmsi_hi: (1 << 6) | 1,
            tmsi: 0xc000_0001,
            rrc_cause: 3,
            ..InitialUe::default()
        }
    }

    #[test]
    fn tsharks_json_is_read_field_by_field() {
        let v: Value = serde_json::from_str(TSHARK_UE).expect("sample JSON");
        let t = ts_ue(&v);
        assert_eq!(t.ran_ue, Some(77));
        assert_eq!(t.nci, Some(0x404002));
        assert_eq!(t.plmn, vec![0x00, 0xf1, 0x10], "the NR-CGI's PLMN, not the TAI's");
        assert_eq!(t.tac, Some(1));
        // BIT STRINGs left-aligned: AMF Set ID 0000000001 (10 bits), AMF Pointer 000001 (6 bits).
        assert_eq!(t.s_tmsi, Some((1, 1, 0xc000_0001)));
        assert_eq!(t.cause, Some(3));
        assert!(ue_diffs(&t, &guard_ue()).is_empty(), "{:?}", ue_diffs(&t, &guard_ue()));
    }

    /// A field name and a change of the guard's reading of it.
    type Mutant = (&'static str, fn(&mut InitialUe));

    /// Each field the guard could get wrong is a disagreement on its own.
    #[test]
    fn every_field_difference_is_a_disagreement() {
        let t = ts_ue(&serde_json::from_str(TSHARK_UE).expect("sample JSON"));
        let mutants: [Mutant; 10] = [
            ("RAN-UE-NGAP-ID", |u| u.ran_ue_id += 1),
            ("NCI", |u| u.cell_id ^= 1),
            ("NCI", |u| u.cell_id >>= 4),
            ("NCI", |u| u.cell_kind = guard_common::abi_n2::CELL_KIND_EUTRA),
            ("PLMN", |u| u.plmn[2] = 0x11),
            ("TAC", |u| u.tac = 2),
            ("5G-S-TMSI", |u| u.tmsi_hi ^= 1),
            ("5G-S-TMSI", |u| u.present &= !UE_HAS_S_TMSI),
            ("RRCEstablishmentCause", |u| u.rrc_cause = RRC_CAUSE_NONE),
            ("RRCEstablishmentCause", |u| u.present &= !UE_HAS_RRC_CAUSE),
        ];
        for (what, mutate) in mutants {
            let mut u = guard_ue();
            mutate(&mut u);
            let d = ue_diffs(&t, &u);
            assert!(d.len() == 1 && d[0].contains(what), "{what}: {d:?}");
        }
        // An extension cause (tshark: 10, notAvailable) is the guard's 10 too, never "none".
        let ext = TsUe { cause: Some(10), ..ts_ue(&serde_json::from_str(TSHARK_UE).expect("sample JSON")) };
        let mut u = guard_ue();
        assert_eq!(ue_diffs(&ext, &u).len(), 1);
        u.rrc_cause = RRC_CAUSE_NONE;
        assert_eq!(ue_diffs(&ext, &u).len(), 1);
        u.rrc_cause = guard_common::parse::ngap::RRC_NGAP_NOT_AVAILABLE;
        assert!(ue_diffs(&ext, &u).is_empty());
    }

    #[test]
    fn chunk_and_procedure_classes_follow_the_specs() {
        let want = [(0, CHUNK_CLASS_DATA), (1, CHUNK_CLASS_INIT), (6, CHUNK_CLASS_ABORT), (14, CHUNK_CLASS_SHUTDOWN)];
        for (t, c) in want {
            assert_eq!(class_of(t), c, "chunk type {t}");
        }
        assert_eq!(class_of(192), CHUNK_CLASS_OTHER, "FORWARD TSN");
        assert_eq!(proc_of(0, 15), PROC_INITIAL_UE);
        assert_eq!(proc_of(0, 46), PROC_UPLINK_NAS);
        assert_eq!(proc_of(1, 21), PROC_SUCCESSFUL);
        assert_eq!(proc_of(0, 4), PROC_OTHER_INITIATING);
    }
}
