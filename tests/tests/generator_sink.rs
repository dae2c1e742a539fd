//! With no XDP program attached, what the generator sends from the RAN namespace is what the
//! sink counts in the CORE namespace, per TEID, per UE and per gNB; the generator honours its
//! packet cap, its deadline and its pacing; and tshark finds what crossed the veth well formed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use labkit::oracle::{tshark_fields, tshark_problems, tshark_summary, TempDir};
use labkit::pcap::write_pcap;
use labkit::{assert_root, send_frames, Lab, SendOpts, Sink, SinkOpts};

const TEIDS: [u32; 6] = [0x100, 0x101, 0x102, 0x2000_0001, 0xabcd_ef01, 0xffff_fffe];

fn ue(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 45, 0, 10 + i as u8)
}

/// One G-PDU per TEID, spread over the gNBs, with assorted QFIs, a VLAN-less IPv6-outer one
/// included.
fn templates(lab: &Lab) -> Vec<Vec<u8>> {
    TEIDS
        .iter()
        .enumerate()
        .map(|(i, &teid)| {
            let f = if i == 5 { lab.gpdu_v6(teid) } else { lab.gpdu_v4(i, teid) };
            f.inner_v4(ue(i), Ipv4Addr::new(192, 0, 2, 10)).qfi(1 + i as u8).payload_len(18 + 10 * i).build()
        })
        .collect()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn sink_counts_what_the_generator_sent() {
    assert_root("generator_sink::sink_counts_what_the_generator_sent");
    let lab = Lab::new().expect("lab");
    let frames = templates(&lab);
    let sink =
        Sink::start_with(&lab.core, lab.core_ifname(), SinkOpts { sample: 64, ..SinkOpts::default() }).expect("sink");
    let n = 60_000u64;
    let sent =
        send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(n, Duration::from_secs(20))).expect("send");
    assert_eq!(sent.sent, n, "cap reached before the deadline: {sent:?}");
    assert!(!sent.hit_deadline);
    assert_eq!(sent.non_gtp, 0);
    assert_eq!(sent.per_teid.len(), TEIDS.len());
    for &t in &TEIDS {
        assert_eq!(sent.per_teid[&t], n / TEIDS.len() as u64, "round-robin share of TEID {t:#x}");
    }
    sink.wait_for(n, Duration::from_secs(10));
    sink.wait_quiet(Duration::from_millis(100), Duration::from_secs(2));
    let got = sink.stop().expect("sink report");
    println!(
        "generator: {} packets in {:?} = {:.0} pps ({} retries); sink: {} GTP-U, {} other, {} kernel drops",
        sent.sent,
        sent.elapsed,
        sent.pps(),
        sent.retries,
        got.gtp,
        got.other,
        got.kernel_drops
    );

    for (&teid, &s) in &sent.per_teid {
        let r = got.teid(teid);
        assert!(r <= s, "TEID {teid:#x}: sink counted {r} > sent {s}");
        assert!(r * 100 >= s * 99, "TEID {teid:#x}: sink counted {r} of {s} (< 99%); sink {got:?}");
    }
    assert_eq!(got.bad_gtp, 0);
    assert_eq!(got.per_msg_type.keys().copied().collect::<Vec<_>>(), vec![255u8]);
    // Per UE and per gNB, from the inner and outer source addresses.
    for (i, &teid) in TEIDS.iter().enumerate() {
        let r = got.per_ue.get(&IpAddr::V4(ue(i))).copied().unwrap_or(0);
        assert_eq!(r, got.teid(teid), "UE {} delivered as much as its TEID", ue(i));
    }
    let mut gnb_expect: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for (i, &teid) in TEIDS.iter().enumerate().take(5) {
        *gnb_expect.entry(lab.gnb_v4[i % lab.gnb_v4.len()].into()).or_default() += got.teid(teid);
    }
    gnb_expect.insert(lab.gnb_v6().into(), got.teid(TEIDS[5]));
    assert_eq!(got.per_gnb, gnb_expect);

    // What actually crossed the veth is well-formed GTP-U to tshark, with our TEIDs and QFIs.
    assert_eq!(got.sample.len(), 64);
    let dir = TempDir::new("labkit-gensink").expect("temp dir");
    let pcap = dir.join("received.pcap");
    write_pcap(&pcap, &got.sample).expect("pcap");
    let gtp_rows =
        tshark_fields(&pcap, &["gtp.teid", "gtp.ext_hdr.pdu_ses_con.qos_flow_id"], Some("gtp")).expect("tshark");
    let summary = tshark_summary(&pcap);
    assert!(gtp_rows.len() >= 60, "tshark sees the sampled G-PDUs:\n{summary}");
    for row in &gtp_rows {
        let teid = row.first().and_then(|t| u32::from_str_radix(t.trim_start_matches("0x"), 16).ok());
        let i = TEIDS.iter().position(|&t| Some(t) == teid).unwrap_or_else(|| panic!("unknown TEID {row:?}"));
        assert_eq!(row.get(1).map(String::as_str), Some((1 + i).to_string().as_str()), "QFI of TEID {teid:?}");
    }
    let problems = tshark_problems(&pcap).expect("tshark expert");
    assert!(problems.is_empty(), "tshark problems in received frames: {problems:#?}\n{summary}");
    // And the templates themselves (the generator's input).
    let pcap = dir.join("templates.pcap");
    write_pcap(&pcap, &frames).expect("pcap");
    assert!(tshark_problems(&pcap).expect("tshark").is_empty(), "{}", tshark_summary(&pcap));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn generator_honours_deadline_and_pacing() {
    assert_root("generator_sink::generator_honours_deadline_and_pacing");
    let lab = Lab::builder().gnbs(2).build().expect("lab");
    let frames = templates(&lab);
    let sink = Sink::start(&lab.core, lab.core_ifname()).expect("sink");

    // Paced: 2 000 packets at 10 000 pps take about 0.2 s.
    let paced =
        send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(2_000, Duration::from_secs(10)).pps(10_000))
            .expect("paced send");
    assert_eq!(paced.sent, 2_000);
    assert!(
        paced.elapsed >= Duration::from_millis(180) && paced.elapsed < Duration::from_secs(2),
        "paced run took {:?}",
        paced.elapsed
    );

    // Deadline first: a huge cap at 5 000 pps stops at 0.3 s with about 1 500 packets.
    let bounded = send_frames(
        &lab.ran,
        lab.ran_ifname(),
        &frames,
        &SendOpts::new(10_000_000, Duration::from_millis(300)).pps(5_000),
    )
    .expect("deadline send");
    assert!(bounded.hit_deadline, "{bounded:?}");
    assert!(bounded.elapsed < Duration::from_millis(600), "{:?}", bounded.elapsed);
    assert!((1_000..=1_600).contains(&bounded.sent), "sent {} in 0.3 s at 5 000 pps", bounded.sent);

    sink.wait_for(paced.sent + bounded.sent, Duration::from_secs(5));
    let got = sink.stop().expect("sink");
    assert_eq!(got.gtp, paced.sent + bounded.sent, "no loss at low rate: {got:?}");

    // Neither limit may be missing.
    assert!(send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(0, Duration::from_secs(1))).is_err());
    assert!(send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(10, Duration::ZERO)).is_err());
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn generator_two_threads_rate() {
    assert_root("generator_sink::generator_two_threads_rate");
    let lab = Lab::new().expect("lab");
    let frames = templates(&lab);
    let sink = Sink::start(&lab.core, lab.core_ifname()).expect("sink");
    let n = 200_000;
    let sent = send_frames(&lab.ran, lab.ran_ifname(), &frames, &SendOpts::new(n, Duration::from_secs(20)).threads(2))
        .expect("send");
    sink.wait_for(sent.sent, Duration::from_secs(10));
    sink.wait_quiet(Duration::from_millis(100), Duration::from_secs(2));
    let got = sink.stop().expect("sink");
    println!(
        "2 threads: {} packets in {:?} = {:.0} pps; sink counted {} ({} kernel drops)",
        sent.sent,
        sent.elapsed,
        sent.pps(),
        got.gtp,
        got.kernel_drops
    );
    assert_eq!(sent.sent, n);
    assert!(got.gtp * 100 >= sent.sent * 99, "sink counted {} of {}", got.gtp, sent.sent);
}
