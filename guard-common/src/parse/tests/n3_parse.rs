//! Host tests of the pure N3 parser: hand-written cases and properties over generated frames.
//! (Independent oracles — tshark dissecting frames, scapy crafting them — are in `tests/tests/`.)

use proptest::prelude::*;

use super::{n3, Malformed};
use crate::abi::{L3Addr, QFI_NONE};

/// A minimal encoder for the properties below (the lab kit's builder is the full one).
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

#[test]
fn gpdu_with_pdu_session_container() {
    let p = gtp(&encode(&base()));
    assert_eq!(p.gtp.teid, 0x1234);
    assert_eq!(p.gtp.msg_type, 255);
    assert_eq!(p.gtp.qfi, 9);
    assert_eq!(p.gtp.pdu_type, 1);
    assert_eq!(p.outer_src, L3Addr::v4([10, 200, 0, 11]));
    assert_eq!(p.inner_src, L3Addr::v4([10, 45, 0, 2]));
    assert_eq!(p.inner_dst, L3Addr::v4([192, 0, 2, 1]));
}

#[test]
fn no_extension_header_means_no_qfi() {
    let p = gtp(&encode(&Spec { qfi: None, ..base() }));
    assert_eq!(p.gtp.qfi as u32, QFI_NONE);
    assert_eq!(p.gtp.ext_count, 0);
}

#[test]
fn other_port_and_non_ip_are_not_gtp() {
    let mut f = encode(&base());
    f[36] = 0x13; // UDP destination port 0x1368 = 4968
    assert_eq!(n3::parse(&f[..], 2152), Ok(n3::N3::NotGtp));
    let mut arp = encode(&base());
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(n3::parse(&arp[..], 2152), Ok(n3::N3::NotGtp));
}

#[test]
fn zero_length_extension_header_is_malformed() {
    let mut f = encode(&base());
    // Ethernet 14 + IPv4 20 + UDP 8 + GTP 8 + optional 4: the extension header's length octet.
    f[54] = 0;
    assert_eq!(n3::parse(&f[..], 2152), Err(Malformed::ExtZeroLength));
}

#[test]
fn extension_header_running_past_the_message_is_malformed() {
    let mut f = encode(&base());
    f[54] = 200;
    assert_eq!(n3::parse(&f[..], 2152), Err(Malformed::ExtOverrun));
}

#[test]
fn too_many_extension_headers_is_malformed() {
    let ok = Spec { extra_ext: 7, ..base() };
    assert_eq!(gtp(&encode(&ok)).gtp.ext_count, 8);
    let too_many = Spec { extra_ext: 8, ..base() };
    assert_eq!(n3::parse(&encode(&too_many)[..], 2152), Err(Malformed::ExtChainTooLong));
}

/// Headers of several units are walked by their Length: the Next Extension Header Type comes
/// from the last octet of each header's last unit (TS 29.281 §5.2.1), whatever the filler in
/// its first unit says, and the T-PDU is found after the chain.
#[test]
fn multi_unit_extension_headers_are_walked_by_their_length() {
    for (qfi_units, extra_ext, ext_units) in [(2, 0, 1), (3, 1, 1), (1, 1, 2), (1, 3, 4), (2, 2, 3)] {
        let spec = Spec { qfi: Some(33), qfi_units, extra_ext, ext_units, ..base() };
        let p = gtp(&encode(&spec));
        let ctx = format!("container {qfi_units} units, {extra_ext} more of {ext_units}");
        assert_eq!(p.gtp.ext_count, 1 + extra_ext, "{ctx}");
        assert_eq!((p.gtp.qfi, p.gtp.pdu_type), (33, 1), "{ctx}");
        assert_eq!(p.inner_src, L3Addr::v4([10, 45, 0, 2]), "{ctx}");
        assert_eq!(p.inner_dst, L3Addr::v4([192, 0, 2, 1]), "{ctx}");
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

proptest! {
    /// Whatever the bytes, the parser returns (never panics), and a GTP-U result points inside
    /// the frame.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), port in any::<u16>()) {
        if let Ok(n3::N3::Gtp(p)) = n3::parse(&bytes[..], port) {
            prop_assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= bytes.len());
        }
    }

    /// Mutating any one byte of a valid frame never panics.
    #[test]
    fn single_byte_mutations_never_panic(spec in arb_spec(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut f = encode(&spec);
        let i = at.index(f.len());
        f[i] = b;
        let _ = n3::parse(&f[..], 2152);
    }

    /// Encoded frames parse back to what was encoded.
    #[test]
    fn encoded_frames_round_trip(spec in arb_spec()) {
        let p = gtp(&encode(&spec));
        prop_assert_eq!(p.gtp.teid, spec.teid);
        prop_assert_eq!(p.gtp.msg_type, spec.msg_type);
        prop_assert_eq!(p.vlan_tags, spec.vlans);
        let exts = spec.qfi.is_some() as u8 + spec.extra_ext;
        prop_assert_eq!(p.gtp.ext_count, if spec.qfi.is_some() || spec.seq.is_some() || spec.extra_ext > 0 { exts } else { 0 });
        if let Some(q) = spec.qfi {
            prop_assert_eq!(p.gtp.qfi, q);
        }
        if spec.msg_type == 255 {
            prop_assert_eq!(p.inner_src, L3Addr::v4(spec.inner));
        } else {
            prop_assert_eq!(p.inner_src, L3Addr::NONE);
        }
    }

    /// Cutting a valid frame anywhere gives a defined outcome: below the UDP header a pre-GTP
    /// reason (the packet passes), after it a GTP-level reason (the packet is dropped) — never a
    /// successful parse of a shortened GTP-U message.
    #[test]
    fn truncation_anywhere_is_classified(spec in arb_spec(), cut in any::<prop::sample::Index>()) {
        let f = encode(&spec);
        let n = cut.index(f.len());
        let l2 = 14 + 4 * spec.vlans as usize;
        let udp_end = l2 + if spec.ipv6 { 40 } else { 20 } + 8;
        match n3::parse(&f[..n], 2152) {
            Ok(n3::N3::Gtp(_)) => prop_assert!(false, "a frame cut at {n} of {} parsed as GTP-U", f.len()),
            Ok(n3::N3::NotGtp) => prop_assert!(false, "a cut GTP-U frame must be malformed, not 'not GTP'"),
            Err(m) => prop_assert_eq!(m.is_gtp(), n >= udp_end, "cut at {} gave {:?}", n, m),
        }
    }
}

#[test]
fn malformed_reason_names_are_unique() {
    let mut names: Vec<_> = Malformed::ALL.iter().map(|m| m.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Malformed::ALL.len());
}

proptest! {
    /// `gtpu::inner_addrs_into` (what `parse_into`, and so the kernel, uses) agrees with
    /// `gtpu::inner_addrs` on any T-PDU: IPv4, IPv6, not IP, empty, truncated, cut by the GTP-U
    /// length, or with an inner length that is or is not the T-PDU's.
    #[test]
    fn inner_addrs_into_agrees_with_inner_addrs(
        mut bytes in prop::collection::vec(any::<u8>(), 0..80),
        version in prop::sample::select(vec![4u8, 6, 0, 5]),
        start in 0usize..8,
        end in 0usize..90,
        tpdu_len in 0u32..90,
        true_length in any::<bool>(),
    ) {
        use super::gtpu::{inner_addrs, inner_addrs_into};
        if let Some(b) = bytes.get_mut(start) {
            *b = (version << 4) | (*b & 0x0f);
        }
        if true_length {
            // Make the inner header's own length say `tpdu_len`, so the IP branches are taken.
            let (at, v) = if version == 4 { (start + 2, tpdu_len) } else { (start + 4, tpdu_len.saturating_sub(40)) };
            if at + 2 <= bytes.len() {
                bytes[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
            }
        }
        let g = super::gtpu::Gtpu { payload: start, end, tpdu_len, ..n3::GtpPacket::EMPTY.gtp };
        let marker = L3Addr { family: 0xdead, addr: [0xa5; 16] };
        let (mut s, mut d) = (marker, marker);
        inner_addrs_into(bytes.as_slice(), &g, &mut s, &mut d);
        prop_assert_eq!((s, d), inner_addrs(bytes.as_slice(), &g));
    }

    /// A T-PDU that is not an IP packet of its own length never yields addresses and never an
    /// error, whatever its first nibble (TS 23.501 §5.6.10: Ethernet and Unstructured sessions).
    #[test]
    fn a_non_ip_tpdu_is_never_malformed(
        tpdu in prop::collection::vec(any::<u8>(), 0..120),
        first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x6f, 0x00, 0xff]),
    ) {
        let mut tpdu = tpdu;
        if let Some(b) = tpdu.first_mut() {
            *b = first;
        }
        let f = labframe(&tpdu);
        let r = n3::parse(&f[..], 2152);
        let Ok(n3::N3::Gtp(p)) = r else {
            return Err(TestCaseError::fail(format!("not parsed as GTP-U: {r:?}")));
        };
        let len = tpdu.len();
        let says_ip = len >= 20 && match first >> 4 {
            4 => usize::from(u16::from_be_bytes([tpdu[2], tpdu[3]])) == len,
            6 => usize::from(u16::from_be_bytes([tpdu[4], tpdu[5]])) + 40 == len,
            _ => false,
        };
        if !says_ip {
            prop_assert_eq!((p.inner_src, p.inner_dst), (L3Addr::NONE, L3Addr::NONE));
        }
    }
}

/// A plain IPv4 G-PDU frame (no optional fields) around `tpdu`.
fn labframe(tpdu: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = (20 + 8 + 8 + tpdu.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 200, 0, 11, 10, 200, 0, 1]);
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    let udp_len = (8 + 8 + tpdu.len()) as u16;
    f.extend_from_slice(&[0x08, 0x68, 0x08, 0x68, 0, 0, 0, 0]);
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0x30, 0xff]);
    f.extend_from_slice(&(tpdu.len() as u16).to_be_bytes());
    f.extend_from_slice(&0x1234u32.to_be_bytes());
    f.extend_from_slice(tpdu);
    f
}

/// `out` before a parse: a value no parse writes, so a field a parser forgets shows.
const MARKED: n3::GtpPacket = n3::GtpPacket {
    outer_src: L3Addr { family: 0xdead, addr: [0xa5; 16] },
    vlan_tags: 0xee,
    inner_src: L3Addr { family: 0xdead, addr: [0x5a; 16] },
    inner_dst: L3Addr { family: 0xbeef, addr: [0x3c; 16] },
    ..n3::GtpPacket::EMPTY
};

/// Whenever the fixed-offset path (`parse_common_into`) accepts a frame, the full parser accepts
/// it too and writes the same packet.
fn common_path_agrees(f: &[u8], port: u16) -> Result<bool, TestCaseError> {
    let mut fast = MARKED;
    if !n3::parse_common_into(f, port, &mut fast) {
        return Ok(false);
    }
    let mut full = MARKED;
    prop_assert_eq!(n3::parse_into(f, port, &mut full), Ok(true));
    prop_assert_eq!(fast, full);
    Ok(true)
}

/// The common shapes: what the fast path exists for.
fn common_spec() -> impl Strategy<Value = Spec> {
    arb_spec().prop_map(|s| Spec { vlans: 0, ipv6: false, msg_type: 255, seq: None, qfi_units: 1, extra_ext: 0, ..s })
}

proptest! {
    /// The common frames (untagged IPv4, a G-PDU with or without a PDU Session Container) take
    /// the fast path, and it writes what the full parser writes.
    #[test]
    fn common_frames_take_the_fast_path(spec in common_spec()) {
        prop_assert!(common_path_agrees(&encode(&spec), 2152)?, "the fast path refused {:?}", spec);
    }

    /// The fast path against the hand-written encoder, not only against the full parser (the
    /// two share code): it reads the TEID, QFI and PDU type, the outer source and both inner
    /// addresses that were encoded.
    #[test]
    fn the_fast_path_reads_what_was_encoded(spec in common_spec()) {
        let mut fast = MARKED;
        prop_assert!(n3::parse_common_into(&encode(&spec)[..], 2152, &mut fast), "refused {:?}", spec);
        prop_assert_eq!(fast.gtp.teid, spec.teid);
        prop_assert_eq!(fast.gtp.msg_type, 255);
        prop_assert_eq!(fast.gtp.qfi, spec.qfi.unwrap_or(QFI_NONE as u8));
        prop_assert_eq!(fast.gtp.ext_count, u8::from(spec.qfi.is_some()));
        if spec.qfi.is_some() {
            prop_assert_eq!(fast.gtp.pdu_type, 1);
        }
        prop_assert_eq!(fast.vlan_tags, 0);
        prop_assert_eq!(fast.outer_src, L3Addr::v4([10, 200, 0, 11]));
        prop_assert_eq!(fast.inner_src, L3Addr::v4(spec.inner));
        prop_assert_eq!(fast.inner_dst, L3Addr::v4([192, 0, 2, 1]));
    }

    /// Any frame, any two octets changed (version nibbles, flags, lengths, ports, extension
    /// types, an inner IPv6 header): the fast path either refuses or agrees with the full parser.
    #[test]
    fn the_fast_path_never_disagrees(
        spec in arb_spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut f = encode(&spec);
        for (at, b) in edits {
            let i = at.index(f.len());
            f[i] = b;
        }
        if let Some(c) = cut {
            f.truncate(c.index(f.len() + 1));
        }
        common_path_agrees(&f, 2152)?;
    }

    #[test]
    fn the_fast_path_never_disagrees_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        common_path_agrees(&bytes, 2152)?;
    }
}

/// An inner IPv6 packet on the fast path: both addresses, as the full parser reads them.
#[test]
fn the_fast_path_reads_an_inner_ipv6_header() {
    let mut f = encode(&Spec { payload: 40, ..base() });
    // The T-PDU starts after Ethernet, IPv4, UDP, GTP-U (12 with the optional fields) and the
    // 4-octet PDU Session Container.
    let t = 14 + 20 + 8 + 12 + 4;
    f[t] = 0x60;
    // Payload Length: the T-PDU less the 40-octet header (a T-PDU of another length is not IP).
    let pl = (f.len() - t - 40) as u16;
    f[t + 4..t + 6].copy_from_slice(&pl.to_be_bytes());
    f[t + 8..t + 40].copy_from_slice(&core::array::from_fn::<u8, 32, _>(|i| i as u8 + 1));
    let mut fast = MARKED;
    assert!(n3::parse_common_into(&f[..], 2152, &mut fast), "an inner IPv6 G-PDU takes the fast path");
    assert_eq!(fast.inner_src, L3Addr::v6(core::array::from_fn(|i| i as u8 + 1)));
    assert_eq!(fast.inner_dst, L3Addr::v6(core::array::from_fn(|i| i as u8 + 17)));
    assert_eq!(Ok(true), common_path_agrees(&f, 2152).map_err(|e| e.to_string()));
}

proptest! {
    /// The length fields the fast path trusts, set to anything near the truth: the GTP-U Length
    /// (the message may end inside the optional fields, the container or the inner header) and
    /// the UDP Length.
    #[test]
    fn the_fast_path_agrees_whatever_the_lengths_say(
        spec in common_spec(),
        gtp_delta in -30i32..6,
        udp_delta in prop::option::of(-30i32..6),
    ) {
        let mut f = encode(&spec);
        let (udp, gtp) = (14 + 20, 14 + 20 + 8);
        let set = |f: &mut Vec<u8>, at: usize, delta: i32| {
            let v = i32::from(u16::from_be_bytes([f[at], f[at + 1]])) + delta;
            f[at..at + 2].copy_from_slice(&(v.clamp(0, 0xffff) as u16).to_be_bytes());
        };
        set(&mut f, gtp + 2, gtp_delta);
        if let Some(d) = udp_delta {
            set(&mut f, udp + 4, d);
        }
        common_path_agrees(&f, 2152)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Outer IP fragments (RFC 791 §3.2, RFC 8200 §4.5, RFC 6946)

/// Split an untagged IPv4 frame's payload at `cut` (a multiple of 8): the first fragment (MF
/// set) and the second (offset `cut / 8`), both with Identification `id`.
fn fragment_v4(f: &[u8], id: u16, cut: usize) -> (Vec<u8>, Vec<u8>) {
    let (hdr, payload) = f.split_at(14 + 20);
    let mk = |part: &[u8], off: usize, more: bool| {
        let mut x = hdr.to_vec();
        x[14 + 2..14 + 4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        x[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        x[14 + 6..14 + 8].copy_from_slice(&fo.to_be_bytes());
        x.extend_from_slice(part);
        x
    };
    (mk(&payload[..cut], 0, true), mk(&payload[cut..], cut, false))
}

/// An IPv6 frame with a Fragment header (Next Header UDP, `offset` in octets, M, `id`) inserted
/// before its UDP header, carrying `part` of the original payload.
fn fragment_v6(f: &[u8], id: u32, part: std::ops::Range<usize>, more: bool) -> Vec<u8> {
    let (hdr, payload) = f.split_at(14 + 40);
    let mut x = hdr.to_vec();
    let body = &payload[part.clone()];
    x[14 + 4..14 + 6].copy_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    x[14 + 6] = 44;
    let om = (part.start as u16) | u16::from(more);
    x.extend_from_slice(&[17, 0]);
    x.extend_from_slice(&om.to_be_bytes());
    x.extend_from_slice(&id.to_be_bytes());
    x.extend_from_slice(body);
    x
}

#[test]
fn a_first_ipv4_fragment_is_parsed_like_the_packet_and_a_later_one_is_named() {
    let spec = Spec { payload: 1400, ..base() };
    let whole = encode(&spec);
    let (first, later) = fragment_v4(&whole, 0xbeef, 1000);
    let p = gtp(&first);
    assert_eq!((p.gtp.teid, p.gtp.qfi, p.inner_src), (0x1234, 9, L3Addr::v4([10, 45, 0, 2])));
    assert_eq!((p.frag_kind, p.frag), (n3::FRAG_FIRST, 0xbeef), "judged like a whole G-PDU");
    let mut out = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into(&later[..], 2152, &mut out), Ok(false), "no GTP-U header in a later fragment");
    assert_eq!((out.frag_kind, out.frag, out.outer_src), (n3::FRAG_LATER, 0xbeef, L3Addr::v4([10, 200, 0, 11])));
    // The fast path leaves fragments to the full parser, which reports the same.
    let mut fast = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into_fast(&later[..], 2152, &mut fast), Ok(false));
    assert_eq!(fast.frag_kind, n3::FRAG_LATER);
    // A whole packet after a fragment is not a fragment (the scratch is reused per CPU).
    let mut reused = out;
    assert!(n3::parse_into_fast(&whole[..], 2152, &mut reused).expect("whole"));
    assert_eq!(reused.frag_kind, n3::FRAG_NONE, "`frag` is not read for a whole packet");
    let other = [0u8; 60];
    let _ = n3::parse_into(&other[..], 2152, &mut reused);
    assert_eq!(reused.frag_kind, n3::FRAG_NONE, "a non-IP frame resets it too");
}

#[test]
fn ipv6_first_fragments_are_parsed_later_ones_named_and_atomic_ones_whole() {
    let spec = Spec { payload: 1400, ipv6: true, ..base() };
    let whole = encode(&spec);
    let udp_len = whole.len() - (14 + 40);
    let first = fragment_v6(&whole, 0x0102_0304, 0..1000, true);
    let p = gtp(&first);
    assert_eq!((p.gtp.teid, p.frag_kind, p.frag), (0x1234, n3::FRAG_FIRST, 0x0102_0304));
    let later = fragment_v6(&whole, 0x0102_0304, 1000..udp_len, false);
    let mut out = n3::GtpPacket::EMPTY;
    assert_eq!(n3::parse_into(&later[..], 2152, &mut out), Ok(false));
    assert_eq!((out.frag_kind, out.frag), (n3::FRAG_LATER, 0x0102_0304));
    // RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet.
    let atomic = fragment_v6(&whole, 7, 0..udp_len, false);
    let p = gtp(&atomic);
    assert_eq!((p.gtp.teid, p.frag_kind, p.inner_src), (0x1234, n3::FRAG_NONE, L3Addr::v4([10, 45, 0, 2])));
}

#[test]
fn a_first_fragment_too_short_for_the_headers_is_still_malformed() {
    let whole = encode(&Spec { payload: 1400, ..base() });
    // Cut inside the GTP-U optional fields: the headers are not all there.
    let (first, _) = fragment_v4(&whole, 1, 16);
    assert!(matches!(n3::parse(&first[..], 2152), Err(e) if e.is_gtp()), "{:?}", n3::parse(&first[..], 2152));
}

// ---------------------------------------------------------------------------------------------
// Hand-written GTP-U vectors (TS 29.281 §5.1, §5.2; TS 38.415 §5.5.2): octets written here, not
// by `encode`, and every field of the result checked.

mod gtpu_vectors {
    use super::super::gtpu::{self, Gtpu};
    use super::super::Malformed;
    use crate::abi::{L3Addr, QFI_NONE};

    /// An inner IPv4 header, 10.45.0.2 -> 192.0.2.1.
    const INNER: [u8; 20] = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 45, 0, 2, 192, 0, 2, 1];

    /// A G-PDU whose chain is two 2-unit headers: a Long PDCP PDU Number (0x82) whose first unit
    /// ends in 0xff (part of the number) and a DL PDU Session Container with the PPP and RQI
    /// bits set around QFI 9 and a PPI octet (0xa0) ending its first unit. Each next type is
    /// in its header's last octet: a walk that read it from the first unit would see 0xff or
    /// 0xa0.
    #[test]
    fn a_chain_of_two_unit_headers() {
        let mut v = vec![
            0x34, 0xff, 0x00, 0x28, 0x01, 0x02, 0x03, 0x04, // E set, G-PDU, Length 40, TEID
            0x00, 0x2a, 0x00, 0x82, // sequence, N-PDU, next: Long PDCP PDU Number
            0x02, 0x03, 0xff, 0xff, 0x00, 0x00, 0x00, 0x85, // 2 units, PDCP number, next: container
            0x02, 0x00, 0xc9, 0xa0, 0x00, 0x00, 0x00, 0x00, // 2 units, DL, PPP|RQI|QFI 9, PPI, end
        ];
        v.extend_from_slice(&INNER);
        let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
        let want = Gtpu {
            flags: 0x34,
            msg_type: 255,
            length: 40,
            teid: 0x0102_0304,
            ext_count: 2,
            qfi: 9,
            pdu_type: 0,
            payload: 28,
            end: 48,
            tpdu_len: 20,
        };
        assert_eq!(g, want);
        assert_eq!(gtpu::inner_addrs(&v[..], &g), (L3Addr::v4([10, 45, 0, 2]), L3Addr::v4([192, 0, 2, 1])));
        // The same message after 6 octets of something else, in a UDP payload 2 longer than it.
        let mut at6 = vec![0xee; 6];
        at6.extend_from_slice(&v);
        at6.extend_from_slice(&[0, 0]);
        let g6 = gtpu::parse(&at6[..], 6, v.len() + 2).expect("valid at 6");
        assert_eq!(g6, Gtpu { payload: 34, end: 54, ..want });
    }

    /// An End Marker with a 1-unit UL container (the spare bits above QFI 63 set) then a 1-unit
    /// UDP Port header (0x40): QFI and PDU type come from the container wherever it is in the
    /// chain, and the message ends with the chain.
    #[test]
    fn an_end_marker_with_a_container_then_a_udp_port_header() {
        let v = [
            0x36, 0xfe, 0x00, 0x0c, 0xde, 0xad, 0xbe, 0xef, // E and S set, End Marker, Length 12
            0x12, 0x34, 0x00, 0x85, // sequence 0x1234, next: container
            0x01, 0x10, 0xff, 0x40, // 1 unit, UL, QFI 63 with both high bits set, next: UDP Port
            0x01, 0x08, 0x68, 0x00, // 1 unit, port 2152, end of chain
        ];
        let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
        let want = Gtpu {
            flags: 0x36,
            msg_type: 254,
            length: 12,
            teid: 0xdead_beef,
            ext_count: 2,
            qfi: 63,
            pdu_type: 1,
            payload: 20,
            end: 20,
            tpdu_len: 0,
        };
        assert_eq!(g, want);
        assert_eq!(gtpu::inner_addrs(&v[..], &g), (L3Addr::NONE, L3Addr::NONE));
    }

    /// With S or PN set but not E, octets 9-12 are present and the Next Extension Header Type
    /// (here 0x85, followed by octets that would read as a container with QFI 5) is not
    /// meaningful: nothing is walked, and the T-PDU starts at octet 13.
    #[test]
    fn a_next_type_without_the_e_flag_is_not_walked() {
        for flags in [0x32u8, 0x31, 0x33] {
            let mut v = vec![flags, 0xff, 0x00, 0x18, 0, 0, 0, 1, 0x00, 0x01, 0x00, 0x85];
            v.extend_from_slice(&[0x01, 0x10, 0x05, 0x00]);
            v.extend_from_slice(&INNER[4..]);
            let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
            let want = Gtpu {
                flags,
                msg_type: 255,
                length: 24,
                teid: 1,
                ext_count: 0,
                qfi: QFI_NONE as u8,
                pdu_type: 0xff,
                payload: 12,
                end: 32,
                tpdu_len: 20,
            };
            assert_eq!(g, want, "flags {flags:#04x}");
        }
        // With E set the same octets are a container.
        let v = vec![0x34, 0xff, 0x00, 0x08, 0, 0, 0, 1, 0x00, 0x01, 0x00, 0x85, 0x01, 0x10, 0x05, 0x00];
        let g = gtpu::parse(&v[..], 0, v.len()).expect("valid");
        assert_eq!((g.ext_count, g.qfi, g.pdu_type, g.payload), (1, 5, 1, 16));
    }

    /// Octet 1: version 1 and PT 1 (GTP, not GTP') or the message is refused, whatever the other
    /// bits say.
    #[test]
    fn version_and_protocol_type() {
        let msg = |flags: u8| [flags, 0xff, 0, 0, 0, 0, 0, 1];
        for flags in [0x30u8, 0x38] {
            assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8).map(|g| g.flags), Ok(flags));
        }
        for flags in [0x20u8, 0x28, 0x2f] {
            assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8), Err(Malformed::GtpBadProtocolType), "{flags:#04x}");
        }
        for flags in [0x10u8, 0x50, 0xf0, 0x00] {
            assert_eq!(gtpu::parse(&msg(flags)[..], 0, 8), Err(Malformed::GtpBadVersion), "{flags:#04x}");
        }
    }

    /// Exactly the seven message types of TS 29.281 Table 6.1-1 that N3 carries are known;
    /// every other value is refused as unknown.
    #[test]
    fn only_the_known_message_types_parse() {
        let known = [1u8, 2, 26, 31, 253, 254, 255];
        for t in 0..=255u8 {
            let v = [0x30, t, 0, 0, 0, 0, 0, 7];
            let got = gtpu::parse(&v[..], 0, 8);
            if known.contains(&t) {
                assert_eq!(got.map(|g| (g.msg_type, g.teid, g.payload, g.end)), Ok((t, 7, 8, 8)), "type {t}");
            } else {
                assert_eq!(got, Err(Malformed::UnknownMessageType), "type {t}");
            }
            assert_eq!(Gtpu::is_known_message(t), known.contains(&t), "type {t}");
        }
    }
}
