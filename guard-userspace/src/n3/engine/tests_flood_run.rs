//! When a run of over-profile readings begins and what breaks it: the flood test's evidence
//! (`Track::update`, `Track::over_since`) as walks' readings and over-limit events interleave.

use guard_common::abi::{DeviceKey, Event, L3Addr, EVENT_DEVICE_OVER_LIMIT};

use super::{Decision, DeviceSample, Engine};
use crate::config::Config;

const MS: u64 = 1_000_000;
/// Some time after boot (the engine's times are CLOCK_MONOTONIC).
const T0: u64 = 1_000_000_000_000;
const TEID: u32 = 7;

fn cell() -> L3Addr {
    L3Addr::v4([192, 0, 2, 1])
}

/// A walk's reading of the device: its cumulative packets.
fn sample(packets: u64) -> DeviceSample {
    DeviceSample { key: DeviceKey::teid(TEID), cell: cell(), packets, teid: TEID, ..DeviceSample::default() }
}

/// The device's over-limit event raised at `at`, with its cumulative packets (all but its first
/// ten over its profile).
fn over_event(at: u64, packets: u64) -> Event {
    Event {
        ts_ns: at,
        kind: EVENT_DEVICE_OVER_LIMIT,
        device: DeviceKey::teid(TEID),
        cell: cell(),
        packets,
        over_limit: packets.saturating_sub(10),
        ..Event::default()
    }
}

/// Whether the decisions shape a device.
fn shaped(d: &[Decision]) -> bool {
    d.iter().any(|d| matches!(d, Decision::SetDeviceStage { stage: 1, .. }))
}

/// A reading a few tens of milliseconds after another (a walk slice read just after an event)
/// says nothing reliable about the rate: it neither breaks a run of over-profile readings nor
/// starts one. Here a 2000 pps flood is read at 0.6 s, then 50 ms later with no new packets
/// (the counters had not moved yet), then at 1.1 s: the run spans 1 s and 2000 packets from the
/// event at 0.1 s and confirms the flood; the 50 ms reading judged on its own (0 pps) would have
/// restarted it.
#[test]
fn a_short_reading_neither_breaks_nor_starts_a_flood_run() {
    let mut engine = Engine::new(&Config::default());
    let (t0, ms) = (T0, MS);
    let mut pass = |at: u64, packets: u64| engine.events_pass(at, &mut vec![over_event(at, packets)]);
    assert!(!shaped(&pass(t0, 0)));
    // 100 ms later, 200 packets: too short a window to start a run. An over-limit event, it
    // begins the next window (`Track::update`; a walk's reading would be merged into it).
    assert!(!shaped(&pass(t0 + 100 * ms, 200)));
    assert!(!shaped(&pass(t0 + 600 * ms, 1200)), "0.6 s of run: not yet");
    assert!(!shaped(&pass(t0 + 650 * ms, 1200)), "a short reading adds no evidence");
    let d = pass(t0 + 1100 * ms, 2200);
    assert!(shaped(&d), "1 s and 2000 packets confirm the flood: {d:?}");
    let e = d[0].evidence();
    // Two full readings (0.5 s, 0.45 s) and the short one between them.
    assert_eq!((e.windows, e.flood_s, e.flood_packets), (Some(2), Some(1.0), Some(2000)), "{e:?}");
}

/// A walk's reading of a device folded before the over-limit event the data plane raised a few
/// milliseconds earlier must not move the start of the device's flood: the next event, one
/// `event_gap` (1 s) after the first, confirms the flood by volume (1 s, 4 burst allowances) as
/// it would without the reading. Before, the run began at the reading, 40 ms after the onset,
/// the second event closed 0.96 s of run, and the flood waited for a third event, a second more
/// (`Track::over_since`; BENCHMARKS.md §21). Three ways the reading comes first: the event in
/// the same tick (the tick's reading wins), or drained after the tick, with the reading's
/// counters equal to the event's or ahead of them. An event older than a short window (a quarter
/// tick) before the reading does not re-date it.
#[test]
fn a_reading_folded_before_an_older_event_does_not_delay_the_flood() {
    let (t0, ms, ev) = (T0, MS, over_event);
    // (case, reading after the onset (ms), its packets, event drained after the tick, packets at
    // the second event, the run's packets when that event pins the flood).
    for (case, read_after_ms, at_reading, drained_after_the_tick, at_second, pinned) in [
        ("event in the reading's tick", 40, 91, false, 2011, Some(2011 - 91)),
        ("event drained after the tick, counters equal", 40, 11, true, 2011, Some(2011 - 11)),
        // Counters behind the reading's read as a restart: the track is primed again from the
        // event, its time and counters together.
        ("event drained after the tick, counters ahead", 40, 91, true, 2011, Some(2011 - 11)),
        // A blip over the profile, quiet for 300 ms, then 1700 packets in 0.7 s: not 1 s of
        // flood, and the blip's event, older than a short window, does not make it one.
        ("event older than a quarter tick", 300, 11, false, 1711, None),
    ] {
        let mut engine = Engine::new(&Config::default());
        // Read at rest by a walk.
        assert!(engine.tick(t0, &[sample(10)], &[]).is_empty());
        // 30 s later its flood begins (2000 pps): the data plane raises an event at its first
        // packet over the profile, and a walk reads the device `read_after_ms` later.
        let onset = t0 + 30_000 * ms;
        let tick = onset + read_after_ms * ms;
        if drained_after_the_tick {
            assert!(engine.tick(tick, &[sample(at_reading)], &[]).is_empty());
            assert!(!shaped(&engine.events_pass(tick + 10 * ms, &mut vec![ev(onset, 11)])), "{case}");
        } else {
            assert!(!shaped(&engine.tick(tick, &[sample(at_reading)], &[ev(onset, 11)])), "{case}");
        }
        // One `event_gap` after the first, the second event.
        let second = onset + 1000 * ms;
        let d = engine.events_pass(second + 10 * ms, &mut vec![ev(second, at_second)]);
        assert_eq!(shaped(&d), pinned.is_some(), "{case}: {d:?}");
        if let Some(e) = d.first().map(|d| d.evidence()) {
            // The run is dated from the first event; its packets are only the reading's on
            // (the re-dated window's rate is understated, never overstated).
            assert_eq!((e.flood_s, e.flood_packets), (Some(1.0), pinned), "{case}: {e:?}");
        }
    }
}

/// The mirror case: a walk reads the device at rest 200 ms before its flood begins, and the
/// onset's over-limit event arrives a short window (under a quarter tick) after that reading. The
/// event begins the next window, so the flood's first window is the flood's alone: 9x its profile
/// over 1 s confirms it at the second event. Merged into the next window, as a short window is
/// otherwise, the 200 ms at rest diluted it to 7.5x over 1.2 s, under the 8x trigger, and the
/// flood waited another second (BENCHMARKS.md §21 saw a 10x flood read at 7.96x that way). A
/// walk's reading a short window later is merged as before (it starts no window).
#[test]
fn an_onset_event_just_after_a_reading_begins_the_floods_first_window() {
    let (t0, ms, ev) = (T0, MS, over_event);
    let mut engine = Engine::new(&Config::default());
    assert!(engine.tick(t0, &[sample(10)], &[]).is_empty());
    // 30 s later a walk reads it at rest; 200 ms after, its 1800 pps flood begins.
    let read = t0 + 30_000 * ms;
    assert!(engine.tick(read, &[sample(10)], &[]).is_empty());
    let onset = read + 200 * ms;
    assert!(!shaped(&engine.events_pass(onset + 10 * ms, &mut vec![ev(onset, 11)])));
    let second = onset + 1000 * ms;
    let d = engine.events_pass(second + 10 * ms, &mut vec![ev(second, 1811)]);
    assert!(shaped(&d), "1 s at 9x confirms the flood: {d:?}");
    let e = d[0].evidence();
    assert_eq!((e.windows, e.flood_s, e.flood_packets), (Some(1), Some(1.0), Some(1800)), "{e:?}");
}
