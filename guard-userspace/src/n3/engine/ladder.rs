//! The per-device escalation ladder: observe → shape → strict → quarantine. A device enters at
//! the mildest stage; it rises only on evidence that the current stage is not containing it
//! (sustained drops); it steps down one stage after a quiet period (hysteresis). Manual pins are
//! never touched. Every stage the engine holds is re-issued before its TTL runs out, so a dead
//! controller's enforcement decays.

use guard_common::abi::{
    ByteLimit, DeviceKey, Limit, STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT,
};

use super::classify::device_evidence;
use super::decision::{Decision, Reason};
use super::track::Track;
use crate::config::Config;

/// The limit a stage applies to a device and the packets per second it lets through. Group
/// members are shaped to their group's declared rate, and held strict at the same fraction of
/// it that the ladder's strict rate is of its shape rate.
pub(super) fn stage_limit(cfg: &Config, stage: u32, group: Option<usize>) -> (Limit, f64) {
    let l = &cfg.ladder;
    let expected = group.and_then(|g| cfg.groups.get(g)).and_then(|g| g.expected_pps.map(|p| (p, g.expected_burst)));
    match (stage, expected) {
        (STAGE_SHAPE, None) => (Limit::per_second(l.shape.rate_pps, l.shape.burst), l.shape.rate_pps as f64),
        (STAGE_STRICT, None) => (Limit::per_second(l.strict.rate_pps, l.strict.burst), l.strict.rate_pps as f64),
        (STAGE_SHAPE, Some((pps, burst))) => (fractional(pps, burst.unwrap_or(l.shape.burst)), pps),
        (STAGE_STRICT, Some((pps, burst))) => {
            let f = l.strict.rate_pps as f64 / l.shape.rate_pps as f64;
            let burst = burst.map_or(l.strict.burst, |b| (b * l.strict.burst / l.shape.burst).max(1));
            (fractional(pps * f, burst), pps * f)
        }
        (STAGE_QUARANTINE, _) => (Limit::UNLIMITED, 0.0),
        _ => (Limit::UNLIMITED, f64::INFINITY),
    }
}

/// The byte rate a stage applies to a device beside its packet limit: the ladder's configured
/// one (`ladder.shape.rate`, `ladder.strict.rate`); failing that, for a device staged for a volume
/// flood, its own byte profile at shape ("shape to profile", as the packet rate is the profile's
/// order of magnitude) and the same fraction of it at strict that the strict packet rate is of
/// the shape's; otherwise none (packets only, as before byte limits). The burst is one second of
/// the rate unless configured.
pub(super) fn stage_bytes(cfg: &Config, stage: u32, t: &Track) -> ByteLimit {
    let l = &cfg.ladder;
    let (rate, burst, fraction) = match stage {
        STAGE_SHAPE => (l.shape.rate, l.shape.burst_bytes, 1.0),
        STAGE_STRICT => (l.strict.rate, l.strict.burst_bytes, l.strict.rate_pps as f64 / l.shape.rate_pps as f64),
        _ => return ByteLimit::UNLIMITED,
    };
    if !rate.is_none() {
        return rate.byte_limit(burst);
    }
    if !t.stage.volume {
        return ByteLimit::UNLIMITED;
    }
    let profile = t.byte_profile(cfg);
    let bps = if profile.is_finite() {
        profile * fraction
    } else if !t.stage.bytes.is_unlimited() {
        // No byte profile (a stage restored after a restart, the device not warm again yet, and
        // no `dataplane.observe.rate` ceiling): keep the rate the stage was set at, taken back to
        // its shape level, so that a refresh or an escalation never lifts the volume cut.
        let strict = l.strict.rate_pps as f64 / l.shape.rate_pps as f64;
        let now = t.stage.bytes.bits_per_sec() as f64;
        let at_shape = if t.stage.stage == STAGE_STRICT { now / strict } else { now };
        at_shape * fraction
    } else {
        return ByteLimit::UNLIMITED;
    };
    let bps = bps.max(8.0).round() as u64;
    ByteLimit::bits_per_second(bps, if burst == 0 { bps / 8 } else { burst })
}

/// A limit for rates that may be below one per second.
fn fractional(pps: f64, burst: u64) -> Limit {
    let interval = (1e9 / pps.max(1e-6)).min(u64::MAX as f64) as u64;
    Limit::per_interval(interval.max(1), burst)
}

pub(super) fn ttl_ns(cfg: &Config, stage: u32) -> u64 {
    match stage {
        STAGE_STRICT => cfg.ladder.strict.ttl.0,
        STAGE_QUARANTINE => cfg.ladder.quarantine.ttl.0,
        _ => cfg.ladder.shape.ttl.0,
    }
}

fn quiet_ns(cfg: &Config, stage: u32) -> u64 {
    match stage {
        STAGE_STRICT => cfg.ladder.strict.quiet.0,
        STAGE_QUARANTINE => cfg.ladder.quarantine.quiet.0,
        _ => cfg.ladder.shape.quiet.0,
    }
}

/// `(windows, drop ratio)` of uncontained evidence needed to leave `stage` for the next one.
fn escalation(cfg: &Config, stage: u32) -> Option<(u32, f64)> {
    match stage {
        STAGE_SHAPE => Some((cfg.ladder.strict.escalate_windows, cfg.ladder.strict.escalate_drop_ratio)),
        STAGE_STRICT => Some((cfg.ladder.quarantine.escalate_windows, cfg.ladder.quarantine.escalate_drop_ratio)),
        _ => None,
    }
}

/// What, besides the ladder itself, wants this device staged this window.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Wants {
    pub chatty: bool,
    /// Isolated as a member of a flagged cohort.
    pub cohort: bool,
}

/// Advance one device's ladder by one window; decisions go to `out`.
pub(super) fn step(cfg: &Config, key: &DeviceKey, t: &mut Track, now: u64, wants: Wants, out: &mut Vec<Decision>) {
    if t.stage.manual {
        if t.stage.expires_ns > now {
            return;
        }
        // The operator's pin lapsed: the device is back under engine management, at observe.
        t.stage = Default::default();
    }
    let group = t.group().and_then(|g| cfg.groups.get(g));
    let exempt_group = group.is_some_and(|g| g.exempt);
    if exempt_group {
        return step_exempt(cfg, key, t, now, out);
    }
    if t.stage.exempt {
        // No longer exempt (reconfigured): drop the mark, start from observe.
        t.stage = Default::default();
        out.push(Decision::ReleaseDevice {
            key: *key,
            reason: Reason::GroupChanged,
            evidence: device_evidence(t, cfg),
        });
    }
    if t.stage.stage == STAGE_OBSERVE {
        let reason = if t.flood_confirmed(cfg) {
            // Over its norm by volume alone (large packets at its usual packet rate): the
            // volume form of a flood, shaped by bytes too (`stage_bytes`).
            Some(if t.volume_flood(cfg) { Reason::VolumeFlood } else { Reason::Flood })
        } else if wants.chatty {
            Some(Reason::Chatty)
        } else if wants.cohort {
            Some(Reason::CohortDeviation)
        } else {
            None
        };
        if let Some(reason) = reason {
            enter(cfg, key, t, now, STAGE_SHAPE, reason, out);
        }
        return;
    }
    if t.fresh(now) {
        let noisy = t.ratio(cfg) > cfg.ladder.release_ratio
            || t.bursts.excessive_now
            || (t.stage.reason == Reason::CohortDeviation && t.deviating(now, cfg.guard.tick.0 + 1));
        if noisy {
            t.stage.last_noisy_ns = now;
        }
        // Containment: an active window whose drops stay high means the device keeps pushing
        // through the stage; a window with few drops means the stage holds it. Idle windows say
        // nothing either way (a chatty device is idle between bursts).
        if let Some((_, drop_ratio)) = escalation(cfg, t.stage.stage) {
            if t.w.packets > 0 {
                let r = f64::from(t.w.dropped) / f64::from(t.w.packets);
                t.stage.uncontained = if r >= drop_ratio { t.stage.uncontained.saturating_add(1) } else { 0 };
            }
        }
    }
    let stage = t.stage.stage;
    if let Some((windows, _)) = escalation(cfg, stage) {
        if t.stage.uncontained >= windows {
            return enter(cfg, key, t, now, stage + 1, Reason::NotContained, out);
        }
    }
    let quiet = quiet_ns(cfg, stage);
    let quiet_for = now.saturating_sub(t.stage.last_noisy_ns.max(t.stage.since_ns));
    if quiet_for >= quiet {
        let mut evidence = device_evidence(t, cfg);
        evidence.quiet_s = Some(quiet_for as f64 / 1e9);
        evidence.from_stage = Some(stage);
        if stage == STAGE_SHAPE {
            t.stage = Default::default(); // `volume` too
            t.reset_flood();
            out.push(Decision::ReleaseDevice { key: *key, reason: Reason::Quiet, evidence });
        } else {
            set(cfg, key, t, now, stage - 1, Reason::Quiet, false, evidence, out);
            t.stage.last_noisy_ns = now;
        }
        return;
    }
    refresh_if_due(cfg, key, t, now, out);
}

fn step_exempt(cfg: &Config, key: &DeviceKey, t: &mut Track, now: u64, out: &mut Vec<Decision>) {
    let ttl = cfg.ladder.shape.ttl.0;
    let refresh = t.stage.exempt;
    if refresh && t.stage.expires_ns.saturating_sub(now) > ttl / 2 {
        return;
    }
    let group = t.group().and_then(|g| cfg.groups.get(g)).map_or(0, |g| g.id);
    t.stage = super::track::StageState {
        exempt: true,
        reason: Reason::ExemptGroup,
        since_ns: if refresh { t.stage.since_ns } else { now },
        expires_ns: now.saturating_add(ttl),
        ..Default::default()
    }
    .into();
    out.push(Decision::SetDeviceStage {
        key: *key,
        stage: STAGE_OBSERVE,
        flags: STAGE_FLAG_EXEMPT,
        group,
        limit: Limit::UNLIMITED,
        bytes: ByteLimit::UNLIMITED,
        ttl_ns: ttl,
        refresh,
        reason: Reason::ExemptGroup,
        evidence: Default::default(),
    });
}

fn enter(cfg: &Config, key: &DeviceKey, t: &mut Track, now: u64, stage: u32, reason: Reason, out: &mut Vec<Decision>) {
    let mut evidence = device_evidence(t, cfg);
    evidence.from_stage = Some(t.stage.stage);
    if reason == Reason::NotContained {
        evidence.windows = Some(t.stage.uncontained);
    }
    set(cfg, key, t, now, stage, reason, false, evidence, out);
    t.stage.last_noisy_ns = now;
}

#[expect(clippy::too_many_arguments, reason = "one decision's full context; a struct would only rename it")]
fn set(
    cfg: &Config,
    key: &DeviceKey,
    t: &mut Track,
    now: u64,
    stage: u32,
    reason: Reason,
    refresh: bool,
    evidence: super::decision::Evidence,
    out: &mut Vec<Decision>,
) {
    let (limit, allowance) = stage_limit(cfg, stage, t.group());
    let ttl = ttl_ns(cfg, stage);
    if !refresh {
        t.stage.since_ns = now;
        t.stage.uncontained = 0;
        // A step down keeps the original reason: the stage is still "for" the flood or burst.
        if reason != Reason::Quiet {
            t.stage.reason = reason;
        }
        // A volume flood, a cohort member that deviates in volume, or a device chatty by volume
        // (few large packets per burst): shaped by bytes too, to its own byte profile
        // (`stage_bytes`), since its packet rate is what it always was and a packet limit alone
        // would let its bursts through.
        if reason == Reason::VolumeFlood
            || (reason == Reason::CohortDeviation && t.deviation & super::track::DEV_VOLUME != 0)
            || (reason == Reason::Chatty && t.burst_by_volume(cfg))
        {
            t.stage.volume = true;
        }
    }
    // The byte profile is not learned while the device is staged, so a refresh re-issues the
    // same byte rate (a reloaded configured rate takes effect).
    let bytes = stage_bytes(cfg, stage, t);
    t.stage.stage = stage;
    t.stage.limit = limit;
    t.stage.bytes = bytes;
    t.stage.allowance_pps = allowance;
    t.stage.expires_ns = now.saturating_add(ttl);
    let group = t.group().and_then(|g| cfg.groups.get(g)).map_or(0, |g| g.id);
    out.push(Decision::SetDeviceStage {
        key: *key,
        stage,
        flags: 0,
        group,
        limit,
        bytes,
        ttl_ns: ttl,
        refresh,
        reason,
        evidence,
    });
}

/// Re-issue the stage when less than half its TTL is left (the margin covers a missed tick).
fn refresh_if_due(cfg: &Config, key: &DeviceKey, t: &mut Track, now: u64, out: &mut Vec<Decision>) {
    let stage = t.stage.stage;
    if t.stage.expires_ns.saturating_sub(now) <= ttl_ns(cfg, stage) / 2 {
        let evidence = device_evidence(t, cfg);
        let reason = t.stage.reason;
        set(cfg, key, t, now, stage, reason, true, evidence, out);
    }
}
