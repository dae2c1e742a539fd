//! What a stage lets a device through (`ladder::stage_limit`): the ladder's rates, and for a group
//! member its group's declared rate at shape and the same fraction of it at strict that the
//! ladder's strict rate is of its shape rate. Written for mutants `cargo xtask mutants --scope
//! engine` showed surviving (issue 24).

use guard_common::abi::{STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};

use guard_common::abi::{ByteLimit, DeviceKey, STAGE_OBSERVE};

use super::ladder::{stage_bytes, stage_limit, step, ttl_ns, Wants};
use super::track::Track;
use crate::config::{Config, Dur, GroupSection, Rate, TeidRange};
use guard_common::units::BitRate;

fn with_group(expected_pps: f64, expected_burst: Option<u64>) -> Config {
    let mut c = Config::default();
    c.ladder.shape.rate_pps = 100;
    c.ladder.shape.burst = 200;
    c.ladder.strict.rate_pps = 10;
    c.ladder.strict.burst = 20;
    c.groups = vec![GroupSection {
        name: "meters".into(),
        id: 1,
        teids: vec![TeidRange { first: 1, last: 100 }],
        ue_prefixes: vec![],
        expected_pps: Some(expected_pps),
        expected_period: None,
        expected_burst,
        servers: vec![],
        exempt: false,
    }];
    c
}

#[test]
fn a_device_outside_groups_gets_the_ladders_rates() {
    let c = with_group(2.0, None);
    let (shape, pps) = stage_limit(&c, STAGE_SHAPE, None);
    assert_eq!((shape.rate_per_sec(), shape.burst(), pps), (100, 200, 100.0));
    let (strict, pps) = stage_limit(&c, STAGE_STRICT, None);
    assert_eq!((strict.rate_per_sec(), strict.burst(), pps), (10, 20, 10.0));
    assert_eq!(stage_limit(&c, STAGE_QUARANTINE, None).1, 0.0, "quarantine lets nothing through");
}

#[test]
fn a_group_member_is_held_to_its_groups_rate_and_the_strict_fraction_of_it() {
    let c = with_group(2.0, Some(6));
    let (shape, pps) = stage_limit(&c, STAGE_SHAPE, Some(0));
    assert_eq!((pps, shape.burst()), (2.0, 6));
    assert_eq!(shape.interval_ns, 500_000_000, "2 pps");
    // Strict is 10/100 of shape on the ladder: 0.2 pps, and the burst scaled alike (6 × 20/200,
    // at least one packet).
    let (strict, pps) = stage_limit(&c, STAGE_STRICT, Some(0));
    assert!((pps - 0.2).abs() < 1e-9, "{pps}");
    assert_eq!((strict.interval_ns, strict.burst()), (5_000_000_000, 1));
    let c = with_group(2.0, Some(60));
    assert_eq!(stage_limit(&c, STAGE_STRICT, Some(0)).0.burst(), 6);
    let c = with_group(2.0, None);
    assert_eq!(stage_limit(&c, STAGE_STRICT, Some(0)).0.burst(), 20, "no declared burst: the ladder's");
}

/// A device staged for a volume flood, warm, with a learned byte profile of `bits` per second.
fn volume_track(cfg: &Config, bits: f64) -> Track {
    let mut t = Track::default();
    t.stage.volume = true;
    t.base.bits_mean = bits;
    t.base.learned_ms = super::stamp::ms(cfg.classify.warmup.0) + 1000;
    t
}

#[test]
fn a_volume_flood_is_shaped_to_its_byte_profile_and_held_strict_at_the_ladders_fraction() {
    let mut c = with_group(2.0, None);
    c.dataplane.observe.rate = Rate::NONE;
    let t = volume_track(&c, 1_000_000.0);
    let shape = stage_bytes(&c, STAGE_SHAPE, &t);
    assert_eq!((shape.bits_per_sec(), shape.burst_bytes()), (1_000_000, 125_000), "one second of the rate");
    let strict = stage_bytes(&c, STAGE_STRICT, &t);
    assert_eq!(strict.bits_per_sec(), 100_000, "strict is 10/100 of shape on this ladder");
    c.ladder.strict.burst_bytes = 4_000;
    assert_eq!(stage_bytes(&c, STAGE_STRICT, &t).burst_bytes(), 4_000, "a configured burst");
    // A configured ladder rate wins over the profile, for every device.
    c.ladder.shape.rate = Rate(BitRate(5_000_000));
    assert_eq!(stage_bytes(&c, STAGE_SHAPE, &Track::default()).bits_per_sec(), 5_000_000);
    assert!(stage_bytes(&c, STAGE_QUARANTINE, &t).is_unlimited());
    let mut not_volume = t;
    not_volume.stage.volume = false;
    assert!(stage_bytes(&c, STAGE_STRICT, &not_volume).is_unlimited(), "packets only, as before byte limits");
}

/// Restored after a restart with no byte profile yet: the stage's own byte rate, taken back to its
/// shape level, so neither a refresh nor an escalation lifts the cut.
#[test]
fn a_restored_volume_stage_keeps_its_rate_through_refresh_and_escalation() {
    let mut c = with_group(2.0, None);
    c.dataplane.observe.rate = Rate::NONE;
    let mut t = Track::default();
    t.stage.volume = true;
    t.stage.stage = STAGE_STRICT;
    t.stage.bytes = ByteLimit::bits_per_second(100_000, 12_500);
    assert!(!t.byte_profile(&c).is_finite(), "not warm, no ceiling: no profile");
    assert_eq!(stage_bytes(&c, STAGE_SHAPE, &t).bits_per_sec(), 1_000_000, "strict's rate back at shape");
    assert_eq!(stage_bytes(&c, STAGE_STRICT, &t).bits_per_sec(), 100_000, "a strict refresh keeps it");
    t.stage.stage = STAGE_SHAPE;
    t.stage.bytes = ByteLimit::bits_per_second(1_000_000, 125_000);
    assert_eq!(stage_bytes(&c, STAGE_STRICT, &t).bits_per_sec(), 100_000, "escalated from shape");
}

#[test]
fn each_stage_lasts_its_own_ttl() {
    let mut c = Config::default();
    c.ladder.shape.ttl = Dur::secs(31);
    c.ladder.strict.ttl = Dur::secs(62);
    c.ladder.quarantine.ttl = Dur::secs(93);
    assert_eq!(ttl_ns(&c, STAGE_SHAPE), 31_000_000_000);
    assert_eq!(ttl_ns(&c, STAGE_STRICT), 62_000_000_000);
    assert_eq!(ttl_ns(&c, STAGE_QUARANTINE), 93_000_000_000);
}

/// An operator's pin holds until its expiry, and at its expiry the device is the engine's again.
#[test]
fn a_manual_pin_lapses_at_its_expiry() {
    let c = Config::default();
    let key = DeviceKey::teid(7);
    let mut t = Track::default();
    t.stage.manual = true;
    t.stage.stage = STAGE_QUARANTINE;
    t.stage.expires_ns = 10_000;
    let mut out = Vec::new();
    step(&c, &key, &mut t, 9_999, Wants::default(), &mut out);
    assert!(t.stage.manual && t.stage.stage == STAGE_QUARANTINE, "held before its expiry");
    step(&c, &key, &mut t, 10_000, Wants::default(), &mut out);
    assert!(!t.stage.manual && t.stage.stage == STAGE_OBSERVE, "lapsed at its expiry: {:?}", t.stage);
}

const SEC: u64 = 1_000_000_000;

/// A device shaped at time 0 (for `reason`), its window of `now` read with `rate` packets per
/// second (`dropped` of `packets` dropped by its stage).
fn shaped(reason: super::decision::Reason, now: u64, rate: f64, packets: u32, dropped: u32) -> Track {
    let mut t = Track::default();
    t.stage.stage = STAGE_SHAPE;
    t.stage.reason = reason;
    t.stage.expires_ns = now + 3600 * SEC;
    t.fresh_ms = super::stamp::ms(now);
    t.w.rate = rate;
    t.w.packets = packets;
    t.w.dropped = dropped;
    t
}

fn released(out: &[super::decision::Decision]) -> bool {
    out.iter().any(|d| matches!(d, super::decision::Decision::ReleaseDevice { .. }))
}

/// Quiet means at or below `release_ratio` of the profile (not above it): a device exactly at it
/// is released after the stage's quiet time; just above it, it is not.
#[test]
fn a_device_at_the_release_ratio_is_quiet() {
    use super::decision::Reason;
    let c = Config::default();
    let quiet = c.ladder.shape.quiet.0;
    // Not warm: the profile is the observe limit.
    let at = c.ladder.release_ratio * c.dataplane.observe.pps as f64;
    let key = DeviceKey::teid(9);
    let mut out = Vec::new();
    let mut t = shaped(Reason::Flood, quiet, at, 0, 0);
    step(&c, &key, &mut t, quiet, Wants::default(), &mut out);
    assert!(released(&out), "at the release ratio: quiet, released after {quiet} ns: {out:?}");
    let mut out = Vec::new();
    let mut t = shaped(Reason::Flood, quiet, at * 1.01, 0, 0);
    step(&c, &key, &mut t, quiet, Wants::default(), &mut out);
    assert!(!released(&out), "above it: noisy, kept");
}

/// A device isolated from a deviating cohort stays staged while it deviated within the last tick
/// (inclusive); a device staged for another reason is not kept by a deviation.
#[test]
fn a_cohort_deviation_keeps_only_a_cohort_stage_noisy() {
    use super::decision::Reason;
    let c = Config::default();
    let quiet = c.ladder.shape.quiet.0;
    let tick = c.guard.tick.0;
    let key = DeviceKey::teid(9);
    for (reason, kept) in [(Reason::CohortDeviation, true), (Reason::Flood, false)] {
        let mut t = shaped(reason, quiet, 0.0, 0, 0);
        t.last_deviation_ms = super::stamp::ms(quiet - tick);
        let mut out = Vec::new();
        step(&c, &key, &mut t, quiet, Wants::default(), &mut out);
        assert_eq!(!released(&out), kept, "{reason:?}: {out:?}");
    }
    // A deviation older than a tick (by the times' unit, 1 ms) no longer keeps it.
    let mut t = shaped(Reason::CohortDeviation, quiet, 0.0, 0, 0);
    t.last_deviation_ms = super::stamp::ms(quiet - tick) - 1;
    let mut out = Vec::new();
    step(&c, &key, &mut t, quiet, Wants::default(), &mut out);
    assert!(released(&out), "{out:?}");
}

/// Containment counts active windows only: an idle window between two uncontained ones neither
/// resets the run nor adds to it.
#[test]
fn an_idle_window_does_not_break_a_run_of_uncontained_windows() {
    use super::decision::{Decision, Reason};
    let mut c = Config::default();
    c.ladder.strict.escalate_windows = 2;
    let key = DeviceKey::teid(9);
    let ratio = c.ladder.strict.escalate_drop_ratio;
    let busy = |now| shaped(Reason::Flood, now, 10_000.0, 1000, (1000.0 * ratio).ceil() as u32);
    let mut t = busy(SEC);
    let mut out = Vec::new();
    step(&c, &key, &mut t, SEC, Wants::default(), &mut out);
    assert_eq!(t.stage.uncontained, 1);
    // An idle window (no packets): the run stays at 1.
    t.fresh_ms = super::stamp::ms(2 * SEC);
    t.w = Default::default();
    step(&c, &key, &mut t, 2 * SEC, Wants::default(), &mut out);
    assert_eq!(t.stage.uncontained, 1, "an idle window says nothing");
    t.fresh_ms = super::stamp::ms(3 * SEC);
    t.w = busy(3 * SEC).w;
    out.clear();
    step(&c, &key, &mut t, 3 * SEC, Wants::default(), &mut out);
    assert!(
        out.iter().any(|d| matches!(d, Decision::SetDeviceStage { stage: STAGE_STRICT, .. })),
        "two uncontained windows: strict: {out:?}"
    );
}

/// A member of an exempt group is marked exempt (at observe, no limit) for the shape TTL, and the
/// mark is re-issued at half its TTL, keeping when it started.
#[test]
fn an_exempt_member_is_marked_and_the_mark_refreshed_at_half_its_ttl() {
    use super::decision::{Decision, Reason};
    use guard_common::abi::STAGE_FLAG_EXEMPT;
    let mut c = with_group(2.0, None);
    c.groups[0].exempt = true;
    c.groups[0].id = 7;
    let ttl = c.ladder.shape.ttl.0;
    let key = DeviceKey::teid(5);
    let mut t = Track::default();
    t.set_group(Some(0));
    let mut out = Vec::new();
    step(&c, &key, &mut t, SEC, Wants::default(), &mut out);
    let [Decision::SetDeviceStage { stage, flags, group, limit, ttl_ns, refresh, reason, .. }] = out.as_slice() else {
        panic!("one exempt mark: {out:?}");
    };
    assert_eq!((*stage, *flags, *group, *ttl_ns, *refresh), (STAGE_OBSERVE, STAGE_FLAG_EXEMPT, 7, ttl, false));
    assert!(limit.interval_ns == 0 && *reason == Reason::ExemptGroup);
    assert!(t.stage.exempt && t.stage.reason == Reason::ExemptGroup);
    assert_eq!((t.stage.since_ns, t.stage.expires_ns), (SEC, SEC + ttl));
    out.clear();
    step(&c, &key, &mut t, SEC + ttl / 2 - 1, Wants::default(), &mut out);
    assert!(out.is_empty(), "more than half the TTL left: {out:?}");
    step(&c, &key, &mut t, SEC + ttl / 2, Wants::default(), &mut out);
    assert!(matches!(out.as_slice(), [Decision::SetDeviceStage { refresh: true, .. }]), "{out:?}");
    assert_eq!((t.stage.since_ns, t.stage.expires_ns), (SEC, SEC + ttl / 2 + ttl), "since kept, expiry moved");
}

/// A stage is re-issued when half its TTL or less is left, not before.
#[test]
fn a_stage_is_refreshed_at_half_its_ttl() {
    use super::decision::{Decision, Reason};
    let c = Config::default();
    let ttl = c.ladder.shape.ttl.0;
    let key = DeviceKey::teid(9);
    let mut t = shaped(Reason::Flood, 0, 0.0, 0, 0);
    t.fresh_ms = 0;
    t.stage.since_ns = SEC;
    t.stage.expires_ns = SEC + ttl;
    let mut out = Vec::new();
    for now in [2 * SEC, SEC + ttl / 2 - 1] {
        t.stage.last_noisy_ns = now;
        step(&c, &key, &mut t, now, Wants::default(), &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    let now = SEC + ttl / 2;
    t.stage.last_noisy_ns = now;
    step(&c, &key, &mut t, now, Wants::default(), &mut out);
    assert!(matches!(out.as_slice(), [Decision::SetDeviceStage { refresh: true, stage: STAGE_SHAPE, .. }]), "{out:?}");
}

/// Stepping down after the quiet time keeps the reason the device was staged for (the stage is
/// still "for" that flood); the decision says Quiet with how long it was quiet.
#[test]
fn a_step_down_keeps_the_reason_and_reports_the_quiet_time() {
    use super::decision::{Decision, Reason};
    let c = Config::default();
    let quiet = c.ladder.strict.quiet.0;
    let key = DeviceKey::teid(9);
    let mut t = shaped(Reason::Flood, quiet, 0.0, 0, 0);
    t.stage.stage = STAGE_STRICT;
    let mut out = Vec::new();
    step(&c, &key, &mut t, quiet, Wants::default(), &mut out);
    let [Decision::SetDeviceStage { stage: STAGE_SHAPE, reason: Reason::Quiet, evidence, .. }] = out.as_slice() else {
        panic!("a step down to shape: {out:?}");
    };
    assert_eq!(evidence.quiet_s, Some(quiet as f64 / 1e9));
    assert_eq!(evidence.from_stage, Some(STAGE_STRICT));
    assert_eq!(t.stage.reason, Reason::Flood, "the stage is still for the flood");
}

/// A cohort member is shaped by bytes too only when it deviates in volume; one that deviates in
/// its period or destinations, or a device staged as chatty whatever it deviates in, is shaped
/// by packets alone.
#[test]
fn only_a_volume_deviation_of_a_cohort_member_stages_it_by_bytes() {
    use super::track::{DEV_DESTINATION, DEV_PERIOD, DEV_VOLUME};
    let c = Config::default();
    let key = DeviceKey::teid(10);
    let cohort = Wants { cohort: true, ..Wants::default() };
    let chatty = Wants { chatty: true, ..Wants::default() };
    for (wants, deviation, volume) in [
        (cohort, DEV_VOLUME, true),
        (cohort, DEV_VOLUME | DEV_PERIOD, true),
        (cohort, DEV_PERIOD, false),
        (cohort, DEV_DESTINATION | DEV_PERIOD, false),
        (chatty, DEV_VOLUME, false),
    ] {
        let mut t = Track { deviation, ..Track::default() };
        let mut out = Vec::new();
        step(&c, &key, &mut t, 10 * c.guard.tick.0, wants, &mut out);
        assert_eq!(t.stage.stage, STAGE_SHAPE, "{wants:?} {deviation}: {out:?}");
        assert_eq!(t.stage.volume, volume, "{wants:?} deviation {deviation}");
    }
}
