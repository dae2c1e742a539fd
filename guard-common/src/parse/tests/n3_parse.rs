//! The whole N3 parse (`parse::n3::parse`): hand-written cases and properties over frames from
//! the encoder in [`super`]; a non-IP T-PDU; the names of the malformed reasons.

use proptest::prelude::*;

use super::{arb_spec, base, encode, gtp, Spec};
use crate::abi::{L3Addr, QFI_NONE};
use crate::parse::{n3, Malformed};

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

proptest! {
    /// Whatever the bytes, the parser returns (never panics), and a GTP-U result points inside
    /// the frame. Random bytes seldom parse as GTP-U (EtherType, IP, UDP and the port must all
    /// match): the mutations below exercise the bounds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), port in any::<u16>()) {
        if let Ok(n3::N3::Gtp(p)) = n3::parse(&bytes[..], port) {
            prop_assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= bytes.len());
        }
    }

    /// Mutating any one byte of a valid frame never panics, and a GTP-U result still points
    /// inside the frame (most mutations leave it GTP-U: the bounds are exercised).
    #[test]
    fn single_byte_mutations_never_panic(spec in arb_spec(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut f = encode(&spec);
        let i = at.index(f.len());
        f[i] = b;
        if let Ok(n3::N3::Gtp(p)) = n3::parse(&f[..], 2152) {
            prop_assert!(p.gtp.payload <= p.gtp.end && p.gtp.end <= f.len());
        }
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
        // The outer destination (the F-TEID's local half, a fragment's datagram key), read as
        // words after the tags, is the address encoded, octets in wire order.
        let dst = if spec.ipv6 {
            L3Addr::v6([0xfd, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01])
        } else {
            L3Addr::v4([10, 200, 0, 1])
        };
        let f = encode(&spec);
        prop_assert_eq!(n3::outer_dst_addr(&f[..], p.vlan_tags, p.outer_src.family), Some(dst));
        let w = n3::outer_dst_words(&f[..], p.vlan_tags, p.outer_src.family).map(|w| w.map(u32::to_be_bytes));
        prop_assert_eq!(w.map(|w| w.concat()), Some(dst.addr.to_vec()));
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
