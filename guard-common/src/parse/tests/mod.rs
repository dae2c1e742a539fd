//! Host tests of the pure parsers, one file per thing tested: [`n3_parse`] the whole N3 frame
//! (hand-written cases and properties over generated frames), [`n3_fast_path`] the fixed-offset
//! path held to the full parser, [`ip_fragments`] outer IP fragments, [`gtpu`] the GTP-U header
//! and its T-PDU's addresses, [`n2_parse`] the N2 parser (SCTP chunk walk, NGAP/S1AP
//! InitialUEMessage). Here: the minimal N3 frame encoder the N3 files share. (Independent
//! oracles — tshark dissecting frames, scapy crafting them — are in `tests/tests/`.)

use proptest::prelude::*;

use super::n3;

mod gtpu;
mod ip_fragments;
mod n2_chunks;
mod n2_parse;
mod n3_fast_path;
mod n3_parse;
mod ngap;

/// A minimal encoder for the N3 test files (the lab kit's builder is the full one).
#[derive(Clone, Debug)]
struct Spec {
    vlans: u8,
    ipv6: bool,
    teid: u32,
    msg_type: u8,
    seq: Option<u16>,
    qfi: Option<u8>,
    /// Length of the PDU Session Container in 4-octet units (1 = PDU type and QFI only; more =
    /// optional fields, here filler, after them).
    qfi_units: u8,
    extra_ext: u8,
    /// Length of each extra extension header in 4-octet units. With more than one unit the
    /// Next Extension Header Type is in the last unit, and the filler in the first unit's last
    /// octet is not a valid end of chain: a walk reading it from the wrong unit fails.
    ext_units: u8,
    inner: [u8; 4],
    payload: usize,
}

fn encode(s: &Spec) -> Vec<u8> {
    // GTP-U header + optional fields + extension chain + inner IPv4/UDP packet.
    // (type, content between the Length octet and the Next Extension Header Type octet).
    let mut exts: Vec<(u8, Vec<u8>)> = Vec::new();
    let filler = |units: u8, head: &[u8]| {
        let mut c = head.to_vec();
        c.resize(4 * usize::from(units) - 2, 0x5a);
        c
    };
    if let Some(q) = s.qfi {
        exts.push((0x85, filler(s.qfi_units, &[0x10, q & 0x3f]))); // UL PDU type 1, QFI
    }
    for _ in 0..s.extra_ext {
        exts.push((0x40, filler(s.ext_units, &[0xab, 0xcd]))); // UDP Port type, harmless content
    }
    let mut tpdu = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    tpdu.extend_from_slice(&s.inner);
    tpdu.extend_from_slice(&[192, 0, 2, 1]);
    tpdu.extend(std::iter::repeat_n(0u8, s.payload));
    let tot = tpdu.len() as u16;
    tpdu[2..4].copy_from_slice(&tot.to_be_bytes());
    let e = !exts.is_empty();
    let opt = e || s.seq.is_some();
    let mut g = vec![0x30 | if e { 4 } else { 0 } | if s.seq.is_some() { 2 } else { 0 }, s.msg_type, 0, 0];
    g.extend_from_slice(&s.teid.to_be_bytes());
    if opt {
        g.extend_from_slice(&s.seq.unwrap_or(0).to_be_bytes());
        g.push(0);
        g.push(exts.first().map(|x| x.0).unwrap_or(0));
        // Each header: length (in 4-octet units) | content | next header type.
        for (i, (_, content)) in exts.iter().enumerate() {
            g.push(((content.len() + 2) / 4) as u8);
            g.extend_from_slice(content);
            g.push(exts.get(i + 1).map(|n| n.0).unwrap_or(0));
        }
    }
    if s.msg_type == 255 {
        g.extend_from_slice(&tpdu);
    }
    let glen = (g.len() - 8) as u16;
    g[2..4].copy_from_slice(&glen.to_be_bytes());
    let mut udp = vec![0x08, 0x68, 0x08, 0x68, 0, 0, 0, 0];
    let ulen = (8 + g.len()) as u16;
    udp[4..6].copy_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&g);
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for _ in 0..s.vlans {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    if s.ipv6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&[0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]);
        f.extend_from_slice(&[0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 200, 0, 11, 10, 200, 0, 1]);
    }
    f.extend_from_slice(&udp);
    f
}

fn gtp(f: &[u8]) -> n3::GtpPacket {
    match n3::parse(f, 2152) {
        Ok(n3::N3::Gtp(p)) => p,
        other => panic!("expected GTP-U, got {other:?}"),
    }
}

fn base() -> Spec {
    Spec {
        vlans: 0,
        ipv6: false,
        teid: 0x1234,
        msg_type: 255,
        seq: None,
        qfi: Some(9),
        qfi_units: 1,
        extra_ext: 0,
        ext_units: 1,
        inner: [10, 45, 0, 2],
        payload: 8,
    }
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        0u8..=2,
        any::<bool>(),
        any::<u32>(),
        prop::sample::select(vec![1u8, 2, 26, 31, 254, 255]),
        prop::option::of(any::<u16>()),
        (prop::option::of(0u8..64), 1u8..=3),
        (0u8..4, 1u8..=4),
        any::<[u8; 4]>(),
        0usize..64,
    )
        .prop_map(
            |(vlans, ipv6, teid, msg_type, seq, (qfi, qfi_units), (extra_ext, ext_units), inner, payload)| Spec {
                vlans,
                ipv6,
                teid,
                msg_type,
                seq,
                qfi,
                qfi_units,
                extra_ext,
                ext_units,
                inner,
                payload,
            },
        )
}
