//! Verdict tests of the N2 XDP program `guard_n2` through BPF_PROG_TEST_RUN (DESIGN §5): frames
//! from labkit's spec-written SCTP/NGAP builder (`labkit::sctp_frames`, not the guard's parser) go
//! through the real program, and each test checks the XDP action, the verdict counter that moved,
//! and the per-peer / per-cell / per-device state in the maps.
//!
//! The rule under test throughout (DESIGN §2): below stage 3 only association setup is limited,
//! and a packet carrying DATA is never dropped.

mod chunks;
mod events;
mod setup;
mod stages;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use guard::n2::{self, LoadOpts, N2Loaded, N2Maps};
use guard_common::{
    abi::{n2::N2StageEntry, L3Addr, STAGE_FLAG_EXEMPT, STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT},
    abi_n2::*,
    parse::n2::N2Malformed,
    policy_n2::N2Verdict,
};
use labkit::assert_root;
use labkit::bpf::{hex, peer_stage_entry as stage_entry, pin_to_current_cpu, PinScope, XDP_DROP, XDP_PASS};
use labkit::sctp_frames::{
    ngap::{self, Cell, FiveGSTmsi, InitialUeMessage, PLMN_00101},
    s1ap, Chunk, SctpFrame,
};

const SEC: u64 = 1_000_000_000;
const GNB_A: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 11);
const GNB_B: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 12);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);

fn enforce_all() -> N2Config {
    N2Config {
        ngap_port: NGAP_PORT as u32,
        s1ap_port: S1AP_PORT as u32,
        enabled: N2_PROT_ALL & !N2_PROT_ALLOWLIST,
        event_gap_ns: SEC,
        ..Default::default()
    }
}

/// Counter snapshot: verdicts, shadow, malformed, stats (packets, summed over CPUs).
#[derive(Clone, Debug, Default)]
struct Delta {
    verdicts: Vec<u64>,
    shadow: Vec<u64>,
    malformed: Vec<u64>,
    stats: Vec<u64>,
}

impl Delta {
    fn since(&self, b: &Delta) -> Delta {
        let d = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, b)| a.wrapping_sub(*b)).collect();
        Delta {
            verdicts: d(&self.verdicts, &b.verdicts),
            shadow: d(&self.shadow, &b.shadow),
            malformed: d(&self.malformed, &b.malformed),
            stats: d(&self.stats, &b.stats),
        }
    }
    fn moved_verdicts(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL.iter().map(|&v| (v, self.verdicts[v as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn moved_shadow(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL.iter().map(|&v| (v, self.shadow[v as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn moved_malformed(&self) -> Vec<(N2Malformed, u64)> {
        N2Malformed::ALL.iter().map(|&m| (m, self.malformed[m as usize])).filter(|(_, n)| *n != 0).collect()
    }
    fn stat(&self, i: u32) -> u64 {
        self.stats[i as usize]
    }
}

/// `guard_n2` loaded with its maps pinned in a fresh directory (removed on drop).
struct G {
    maps: N2Maps,
    loaded: N2Loaded,
    _scope: PinScope,
}

fn load(cfg: &N2Config) -> G {
    pin_to_current_cpu().expect("pin to a CPU");
    let scope = PinScope::new("n2");
    let opts = LoadOpts { max_devices: 4096, max_cells: 1024, max_peers: 1024 };
    let (loaded, maps) = n2::load(&scope.pins, &opts, cfg).unwrap_or_else(|e| panic!("loading guard_n2: {e}"));
    G { maps, loaded, _scope: scope }
}

impl G {
    fn run(&mut self, frame: &[u8]) -> Result<u32, String> {
        let prog = self.loaded.program().map_err(|e| e.to_string())?;
        use aya::programs::{TestRun, TestRunOptions};
        prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() }).map(|r| r.return_value).map_err(
            |e| {
                // The whole chain: aya's message, then the kernel's errno (e.g. "Invalid argument").
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                s
            },
        )
    }

    fn counters(&self) -> Delta {
        let m = &self.maps;
        Delta {
            verdicts: m.verdicts().expect("N2_VERDICTS").iter().map(|(_, c)| c.packets).collect(),
            shadow: m.shadow().expect("N2_SHADOW").iter().map(|(_, c)| c.packets).collect(),
            malformed: m.malformed().expect("N2_MALFORMED").iter().map(|(_, c)| c.packets).collect(),
            stats: m.stats().expect("N2_STATS").iter().map(|c| c.packets).collect(),
        }
    }

    #[track_caller]
    fn expect(&mut self, what: &str, frame: &[u8], expected: N2Verdict) -> Delta {
        let before = self.counters();
        let action = self.run(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
        let d = self.counters().since(&before);
        let want = if expected.is_drop() { XDP_DROP } else { XDP_PASS };
        assert_eq!(
            action,
            want,
            "{what}: action {action} for {}; verdicts {:?} malformed {:?}\nframe {}",
            expected.name(),
            d.moved_verdicts(),
            d.moved_malformed(),
            hex(frame)
        );
        assert_eq!(
            d.moved_verdicts(),
            vec![(expected, 1)],
            "{what}: malformed {:?}\nframe {}",
            d.moved_malformed(),
            hex(frame)
        );
        d
    }

    fn peer(&self, a: Ipv4Addr) -> N2PeerState {
        self.maps.peer(&L3Addr::v4(a.octets())).expect("N2_PEERS").unwrap_or_default()
    }

    fn stage(&mut self, a: Ipv4Addr, e: &N2StageEntry) {
        self.maps.set_peer_stage(&L3Addr::v4(a.octets()), e).expect("N2_PEER_STAGES");
    }
}

fn from(a: Ipv4Addr) -> SctpFrame {
    SctpFrame::ngap().v4(a, AMF).vtag(0x0a0b_0c0d)
}

fn init(a: Ipv4Addr) -> Vec<u8> {
    from(a).vtag(0).chunk(Chunk::init(0x1111_0000 | u32::from(a.octets()[3]), 100)).build()
}

fn cookie_echo(a: Ipv4Addr) -> Vec<u8> {
    from(a).chunk(Chunk::cookie_echo(&[0xc0; 32])).build()
}

fn uplink(a: Ipv4Addr, tsn: u32) -> Vec<u8> {
    let nas = ngap::deregistration_request(FiveGSTmsi { set_id: 1, pointer: 1, tmsi: 7 });
    from(a).chunk(Chunk::ngap(tsn, &ngap::uplink_nas_transport(5, 6, &nas, 0x10))).build()
}

fn tmsi(set_id: u16, pointer: u8, tmsi: u32) -> FiveGSTmsi {
    FiveGSTmsi { set_id, pointer, tmsi }
}
