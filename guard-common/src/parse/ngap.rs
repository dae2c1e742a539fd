//! The first octets of NGAP (TS 38.413) and S1AP (TS 36.413) PDUs, ASN.1 ALIGNED PER, and a
//! bounded walk of an InitialUEMessage's protocol-IE container.
//!
//! What the encoding looks like (X.691 aligned variant), for both protocols:
//! - octet 0: the PDU CHOICE: extension bit, then a 2-bit index (0 initiatingMessage,
//!   1 successfulOutcome, 2 unsuccessfulOutcome), so 0x00 / 0x20 / 0x40;
//! - octet 1: procedureCode (INTEGER 0..255);
//! - octet 2: criticality (ENUMERATED, top 2 bits), padded because an open type follows;
//! - the value as an open type: a length determinant (1 octet if < 128, else `0x80 | len` over 2
//!   octets; fragmented lengths ≥ 16384 are refused), then the message SEQUENCE: its extension bit
//!   padded to an octet, then the ProtocolIE-Container: a 2-octet count (SIZE(0..65535)) and the
//!   IEs, each `id` (2 octets), criticality (1 octet), an open-type length and the value.
//!
//! Values decoded from InitialUEMessage (the IE ids differ per protocol):
//! - RAN-UE-NGAP-ID (85) / eNB-UE-S1AP-ID (8): constrained whole number, 2-bit octet count then
//!   the octets;
//! - UserLocationInformation (121, CHOICE: EUTRA / NR) → NR-CGI (PLMN 3 octets + 36-bit NR Cell
//!   Identity) or E-UTRA CGI (28 bits), and the TAI's TAC; S1AP: EUTRAN-CGI (100), TAI (67);
//! - FiveG-S-TMSI (26): AMF Set ID (10 bits), AMF Pointer (6 bits), 5G-TMSI (4 octets); S1AP
//!   S-TMSI (96): MMEC (8 bits, unaligned), M-TMSI (4 octets);
//! - RRCEstablishmentCause (90) / RRC-Establishment-Cause (134): extensible ENUMERATED;
//! - NAS-PDU (38 / 26): the NAS message type (TS 24.501 §9.7 / TS 24.301 §9.8) and, for a plain
//!   5GMM Registration Request with a 5G-GUTI, its 5G-S-TMSI part (TS 24.501 §9.11.3.4).
//!
//! None of this ever drops a packet: an undecodable NGAP message is a counter (the DATA chunk
//! belongs to a live association; the AMF answers malformed NGAP itself).

use super::{be16, be32, Packet};
use crate::abi::n2::{
    CELL_KIND_EUTRA, CELL_KIND_NR, PROC_INITIAL_UE, PROC_OTHER_INITIATING, PROC_SETUP, PROC_SUCCESSFUL,
    PROC_UE_CTX_RELEASE_REQ, PROC_UNPARSED, PROC_UNSUCCESSFUL, PROC_UPLINK_NAS, RRC_CAUSE_NONE,
};

/// Which application protocol a DATA chunk carries (from its PPID).
pub const PROTO_NONE: u8 = 0;
pub const PROTO_NGAP: u8 = 1;
pub const PROTO_S1AP: u8 = 2;

/// PDU kinds (the CHOICE index).
pub const KIND_INITIATING: u8 = 0;
pub const KIND_SUCCESSFUL: u8 = 1;
pub const KIND_UNSUCCESSFUL: u8 = 2;

// NGAP procedure codes (TS 38.413 §9.4.7).
pub const NGAP_PROC_INITIAL_UE: u8 = 15;
pub const NGAP_PROC_UPLINK_NAS: u8 = 46;
pub const NGAP_PROC_NG_SETUP: u8 = 21;
pub const NGAP_PROC_UE_CTX_RELEASE_REQ: u8 = 42;
// S1AP procedure codes (TS 36.413 §9.3.7).
pub const S1AP_PROC_INITIAL_UE: u8 = 12;
pub const S1AP_PROC_UPLINK_NAS: u8 = 13;
pub const S1AP_PROC_S1_SETUP: u8 = 17;
pub const S1AP_PROC_UE_CTX_RELEASE_REQ: u8 = 18;

// NGAP protocol IE ids (TS 38.413 §9.4.7).
pub const NGAP_IE_RAN_UE_NGAP_ID: u16 = 85;
pub const NGAP_IE_NAS_PDU: u16 = 38;
pub const NGAP_IE_USER_LOCATION_INFORMATION: u16 = 121;
pub const NGAP_IE_RRC_ESTABLISHMENT_CAUSE: u16 = 90;
pub const NGAP_IE_FIVE_G_S_TMSI: u16 = 26;
// S1AP protocol IE ids (TS 36.413 §9.3.7).
pub const S1AP_IE_ENB_UE_S1AP_ID: u16 = 8;
pub const S1AP_IE_NAS_PDU: u16 = 26;
pub const S1AP_IE_TAI: u16 = 67;
pub const S1AP_IE_EUTRAN_CGI: u16 = 100;
pub const S1AP_IE_S_TMSI: u16 = 96;
pub const S1AP_IE_RRC_ESTABLISHMENT_CAUSE: u16 = 134;

/// IEs walked before giving up (an InitialUEMessage has 5-10).
pub const MAX_IES: usize = 12;

/// Root values of RRCEstablishmentCause (TS 38.413 §9.3.1.111: emergency .. mcs-PriorityAccess)
/// and of S1AP's RRC-Establishment-Cause (TS 36.413 §9.2.1.3a: emergency .. mo-Data). An
/// extension value `i` is reported as `roots + i`.
pub const RRC_ROOTS_NGAP: u32 = 10;
pub const RRC_ROOTS_S1AP: u32 = 5;
/// NGAP extension values (after the `...`).
pub const RRC_NGAP_NOT_AVAILABLE: u32 = 10;
pub const RRC_NGAP_MO_EXCEPTION_DATA: u32 = 11;
/// S1AP extension values.
pub const RRC_S1AP_DELAY_TOLERANT_ACCESS: u32 = 5;
pub const RRC_S1AP_MO_VOICE_CALL: u32 = 6;
pub const RRC_S1AP_MO_EXCEPTION_DATA: u32 = 7;

/// NAS message types (5GMM TS 24.501 §9.7; EMM TS 24.301 §9.8).
pub const NAS_5GMM_REGISTRATION_REQUEST: u8 = 0x41;
pub const NAS_5GMM_SERVICE_REQUEST: u8 = 0x4c;
pub const NAS_EMM_ATTACH_REQUEST: u8 = 0x41;
pub const NAS_EMM_TAU_REQUEST: u8 = 0x48;
pub const NAS_EMM_SERVICE_REQUEST: u8 = 0x4d;
/// Extended protocol discriminator of 5GMM (TS 24.007 §11.2.3.1.1A).
pub const EPD_5GMM: u8 = 0x7e;

/// The first two octets of a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PduHeader {
    /// `KIND_*`.
    pub kind: u8,
    pub proc_code: u8,
}

/// Decode the PDU CHOICE and procedure code; `None` for an extension alternative or index 3.
#[inline(always)]
pub fn header(b: [u8; 2]) -> Option<PduHeader> {
    // Extension bit set: an alternative added after the root (none exists today).
    if b[0] & 0x80 != 0 {
        return None;
    }
    let kind = (b[0] >> 5) & 0x03;
    if kind > KIND_UNSUCCESSFUL {
        return None;
    }
    Some(PduHeader { kind, proc_code: b[1] })
}

/// The `PROC_*` class of a PDU.
#[inline(always)]
pub fn proc_class(proto: u8, h: Option<PduHeader>) -> usize {
    let Some(h) = h else { return PROC_UNPARSED };
    match h.kind {
        KIND_SUCCESSFUL => PROC_SUCCESSFUL,
        KIND_UNSUCCESSFUL => PROC_UNSUCCESSFUL,
        _ => {
            let (ue, nas, setup, rel) = if proto == PROTO_S1AP {
                (S1AP_PROC_INITIAL_UE, S1AP_PROC_UPLINK_NAS, S1AP_PROC_S1_SETUP, S1AP_PROC_UE_CTX_RELEASE_REQ)
            } else {
                (NGAP_PROC_INITIAL_UE, NGAP_PROC_UPLINK_NAS, NGAP_PROC_NG_SETUP, NGAP_PROC_UE_CTX_RELEASE_REQ)
            };
            if h.proc_code == ue {
                PROC_INITIAL_UE
            } else if h.proc_code == nas {
                PROC_UPLINK_NAS
            } else if h.proc_code == setup {
                PROC_SETUP
            } else if h.proc_code == rel {
                PROC_UE_CTX_RELEASE_REQ
            } else {
                PROC_OTHER_INITIATING
            }
        }
    }
}

/// True for an InitialUEMessage of `proto`.
#[inline(always)]
pub fn is_initial_ue(proto: u8, h: &PduHeader) -> bool {
    h.kind == KIND_INITIATING
        && h.proc_code == if proto == PROTO_S1AP { S1AP_PROC_INITIAL_UE } else { NGAP_PROC_INITIAL_UE }
}

/// Why an InitialUEMessage's IEs could not be walked (a counter, never a drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NgapError {
    /// The PDU or an IE runs past the DATA chunk.
    Truncated,
    /// A fragmented (≥ 16384) or otherwise unsupported length determinant.
    BadLength,
    /// Not an InitialUEMessage.
    NotInitialUe,
    /// Beyond the parse window ([`super::WIDE_PARSE_OFFSET`], past any IP packet): IEs after it
    /// are not read.
    Window,
}

/// [`InitialUe::present`] bits.
pub const UE_HAS_RAN_UE_ID: u32 = 1 << 0;
pub const UE_HAS_CELL: u32 = 1 << 1;
pub const UE_HAS_S_TMSI: u32 = 1 << 2;
pub const UE_HAS_NAS: u32 = 1 << 3;
pub const UE_HAS_RRC_CAUSE: u32 = 1 << 4;
pub const UE_HAS_TAC: u32 = 1 << 5;
/// A 5G-S-TMSI taken from the 5G-GUTI of a plain Registration Request (no FiveG-S-TMSI IE).
pub const UE_HAS_GUTI: u32 = 1 << 6;
/// The NAS message identifies the UE by a permanent identity only: a plain 5GMM Registration
/// Request whose 5GS mobile identity is a SUCI (TS 24.501 §9.11.3.4, type 1), or an EMM Attach
/// Request with an IMSI (TS 24.301 §9.9.3.12, type 1). A UE sends one when it holds no valid
/// 5G-GUTI / GUTI (§5.5.1.2.2): a device registering from scratch. "SUCI-only" is this bit
/// without [`UE_HAS_S_TMSI`] (see `parse::n2` users and docs/n2.md §4.6).
pub const UE_HAS_SUCI: u32 = 1 << 7;

/// What an InitialUEMessage says about the UE. `#[repr(C)]` with 8-byte fields first so a per-CPU
/// map slot of it is zeroed with word stores.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InitialUe {
    /// Cell identity, right-aligned (36-bit NCI or 28-bit E-UTRAN cell id).
    pub cell_id: u64,
    /// `UE_HAS_*`.
    pub present: u32,
    /// `CELL_KIND_NR` / `CELL_KIND_EUTRA`, or 0.
    pub cell_kind: u32,
    pub plmn: [u8; 4],
    pub tac: u32,
    pub ran_ue_id: u32,
    /// 5G: AMF Set ID (10 bits) << 6 | AMF Pointer (6 bits). S1AP: MMEC.
    pub tmsi_hi: u32,
    /// 5G-TMSI / M-TMSI.
    pub tmsi: u32,
    /// NAS message type (5GMM / EMM), 0 if none.
    pub nas_msg: u32,
    /// RRC establishment cause root index, or `RRC_CAUSE_NONE`.
    pub rrc_cause: u32,
    /// IEs walked.
    pub ies: u32,
    pub proto: u32,
    /// Walk state: the offset of the next IE, the end of the message value, and the IE count the
    /// container announced.
    pub cur: u32,
    pub vend: u32,
    pub count: u32,
    /// The IE being decoded: its id, the offset and length of its value.
    pub ie_id: u32,
    pub ie_val: u32,
    pub ie_len: u32,
    pub _pad: u32,
}

impl InitialUe {
    /// The IE walk is over: every IE the container announced was walked, or its end is reached
    /// ([`ie_header`] then has nothing more to read; the kernel asks before each IE).
    #[inline(always)]
    pub fn ies_done(&self) -> bool {
        self.ies >= self.count || self.cur >= self.vend
    }

    /// 5G: AMF Set ID.
    pub fn amf_set_id(&self) -> u16 {
        (self.tmsi_hi >> 6) as u16 & 0x3ff
    }

    /// 5G: AMF Pointer.
    pub fn amf_pointer(&self) -> u8 {
        self.tmsi_hi as u8 & 0x3f
    }
}

/// Read an open-type / unconstrained length determinant at `off` (X.691 §11.9.3.6-8): returns
/// (length, offset of the contents).
#[inline(always)]
pub(super) fn length_det<P: Packet + ?Sized>(pkt: &P, off: usize, end: usize) -> Result<(usize, usize), NgapError> {
    // Two octets: the length octet and the one after it (a content octet or the 2nd length octet).
    if off + 2 > end {
        // A 1-octet length with empty contents as the last octet of the message.
        if off + 1 == end {
            let b = pkt.read_wide::<2>(off - 1).ok_or(NgapError::Window)?;
            if b[1] == 0 {
                return Ok((0, off + 1));
            }
        }
        return Err(NgapError::Truncated);
    }
    let b = pkt.read_wide::<2>(off).ok_or(NgapError::Window)?;
    if b[0] & 0x80 == 0 {
        Ok((b[0] as usize, off + 1))
    } else if b[0] & 0xc0 == 0x80 {
        Ok(((((b[0] & 0x3f) as usize) << 8) | b[1] as usize, off + 2))
    } else {
        Err(NgapError::BadLength)
    }
}

/// Walk the InitialUEMessage PDU at `off` (its first octet, the CHOICE), bounded by `end` (the
/// end of the DATA chunk's user data). Fields are written into `out` one by one (in the kernel
/// `out` is a per-CPU map slot; a whole-struct copy would be a byte loop).
///
/// This is [`initial_ue_head`] and up to [`MAX_IES`] [`ie_step`]s; the kernel runs the same, each
/// IE step in a BPF subprogram of its own.
#[inline(always)]
pub fn initial_ue<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
    proto: u8,
    out: &mut InitialUe,
) -> Result<(), NgapError> {
    *out = InitialUe::default();
    initial_ue_head(pkt, off, end, proto, out)?;
    for _ in 0..MAX_IES {
        if !ie_step(pkt, out)? {
            break;
        }
    }
    Ok(())
}

/// Read the PDU header up to the ProtocolIE-Container (TS 38.413 §9.4 / TS 36.413 §9.3 message
/// SEQUENCEs): the walk state (`cur`, `vend`, `count`) then points at the first IE.
///
/// `out` must be all zero (`InitialUe::default()`) on entry: only what is found is written (the
/// kernel clears its per-CPU slot with word stores; see [`super::n2::parse_head`]).
#[inline(always)]
pub fn initial_ue_head<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
    proto: u8,
    out: &mut InitialUe,
) -> Result<(), NgapError> {
    out.rrc_cause = RRC_CAUSE_NONE;
    out.proto = proto as u32;
    if off + 4 > end {
        return Err(NgapError::Truncated);
    }
    let h = pkt.read_wide::<4>(off).ok_or(NgapError::Window)?;
    match header([h[0], h[1]]) {
        Some(ph) if is_initial_ue(proto, &ph) => {}
        _ => return Err(NgapError::NotInitialUe),
    }
    // Octet 2: criticality; octet 3: the open type's length determinant.
    let (vlen, val) = length_det(pkt, off + 3, end)?;
    let vend = val + vlen;
    if vend > end || vlen < 3 {
        return Err(NgapError::Truncated);
    }
    // The SEQUENCE's extension bit (padded to an octet), then the IE count (2 octets,
    // ProtocolIE-Container SIZE(0..maxProtocolIEs)).
    let c = pkt.read_wide::<3>(val).ok_or(NgapError::Window)?;
    out.count = be16([c[1], c[2]]) as u32;
    out.cur = (val + 3) as u32;
    out.vend = vend as u32;
    Ok(())
}

/// One ProtocolIE-Field at `out.cur`: [`ie_header`], then [`ie_decode`] of its value.
/// `Ok(true)`: one IE walked; `Ok(false)`: the container is done.
#[inline(always)]
pub fn ie_step<P: Packet + ?Sized>(pkt: &P, out: &mut InitialUe) -> Result<bool, NgapError> {
    if !ie_header(pkt, out)? {
        return Ok(false);
    }
    ie_decode(pkt, out)?;
    Ok(true)
}

/// The ProtocolIE-Field header at `out.cur`: id (2 octets), criticality (1), the open type's
/// length determinant (X.691 §10.2). Notes the IE in `out.ie_*` and moves `out.cur` past it.
/// `Ok(false)`: the container is done.
///
/// As [`super::n2::chunk_step`], it carries nothing in locals from one IE to the next (nor to
/// [`ie_decode`]), so in the kernel each can be a BPF subprogram that starts from map-value loads.
#[inline(always)]
pub fn ie_header<P: Packet + ?Sized>(pkt: &P, out: &mut InitialUe) -> Result<bool, NgapError> {
    if out.ies_done() {
        return Ok(false);
    }
    let (cur, vend) = (out.cur as usize, out.vend as usize);
    if cur + 4 > vend {
        return Err(NgapError::Truncated);
    }
    // id (2), criticality (1), then the first octet of the length determinant.
    let ie = pkt.read_wide::<4>(cur).ok_or(NgapError::Window)?;
    let (len, v) = length_det(pkt, cur + 3, vend)?;
    if v + len > vend {
        return Err(NgapError::Truncated);
    }
    out.ie_id = be16([ie[0], ie[1]]) as u32;
    out.ie_val = v as u32;
    out.ie_len = len as u32;
    out.ies += 1;
    out.cur = (v + len) as u32;
    Ok(true)
}

/// Decode the value of the IE [`ie_header`] noted, if it is one the guard reads.
#[inline(always)]
pub fn ie_decode<P: Packet + ?Sized>(pkt: &P, out: &mut InitialUe) -> Result<(), NgapError> {
    let (proto, id, v, len) = (out.proto as u8, out.ie_id as u16, out.ie_val as usize, out.ie_len as usize);
    ie_value(pkt, proto, id, v, len, out)
}

#[inline(always)]
fn ie_value<P: Packet + ?Sized>(
    pkt: &P,
    proto: u8,
    id: u16,
    v: usize,
    len: usize,
    out: &mut InitialUe,
) -> Result<(), NgapError> {
    let s1 = proto == PROTO_S1AP;
    let (ran_ue, nas, cause, tmsi) = if s1 {
        (S1AP_IE_ENB_UE_S1AP_ID, S1AP_IE_NAS_PDU, S1AP_IE_RRC_ESTABLISHMENT_CAUSE, S1AP_IE_S_TMSI)
    } else {
        (NGAP_IE_RAN_UE_NGAP_ID, NGAP_IE_NAS_PDU, NGAP_IE_RRC_ESTABLISHMENT_CAUSE, NGAP_IE_FIVE_G_S_TMSI)
    };
    if id == ran_ue {
        // Constrained whole number, range > 64K: 2 bits of (octets - 1), padded, then the octets.
        if len < 2 {
            return Err(NgapError::Truncated);
        }
        let b = pkt.read_wide::<2>(v).ok_or(NgapError::Window)?;
        let n = (b[0] >> 6) as usize + 1;
        if len < 1 + n {
            return Err(NgapError::Truncated);
        }
        let x = match n {
            1 => b[1] as u32,
            2 => {
                let b = pkt.read_wide::<3>(v).ok_or(NgapError::Window)?;
                be16([b[1], b[2]]) as u32
            }
            3 => {
                let b = pkt.read_wide::<4>(v).ok_or(NgapError::Window)?;
                be32([0, b[1], b[2], b[3]])
            }
            _ => {
                let b = pkt.read_wide::<5>(v).ok_or(NgapError::Window)?;
                be32([b[1], b[2], b[3], b[4]])
            }
        };
        out.ran_ue_id = x;
        out.present |= UE_HAS_RAN_UE_ID;
    } else if id == nas {
        super::nas::nas_pdu(pkt, proto, v, len, out)?;
    } else if id == cause {
        // Extensible ENUMERATED (X.691 §14): the extension bit, then
        // - clear: the root index in 4 bits (NGAP, TS 38.413 §9.3.1.111: 10 root values) or 3
        //   bits (S1AP, TS 36.413 §9.2.1.3a: 5);
        // - set: the index among the extension additions as a normally small non-negative whole
        //   number (X.691 §11.6): a 0 bit and 6 bits for indexes below 64. NGAP adds
        //   notAvailable, mo-ExceptionData; S1AP delay-TolerantAccess, mo-VoiceCall,
        //   mo-ExceptionData.
        // An extension value is reported after the root values, in the order of the ASN.1
        // (NGAP notAvailable = 10, mo-ExceptionData = 11; S1AP delay-TolerantAccess = 5, ...):
        // the enumeration's own numbering, which tshark and pycrate print too. One octet: read
        // with the length octet before it (reads are ≥ 2 octets).
        if len < 1 {
            return Err(NgapError::Truncated);
        }
        let b = pkt.read_wide::<2>(v - 1).ok_or(NgapError::Window)?;
        let roots = if s1 { RRC_ROOTS_S1AP } else { RRC_ROOTS_NGAP };
        out.rrc_cause = if b[1] & 0x80 == 0 {
            if s1 {
                ((b[1] >> 4) & 0x07) as u32
            } else {
                ((b[1] >> 3) & 0x0f) as u32
            }
        } else if b[1] & 0x40 == 0 {
            roots + (b[1] & 0x3f) as u32
        } else {
            // An extension index of 64 or more (a length-prefixed number): no such value exists.
            RRC_CAUSE_NONE
        };
        out.present |= UE_HAS_RRC_CAUSE;
    } else if id == tmsi {
        if s1 {
            // S-TMSI SEQUENCE: extension bit, iE-Extensions presence bit, MMEC (8 bits, not
            // octet-aligned: fixed-size ≤ 2 octets), padding, M-TMSI (4 octets, aligned).
            if len < 6 {
                return Err(NgapError::Truncated);
            }
            let b = pkt.read_wide::<6>(v).ok_or(NgapError::Window)?;
            out.tmsi_hi = ((be16([b[0], b[1]]) >> 6) & 0xff) as u32;
            out.tmsi = be32([b[2], b[3], b[4], b[5]]);
        } else {
            // FiveG-S-TMSI SEQUENCE: extension bit, iE-Extensions presence bit, AMF Set ID (10
            // bits) and AMF Pointer (6 bits) unaligned, padding, 5G-TMSI (4 octets, aligned).
            if len < 7 {
                return Err(NgapError::Truncated);
            }
            let b = pkt.read_wide::<7>(v).ok_or(NgapError::Window)?;
            let bits = be32([0, b[0], b[1], b[2]]);
            out.tmsi_hi = (bits >> 6) & 0xffff;
            out.tmsi = be32([b[3], b[4], b[5], b[6]]);
        }
        out.present = (out.present | UE_HAS_S_TMSI) & !UE_HAS_GUTI;
    } else if s1 && id == S1AP_IE_EUTRAN_CGI {
        // EUTRAN-CGI SEQUENCE: extension + iE-Extensions bits (padded), PLMN (3), cell-ID 28 bits.
        if len < 8 {
            return Err(NgapError::Truncated);
        }
        let b = pkt.read_wide::<8>(v).ok_or(NgapError::Window)?;
        out.plmn = [b[1], b[2], b[3], 0];
        out.cell_id = (be32([b[4], b[5], b[6], b[7]]) >> 4) as u64;
        out.cell_kind = CELL_KIND_EUTRA;
        out.present |= UE_HAS_CELL;
    } else if s1 && id == S1AP_IE_TAI {
        // TAI SEQUENCE: extension + iE-Extensions bits (padded), PLMN (3), TAC (2).
        if len < 6 {
            return Err(NgapError::Truncated);
        }
        let b = pkt.read_wide::<6>(v).ok_or(NgapError::Window)?;
        out.tac = be16([b[4], b[5]]) as u32;
        out.present |= UE_HAS_TAC;
    } else if !s1 && id == NGAP_IE_USER_LOCATION_INFORMATION {
        user_location(pkt, v, len, out)?;
    }
    Ok(())
}

/// UserLocationInformation (TS 38.413 §9.3.1.16): CHOICE of 4 (2-bit index: 0 EUTRA, 1 NR,
/// 2 N3IWF, 3 extension). For EUTRA and NR the first octet holds the index and the extension /
/// optional-presence bits of the SEQUENCEs (7 bits), then PLMN (3 octets, aligned), the cell
/// identity (BIT STRING 28 / 36, aligned), then the TAI: its 2 preamble bits fit in the cell
/// identity's last octet, then PLMN (3) and TAC (3).
#[inline(always)]
fn user_location<P: Packet + ?Sized>(pkt: &P, v: usize, len: usize, out: &mut InitialUe) -> Result<(), NgapError> {
    if len < 2 {
        return Err(NgapError::Truncated);
    }
    let c = pkt.read_wide::<2>(v).ok_or(NgapError::Window)?;
    match c[0] >> 6 {
        1 => {
            // NR: 0x40 | bits; PLMN at +1, NCI (36 bits in 5 octets) at +4, TAI PLMN at +9, TAC at +12.
            if len < 15 {
                return Err(NgapError::Truncated);
            }
            let b = pkt.read_wide::<9>(v).ok_or(NgapError::Window)?;
            out.plmn = [b[1], b[2], b[3], 0];
            let hi = be32([b[4], b[5], b[6], b[7]]) as u64;
            out.cell_id = (hi << 4) | (b[8] >> 4) as u64;
            out.cell_kind = CELL_KIND_NR;
            out.present |= UE_HAS_CELL;
            let t = pkt.read_wide::<3>(v + 12).ok_or(NgapError::Window)?;
            out.tac = be32([0, t[0], t[1], t[2]]);
            out.present |= UE_HAS_TAC;
        }
        0 => {
            // E-UTRA (ng-eNB): PLMN at +1, cell id (28 bits in 4 octets) at +4, TAI PLMN at +8,
            // TAC at +11.
            if len < 14 {
                return Err(NgapError::Truncated);
            }
            let b = pkt.read_wide::<8>(v).ok_or(NgapError::Window)?;
            out.plmn = [b[1], b[2], b[3], 0];
            out.cell_id = (be32([b[4], b[5], b[6], b[7]]) >> 4) as u64;
            out.cell_kind = CELL_KIND_EUTRA;
            out.present |= UE_HAS_CELL;
            let t = pkt.read_wide::<3>(v + 11).ok_or(NgapError::Window)?;
            out.tac = be32([0, t[0], t[1], t[2]]);
            out.present |= UE_HAS_TAC;
        }
        // N3IWF (untrusted non-3GPP access) or an extension: no cell.
        _ => {}
    }
    Ok(())
}
