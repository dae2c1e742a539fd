//! Host tests of the pure N2 parser (SCTP chunk walk, NGAP/S1AP InitialUEMessage): properties
//! over generated frames. The encoder here is minimal and written from RFC 9260 / TS 38.413; the
//! full, independent one is the lab kit's (`tests/src/sctp_frames/`), checked against tshark.

use proptest::prelude::*;

use crate::abi::n2::{CELL_KIND_EUTRA, CELL_KIND_NR, CHUNK_CLASS_COUNT, PROC_INITIAL_UE};
use crate::parse::n2::{self, N2Malformed, MAX_CHUNKS};
use crate::parse::ngap::{self, UE_HAS_CELL, UE_HAS_GUTI, UE_HAS_RAN_UE_ID, UE_HAS_S_TMSI, UE_HAS_TAC};
use crate::parse::sctp;

const NGAP: u16 = 38412;
const S1AP: u16 = 36412;

/// A chunk (RFC 9260 §3.2): type, flags, length without padding, value, padding to 4 octets.
fn chunk(t: u8, flags: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![t, flags];
    c.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
    c.extend_from_slice(value);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

/// A DATA chunk (§3.3.1), B and E set, carrying `pdu` with `ppid`.
fn data(ppid: u32, pdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 1, 0, 0];
    v.extend_from_slice(&ppid.to_be_bytes());
    v.extend_from_slice(pdu);
    chunk(sctp::CHUNK_DATA, 0x03, &v)
}

/// Ethernet + IPv4 (or IPv6) + SCTP common header to `port` + `body`. The IP length covers
/// exactly the SCTP packet.
fn frame(v6: bool, port: u16, vtag: u32, body: &[u8]) -> Vec<u8> {
    let mut s = port.to_be_bytes().to_vec();
    s.extend_from_slice(&port.to_be_bytes());
    s.extend_from_slice(&vtag.to_be_bytes());
    s.extend_from_slice(&[0; 4]);
    s.extend_from_slice(body);
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(s.len() as u16).to_be_bytes());
        f.extend_from_slice(&[132, 64]);
        f.extend_from_slice(&[0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]);
        f.extend_from_slice(&[0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    } else {
        let total = (20 + s.len()) as u16;
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 132, 0, 0]);
        f.extend_from_slice(&[10, 1, 0, 11, 10, 1, 0, 1]);
    }
    f.extend_from_slice(&s);
    f
}

/// Offset of the first chunk in [`frame`].
fn chunks_at(v6: bool) -> usize {
    14 + if v6 { 40 } else { 20 } + 12
}

/// An open type: length determinant (X.691 §11.9.3.6-8; < 16384) and contents.
fn open(v: &[u8]) -> Vec<u8> {
    let mut o = if v.len() < 128 { vec![v.len() as u8] } else { vec![0x80 | (v.len() >> 8) as u8, v.len() as u8] };
    o.extend_from_slice(v);
    o
}

fn ie(id: u16, value: &[u8]) -> Vec<u8> {
    let mut o = id.to_be_bytes().to_vec();
    o.push(0x40);
    o.extend_from_slice(&open(value));
    o
}

/// The generated InitialUEMessage.
#[derive(Clone, Debug)]
struct Ue {
    ran_ue_id: u32,
    /// NR (36-bit NCI) or E-UTRA (28-bit cell id).
    nr: bool,
    cell: u64,
    tac: u32,
    cause: u8,
    s_tmsi: Option<(u16, u8, u32)>,
    /// A plain Registration Request with this 5G-GUTI (set, pointer, TMSI), else a SUCI one.
    guti: Option<(u16, u8, u32)>,
    /// Filler NAS octets (pushes later IEs further out).
    nas_pad: usize,
}

/// TS 38.413 §9.2.5.1 InitialUEMessage, ALIGNED PER, IEs in the order of the spec's table.
fn encode_ue(u: &Ue) -> Vec<u8> {
    let mut ies = Vec::new();
    // RAN-UE-NGAP-ID: INTEGER (0..2^32-1): 2 bits of octet count - 1, padded, the octets.
    let b = u.ran_ue_id.to_be_bytes();
    let skip = b.iter().take(3).take_while(|x| **x == 0).count();
    let mut r = vec![((3 - skip) as u8) << 6];
    r.extend_from_slice(&b[skip..]);
    ies.push(ie(85, &r));
    // NAS-PDU: OCTET STRING.
    let mut nas = vec![0x7e, 0x00, 0x41];
    match u.guti {
        Some((set, ptr, tmsi)) => {
            nas.extend_from_slice(&[0x0b, 0x00, 0x0b, 0xf2, 0x00, 0xf1, 0x10, 0xca]);
            nas.extend_from_slice(&(((set & 0x3ff) << 6) | (ptr as u16 & 0x3f)).to_be_bytes());
            nas.extend_from_slice(&tmsi.to_be_bytes());
        }
        None => nas.extend_from_slice(&[0x79, 0x00, 0x0d, 0x01, 0x00, 0xf1, 0x10, 0xf0, 0xff, 0, 0, 1, 2, 3, 4, 5]),
    }
    nas.extend(std::iter::repeat_n(0x2e, u.nas_pad));
    ies.push(ie(38, &open(&nas)));
    // UserLocationInformation (§9.3.1.16): CHOICE index + SEQUENCE preamble bits, PLMN, cell
    // identity (BIT STRING 36 / 28, aligned), TAI PLMN, TAC (3 octets).
    let mut uli = Vec::new();
    if u.nr {
        uli.push(0x40);
        uli.extend_from_slice(&[0x00, 0xf1, 0x10]);
        uli.extend_from_slice(&((u.cell & 0xf_ffff_ffff) << 4).to_be_bytes()[3..8]);
    } else {
        uli.push(0x00);
        uli.extend_from_slice(&[0x00, 0xf1, 0x10]);
        uli.extend_from_slice(&(((u.cell as u32) & 0x0fff_ffff) << 4).to_be_bytes());
    }
    uli.extend_from_slice(&[0x00, 0xf1, 0x10]);
    uli.extend_from_slice(&u.tac.to_be_bytes()[1..4]);
    ies.push(ie(121, &uli));
    // RRCEstablishmentCause: extensible ENUMERATED, 4 bits after the extension bit.
    ies.push(ie(90, &[(u.cause & 0x0f) << 3]));
    if let Some((set, ptr, tmsi)) = u.s_tmsi {
        // FiveG-S-TMSI: 2 preamble bits, AMF Set ID (10), AMF Pointer (6), padding, 5G-TMSI.
        let bits = ((set as u32 & 0x3ff) << 12) | ((ptr as u32 & 0x3f) << 6);
        let mut v = bits.to_be_bytes()[1..4].to_vec();
        v.extend_from_slice(&tmsi.to_be_bytes());
        ies.push(ie(26, &v));
    }
    let mut v = vec![0x00];
    v.extend_from_slice(&(ies.len() as u16).to_be_bytes());
    for i in &ies {
        v.extend_from_slice(i);
    }
    let mut pdu = vec![0x00, 15, 0x40];
    pdu.extend_from_slice(&open(&v));
    pdu
}

fn arb_ue() -> impl Strategy<Value = Ue> {
    (
        any::<u32>(),
        any::<bool>(),
        any::<u64>(),
        0u32..0x100_0000,
        0u8..10,
        proptest::option::of((0u16..1024, 0u8..64, any::<u32>())),
        proptest::option::of((0u16..1024, 0u8..64, any::<u32>())),
        0usize..200,
    )
        .prop_map(|(ran_ue_id, nr, cell, tac, cause, s_tmsi, guti, nas_pad)| Ue {
            ran_ue_id,
            nr,
            cell: if nr { cell & 0xf_ffff_ffff } else { cell & 0x0fff_ffff },
            tac,
            cause,
            s_tmsi,
            guti,
            nas_pad,
        })
}

/// Chunk types that may be bundled (not INIT, INIT ACK, SHUTDOWN COMPLETE: §6.10), with a value
/// long enough for the type's fixed part.
fn arb_chunk() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (prop::sample::select(vec![0u8, 3, 4, 5, 6, 7, 8, 9, 10, 11, 64, 192, 200]), 0usize..40, any::<u8>()).prop_map(
        |(t, extra, fill)| {
            let min = sctp::min_chunk_len(t) - sctp::CHUNK_HLEN;
            let mut v = vec![fill; min + extra];
            if t == sctp::CHUNK_DATA {
                // PPID 46: not NGAP, so no PDU is read from the filler.
                v[8..12].copy_from_slice(&46u32.to_be_bytes());
            }
            (t, v)
        },
    )
}

proptest! {
    /// Every chunk up to MAX_CHUNKS is counted in its class; beyond it the walk is cut, never
    /// malformed; IPv4 and IPv6 alike.
    #[test]
    fn chunk_walk_counts_every_class(chunks in proptest::collection::vec(arb_chunk(), 1..12), v6 in any::<bool>()) {
        let body: Vec<u8> = chunks.iter().flat_map(|(t, v)| chunk(*t, 0, v)).collect();
        let f = frame(v6, NGAP, 7, &body);
        let p = n2::parse(&f[..], NGAP, S1AP).expect("well-formed").expect("N2").pkt;
        let walked = chunks.len().min(MAX_CHUNKS);
        prop_assert_eq!(p.chunks as usize, walked);
        prop_assert_eq!(p.walk_cut != 0, chunks.len() > MAX_CHUNKS);
        let mut want = [0u8; CHUNK_CLASS_COUNT];
        for (t, _) in &chunks[..walked] {
            want[sctp::chunk_class(*t)] += 1;
        }
        prop_assert_eq!(&p.chunk_counts[..CHUNK_CLASS_COUNT], &want[..]);
        prop_assert_eq!(p.vtag, 7);
    }

    /// Cutting the SCTP packet (its IP length, not the frame) anywhere is classified exactly:
    /// nothing after the common header → NoChunks; a cut at a chunk boundary → well-formed;
    /// 1-3 octets into a chunk → ChunkTruncated; further in → ChunkOverrun.
    #[test]
    fn ip_length_cuts_are_classified(chunks in proptest::collection::vec(arb_chunk(), 1..6)) {
        let encoded: Vec<Vec<u8>> = chunks.iter().map(|(t, v)| chunk(*t, 0, v)).collect();
        let body: Vec<u8> = encoded.concat();
        let starts: Vec<usize> = encoded.iter().scan(0, |o, c| { let s = *o; *o += c.len(); Some(s) }).collect();
        for cut in 0..=body.len() {
            let f = frame(false, NGAP, 7, &body[..cut]);
            let r = n2::parse(&f[..], NGAP, S1AP);
            let want = if cut == 0 {
                Err(N2Malformed::NoChunks)
            } else {
                let i = starts.iter().rposition(|s| *s <= cut).unwrap_or(0);
                let into = cut - starts[i];
                // The chunk's length without its padding.
                let clen = 4 + chunks[i].1.len();
                if into == 0 || into >= clen {
                    // At a chunk boundary, or inside the last walked chunk's padding.
                    Ok(())
                } else if into < 4 {
                    Err(N2Malformed::ChunkTruncated)
                } else {
                    Err(N2Malformed::ChunkOverrun)
                }
            };
            match (r, want) {
                (Ok(Some(_)), Ok(())) => {}
                (Err(e), Err(w)) => prop_assert_eq!(e, w, "cut {}", cut),
                (r, w) => prop_assert!(false, "cut {}: got {:?}, want {:?}", cut, r.map(|p| p.map(|p| p.pkt.chunks)), w),
            }
        }
    }

    /// Cutting the *frame* anywhere (the IP length then runs past it) is never a panic and never
    /// well-formed SCTP once the common header is reached.
    #[test]
    fn frame_cuts_never_panic(u in arb_ue(), v6 in any::<bool>()) {
        let f = frame(v6, NGAP, 9, &data(60, &encode_ue(&u)));
        for n in 0..f.len() {
            let r = n2::parse(&f[..n], NGAP, S1AP);
            prop_assert!(r.is_err(), "cut {}: {:?}", n, r);
            if n >= chunks_at(v6) - sctp::SCTP_HLEN {
                prop_assert_eq!(r, Err(N2Malformed::SctpTruncated), "cut {}", n);
            }
        }
    }

    /// An InitialUEMessage with arbitrary identities walks back to what was encoded.
    #[test]
    fn initial_ue_round_trip(u in arb_ue(), v6 in any::<bool>()) {
        let f = frame(v6, NGAP, 9, &data(60, &encode_ue(&u)));
        let p = n2::parse(&f[..], NGAP, S1AP).expect("valid").expect("N2");
        prop_assert_eq!(p.pkt.procs[PROC_INITIAL_UE], 1);
        prop_assert_eq!(p.pkt.ue_count, 1);
        let r = p.ues[0].expect("recorded");
        // The window is the packet (WIDE_PARSE_OFFSET): a long NAS-PDU no longer hides the ULI
        // behind it, so every encoded InitialUEMessage walks in full.
        let x = match r {
            Ok(x) => x,
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
        };
        prop_assert_eq!(x.ran_ue_id, u.ran_ue_id);
        prop_assert!(x.present & UE_HAS_RAN_UE_ID != 0);
        prop_assert!(x.present & UE_HAS_CELL != 0 && x.present & UE_HAS_TAC != 0);
        prop_assert_eq!(x.cell_kind, if u.nr { CELL_KIND_NR } else { CELL_KIND_EUTRA });
        prop_assert_eq!(x.cell_id, u.cell);
        prop_assert_eq!(x.plmn, [0x00, 0xf1, 0x10, 0]);
        prop_assert_eq!(x.tac, u.tac);
        prop_assert_eq!(x.rrc_cause, u.cause as u32);
        prop_assert_eq!(x.nas_msg, ngap::NAS_5GMM_REGISTRATION_REQUEST as u32);
        match (u.s_tmsi, u.guti) {
            (Some((set, ptr, tmsi)), _) => {
                prop_assert!(x.present & UE_HAS_S_TMSI != 0 && x.present & UE_HAS_GUTI == 0);
                prop_assert_eq!((x.amf_set_id(), x.amf_pointer(), x.tmsi), (set, ptr, tmsi));
            }
            (None, Some((set, ptr, tmsi))) => {
                prop_assert!(x.present & UE_HAS_GUTI != 0 && x.present & UE_HAS_S_TMSI == 0);
                prop_assert_eq!((x.amf_set_id(), x.amf_pointer(), x.tmsi), (set, ptr, tmsi));
            }
            (None, None) => prop_assert!(x.present & (UE_HAS_S_TMSI | UE_HAS_GUTI) == 0),
        }
        // The step API and the one-shot walk agree.
        let mut y = ngap::InitialUe::default();
        let off = p.pkt.ue_off[0] as usize;
        let end = p.pkt.ue_end[0] as usize;
        ngap::initial_ue_head(&f[..], off, end, ngap::PROTO_NGAP, &mut y).expect("head");
        while ngap::ie_step(&f[..], &mut y).expect("step") {}
        prop_assert_eq!(x, y);
    }

    /// Arbitrary octets in place of the IE container: the walk ends in a result, never a panic,
    /// and never reads past the DATA chunk (a shorter `end` only ever cuts the walk short).
    #[test]
    fn ie_walk_stays_inside_its_chunk(tail in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut pdu = vec![0x00, 15, 0x40];
        pdu.extend_from_slice(&open(&tail));
        let mut u = ngap::InitialUe::default();
        let full = ngap::initial_ue(&pdu[..], 0, pdu.len(), ngap::PROTO_NGAP, &mut u);
        // With garbage after the chunk, the result is the same.
        let mut padded = pdu.clone();
        padded.extend_from_slice(&[0xff; 64]);
        let mut v = ngap::InitialUe::default();
        let r = ngap::initial_ue(&padded[..], 0, pdu.len(), ngap::PROTO_NGAP, &mut v);
        prop_assert_eq!(full, r);
        prop_assert_eq!(u, v);
    }
}

#[test]
fn s1ap_initial_ue_message() {
    // TS 36.413 §9.1.7.1: eNB-UE-S1AP-ID, NAS-PDU (plain Attach Request), TAI, EUTRAN-CGI,
    // RRC-Establishment-Cause, S-TMSI.
    let ies = [
        ie(8, &[0x40, 0x42, 0x43]),
        ie(26, &open(&[0x07, 0x41, 0x71, 0x08])),
        ie(67, &[0x00, 0x00, 0xf1, 0x10, 0x00, 0x07]),
        ie(100, &[0x00, 0x00, 0xf1, 0x10, 0x01, 0x23, 0x45, 0x60]),
        ie(134, &[3 << 4]),
        ie(96, &[0x04, 0x40, 0xca, 0xfe, 0xf0, 0x0d]),
    ];
    let mut v = vec![0x00, 0x00, ies.len() as u8];
    for i in &ies {
        v.extend_from_slice(i);
    }
    let mut pdu = vec![0x00, 12, 0x40];
    pdu.extend_from_slice(&open(&v));
    let f = frame(false, S1AP, 3, &data(18, &pdu));
    let p = n2::parse(&f[..], NGAP, S1AP).expect("valid").expect("N2");
    let u = p.ues[0].expect("recorded").expect("walked");
    assert_eq!(u.ies, 6);
    assert_eq!((u.ran_ue_id, u.tac, u.cell_id, u.cell_kind), (0x4243, 7, 0x0123_4560 >> 4, CELL_KIND_EUTRA));
    assert_eq!((u.tmsi_hi, u.tmsi, u.rrc_cause, u.nas_msg), (0x11, 0xcafe_f00d, 3, 0x41));
    // The same PDU to the NGAP port with PPID 60 is not an InitialUEMessage (NGAP code 12 is
    // another procedure).
    let f = frame(false, NGAP, 3, &data(60, &pdu));
    let p = n2::parse(&f[..], NGAP, S1AP).expect("valid").expect("N2");
    assert_eq!(p.pkt.ue_count, 0);
}

#[test]
fn setup_chunks_must_travel_alone() {
    let init = chunk(sctp::CHUNK_INIT, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
    let cookie_ack = chunk(sctp::CHUNK_COOKIE_ACK, 0, &[]);
    let shutdown_complete = chunk(sctp::CHUNK_SHUTDOWN_COMPLETE, 0, &[]);
    for (name, body, want) in [
        ("INIT alone", init.clone(), Ok(())),
        ("INIT + COOKIE ACK", [init.clone(), cookie_ack.clone()].concat(), Err(N2Malformed::InitBundled)),
        ("COOKIE ACK + INIT", [cookie_ack.clone(), init].concat(), Err(N2Malformed::InitBundled)),
        ("SHUTDOWN COMPLETE alone", shutdown_complete.clone(), Ok(())),
        ("SHUTDOWN COMPLETE + COOKIE ACK", [shutdown_complete, cookie_ack].concat(), Err(N2Malformed::InitBundled)),
    ] {
        let f = frame(false, NGAP, 0, &body);
        assert_eq!(n2::parse(&f[..], NGAP, S1AP).map(|_| ()), want, "{name}");
    }
}
