//! Host tests of the SCTP chunk walk (`parse::n2`): SACK and NGAP DATA counted, structural
//! errors, chunk order, and arbitrary frames, chunks and NGAP payloads never panic.

use crate::abi::n2::{CHUNK_CLASS_DATA, CHUNK_CLASS_SACK, PROC_INITIAL_UE, PROC_UPLINK_NAS};
use crate::parse::n2::*;
use proptest::prelude::*;

fn chunk(t: u8, flags: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![t, flags];
    c.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
    c.extend_from_slice(value);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

fn data(ppid: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 0, 0, 0];
    v.extend_from_slice(&ppid.to_be_bytes());
    v.extend_from_slice(payload);
    chunk(0, 0x03, &v)
}

fn frame(vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut sctp = vec![0x96, 0x0c, 0x96, 0x0c];
    sctp.extend_from_slice(&vtag.to_be_bytes());
    sctp.extend_from_slice(&[0; 4]);
    for c in chunks {
        sctp.extend_from_slice(c);
    }
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + sctp.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 132, 0, 0]);
    f.extend_from_slice(&[10, 1, 0, 5, 10, 1, 0, 1]);
    f.extend_from_slice(&sctp);
    f
}

#[test]
fn sack_and_ngap_data_are_counted() {
    let sack = chunk(3, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    let f = frame(7, &[sack, data(60, &[0x00, 46, 0x40, 0]), data(60, &[0x00, 15, 0x40, 0])]);
    let p = parse(&f[..], 38412, 36412).expect("valid").expect("N2");
    assert_eq!(p.pkt.chunks, 3);
    assert_eq!(p.pkt.count(CHUNK_CLASS_SACK), 1);
    assert_eq!(p.pkt.count(CHUNK_CLASS_DATA), 2);
    assert_eq!(p.pkt.procs[PROC_UPLINK_NAS], 1);
    assert_eq!(p.pkt.procs[PROC_INITIAL_UE], 1);
    assert_eq!(p.pkt.ue_count, 1);
    assert!(matches!(p.ues[0], Some(Err(_))), "a 4-octet InitialUEMessage does not walk");
    // Another port: not N2.
    assert_eq!(parse(&f[..], 1, 2), Ok(None));
    // Ethernet padding after the IP packet is not a chunk.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 10]);
    assert_eq!(parse(&padded[..], 38412, 0).expect("valid").expect("N2").pkt.chunks, 3);
}

#[test]
fn structural_errors() {
    let init = chunk(1, 0, &[0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
    assert!(parse(&frame(0, std::slice::from_ref(&init))[..], 38412, 0).is_ok());
    assert_eq!(parse(&frame(5, std::slice::from_ref(&init))[..], 38412, 0), Err(N2Malformed::InitBadVtag));
    let hb = chunk(4, 0, &[0, 1, 0, 4]);
    assert_eq!(parse(&frame(0, &[init, hb])[..], 38412, 0), Err(N2Malformed::InitBundled));
    assert_eq!(parse(&frame(1, &[])[..], 38412, 0), Err(N2Malformed::NoChunks));
    assert_eq!(parse(&frame(1, &[vec![3, 0, 0, 2]])[..], 38412, 0), Err(N2Malformed::ChunkTooShort));
    assert_eq!(parse(&frame(1, &[vec![11, 0, 0, 8]])[..], 38412, 0), Err(N2Malformed::ChunkOverrun));
    assert_eq!(parse(&frame(1, &[vec![11, 0]])[..], 38412, 0), Err(N2Malformed::ChunkTruncated));
    let f = frame(1, &[vec![11, 0, 0, 4]]);
    assert_eq!(parse(&f[..f.len() - 1], 38412, 0), Err(N2Malformed::SctpTruncated));
}

#[test]
fn all_is_in_index_order() {
    for (i, r) in N2Malformed::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
    }
}

proptest! {
    /// Arbitrary bytes never panic and never report more than was walked. Random bytes seldom
    /// parse as SCTP to an N2 port: the two properties below frame them so the walks run.
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Some(p)) = parse(&bytes[..], 38412, 36412) {
            prop_assert!(p.pkt.chunks as usize <= MAX_CHUNKS);
            prop_assert!(p.pkt.ue_count as usize <= MAX_UE_MSGS);
        }
    }

    /// Valid SCTP/IP framing with arbitrary chunk bytes: the walk never panics, never reports
    /// more than it may walk, and every InitialUEMessage it records lies inside the frame.
    #[test]
    fn arbitrary_chunks_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400),
                                    vtag in any::<u32>()) {
        let f = frame(vtag, &[body]);
        if let Ok(Some(p)) = parse(&f[..], 38412, 36412) {
            prop_assert!(p.pkt.chunks as usize <= MAX_CHUNKS);
            prop_assert!(p.pkt.ue_count as usize <= MAX_UE_MSGS);
            for i in 0..p.pkt.ue_count as usize {
                prop_assert!(p.pkt.ue_off[i] <= p.pkt.ue_end[i] && p.pkt.ue_end[i] as usize <= f.len());
            }
        }
    }

    /// A DATA chunk with an arbitrary NGAP payload: the IE walk never panics.
    #[test]
    fn arbitrary_ngap_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut p = vec![0x00, 15];
        p.extend_from_slice(&payload);
        let f = frame(9, &[data(60, &p)]);
        let r = parse(&f[..], 38412, 36412);
        prop_assert!(r.is_ok());
        if let Ok(Some(p)) = r {
            prop_assert!(p.pkt.ue_count as usize <= 1);
            for i in 0..p.pkt.ue_count as usize {
                prop_assert!(p.pkt.ue_off[i] <= p.pkt.ue_end[i] && p.pkt.ue_end[i] as usize <= f.len());
            }
        }
    }
}
