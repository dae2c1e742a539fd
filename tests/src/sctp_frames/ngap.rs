use super::aper::{big_uint, ie, pdu, IGNORE, REJECT};

pub const PROC_INITIAL_UE: u8 = 15;
pub const PROC_UPLINK_NAS: u8 = 46;
pub const PROC_NG_SETUP: u8 = 21;
pub const PROC_INITIAL_CONTEXT_SETUP: u8 = 14;
pub const PROC_UE_CTX_RELEASE_REQ: u8 = 42;

/// PLMN 001/01 as on the wire (TS 38.413 §9.3.3.5).
pub const PLMN_00101: [u8; 3] = [0x00, 0xf1, 0x10];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// NR-CGI: 36-bit NR Cell Identity.
    Nr(u64),
    /// E-UTRA CGI (ng-eNB): 28-bit cell identity.
    Eutra(u32),
}

/// 5G-S-TMSI: AMF Set ID (10 bits), AMF Pointer (6 bits), 5G-TMSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveGSTmsi {
    pub set_id: u16,
    pub pointer: u8,
    pub tmsi: u32,
}

/// RRCEstablishmentCause root values (TS 38.413 §9.3.1.111).
pub const CAUSE_EMERGENCY: u8 = 0;
pub const CAUSE_MO_SIGNALLING: u8 = 3;
pub const CAUSE_MO_DATA: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialUeMessage {
    pub ran_ue_id: u32,
    pub nas: Vec<u8>,
    pub plmn: [u8; 3],
    pub cell: Cell,
    pub tac: u32,
    pub cause: u8,
    pub s_tmsi: Option<FiveGSTmsi>,
    pub ue_context_request: bool,
}

impl InitialUeMessage {
    /// An NR InitialUEMessage with a Registration Request (SUCI) and no 5G-S-TMSI.
    pub fn nr(ran_ue_id: u32, nci: u64) -> Self {
        InitialUeMessage {
            ran_ue_id,
            nas: registration_request_suci(&PLMN_00101, 0x0000_0012_3456_7890),
            plmn: PLMN_00101,
            cell: Cell::Nr(nci),
            tac: 1,
            cause: CAUSE_MO_SIGNALLING,
            s_tmsi: None,
            ue_context_request: true,
        }
    }

    pub fn s_tmsi(mut self, set_id: u16, pointer: u8, tmsi: u32) -> Self {
        self.s_tmsi = Some(FiveGSTmsi { set_id, pointer, tmsi });
        self
    }

    pub fn nas(mut self, nas: Vec<u8>) -> Self {
        self.nas = nas;
        self
    }

    pub fn cause(mut self, c: u8) -> Self {
        self.cause = c;
        self
    }

    pub fn cell(mut self, c: Cell) -> Self {
        self.cell = c;
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut ies = vec![
            ie(85, REJECT, &big_uint(self.ran_ue_id as u64, 2)),
            ie(38, REJECT, &super::aper::open(&self.nas)),
            ie(121, REJECT, &user_location(&self.plmn, self.cell, self.tac)),
            ie(90, IGNORE, &[self.cause << 3]),
        ];
        if let Some(t) = self.s_tmsi {
            ies.push(ie(26, REJECT, &five_g_s_tmsi(t)));
        }
        if self.ue_context_request {
            // UEContextRequest ::= ENUMERATED {requested, ...}: extension bit, no index bits.
            ies.push(ie(112, IGNORE, &[0x00]));
        }
        pdu(0, PROC_INITIAL_UE, IGNORE, &ies)
    }
}

/// UserLocationInformation: CHOICE index (EUTRA 0, NR 1) and the SEQUENCE preamble bits in
/// octet 0, PLMN, the cell identity bits, then TAI (its 2 preamble bits in the cell identity's
/// last octet when they fit), PLMN and TAC.
pub fn user_location(plmn: &[u8; 3], cell: Cell, tac: u32) -> Vec<u8> {
    let mut v = Vec::new();
    match cell {
        Cell::Nr(nci) => {
            v.push(0x40);
            v.extend_from_slice(plmn);
            let n = (nci & 0xf_ffff_ffff) << 4;
            v.extend_from_slice(&n.to_be_bytes()[3..8]);
        }
        Cell::Eutra(eci) => {
            v.push(0x00);
            v.extend_from_slice(plmn);
            let n = (eci & 0x0fff_ffff) << 4;
            v.extend_from_slice(&n.to_be_bytes());
        }
    }
    v.extend_from_slice(plmn);
    v.extend_from_slice(&tac.to_be_bytes()[1..4]);
    v
}

/// FiveG-S-TMSI: extension and iE-Extensions bits, AMF Set ID and Pointer (16 bits,
/// unaligned), padding, 5G-TMSI.
pub fn five_g_s_tmsi(t: FiveGSTmsi) -> Vec<u8> {
    let bits: u32 = ((t.set_id as u32 & 0x3ff) << 12) | ((t.pointer as u32 & 0x3f) << 6);
    let mut v = bits.to_be_bytes()[1..4].to_vec();
    v.extend_from_slice(&t.tmsi.to_be_bytes());
    v
}

/// UplinkNASTransport (46): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID, NAS-PDU, ULI.
pub fn uplink_nas_transport(amf_ue_id: u64, ran_ue_id: u32, nas: &[u8], nci: u64) -> Vec<u8> {
    pdu(
        0,
        PROC_UPLINK_NAS,
        IGNORE,
        &[
            ie(10, REJECT, &big_uint(amf_ue_id, 3)),
            ie(85, REJECT, &big_uint(ran_ue_id as u64, 2)),
            ie(38, REJECT, &super::aper::open(nas)),
            ie(121, IGNORE, &user_location(&PLMN_00101, Cell::Nr(nci), 1)),
        ],
    )
}

/// InitialContextSetupResponse (successfulOutcome 14): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID.
pub fn initial_context_setup_response(amf_ue_id: u64, ran_ue_id: u32) -> Vec<u8> {
    pdu(
        1,
        PROC_INITIAL_CONTEXT_SETUP,
        REJECT,
        &[ie(10, IGNORE, &big_uint(amf_ue_id, 3)), ie(85, IGNORE, &big_uint(ran_ue_id as u64, 2))],
    )
}

/// UEContextReleaseRequest (42): AMF-UE-NGAP-ID, RAN-UE-NGAP-ID, Cause radioNetwork(0)
/// user-inactivity (20).
pub fn ue_context_release_request(amf_ue_id: u64, ran_ue_id: u32) -> Vec<u8> {
    // Cause CHOICE (6 alternatives: 3 bits, index 0 radioNetwork), then CauseRadioNetwork
    // (extensible ENUMERATED, < 64 root values: extension bit + 6 bits): 000 0 010100.
    let cause = [0x05, 0x00];
    pdu(
        0,
        PROC_UE_CTX_RELEASE_REQ,
        IGNORE,
        &[
            ie(10, REJECT, &big_uint(amf_ue_id, 3)),
            ie(85, REJECT, &big_uint(ran_ue_id as u64, 2)),
            ie(15, IGNORE, &cause),
        ],
    )
}

/// NGSetupRequest (21): GlobalRANNodeID (gNB, 32-bit gNB-ID), RANNodeName, SupportedTAList
/// (one TAC, one PLMN, one S-NSSAI with SST 1), DefaultPagingDRX v128.
pub fn ng_setup_request(gnb_id: u32, name: &str) -> Vec<u8> {
    // GlobalRANNodeID CHOICE index 0 (2 bits), GlobalGNB-ID ext + iE-Ext bits: 0x00; PLMN;
    // GNB-ID CHOICE index 0 (1 bit) + BIT STRING SIZE(22..32) length - 22 in 4 bits: 32 → 10
    // → 0b0_1010_000 = 0x50; then the 32 bits, aligned.
    let mut g = vec![0x00];
    g.extend_from_slice(&PLMN_00101);
    g.push(0x50);
    g.extend_from_slice(&gnb_id.to_be_bytes());
    // RANNodeName: PrintableString (SIZE(1..150, ...)): ext bit + 8-bit length - 1, then
    // 8-bit characters (aligned).
    let n = name.as_bytes();
    let mut r = vec![((n.len() - 1) >> 1) as u8, (((n.len() - 1) & 1) << 7) as u8];
    r.extend_from_slice(n);
    // SupportedTAList: SEQUENCE (SIZE(1..256)) OF: count - 1 in 8 bits; item: ext + iE-ext
    // bits (0x00), TAC (3), BroadcastPLMNList (SIZE(1..12): 4 bits count - 1) + item ext +
    // iE-ext bits, PLMN, SliceSupportList (SIZE(1..1024): 10 bits, aligned as length), item:
    // ext + iE-ext, S-NSSAI ext + sD opt + iE-ext opt, SST (1 octet).
    let mut ta = vec![0x00, 0x00, 0x00, 0x00, 0x01, 0x00];
    ta.extend_from_slice(&PLMN_00101);
    ta.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]);
    pdu(
        0,
        PROC_NG_SETUP,
        REJECT,
        &[ie(27, REJECT, &g), ie(82, IGNORE, &r), ie(102, REJECT, &ta), ie(21, IGNORE, &[0x20])],
    )
}

/// A plain 5GMM Registration Request (initial registration, ngKSI "no key") with a SUCI
/// (IMSI, null protection scheme) and a UE security capability.
pub fn registration_request_suci(plmn: &[u8; 3], msin: u64) -> Vec<u8> {
    let mut id = vec![0x01];
    id.extend_from_slice(plmn);
    // Routing indicator 0 ("0fff"), protection scheme null, home network public key id 0.
    id.extend_from_slice(&[0xf0, 0xff, 0x00, 0x00]);
    // MSIN, 10 BCD digits, low nibble first.
    let digits: Vec<u8> = format!("{msin:010}").bytes().map(|b| b - b'0').collect();
    for p in digits.chunks(2) {
        id.push(p[0] | (p.get(1).copied().unwrap_or(0xf) << 4));
    }
    registration_request(0x79, &id)
}

/// A plain Registration Request (mobility update, native ngKSI 0) with a 5G-GUTI.
pub fn registration_request_guti(plmn: &[u8; 3], region: u8, t: FiveGSTmsi) -> Vec<u8> {
    let mut id = vec![0xf2];
    id.extend_from_slice(plmn);
    id.push(region);
    let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
    id.extend_from_slice(&sp.to_be_bytes());
    id.extend_from_slice(&t.tmsi.to_be_bytes());
    registration_request(0x0b, &id)
}

fn registration_request(type_ksi: u8, identity: &[u8]) -> Vec<u8> {
    let mut n = vec![0x7e, 0x00, 0x41, type_ksi];
    n.extend_from_slice(&(identity.len() as u16).to_be_bytes());
    n.extend_from_slice(identity);
    // UE security capability (IEI 0x2e): 5G-EA0-3, 5G-IA0-3, EEA0-3, EIA0-3.
    n.extend_from_slice(&[0x2e, 0x04, 0xf0, 0xf0, 0xf0, 0xf0]);
    n
}

/// An integrity-protected (security header type 1) Service Request with the 5G-S-TMSI.
pub fn service_request(t: FiveGSTmsi) -> Vec<u8> {
    let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
    let mut inner = vec![0x7e, 0x00, 0x4c, 0x01, 0x00, 0x07, 0xf4];
    inner.extend_from_slice(&sp.to_be_bytes());
    inner.extend_from_slice(&t.tmsi.to_be_bytes());
    let mut n = vec![0x7e, 0x01, 0x11, 0x22, 0x33, 0x44, 0x05];
    n.extend_from_slice(&inner);
    n
}

/// A plain Deregistration Request (UE originating), another message type.
pub fn deregistration_request(t: FiveGSTmsi) -> Vec<u8> {
    let sp = ((t.set_id & 0x3ff) << 6) | (t.pointer as u16 & 0x3f);
    let mut n = vec![0x7e, 0x00, 0x45, 0x01, 0x00, 0x07, 0xf4];
    n.extend_from_slice(&sp.to_be_bytes());
    n.extend_from_slice(&t.tmsi.to_be_bytes());
    n
}
