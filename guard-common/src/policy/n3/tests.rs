//! Host tests of the N3 stage and verdict decisions (`policy::n3`).

use super::*;
use crate::abi::{ByteLimit, Limit, CELL_STAGE_NONE, PROT_ALL, STAGE_OBSERVE};

fn entry(stage: u32, pps: u64, burst: u64, expires: u64) -> StageEntry {
    let l = Limit::per_second(pps, burst);
    StageEntry { stage, interval_ns: l.interval_ns, tau_ns: l.tau_ns, expires_ns: expires, ..Default::default() }
}

/// Only 0.0.0.0, fe80::/10 and :: are not a UE's: an address with some zero octets, a ULA
/// whose second octet looks like link-local's, and the deprecated site-local fec0::/10 are.
#[test]
fn which_sources_name_a_ue() {
    let v6 = |s: &str| L3Addr::v6(s.parse::<core::net::Ipv6Addr>().expect("v6").octets());
    for (a, want) in [
        (L3Addr::v4([0, 0, 0, 0]), false),
        (L3Addr::v4([10, 0, 0, 1]), true),
        (L3Addr::v4([0, 0, 0, 1]), true),
        (L3Addr::v4([0, 45, 0, 0]), true),
        (L3Addr::v4([0, 0, 7, 0]), true),
        (v6("::"), false),
        (v6("fe80::1"), false),
        (v6("febf::1"), false),
        (v6("fec0::1"), true),
        (v6("fd80::1"), true),
        (v6("2001:db8::1"), true),
        (v6("::1"), true),
        (L3Addr::NONE, false),
    ] {
        assert_eq!(names_ue(&a), want, "{a:?}");
    }
}

#[test]
fn quarantine_until_expiry_then_observe() {
    let mut e = entry(STAGE_QUARANTINE, 0, 0, 1_000);
    let drop = StageDecision::Exceed { prot: PROT_QUARANTINE, verdict: Verdict::DropQuarantine };
    assert_eq!(device_stage(&mut e, 999, 100, |v| v), drop);
    assert_eq!(device_stage(&mut e, 1_000, 100, |v| v), StageDecision::Observe);
}

/// The data plane's cached copy of an entry (its fields, a separate GCRA state) decides every
/// packet as the entry itself would, for every stage, and both decide what is written here by
/// hand (10 pps, burst 3, expiring at 5 s): not one function compared with itself.
#[test]
fn a_cached_copy_decides_as_the_entry() {
    use StageDecision::{Conform as C, Exceed, Observe as O};
    const MS: u64 = 1_000_000;
    let shape = Exceed { prot: PROT_SHAPE, verdict: Verdict::DropShape };
    let strict = Exceed { prot: PROT_STRICT, verdict: Verdict::DropStrict };
    let quarantine = Exceed { prot: PROT_QUARANTINE, verdict: Verdict::DropQuarantine };
    // Four packets at 4 s (a burst of 3 passes), one 50 ms later (no token yet), one 100 ms
    // after the burst (a token), two at 4.5 s (five tokens back, capped at the burst), one at
    // the expiry and one after it.
    let times = [4_000, 4_000, 4_000, 4_000, 4_050, 4_100, 4_500, 4_500, 5_000, 6_000].map(|t| t * MS);
    let rate = |x: StageDecision| [C, C, C, x, x, C, C, C, O, O];
    let cases = [
        (STAGE_OBSERVE, [O; 10]),
        (STAGE_SHAPE, rate(shape)),
        (STAGE_STRICT, rate(strict)),
        (
            STAGE_QUARANTINE,
            [quarantine, quarantine, quarantine, quarantine, quarantine, quarantine, quarantine, quarantine, O, O],
        ),
        (7, [O; 10]),
    ];
    for (stage, want) in cases {
        let mut e = entry(stage, 10, 3, 5_000 * MS);
        let limit = Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns };
        let (mut tat, mut tat_bytes) = (0, 0);
        for (now, want) in times.into_iter().zip(want) {
            let tats = StageTats { packets: &mut tat, bytes: &mut tat_bytes };
            let cached = stage_decision(stage, e.expires_ns, &limit, &e.bytes, tats, now, 100, |v| v);
            assert_eq!(cached, want, "cached copy, stage {stage}, now {now}");
            assert_eq!(device_stage(&mut e, now, 100, |v| v), want, "entry, stage {stage}, now {now}");
            assert_eq!(tat, e.tat, "stage {stage}: the GCRA states move together");
            assert_eq!(tat_bytes, e.tat_bytes, "stage {stage}: the byte states move together");
            assert!(tat_bytes <= now, "stage {stage}: no byte limit, never ahead of now");
        }
    }
}

/// A shape stage with a benign packet rate (1000 pps, burst 1000) and a byte rate (1 Mbit/s,
/// burst 12,500 octets = 100 ms): 1400-octet packets (11.2 ms each at the rate) are cut
/// after the byte burst, 64-octet packets at 100 pps (51 kbit/s) all pass, and without the
/// byte rate the same large packets pass the whole packet burst.
#[test]
fn a_two_limit_stage_cuts_large_packets_at_a_benign_packet_rate() {
    use crate::abi::ByteLimit;
    const MS: u64 = 1_000_000;
    let shape = StageDecision::Exceed { prot: PROT_SHAPE, verdict: Verdict::DropShape };
    let with_bytes = |stage| StageEntry {
        bytes: ByteLimit::bits_per_second(1_000_000, 12_500),
        ..entry(stage, 1000, 1000, u64::MAX)
    };
    let mut e = with_bytes(STAGE_SHAPE);
    let d: Vec<_> = (0..20).map(|_| device_stage(&mut e, 4_000 * MS, 1400, |v| v)).collect();
    assert_eq!(d, [[StageDecision::Conform; 9].as_slice(), [shape; 11].as_slice()].concat());
    assert_eq!(e.tat, 4_000 * MS + 9 * MS, "the packet limit is charged for the nine passed packets only");
    assert_eq!(e.tat_bytes, 4_000 * MS + 9 * 11_200_000, "1400 octets at 1 Mbit/s: 11.2 ms each");
    // Strict reports strict.
    let mut s = with_bytes(STAGE_STRICT);
    let d: Vec<_> = (0..10).map(|_| device_stage(&mut s, 4_000 * MS, 1400, |v| v)).collect();
    assert_eq!(d[9], StageDecision::Exceed { prot: PROT_STRICT, verdict: Verdict::DropStrict });
    // Small packets under both limits lose nothing, for 10 s.
    let mut e = with_bytes(STAGE_SHAPE);
    assert!((0..1000u64).all(|k| device_stage(&mut e, 4_000 * MS + k * 10 * MS, 64, |v| v) == StageDecision::Conform));
    // No byte rate: only the packet limit, as before byte limits existed.
    let mut e = entry(STAGE_SHAPE, 1000, 1000, u64::MAX);
    assert!((0..1000).all(|_| device_stage(&mut e, 4_000 * MS, 1400, |v| v) == StageDecision::Conform));
    assert_eq!(device_stage(&mut e, 4_000 * MS, 1400, |v| v), shape);
    assert!(e.tat_bytes <= 4_000 * MS, "no byte rate: its state never runs ahead of now");
    // A byte rate and no packet rate: the bytes alone.
    let mut e =
        StageEntry { bytes: ByteLimit::bits_per_second(1_000_000, 12_500), ..entry(STAGE_SHAPE, 0, 0, u64::MAX) };
    assert_eq!((0..20).filter(|_| device_stage(&mut e, 4_000 * MS, 1400, |v| v) == StageDecision::Conform).count(), 9);
}

proptest::proptest! {
    /// With both limits, the record's cached copy (its own two GCRA states) decides every
    /// packet as the entry itself does, whatever the sizes and times.
    #[test]
    fn a_cached_two_limit_copy_decides_as_the_entry(
        stage in 0u32..4, pps in 0u64..5000, burst in 1u64..50, bps in 0u64..50_000_000, burst_b in 0u64..100_000,
        steps in proptest::collection::vec((0u64..20_000_000, 1u64..9000), 1..300),
    ) {
        let mut e = StageEntry { bytes: crate::abi::ByteLimit::bits_per_second(bps, burst_b), ..entry(stage, pps, burst, 9_000_000_000) };
        let limit = Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns };
        let (mut tat, mut tat_bytes) = (0, 0);
        let mut now = 1_000_000_000u64;
        for (gap, len) in steps {
            now += gap;
            let tats = StageTats { packets: &mut tat, bytes: &mut tat_bytes };
            let cached = stage_decision(stage, e.expires_ns, &limit, &e.bytes, tats, now, len, |v| v);
            proptest::prop_assert_eq!(cached, device_stage(&mut e, now, len, |v| v));
            proptest::prop_assert_eq!((tat, tat_bytes), (e.tat, e.tat_bytes));
        }
    }
}

/// Every stage's drop names its own protection, and only that protection's mode gates it:
/// shadowing or turning off any other protection leaves the drop enforced.
#[test]
fn each_stage_is_gated_by_its_own_protection() {
    let cases = [
        (STAGE_SHAPE, PROT_SHAPE, Verdict::DropShape),
        (STAGE_STRICT, PROT_STRICT, Verdict::DropStrict),
        (STAGE_QUARANTINE, PROT_QUARANTINE, Verdict::DropQuarantine),
    ];
    for (stage, own, verdict) in cases {
        // Burst 1 at one instant: the second packet exceeds a rate stage.
        let mut e = entry(stage, 1, 1, u64::MAX);
        let d = [device_stage(&mut e, 10, 100, |v| v), device_stage(&mut e, 10, 100, |v| v)];
        let StageDecision::Exceed { prot, verdict: v } = d[1] else {
            panic!("stage {stage}: the second packet must exceed: {d:?}");
        };
        assert_eq!((prot, v), (own, verdict), "stage {stage}");
        for bit in (0..10).map(|i| 1u32 << i) {
            let shadowed = GuardConfig { enabled: PROT_ALL, shadow: bit, ..Default::default() };
            let off = GuardConfig { enabled: PROT_ALL & !bit, ..Default::default() };
            let (want_shadow, want_off) =
                if bit == own { (Gate::Shadow, Gate::Off) } else { (Gate::Enforce, Gate::Enforce) };
            assert_eq!(gate(&shadowed, prot), want_shadow, "stage {stage}, protection {bit:#x} in shadow");
            assert_eq!(gate(&off, prot), want_off, "stage {stage}, protection {bit:#x} off");
        }
    }
}

#[test]
fn shape_admits_burst_then_drops() {
    let mut e = entry(STAGE_SHAPE, 10, 3, u64::MAX);
    let now = 5_000_000_000;
    let d: Vec<_> = (0..5).map(|_| device_stage(&mut e, now, 100, |v| v)).collect();
    assert_eq!(&d[..3], &[StageDecision::Conform; 3]);
    assert_eq!(d[3], StageDecision::Exceed { prot: PROT_SHAPE, verdict: Verdict::DropShape });
}

#[test]
fn strict_reports_strict() {
    let mut e = entry(STAGE_STRICT, 1, 1, u64::MAX);
    assert_eq!(device_stage(&mut e, 10, 100, |v| v), StageDecision::Conform);
    assert_eq!(
        device_stage(&mut e, 10, 100, |v| v),
        StageDecision::Exceed { prot: PROT_STRICT, verdict: Verdict::DropStrict }
    );
}

#[test]
fn exempt_wins_over_stage() {
    let mut e = entry(STAGE_QUARANTINE, 0, 0, 100);
    e.flags = STAGE_FLAG_EXEMPT;
    assert_eq!(device_stage(&mut e, 5, 100, |v| v), StageDecision::Exempt);
}

#[test]
fn gates() {
    let mut cfg = GuardConfig { enabled: PROT_ALL, ..Default::default() };
    assert_eq!(gate(&cfg, PROT_SHAPE), Gate::Enforce);
    cfg.shadow = PROT_SHAPE;
    assert_eq!(gate(&cfg, PROT_SHAPE), Gate::Shadow);
    cfg.enabled = 0;
    assert_eq!(gate(&cfg, PROT_SHAPE), Gate::Off);
}

#[test]
fn qfi_exemption() {
    let cfg = GuardConfig { exempt_qfi: 1 << 5, ..Default::default() };
    assert!(qfi_exempt(&cfg, 5));
    assert!(!qfi_exempt(&cfg, 6));
    assert!(!qfi_exempt(&cfg, 0xff));
}

#[test]
fn verdict_all_in_order() {
    for (i, v) in Verdict::ALL.iter().enumerate() {
        assert_eq!(*v as usize, i);
    }
}

#[test]
fn echo_is_never_limited_below_the_host_rate_and_per_path_above_it() {
    let sec = 1_000_000_000u64;
    let mut cfg =
        GuardConfig { echo: Limit::per_second(1, 8), echo_host: Limit::per_second(100, 100), ..GuardConfig::default() };
    // Far below the host rate: a forger's 1/s and a real peer's retransmissions all pass.
    let (mut host, mut path) = (0u64, 0u64);
    for i in 0..50 {
        assert!(echo_admits(&cfg, &mut host, &mut path, 1000 * sec + i * sec / 2), "echo {i}");
    }
    assert_eq!(path, 0, "the path budget is untouched below the host rate");
    // Above the host rate: a flood on one path exhausts that path's budget only.
    let (mut host, mut flooded, mut quiet) = (0u64, 0u64, 0u64);
    let t = 2000 * sec;
    let passed = (0..1000).filter(|_| echo_admits(&cfg, &mut host, &mut flooded, t)).count();
    assert_eq!(passed, 100 + 8, "the host burst, then the flooded path's own burst");
    let quiet_passed = (0..8).filter(|_| echo_admits(&cfg, &mut host, &mut quiet, t)).count();
    assert_eq!(quiet_passed, 8, "another path keeps its whole budget during the flood");
    assert!(!echo_admits(&cfg, &mut host, &mut flooded, t), "the flooded path stays limited");
    // No host rate configured: never limited.
    cfg.echo_host = Limit::UNLIMITED;
    assert!((0..1000).all(|_| echo_admits(&cfg, &mut 0, &mut flooded, t)));
}

/// The first seven verdicts pass, the other eleven drop; each has its own snake_case name
/// (a metric label), `pass_` or `drop_` as it passes or drops.
#[test]
fn verdicts_pass_or_drop_and_have_their_own_names() {
    let passes = [
        (Verdict::PassNotGtp, "pass_not_gtp"),
        (Verdict::PassMalformed, "pass_malformed"),
        (Verdict::PassGpdu, "pass_gpdu"),
        (Verdict::PassSignalling, "pass_signalling"),
        (Verdict::PassExempt, "pass_exempt"),
        (Verdict::PassFailOpen, "pass_fail_open"),
        (Verdict::PassFragment, "pass_fragment"),
    ];
    let drops = [
        (Verdict::DropQuarantine, "drop_quarantine"),
        (Verdict::DropShape, "drop_shape"),
        (Verdict::DropStrict, "drop_strict"),
        (Verdict::DropCellCap, "drop_cell_cap"),
        (Verdict::DropHostCap, "drop_host_cap"),
        (Verdict::DropSpoof, "drop_spoof"),
        (Verdict::DropNewDevice, "drop_new_device"),
        (Verdict::DropEcho, "drop_echo"),
        (Verdict::DropErrInd, "drop_err_ind"),
        (Verdict::DropMalformed, "drop_malformed"),
        (Verdict::DropFragment, "drop_fragment"),
    ];
    assert_eq!(passes.len() + drops.len(), Verdict::ALL.len());
    for (v, name) in passes {
        assert!(!v.is_drop(), "{v:?} passes");
        assert_eq!(v.name(), name);
    }
    for (v, name) in drops {
        assert!(v.is_drop(), "{v:?} drops");
        assert_eq!(v.name(), name);
    }
}

/// Every QFI of the set (0-63) can be exempted; [`QFI_NONE`] (no PDU Session Container) and
/// values above 63 never are, whatever the set.
#[test]
fn qfi_exemption_covers_exactly_0_to_63() {
    let all = GuardConfig { exempt_qfi: u64::MAX, ..Default::default() };
    assert!((0..64u8).all(|q| qfi_exempt(&all, q)));
    for q in [64u8, 65, 127, 128, QFI_NONE as u8] {
        assert!(!qfi_exempt(&all, q), "QFI {q}");
    }
    let top = GuardConfig { exempt_qfi: 1 << 63, ..Default::default() };
    assert_eq!((0..=255u8).filter(|&q| qfi_exempt(&top, q)).collect::<Vec<_>>(), [63]);
}

/// A device exemption lasts until its expiry, exclusive: at `expires_ns` the device is back
/// at stage 0.
#[test]
fn an_exemption_ends_at_its_expiry() {
    let mut e = entry(STAGE_QUARANTINE, 0, 0, 100);
    e.flags = STAGE_FLAG_EXEMPT;
    assert_eq!(device_stage(&mut e, 99, 100, |v| v), StageDecision::Exempt);
    assert_eq!(device_stage(&mut e, 100, 100, |v| v), StageDecision::Observe);
    assert_eq!(device_stage(&mut e, 101, 100, |v| v), StageDecision::Observe);
}

fn cell_cap(stage: u32, pps: u64, burst: u64, expires: u64) -> CellStageEntry {
    let l = Limit::per_second(pps, burst);
    CellStageEntry { stage, interval_ns: l.interval_ns, tau_ns: l.tau_ns, expires_ns: expires, ..Default::default() }
}

/// A live cell cap (10 pps, burst 3) admits its burst at one instant and refuses the rest,
/// gets one token back 100 ms later, and stops capping at its expiry (exclusive). An entry
/// of another stage never caps, however many packets.
#[test]
fn a_cell_cap_admits_its_burst_until_its_expiry() {
    const MS: u64 = 1_000_000;
    let mut e = cell_cap(CELL_STAGE_CAP, 10, 3, 5_000 * MS);
    let at = |e: &mut CellStageEntry, now: u64, n: usize| {
        (0..n).map(|_| cell_cap_admits(e, now, 1400, |v| v)).collect::<Vec<_>>()
    };
    assert_eq!(at(&mut e, 4_000 * MS, 5), [true, true, true, false, false]);
    assert_eq!(e.tat, 4_300 * MS, "three packets charged, the refused ones not");
    assert_eq!(at(&mut e, 4_100 * MS, 2), [true, false]);
    // The last instant of the cap, then its expiry: everything passes, nothing is charged.
    let mut late = cell_cap(CELL_STAGE_CAP, 10, 1, 5_000 * MS);
    assert_eq!(at(&mut late, 5_000 * MS - 1, 2), [true, false]);
    let tat = late.tat;
    assert_eq!(at(&mut late, 5_000 * MS, 100), [true; 100]);
    assert_eq!(late.tat, tat, "an expired cap charges nothing");
    for stage in [CELL_STAGE_NONE, 2, 7] {
        let mut other = cell_cap(stage, 10, 1, 5_000 * MS);
        assert_eq!(at(&mut other, 4_000 * MS, 100), [true; 100], "stage {stage}");
        assert_eq!(other.tat, 0, "stage {stage}: no GCRA state moves");
    }
}

/// The host cap (10 pps, burst 2) admits its burst per CPU state and refuses the rest while
/// live; at its expiry (exclusive) and with no rate configured it admits everything.
#[test]
fn the_host_cap_admits_its_burst_until_its_expiry() {
    const MS: u64 = 1_000_000;
    let cfg = GuardConfig { host_cap: Limit::per_second(10, 2), host_cap_expires_ns: 5_000 * MS, ..Default::default() };
    let at = |cfg: &GuardConfig, tat: &mut u64, now: u64, n: usize| {
        let mut tat_bytes = 0;
        (0..n).map(|_| host_cap_admits(cfg, tat, &mut tat_bytes, now, 1400, |v| v)).collect::<Vec<_>>()
    };
    let mut tat = 0;
    assert_eq!(at(&cfg, &mut tat, 4_000 * MS, 4), [true, true, false, false]);
    assert_eq!(tat, 4_200 * MS);
    let mut tat = 0;
    assert_eq!(at(&cfg, &mut tat, 5_000 * MS - 1, 3), [true, true, false]);
    let mut tat = 0;
    assert_eq!(at(&cfg, &mut tat, 5_000 * MS, 100), [true; 100], "expired");
    assert_eq!(tat, 0);
    let unlimited = GuardConfig { host_cap: Limit::UNLIMITED, host_cap_expires_ns: u64::MAX, ..Default::default() };
    assert_eq!(at(&unlimited, &mut tat, 4_000 * MS, 100), [true; 100], "no rate");
}

/// A cell cap with a byte rate beside its packet rate (issue 27): 1400-octet T-PDUs at a packet
/// rate the cap allows are cut by the byte rate (100 kbit/s, a burst of 2800 octets: two
/// packets and the one that crosses it), and refused ones charge neither state; 60-octet ones
/// of the same gNB still pass on the packet rate. A zero byte rate is the packet cap alone.
#[test]
fn a_cell_cap_with_a_byte_rate_cuts_large_packets_at_a_benign_packet_rate() {
    const MS: u64 = 1_000_000;
    let now = 4_000 * MS;
    let mut e = CellStageEntry {
        bytes: ByteLimit::bits_per_second(100_000, 2_800),
        ..cell_cap(CELL_STAGE_CAP, 1_000, 1_000, 5_000 * MS)
    };
    let big: Vec<bool> = (0..6).map(|_| cell_cap_admits(&mut e, now, 1400, |v| v)).collect();
    assert_eq!(big, [true, true, true, false, false, false]);
    let (tat, tat_bytes) = (e.tat, e.tat_bytes);
    // Three charged: 3 ms of packets, 336 ms of octets (1400 octets cost 112 ms).
    assert_eq!((tat - now, tat_bytes - now), (3 * MS, 336 * MS));
    assert!(!cell_cap_admits(&mut e, now, 1400, |v| v));
    assert_eq!((e.tat, e.tat_bytes), (tat, tat_bytes), "a refused packet charges neither limit");
    // 112 ms later one more large packet fits, and the byte state is what holds it.
    assert!(cell_cap_admits(&mut e, now + 112 * MS, 1400, |v| v));
    assert!(!cell_cap_admits(&mut e, now + 112 * MS, 1400, |v| v));
    let mut packets_only = cell_cap(CELL_STAGE_CAP, 1_000, 1_000, 5_000 * MS);
    assert_eq!(packets_only.bytes, ByteLimit::UNLIMITED);
    assert!((0..200).all(|_| cell_cap_admits(&mut packets_only, now, 1400, |v| v)), "no byte rate, no byte cut");
}

/// The host cap's byte form: live with a byte rate alone (no packet rate), it cuts large
/// T-PDUs, and it is not live without either rate or past its expiry.
#[test]
fn the_host_cap_has_a_byte_form() {
    const MS: u64 = 1_000_000;
    let cfg = GuardConfig {
        host_cap_bytes: ByteLimit::bits_per_second(100_000, 2_800),
        host_cap_expires_ns: 5_000 * MS,
        ..Default::default()
    };
    assert!(host_cap_live(&cfg, 4_000 * MS) && !host_cap_live(&cfg, 5_000 * MS));
    let (mut tat, mut tat_bytes) = (0, 0);
    let v: Vec<bool> =
        (0..5).map(|_| host_cap_admits(&cfg, &mut tat, &mut tat_bytes, 4_000 * MS, 1400, |v| v)).collect();
    assert_eq!(v, [true, true, true, false, false]);
    assert_eq!(tat, 4_000 * MS, "no packet rate: its state never runs ahead of the clock");
    assert!(!host_cap_live(&GuardConfig { host_cap_expires_ns: u64::MAX, ..Default::default() }, 0));
}

/// The Echo budget slot of a host address is the XOR of its 16 octets (an IPv4 address in
/// the first four) modulo [`crate::abi::ECHO_PATH_SLOTS`] (4): written here octet by octet,
/// not with the words the function folds.
#[test]
fn echo_path_slot_is_the_xor_of_the_address_octets() {
    use crate::abi::ECHO_PATH_SLOTS;
    let words = |a: [u8; 16]| {
        core::array::from_fn(|i| u32::from_be_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]))
    };
    let v4 = |a: [u8; 4]| words([a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // 10 ^ 200 = 0xc2: then 0xc3, 0xc0, 0xc1, 0xc6 for .1 to .4.
    let slots = (1..=4u8).map(|i| echo_path_slot(v4([10, 200, 0, i]))).collect::<Vec<_>>();
    assert_eq!(slots, [3, 0, 1, 2]);
    // One octet in each word of an IPv6 address; then one in each octet position of a word.
    let mut one = [0u8; 16];
    for i in 0..16 {
        for b in [1u8, 2, 3, 0x80, 0xfe] {
            one[i] = b;
            assert_eq!(echo_path_slot(words(one)), usize::from(b) % 4, "octet {i} = {b:#x}");
        }
        one[i] = 0;
    }
    // Pseudo-random addresses (a fixed LCG), all octets set.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for n in 0..512 {
        let a: [u8; 16] = core::array::from_fn(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        });
        let want = usize::from(a.iter().fold(0u8, |s, b| s ^ b)) % ECHO_PATH_SLOTS;
        assert_eq!(echo_path_slot(words(a)), want, "address {n}: {a:02x?}");
    }
}

#[test]
fn echo_path_slots_spread_host_addresses() {
    let v4 = |a: [u8; 4]| [u32::from_be_bytes(a), 0, 0, 0];
    let slots: std::collections::BTreeSet<usize> = (1..=4u8).map(|i| echo_path_slot(v4([10, 200, 0, i]))).collect();
    assert_eq!(slots.len(), 4, "four consecutive host addresses use four budgets");
    assert!((0..=255u8).all(|i| echo_path_slot(v4([192, 0, 2, i])) < crate::abi::ECHO_PATH_SLOTS));
}

fn v6(s: &str) -> L3Addr {
    L3Addr::v6(s.parse::<std::net::Ipv6Addr>().expect("v6").octets())
}

/// One G-PDU through check + apply, as the data plane runs them (apply only if it passed).
fn step(cfg: &GuardConfig, d: &mut DeviceState, src: &L3Addr, now: u64, passed: bool) -> Bind {
    let b = match binding_of(cfg, src, 0, 7) {
        Some((bit, value)) => check_binding(cfg, d, bit, value, now),
        None => Bind::Skip,
    };
    if passed && b != Bind::Spoof {
        apply_binding(d, b, now);
    }
    b
}

const REBIND: u64 = 60_000_000_000;

fn cfg() -> GuardConfig {
    GuardConfig { antispoof_rebind_ns: REBIND, ..Default::default() }
}

#[test]
fn ipv6_binds_the_prefix_and_ignores_link_local_and_unspecified() {
    let (c, mut d) = (cfg(), DeviceState::default());
    // A Router Solicitation from fe80:: and a DAD probe from :: first: nothing bound.
    assert_eq!(step(&c, &mut d, &v6("fe80::1c2d:3eff:fe4f:5a6b"), 1, true), Bind::Skip);
    assert_eq!(step(&c, &mut d, &v6("::"), 2, true), Bind::Skip);
    assert_eq!(d.bind_flags, 0);
    // SLAAC, then privacy addresses rotating inside the /64: one binding.
    assert!(matches!(step(&c, &mut d, &v6("2001:db8:45:7::a"), 3, true), Bind::Learn { bit: BIND_V6, .. }));
    for (i, a) in ["2001:db8:45:7:1:2:3:4", "2001:db8:45:7:ffff::9", "2001:db8:45:7::a"].iter().enumerate() {
        assert_eq!(step(&c, &mut d, &v6(a), 4 + i as u64, true), Bind::Match { bit: BIND_V6 });
    }
    // Another /64 is a spoof; an IPv4 source on the same session (IPv4v6) learns its own.
    assert_eq!(step(&c, &mut d, &v6("2001:db8:45:8::a"), 10, true), Bind::Spoof);
    assert!(matches!(step(&c, &mut d, &L3Addr::v4([10, 45, 0, 2]), 11, true), Bind::Learn { bit: BIND_V4, .. }));
    assert_eq!(step(&c, &mut d, &L3Addr::v4([10, 45, 0, 3]), 12, true), Bind::Spoof);
    assert_eq!(step(&c, &mut d, &v6("2001:db8:45:7::b"), 13, true), Bind::Match { bit: BIND_V6 });
    // DHCPv4 from 0.0.0.0 is never bound nor a spoof.
    assert_eq!(step(&c, &mut d, &L3Addr::v4([0, 0, 0, 0]), 14, true), Bind::Skip);
    // A /56 (prefix delegation): addresses of the whole /56 match.
    let c56 = GuardConfig { antispoof_v6_prefix: 56, ..cfg() };
    let mut d = DeviceState::default();
    step(&c56, &mut d, &v6("2001:db8:45:700::1"), 1, true);
    assert_eq!(step(&c56, &mut d, &v6("2001:db8:45:7ff::1"), 2, true), Bind::Match { bit: BIND_V6 });
    assert_eq!(step(&c56, &mut d, &v6("2001:db8:45:800::1"), 3, true), Bind::Spoof);
}

#[test]
fn a_dropped_packet_never_binds_and_an_idle_forged_binding_is_replaced() {
    let (c, mut d) = (cfg(), DeviceState::default());
    let (real, forged) = (L3Addr::v4([10, 45, 0, 2]), L3Addr::v4([10, 66, 6, 6]));
    // The forged first packet is dropped (say, by the device's quarantine): nothing learned.
    step(&c, &mut d, &forged, 1, false);
    assert_eq!(d.bind_flags, 0);
    // A forged first packet that passed binds; the real source is then a spoof ...
    step(&c, &mut d, &forged, 2, true);
    assert_eq!(step(&c, &mut d, &real, 3, true), Bind::Spoof);
    // ... forged packets keep failing to be matched only by the forger; once the forged
    // binding has gone unmatched for the rebind time, the real source takes it over.
    assert_eq!(step(&c, &mut d, &real, 2 + REBIND - 1, true), Bind::Spoof);
    assert!(matches!(step(&c, &mut d, &real, 2 + REBIND, true), Bind::Replace { bit: BIND_V4, .. }));
    assert_eq!((d.rebinds, d.bound_v4.to_ne_bytes()), (1, [10, 45, 0, 2]));
    // A live binding (matched within the rebind time) is never replaced.
    for t in 1..5 {
        assert_eq!(step(&c, &mut d, &real, 2 + REBIND + t * (REBIND / 2), true), Bind::Match { bit: BIND_V4 });
        assert_eq!(step(&c, &mut d, &forged, 2 + REBIND + t * (REBIND / 2) + 1, true), Bind::Spoof);
    }
    // Rebinding off: never replaced.
    let never = GuardConfig { antispoof_rebind_ns: 0, ..cfg() };
    assert_eq!(step(&never, &mut d, &forged, u64::MAX / 2, true), Bind::Spoof);
}

#[test]
fn ue_addr_mode_binds_the_fteid() {
    let c = GuardConfig { key_mode: KEY_MODE_UE_ADDR, ..cfg() };
    let src = L3Addr::v4([10, 45, 0, 2]);
    assert_eq!(binding_of(&c, &src, 3, 0x1f00), Some((BIND_FTEID, 3 << 32 | 0x1f00)));
    assert_ne!(binding_of(&c, &src, 4, 0x1f00), binding_of(&c, &src, 3, 0x1f00));
    assert_eq!(binding_of(&c, &v6("fe80::1"), 3, 0x1f00), None);
}

#[test]
fn ue_addr_mode_keys_ipv6_by_prefix() {
    let c = GuardConfig { key_mode: KEY_MODE_UE_ADDR, antispoof_v6_prefix: 64, ..cfg() };
    let a = ue_key_of(&c, &v6("2001:db8:45:7:1c2d:3eff:fe4f:5a6b"));
    assert_eq!(a, UeKey::V6Prefix(0x2001_0db8_0045_0007));
    assert_eq!(ue_key_of(&c, &v6("2001:db8:45:7:8a1f:22c4:9e01:7b3d")), a, "a privacy address is the same UE");
    assert_ne!(ue_key_of(&c, &v6("2001:db8:45:8::1")), a);
    assert_eq!(ue_key_of(&c, &v6("fe80::1")), UeKey::None);
    assert_eq!(ue_key_of(&c, &L3Addr::v4([0, 0, 0, 0])), UeKey::None);
    assert_eq!(ue_key_of(&c, &L3Addr::NONE), UeKey::None);
    assert_eq!(ue_key_of(&c, &L3Addr::v4([10, 45, 0, 2])), UeKey::V4);
}

proptest::proptest! {
    /// Whatever the sources and verdicts: a binding changes only through a packet that
    /// passed, a spoof never changes it, and a binding is replaced only after it went
    /// unmatched for the rebind time.
    #[test]
    fn bindings_change_only_as_documented(
        steps in proptest::collection::vec((0u8..4, 0u64..(3 * REBIND), proptest::bool::ANY), 1..40),
    ) {
        let c = cfg();
        let mut d = DeviceState::default();
        let mut now = 0u64;
        for (who, dt, passed) in steps {
            now += dt;
            let src = L3Addr::v4([10, 45, 0, who]);
            let before = d;
            let b = step(&c, &mut d, &src, now, passed);
            if !passed || matches!(b, Bind::Spoof | Bind::Skip) {
                proptest::prop_assert_eq!((d.bound_v4, d.bind_flags, d.rebinds), (before.bound_v4, before.bind_flags, before.rebinds));
            }
            if let Bind::Replace { .. } = b {
                proptest::prop_assert!(now - before.bound_ns[0] >= REBIND);
            }
            if who == 0 && passed && before.bind_flags & BIND_V4 != 0 && before.bound_v4 != d.bound_v4 {
                proptest::prop_assert!(now - before.bound_ns[0] >= REBIND);
            }
        }
    }
}

/// The word reads (`names_ue`, `binding_of`, `v6_prefix`) against the octet definitions the
/// data plane used before issue 19 read addresses as words.
mod word_reads {
    use proptest::prelude::*;

    use super::*;
    use crate::abi::FAMILY_NONE;

    fn names_ue_octets(src: &L3Addr) -> bool {
        let a = &src.addr;
        match src.family {
            FAMILY_IPV4 => !(a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0),
            FAMILY_IPV6 => !((a[0] == 0xfe && a[1] & 0xc0 == 0x80) || *a == [0; 16]),
            _ => false,
        }
    }

    /// The prefix as the octets define it: the first eight, big-endian, masked to the length.
    fn v6_prefix_octets(cfg: &GuardConfig, a: &[u8; 16]) -> u64 {
        let len = if cfg.antispoof_v6_prefix == 0 { 64 } else { cfg.antispoof_v6_prefix.min(64) };
        u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]) & (u64::MAX << (64 - len))
    }

    fn octets() -> impl Strategy<Value = [u8; 16]> {
        prop_oneof![
            any::<[u8; 16]>(),
            // All zero but one octet: 0.0.0.0, ::, and each octet's share of the zero tests.
            (0usize..16, any::<u8>()).prop_map(|(i, v)| {
                let mut a = [0u8; 16];
                a[i] = v;
                a
            }),
            // fe80::/10 and its neighbours.
            (any::<u8>(), any::<[u8; 16]>()).prop_map(|(b1, mut a)| {
                a[0] = 0xfe;
                a[1] = b1;
                a
            }),
        ]
    }

    proptest! {
        /// Read as words, a source names a UE, binds and keys exactly as its octets say, for
        /// every prefix length and both key modes.
        #[test]
        fn word_reads_agree_with_the_octets(
            family in prop_oneof![Just(FAMILY_IPV4), Just(FAMILY_IPV6), Just(FAMILY_NONE)],
            a in octets(),
            prefix in 0u32..70,
            ue_mode in any::<bool>(),
        ) {
            let src = L3Addr { family, addr: a };
            let key_mode = if ue_mode { KEY_MODE_UE_ADDR } else { 0 };
            let c = GuardConfig { antispoof_v6_prefix: prefix, key_mode, ..cfg() };
            prop_assert_eq!(names_ue(&src), names_ue_octets(&src));
            let want = if !names_ue_octets(&src) {
                None
            } else if ue_mode {
                Some((BIND_FTEID, (3u64 << 32) | 0x1f00))
            } else if family == FAMILY_IPV4 {
                Some((BIND_V4, u64::from(u32::from_ne_bytes([a[0], a[1], a[2], a[3]]))))
            } else {
                Some((BIND_V6, v6_prefix_octets(&c, &a)))
            };
            prop_assert_eq!(binding_of(&c, &src, 3, 0x1f00), want);
            prop_assert_eq!(v6_prefix(&c, &src), v6_prefix_octets(&c, &a));
        }
    }
}

/// An over-limit reading claims by stage; every per-packet signal (no per-device gap) claims only
/// the upper half, whatever the device's stage.
#[test]
fn each_event_kind_claims_its_share_of_the_budget() {
    use crate::abi::{
        EVENT_ECHO_LIMITED, EVENT_ERR_IND_LIMITED, EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, STAGE_QUARANTINE,
    };
    let rate = Limit::per_second(20_000, 2_000);
    let cfg = GuardConfig { event_rate: rate, ..Default::default() };
    assert_eq!(event_claim(&cfg, EVENT_DEVICE_OVER_LIMIT, STAGE_OBSERVE), rate);
    for stage in [STAGE_SHAPE, STAGE_QUARANTINE, STAGE_STRICT] {
        assert_eq!(event_claim(&cfg, EVENT_DEVICE_OVER_LIMIT, stage), rate.half_burst(), "stage {stage}");
    }
    for kind in [EVENT_NEW_DEVICE_LIMITED, EVENT_SPOOF, EVENT_ECHO_LIMITED, EVENT_ERR_IND_LIMITED] {
        for stage in [STAGE_OBSERVE, STAGE_SHAPE] {
            assert_eq!(event_claim(&cfg, kind, stage), rate.half_burst(), "kind {kind} stage {stage}");
        }
    }
}
