//! Verdict tests of the N3 XDP program through BPF_PROG_TEST_RUN (DESIGN §5): crafted frames
//! (labkit's spec-written builder, not the guard's parser) go through the real program loaded in
//! the kernel, and each test checks what an operator would check: the XDP action, the verdict
//! counter that moved, and the per-device / per-gNB state in the maps.
//!
//! Every test loads its own program instance with its own pinned maps (removed on drop), so they
//! run in parallel without sharing state.

mod admission;
mod bytes;
mod caps;
mod chain;
mod cpus;
mod echo;
mod events;
mod fragments;
mod keys;
mod malformed;
mod messages;
mod sessions;
mod sources;
mod stages;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use guard::clock::monotonic_ns;
use guard_common::{
    abi::{
        device_id, CellCounts, CellStageEntry, DeviceKey, Event, EventRecord, GuardConfig, Limit, StageEntry, BIND_V4,
        BIND_V6, EVENT_DEVICE_OVER_LIMIT, EVENT_ERR_IND_LIMITED, MAP_N3_EVENTS, PROT_ALL, PROT_ANTISPOOF,
        PROT_MALFORMED, PROT_QUARANTINE, QFI_NONE, STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE,
        STAGE_STRICT, STAT_EVENTS_SENT, STAT_EVENTS_SUPPRESSED, STAT_MAP_UPDATE_FAILED,
    },
    parse::Malformed,
    policy::Verdict,
    rate::CLOCK_STEP_NS,
};
use labkit::assert_root;
use labkit::bpf::{cell_cap_entry, hex, l3, l3_v4, l3_v6, stage_entry, Guard, XDP_DROP, XDP_PASS};
use labkit::frames::{self, GtpFrame, EXT_PDU_SESSION_CONTAINER, EXT_UDP_PORT};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 12);
const CORE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const GNB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11);
const CORE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
const UE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 2);

/// Every protection enforced, every limit unlimited: only what a test adds can drop.
fn enforce_all() -> GuardConfig {
    GuardConfig { gtpu_port: 2152, enabled: PROT_ALL, event_gap_ns: SEC, ..Default::default() }
}

fn load(cfg: &GuardConfig) -> Guard {
    Guard::load(cfg).unwrap_or_else(|e| panic!("loading the guard: {e:#}"))
}

fn gpdu(teid: u32) -> GtpFrame {
    GtpFrame::gpdu(teid).outer_v4(GNB_A, CORE).inner_v4(UE, Ipv4Addr::new(192, 0, 2, 10))
}

fn quarantine(g: &mut Guard, teid: u32, ttl_ns: u64) {
    g.set_stage(&DeviceKey::teid(teid), &stage_entry(STAGE_QUARANTINE, 0, 0, ttl_ns));
}

/// The program's event ring (N3_EVENTS), taken out of the object for reading.
fn take_ring(g: &mut Guard) -> aya::maps::RingBuf<aya::maps::MapData> {
    let m = g.loaded.ebpf.take_map(MAP_N3_EVENTS).expect("N3_EVENTS in the object");
    aya::maps::RingBuf::try_from(m).expect("N3_EVENTS is a ring buffer")
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), std::mem::size_of::<EventRecord>(), "event record size");
        // SAFETY: the record is an `EventRecord` (checked size); any bit pattern is a valid one.
        let r = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<EventRecord>()) };
        out.push(Event::from(&r));
    }
    out
}
