//! What is not a well-formed G-PDU: non-GTP traffic, truncation at every offset, lying lengths
//! and header fields, and a guard with no config written.

use super::*;

// ---------------------------------------------------------------------------------------------
// Not GTP-U, truncations, malformed lengths
// ---------------------------------------------------------------------------------------------

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 200, 0, 11, 0, 0, 0, 0, 0, 0, 10, 200, 0, 1]);
    f
}

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// Set the IPv4 flags/fragment-offset word of a plain (untagged) frame and fix the checksum.
/// An IPv4 packet (no Ethernet header) with its flags / fragment offset word set to `word` and
/// the header checksum recomputed.
fn set_frag_ip(p: &[u8], word: u16) -> Vec<u8> {
    let mut f = p.to_vec();
    f[6..8].copy_from_slice(&word.to_be_bytes());
    f[10..12].copy_from_slice(&[0, 0]);
    let c = frames::internet_checksum(&f[..20]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn non_gtp_passes_untouched_and_creates_no_state() {
    assert_root("verdict::n3::malformed::non_gtp_passes_untouched_and_creates_no_state");
    let mut g = load(&enforce_all());
    // Quarantining TEID 0x100 must not matter to anything below.
    quarantine(&mut g, 0x100, 60 * SEC);
    let tcp = frames::ipv4_packet(
        GNB_A,
        CORE,
        6,
        64,
        0,
        &[],
        &[0x08, 0x68, 0x08, 0x68, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 2, 0, 0, 0, 0, 0, 0],
    );
    let icmp6 = frames::ipv6_packet(GNB_V6, CORE_V6, 58, 255, &[128, 0, 0, 0, 0, 1, 0, 1]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ARP", arp()),
        ("IPv4 TCP to port 2152", eth(0x0800, &tcp)),
        ("ICMPv6", eth(0x86dd, &icmp6)),
        ("LLDP", eth(0x88cc, &[0; 46])),
        ("UDP to another port", gpdu(0x100).udp_ports(2152, 2153).build()),
        ("UDP to another port, IPv6", gpdu(0x100).udp_ports(2152, 4789).outer_v6(GNB_V6, CORE_V6).build()),
        // Fragments of GTP-U datagrams are judged (verdict_n3_fragments.rs); a later fragment of
        // another protocol is not the guard's business.
        ("IPv4 later fragment of TCP", eth(0x0800, &set_frag_ip(&tcp, 0x0010))),
        ("802.1Q ARP", {
            let mut f = arp();
            f.splice(12..12, [0x81, 0x00, 0, 100]);
            f
        }),
    ];
    for (name, frame) in &cases {
        let d = g.expect(name, frame, Verdict::PassNotGtp);
        assert!(d.moved_malformed().is_empty(), "{name}: malformed {:?}", d.moved_malformed());
        assert!(d.moved_shadow().is_empty(), "{name}");
    }
    assert_eq!(g.device_count(), 0, "non-GTP traffic created device state");
    assert_eq!(g.cell_count(), 0, "non-GTP traffic created cell state");
}

/// Where each layer of a frame ends: (end of L2, end of L3 header, end of UDP header), and the
/// malformed reasons for a cut inside L2 and L3.
struct Layout {
    l2: usize,
    l3: usize,
    udp: usize,
    l2_reason: Malformed,
    l3_reason: Malformed,
}

fn expected_truncation_reason(n: usize, lay: &Layout) -> Malformed {
    if n < 14 {
        Malformed::EthTruncated
    } else if n < lay.l2 {
        lay.l2_reason
    } else if n < lay.l3 {
        lay.l3_reason
    } else if n < lay.udp {
        Malformed::UdpTruncated
    } else {
        // The UDP Length still describes the whole datagram.
        Malformed::GtpTruncated
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn truncation_at_every_offset_has_a_defined_verdict() {
    assert_root("verdict::n3::malformed::truncation_at_every_offset_has_a_defined_verdict");
    let mut g = load(&enforce_all());
    let v4 = |tags: usize, opts: usize| Layout {
        l2: 14 + 4 * tags,
        l3: 14 + 4 * tags + 20 + opts,
        udp: 14 + 4 * tags + 20 + opts + 8,
        l2_reason: Malformed::VlanTruncated,
        l3_reason: Malformed::Ipv4Truncated,
    };
    let v6 = |tags: usize| Layout {
        l2: 14 + 4 * tags,
        l3: 14 + 4 * tags + 40,
        udp: 14 + 4 * tags + 48,
        l2_reason: Malformed::VlanTruncated,
        l3_reason: Malformed::Ipv6Truncated,
    };
    let cases: Vec<(&str, Vec<u8>, Layout, Verdict)> = vec![
        ("IPv4 G-PDU + PDU session container", gpdu(0x200).qfi(9).build(), v4(0, 0), Verdict::PassGpdu),
        ("802.1Q IPv4 G-PDU", gpdu(0x201).vlan(100).qfi(1).build(), v4(1, 0), Verdict::PassGpdu),
        (
            "QinQ IPv4 G-PDU, 2 ext headers",
            gpdu(0x202).qinq(1, 2).ext_header(EXT_UDP_PORT, &[8, 0x68]).qfi(2).build(),
            v4(2, 0),
            Verdict::PassGpdu,
        ),
        ("IPv4 with options", gpdu(0x203).ipv4_options(&[0x94, 4, 0, 0]).build(), v4(0, 4), Verdict::PassGpdu),
        (
            "IPv6 outer G-PDU, IPv6 UE",
            gpdu(0x204)
                .outer_v6(GNB_V6, CORE_V6)
                .inner_v6("2001:db8:45::2".parse().expect("addr"), "2001:db8::1".parse().expect("addr"))
                .qfi(5)
                .build(),
            v6(0),
            Verdict::PassGpdu,
        ),
        ("802.1Q IPv6 outer", gpdu(0x205).vlan(7).outer_v6(GNB_V6, CORE_V6).qfi(5).build(), v6(1), Verdict::PassGpdu),
        ("Echo Request", GtpFrame::echo_request(9).build(), v4(0, 0), Verdict::PassSignalling),
    ];
    let mut checked = 0;
    for (name, full, lay, full_verdict) in &cases {
        for n in 0..=full.len() {
            let frame = &full[..n];
            let what = format!("{name} cut to {n} of {} bytes", full.len());
            if n < 14 {
                // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header (EINVAL); a
                // NIC never delivers one either. Anything else from the kernel is a failure.
                let before = g.counters();
                match g.run(frame) {
                    Err(e) => assert!(format!("{e:#}").contains("Invalid argument"), "{what}: {e:#}"),
                    Ok(a) => {
                        assert_eq!(a, XDP_PASS, "{what}");
                        let d = g.counters().since(&before);
                        assert_eq!(d.moved_malformed(), vec![(Malformed::EthTruncated, 1)], "{what}");
                    }
                }
                continue;
            }
            if n == full.len() {
                let d = g.expect(&what, frame, *full_verdict);
                assert!(d.moved_malformed().is_empty(), "{what}: {:?}", d.moved_malformed());
                continue;
            }
            let reason = expected_truncation_reason(n, lay);
            let verdict = if reason.is_gtp() { Verdict::DropMalformed } else { Verdict::PassMalformed };
            let d = g.expect(&what, frame, verdict);
            assert_eq!(
                d.moved_malformed(),
                vec![(reason, 1)],
                "{what}: exactly one malformed counter, {}\nframe {}",
                reason.name(),
                hex(frame)
            );
            assert_eq!(d.stat(STAT_MAP_UPDATE_FAILED), 0, "{what}");
            checked += 1;
        }
    }
    println!("{checked} truncated frames checked");
    // Only the complete G-PDUs made devices.
    assert_eq!(g.device_count(), 6);
}

/// The UDP datagram length of a plain IPv4 frame.
fn f_len_udp(f: &[u8]) -> usize {
    f.len() - 34
}

/// Make the IPv4 Total Length of a plain IPv4 frame cover the whole frame; fix the checksum.
fn set_ip_total(mut f: Vec<u8>) -> Vec<u8> {
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = frames::internet_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Set the UDP Length of a plain IPv4 frame.
fn set_udp_len(mut f: Vec<u8>, len: u16) -> Vec<u8> {
    f[38..40].copy_from_slice(&len.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn malformed_lengths_and_header_fields() {
    assert_root("verdict::n3::malformed::malformed_lengths_and_header_fields");
    let mut g = load(&enforce_all());
    let ok = gpdu(0x300).qfi(1).build();
    let udp_len = (ok.len() - 34) as u16;
    let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
        ("GTP length > UDP payload", gpdu(0x300).gtp_length(9999).build(), Malformed::GtpLengthMismatch),
        (
            "GTP length one past the UDP payload",
            {
                let g = gpdu(0x300).qfi(1);
                let l = g.build_gtp().len() as u16 - 8 + 1;
                g.gtp_length(l).build()
            },
            Malformed::GtpLengthMismatch,
        ),
        ("UDP length 4", set_udp_len(ok.clone(), 4), Malformed::UdpBadLength),
        ("UDP length 0", set_udp_len(ok.clone(), 0), Malformed::UdpBadLength),
        ("UDP length past the frame", set_udp_len(ok.clone(), udp_len + 1), Malformed::GtpTruncated),
        ("UDP length 8: no GTP header", set_udp_len(ok.clone(), 8), Malformed::GtpLengthMismatch),
        ("GTP version 0", gpdu(0x300).gtp_version(0).build(), Malformed::GtpBadVersion),
        (
            "GTP version 2 (GTPv2-C on the user plane port)",
            gpdu(0x300).gtp_version(2).build(),
            Malformed::GtpBadVersion,
        ),
        ("PT = 0 (GTP')", gpdu(0x300).protocol_type(false).build(), Malformed::GtpBadProtocolType),
        ("S flag, GTP length 2", GtpFrame::echo_request(1).gtp_length(2).build(), Malformed::GtpOptionalTruncated),
    ];
    // The gNB is known (one valid G-PDU), so its malformed traffic is charged to it.
    g.expect("a valid G-PDU makes the gNB known", &ok, Verdict::PassGpdu);
    let before = g.cell(IpAddr::V4(GNB_A)).expect("cell of GNB_A").malformed;
    for (name, frame, reason) in &cases {
        let d = g.expect(name, frame, Verdict::DropMalformed);
        assert_eq!(d.moved_malformed(), vec![(*reason, 1)], "{name}");
    }
    let after = g.cell(IpAddr::V4(GNB_A)).expect("cell of GNB_A").malformed;
    // Every case is sent by GNB_A: all are charged to it.
    assert_eq!(after - before, cases.len() as u64, "malformed GTP-U counted per gNB");
    // Shorter GTP length than the UDP payload (trailing padding) is fine, and so is a G-PDU with
    // no T-PDU or a non-IP T-PDU (Ethernet / unstructured PDU sessions).
    let mut f = gpdu(0x301).build();
    f.extend_from_slice(&[0; 6]);
    let f = set_udp_len(set_ip_total(f), (f_len_udp(&gpdu(0x301).build()) + 6) as u16);
    g.expect("UDP payload longer than the GTP message", &f, Verdict::PassGpdu);
    // A short message padded to the 60-byte Ethernet minimum: the padding is beyond the UDP
    // datagram and must be ignored.
    let mut echo = GtpFrame::echo_request(3).build();
    assert!(echo.len() < 60);
    echo.resize(60, 0);
    g.expect("Echo Request with Ethernet padding", &echo, Verdict::PassSignalling);
    let mut em = GtpFrame::end_marker(0x304).vlan(5).build();
    em.resize(64, 0);
    g.expect("802.1Q End Marker with Ethernet padding", &em, Verdict::PassSignalling);
    g.expect("G-PDU without T-PDU", &gpdu(0x302).no_tpdu().build(), Verdict::PassGpdu);
    g.expect("non-IP T-PDU", &gpdu(0x303).tpdu_raw(&[0x00, 0x11, 0x22, 0x33, 0x44]).build(), Verdict::PassGpdu);
    assert_eq!(g.teid(0x303).expect("device").bind_flags, 0);
    // A T-PDU that starts like IPv4 but is cut short is not IP either (an Unstructured session,
    // TS 23.501 §5.6.10.3): never malformed (it used to be `inner_truncated`).
    let cut = gpdu(0x305).tpdu_raw(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]).build();
    let d = g.expect("T-PDU starting 0x45, 12 octets", &cut, Verdict::PassGpdu);
    assert!(d.moved_malformed().is_empty());
    assert_eq!(g.teid(0x305).expect("device").non_ip, 1);
    // Below GTP-U: passed for the kernel to drop, whatever the malformed protection says.
    let mut bad_ip = ok.clone();
    bad_ip[14] = 0x55;
    let d = g.expect("IPv4 version 5", &bad_ip, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::Ipv4BadVersion, 1)]);
    let mut bad_ihl = ok.clone();
    bad_ihl[14] = 0x44;
    let d = g.expect("IPv4 IHL 4", &bad_ihl, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::Ipv4BadIhl, 1)]);
    let triple = gpdu(0x300).vlan(1).vlan(2).vlan(3).build();
    let d = g.expect("three VLAN tags", &triple, Verdict::PassMalformed);
    assert_eq!(d.moved_malformed(), vec![(Malformed::VlanTooDeep, 1)]);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn unwritten_config_passes_everything() {
    assert_root("verdict::n3::malformed::unwritten_config_passes_everything");
    // All-zero config: what a map that was never written holds.
    let mut g = load(&GuardConfig::default());
    quarantine(&mut g, 0x400, 60 * SEC);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("quarantined G-PDU", gpdu(0x400).build()),
        ("G-PDU", gpdu(0x401).build()),
        ("unknown message type", GtpFrame::message(100, 1).build()),
        ("bad GTP version", gpdu(0x401).gtp_version(2).build()),
        ("Echo Request", GtpFrame::echo_request(1).build()),
    ];
    for (name, f) in &cases {
        let (a, d) = g.run_delta(f);
        assert_eq!(a, XDP_PASS, "{name}: unconfigured guard must pass");
        assert!(d.verdicts.iter().enumerate().all(|(i, &n)| n == 0 || !Verdict::ALL[i].is_drop()), "{name}: {d:?}");
    }
    assert_eq!(g.device_count(), 0);
    // Configured with a port but nothing enabled: still nothing drops.
    g.write_config(&GuardConfig { gtpu_port: 2152, ..Default::default() });
    for (name, f) in &cases {
        let (a, d) = g.run_delta(f);
        assert_eq!(a, XDP_PASS, "{name}: nothing enabled must pass");
        assert!(d.verdicts.iter().enumerate().all(|(i, &n)| n == 0 || !Verdict::ALL[i].is_drop()), "{name}: {d:?}");
    }
}
