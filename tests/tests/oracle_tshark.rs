//! tshark as the oracle for labkit's frame builder: Wireshark's GTP dissector must see the TEIDs,
//! message types, QFIs and addresses we meant to encode, and flag nothing as malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use labkit::frames::{self, GtpFrame};
use labkit::oracle::{tshark_fields, tshark_problems, tshark_summary, TempDir};
use labkit::pcap::write_pcap;

/// One frame and what tshark should report for it.
struct Case {
    frame: GtpFrame,
    teid: u32,
    msg: u8,
    qfi: Option<u8>,
    outer_src: IpAddr,
    inner_src: Option<IpAddr>,
    /// 802.1Q VLAN id (the C-tag under QinQ).
    vlan: Option<u16>,
    /// 802.1ad S-tag VLAN id.
    svid: Option<u16>,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn cases() -> Vec<Case> {
    let gnb = v4(10, 200, 0, 11);
    let upf = v4(10, 200, 0, 1);
    let gnb6: Ipv6Addr = "fd00:200::11".parse().expect("v6");
    let upf6: Ipv6Addr = "fd00:200::1".parse().expect("v6");
    let server = v4(192, 0, 2, 10);
    let mut v = Vec::new();
    for (i, (teid, qfi)) in
        [(0x0000_0001u32, 1u8), (0x0012_3456, 9), (0xdead_beef, 63), (0xffff_fffe, 5)].into_iter().enumerate()
    {
        let ue = v4(10, 45, 0, 2 + i as u8);
        v.push(Case {
            frame: GtpFrame::gpdu(teid).outer_v4(gnb, upf).inner_v4(ue, server).qfi(qfi),
            teid,
            msg: frames::MSG_G_PDU,
            qfi: Some(qfi),
            outer_src: gnb.into(),
            inner_src: Some(ue.into()),
            vlan: None,
            svid: None,
        });
    }
    let ue = v4(10, 45, 1, 1);
    v.push(Case {
        frame: GtpFrame::gpdu(0x1000).outer_v4(v4(10, 200, 0, 12), upf).inner_v4(ue, server).qfi(7).vlan(100),
        teid: 0x1000,
        msg: frames::MSG_G_PDU,
        qfi: Some(7),
        outer_src: v4(10, 200, 0, 12).into(),
        inner_src: Some(ue.into()),
        vlan: Some(100),
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::gpdu(0x1001).outer_v4(gnb, upf).inner_v4(ue, server).qfi(8).qinq(300, 200).seq(77),
        teid: 0x1001,
        msg: frames::MSG_G_PDU,
        qfi: Some(8),
        outer_src: gnb.into(),
        inner_src: Some(ue.into()),
        vlan: Some(200),
        svid: Some(300),
    });
    let ue6: Ipv6Addr = "2001:db8:45::2".parse().expect("v6");
    v.push(Case {
        frame: GtpFrame::gpdu(0x2000).outer_v6(gnb6, upf6).inner_v6(ue6, "2001:db8::10".parse().expect("v6")).qfi(2),
        teid: 0x2000,
        msg: frames::MSG_G_PDU,
        qfi: Some(2),
        outer_src: gnb6.into(),
        inner_src: Some(ue6.into()),
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::gpdu(0x2001).outer_v6(gnb6, upf6).inner_v4(ue, server).vlan(42),
        teid: 0x2001,
        msg: frames::MSG_G_PDU,
        qfi: None,
        outer_src: gnb6.into(),
        inner_src: Some(ue.into()),
        vlan: Some(42),
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::gpdu(0x3000).outer_v4(gnb, upf).ipv4_options(&[0x94, 0x04, 0x00, 0x00]).qfi(3),
        teid: 0x3000,
        msg: frames::MSG_G_PDU,
        qfi: Some(3),
        outer_src: gnb.into(),
        inner_src: Some(v4(10, 45, 0, 2).into()),
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::echo_request(0x0102).outer_v4(gnb, upf),
        teid: 0,
        msg: frames::MSG_ECHO_REQUEST,
        qfi: None,
        outer_src: gnb.into(),
        inner_src: None,
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::echo_response(0x0102).outer_v4(upf, gnb),
        teid: 0,
        msg: frames::MSG_ECHO_RESPONSE,
        qfi: None,
        outer_src: upf.into(),
        inner_src: None,
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::end_marker(0x0012_3456).outer_v4(gnb, upf),
        teid: 0x0012_3456,
        msg: frames::MSG_END_MARKER,
        qfi: None,
        outer_src: gnb.into(),
        inner_src: None,
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::error_indication(0x0012_3456, gnb.into()).outer_v4(upf, gnb),
        teid: 0,
        msg: frames::MSG_ERROR_INDICATION,
        qfi: None,
        outer_src: upf.into(),
        inner_src: None,
        vlan: None,
        svid: None,
    });
    v.push(Case {
        frame: GtpFrame::supported_ext_headers(&[0x85]).outer_v4(upf, gnb),
        teid: 0,
        msg: frames::MSG_SUPPORTED_EXT_HEADERS,
        qfi: None,
        outer_src: upf.into(),
        inner_src: None,
        vlan: None,
        svid: None,
    });
    v
}

/// tshark prints a u32 field in decimal or hex depending on the field's base; accept both.
fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[test]
fn tshark_agrees_with_the_builder() {
    let cases = cases();
    let dir = TempDir::new("labkit-tshark").expect("temp dir");
    let pcap = dir.join("builder.pcap");
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.build()).collect();
    write_pcap(&pcap, &frames).expect("write pcap");

    let fields = [
        "frame.number",
        "gtp.teid",
        "gtp.message",
        "gtp.ext_hdr.pdu_ses_con.qos_flow_id",
        "gtp.ext_hdr.pdu_ses_con.pdu_type",
        "ip.src",
        "ipv6.src",
        "vlan.id",
        "gtp.flags.version",
        "ieee8021ad.id",
    ];
    let rows = tshark_fields(&pcap, &fields, None).expect("tshark");
    let summary = tshark_summary(&pcap);
    assert_eq!(rows.len(), cases.len(), "one row per frame:\n{summary}");

    for (i, (c, row)) in cases.iter().zip(&rows).enumerate() {
        let ctx = format!("frame {} ({:?}): row {row:?}\n{summary}", i + 1, c.frame.get_msg_type());
        let col = |k: usize| row.get(k).map(String::as_str).unwrap_or("");
        assert_eq!(parse_num(col(1)), Some(u64::from(c.teid)), "TEID, {ctx}");
        assert_eq!(parse_num(col(2)), Some(u64::from(c.msg)), "message type, {ctx}");
        assert_eq!(col(8), "1", "GTP version, {ctx}");
        match c.qfi {
            Some(q) => {
                assert_eq!(parse_num(col(3)), Some(u64::from(q)), "QFI, {ctx}");
                assert_eq!(parse_num(col(4)), Some(1), "PDU type UL, {ctx}");
            }
            None => assert_eq!(col(3), "", "no PDU Session Container, {ctx}"),
        }
        // ip.src / ipv6.src list the outer address first, then the inner one (if any).
        let v4s: Vec<&str> = col(5).split(',').filter(|s| !s.is_empty()).collect();
        let v6s: Vec<&str> = col(6).split(',').filter(|s| !s.is_empty()).collect();
        let mut srcs: Vec<IpAddr> = Vec::new();
        // Order outer then inner: the outer family is the builder's, whichever it is.
        let (outer_list, other_list) = if c.outer_src.is_ipv4() { (&v4s, &v6s) } else { (&v6s, &v4s) };
        srcs.extend(outer_list.iter().map(|s| s.parse::<IpAddr>().expect("tshark address")));
        srcs.extend(other_list.iter().map(|s| s.parse::<IpAddr>().expect("tshark address")));
        assert_eq!(srcs.first(), Some(&c.outer_src), "outer source, {ctx}");
        assert_eq!(srcs.get(1), c.inner_src.as_ref(), "inner source, {ctx}");
        assert_eq!(parse_num(col(7)), c.vlan.map(u64::from), "802.1Q VLAN id, {ctx}");
        assert_eq!(parse_num(col(9)), c.svid.map(u64::from), "802.1ad S-VLAN id, {ctx}");
    }

    let problems = tshark_problems(&pcap).expect("tshark expert");
    assert!(problems.is_empty(), "tshark reports problems: {problems:#?}\n{summary}");
}

#[test]
fn tshark_flags_the_malformed_variants() {
    // The negative control: the same pipeline does report malformed frames, so the empty result
    // above is meaningful.
    let bad = [
        GtpFrame::gpdu(1).qfi(1).zero_length_ext(0x85).build(),
        GtpFrame::gpdu(2).ext_overrun(0x85, 200).build(),
        GtpFrame::gpdu(3).qfi(1).truncate(14 + 20 + 8 + 10).build(),
    ];
    let dir = TempDir::new("labkit-tshark-bad").expect("temp dir");
    let pcap = dir.join("bad.pcap");
    write_pcap(&pcap, &bad).expect("write pcap");
    let flagged = tshark_problems(&pcap).expect("tshark");
    let summary = tshark_summary(&pcap);
    for n in 1..=bad.len() {
        assert!(
            flagged.iter().any(|r| r.split(' ').next() == Some(n.to_string().as_str())),
            "tshark should flag malformed frame {n}; flagged {flagged:?}\n{summary}"
        );
    }

    // tshark does not judge a GTP-U Length beyond the UDP payload, but it must read the value we
    // planted.
    let pcap = dir.join("len.pcap");
    write_pcap(&pcap, &[GtpFrame::gpdu(4).gtp_length(2000).build()]).expect("write pcap");
    let rows = tshark_fields(&pcap, &["gtp.length", "udp.length"], None).expect("tshark");
    assert_eq!(rows.first().and_then(|r| r.first()).map(String::as_str), Some("2000"), "{rows:?}");
    let udp_len: u32 = rows[0][1].split(',').next().and_then(|s| s.parse().ok()).expect("udp.length");
    assert!(udp_len < 2000 + 16, "UDP length {udp_len} is consistent with the real payload");
}
