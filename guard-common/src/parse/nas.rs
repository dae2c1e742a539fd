//! The NAS message inside an InitialUEMessage's NAS-PDU IE: its message type (TS 24.501 §9.7,
//! 5GMM; TS 24.301 §9.8, EMM) and, for a plain 5GMM Registration Request, the 5GS mobile
//! identity (§9.11.3.4): a SUCI is noted, a 5G-GUTI gives its 5G-S-TMSI part. Read by the NGAP
//! walk (`parse::ngap`), into the same [`InitialUe`].

use super::{
    be16, be32,
    ngap::{
        length_det, InitialUe, NgapError, EPD_5GMM, NAS_5GMM_REGISTRATION_REQUEST, NAS_EMM_ATTACH_REQUEST,
        NAS_EMM_SERVICE_REQUEST, PROTO_S1AP, UE_HAS_GUTI, UE_HAS_NAS, UE_HAS_SUCI, UE_HAS_S_TMSI,
    },
    Packet,
};

/// NAS-PDU (OCTET STRING: a length determinant, then the NAS message).
#[inline(always)]
pub(super) fn nas_pdu<P: Packet + ?Sized>(
    pkt: &P,
    proto: u8,
    v: usize,
    len: usize,
    out: &mut InitialUe,
) -> Result<(), NgapError> {
    let vend = v + len;
    let (nlen, n) = length_det(pkt, v, vend)?;
    if n + nlen > vend {
        return Err(NgapError::Truncated);
    }
    out.present |= UE_HAS_NAS;
    if nlen < 3 {
        return Ok(());
    }
    let h = pkt.read_wide::<3>(n).ok_or(NgapError::Window)?;
    if proto == PROTO_S1AP {
        // EPS: octet 0 = security header type (4 bits) | protocol discriminator (4 bits, 7 = EMM).
        if h[0] & 0x0f != 0x07 {
            return Ok(());
        }
        if h[0] >> 4 == 0 {
            out.nas_msg = h[1] as u32;
            // Attach Request (TS 24.301 §8.2.4): octet 2 NAS key set identifier + EPS attach
            // type, then the EPS mobile identity (LV): its length, then the type in the low 3 bits
            // of its first octet (§9.9.3.12: 1 IMSI).
            if h[1] == NAS_EMM_ATTACH_REQUEST && nlen >= 5 {
                let id = pkt.read_wide::<2>(n + 3).ok_or(NgapError::Window)?;
                if id[0] != 0 && id[1] & 0x07 == 1 {
                    out.present |= UE_HAS_SUCI;
                }
            }
        } else if h[0] >> 4 == 0x0c {
            // Service Request has its own short format (TS 24.301 §8.2.25).
            out.nas_msg = NAS_EMM_SERVICE_REQUEST as u32;
        } else if nlen >= 8 {
            // Security protected: header, MAC (4), SQN (1), then the plain message.
            let p = pkt.read_wide::<2>(n + 6).ok_or(NgapError::Window)?;
            if p[0] & 0x0f == 0x07 {
                out.nas_msg = p[1] as u32;
            }
        }
        return Ok(());
    }
    // 5GS: octet 0 = EPD, octet 1 = security header type, octet 2 = message type when plain.
    if h[0] != EPD_5GMM {
        return Ok(());
    }
    if h[1] & 0x0f == 0 {
        out.nas_msg = h[2] as u32;
        if h[2] == NAS_5GMM_REGISTRATION_REQUEST && out.present & UE_HAS_S_TMSI == 0 {
            mobile_identity(pkt, n, nlen, out)?;
        }
    } else if nlen >= 10 {
        // Security protected: EPD, SHT, MAC (4), SQN (1), then EPD, SHT, message type.
        let p = pkt.read_wide::<3>(n + 7).ok_or(NgapError::Window)?;
        if p[0] == EPD_5GMM {
            out.nas_msg = p[2] as u32;
        }
    }
    Ok(())
}

/// The 5GS mobile identity of a plain Registration Request at `n` (TS 24.501 §8.2.6): after the
/// header (3) and the registration type / ngKSI octet, an LV-E (2-octet length), then the type in
/// the low 3 bits of its first octet (§9.11.3.4). A SUCI (type 1) is noted ([`UE_HAS_SUCI`]). A
/// 5G-GUTI (type 2, length 11): octet 0 type, MCC/MNC (3), AMF Region ID (1), AMF Set ID (10
/// bits) + AMF Pointer (6 bits) (2), 5G-TMSI (4).
#[inline(always)]
fn mobile_identity<P: Packet + ?Sized>(pkt: &P, n: usize, nlen: usize, out: &mut InitialUe) -> Result<(), NgapError> {
    if nlen < 7 {
        return Ok(());
    }
    let l = pkt.read_wide::<3>(n + 4).ok_or(NgapError::Window)?;
    let idlen = be16([l[0], l[1]]) as usize;
    if idlen == 0 || 6 + idlen > nlen {
        return Ok(());
    }
    if l[2] & 0x07 == 1 {
        out.present |= UE_HAS_SUCI;
        return Ok(());
    }
    if idlen != 11 || l[2] & 0x07 != 2 {
        return Ok(());
    }
    let g = pkt.read_wide::<6>(n + 6 + 5).ok_or(NgapError::Window)?;
    out.tmsi_hi = be16([g[0], g[1]]) as u32;
    out.tmsi = be32([g[2], g[3], g[4], g[5]]);
    out.present |= UE_HAS_GUTI;
    Ok(())
}
