//! Host tests of the NGAP / S1AP reader (`parse::ngap`): the PDU header's CHOICE bits and
//! procedure classes, and a hand-encoded InitialUEMessage walked IE by IE (values cross-checked
//! with tshark in `tests/tests/oracle_ngap.rs`).

use crate::abi::n2::*;
use crate::parse::ngap::*;

#[test]
fn pdu_header_choice_bits() {
    assert_eq!(header([0x00, 15]), Some(PduHeader { kind: KIND_INITIATING, proc_code: 15 }));
    assert_eq!(header([0x20, 14]), Some(PduHeader { kind: KIND_SUCCESSFUL, proc_code: 14 }));
    assert_eq!(header([0x40, 21]), Some(PduHeader { kind: KIND_UNSUCCESSFUL, proc_code: 21 }));
    assert_eq!(header([0x60, 1]), None);
    assert_eq!(header([0x80, 1]), None);
    assert_eq!(proc_class(PROTO_NGAP, header([0x00, 15])), PROC_INITIAL_UE);
    assert_eq!(proc_class(PROTO_S1AP, header([0x00, 12])), PROC_INITIAL_UE);
    assert_eq!(proc_class(PROTO_NGAP, header([0x00, 12])), PROC_OTHER_INITIATING);
    assert_eq!(proc_class(PROTO_NGAP, header([0x00, 46])), PROC_UPLINK_NAS);
    assert_eq!(proc_class(PROTO_NGAP, header([0x00, 21])), PROC_SETUP);
    assert_eq!(proc_class(PROTO_NGAP, header([0x20, 21])), PROC_SUCCESSFUL);
    assert_eq!(proc_class(PROTO_NGAP, None), PROC_UNPARSED);
}

/// A hand-encoded InitialUEMessage (values cross-checked with tshark in
/// `tests/tests/oracle_ngap.rs`).
fn sample() -> Vec<u8> {
    let mut ies: Vec<u8> = Vec::new();
    // RAN-UE-NGAP-ID 0x1234 (2 octets).
    ies.extend_from_slice(&[0x00, 85, 0x00, 3, 0x40, 0x12, 0x34]);
    // NAS-PDU: plain Registration Request with a 5G-GUTI (AMF set 0x155, pointer 0x2a, TMSI).
    let nas = [0x7e, 0x00, 0x41, 0x79, 0x00, 0x0b, 0xf2, 0x00, 0xf1, 0x10, 0xca, 0x55, 0x6a, 0xde, 0xad, 0xbe, 0xef];
    ies.extend_from_slice(&[0x00, 38, 0x00, (nas.len() + 1) as u8, nas.len() as u8]);
    ies.extend_from_slice(&nas);
    // ULI NR: PLMN 00f110, NCI 0x123456789, TAC 0x000001.
    let nci: u64 = 0x1_2345_6789;
    let n = nci << 4;
    ies.extend_from_slice(&[0x00, 121, 0x40, 15, 0x40, 0x00, 0xf1, 0x10]);
    ies.extend_from_slice(&[(n >> 32) as u8, (n >> 24) as u8, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    ies.extend_from_slice(&[0x00, 0xf1, 0x10, 0x00, 0x00, 0x01]);
    // RRCEstablishmentCause mo-Signalling (3).
    ies.extend_from_slice(&[0x00, 90, 0x40, 1, 3 << 3]);
    let mut v = vec![0x00, 0x00, 4];
    v.extend_from_slice(&ies);
    let mut pdu = vec![0x00, 15, 0x40, v.len() as u8];
    pdu.extend_from_slice(&v);
    pdu
}

#[test]
fn initial_ue_walk() {
    let p = sample();
    let mut u = InitialUe::default();
    initial_ue(&p[..], 0, p.len(), PROTO_NGAP, &mut u).expect("walk");
    assert_eq!(u.ies, 4);
    assert_eq!(u.ran_ue_id, 0x1234);
    assert_eq!(u.cell_kind, CELL_KIND_NR);
    assert_eq!(u.cell_id, 0x1_2345_6789);
    assert_eq!(u.plmn, [0x00, 0xf1, 0x10, 0]);
    assert_eq!(u.tac, 1);
    assert_eq!(u.rrc_cause, 3);
    assert_eq!(u.nas_msg, NAS_5GMM_REGISTRATION_REQUEST as u32);
    assert!(u.present & UE_HAS_GUTI != 0 && u.present & UE_HAS_S_TMSI == 0);
    assert_eq!((u.amf_set_id(), u.amf_pointer(), u.tmsi), (0x155, 0x2a, 0xdead_beef));
    // Every truncation is an error or a partial walk, never a panic, never past the end.
    for n in 0..p.len() {
        let _ = initial_ue(&p[..n], 0, n, PROTO_NGAP, &mut u);
    }
    assert_eq!(initial_ue(&p[..], 0, p.len(), PROTO_S1AP, &mut u), Err(NgapError::NotInitialUe));
}
