//! Engine behaviour on deterministic synthetic series, against the simulated data plane in
//! `sim.rs`. Each test asserts what an operator would check in the audit trail.

use std::collections::BTreeSet;

use guard_common::abi::{ByteLimit, Limit, STAGE_FLAG_MANUAL, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};

use super::sim::{cell_of, index_of, Rng, Sim};
use super::{Class, CurrentStage, Decision, Reason};
use crate::config::{Config, Dur, GroupSection};

const N: usize = 1000;

fn caps(sim: &Sim) -> Vec<(f64, &Decision)> {
    sim.decisions(|d| {
        matches!(d, Decision::SetCellCap { refresh: false, .. } | Decision::SetHostCap { refresh: false, .. })
    })
    .collect()
}

fn baselines(rng: &mut Rng, lo: f64, hi: f64) -> Vec<f64> {
    (0..N).map(|_| rng.range(lo, hi)).collect()
}

#[test]
fn flash_crowd_pins_no_device() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(1);
    let base = baselines(&mut rng, 10.0, 40.0);
    // 40% of devices rise 3-5x, each at its own time, for its own duration, flickering.
    let crowd: Vec<bool> = (0..N).map(|i| i % 5 < 2).collect();
    let factor: Vec<f64> = (0..N).map(|_| rng.range(3.0, 5.0)).collect();
    let start: Vec<f64> = (0..N).map(|_| rng.range(300.0, 390.0)).collect();
    let len: Vec<f64> = (0..N).map(|_| rng.range(120.0, 300.0)).collect();
    sim.run(900, |i, t, _| {
        let up = crowd[i] && t >= start[i] && t < start[i] + len[i] && rng.range(0.0, 1.0) < 0.8;
        rng.noisy(base[i] * if up { factor[i] } else { 1.0 }, 0.3)
    });
    assert!(sim.staged().is_empty(), "a flash crowd pinned devices: {:?}", sim.staged());
    assert!(caps(&sim).is_empty(), "a flash crowd raised a cap");
    let crowd_seen = sim
        .decisions(|d| matches!(d, Decision::Classified { class: Class::FlashCrowd, active: true, .. }))
        .next()
        .map(|(t, d)| (t, d.evidence().fraction));
    let (t, fraction) = crowd_seen.expect("the crowd is classified (and audited) as a flash crowd");
    assert!((300.0..420.0).contains(&t), "classified at {t}");
    assert!(fraction.is_some_and(|f| f >= 0.2), "{fraction:?}");
}

#[test]
fn synchronised_flood_pins_exactly_the_flooders_mildest_stage_first() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(2);
    let base = baselines(&mut rng, 1.0, 20.0);
    let flooders: BTreeSet<usize> = (0..N).filter(|i| i % 20 == 7).collect();
    assert_eq!(flooders.len(), 50, "5% of devices");
    // Half keep flooding whatever happens; half back off to just under the shape rate once shaped.
    let persistent = |i: usize| i % 40 == 7;
    sim.run(420, |i, t, stage| {
        if flooders.contains(&i) && t > 200.0 {
            if !persistent(i) && stage >= STAGE_SHAPE {
                return rng.noisy(90.0, 0.05);
            }
            return rng.noisy(2000.0, 0.1);
        }
        rng.noisy(base[i], 0.3)
    });
    assert_eq!(sim.staged(), flooders, "precision and recall must both be 100%");
    for &i in &flooders {
        let changes = sim.stage_changes(i);
        let stages: Vec<u32> = changes.iter().map(|c| c.1).collect();
        assert_eq!(changes[0].2, Reason::Flood, "device {i}: {changes:?}");
        if persistent(i) {
            assert_eq!(stages, vec![STAGE_SHAPE, STAGE_STRICT, STAGE_QUARANTINE], "device {i}: {changes:?}");
            assert!(changes[0].0 > 200.0 && changes[0].0 <= 207.0, "shaped promptly: {changes:?}");
            // Each rise needs the milder stage's failure, sustained.
            assert!(changes[1].0 - changes[0].0 >= 10.0 && changes[2].0 - changes[1].0 >= 30.0, "{changes:?}");
            assert!(changes[1..].iter().all(|c| c.2 == Reason::NotContained), "{changes:?}");
        } else {
            assert_eq!(stages, vec![STAGE_SHAPE], "a device the shape contains stays shaped: {changes:?}");
        }
    }
    let escalation = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { stage: 2, refresh: false, .. }))
        .next()
        .map(|(_, d)| d.evidence().drop_ratio);
    assert!(escalation.flatten().is_some_and(|r| r >= 0.5), "escalation carries its drop evidence");
    for (_, d) in sim.decisions(|d| matches!(d, Decision::SetDeviceStage { .. })) {
        if let Decision::SetDeviceStage { ttl_ns, .. } = d {
            assert!(*ttl_ns > 0 && *ttl_ns <= 600_000_000_000, "every stage has a finite TTL");
        }
    }
    assert_eq!(sim.lapses, 0, "stages the engine holds are refreshed before they expire");
    assert!(caps(&sim).is_empty(), "50 devices cannot raise a cell or host cap");
    let status = sim.engine.snapshot();
    assert_eq!(status.devices_per_stage[3], 25);
    assert!(status.classification.contains(&Class::Flood));
    assert_eq!(status.top_offenders[0].stage, STAGE_QUARANTINE);
}

/// Benign meters: a few packets every `period` s (±10%), random phase. Chatty devices behave the
/// same until 300 s, then send 300-500 packet bursts every 20 s ±30%, spread over one or two
/// windows, starting together.
#[test]
fn chatty_devices_with_jittered_timing_are_shaped_and_meters_are_not() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(3);
    let chatty: BTreeSet<usize> = (0..N).filter(|i| i % 10 == 3).collect();
    let mut next: Vec<f64> = (0..N).map(|_| rng.range(0.0, 60.0)).collect();
    let mut carry = vec![0u64; N];
    let mut switched = vec![false; N];
    sim.run(900, |i, t, _| {
        let mut n = std::mem::take(&mut carry[i]);
        if chatty.contains(&i) && t >= 300.0 && !switched[i] {
            switched[i] = true;
            next[i] = 300.0 + rng.range(0.0, 2.0);
        }
        if t >= next[i] {
            if switched[i] {
                let burst = rng.range(300.0, 500.0) as u64;
                let now = if rng.range(0.0, 1.0) < 0.5 { burst } else { burst * 6 / 10 };
                carry[i] = burst - now;
                n += now;
                next[i] += 20.0 * rng.range(0.7, 1.3);
            } else {
                n += 3;
                next[i] += 60.0 * rng.range(0.9, 1.1);
            }
        }
        n
    });
    assert_eq!(sim.staged(), chatty, "exactly the chatty devices are shaped");
    for &i in &chatty {
        let first = sim.stage_changes(i)[0];
        assert_eq!((first.1, first.2), (STAGE_SHAPE, Reason::Chatty), "device {i}");
        assert!(first.0 < 300.0 + 6.0 * 26.0, "found within a few bursts: {first:?}");
    }
    let ev = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::Chatty, refresh: false, .. }))
        .map(|(_, d)| d.evidence().clone())
        .next()
        .expect("a chatty decision");
    assert!(ev.period_cv.is_some_and(|cv| cv <= 0.5) && ev.peak_ratio.is_some_and(|p| p >= 4.0), "{ev:?}");
    assert!(ev.period_s.is_some_and(|p| (12.0..=28.0).contains(&p)), "{ev:?}");
    assert!(
        sim.decisions(|d| matches!(d, Decision::Classified { class: Class::Chatty, active: true, .. })).count() >= 1
    );
}

#[test]
fn lock_step_chatty_devices_are_caught_sooner_than_jittered_ones() {
    // 100 devices burst in the same window every 20 s: synchronised onsets let the engine act on
    // the third burst instead of the fourth.
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(11);
    let mut next: Vec<f64> = (0..N).map(|_| rng.range(0.0, 60.0)).collect();
    sim.run(420, |i, t, _| {
        if i % 10 == 3 && t > 300.0 {
            return if (t as u64 - 301) % 20 == 0 { 400 } else { 0 };
        }
        if t >= next[i] {
            next[i] += 60.0 * rng.range(0.9, 1.1);
            return 3;
        }
        0
    });
    let chatty: BTreeSet<usize> = (0..N).filter(|i| i % 10 == 3).collect();
    assert_eq!(sim.staged(), chatty);
    for &i in &chatty {
        let first = sim.stage_changes(i)[0];
        assert_eq!(first.2, Reason::Chatty);
        assert!(first.0 <= 342.0, "third burst ends at 342, found at {}", first.0);
    }
    let ev = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::Chatty, refresh: false, .. }))
        .map(|(_, d)| d.evidence().clone())
        .next()
        .expect("a chatty decision");
    assert!(ev.synced_fraction.is_some_and(|f| f >= 0.5) && ev.bursts == Some(3), "{ev:?}");
}

#[test]
fn ten_devices_at_full_speed_cannot_raise_a_cell_or_host_stage() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(4);
    let base = baselines(&mut rng, 1.0, 20.0);
    // Ten devices of cell 0 (i % 10 == 0) at a million packets per second each: 10 Mpps, a
    // hundred times the cell's capacity and five times the host's.
    let ten: BTreeSet<usize> = (0..100).step_by(10).collect();
    sim.run(600, |i, t, _| if ten.contains(&i) && t > 150.0 { 1_000_000 } else { rng.noisy(base[i], 0.3) });
    assert!(caps(&sim).is_empty(), "ten devices raised a cap: {:?}", caps(&sim));
    assert_eq!(sim.staged(), ten, "the ten devices themselves are dealt with");
    assert!(ten.iter().all(|&i| sim.live_stage(i) == STAGE_QUARANTINE));
}

fn cell_cap_config() -> Config {
    let mut cfg = Config::default();
    cfg.capacity.cell.capacity_pps = 50_000;
    cfg.capacity.cell.cap_pps = 50_000;
    cfg.validate().expect("valid");
    cfg
}

#[test]
fn device_stages_that_hold_the_cell_keep_the_cell_cap_off() {
    // 300 devices at 1000 pps: 300 kpps offered, six times the cell's capacity, but shaped to
    // 100 pps each the cell is back within capacity: no cell stage.
    let mut sim = Sim::new(cell_cap_config(), N, 1);
    let mut rng = Rng(5);
    let base = baselines(&mut rng, 1.0, 10.0);
    sim.run(400, |i, t, _| if i % 10 < 3 && t > 150.0 { rng.noisy(1000.0, 0.1) } else { rng.noisy(base[i], 0.3) });
    assert_eq!(sim.staged().len(), 300);
    assert!(caps(&sim).is_empty(), "device stages sufficed, yet: {:?}", caps(&sim));
}

#[test]
fn many_devices_raise_the_cell_cap_only_after_device_stages_fail() {
    // 600 devices at 150 pps: each is 15x its profile (so shaped) but the shape (100 pps) holds
    // only a third of it back, so the cell stays at 60 kpps + background > 50 kpps capacity.
    let mut sim = Sim::new(cell_cap_config(), N, 1);
    let mut rng = Rng(6);
    let base = baselines(&mut rng, 1.0, 10.0);
    sim.run(400, |i, t, _| if i % 10 < 6 && t > 150.0 { rng.noisy(150.0, 0.05) } else { rng.noisy(base[i], 0.3) });
    assert_eq!(sim.staged().len(), 600);
    let cell_caps: Vec<(f64, &Decision)> = caps(&sim);
    assert_eq!(cell_caps.len(), 1, "{cell_caps:?}");
    let (t_cap, cap) = cell_caps[0];
    let Decision::SetCellCap { cell, evidence, .. } = cap else { panic!("expected a cell cap, got {cap:?}") };
    assert_eq!(*cell, cell_of(0));
    // The cap comes only after enough devices were staged, and after the sustain window.
    let mut staged_at: Vec<f64> = (0..N).filter_map(|i| sim.stage_changes(i).first().map(|c| c.0)).collect();
    staged_at.sort_by(f64::total_cmp);
    let min_offenders = sim.cfg.capacity.cell.min_offenders as usize;
    let sustain = f64::from(sim.cfg.capacity.sustain_windows);
    assert!(t_cap >= staged_at[min_offenders - 1] + sustain - 1.0, "cap at {t_cap}, staged {:?}", &staged_at[..3]);
    assert!(evidence.offenders.is_some_and(|o| o >= min_offenders as u64), "{evidence:?}");
    assert!(evidence.demand_pps.is_some_and(|d| d > 50_000.0), "{evidence:?}");
    assert!(sim.decisions(|d| matches!(d, Decision::SetCellCap { refresh: true, .. })).count() > 0, "cap is refreshed");
}

#[test]
fn stages_release_after_the_quiet_period_and_not_before() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(7);
    let base = baselines(&mut rng, 1.0, 20.0);
    let flooders: BTreeSet<usize> = (0..N).filter(|i| i % 20 == 7).collect();
    // Ten of them keep misbehaving once in a while after the flood: one loud window every 90 s.
    let relapsing = |i: usize| i % 200 == 7;
    // Short enough that the shape holds them (confirmed by volume after a second or two, they
    // are not shaped long enough to escalate for not being contained).
    let flood_end = 207.0;
    sim.run(600, |i, t, _| {
        let flood = t > 200.0 && t <= flood_end;
        let relapse = t > flood_end && (t as u64) % 90 == 0;
        if flooders.contains(&i) && (flood || (relapsing(i) && relapse)) {
            return rng.noisy(2000.0, 0.1);
        }
        rng.noisy(base[i], 0.3)
    });
    let quiet = sim.cfg.ladder.shape.quiet.as_secs_f64();
    for &i in &flooders {
        let changes = sim.stage_changes(i);
        assert_eq!(changes[0].1, STAGE_SHAPE, "device {i}: {changes:?}");
        let release = changes.iter().find(|c| c.1 == 0);
        if relapsing(i) {
            assert!(release.is_none(), "device {i} kept relapsing but was released: {changes:?}");
            assert_eq!(sim.live_stage(i), STAGE_SHAPE);
        } else {
            let release = release.unwrap_or_else(|| panic!("device {i} never released: {changes:?}"));
            assert!(release.0 >= flood_end + quiet, "device {i} released early: {changes:?}");
            assert!(release.0 <= flood_end + quiet + 2.0, "device {i} released late: {changes:?}");
            assert_eq!(release.2, Reason::Quiet);
        }
    }
    let refreshes = sim.decisions(Decision::is_refresh).count();
    assert!(refreshes >= 50 * 3, "stages are re-issued while held ({refreshes})");
    assert_eq!(sim.lapses, 0);
    assert!(sim.staged().is_subset(&flooders));
}

#[test]
fn manual_pins_are_never_changed_by_the_engine() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(8);
    let base = baselines(&mut rng, 1.0, 20.0);
    let far = sim.now + 7200 * 1_000_000_000;
    let mut restored: Vec<CurrentStage> = (0..10)
        .map(|i| CurrentStage {
            key: sim.devs[i].key,
            stage: if i < 5 { STAGE_QUARANTINE } else { STAGE_SHAPE },
            flags: STAGE_FLAG_MANUAL,
            limit: Limit::per_second(50, 50),
            bytes: ByteLimit::UNLIMITED,
            expires_ns: far,
            reason: Reason::Operator.code(),
        })
        .collect();
    // And one stage the engine itself had set before a restart, on a device that is now normal.
    restored.push(CurrentStage {
        key: sim.devs[20].key,
        stage: STAGE_SHAPE,
        flags: 0,
        limit: Limit::per_second(100, 200),
        bytes: ByteLimit::UNLIMITED,
        expires_ns: sim.now + 60_000_000_000,
        reason: Reason::Flood.code(),
    });
    sim.restore(&restored);
    // Devices 0-2 and 5-7 (pinned) flood, 8-9 are silent, 30 floods and is pinned by an operator
    // at 260 s after the engine has escalated it.
    let floods = |i: usize| matches!(i, 0..=2 | 5..=7 | 30);
    sim.run(260, |i, t, _| {
        if floods(i) && t > 100.0 {
            5000
        } else if i == 8 || i == 9 {
            0
        } else {
            rng.noisy(base[i], 0.3)
        }
    });
    assert!(sim.live_stage(30) >= STAGE_STRICT, "the engine escalated device 30 before the pin");
    let pinned_at = sim.now;
    sim.pin(30, STAGE_SHAPE, Limit::per_second(1000, 1000));
    sim.run(400, |i, t, _| {
        if floods(i) && t > 100.0 {
            5000
        } else if i == 8 || i == 9 {
            0
        } else {
            rng.noisy(base[i], 0.3)
        }
    });

    assert!(sim.manual_violations.is_empty(), "engine touched manual pins: {:#?}", sim.manual_violations);
    for i in 0..10 {
        assert!(sim.stage_changes(i).is_empty(), "device {i} is manual");
    }
    let after_pin = sim.log.iter().filter(|(t, d)| *t > pinned_at && d.target() == "teid:0x0000001f").count();
    assert_eq!(after_pin, 0, "no decision about device 30 after the operator pinned it");
    assert_eq!(sim.live_stage(30), STAGE_SHAPE, "the operator's stage stands");
    // The restored engine stage is managed: released after its quiet period.
    let changes = sim.stage_changes(20);
    assert_eq!(changes.first().map(|c| (c.1, c.2)), Some((0, Reason::Quiet)), "{changes:?}");
    assert_eq!(sim.engine.snapshot().manual_pins, 11);
}

/// `guard device release` writes a manual stage-0 entry; the controller hands what the map holds
/// to `Engine::sync_manual` every tick. A released flooder gets no decision while the release
/// stands, and is staged again once the operator removes it.
#[test]
fn a_release_seen_in_the_map_keeps_the_engine_off_until_it_is_gone() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(9);
    let base = baselines(&mut rng, 1.0, 20.0);
    let mut offered = |i: usize, t: f64, _: u32| if i == 30 && t > 100.0 { 5000 } else { rng.noisy(base[i], 0.3) };
    sim.run(200, &mut offered);
    assert!(sim.live_stage(30) > 0, "the flood was staged before the release");
    let key = sim.devs[30].key;
    let release = CurrentStage {
        key,
        stage: 0,
        flags: STAGE_FLAG_MANUAL,
        bytes: ByteLimit::UNLIMITED,
        limit: Limit::UNLIMITED,
        expires_ns: sim.now + 3600 * 1_000_000_000,
        reason: 0,
    };
    sim.engine.sync_manual(std::slice::from_ref(&release), sim.now);
    let released_at = sim.now;
    for _ in 0..300 {
        sim.engine.sync_manual(std::slice::from_ref(&release), sim.now);
        sim.run(1, &mut offered);
    }
    let during = sim.log.iter().filter(|(t, d)| *t > released_at && d.target() == "teid:0x0000001f").count();
    assert_eq!(during, 0, "no decision about a released device while the release stands");
    assert_eq!(sim.engine.snapshot().manual_pins, 1, "the engine counts the release as an operator override");
    // The operator unpins the release: the map no longer holds it, the engine takes over again.
    sim.engine.sync_manual(&[], sim.now);
    let unpinned_at = sim.now;
    sim.run(60, &mut offered);
    let restaged = sim.log.iter().any(|(t, d)| {
        *t > unpinned_at && matches!(d, Decision::SetDeviceStage { key: k, stage, .. } if *k == key && *stage > 0)
    });
    assert!(restaged, "after the release is gone the flood is staged again");
    assert_eq!(sim.engine.snapshot().manual_pins, 0);
}

#[test]
fn bulk_misprovisioned_group_is_flagged_as_a_cohort() {
    let mut cfg = Config::default();
    cfg.groups.push(GroupSection {
        name: "meters".into(),
        id: 7,
        teids: vec!["1-200".parse().expect("range")],
        ue_prefixes: vec![],
        expected_pps: Some(2.0 / 60.0),
        expected_period: Some(Dur::secs(60)),
        expected_burst: Some(2),
        servers: vec!["198.51.100.10".parse().expect("prefix")],
        exempt: false,
    });
    cfg.validate().expect("valid");
    let mut sim = Sim::new(cfg, N, 10);
    let mut rng = Rng(9);
    let base = baselines(&mut rng, 5.0, 20.0);
    let mut next: Vec<f64> = (0..N).map(|_| rng.range(0.0, 60.0)).collect();
    let mut period = vec![60.0; N];
    let run = |sim: &mut Sim, ticks: u32, rng: &mut Rng, next: &mut Vec<f64>, period: &Vec<f64>| {
        sim.run(ticks, |i, t, _| {
            if i >= 200 {
                return rng.noisy(base[i], 0.3);
            }
            if t >= next[i] {
                next[i] += period[i] * rng.range(0.95, 1.05);
                return 2;
            }
            0
        })
    };
    run(&mut sim, 300, &mut rng, &mut next, &period);
    // One member goes astray on its own: a device problem, not a cohort.
    sim.devs[0].dst =
        "203.0.113.99".parse::<std::net::Ipv4Addr>().map(|a| guard_common::abi::L3Addr::v4(a.octets())).expect("ip");
    run(&mut sim, 100, &mut rng, &mut next, &period);
    assert_eq!(sim.decisions(|d| matches!(d, Decision::FlagCohort { .. })).count(), 0, "one member is not a cohort");
    // A bad provisioning push: every member at once gets a new server and a 10x shorter period.
    for i in 0..200 {
        sim.devs[i].dst = guard_common::abi::L3Addr::v4([203, 0, 113, 99]);
        period[i] = 6.0;
        next[i] = next[i].min(400.0 + rng.range(0.0, 6.0));
    }
    run(&mut sim, 300, &mut rng, &mut next, &period);

    let flags: Vec<(f64, &Decision)> = sim.decisions(|d| matches!(d, Decision::FlagCohort { .. })).collect();
    assert_eq!(flags.len(), 1, "{flags:?}");
    let (t, Decision::FlagCohort { group, devices, evidence, .. }) = flags[0] else { panic!("not a cohort flag") };
    assert_eq!(*group, 7);
    assert!((400.0..470.0).contains(&t), "flagged at {t}");
    assert!(devices.iter().all(|k| index_of(k) < 200), "only members are listed");
    assert!(
        evidence.devices.is_some_and(|n| n >= 60) && evidence.new_destinations.is_some_and(|n| n >= 5),
        "{evidence:?}"
    );
    // Members are isolated per profile (shaped to the group's expected rate); nobody else is.
    let isolated = sim.staged();
    assert!(isolated.len() >= 150 && isolated.iter().all(|&i| i < 200), "{} isolated", isolated.len());
    let first = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::CohortDeviation, .. }))
        .next()
        .map(|(_, d)| d.clone());
    let Some(Decision::SetDeviceStage { stage, limit, group, .. }) = first else { panic!("no cohort isolation") };
    assert_eq!((stage, group), (STAGE_SHAPE, 7));
    assert_eq!(limit.interval_ns, 30_000_000_000, "shaped to the group's 2 packets per minute");
    assert!(sim.engine.snapshot().flagged_groups.contains(&7));
    // Later the period change is visible too.
    let last_flag_view = sim.engine.snapshot();
    assert!(last_flag_view.classification.contains(&Class::Cohort));
}

#[test]
fn tracked_devices_are_bounded_and_staged_ones_survive_eviction() {
    let mut cfg = Config::default();
    cfg.guard.max_devices = 64;
    let mut sim = Sim::new(cfg, 200, 4);
    sim.sample_active_only = true;
    let mut rng = Rng(10);
    // Device 3 floods and is staged; 200 devices take turns to be active (only a window each).
    sim.run(300, |i, t, _| {
        if i == 3 && t > 150.0 {
            return 3000;
        }
        if (t as usize) % 200 == i {
            rng.noisy(5.0, 0.3)
        } else {
            0
        }
    });
    let st = sim.engine.snapshot();
    assert!(st.tracked_devices <= 64, "{st:?}");
    assert!(st.evicted_devices > 0);
    assert!(sim.live_stage(3) >= STAGE_SHAPE && sim.engine.stage_of(&sim.devs[3].key).is_some_and(|s| s > 0));
}

/// Over `max_devices` with no track known gone (every tick here reads the whole map, a full
/// pass): a new device the walk only read is not tracked (no evidence yet; the next walk reads
/// it again), while one that reports itself over its limit (an event) makes room among the least
/// recently active, the oldest first, never a staged one however idle, and never itself.
#[test]
fn making_room_evicts_the_least_recently_active_unstaged_devices() {
    use super::DeviceSample;
    use guard_common::abi::{DeviceKey, Event, EVENT_DEVICE_OVER_LIMIT};
    let mut cfg = Config::default();
    cfg.guard.max_devices = 32;
    let mut engine = super::Engine::new(&cfg);
    let sample = |i: u32| DeviceSample { key: DeviceKey::teid(i), packets: 1, teid: i, ..DeviceSample::default() };
    let sec = 1_000_000_000u64;
    // Devices 0..32 read together, then each sends once more, one second after the last, so
    // device 0 was active longest ago; device 0 is pinned by an operator.
    let all: Vec<DeviceSample> = (0..32).map(sample).collect();
    let _ = engine.tick(sec, &all, &[]);
    for i in 0..32u32 {
        let mut now: Vec<DeviceSample> = (0..32).map(sample).collect();
        for s in now.iter_mut().take(i as usize + 1) {
            s.packets = 2;
        }
        let _ = engine.tick(sec * u64::from(i + 2), &now, &[]);
    }
    engine.pin_manual(DeviceKey::teid(0), STAGE_QUARANTINE, Limit::default(), sec * 3600, sec * 34);
    let read: Vec<DeviceSample> =
        (0..32).map(|i| DeviceSample { packets: 2, ..sample(i) }).chain([sample(100)]).collect();
    let over = |i: u32| Event {
        ts_ns: sec * 40,
        kind: EVENT_DEVICE_OVER_LIMIT,
        device: DeviceKey::teid(i),
        packets: 5000,
        over_limit: 4000,
        ..Event::default()
    };
    let _ = engine.tick_pass(sec * 40, &read, &[over(101), over(102)], super::Pass::Changed);
    let tracked = |i: u32| engine.tracks.get(&DeviceKey::teid(i)).is_some();
    assert!(!tracked(100), "a new device only read waits for room");
    assert!(tracked(101) && tracked(102), "a new device over its limit is tracked");
    assert!(tracked(0), "a staged device is never evicted");
    assert!(!tracked(1) && !tracked(2), "the two least recently active unstaged devices make room");
    assert!((3..32).all(tracked), "every other device stays");
    let st = engine.snapshot();
    assert_eq!((st.evicted_devices, st.untracked_readings), (2, 1));
}

#[test]
fn over_limit_events_stand_in_for_unread_devices() {
    use guard_common::abi::{DeviceKey, Event, L3Addr, EVENT_DEVICE_OVER_LIMIT};
    let cfg = Config::default();
    let mut engine = super::Engine::new(&cfg);
    let key = DeviceKey::teid(42);
    let cell = L3Addr::v4([192, 0, 2, 1]);
    let mut decisions = Vec::new();
    // Only ring-buffer events, one per second, carrying cumulative counters of a 5000 pps flood.
    for s in 1..=10u64 {
        let now = 1_000_000_000_000 + s * 1_000_000_000;
        let ev = Event {
            ts_ns: now,
            kind: EVENT_DEVICE_OVER_LIMIT,
            device: key,
            cell,
            packets: s * 5000,
            over_limit: s * 4800,
            ..Event::default()
        };
        decisions.extend(engine.tick(now, &[], &[ev]));
    }
    assert!(
        decisions.iter().any(|d| matches!(d, Decision::SetDeviceStage { stage: 1, reason: Reason::Flood, .. })),
        "{decisions:?}"
    );
}

/// The controller steps only the devices it read this tick and the notable ones
/// ([`super::Pass::Changed`]) while its walk of a large map is spread over ticks. On the same
/// traffic and the same readings (each device read every 5th tick; floods that persist or back
/// off, a relapsing device, chatty bursts, manual pins, idle devices, a flash crowd) every device decision and
/// classification is the one a full pass every tick takes, at the same tick (in any order within
/// the tick).
#[test]
fn changed_passes_take_the_same_device_decisions_as_full_passes() {
    fn scenario(full_pass_every: u32) -> Sim {
        let mut sim = Sim::new(Config::default(), N, 10);
        sim.read_slices = 5;
        sim.full_pass_every = full_pass_every;
        for i in [1, 2] {
            sim.pin(i, if i == 1 { STAGE_QUARANTINE } else { STAGE_SHAPE }, Limit::per_second(50, 50));
        }
        let mut rng = Rng(11);
        let base = baselines(&mut rng, 0.0, 20.0);
        let mut next: Vec<f64> = (0..N).map(|_| rng.range(0.0, 60.0)).collect();
        sim.run(900, |i, t, stage| {
            match i % 20 {
                // Floods from 200 s; half back off once shaped; one in ten relapses every 90 s.
                7 if t > 200.0 && t <= 260.0 => {
                    if i % 40 == 27 && stage >= STAGE_SHAPE {
                        rng.noisy(90.0, 0.05)
                    } else {
                        rng.noisy(2000.0, 0.1)
                    }
                }
                7 if i % 200 == 7 && (t as u64) % 90 == 0 => rng.noisy(2000.0, 0.1),
                // Meters (3 packets a minute), chatty from 300 s: 400-packet bursts every 60 s ±10%.
                13 if t >= next[i] => {
                    if t >= 300.0 {
                        next[i] = t + 60.0 * rng.range(0.9, 1.1);
                        400
                    } else {
                        next[i] += 60.0 * rng.range(0.9, 1.1);
                        3
                    }
                }
                13 => 0,
                // Idle devices and benign ones.
                _ if i % 3 == 0 => 0,
                // A flash crowd: most benign devices rise 3x from 700 s to 800 s.
                _ if (700.0..800.0).contains(&t) => rng.noisy(base[i] * 3.0, 0.2),
                _ => rng.noisy(base[i], 0.3),
            }
        });
        sim
    }
    let full = scenario(0);
    let changed = scenario(5);
    let device_log = |s: &Sim| -> Vec<String> {
        s.log
            .iter()
            .filter(|(_, d)| {
                matches!(
                    d,
                    Decision::SetDeviceStage { .. } | Decision::ReleaseDevice { .. } | Decision::Classified { .. }
                )
            })
            .map(|(t, d)| format!("{t} {d:?}"))
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect()
    };
    let (a, b) = (device_log(&full), device_log(&changed));
    assert!(
        full.staged().len() >= 100 && a.len() > 300,
        "the scenario exercises the ladder ({} decisions, {} staged)",
        a.len(),
        full.staged().len()
    );
    assert!(caps(&full).is_empty() && caps(&changed).is_empty(), "no caps: loads are out of this comparison");
    assert!(
        full.decisions(|d| matches!(d, Decision::Classified { class: Class::FlashCrowd, active: true, .. })).count()
            >= 1,
        "the scenario has a flash crowd, counted from devices a changed pass does not step"
    );
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!("decision {i} differs:\n full:    {:?}\n changed: {:?}", a.get(i), b.get(i));
    }
    assert_eq!(full.engine.snapshot(), changed.engine.snapshot(), "the same status");
    assert!(full.manual_violations.is_empty() && changed.manual_violations.is_empty());
}

/// Confirmation by volume: a flood of 2000 pps (10x the profile, 5 burst allowances a second)
/// is shaped after one second of readings, not five; a single burst of 1500 packets in a second
/// (under 4 allowances of 400) is not shaped, however steep; with `volume_bursts = 0` the flood
/// waits for `trigger_windows`.
#[test]
fn floods_are_confirmed_by_volume_and_single_bursts_are_not() {
    fn scenario(cfg: Config) -> Sim {
        let mut sim = Sim::new(cfg, 100, 4);
        sim.run(260, |i, t, _| match i {
            0..=4 if t > 200.0 => 2000,
            // One burst each: 1500 packets in one window, at 200 s (75x a 20 pps profile).
            5..=9 if (t - 200.0 - i as f64).abs() < 0.5 => 1500,
            _ => 20,
        });
        sim
    }
    let sim = scenario(Config::default());
    assert_eq!(sim.staged(), (0..5).collect(), "the floods, not the single bursts");
    for i in 0..5 {
        let (at, d) = sim
            .decisions(|d| matches!(d, Decision::SetDeviceStage { stage: 1, refresh: false, .. }))
            .find(|(_, d)| matches!(d, Decision::SetDeviceStage { key, .. } if index_of(key) == i))
            .expect("shaped");
        assert!(at > 200.0 && at <= 202.0, "device {i} shaped at {at}");
        let e = d.evidence();
        assert_eq!(d.reason(), Reason::Flood);
        assert!(e.flood_packets.is_some_and(|p| p >= 1600) && e.flood_s.is_some_and(|s| s >= 1.0), "{e:?}");
    }
    let mut off = Config::default();
    off.ladder.shape.volume_bursts = 0.0;
    let sim = scenario(off);
    assert_eq!(sim.staged(), (0..5).collect());
    let first = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { stage: 1, .. }))
        .map(|(t, _)| t)
        .fold(f64::MAX, f64::min);
    assert!(first >= 205.0, "without volume confirmation the flood needs 5 windows: shaped at {first}");
}

/// Between ticks, [`super::Engine::events_pass`] shapes a device as soon as an over-limit event
/// completes its flood evidence, and leaves for the tick what it does not use: other kinds of
/// events and the readings of staged devices.
#[test]
fn event_passes_pin_a_flood_between_ticks_and_leave_the_rest_for_the_tick() {
    use guard_common::abi::{DeviceKey, Event, L3Addr, EVENT_DEVICE_OVER_LIMIT, EVENT_SPOOF};
    let cfg = Config::default();
    let mut engine = super::Engine::new(&cfg);
    let (flooder, pinned) = (DeviceKey::teid(42), DeviceKey::teid(43));
    let cell = L3Addr::v4([192, 0, 2, 1]);
    let t0 = 1_000_000_000_000u64;
    engine.pin_manual(pinned, STAGE_SHAPE, Limit::per_second(10, 10), t0 + 3600 * 1_000_000_000, t0);
    let ev = |key, kind, at: u64, n: u64| Event {
        ts_ns: at,
        kind,
        device: key,
        cell,
        packets: n * 2000,
        over_limit: n * 1800,
        ..Event::default()
    };
    // A tick reads the flooder once, at rest.
    assert!(engine.tick(t0, &[], &[ev(flooder, EVENT_DEVICE_OVER_LIMIT, t0, 0)]).is_empty());
    // Its events, one per second (`event_gap`), arrive 0.4 s before the next tick each.
    let mut pinned_at = None;
    for s in 1..=3u64 {
        let at = t0 + s * 1_000_000_000 - 400_000_000;
        let mut events = vec![
            ev(flooder, EVENT_DEVICE_OVER_LIMIT, at, s),
            ev(pinned, EVENT_DEVICE_OVER_LIMIT, at, s),
            ev(flooder, EVENT_SPOOF, at, s),
        ];
        let was_staged = engine.stage_of(&flooder) == Some(STAGE_SHAPE);
        let d = engine.events_pass(at + 10_000_000, &mut events);
        // The pinned device's reading and the spoof event stay, and the flooder's once staged.
        let kept = |e: &Event| e.device == pinned || e.kind == EVENT_SPOOF || was_staged;
        assert_eq!(events.len(), 2 + usize::from(was_staged), "{events:?}");
        assert!(events.iter().all(kept), "{events:?}");
        if d.iter().any(
            |d| matches!(d, Decision::SetDeviceStage { key, stage: 1, reason: Reason::Flood, .. } if *key == flooder),
        ) {
            pinned_at.get_or_insert(s);
        }
        assert!(d.iter().all(|d| matches!(d, Decision::SetDeviceStage { key, .. } if *key == flooder)), "{d:?}");
        let tick = engine.tick(t0 + s * 1_000_000_000, &[], &events);
        assert!(
            !tick.iter().any(|d| matches!(d, Decision::SetDeviceStage { refresh: false, .. })),
            "the tick takes no second decision: {tick:?}"
        );
    }
    // The first event's window (0.6 s at 3333 pps) is over the trigger but carries 2000 packets,
    // under 4 allowances; the second completes 1.6 s and 4000 packets.
    assert_eq!(pinned_at, Some(2));
    assert_eq!(engine.stage_of(&flooder), Some(STAGE_SHAPE));
    assert_eq!(engine.stage_of(&pinned), Some(STAGE_SHAPE));
}

/// Stepping down: a device flooded up to quarantine, then back to normal, comes down one stage
/// at a time (quarantine → strict → shape → released), each step only after that stage's own
/// quiet period since the last noisy window or the previous step, and never lapses meanwhile.
#[test]
fn stages_step_down_one_at_a_time_after_each_quiet_period() {
    let mut cfg = Config::default();
    cfg.ladder.quarantine.quiet = Dur::secs(150);
    cfg.ladder.strict.quiet = Dur::secs(100);
    cfg.ladder.shape.quiet = Dur::secs(60);
    let n = 200;
    let mut sim = Sim::new(cfg, n, 10);
    let mut rng = Rng(12);
    let base = (0..n).map(|_| rng.range(1.0, 20.0)).collect::<Vec<_>>();
    let flooders = [7usize, 57, 107];
    let flood_end = 300.0;
    sim.run(700, |i, t, _| {
        if flooders.contains(&i) && t > 200.0 && t <= flood_end {
            return rng.noisy(2000.0, 0.1);
        }
        rng.noisy(base[i], 0.3)
    });
    let (q_quiet, s_quiet, sh_quiet) = (150.0, 100.0, 60.0);
    for &i in &flooders {
        let changes = sim.stage_changes(i);
        let stages: Vec<u32> = changes.iter().map(|c| c.1).collect();
        assert_eq!(
            stages,
            vec![STAGE_SHAPE, STAGE_STRICT, STAGE_QUARANTINE, STAGE_STRICT, STAGE_SHAPE, 0],
            "device {i} must come down one stage at a time: {changes:?}"
        );
        assert!(changes[3..].iter().all(|c| c.2 == Reason::Quiet), "device {i}: {changes:?}");
        // Each step waits for the quiet period of the stage it leaves: from the last noisy window
        // (the flood's end) for quarantine, from the previous step for the others.
        let steps = [
            (flood_end, changes[3].0, q_quiet),
            (changes[3].0, changes[4].0, s_quiet),
            (changes[4].0, changes[5].0, sh_quiet),
        ];
        for (from, at, quiet) in steps {
            assert!(
                at >= from + quiet && at <= from + quiet + 1.0,
                "device {i}: step at {at}, {quiet} s after {from}: {changes:?}"
            );
        }
        assert_eq!(sim.live_stage(i), 0, "device {i} released");
    }
    // The step-downs say which stage they came from.
    let from: Vec<Option<u32>> = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { reason: Reason::Quiet, refresh: false, .. }))
        .map(|(_, d)| d.evidence().from_stage)
        .collect();
    assert_eq!(from.iter().filter(|f| **f == Some(STAGE_QUARANTINE)).count(), flooders.len(), "{from:?}");
    assert_eq!(from.iter().filter(|f| **f == Some(STAGE_STRICT)).count(), flooders.len(), "{from:?}");
    assert_eq!(sim.lapses, 0, "stages held while stepping down are refreshed before they expire");
    assert_eq!(sim.staged(), flooders.into_iter().collect::<BTreeSet<_>>());
}

/// A volume flood: 2% of the devices keep their usual packet rate but send 1400-octet T-PDUs
/// instead of 100 (14x their octets). The engine has learned each device's byte profile beside
/// its packet profile; the flooders, and only they, are classified as a volume flood and shaped
/// (no byte rate is configured, so to their own byte profile), which cuts what they deliver to
/// the order of that profile; their packet rate alone would never have staged them.
#[test]
fn volume_flood_is_shaped_to_its_byte_profile_and_benign_devices_are_not() {
    let mut sim = Sim::new(Config::default(), N, 10);
    let mut rng = Rng(27);
    let base = baselines(&mut rng, 10.0, 40.0);
    let flooders: BTreeSet<usize> = (0..N).filter(|i| i % 50 == 9).collect();
    assert_eq!(flooders.len(), 20);
    sim.run(400, |i, _, _| rng.noisy(base[i], 0.3));
    assert!(sim.staged().is_empty(), "learning: nobody staged");
    for &i in &flooders {
        sim.size[i] = 1400;
    }
    let t_flood = sim.secs();
    sim.run(60, |i, _, _| rng.noisy(base[i], 0.3));
    let mid: Vec<u64> = sim.devs.iter().map(|d| d.passed_bytes).collect();
    sim.run(60, |i, _, _| rng.noisy(base[i], 0.3));
    assert_eq!(sim.staged(), flooders, "precision and recall must both be 100%");
    for &i in &flooders {
        let changes = sim.stage_changes(i);
        assert_eq!((changes[0].1, changes[0].2), (STAGE_SHAPE, Reason::VolumeFlood), "device {i}: {changes:?}");
        assert!(changes[0].0 > t_flood && changes[0].0 <= t_flood + 8.0, "shaped promptly: {changes:?}");
    }
    // The shape carries a byte rate: the device's byte profile (its packet rate x 100 octets x 8
    // bits, learned); its packet limit is the ladder's, far above the device's packet rate.
    let shapes: Vec<_> = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { stage: 1, refresh: false, .. }))
        .filter_map(|(_, d)| match d {
            Decision::SetDeviceStage { key, bytes, limit, reason: Reason::VolumeFlood, .. } => {
                Some((index_of(key), *bytes, *limit))
            }
            _ => None,
        })
        .collect();
    assert_eq!(shapes.len(), flooders.len());
    for (i, bytes, limit) in shapes {
        let profile = base[i] * 800.0;
        let b = bytes.bits_per_sec() as f64;
        assert!(b > 0.7 * profile && b < 1.3 * profile, "device {i}: byte rate {b} for a profile of {profile}");
        assert_eq!(limit.rate_per_sec(), Config::default().ladder.shape.rate_pps);
    }
    // Cut: over the last minute each flooder delivered at most its byte profile's worth (and
    // the stage escalates while it keeps pushing), against 14 times that offered.
    for &i in &flooders {
        let delivered_bps = (sim.devs[i].passed_bytes - mid[i]) as f64 * 8.0 / 60.0;
        assert!(delivered_bps < 1.2 * base[i] * 800.0, "device {i} delivered {delivered_bps} bit/s");
    }
    // Benign devices lost nothing.
    for i in (0..N).filter(|i| !flooders.contains(i)) {
        assert_eq!(sim.devs[i].dropped(), 0, "benign device {i}");
    }
}

/// A volume-flood stage found in the maps after a restart keeps its byte rate through every
/// refresh and escalation, although the restarted engine has no byte profile for the device yet
/// and no `dataplane.observe.rate` is configured: a refresh that wrote "no byte limit" would let
/// the flood through again the moment the controller restarted.
#[test]
fn a_restored_volume_flood_stage_keeps_its_byte_rate() {
    let mut sim = Sim::new(Config::default(), N, 10);
    assert!(Config::default().dataplane.observe.rate.is_none(), "the case this test is about");
    let mut rng = Rng(28);
    let base = baselines(&mut rng, 10.0, 40.0);
    let rate = ByteLimit::bits_per_second(base[9] as u64 * 800, 20_000);
    sim.restore(&[CurrentStage {
        key: sim.devs[9].key,
        stage: STAGE_SHAPE,
        flags: 0,
        limit: Limit::per_second(Config::default().ladder.shape.rate_pps, Config::default().ladder.shape.burst),
        bytes: rate,
        expires_ns: sim.now + 30_000_000_000,
        reason: Reason::VolumeFlood.code(),
    }]);
    // Device 9 keeps sending 1400-octet T-PDUs at its usual packet rate.
    sim.size[9] = 1400;
    sim.run(120, |i, _, _| rng.noisy(base[i], 0.3));
    let stages: Vec<(u32, ByteLimit)> = sim
        .decisions(|d| matches!(d, Decision::SetDeviceStage { .. }))
        .filter_map(|(_, d)| match d {
            // A quarantine drops everything: it has no rate to keep.
            Decision::SetDeviceStage { key, stage, bytes, .. } if index_of(key) == 9 && *stage < STAGE_QUARANTINE => {
                Some((*stage, *bytes))
            }
            _ => None,
        })
        .collect();
    // It is refreshed at shape, then escalated (the flood goes on at 14x its byte profile).
    assert!(stages.iter().any(|(s, _)| *s == STAGE_SHAPE), "{stages:?}");
    assert!(stages.iter().any(|(s, _)| *s == STAGE_STRICT), "{stages:?}");
    let strict = Config::default().ladder.strict.rate_pps as f64 / Config::default().ladder.shape.rate_pps as f64;
    for (stage, bytes) in &stages {
        assert!(!bytes.is_unlimited(), "stage {stage} written without a byte rate: {stages:?}");
        let want = rate.bits_per_sec() as f64 * if *stage == STAGE_STRICT { strict } else { 1.0 };
        let got = bytes.bits_per_sec() as f64;
        assert!((got - want).abs() <= 0.01 * want + 8.0, "stage {stage}: {got} bit/s, want {want}: {stages:?}");
    }
    assert!(sim.live_stage(9) >= STAGE_SHAPE, "still held");
    for i in (0..N).filter(|&i| i != 9) {
        assert_eq!(sim.devs[i].dropped(), 0, "benign device {i}");
    }
}

/// The status snapshot's top offenders: the highest stage first, then the highest ratio, and
/// devices tied on both (staged devices gone quiet, all at ratio 0) by key, whatever order the
/// engine holds them in; never more than `TOP_OFFENDERS`.
#[test]
fn the_top_offenders_break_ties_by_key_and_keep_the_top_ones() {
    use guard_common::abi::DeviceKey;
    let now = 10_000_000_000u64;
    let mut engine = super::Engine::new(&Config::default());
    let stage = |teid: u32, stage: u32| CurrentStage {
        key: DeviceKey::teid(teid),
        stage,
        flags: 0,
        limit: Limit::per_second(100, 100),
        bytes: ByteLimit::UNLIMITED,
        expires_ns: now + 3_600_000_000_000,
        reason: 0,
    };
    // 50 shaped devices in a scrambled order (37 is prime to 50), one quarantined among them.
    let mut staged: Vec<_> = (0..50u32).map(|i| stage(1000 + (i * 37) % 50, STAGE_SHAPE)).collect();
    staged.insert(20, stage(5000, STAGE_QUARANTINE));
    engine.restore(&staged, now);
    let top = engine.snapshot().top_offenders;
    let want: Vec<String> = std::iter::once(5000)
        .chain(1000..1000 + super::TOP_OFFENDERS as u32 - 1)
        .map(|t| super::render::device_key_str(&DeviceKey::teid(t)))
        .collect();
    assert_eq!(top.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), want);
    assert_eq!(top[0].stage, STAGE_QUARANTINE);
}
