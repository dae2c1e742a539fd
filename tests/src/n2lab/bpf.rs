//! A BPF_PROG_TEST_RUN harness for the N2 program `guard_n2` (DESIGN §5 "Verdict tests"), the N2
//! sibling of [`crate::bpf::Guard`]: the real program (the object `guard-userspace` embeds) with
//! every map pinned in a fresh, uniquely named bpffs directory ([`PinScope`], removed on drop, also
//! while unwinding), counter snapshots as deltas, and the host parser's prediction of a verdict.

use anyhow::{anyhow, Result};
use aya::programs::{TestRun, TestRunOptions};
use guard::n2::{self, LoadOpts, N2Loaded, N2Maps};
use guard_common::{
    abi::L3Addr,
    abi_n2::{N2Config, N2PeerState, N2_PROT_ALL, N2_PROT_ALLOWLIST, NGAP_PORT, S1AP_PORT},
    parse::n2::{self as parse_n2, N2Malformed, N2Parsed},
    policy_n2::{self, N2Verdict},
};

use crate::bpf::{pin_to_current_cpu, PinScope, XDP_DROP, XDP_PASS};

/// Every protection but the allow-list enforced, no peer staged: the verdict of a packet is then
/// a function of its parse ([`host_prediction`]).
pub fn enforce_all() -> N2Config {
    N2Config {
        ngap_port: u32::from(NGAP_PORT),
        s1ap_port: u32::from(S1AP_PORT),
        enabled: N2_PROT_ALL & !N2_PROT_ALLOWLIST,
        event_gap_ns: 1_000_000_000,
        ..Default::default()
    }
}

/// `guard_n2` loaded with [`enforce_all`] and the e2e tests' capacities, its maps pinned under
/// `scope`, attached (XDP mode as the interface allows) to the lab's core veth inside the core
/// namespace: what the end-to-end N2 tests put in front of real frames. Panics (fails the test)
/// if it cannot. The returned attachment says which XDP mode the kernel took.
pub fn attach_on_core(lab: &crate::Lab, scope: &PinScope) -> (N2Loaded, N2Maps, guard::bpf::link::Attachment) {
    let iface = lab.core_ifname().to_owned();
    let pins = scope.pins.clone();
    lab.core
        .run(move || -> Result<_> {
            let opts = LoadOpts { max_devices: 4096, max_cells: 64, max_peers: 64 };
            let (mut l, m) = n2::load(&pins, &opts, &enforce_all())?;
            let how = l.attach(&iface, guard::bpf::link::ModeRequest::Auto)?;
            Ok((l, m, how))
        })
        .expect("entering the core namespace")
        .unwrap_or_else(|e| panic!("load + attach guard_n2 on the core veth: {e:#}"))
}

/// Small capacities: quick to load, and easy to fill in exhaustion tests.
pub const TEST_OPTS: LoadOpts = LoadOpts { max_devices: 4096, max_cells: 1024, max_peers: 1024 };

/// Counter snapshot (packets, summed over CPUs) of `N2_VERDICTS`, `N2_SHADOW`, `N2_MALFORMED`,
/// `N2_STATS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct N2Counters {
    pub verdicts: Vec<u64>,
    pub shadow: Vec<u64>,
    pub malformed: Vec<u64>,
    pub stats: Vec<u64>,
}

impl N2Counters {
    pub fn since(&self, before: &N2Counters) -> N2Counters {
        let d = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x.wrapping_sub(*y)).collect();
        N2Counters {
            verdicts: d(&self.verdicts, &before.verdicts),
            shadow: d(&self.shadow, &before.shadow),
            malformed: d(&self.malformed, &before.malformed),
            stats: d(&self.stats, &before.stats),
        }
    }

    pub fn verdict(&self, v: N2Verdict) -> u64 {
        self.verdicts.get(v as usize).copied().unwrap_or(0)
    }

    pub fn stat(&self, i: u32) -> u64 {
        self.stats.get(i as usize).copied().unwrap_or(0)
    }

    pub fn moved_verdicts(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL.iter().map(|&v| (v, self.verdict(v))).filter(|(_, n)| *n != 0).collect()
    }

    pub fn moved_shadow(&self) -> Vec<(N2Verdict, u64)> {
        N2Verdict::ALL
            .iter()
            .map(|&v| (v, self.shadow.get(v as usize).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 0)
            .collect()
    }

    pub fn moved_malformed(&self) -> Vec<(N2Malformed, u64)> {
        N2Malformed::ALL
            .iter()
            .map(|&m| (m, self.malformed.get(m as usize).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 0)
            .collect()
    }
}

/// `guard_n2` loaded for BPF_PROG_TEST_RUN, its pins removed on drop. The loading thread is
/// pinned to its CPU (the event limiter is per-CPU, as in [`crate::bpf::Guard`]).
pub struct N2Guard {
    pub maps: N2Maps,
    pub loaded: N2Loaded,
    pub opts: LoadOpts,
    _scope: PinScope,
}

impl N2Guard {
    pub fn load(cfg: &N2Config, opts: LoadOpts) -> Result<N2Guard> {
        pin_to_current_cpu()?;
        let scope = PinScope::new("n2t");
        let (loaded, maps) = n2::load(&scope.pins, &opts, cfg).map_err(|e| anyhow!("loading guard_n2: {e}"))?;
        Ok(N2Guard { maps, loaded, opts, _scope: scope })
    }

    /// One frame through the program: the XDP action.
    pub fn run(&mut self, frame: &[u8]) -> Result<u32> {
        let prog = self.loaded.program().map_err(|e| anyhow!("{e}"))?;
        let r = prog
            .test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })
            .map_err(|e| anyhow!("BPF_PROG_TEST_RUN: {e}: {:?}", std::error::Error::source(&e)))?;
        Ok(r.return_value)
    }

    pub fn counters(&self) -> Result<N2Counters> {
        let m = &self.maps;
        let e = |e: guard::bpf::maps::MapsError| anyhow!("{e}");
        Ok(N2Counters {
            verdicts: m.verdicts().map_err(e)?.iter().map(|(_, c)| c.packets).collect(),
            shadow: m.shadow().map_err(e)?.iter().map(|(_, c)| c.packets).collect(),
            malformed: m.malformed().map_err(e)?.iter().map(|(_, c)| c.packets).collect(),
            stats: m.stats().map_err(e)?.iter().map(|c| c.packets).collect(),
        })
    }

    /// One frame, and the counters that moved.
    pub fn run_delta(&mut self, frame: &[u8]) -> Result<(u32, N2Counters)> {
        let before = self.counters()?;
        let action = self.run(frame)?;
        Ok((action, self.counters()?.since(&before)))
    }

    pub fn peer(&self, a: &L3Addr) -> N2PeerState {
        self.maps.peer(a).ok().flatten().unwrap_or_default()
    }

    pub fn peer_count(&self) -> usize {
        self.maps.peers().len()
    }

    pub fn cell_count(&self) -> usize {
        self.maps.cells().len()
    }

    pub fn device_count(&self) -> usize {
        self.maps.devices().len()
    }
}

/// The XDP action a verdict means.
pub fn action_of(v: N2Verdict) -> u32 {
    if v.is_drop() {
        XDP_DROP
    } else {
        XDP_PASS
    }
}

/// What the host-compiled parser says `guard_n2` must do with `frame` under [`enforce_all`]: the
/// verdict, the malformed reason, and the parse (for N2 packets) to compare the measurements.
pub fn host_prediction(frame: &[u8]) -> (N2Verdict, Option<N2Malformed>, Option<N2Parsed>) {
    match parse_n2::parse(frame, NGAP_PORT, S1AP_PORT) {
        Ok(None) => (N2Verdict::PassNotN2, None, None),
        Ok(Some(p)) => (policy_n2::pass_verdict_of(&p.pkt), None, Some(p)),
        Err(m) if m.is_sctp() => (N2Verdict::DropMalformed, Some(m), None),
        Err(m) => (N2Verdict::PassMalformed, Some(m), None),
    }
}
