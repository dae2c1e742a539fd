//! Ring-buffer events: one over-limit event per device per gap, rate-limited host-wide.

use super::*;

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn over_limit_events_one_per_gap_and_rate_limited() {
    assert_root("verdict::n3::events::over_limit_events_one_per_gap_and_rate_limited");
    let gap = Duration::from_millis(300);
    let cfg = GuardConfig { observe: Limit::per_second(10, 1), event_gap_ns: gap.as_nanos() as u64, ..enforce_all() };
    let mut g = load(&cfg);
    let mut ring = take_ring(&mut g);
    let teid = 0x500;
    let frame = gpdu(teid).build();
    let before = g.counters();
    let t0 = Instant::now();
    assert_eq!(g.run_n(&frame, 20), 20, "the observe limit never drops");
    assert!(t0.elapsed() < Duration::from_millis(100), "20 runs took {:?}", t0.elapsed());
    let d = g.counters().since(&before);
    assert_eq!(d.stat(STAT_EVENTS_SENT), 1, "one event per gap window");
    let dev = g.teid(teid).expect("device");
    assert_eq!(dev.over_limit, 19);
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = ev[0];
    assert_eq!(e.kind, EVENT_DEVICE_OVER_LIMIT);
    assert_eq!(e.device, DeviceKey::teid(teid));
    assert_eq!(e.cell, l3_v4(GNB_A));
    assert_eq!(e.stage, STAGE_OBSERVE);
    assert_eq!((e.packets, e.over_limit), (2, 1), "the event fired on the first packet over the limit");
    assert_eq!(e.bytes, 2 * 60, "the device's T-PDU octets (inner IPv4 20 + UDP 8 + 32)");
    // The next gap window: one more event, carrying the device's stage.
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_SHAPE, 1000, 1000, 60 * SEC));
    std::thread::sleep(gap + Duration::from_millis(20));
    assert_eq!(g.run_n(&frame, 10), 10);
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].kind, ev[0].stage), (EVENT_DEVICE_OVER_LIMIT, STAGE_SHAPE));
    assert_eq!(g.counters().since(&before).stat(STAT_EVENTS_SENT), 2);

    // A tiny event rate (1 per minute, per CPU) with no per-device gap: the rest is suppressed.
    g.write_config(&GuardConfig {
        observe: Limit::per_interval(60 * SEC, 1),
        event_gap_ns: 0,
        event_rate: Limit::per_interval(60 * SEC, 1),
        ..enforce_all()
    });
    let before = g.counters();
    for t in [0x510, 0x511] {
        assert_eq!(g.run_n(&gpdu(t).build(), 5), 5);
    }
    let d = g.counters().since(&before);
    // 2 devices x 4 packets over the limit = 8 events wanted.
    assert_eq!(d.stat(STAT_EVENTS_SENT), 1, "{d:?}");
    assert_eq!(d.stat(STAT_EVENTS_SUPPRESSED), 7, "{d:?}");
    let ev = drain(&mut ring);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].device, ev[0].cell), (DeviceKey::teid(0x510), l3(IpAddr::V4(GNB_A))));
}
