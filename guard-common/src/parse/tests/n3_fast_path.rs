//! The fixed-offset fast path (`parse::n3::parse_common_into`) held to the full parser
//! (`parse_into`) and to the encoder in [`super`].

use proptest::prelude::*;

use super::{arb_spec, base, encode, Spec};
use crate::abi::{L3Addr, QFI_NONE};
use crate::parse::n3;

/// `out` before a parse: a value no parse writes, so a field a parser forgets shows.
const MARKED: n3::GtpPacket = n3::GtpPacket {
    outer_src: L3Addr { family: 0xdead, addr: [0xa5; 16] },
    vlan_tags: 0xee,
    inner_src: L3Addr { family: 0xdead, addr: [0x5a; 16] },
    inner_dst: L3Addr { family: 0xbeef, addr: [0x3c; 16] },
    ..n3::GtpPacket::EMPTY
};

/// Whenever the fixed-offset path (`parse_common`) decides a frame, the full parser decides it the
/// same way: a common G-PDU (`Ok(true)`, and the fast path wrote the same packet), or not GTP-U
/// (`Ok(false)`, not a later fragment, and the fast path wrote nothing: the program passes it
/// without its scratch slot). `true` when the frame was a common G-PDU.
fn common_path_agrees(f: &[u8], port: u16) -> Result<bool, TestCaseError> {
    let mut fast = MARKED;
    let got = n3::parse_common(f, port, &mut fast);
    let want = match got {
        n3::Common::Other => return Ok(false),
        n3::Common::Gtp => Ok(true),
        n3::Common::NotGtp => Ok(false),
    };
    let mut full = MARKED;
    prop_assert_eq!(n3::parse_into(f, port, &mut full), want);
    if got == n3::Common::Gtp {
        prop_assert_eq!(fast, full);
    } else {
        prop_assert_ne!(full.frag_kind, n3::FRAG_LATER, "the fast path passed a later fragment");
        prop_assert_eq!(fast, MARKED, "the fast path wrote on its not-GTP-U exit");
    }
    // What the program's own entry point (`parse_into_fast`) returns.
    let mut through = MARKED;
    prop_assert_eq!(n3::parse_into_fast(f, port, &mut through), want);
    Ok(want == Ok(true))
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

proptest! {
    /// UDP to any port but GTP-U's, in the common frame shape, is decided on the fast path as not
    /// GTP-U (the pass-through every other packet on an N3 NIC takes), as the full parser decides
    /// it; the GTP-U port itself never is.
    #[test]
    fn udp_to_another_port_is_not_gtp_on_the_fast_path(spec in common_spec(), port in any::<u16>()) {
        let mut f = encode(&spec);
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&port.to_be_bytes());
        let mut fast = MARKED;
        let got = n3::parse_common(&f[..], 2152, &mut fast);
        if port == 2152 {
            prop_assert_eq!(got, n3::Common::Gtp);
        } else {
            prop_assert_eq!(got, n3::Common::NotGtp);
            prop_assert_eq!(fast, MARKED, "nothing written");
            prop_assert_eq!(n3::parse_into_fast(&f[..], 2152, &mut fast), Ok(false));
        }
        common_path_agrees(&f, 2152)?;
    }
}

/// Such a frame cut anywhere, above all inside its UDP header (the fast path reads the ports'
/// word before the rest): the fast path decides it as the full parser does, or leaves it to it.
#[test]
fn udp_to_another_port_cut_anywhere_agrees() {
    let mut f = encode(&super::base());
    f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
    for n in 0..=f.len() {
        common_path_agrees(&f[..n], 2152).unwrap_or_else(|e| panic!("cut to {n}: {e}"));
    }
}

/// A stale later-fragment mark in the reused scratch record does not survive a not-GTP-U frame on
/// the fast path (the program would take it for a later fragment of a dropped datagram).
#[test]
fn the_fast_path_clears_the_fragment_mark_of_a_reused_record() {
    let mut f = encode(&base());
    f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
    let mut reused = n3::GtpPacket { frag_kind: crate::parse::n3::FRAG_LATER, ..MARKED };
    assert_eq!(n3::parse_into_fast(&f[..], 2152, &mut reused), Ok(false));
    assert_eq!(reused.frag_kind, crate::parse::n3::FRAG_NONE);
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
// IPv6 outer (issue 19): untagged Ethernet, IPv6 with Next Header UDP, at fixed offsets.
// ---------------------------------------------------------------------------------------------

/// Offsets in an untagged IPv6 frame (RFC 8200 §3): Payload Length at 4-5 of the IPv6 header,
/// Next Header at 6, Hop Limit at 7; the UDP header after the 40-octet IPv6 header.
const V6: usize = 14;
const V6_UDP: usize = V6 + 40;

/// The common IPv6 shapes: untagged, a G-PDU with or without a PDU Session Container.
fn common_spec_v6() -> impl Strategy<Value = Spec> {
    common_spec().prop_map(|s| Spec { ipv6: true, ..s })
}

/// What the fast path made of `f`, after checking it against the full parser
/// ([`common_path_agrees`]).
fn decided(f: &[u8]) -> Result<n3::Common, TestCaseError> {
    common_path_agrees(f, 2152)?;
    let mut fast = MARKED;
    Ok(n3::parse_common(f, 2152, &mut fast))
}

/// `f` with an IPv6 extension header of type `next` (8 octets, RFC 8200 §4) between the IPv6
/// header and UDP, the Payload Length grown to match.
fn with_ext_header(f: &[u8], next: u8) -> Vec<u8> {
    let mut g = f.to_vec();
    let ext: [u8; 8] = match next {
        // Fragment header (§4.5): Next Header, reserved, offset 0 and M clear (an atomic
        // fragment, RFC 6946), Identification.
        44 => [17, 0, 0, 0, 0, 0, 0x12, 0x34],
        // Authentication Header (RFC 4302 §2.2): Payload Len 0 would be 8 octets.
        51 => [17, 0, 0, 0, 0, 0, 0, 0],
        // Hop-by-Hop (§4.3), Routing (§4.4), Destination Options (§4.6): Hdr Ext Len 0 (8
        // octets); a PadN option fills it.
        _ => [17, 0, 1, 4, 0, 0, 0, 0],
    };
    g[V6 + 6] = next;
    let pl = u16::from_be_bytes([g[V6 + 4], g[V6 + 5]]) + 8;
    g[V6 + 4..V6 + 6].copy_from_slice(&pl.to_be_bytes());
    g.splice(V6_UDP..V6_UDP, ext);
    g
}

proptest! {
    /// The common IPv6 frames take the fast path, and it writes what the full parser writes.
    #[test]
    fn ipv6_common_frames_take_the_fast_path(spec in common_spec_v6()) {
        prop_assert!(common_path_agrees(&encode(&spec), 2152)?, "the fast path refused {:?}", spec);
    }

    /// Against the encoder: the TEID, QFI, PDU type, the 16-octet outer source and the inner
    /// addresses that were encoded.
    #[test]
    fn the_ipv6_fast_path_reads_what_was_encoded(spec in common_spec_v6()) {
        let mut fast = MARKED;
        prop_assert!(n3::parse_common_into(&encode(&spec)[..], 2152, &mut fast), "refused {:?}", spec);
        prop_assert_eq!(fast.gtp.teid, spec.teid);
        prop_assert_eq!(fast.gtp.qfi, spec.qfi.unwrap_or(QFI_NONE as u8));
        prop_assert_eq!(fast.gtp.ext_count, u8::from(spec.qfi.is_some()));
        prop_assert_eq!(fast.vlan_tags, 0);
        let mut gnb = [0u8; 16];
        gnb[..3].copy_from_slice(&[0xfd, 0, 2]);
        gnb[15] = 0x11;
        prop_assert_eq!(fast.outer_src, L3Addr::v6(gnb));
        prop_assert_eq!(fast.inner_src, L3Addr::v4(spec.inner));
        prop_assert_eq!(fast.inner_dst, L3Addr::v4([192, 0, 2, 1]));
    }

    /// Traffic Class, Flow Label, Payload Length and Hop Limit are anything (RFC 8200 §3): the
    /// full parser reads none of them, so neither does the fast path, and a frame whose IPv6
    /// Payload Length disagrees with the UDP Length is still decided as the full parser decides
    /// it (the UDP and GTP-U lengths bound the message).
    #[test]
    fn ipv6_class_flow_label_payload_length_and_hop_limit_change_nothing(
        spec in common_spec_v6(),
        class_flow in any::<u32>(),
        payload_len in any::<u16>(),
        hop in any::<u8>(),
    ) {
        let mut f = encode(&spec);
        // Version 6 in the top nibble, then 8 bits of Traffic Class and 20 of Flow Label.
        f[V6..V6 + 4].copy_from_slice(&((6 << 28) | (class_flow & 0x0fff_ffff)).to_be_bytes());
        f[V6 + 4..V6 + 6].copy_from_slice(&payload_len.to_be_bytes());
        f[V6 + 7] = hop;
        prop_assert_eq!(decided(&f)?, n3::Common::Gtp);
    }

    /// Another Version nibble under the IPv6 EtherType is not the common frame (the full parser
    /// calls it malformed).
    #[test]
    fn ipv6_ethertype_with_another_version_falls_through(spec in common_spec_v6(), v in 0u8..16) {
        prop_assume!(v != 6);
        let mut f = encode(&spec);
        f[V6] = (v << 4) | (f[V6] & 0x0f);
        prop_assert_eq!(decided(&f)?, n3::Common::Other);
        let mut full = MARKED;
        prop_assert!(n3::parse_into(&f[..], 2152, &mut full).is_err());
    }

    /// An extension header of any kind before UDP (Hop-by-Hop, Routing, Fragment, Destination
    /// Options, AH): the fast path falls through, and the full parser, which walks it, finds the
    /// same G-PDU as without it.
    #[test]
    fn ipv6_extension_headers_fall_through(spec in common_spec_v6(), next in prop::sample::select(vec![0u8, 43, 44, 51, 60])) {
        let plain = encode(&spec);
        let f = with_ext_header(&plain, next);
        let mut fast = MARKED;
        prop_assert_eq!(n3::parse_common(&f[..], 2152, &mut fast), n3::Common::Other);
        let (mut full, mut through) = (MARKED, MARKED);
        prop_assert_eq!(n3::parse_into(&f[..], 2152, &mut full), Ok(true));
        prop_assert_eq!(n3::parse_into_fast(&f[..], 2152, &mut through), Ok(true));
        prop_assert_eq!(through, full);
        // The same device and addresses as the plain frame; the offsets moved by 8.
        let mut p = MARKED;
        prop_assert!(n3::parse_common_into(&plain[..], 2152, &mut p));
        prop_assert_eq!((full.outer_src, full.inner_src, full.inner_dst), (p.outer_src, p.inner_src, p.inner_dst));
        prop_assert_eq!((full.gtp.teid, full.gtp.qfi, full.gtp.payload), (p.gtp.teid, p.gtp.qfi, p.gtp.payload + 8));
    }

    /// Next Header anything but UDP, with no extension header to walk (TCP, ICMPv6, SCTP, ...):
    /// not GTP-U on the fast path, as the full parser says, once the 40-octet header is there.
    #[test]
    fn ipv6_other_next_headers_are_not_gtp_on_the_fast_path(spec in common_spec_v6(), next in any::<u8>(), cut in 0usize..70) {
        prop_assume!(![17u8, 0, 43, 44, 51, 60].contains(&next));
        let mut f = encode(&spec);
        f[V6 + 6] = next;
        let f = &f[..cut.min(f.len())];
        let want = if f.len() >= V6_UDP { n3::Common::NotGtp } else { n3::Common::Other };
        prop_assert_eq!(decided(f)?, want);
    }

    /// Every truncation of a common IPv6 frame: never the common G-PDU (the UDP Length then
    /// runs past the frame), and wherever the fast path decides, it agrees.
    #[test]
    fn ipv6_truncations_are_never_the_common_frame(spec in common_spec_v6(), cut in any::<prop::sample::Index>()) {
        let f = encode(&spec);
        let n = cut.index(f.len());
        prop_assert_ne!(decided(&f[..n])?, n3::Common::Gtp, "cut to {}", n);
    }

    /// UDP to any port but GTP-U's in an untagged IPv6 frame is decided on the fast path as not
    /// GTP-U, with the 16-octet outer source and no fragment, as the full parser decides it.
    #[test]
    fn ipv6_udp_to_another_port_is_not_gtp_on_the_fast_path(spec in common_spec_v6(), port in any::<u16>()) {
        let mut f = encode(&spec);
        f[V6_UDP + 2..V6_UDP + 4].copy_from_slice(&port.to_be_bytes());
        let mut fast = n3::GtpPacket { frag_kind: n3::FRAG_LATER, ..MARKED };
        let got = n3::parse_common(&f[..], 2152, &mut fast);
        if port == 2152 {
            prop_assert_eq!(got, n3::Common::Gtp);
        } else {
            prop_assert_eq!(got, n3::Common::NotGtp);
            prop_assert_eq!(fast.frag_kind, n3::FRAG_LATER, "nothing written");
            let mut through = n3::GtpPacket { frag_kind: n3::FRAG_LATER, ..MARKED };
            prop_assert_eq!(n3::parse_into_fast(&f[..], 2152, &mut through), Ok(false));
            prop_assert_eq!(through.frag_kind, n3::FRAG_NONE, "not a later fragment");
        }
        common_path_agrees(&f, 2152)?;
    }

    /// The GTP-U and UDP Lengths set to anything near the truth, in an IPv6 frame.
    #[test]
    fn the_ipv6_fast_path_agrees_whatever_the_lengths_say(
        spec in common_spec_v6(),
        gtp_delta in -30i32..6,
        udp_delta in prop::option::of(-30i32..6),
    ) {
        let mut f = encode(&spec);
        let set = |f: &mut Vec<u8>, at: usize, delta: i32| {
            let v = i32::from(u16::from_be_bytes([f[at], f[at + 1]])) + delta;
            f[at..at + 2].copy_from_slice(&(v.clamp(0, 0xffff) as u16).to_be_bytes());
        };
        set(&mut f, V6_UDP + 8 + 2, gtp_delta);
        if let Some(d) = udp_delta {
            set(&mut f, V6_UDP + 4, d);
        }
        common_path_agrees(&f, 2152)?;
    }

    /// Any IPv6 frame (tagged or not, any message and chain), any two octets of its headers
    /// changed: the fast path either refuses or agrees with the full parser.
    #[test]
    fn the_ipv6_fast_path_never_disagrees(
        spec in arb_spec().prop_map(|s| Spec { ipv6: true, ..s }),
        edits in prop::collection::vec((0usize..90, any::<u8>()), 0..3),
    ) {
        let mut f = encode(&spec);
        for (at, b) in edits {
            if let Some(o) = f.get_mut(at) {
                *o = b;
            }
        }
        common_path_agrees(&f, 2152)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Other frames that are not GTP-U (issue 19, the pass-through): decided on the fast path too.
// ---------------------------------------------------------------------------------------------

proptest! {
    /// IPv4 (IHL 5) with any protocol but UDP, any flags and fragment offset (the full parser
    /// decides on the protocol first), cut anywhere: not GTP-U once the 20-octet header is in the
    /// frame.
    #[test]
    fn ipv4_other_protocols_are_not_gtp_on_the_fast_path(
        spec in common_spec(),
        proto in any::<u8>(),
        frag in any::<u16>(),
        cut in 0usize..60,
    ) {
        prop_assume!(proto != 17);
        let mut f = encode(&spec);
        f[14 + 9] = proto;
        f[14 + 6..14 + 8].copy_from_slice(&frag.to_be_bytes());
        let f = &f[..cut.min(f.len())];
        let want = if f.len() >= 14 + 20 { n3::Common::NotGtp } else { n3::Common::Other };
        prop_assert_eq!(decided(f)?, want);
    }

    /// Any EtherType but IPv4, IPv6 and the VLAN tags (ARP, LLDP, MPLS, ...): not GTP-U on the
    /// fast path, as the full parser says; IP is never decided that way, a tag by what follows it.
    #[test]
    fn other_ethertypes_are_not_gtp_on_the_fast_path(
        spec in arb_spec(),
        ethertype in prop_oneof![prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806]), any::<u16>()],
    ) {
        let mut f = encode(&spec);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let got = decided(&f)?;
        if [0x0800, 0x86dd].contains(&ethertype) {
            prop_assert_ne!(got, n3::Common::NotGtp);
        } else if [0x8100, 0x88a8].contains(&ethertype) {
            // A tag: the EtherType after it decides (and `decided` held it to the full parser).
        } else {
            prop_assert_eq!(got, n3::Common::NotGtp);
        }
    }
}

/// The fast path asks for its output only for a G-PDU: a frame that is not GTP-U is decided
/// without it (the program's pass-through never touches its per-CPU scratch slot), and a G-PDU
/// with no output to write to is left to the caller.
#[test]
fn the_fast_path_asks_for_its_output_only_for_a_gpdu() {
    let gpdu = encode(&base());
    let mut dns = gpdu.clone();
    dns[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
    let mut arp = gpdu.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    for f in [&dns, &arp] {
        let mut asked = false;
        let got = n3::parse_common_with(&f[..], 2152, || {
            asked = true;
            None
        });
        assert_eq!((got, asked), (n3::Common::NotGtp, false));
    }
    let mut asked = false;
    let got = n3::parse_common_with(&gpdu[..], 2152, || {
        asked = true;
        None
    });
    assert_eq!((got, asked), (n3::Common::Other, true));
}

// ---------------------------------------------------------------------------------------------
// One VLAN tag (issue 19): the common frames behind one 802.1Q (or 802.1ad) tag, at fixed
// offsets 4 octets on.
// ---------------------------------------------------------------------------------------------

/// The common shapes behind one tag, IPv4 or IPv6 outer.
fn common_spec_tagged() -> impl Strategy<Value = Spec> {
    (common_spec(), any::<bool>()).prop_map(|(s, ipv6)| Spec { vlans: 1, ipv6, ..s })
}

proptest! {
    /// A common G-PDU behind one tag takes the fast path, writes what the full parser writes
    /// (`vlan_tags` 1 included), and finds the device and addresses of the untagged frame.
    #[test]
    fn tagged_common_frames_take_the_fast_path(spec in common_spec_tagged(), qinq in any::<bool>(), tci in any::<u16>()) {
        let mut f = encode(&spec);
        if qinq {
            f[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        }
        // The TCI (PCP, DEI, VID) is read by neither parser.
        f[14..16].copy_from_slice(&tci.to_be_bytes());
        prop_assert!(common_path_agrees(&f, 2152)?, "the fast path refused {:?}", spec);
        let (mut tagged, mut plain) = (MARKED, MARKED);
        prop_assert!(n3::parse_common_into(&f[..], 2152, &mut tagged));
        let untagged = encode(&Spec { vlans: 0, ..spec.clone() });
        prop_assert!(n3::parse_common_into(&untagged[..], 2152, &mut plain));
        prop_assert_eq!(tagged.vlan_tags, 1);
        prop_assert_eq!((tagged.outer_src, tagged.inner_src, tagged.inner_dst), (plain.outer_src, plain.inner_src, plain.inner_dst));
        prop_assert_eq!((tagged.gtp.teid, tagged.gtp.qfi, tagged.gtp.payload), (plain.gtp.teid, plain.gtp.qfi, plain.gtp.payload + 4));
    }

    /// Two tags (Q-in-Q) are the full parser's: the fast path never decides them.
    #[test]
    fn two_tags_fall_through(spec in common_spec_tagged()) {
        let f = encode(&Spec { vlans: 2, ..spec });
        prop_assert_eq!(decided(&f)?, n3::Common::Other);
    }

    /// A tagged frame with up to three octets of its first 90 changed (the tag, the inner
    /// EtherType, IPv4 version and IHL (options), fragment bits, protocol, IPv6 Next Header,
    /// ports, lengths, GTP-U flags) and cut anywhere: the fast path either refuses or agrees
    /// with the full parser (an attacker cannot craft a tagged frame the two read differently).
    #[test]
    fn the_tagged_fast_path_never_disagrees(
        spec in (arb_spec(), any::<bool>()).prop_map(|(s, ipv6)| Spec { vlans: 1, ipv6, ..s }),
        edits in prop::collection::vec((12usize..90, any::<u8>()), 0..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut f = encode(&spec);
        for (at, b) in edits {
            if let Some(o) = f.get_mut(at) {
                *o = b;
            }
        }
        if let Some(c) = cut {
            f.truncate(c.index(f.len() + 1));
        }
        common_path_agrees(&f, 2152)?;
    }
}

/// A tag followed by IPv4 with options, by a fragment, or cut inside the IP header: never the
/// fast path's G-PDU; the full parser reads them.
#[test]
fn tagged_options_fragments_and_short_frames_are_the_full_parsers() {
    let f = encode(&Spec { vlans: 1, ..base() });
    let ip = 18;
    let mut options = f.clone();
    options[ip] = 0x46;
    let mut fragment = f.clone();
    fragment[ip + 6] = 0x20;
    for (what, g) in [("options", &options[..]), ("fragment", &fragment[..]), ("short", &f[..ip + 19])] {
        let mut fast = MARKED;
        assert_eq!(n3::parse_common(g, 2152, &mut fast), n3::Common::Other, "{what}");
    }
}
