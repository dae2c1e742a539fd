//! End to end over veth (DESIGN §5) for N2: `guard_n2` is attached to the CORE side of the lab
//! from inside the CORE namespace; the RAN side sends bounded, paced SCTP from three gNBs; labkit's
//! sink (an AF_PACKET socket after XDP), not the guard's counters, says what was delivered:
//! - gNB A is quarantined (stage 3): nothing of it arrives, DATA included;
//! - gNB B is not staged: all of its DATA (InitialUEMessages) arrives;
//! - gNB C is at its stage-1 setup limit (10 INIT/s, burst 5): its INIT flood is cut to the
//!   limit, while its DATA all arrives (never drop DATA below the top stage).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use guard::n2;
use guard_common::abi::{L3Addr, STAGE_QUARANTINE, STAGE_SHAPE};
use guard_common::policy_n2::N2Verdict;
use labkit::bpf::{peer_stage_entry as stage_entry, PinScope};
use labkit::sctp_frames::{ngap::InitialUeMessage, Chunk, SctpFrame};
use labkit::{assert_root, Lab};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 12);
const GNB_C: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 13);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// Paced well below what a veth's XDP ring absorbs, so nothing is lost before XDP.
const PPS: u64 = 10_000;

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn quarantine_and_setup_limits_hold_on_the_wire_and_data_still_flows() {
    assert_root("e2e_n2::quarantine_and_setup_limits_hold_on_the_wire_and_data_still_flows");
    let lab = Lab::new().expect("lab");
    let scope = PinScope::new("e2en2");
    let (loaded, mut maps, how) = labkit::n2lab::bpf::attach_on_core(&lab, &scope);
    println!("attached guard_n2 to {} in {}: {how:?}", lab.core_ifname(), lab.core.name());

    maps.set_peer_stage(&L3Addr::v4(GNB_A.octets()), &stage_entry(STAGE_QUARANTINE, 0, 0, 60 * SEC)).expect("stage A");
    maps.set_peer_stage(&L3Addr::v4(GNB_C.octets()), &stage_entry(STAGE_SHAPE, 10, 5, 60 * SEC)).expect("stage C");

    // Ethernet addresses of the lab, so the core side takes the frames as its own.
    let (dst, src) = (lab.core_mac(), lab.ran_mac());
    let mac = |mut f: Vec<u8>| {
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    };
    let ue = |gnb: Ipv4Addr, id: u32| {
        let m = InitialUeMessage::nr(id, 0x100 + u64::from(gnb.octets()[3])).s_tmsi(1, 1, id).encode();
        mac(SctpFrame::ngap().v4(gnb, AMF).vtag(0x77).chunk(Chunk::ngap(id, &m)).build())
    };
    let init = mac(SctpFrame::ngap().v4(GNB_C, AMF).vtag(0).chunk(Chunk::init(0x4444, 1)).build());
    let frames = vec![ue(GNB_A, 1), ue(GNB_B, 2), init, ue(GNB_C, 3)];
    let n = 4000u64;

    let verdicts = |m: &n2::N2Maps| -> BTreeMap<&'static str, u64> {
        m.verdicts().expect("N2_VERDICTS").iter().map(|(v, c)| (v.name(), c.packets)).collect()
    };
    let before = verdicts(&maps);
    let (sent, seen) =
        labkit::lab::send_and_count(&lab, &frames, n, PPS, labkit::lab::sctp_source_and_chunk).expect("send and count");
    println!("sent {} in {:?}; delivered {seen:?}", sent.sent, sent.elapsed);
    let each = n / frames.len() as u64;
    let count = |ip, t| seen.get(&(ip, t)).copied().unwrap_or(0);
    assert_eq!(count(GNB_A, 0), 0, "quarantined gNB A delivered DATA");
    let b = count(GNB_B, 0);
    assert!(b <= each && b * 100 >= each * 99, "gNB B delivered {b} of {each}");
    let c_data = count(GNB_C, 0);
    assert!(c_data <= each && c_data * 100 >= each * 99, "setup-limited gNB C delivered {c_data} of {each} DATA");
    let c_init = count(GNB_C, 1);
    // Burst 5, then 10/s over the ~0.4 s of sending.
    assert!((1..=12).contains(&c_init), "gNB C delivered {c_init} of {each} INITs");

    let after = verdicts(&maps);
    let d = |v: N2Verdict| after[v.name()] - before[v.name()];
    assert_eq!(d(N2Verdict::DropQuarantine), each, "the guard's quarantine drops vs sent");
    assert_eq!(d(N2Verdict::DropSetupLimit), each - c_init, "the guard's setup drops vs what arrived");
    assert_eq!(d(N2Verdict::PassData), 2 * each);
    let c = maps.peer(&L3Addr::v4(GNB_C.octets())).expect("map").expect("gNB C");
    assert_eq!((c.setups, c.setup_dropped), (each, each - c_init));
    drop(loaded);
}
