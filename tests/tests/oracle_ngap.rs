//! tshark as the oracle for labkit's SCTP/NGAP builder *and* for the guard's pure N2 parser:
//! Wireshark's SCTP, NGAP, S1AP and NAS-5GS dissectors must see the messages we meant to encode
//! (correct CRC32c, no malformed or expert warning), and the procedure codes, NR-CGI, TAC,
//! RAN-UE-NGAP-ID and 5G-S-TMSI that `guard_common::parse::n2` extracts must equal tshark's
//! fields on the same frames, and so must the keys under which the XDP program `guard_n2` counts
//! those frames in its maps (that test needs root).

use std::process::Command;

use guard_common::abi_n2::{CELL_KIND_EUTRA, CELL_KIND_NR};
use guard_common::parse::{n2, ngap as gp};
use labkit::oracle::{tshark_fields, tshark_problems, tshark_summary, TempDir};
use labkit::pcap::write_pcap;
use labkit::sctp_frames::{
    ngap::{self, Cell, FiveGSTmsi, InitialUeMessage, PLMN_00101},
    s1ap, Chunk, SctpFrame,
};

/// These tests need tshark: a missing tshark fails them (as in `oracle_tshark`), it never skips.
fn assert_tshark() {
    let ok = Command::new("tshark").arg("-v").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "tshark is not installed or does not run: `apt-get install -y tshark` (or `cargo xtask setup`)");
}

/// One NGAP frame per message kind we build, and the bundles.
fn ngap_frames() -> Vec<Vec<u8>> {
    let t = FiveGSTmsi { set_id: 0x155, pointer: 0x2a, tmsi: 0xdead_beef };
    let t2 = FiveGSTmsi { set_id: 1, pointer: 63, tmsi: 0x0102_0304 };
    let f = || SctpFrame::ngap().vtag(0x1a2b_3c4d);
    vec![
        f().chunk(Chunk::ngap(1, &InitialUeMessage::nr(1, 0x1_2345_6789).encode())).build(),
        f().chunk(Chunk::ngap(
            2,
            &InitialUeMessage::nr(0x00ab_cdef, 0xf_ffff_fffe)
                .s_tmsi(t.set_id, t.pointer, t.tmsi)
                .nas(ngap::service_request(t))
                .encode(),
        ))
        .build(),
        f().chunk(Chunk::ngap(
            3,
            &InitialUeMessage::nr(0xfedc_ba98, 0x10)
                .nas(ngap::registration_request_guti(&PLMN_00101, 0xca, t2))
                .encode(),
        ))
        .build(),
        f().chunk(Chunk::ngap(
            4,
            &InitialUeMessage::nr(5, 0).cell(Cell::Eutra(0x0abc_def1)).cause(ngap::CAUSE_EMERGENCY).encode(),
        ))
        .build(),
        f().chunk(Chunk::ngap(
            5,
            &ngap::uplink_nas_transport(0x12_3456_789a, 77, &ngap::deregistration_request(t2), 0x42),
        ))
        .build(),
        f().chunk(Chunk::ngap(6, &ngap::ng_setup_request(0x102, "gnb-oracle"))).build(),
        f().chunk(Chunk::ngap(7, &ngap::initial_context_setup_response(9, 10))).build(),
        f().chunk(Chunk::ngap(8, &ngap::ue_context_release_request(9, 10))).build(),
        f().chunk(Chunk::sack(7, &[], &[]))
            .chunk(Chunk::ngap(9, &InitialUeMessage::nr(11, 0x77).s_tmsi(2, 3, 4).encode()))
            .build(),
        f().chunk(Chunk::cookie_echo(&[0x5a; 32])).chunk(Chunk::ngap(10, &ngap::ng_setup_request(7, "gnb-b"))).build(),
    ]
}

/// tshark's fields for one frame, aggregated with ','.
fn fields(pcap: &std::path::Path, f: &[&str]) -> Vec<Vec<String>> {
    tshark_fields(pcap, f, None).expect("tshark")
}

fn num(s: &str) -> u64 {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).unwrap_or_else(|_| panic!("hex {s:?}"))
    } else {
        s.parse().unwrap_or_else(|_| panic!("number {s:?}"))
    }
}

fn hexbytes(s: &str) -> Vec<u8> {
    let h: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

#[test]
fn tshark_dissects_the_builders_frames_without_warnings() {
    assert_tshark();
    let dir = TempDir::new("og-ngap").expect("tmp");
    let pcap = dir.join("ngap.pcap");
    let mut frames = ngap_frames();
    frames.push(
        SctpFrame::s1ap()
            .chunk(Chunk::s1ap(1, &s1ap::initial_ue_message(0x42, 0x0123_4567, 7, Some((0x11, 0xcafe_f00d)))))
            .build(),
    );
    // Every chunk type.
    let c = || SctpFrame::ngap();
    frames.extend([
        c().vtag(0).chunk(Chunk::init(0x1234, 1)).build(),
        c().chunk(Chunk::init_ack(0x1234, 1, &[1; 24])).build(),
        c().chunk(Chunk::heartbeat(&[7; 12])).build(),
        c().chunk(Chunk::heartbeat_ack(&[7; 12])).build(),
        c().chunk(Chunk::abort(true)).build(),
        c().chunk(Chunk::shutdown(10)).build(),
        c().chunk(Chunk::shutdown_ack()).build(),
        c().chunk(Chunk::shutdown_complete()).build(),
        c().chunk(Chunk::error()).build(),
        c().chunk(Chunk::cookie_ack()).build(),
        c().chunk(Chunk::sack(10, &[(2, 3)], &[9])).build(),
    ]);
    write_pcap(&pcap, &frames).expect("pcap");
    let problems = tshark_problems(&pcap).expect("tshark");
    assert!(problems.is_empty(), "tshark flags: {problems:#?}\n{}", tshark_summary(&pcap));
    // Every frame is SCTP to the right port with a good CRC32c.
    let out = Command::new("tshark")
        .args(["-n", "-o", "sctp.checksum:crc-32c", "-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-e", "sctp.checksum.status", "-e", "sctp.dstport", "-e", "sctp.chunk_type"])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), frames.len());
    for (i, r) in rows.iter().enumerate() {
        let cols: Vec<&str> = r.split('\t').collect();
        assert_eq!(cols[0], "1", "frame {}: CRC32c status (1 = good): {r}", i + 1);
        assert!(cols[1] == "38412" || cols[1] == "36412", "frame {}: {r}", i + 1);
    }
    let types: Vec<String> = rows.iter().map(|r| r.split('\t').nth(2).unwrap_or("").to_string()).collect();
    assert_eq!(types[8], "3,0", "SACK + DATA");
    assert_eq!(types[9], "10,0", "COOKIE ECHO + DATA");
    let expected_types = ["1", "2", "4", "5", "6", "7", "8", "14", "9", "11", "3"];
    assert_eq!(&types[11..], &expected_types, "every chunk type as tshark reads it");
}

#[test]
fn the_pure_parser_agrees_with_tshark() {
    assert_tshark();
    let dir = TempDir::new("og-ngap").expect("tmp");
    let pcap = dir.join("ngap.pcap");
    let frames = ngap_frames();
    write_pcap(&pcap, &frames).expect("pcap");
    let rows = fields(
        &pcap,
        &[
            "ngap.procedureCode",
            "ngap.RAN_UE_NGAP_ID",
            "ngap.NRCellIdentity",
            "ngap.EUTRACellIdentity",
            "ngap.pLMNIdentity",
            "ngap.tAC",
            "ngap.aMFSetID",
            "ngap.aMFPointer",
            "ngap.fiveG_TMSI",
            "ngap.RRCEstablishmentCause",
            "nas_5gs.mm.message_type",
            "nas_5gs.amf_set_id",
            "nas_5gs.amf_pointer",
            "nas_5gs.5g_tmsi",
        ],
    );
    assert_eq!(rows.len(), frames.len(), "{}", tshark_summary(&pcap));
    let mut compared = 0;
    for (i, (f, row)) in frames.iter().zip(&rows).enumerate() {
        let what = format!("frame {} ({row:?})", i + 1);
        let p = n2::parse(&f[..], 38412, 36412).expect("valid").expect("N2");
        // The procedure code of every message: tshark's first procedureCode per message.
        let codes: Vec<u64> = row[0].split(',').filter(|s| !s.is_empty()).map(num).collect();
        assert!(!codes.is_empty(), "{what}: tshark saw no NGAP");
        let ours: usize = p.pkt.procs.iter().map(|&n| n as usize).sum();
        assert_eq!(ours, codes.len(), "{what}: messages counted");
        let Some(Ok(u)) = p.ues[0] else {
            assert!(codes[0] != 15, "{what}: an InitialUEMessage was not walked: {:?}", p.ues[0]);
            continue;
        };
        assert_eq!(codes[0], 15, "{what}");
        assert_eq!(u.ran_ue_id as u64, num(&row[1]), "{what}: RAN-UE-NGAP-ID");
        match u.cell_kind {
            CELL_KIND_NR => {
                // tshark shows the 36-bit NCI (a 40-bit field with the 4 spare bits masked).
                let t = num(&row[2]);
                assert!(t == u.cell_id || t == u.cell_id << 4, "{what}: NCI ours {:#x} tshark {t:#x}", u.cell_id);
            }
            CELL_KIND_EUTRA => {
                let t = num(&row[3]);
                assert!(t == u.cell_id || t == u.cell_id << 4, "{what}: ECI ours {:#x} tshark {t:#x}", u.cell_id);
            }
            k => panic!("{what}: no cell ({k})"),
        }
        // pLMNIdentity occurs in the NR-CGI and the TAI: the first one is the CGI's.
        let plmn = hexbytes(row[4].split(',').next().unwrap_or(""));
        assert_eq!(&u.plmn[..3], &plmn[..], "{what}: PLMN");
        assert_eq!(u.tac as u64, num(&row[5]), "{what}: TAC");
        assert_eq!(u.rrc_cause as u64, num(&row[9]), "{what}: RRC establishment cause");
        assert_eq!(u.nas_msg as u64, num(row[10].split(',').next_back().unwrap_or("")), "{what}: NAS message type");
        if u.present & gp::UE_HAS_S_TMSI != 0 {
            // aMFSetID / aMFPointer are BIT STRINGs: tshark prints their octets, left-aligned.
            let set = hexbytes(&row[6]);
            let set = ((u16::from(set[0]) << 8 | u16::from(*set.get(1).unwrap_or(&0))) >> 6) & 0x3ff;
            let ptr = hexbytes(&row[7])[0] >> 2;
            assert_eq!((u.amf_set_id(), u.amf_pointer()), (set, ptr), "{what}: AMF set / pointer");
            assert_eq!(u.tmsi as u64, num(&row[8]), "{what}: 5G-TMSI");
            compared += 1;
        } else if u.present & gp::UE_HAS_GUTI != 0 {
            assert_eq!(u.amf_set_id() as u64, num(&row[11]), "{what}: GUTI AMF set");
            assert_eq!(u.amf_pointer() as u64, num(&row[12]), "{what}: GUTI AMF pointer");
            assert_eq!(u.tmsi as u64, num(&row[13]), "{what}: GUTI 5G-TMSI");
            compared += 1;
        } else {
            assert!(row[8].is_empty(), "{what}: tshark saw a 5G-S-TMSI we missed");
        }
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} comparisons");
}

#[test]
fn s1ap_initial_ue_message_agrees_with_tshark() {
    assert_tshark();
    let dir = TempDir::new("og-s1ap").expect("tmp");
    let pcap = dir.join("s1ap.pcap");
    let f = SctpFrame::s1ap()
        .chunk(Chunk::s1ap(1, &s1ap::initial_ue_message(0x4243, 0x0123_4567, 7, Some((0x11, 0xcafe_f00d)))))
        .build();
    write_pcap(&pcap, std::slice::from_ref(&f)).expect("pcap");
    let problems = tshark_problems(&pcap).expect("tshark");
    assert!(problems.is_empty(), "tshark flags: {problems:#?}\n{}", tshark_summary(&pcap));
    let row = &fields(
        &pcap,
        // EUTRAN-CGI's cell-ID is `s1ap.CellIdentity` (a 28-bit value); `s1ap.cell_ID` is another
        // IE's OCTET STRING.
        &[
            "s1ap.procedureCode",
            "s1ap.ENB_UE_S1AP_ID",
            "s1ap.CellIdentity",
            "s1ap.mMEC",
            "s1ap.m_TMSI",
            "nas_eps.nas_msg_emm_type",
            "s1ap.tAC",
        ],
    )[0];
    let p = n2::parse(&f[..], 38412, 36412).expect("valid").expect("N2");
    let u = p.ues[0].expect("walked").expect("ok");
    assert_eq!(num(&row[0]), 12);
    assert_eq!(u.ran_ue_id as u64, num(&row[1]));
    assert_eq!(u.cell_kind, CELL_KIND_EUTRA);
    assert_eq!(u.cell_id, num(&row[2]), "E-UTRAN cell identity (28 bits)");
    assert_eq!(u.tmsi_hi as u64, num(&row[3]), "MMEC");
    assert_eq!(u.tmsi as u64, num(&row[4]), "M-TMSI");
    assert_eq!(u.nas_msg as u64, num(&row[5]), "EMM message type");
    assert_eq!(u.tac as u64, num(&row[6]), "TAC");
}

/// The same frames through the real XDP program: what `guard_n2` counts in its maps (procedures
/// per peer, attempts per NR-CGI / E-UTRA CGI and per 5G-S-TMSI) is keyed on exactly the values
/// tshark reads.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn the_data_plane_agrees_with_tshark() {
    labkit::assert_root("oracle_ngap::the_data_plane_agrees_with_tshark");
    assert_tshark();
    use aya::programs::{TestRun, TestRunOptions};
    use guard_common::abi::L3Addr;
    use guard_common::abi_n2::{N2CellKey, N2Config, N2DeviceKey, NGAP_PORT, S1AP_PORT};

    labkit::bpf::pin_to_current_cpu().expect("pin to a CPU");
    let dir = TempDir::new("og-ngap-dp").expect("tmp");
    let pcap = dir.join("ngap.pcap");
    let frames = ngap_frames();
    write_pcap(&pcap, &frames).expect("pcap");
    let rows = fields(
        &pcap,
        &[
            "ngap.procedureCode",
            "ngap.NRCellIdentity",
            "ngap.EUTRACellIdentity",
            "ngap.pLMNIdentity",
            "ngap.aMFSetID",
            "ngap.aMFPointer",
            "ngap.fiveG_TMSI",
            "nas_5gs.amf_set_id",
            "nas_5gs.amf_pointer",
            "nas_5gs.5g_tmsi",
            "ngap.RAN_UE_NGAP_ID",
        ],
    );
    assert_eq!(rows.len(), frames.len());
    let scope = labkit::bpf::PinScope::new("oracle");
    let cfg = N2Config { ngap_port: u32::from(NGAP_PORT), s1ap_port: u32::from(S1AP_PORT), ..Default::default() };
    let opts = guard::n2::LoadOpts { max_devices: 1024, max_cells: 64, max_peers: 16 };
    let (mut loaded, maps) = guard::n2::load(&scope.pins, &opts, &cfg).expect("load guard_n2");
    let peer = L3Addr::v4([10, 100, 0, 11]);
    let mut checked = 0;
    for (i, (f, row)) in frames.iter().zip(&rows).enumerate() {
        let what = format!("frame {} ({row:?})", i + 1);
        let procs_before = maps.peer(&peer).expect("map").unwrap_or_default().procs;
        let prog = loaded.program().expect("guard_n2");
        let r = prog.test_run(TestRunOptions { data_in: Some(f), ..Default::default() }).expect("test run");
        assert_eq!(r.return_value, labkit::bpf::XDP_PASS, "{what}");
        let procs = maps.peer(&peer).expect("map").expect("peer").procs;
        let codes: Vec<u64> = row[0].split(',').filter(|s| !s.is_empty()).map(num).collect();
        let counted: u64 = procs.iter().zip(procs_before).map(|(a, b)| a - b).sum();
        assert_eq!(counted, codes.len() as u64, "{what}: NGAP messages counted by guard_n2");
        if codes.first() != Some(&15) {
            continue;
        }
        // The cell, keyed on tshark's NR-CGI / E-UTRA CGI (the CGI's PLMN is the first one).
        let plmn = hexbytes(row[3].split(',').next().unwrap_or(""));
        let plmn = [plmn[0], plmn[1], plmn[2], 0];
        let cell = if !row[1].is_empty() {
            N2CellKey { kind: CELL_KIND_NR, plmn, cell_id: num(&row[1]) }
        } else {
            N2CellKey { kind: CELL_KIND_EUTRA, plmn, cell_id: num(&row[2]) }
        };
        let c = maps.cell(&cell).expect("map").unwrap_or_else(|| panic!("{what}: no N2_CELLS entry for {cell:?}"));
        assert!(c.initial_ue >= 1, "{what}");
        // The device, keyed on tshark's 5G-S-TMSI (NGAP IE, else the NAS 5G-GUTI), else the
        // (gNB, RAN-UE-NGAP-ID) pair.
        let dev = if !row[6].is_empty() {
            let set = hexbytes(&row[4]);
            let set = ((u16::from(set[0]) << 8 | u16::from(*set.get(1).unwrap_or(&0))) >> 6) & 0x3ff;
            N2DeviceKey::five_g_s_tmsi(set, hexbytes(&row[5])[0] >> 2, num(&row[6]) as u32)
        } else if !row[9].is_empty() {
            N2DeviceKey::five_g_s_tmsi(num(&row[7]) as u16, num(&row[8]) as u8, num(&row[9]) as u32)
        } else {
            N2DeviceKey::ran_ue(&peer, num(&row[10]) as u32).expect("v4")
        };
        let d = maps.device(&dev).expect("map").unwrap_or_else(|| panic!("{what}: no N2_DEVICES entry for {dev:?}"));
        assert_eq!((d.cell, d.ran_ue_id as u64), (cell, num(&row[10])), "{what}");
        checked += 1;
    }
    assert_eq!(checked, 5, "every InitialUEMessage frame compared");
}
