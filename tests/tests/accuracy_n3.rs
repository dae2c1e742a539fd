//! Accuracy of the rate limits over veth (issue 27): a device shaped to a byte rate or a packet
//! rate is offered more than that, and what leaves the guard is counted by the lab's sink, not by
//! the guard. After the burst allowance is spent, the rate delivered over the measured span must
//! be the configured one within ±5%.
//!
//! `cargo xtask test` runs two cases (10 Mbit/s with 512-octet T-PDUs, 10k pps with 64-octet
//! ones, 3 s each). The matrix of issue 27 (1, 10, 100 Mbit/s and 1k, 10k, 100k pps, each with
//! 64, 512 and 1400-octet T-PDUs, 10 s each) runs with `GUARD_ACCURACY_FULL=1` and prints the
//! table BENCHMARKS.md shows:
//! `GUARD_ACCURACY_FULL=1 cargo test -p guard-tests --test accuracy_n3 -- --ignored --nocapture`
//! (`GUARD_ACCURACY_ONLY="100 Mbit/s@64"` runs the matrix's cases whose "limit@octets" contains
//! that text).
//!
//! A case whose offered rate does not reach 1.1x the limit at the guard (the sender or the veth
//! cannot produce it on this machine; the guard's own packet count says what reached it) is
//! reported as not measured rather than judged: its delivered rate would be the offered one.

use std::net::Ipv4Addr;
use std::time::Duration;

use guard_common::abi::{ByteLimit, DeviceKey, GuardConfig, Limit, StageEntry, PROT_ALL, STAGE_SHAPE};
use labkit::bpf::{stage_entry, Guard};
use labkit::{assert_root, send_frames, Lab, SendOpts, Sink};

const SEC: u64 = 1_000_000_000;
/// The most this sender is asked for, packets per second: 1.25x the largest packet rate of the
/// matrix (100 Mbit/s of 64-octet T-PDUs is 195 kpps).
const MAX_OFFER_PPS: u64 = 250_000;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A byte rate, bits per second (T-PDU octets), no packet rate.
    Bits(u64),
    /// A packet rate, no byte rate.
    Packets(u64),
}

struct Row {
    kind: Kind,
    tpdu: usize,
    offered_pps: f64,
    at_guard_pps: f64,
    delivered: f64,
    error: Option<f64>,
}

fn limit_words(k: Kind) -> String {
    match k {
        Kind::Bits(b) => format!("{} Mbit/s", b as f64 / 1e6),
        Kind::Packets(p) => format!("{}k pps", p / 1000),
    }
}

/// One case: TEID `teid` shaped to `kind`, offered 1.25x it (at most [`MAX_OFFER_PPS`]) for
/// `warm` (the burst allowance), then measured over `span`.
fn measure(lab: &Lab, guard: &mut Guard, teid: u32, kind: Kind, tpdu: usize, span: Duration) -> Row {
    let limit_pps = match kind {
        Kind::Bits(b) => b as f64 / (8.0 * tpdu as f64),
        Kind::Packets(p) => p as f64,
    };
    // The smallest bursts the data plane holds (one clock step of the rate), so the burst
    // allowance is a negligible part of the span.
    let entry = match kind {
        Kind::Bits(b) => StageEntry {
            bytes: ByteLimit::bits_per_second(b, 0),
            interval_ns: 0,
            tau_ns: 0,
            ..stage_entry(STAGE_SHAPE, 0, 0, 3600 * SEC)
        },
        Kind::Packets(p) => {
            let l = Limit::per_second(p, 1);
            StageEntry { interval_ns: l.interval_ns, tau_ns: l.tau_ns, ..stage_entry(STAGE_SHAPE, 0, 0, 3600 * SEC) }
        }
    };
    guard.set_stage(&DeviceKey::teid(teid), &entry);
    let frame = lab
        .gpdu_v4(0, teid)
        .inner_v4(Ipv4Addr::new(10, 45, 1, (teid & 0xff) as u8), Ipv4Addr::new(192, 0, 2, 10))
        .payload_len(tpdu - 28)
        .build();
    let offer = ((limit_pps * 1.25) as u64).clamp(100, MAX_OFFER_PPS);
    let opts =
        |d: Duration| SendOpts::new(offer * d.as_secs_f64().ceil() as u64 + 1, d + Duration::from_secs(5)).pps(offer);
    // Spend the burst allowance (and let the stage be cached) before measuring.
    let warm = Duration::from_millis(500);
    send_frames(
        &lab.ran,
        lab.ran_ifname(),
        std::slice::from_ref(&frame),
        &SendOpts { max_packets: offer / 2, ..opts(warm) },
    )
    .expect("send (warm-up)");
    let sink = Sink::start(&lab.core, lab.core_ifname()).expect("sink");
    let before = guard.teid(teid).map_or(0, |d| d.packets());
    let sent = send_frames(
        &lab.ran,
        lab.ran_ifname(),
        std::slice::from_ref(&frame),
        &SendOpts { max_packets: (offer as f64 * span.as_secs_f64()) as u64, ..opts(span) },
    )
    .expect("send");
    sink.wait_quiet(Duration::from_millis(200), Duration::from_secs(5));
    let got = sink.stop().expect("sink report");
    assert_eq!(got.kernel_drops, 0, "the sink's socket overflowed: its counts are not evidence");
    let secs = sent.elapsed.as_secs_f64().max(1e-3);
    let at_guard = guard.teid(teid).map_or(0, |d| d.packets()).saturating_sub(before) as f64 / secs;
    let delivered_pps = got.teid(teid) as f64 / secs;
    let (delivered, limit) = match kind {
        Kind::Bits(b) => (delivered_pps * 8.0 * tpdu as f64, b as f64),
        Kind::Packets(p) => (delivered_pps, p as f64),
    };
    let error = (at_guard >= 1.1 * limit_pps).then(|| delivered / limit - 1.0);
    Row { kind, tpdu, offered_pps: sent.pps(), at_guard_pps: at_guard, delivered, error }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn shaped_rates_leave_the_guard_within_5_percent() {
    assert_root("accuracy_n3::shaped_rates_leave_the_guard_within_5_percent");
    let full = std::env::var_os("GUARD_ACCURACY_FULL").is_some();
    let lab = Lab::new().expect("lab");
    let cfg = GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() };
    let mut guard = lab.attach_guard("acc", &cfg);
    let (cases, span): (Vec<(Kind, usize)>, _) = if full {
        let kinds = [
            Kind::Bits(1_000_000),
            Kind::Bits(10_000_000),
            Kind::Bits(100_000_000),
            Kind::Packets(1_000),
            Kind::Packets(10_000),
            Kind::Packets(100_000),
        ];
        (kinds.iter().flat_map(|&k| [64, 512, 1400].map(|s| (k, s))).collect(), Duration::from_secs(10))
    } else {
        (vec![(Kind::Bits(10_000_000), 512), (Kind::Packets(10_000), 64)], Duration::from_secs(3))
    };
    let only = std::env::var("GUARD_ACCURACY_ONLY").ok();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(k, s)| only.as_deref().is_none_or(|o| format!("{}@{s}", limit_words(*k)).contains(o)))
        .collect();
    println!(
        "| limit | T-PDU octets | offered pps | reached the guard, pps | delivered (sink) | error |\n|:--|--:|--:|--:|--:|--:|"
    );
    let n_cases = cases.len();
    assert!(n_cases > 0, "GUARD_ACCURACY_ONLY={only:?} matches no case");
    let mut judged = 0;
    let mut failures = Vec::new();
    for (i, (kind, tpdu)) in cases.into_iter().enumerate() {
        let r = measure(&lab, &mut guard, 0x5000 + i as u32, kind, tpdu, span);
        let delivered = match r.kind {
            Kind::Bits(_) => format!("{:.3} Mbit/s", r.delivered / 1e6),
            Kind::Packets(_) => format!("{:.0} pps", r.delivered),
        };
        let error = r.error.map_or("not measured (offered < 1.1x)".to_owned(), |e| format!("{:+.2}%", e * 100.0));
        println!(
            "| {} | {} | {:.0} | {:.0} | {delivered} | {error} |",
            limit_words(r.kind),
            r.tpdu,
            r.offered_pps,
            r.at_guard_pps
        );
        if let Some(e) = r.error {
            judged += 1;
            if e.abs() > 0.05 {
                failures.push(format!("{} with {}-octet T-PDUs: {:+.2}%", limit_words(r.kind), r.tpdu, e * 100.0));
            }
        }
    }
    assert!(failures.is_empty(), "outside ±5%: {failures:?}");
    // The default cases are all judged: one whose offered rate stayed under 1.1x its limit
    // measured nothing, and a pass on the other alone would claim what it did not show. The full
    // grid's fastest rates (up to ~200,000 pps) may be beyond a small machine's sender.
    if full {
        assert!(judged > 0, "no case could be offered above its limit: nothing was measured");
    } else {
        assert_eq!(judged, n_cases, "cases offered under 1.1x their limit were not measured (the table above)");
    }
}
