use super::aper::{big_uint, ie, open, pdu, IGNORE, REJECT};

pub const PROC_INITIAL_UE: u8 = 12;

/// eNB-UE-S1AP-ID, NAS-PDU (Attach Request), TAI, EUTRAN-CGI, RRC-Establishment-Cause
/// (mo-Signalling), S-TMSI (optional).
pub fn initial_ue_message(enb_ue_id: u32, eci: u32, tac: u16, s_tmsi: Option<(u8, u32)>) -> Vec<u8> {
    let plmn = super::ngap::PLMN_00101;
    let mut tai = vec![0x00];
    tai.extend_from_slice(&plmn);
    tai.extend_from_slice(&tac.to_be_bytes());
    let mut cgi = vec![0x00];
    cgi.extend_from_slice(&plmn);
    cgi.extend_from_slice(&((eci & 0x0fff_ffff) << 4).to_be_bytes());
    // Attach Request: EPS attach type (1) + NAS KSI (7), EPS mobile identity (IMSI, LV),
    // UE network capability (LV), ESM message container (LV-E: PDN Connectivity Request).
    let nas = vec![
        0x07, 0x41, 0x71, 0x08, 0x09, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0xe0, 0xe0, 0x00, 0x04, 0x02,
        0x01, 0xd0, 0x11,
    ];
    let mut ies = vec![
        ie(8, REJECT, &big_uint(enb_ue_id as u64, 2)),
        ie(26, REJECT, &open(&nas)),
        ie(67, REJECT, &tai),
        ie(100, IGNORE, &cgi),
        // RRC-Establishment-Cause: extension bit + 3 bits: mo-Signalling (3).
        ie(134, IGNORE, &[3 << 4]),
    ];
    if let Some((mmec, m_tmsi)) = s_tmsi {
        let mut v = ((mmec as u16) << 6).to_be_bytes().to_vec();
        v.extend_from_slice(&m_tmsi.to_be_bytes());
        ies.push(ie(96, REJECT, &v));
    }
    pdu(0, PROC_INITIAL_UE, IGNORE, &ies)
}
