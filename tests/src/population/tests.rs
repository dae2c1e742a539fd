use super::*;

fn pop(profile: Profile, count: usize) -> PopulationSpec {
    PopulationSpec {
        name: "p".into(),
        count,
        class: Class::Benign,
        profile,
        teid_base: 0x100,
        ue_base: default_ue(),
        dst: default_dst(),
        gnb: None,
        start_s: 0.0,
        stop_s: None,
        payload: 64,
        fragment: 0.0,
        path_mtu: 1400,
        change: None,
        family: Family::V4,
        ue_v6_base: default_ue_v6(),
        privacy_rotate_s: 0.0,
        router_solicitation: None,
        framed_route: None,
        session_type: SessionType::Ip,
        n3_addr: None,
        forged: 0.0,
    }
}

#[test]
fn flood_rate_is_exact_and_deterministic() {
    let p = pop(Profile::Flood { pps: Num::One(250.0) }, 4);
    let a = Plan::build(std::slice::from_ref(&p), 2, 10.0, 7).unwrap();
    let b = Plan::build(&[p], 2, 10.0, 7).unwrap();
    let total: u64 = a.offered_by_slot().iter().map(|c| c[0]).sum();
    assert!((9_990..=10_010).contains(&total), "{total}");
    assert_eq!(a.slots, b.slots);
    assert_eq!(a.devices.iter().filter(|d| d.gnb == 1).count(), 2);
}

/// TS 29.281 §7.2.1 as the lab models a path: one request per period, each followed by its
/// retransmissions T3-RESPONSE apart; every path device has its own Sequence Number tag.
#[test]
fn echo_path_sends_a_request_and_its_retransmissions_per_period() {
    let mut p = pop(Profile::EchoPath { period_s: Num::One(60.0), t3_s: 2.0, retries: 3 }, 4);
    p.teid_base = 0;
    let plan = Plan::build(&[p], 4, 100.0, 3).unwrap();
    let per_dev: Vec<u64> = (0..4)
        .map(|d| plan.slots.iter().flatten().filter(|(v, _)| *v as usize == d).map(|&(_, n)| u64::from(n)).sum())
        .collect();
    // A first round within the first 60 s, a second 60 s later if it fits in 100 s.
    assert!(per_dev.iter().all(|&n| (4..=8).contains(&n)), "{per_dev:?}");
    let tags: std::collections::BTreeSet<u32> = plan.devices.iter().map(|d| d.tag).collect();
    assert_eq!(tags.len(), 4);
    assert_eq!(plan.by_tag.len(), 4);
    assert!(plan.devices.iter().map(|d| d.gnb).collect::<std::collections::BTreeSet<_>>().len() == 4);
}

/// Several scans: each has its own sixteenth of the scan range, so the sink's counts go back
/// to the right one.
#[test]
fn scans_own_their_part_of_the_scan_range() {
    let mut a = pop(Profile::TeidScan { pps: Num::One(10.0), sources: 0 }, 1);
    a.name = "a".into();
    a.gnb = Some(0);
    let mut b = pop(Profile::TeidScan { pps: Num::One(10.0), sources: 8 }, 1);
    b.name = "b".into();
    let plan = Plan::build(&[a, b], 2, 5.0, 1).unwrap();
    assert_eq!(plan.scan_devices, vec![0, 1]);
    for n in [1, 2, 1000, 0xfffff] {
        let core = IpAddr::V4(CORE_V4);
        assert_eq!(plan.device_of(core, scan_teid_of(0, n)), Some(0));
        assert_eq!(plan.device_of(core, scan_teid_of(1, n)), Some(1));
        assert_eq!(scan_teid_of(1, n) & !SCAN_TEID_MASK, SCAN_TEID_BASE);
    }
    assert_ne!(rotate_src(1, 8), rotate_src(2, 8));
    assert_eq!(rotate_src(1, 8), rotate_src(9, 8));
}

/// TS 29.281 §5.1: one TEID on two N3 addresses is two devices; on one address it is refused.
#[test]
fn colliding_teids_on_two_n3_addresses_are_two_devices() {
    let a = pop(Profile::Flood { pps: Num::One(1.0) }, 3);
    let mut b = a.clone();
    b.name = "b".into();
    b.n3_addr = Some(Ipv4Addr::new(10, 200, 0, 2));
    let plan = Plan::build(&[a.clone(), b.clone()], 2, 2.0, 1).unwrap();
    assert_eq!(plan.n3_addrs(), vec![CORE_V4, Ipv4Addr::new(10, 200, 0, 2)]);
    assert_eq!(plan.device_of(IpAddr::V4(CORE_V4), 0x101), Some(1));
    assert_eq!(plan.device_of(IpAddr::V4(Ipv4Addr::new(10, 200, 0, 2)), 0x101), Some(4));
    assert_eq!(plan.device_of(IpAddr::V4(Ipv4Addr::new(10, 200, 0, 3)), 0x101), None);
    assert!(Plan::build(&[a.clone(), a.clone()], 2, 2.0, 1).is_err());
    b.n3_addr = Some(Ipv4Addr::new(10, 200, 0, 11));
    assert!(Plan::build(&[b], 2, 2.0, 1).is_err(), "a gNB's address is no N3 address of the core");
}

#[test]
fn change_switches_the_fraction_and_labels_attack() {
    let mut p = pop(Profile::Periodic { period_s: Num::One(1.0), jitter: 0.0, burst: Num::One(1.0) }, 100);
    p.change = Some(ChangeSpec {
        at_s: 5.0,
        fraction: 0.1,
        spread_s: 0.0,
        class: Some(Class::Attack),
        profile: Some(Profile::Flood { pps: Num::One(100.0) }),
        rate_factor: None,
        dst: None,
    });
    let plan = Plan::build(&[p], 4, 10.0, 1).unwrap();
    assert_eq!(plan.devices.iter().filter(|d| d.class == Class::Attack).count(), 10);
    let off = plan.offered_by_slot();
    assert_eq!(off[..50].iter().map(|c| c[1]).sum::<u64>(), 0);
    let attack: u64 = off[50..].iter().map(|c| c[1]).sum();
    assert!((4_900..=5_100).contains(&attack), "{attack}");
}
