//! Flood on one core with XDP live frames: the filters' own drop rate, without the AF_PACKET
//! sender that bounds every filter in [`crate::bench::wire`].
//!
//! `xdp_live_sender` (`guard-ebpf/src/baseline.rs`) runs under BPF_PROG_TEST_RUN with
//! `BPF_F_TEST_XDP_LIVE_FRAMES` in the RAN namespace: each run rewrites the TEID of one G-PDU to
//! the next device of the flood (half the frames from [`N_BENIGN`] benign devices, half from
//! [`N_ATTACK`] attackers, 5% of the devices) and redirects it out of the RAN veth. veth hands
//! the frame to the CORE end as an XDP frame, in the same softirq, on the same CPU: what an XDP
//! filter there sees is what it would see from a NIC driver (no skb), while nftables (and the
//! stack) get an skb built from the frame (the CORE end's GRO is switched on, which gives it the
//! NAPI instance that receives redirected frames when no XDP program is attached). The whole path
//! (sender, veth, filter) runs on one pinned CPU; its CPU time per frame, and frames per
//! CPU-second, are what each row reports.
//!
//! Where the kernel refuses live-frames mode (EPERM), [`crate::bench::relay`] sends instead: the
//! CORE end still receives XDP frames, and the rows report its receiving thread's CPU time.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, XdpMode};
use guard::{bpf::link::ModeRequest, n3::load};
use guard_common::abi::{DeviceKey, GuardConfig, STAGE_QUARANTINE, STAGE_SHAPE};

use crate::affinity;
use crate::bench::progs::{RefProgs, DROP, LIVE_SENDER};
use crate::bench::relay::Relay;
use crate::bench::{goal_row, median, num, ratio, sys, Table};
use crate::bpf::{stage_entry, Guard, PinScope};
use crate::lab::Lab;

pub const N_BENIGN: u32 = 950;
pub const N_ATTACK: u32 = 50;
const BENIGN_BASE: u32 = 0x0c00_0000;
const ATTACK_BASE: u32 = 0x0d00_0000;
const HOUR_NS: u64 = 3600 * 1_000_000_000;
/// The per-device limit as a multiple of a benign device's rate (as in the veth ladder).
const LIMIT_FACTOR: f64 = 4.0;
/// The relay's offered rate, frames a second, the same for every filter: within what the
/// slowest row sustains on the project's 2-CPU VM (no filter: ~3.5 µs a frame, sender and
/// receiver on one CPU, BENCHMARKS §27), so that it is the rate every filter is offered, not
/// each filter's own speed. The attack-only flood then offers each attacker 1/50 of it, and the
/// limit ([`LIMIT_FACTOR`] x a benign device's rate in the mixed flood) passes the same share of
/// it (4 x 50 / (2 x 950) = 10.5%) through the guard's shape stage and the nftables meter alike.
const RELAY_PACE: f64 = 150_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// `xdp_drop` on the CORE end: the sender and veth alone, plus the cheapest XDP drop.
    XdpDrop,
    GuardQuarantine,
    GuardShape,
    Nft,
    /// nftables dropping the attacking TEIDs, listed in a set: what an operator would write to
    /// block known devices (the counterpart of the guard's quarantine).
    NftBlock,
    /// No filter: every frame becomes an skb and goes up the CORE stack.
    None,
}

impl Filter {
    const ALL: [Filter; 6] =
        [Filter::XdpDrop, Filter::GuardQuarantine, Filter::GuardShape, Filter::Nft, Filter::NftBlock, Filter::None];

    fn name(self) -> &'static str {
        match self {
            Filter::XdpDrop => "xdp_drop (reference: drop everything, XDP native)",
            Filter::GuardQuarantine => "guard (XDP native), attackers quarantined",
            Filter::GuardShape => "guard (XDP native), attackers at stage shape",
            Filter::Nft => "nftables netdev meter on @th,96,32 (skb)",
            Filter::NftBlock => "nftables netdev, attacking TEIDs in a set, drop (skb)",
            Filter::None => "no filter (skb, CORE stack)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Filter::XdpDrop => "xdp_drop",
            Filter::GuardQuarantine => "guard quarantine",
            Filter::GuardShape => "guard shape",
            Filter::Nft => "nftables meter",
            Filter::NftBlock => "nftables set",
            Filter::None => "no filter",
        }
    }
}

/// One run of one filter.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    frames: u64,
    /// Half benign, half attack; else attack only.
    mixed: bool,
    wall_s: f64,
    /// CPU time of the sending thread (the softirq work it ran included) and of ksoftirqd, ns;
    /// with the relay, of the CORE end's receiving thread alone.
    cpu_ns: f64,
    /// With the relay: the sending side's CPU time, ns (kept out of `cpu_ns`).
    sender_ns: Option<f64>,
    /// Frames the filter counted (None: it has no counter).
    seen: Option<u64>,
    benign_passed: Option<u64>,
    /// Benign frames the filter itself dropped (None: not known exactly, see `Run::benign_dropped`).
    benign_dropped: Option<u64>,
    attack_dropped: Option<u64>,
}

impl Run {
    fn ns_per_frame(&self) -> f64 {
        ratio(self.cpu_ns, self.frames as f64)
    }

    fn attack_sent(&self) -> u64 {
        if self.mixed {
            self.frames / 2
        } else {
            self.frames
        }
    }

    fn benign_sent(&self) -> u64 {
        self.frames - self.attack_sent()
    }

    /// Frames sent that the filter never saw: dropped on the way to it (the veth's ring full
    /// before its XDP or ingress hook ran), not by it.
    fn unseen(&self) -> u64 {
        self.seen.map_or(0, |s| self.frames.saturating_sub(s))
    }

    /// Benign frames the filter dropped: the guard's own per-device drop counts; for nftables,
    /// benign sent minus benign passed when every frame reached it (its rules count no benign
    /// frames before the meter, and adding a rule would add to its cost).
    fn benign_dropped(&self) -> Option<u64> {
        self.benign_dropped.or_else(|| {
            (self.seen.is_some() && self.unseen() == 0)
                .then(|| self.benign_sent().saturating_sub(self.benign_passed.unwrap_or(0)))
        })
    }
}

/// How the flood reaches the CORE veth.
enum Sender {
    /// `xdp_live_sender` under BPF_PROG_TEST_RUN in live-frames mode, on the pinned CPU.
    LiveFrames,
    /// The kernel refused live-frames mode (the error is kept for the report): the relay.
    Relay(Relay, String),
}

struct Live {
    // Drop order: the guard (detached, pins purged), the relay and the reference programs before
    // the lab.
    guard: Guard,
    sender: Sender,
    refs: RefProgs,
    lab: Lab,
    frame: Vec<u8>,
    nft_table: String,
    cpu: usize,
    ksoftirqd: sys::Ksoftirqd,
    guard_attached: bool,
}

impl Live {
    fn new(cfg: &GuardConfig) -> Result<Live> {
        let lab = Lab::new().context("building the RAN/CORE lab")?;
        let guard = Guard::load_in(PinScope::new("blive"), cfg, 0)?;
        let mut refs = RefProgs::load(64)?;
        // A 5G uplink G-PDU, with the UL PDU Session Container every N3 uplink G-PDU carries (TS
        // 38.415 §5.5.2.2, QFI 9): the TEID the sender rewrites keeps its offset (TS 29.281 §5.1).
        let frame = lab.gpdu_v4(0, BENIGN_BASE).qfi(9).build();
        let cpu = if affinity::ncpus() >= 2 { 1 } else { 0 };
        let core_if = lab.core_ifname().to_owned();
        // GRO on: veth then runs NAPI on the CORE end, which is what accepts redirected frames
        // when no XDP program is attached there (`veth_xdp_xmit` needs the peer's NAPI).
        lab.core.exec_ok(&["ethtool", "-K", &core_if, "gro", "on"]).context("switching GRO on for the CORE veth")?;
        let sender = match probe_live_frames(&lab, &mut refs, &frame, cpu) {
            Ok(()) => Sender::LiveFrames,
            Err(e) => {
                let refused = format!("{e:#}");
                println!("bench: live-frames mode refused ({refused}): the relay sends instead (bench::relay)");
                Sender::Relay(Relay::new(&lab, refs.prog(LIVE_SENDER)?, cpu)?, refused)
            }
        };
        Ok(Live {
            guard,
            sender,
            refs,
            lab,
            frame,
            nft_table: crate::netns::unique_name("oglv"),
            cpu,
            ksoftirqd: sys::Ksoftirqd::find(),
            guard_attached: false,
        })
    }

    fn nft(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["nft"];
        full.extend_from_slice(args);
        self.lab.core.exec_ok(&full)
    }

    fn set_attackers(&mut self, stage: Option<(u32, u64, u64)>) -> Result<()> {
        for a in 0..N_ATTACK {
            let k = DeviceKey::teid(ATTACK_BASE + a);
            match stage {
                Some((st, limit, burst)) => self
                    .guard
                    .maps
                    .set_stage(&k, &stage_entry(st, limit, burst, HOUR_NS))
                    .context("writing N3_STAGES")?,
                None => {
                    self.guard.maps.clear_stage(&k).context("clearing N3_STAGES")?;
                }
            }
        }
        Ok(())
    }

    fn attach_guard(&mut self) -> Result<()> {
        if self.guard_attached {
            return Ok(());
        }
        let dev = self.lab.core_ifname().to_owned();
        let mut tries = 0;
        loop {
            let loaded = &mut self.guard.loaded;
            let d = dev.clone();
            match self.lab.core.run(move || loaded.attach(&d, ModeRequest::Native)).context("entering the core ns")? {
                Ok(_) => break,
                // A just-detached program's link is released from a work queue (EEXIST meanwhile).
                Err(_) if tries < 30 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e).context("attaching guard_n3 natively to the CORE veth"),
            }
        }
        self.guard_attached = true;
        Ok(())
    }

    fn detach_guard(&mut self) -> Result<()> {
        if self.guard_attached {
            load::detach(&self.guard.scope.pins, false).context("detaching guard_n3")?;
            self.guard_attached = false;
        }
        Ok(())
    }

    /// Per device (benign, attacking): packets that passed (packets − dropped) and drops.
    fn device_totals(&self) -> Result<((u64, u64), (u64, u64))> {
        let mut b = (0, 0);
        let mut a = (0, 0);
        for (base, n, acc) in [(BENIGN_BASE, N_BENIGN, &mut b), (ATTACK_BASE, N_ATTACK, &mut a)] {
            for i in 0..n {
                if let Some(d) = self.guard.maps.device(&DeviceKey::teid(base + i))? {
                    acc.0 += d.packets().saturating_sub(d.dropped());
                    acc.1 += d.dropped();
                }
            }
        }
        Ok((b, a))
    }

    /// Counters of the nft table's rules, in rule order.
    fn nft_counters(&self) -> Result<Vec<u64>> {
        let out = self.nft(&["list", "table", "netdev", &self.nft_table])?;
        Ok(out
            .split("counter packets ")
            .skip(1)
            .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .collect())
    }

    /// Send `frames`; the wall time and the CPU time the run's figure is made of: the whole path
    /// (live frames), or the CORE veth's receiving thread alone (the relay).
    fn send(&mut self, frames: u32) -> Result<(f64, f64, Option<f64>)> {
        if let Sender::Relay(relay, _) = &self.sender {
            let r = relay.send(&self.lab, &self.frame, u64::from(frames), RELAY_PACE)?;
            return Ok((r.wall_s, r.receiver_ns as f64, Some(r.sender_ns as f64)));
        }
        let k0 = self.ksoftirqd.runtime_ns();
        let (wall, thread_ns) = live_frames(&self.lab, &mut self.refs, &self.frame, self.cpu, frames)?;
        // Softirq work deferred to ksoftirqd finishes within a few ms.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let k1 = self.ksoftirqd.runtime_ns();
        Ok((wall, (thread_ns + k1.saturating_sub(k0)) as f64, None))
    }

    /// One run of `filter` on the mixed flood (`mixed`) or on attack traffic alone.
    fn run(&mut self, filter: Filter, mixed: bool, frames: u32, limit: u64) -> Result<Run> {
        let burst = (limit / 10).max(5);
        let ran_index = self.lab.ran.ifindex(self.lab.ran_ifname())?;
        let benign = if mixed { (BENIGN_BASE, N_BENIGN) } else { (BENIGN_BASE, 0) };
        self.refs.live_config(ran_index, benign, (ATTACK_BASE, N_ATTACK))?;
        let dev = self.lab.core_ifname().to_owned();
        let mut xdp_link = None;
        match filter {
            Filter::XdpDrop => {
                let p = self.refs.prog(DROP)?;
                let d = dev.clone();
                xdp_link =
                    Some(self.lab.core.run(move || p.attach(&d, XdpMode::Driver))?.context("attaching xdp_drop")?);
            }
            Filter::GuardQuarantine => {
                self.set_attackers(Some((STAGE_QUARANTINE, 0, 0)))?;
                self.attach_guard()?;
            }
            Filter::GuardShape => {
                self.set_attackers(Some((STAGE_SHAPE, limit, burst)))?;
                self.attach_guard()?;
            }
            Filter::Nft | Filter::NftBlock => {
                let t = self.nft_table.clone();
                self.nft(&["add", "table", "netdev", &t])?;
                let chain = format!("{{ type filter hook ingress device {dev} priority 0; policy accept; }}");
                self.nft(&["add", "chain", "netdev", &t, "ingress", &chain])?;
                // Rules on the GTP-U port, in order: count all, the filter (counted), count benign.
                let rule = |tail: &[&str]| {
                    let mut args = vec!["add", "rule", "netdev", t.as_str(), "ingress", "udp", "dport", "2152"];
                    args.extend_from_slice(tail);
                    self.nft(&args)
                };
                rule(&["counter"])?;
                if filter == Filter::Nft {
                    let meter = format!("{{ @th,96,32 limit rate over {limit}/second burst {burst} packets }}");
                    rule(&["meter", "teids", &meter, "counter", "drop"])?;
                } else {
                    let set = (0..N_ATTACK).map(|a| format!("{:#x}", ATTACK_BASE + a)).collect::<Vec<_>>().join(", ");
                    rule(&["@th,96,32", &format!("{{ {set} }}"), "counter", "drop"])?;
                }
                let benign = format!("{BENIGN_BASE:#x}-{:#x}", BENIGN_BASE + N_BENIGN - 1);
                rule(&["@th,96,32", &benign, "counter"])?;
            }
            Filter::None => {}
        }
        let guard = matches!(filter, Filter::GuardQuarantine | Filter::GuardShape);
        let before = if guard { Some((self.device_totals()?, self.guard.counters())) } else { None };
        let sent = self.send(frames);
        let mut r = Run { frames: u64::from(frames), mixed, ..Run::default() };
        let outcome = (|| -> Result<()> {
            let (wall, cpu, sender) = sent?;
            r.wall_s = wall;
            r.cpu_ns = cpu;
            r.sender_ns = sender;
            if let Some((((b0, bd0), (_, ad0)), c0)) = &before {
                let ((b1, bd1), (_, ad1)) = self.device_totals()?;
                r.benign_passed = Some(b1 - b0);
                r.benign_dropped = Some(bd1 - bd0);
                r.attack_dropped = Some(ad1 - ad0);
                r.seen = Some(self.guard.counters().since(c0).moved_verdicts().iter().map(|(_, n)| n).sum());
            }
            if matches!(filter, Filter::Nft | Filter::NftBlock) {
                let c = self.nft_counters()?;
                if c.len() != 3 {
                    bail!("expected 3 nft counters, found {c:?}");
                }
                r.seen = Some(c[0]);
                r.attack_dropped = Some(c[1]);
                r.benign_passed = Some(c[2]);
            }
            Ok(())
        })();
        // Tear down whatever this filter set up, whatever happened.
        match filter {
            Filter::XdpDrop => {
                if let (Some(l), Ok(p)) = (xdp_link, self.refs.prog(DROP)) {
                    p.detach(l).context("detaching xdp_drop")?;
                }
            }
            Filter::GuardQuarantine | Filter::GuardShape => {
                self.detach_guard()?;
                self.set_attackers(None)?;
            }
            Filter::Nft | Filter::NftBlock => {
                let t = self.nft_table.clone();
                self.nft(&["delete", "table", "netdev", &t])?;
            }
            Filter::None => {}
        }
        outcome?;
        Ok(r)
    }
}

/// `frames` runs of `xdp_live_sender` in live-frames mode from the RAN namespace on `cpu`: the wall
/// time and the sending thread's CPU time (the receive softirq it ran included).
fn live_frames(lab: &Lab, refs: &mut RefProgs, frame: &[u8], cpu: usize, frames: u32) -> Result<(f64, u64)> {
    let ran_index = lab.ran.ifindex(lab.ran_ifname())?;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex. The frame "arrives" on the RAN veth (looked up in the caller's netns).
    let mut md = [0u8; 24];
    md[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    md[12..16].copy_from_slice(&ran_index.to_ne_bytes());
    let sender = refs.prog(LIVE_SENDER)?;
    lab.ran
        .run(move || -> Result<(f64, u64)> {
            affinity::pin_to_cpu(cpu)?;
            let t0 = sys::thread_cpu_ns();
            let w0 = Instant::now();
            sender
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    ctx_in: Some(&md),
                    repeat: frames,
                    attrs: TestRunAttrs::new().xdp_live_frames(64),
                    ..Default::default()
                })
                .context("BPF_PROG_TEST_RUN in live-frames mode")?;
            Ok((w0.elapsed().as_secs_f64(), sys::thread_cpu_ns() - t0))
        })
        .context("entering the RAN namespace")?
}

/// Whether the kernel runs `xdp_live_sender` in live-frames mode: 64 frames of attack traffic
/// (nothing on the CORE end, so they reach its stack and are dropped there).
fn probe_live_frames(lab: &Lab, refs: &mut RefProgs, frame: &[u8], cpu: usize) -> Result<()> {
    let ran_index = lab.ran.ifindex(lab.ran_ifname())?;
    refs.live_config(ran_index, (BENIGN_BASE, 0), (ATTACK_BASE, N_ATTACK))?;
    live_frames(lab, refs, frame, cpu, 64).map(|_| ())
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = load::detach(&self.guard.scope.pins, false);
    }
}

/// The live-frames floods (attack only, then mixed) for every filter, interleaved over rounds;
/// returns the table and the goal row.
pub fn live_part(cfg: &GuardConfig, quick: bool) -> Result<(Vec<Table>, Vec<Vec<String>>)> {
    let mut live = Live::new(cfg)?;
    // The relay sends at RELAY_PACE (its sender alone costs 1.6-1.8 µs a frame, BENCHMARKS §27),
    // where live-frames mode sends from inside the kernel: fewer frames keep a run to a few
    // seconds (600,000 at 150,000 a second: 4 s).
    let relayed = matches!(live.sender, Sender::Relay(..));
    let frames: u32 = match (relayed, quick) {
        (false, false) => 4_000_000,
        (false, true) => 1_000_000,
        (true, false) => 600_000,
        (true, true) => 250_000,
    };
    let rounds = if quick { 2 } else { 3 };
    println!("bench: part 2b: live-frames flood, {frames} frames per run, {rounds} rounds, CPU {}", live.cpu);
    // The per-device limit: 4x a benign device's rate in the mixed flood, the same for the
    // guard's shape stage and the nftables meter. The relay's rate is fixed; live-frames mode's
    // moves with the machine's load, so it is measured every round, the guard quarantining the
    // attackers (the fastest a benign device gets there).
    let n = Filter::ALL.len();
    // runs[mixed][filter]
    let mut runs: [Vec<Vec<Run>>; 2] = [vec![Vec::new(); n], vec![Vec::new(); n]];
    let mut limits = Vec::new();
    for _ in 0..rounds {
        // The relay offers a fixed rate; live-frames mode sends as fast as it can, so its rate is
        // measured in a calibration run.
        let benign_pps = if relayed {
            RELAY_PACE / 2.0 / f64::from(N_BENIGN)
        } else {
            let cal = live.run(Filter::GuardQuarantine, true, frames / 2, 0)?;
            ratio(cal.frames as f64 / 2.0 / f64::from(N_BENIGN), cal.wall_s)
        };
        let limit = ((benign_pps * LIMIT_FACTOR).ceil() as u64).max(1);
        limits.push(limit);
        for (m, mixed) in [false, true].into_iter().enumerate() {
            for (i, f) in Filter::ALL.iter().enumerate() {
                let r = live
                    .run(*f, mixed, frames, limit)
                    .with_context(|| format!("live-frames flood through {}", f.name()))?;
                runs[m][i].push(r);
            }
        }
    }
    let limit = limits.last().copied().unwrap_or(0);
    let med = |m: usize, i: usize| median(&runs[m][i].iter().map(Run::ns_per_frame).collect::<Vec<_>>());
    let last = |m: usize, i: usize| runs[m][i].last().copied().unwrap_or_default();
    let nft = Filter::ALL.iter().position(|f| *f == Filter::Nft).unwrap_or(0);
    let shape = Filter::ALL.iter().position(|f| *f == Filter::GuardShape).unwrap_or(0);
    let drop = Filter::ALL.iter().position(|f| *f == Filter::XdpDrop).unwrap_or(0);
    let quar = Filter::ALL.iter().position(|f| *f == Filter::GuardQuarantine).unwrap_or(0);
    let block = Filter::ALL.iter().position(|f| *f == Filter::NftBlock).unwrap_or(0);
    let none = Filter::ALL.iter().position(|f| *f == Filter::None).unwrap_or(0);
    let mut t = Table::new(
        "Flood on one core, XDP frames (live-frames mode, or the relay): attack traffic alone, then mixed with benign traffic",
        &[
            "filter",
            "attack only: CPU ns/frame",
            "frames per CPU-second",
            "vs nftables",
            "attack dropped / sent",
            "mixed: CPU ns/frame",
            "vs nftables",
            "attack dropped / sent",
            "benign passed / sent",
            "seen by the filter (both runs)",
        ],
    );
    let opt = |v: Option<u64>, of: u64| v.map_or("-".to_owned(), |v| format!("{v} / {of}"));
    // Frames per CPU-second at `ns` a frame.
    let mps = |ns: f64| format!("{} M", num(ratio(1e3, ns), 2));
    for (i, f) in Filter::ALL.iter().enumerate() {
        let (a, b) = (last(0, i), last(1, i));
        let seen = match (a.seen, b.seen) {
            (Some(x), Some(y)) => format!("{x} / {}, {y} / {}", a.frames, b.frames),
            _ => "-".into(),
        };
        t.row(vec![
            f.name().into(),
            num(med(0, i), 0),
            mps(med(0, i)),
            format!("{}x", num(ratio(med(0, nft), med(0, i)), 2)),
            opt(a.attack_dropped, a.attack_sent()),
            num(med(1, i), 0),
            format!("{}x", num(ratio(med(1, nft), med(1, i)), 2)),
            opt(b.attack_dropped, b.attack_sent()),
            opt(b.benign_passed, b.benign_sent()),
            seen,
        ]);
    }
    // What the relay achieved: a row whose runs fell behind the pace was offered less.
    let achieved = |i: usize| {
        runs.iter().flat_map(|m| m[i].iter()).map(|r| ratio(r.frames as f64, r.wall_s)).fold(f64::INFINITY, f64::min)
    };
    let pace_note = if relayed {
        format!(
            "the relay offers {} frames a second to every filter; the slowest run of each row: {}",
            num(RELAY_PACE, 0),
            Filter::ALL
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{} {}", f.short(), num(achieved(i), 0)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "measured in a calibration run before each round (mixed, guard, attackers quarantined)".to_owned()
    };
    t.note(format!("Floods: attack only ({N_ATTACK} attacking TEIDs in turn), and mixed ({N_BENIGN} benign TEIDs alternating with the {N_ATTACK} attackers, 5% of the devices, so each attacker sends {}x a benign device's rate); {}-byte IPv4 G-PDUs with a UL PDU Session Container (QFI 9, as 5G uplink G-PDUs carry), one gNB. Per-device limit {limit} pps in the last round (burst {}; rounds: {limits:?}): {LIMIT_FACTOR}x a benign device's rate in the mixed flood ({}), the same for the guard's shape stage and the nftables meter. {rounds} rounds, filters and floods interleaved; CPU = {}, median per frame. In the mixed flood every filter also pays for delivering the benign half to the CORE stack as skbs, the same for all; so does a limit's passed share of the attack (the shape stage and the meter pass the same).", N_BENIGN / N_ATTACK, live.frame.len(), (limit / 10).max(5), pace_note, if relayed { "the CORE veth's receiving NAPI thread's CPU time (the receive side alone)" } else { "the sending thread's CPU time (the receive softirq runs in it) plus ksoftirqd's" }));
    // The relay's sending side per frame, median over every run (kept out of each row).
    let sender_ns = median(
        &runs
            .iter()
            .flatten()
            .flatten()
            .filter_map(|r| r.sender_ns.map(|n| ratio(n, r.frames as f64)))
            .collect::<Vec<_>>(),
    );
    match &live.sender {
        Sender::LiveFrames => t.note("Sender: `xdp_live_sender` under BPF_PROG_TEST_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES` (batches of 64), redirecting out of the RAN veth; the CORE veth receives XDP frames in the same softirq on the same CPU. Every row pays the same sender and veth cost: the `xdp_drop` row is that cost plus the cheapest possible drop, so (row − xdp_drop) is the filter's own cost. nftables and the no-filter row get an skb built from each frame (GRO on the CORE veth gives it the NAPI that receives redirected frames)."),
        Sender::Relay(_, refused) => t.note(format!("Sender: this kernel refuses live-frames mode ({refused}), so a relay sends (`tests/src/bench/relay.rs`): an AF_PACKET socket sends one G-PDU into a second veth pair in the RAN namespace, where `xdp_live_sender`, attached natively, rewrites each frame's TEID and redirects it out of the RAN veth, which hands it to the CORE end as an XDP frame (no skb), as live-frames mode does. The CORE end's NAPI runs in a kernel thread of its own (`/sys/class/net/IF/threaded`), pinned to the sender's CPU, which runs at SCHED_FIFO: it runs only while the sender waits for each burst of 192 frames to drain, so it polls them in batches of up to 64, as under load from a NIC, and its CPU time (schedstat) is the receive side alone, without the sender's {} ns a frame (median: the sending thread and the relay veth's NAPI thread). The `xdp_drop` row is veth's own receive cost plus the cheapest possible drop, so (row − xdp_drop) is the filter's own cost. nftables and the no-filter row get an skb built from each frame (GRO on the CORE veth gives it its NAPI).", num(sender_ns, 0))),
    }
    t.note("Counts: the guard's per-device counters (packets − dropped, dropped) for the TEIDs of each class and its verdict counters (seen); nftables: its rule counters (seen, meter drops, benign TEID range). A NIC driver hands XDP its frames the same way (no skb); what differs is the driver's own cost per frame.");
    let (g_ns, n_ns, d_ns) = (med(0, shape), med(0, nft), med(0, drop));
    let x = ratio(n_ns, g_ns);
    let own = ratio(n_ns - d_ns, g_ns - d_ns);
    let (gm, nm) = (last(1, shape), last(1, nft));
    let dropped = |r: &Run| r.benign_dropped().map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let (gl, nl) = (dropped(&gm), dropped(&nm));
    let unseen = gm.unseen() + nm.unseen();
    let unseen_note = if unseen == 0 {
        String::new()
    } else {
        format!(
            " ({} + {} frames never reached the guard + nftables: the veth dropped them before the hook)",
            gm.unseen(),
            nm.unseen()
        )
    };
    let met = x >= 3.0 && gm.benign_dropped() == Some(0) && nm.benign_dropped() == Some(0);
    let per_frame = if relayed { "receive side" } else { "whole path" };
    let base_is = if relayed { "veth's receive and the cheapest drop are" } else { "the sender and veth are" };
    // The attack frames a limit passes go up the CORE stack as skbs, the same number for the
    // shape stage and the meter: priced at the no-filter row's cost per frame above xdp_drop's.
    let a = last(0, shape);
    let passed = a.attack_sent().saturating_sub(a.attack_dropped.unwrap_or(0));
    let passed_ns = ratio(passed as f64, a.attack_sent() as f64) * (med(0, none) - d_ns);
    let shape_goal = goal_row(
        "guard (shape) drops attack traffic ≥ 3x the rate an nftables netdev meter does, same core and limit, no benign loss (XDP frames on veth)",
        format!(
            "attack only: guard {} vs nftables meter {} frames per CPU-second = {}x (above xdp_drop's {} ns: {}x); mixed flood: benign dropped by the guard {gl}, by nftables {nl}{unseen_note}",
            mps(g_ns),
            mps(n_ns),
            num(x, 2),
            num(d_ns, 0),
            num(own, 1),
        ),
        met,
        || {
            format!(
                "{per_frame} per frame: guard {} ns, nftables {} ns, of which {base_is} {} ns. At the same limit both pass the same share of the attack ({passed} of {} frames here), each built into an skb and taken up the CORE stack: ~{} ns a frame at the no-filter row's price, a cost both rows carry, so a guard that cost nothing would reach ~{}x",
                num(g_ns, 0),
                num(n_ns, 0),
                num(d_ns, 0),
                a.attack_sent(),
                num(passed_ns, 0),
                num(ratio(n_ns, d_ns + passed_ns), 1),
            )
        },
    );
    let (q_ns, b_ns) = (med(0, quar), med(0, block));
    let q = ratio(b_ns, q_ns);
    let (qm, bm) = (last(1, quar), last(1, block));
    let q_met = q >= 3.0 && qm.benign_dropped() == Some(0) && bm.benign_dropped() == Some(0);
    let quarantine_goal = goal_row(
        "guard (quarantine) drops attack traffic ≥ 3x the rate an nftables TEID set does, same core, no benign loss (XDP frames on veth)",
        format!(
            "attack only: guard {} vs nftables set {} frames per CPU-second = {}x (above xdp_drop's {} ns: {}x); mixed flood: benign dropped by the guard {}, by nftables {}",
            mps(q_ns),
            mps(b_ns),
            num(q, 2),
            num(d_ns, 0),
            num(ratio(b_ns - d_ns, q_ns - d_ns), 1),
            dropped(&qm),
            dropped(&bm),
        ),
        q_met,
        || {
            format!(
                "{per_frame} per frame: guard {} ns, nftables {} ns, of which {base_is} {} ns",
                num(q_ns, 0),
                num(b_ns, 0),
                num(d_ns, 0)
            )
        },
    );
    Ok((vec![t], vec![shape_goal, quarantine_goal]))
}
