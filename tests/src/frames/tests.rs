use super::*;

fn be16(b: &[u8], o: usize) -> usize {
    usize::from(u16::from_be_bytes([b[o], b[o + 1]]))
}

#[test]
fn ipv4_header_checksum_verifies() {
    for opts in [&[][..], &[0x94, 0x04, 0, 0][..], &[1, 1, 1][..]] {
        let f = GtpFrame::gpdu(7).ipv4_options(opts).build();
        let ihl = usize::from(f[14] & 0x0f) * 4;
        assert_eq!(ihl, 20 + opts.len().div_ceil(4) * 4);
        // A correct header sums to 0xffff, i.e. the checksum over it is 0.
        assert_eq!(internet_checksum(&f[14..14 + ihl]), 0, "IPv4 header checksum, options {opts:?}");
        // The inner IPv4 header too.
        // No optional octets or extension headers: the T-PDU follows the 8-octet header.
        let inner = 14 + ihl + 8 + 8;
        assert_eq!(internet_checksum(&f[inner..inner + 20]), 0, "inner IPv4 checksum");
    }
}

#[test]
fn known_checksum_vector() {
    // RFC 1071 §3 example bytes.
    assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2u16);
}

#[test]
fn lengths_are_consistent_v4() {
    let f = GtpFrame::gpdu(0xdead_beef).qfi(9).seq(5).payload_len(100).build();
    assert_eq!(be16(&f, 12), 0x0800);
    let ip_total = be16(&f, 16);
    assert_eq!(ip_total, f.len() - 14);
    let udp = 14 + 20;
    assert_eq!(be16(&f, udp + 2), 2152);
    assert_eq!(be16(&f, udp + 4), f.len() - udp);
    let gtp = udp + 8;
    assert_eq!(f[gtp], 0x36, "version 1, PT 1, E and S set");
    assert_eq!(f[gtp + 1], 255);
    assert_eq!(be16(&f, gtp + 2), f.len() - gtp - 8);
    assert_eq!(&f[gtp + 4..gtp + 8], &0xdead_beefu32.to_be_bytes());
    assert_eq!(&f[gtp + 8..gtp + 12], &[0, 5, 0, 0x85]);
    // PDU Session Container: 1 unit, UL, QFI 9, no next.
    assert_eq!(&f[gtp + 12..gtp + 16], &[1, 0x10, 9, 0]);
    let inner = gtp + 16;
    assert_eq!(f[inner] >> 4, 4);
    assert_eq!(be16(&f, inner + 2), f.len() - inner);
    assert_eq!(be16(&f, inner + 20 + 4), 8 + 100);
}

#[test]
fn lengths_and_udp_checksum_v6() {
    let src: Ipv6Addr = "fd00:200::11".parse().expect("addr");
    let dst: Ipv6Addr = "fd00:200::1".parse().expect("addr");
    let ue: Ipv6Addr = "2001:db8:45::2".parse().expect("addr");
    let f = GtpFrame::gpdu(1).outer_v6(src, dst).inner_v6(ue, "2001:db8::10".parse().expect("addr")).qfi(1).build();
    assert_eq!(be16(&f, 12), 0x86dd);
    assert_eq!(be16(&f, 14 + 4), f.len() - 14 - 40);
    let udp = &f[14 + 40..];
    assert_ne!(be16(udp, 6), 0, "UDP checksum is mandatory over IPv6");
    // Verifying: the checksum over pseudo-header + segment including the checksum is 0.
    let mut s = ones_sum(0, &src.octets());
    s = ones_sum(s, &dst.octets());
    s = ones_sum(s, &(udp.len() as u32).to_be_bytes());
    s = ones_sum(s, &[0, 0, 0, 17]);
    assert_eq!(!(ones_sum(s, udp) as u16), 0);
}

/// RFC 791 §3.2: the fragments' data, at their offsets, is the datagram's payload; every one
/// but the last has MF and a multiple of 8 data octets; headers verify; the Identification is
/// the given one.
#[test]
fn ipv4_fragments_reassemble_to_the_datagram() {
    let whole = GtpFrame::gpdu(9).payload_len(1400).ipv4_options(&[0x94, 0x04, 0, 0, 0x07, 0x03, 0x04, 0]).build();
    let ihl = usize::from(whole[14] & 0x0f) * 4;
    let frags = fragment_ipv4(&whole, 14, 600, 0x1234).expect("fragments");
    assert_eq!(frags.len(), 3);
    let mut data = vec![0u8; whole.len() - 14 - ihl];
    let mut covered = 0;
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(&f[..14], &whole[..14]);
        let h = usize::from(f[14] & 0x0f) * 4;
        assert!(f.len() - 14 <= 600);
        assert_eq!(internet_checksum(&f[14..14 + h]), 0, "header checksum of fragment {i}");
        assert_eq!(be16(f, 16), f.len() - 14);
        assert_eq!(be16(f, 18), 0x1234);
        let fl = be16(f, 20);
        let (mf, off) = (fl & 0x2000 != 0, (fl & 0x1fff) * 8);
        assert_eq!(fl & 0x4000, 0, "DF cleared");
        assert_eq!(mf, i + 1 < frags.len());
        let n = f.len() - 14 - h;
        if mf {
            assert_eq!(n % 8, 0);
        }
        // Router Alert (0x94) has the copied flag, Record Route (0x07) has not.
        assert_eq!(h, if i == 0 { ihl } else { 24 });
        data[off..off + n].copy_from_slice(&f[14 + h..]);
        covered += n;
    }
    assert_eq!(covered, data.len());
    assert_eq!(&data[..], &whole[14 + ihl..]);
    assert!(fragment_ipv4(&frags[1], 14, 600, 1).is_none(), "a fragment is not cut again");
    assert_eq!(fragment_ipv4(&whole, 14, 4000, 7).map(|v| v.len()), Some(1));
}

/// The oracle: tshark reassembles the fragments (RFC 791) and dissects the G-PDU inside with
/// its TEID and inner source.
#[test]
#[ignore = "needs tshark: cargo xtask test runs it"]
fn tshark_reassembles_the_fragments() {
    let whole = GtpFrame::gpdu(0x00c0_ffee)
        .outer_v4(Ipv4Addr::new(10, 200, 0, 11), Ipv4Addr::new(10, 200, 0, 1))
        .inner_v4(Ipv4Addr::new(10, 47, 0, 9), Ipv4Addr::new(203, 0, 113, 90))
        .payload_len(1400)
        .build();
    let frags = fragment_ipv4(&whole, 14, 576, 0x0102).expect("fragments");
    assert_eq!(frags.len(), 3);
    let dir = crate::oracle::TempDir::new("frag-oracle").expect("temp dir");
    let pcap = dir.join("frags.pcap");
    crate::pcap::write_pcap(&pcap, &frags).expect("pcap");
    let rows =
        crate::oracle::tshark_fields(&pcap, &["ip.id", "ip.flags.mf", "ip.frag_offset", "gtp.teid", "ip.src"], None)
            .expect("tshark");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let col = |r: usize, k: usize| rows[r].get(k).cloned().unwrap_or_default();
    let first = |r: usize, k: usize| col(r, k).split(',').next().unwrap_or("").to_owned();
    // 576 - 20 = 556 octets of room, 552 of data per fragment: offsets 0, 69, 138 (in 8-octet
    // units); MF on all but the last; one Identification.
    for (r, (mf, off)) in [("1", "0"), ("1", "69"), ("0", "138")].into_iter().enumerate() {
        assert_eq!((first(r, 0).as_str(), first(r, 1).as_str(), first(r, 2).as_str()), ("0x0102", mf, off), "{rows:?}");
    }
    // The last frame carries the reassembled datagram's dissection.
    assert_eq!(col(2, 3), "0x00c0ffee", "{rows:?}");
    assert_eq!(col(2, 4), "10.200.0.11,10.47.0.9", "outer and inner source after reassembly: {rows:?}");
}

#[test]
fn vlan_tags_and_qinq() {
    let f = GtpFrame::gpdu(1).vlan(100).build();
    assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
    let f = GtpFrame::gpdu(1).qinq(10, 20).build();
    assert_eq!(&f[12..22], &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
}

#[test]
fn signalling_messages() {
    let f = GtpFrame::echo_request(0x0102).build();
    let g = &f[42..];
    assert_eq!(g, &[0x32, 1, 0, 4, 0, 0, 0, 0, 1, 2, 0, 0]);
    let f = GtpFrame::end_marker(77).build();
    assert_eq!(&f[42..], &[0x30, 254, 0, 0, 0, 0, 0, 77]);
    let f = GtpFrame::error_indication(0x11223344, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).build();
    assert_eq!(&f[42..], &[0x30, 26, 0, 12, 0, 0, 0, 0, 16, 0x11, 0x22, 0x33, 0x44, 133, 0, 4, 10, 0, 0, 1]);
    let f = GtpFrame::supported_ext_headers(&[0x85, 0x40]).build();
    assert_eq!(&f[42..], &[0x30, 31, 0, 4, 0, 0, 0, 0, 141, 2, 0x85, 0x40]);
}

#[test]
fn malformed_variants() {
    let f = GtpFrame::gpdu(1).zero_length_ext(EXT_PDU_SESSION_CONTAINER).build();
    assert_eq!(&f[42 + 8..42 + 16], &[0, 0, 0, 0x85, 0, 0, 0, 0]);
    let f = GtpFrame::gpdu(1).ext_overrun(EXT_PDU_SESSION_CONTAINER, 200).build();
    assert_eq!(f[42 + 12], 200);
    let f = GtpFrame::gpdu(1).gtp_version(2).build();
    assert_eq!(f[42] >> 5, 2);
    let f = GtpFrame::gpdu(1).truncate(45).build();
    assert_eq!(f.len(), 45);
    let f = GtpFrame::gpdu(1).gtp_length(9999).build();
    assert_eq!(be16(&f, 44), 9999);
}

#[test]
fn multi_ext_chain_links_next_types() {
    let f = GtpFrame::gpdu(1).ext_header(EXT_UDP_PORT, &[0x08, 0x68]).qfi(5).build();
    let g = 42;
    assert_eq!(f[g + 11], EXT_UDP_PORT);
    assert_eq!(&f[g + 12..g + 16], &[1, 0x08, 0x68, 0x85]);
    assert_eq!(&f[g + 16..g + 20], &[1, 0x10, 5, 0]);
}

/// A header of several units: its Length octet counts them all, the Next Extension Header
/// Type is the last octet of its last unit, and the next header starts after it.
#[test]
fn multi_unit_headers_put_the_next_type_in_their_last_unit() {
    let stamps = [0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324_2526_2728];
    let f = GtpFrame::gpdu(1).pdu_session_ul_qmp(7, stamps).udp_port_ext(2152).build();
    let g = 42;
    assert_eq!(f[g] & 0x04, 0x04, "E flag");
    assert_eq!(f[g + 11], EXT_PDU_SESSION_CONTAINER);
    let c = g + 12;
    assert_eq!(&f[c..c + 4], &[7, 0x18, 7, 0x01], "7 units, UL with QMP, QFI 7, first stamp octet");
    assert_eq!(&f[c + 3..c + 27], &stamps.map(u64::to_be_bytes).concat()[..]);
    assert_eq!(f[c + 27], EXT_UDP_PORT, "next type in the last octet of the seventh unit");
    assert_eq!(&f[c + 28..c + 32], &[1, 0x08, 0x68, 0]);
    assert_eq!(f[c + 32] >> 4, 4, "the T-PDU follows the chain");
    let f = GtpFrame::gpdu(1).ext_header(0x81, &[0xaa; 9]).build();
    assert_eq!(
        &f[c..c + 12],
        &[3, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0],
        "9 octets: 3 units, padded"
    );
    assert_eq!(f[c + 12] >> 4, 4);
}
