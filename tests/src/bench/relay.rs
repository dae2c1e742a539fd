//! The live-frames flood's sender where BPF_PROG_TEST_RUN refuses the live-frames mode (EPERM on
//! this project's CI kernel): a relay that still hands the CORE veth XDP frames, not skbs.
//!
//! An AF_PACKET socket sends one G-PDU into a second veth pair inside the RAN namespace
//! (`gen0` → `gen1`). `xdp_live_sender`, attached natively to `gen1`, rewrites each frame's TEID
//! to the next device of the flood and redirects it out of the RAN veth, whose `ndo_xdp_xmit`
//! puts it in the CORE end's ring as an XDP frame: what the filter sees is what it would see from
//! a NIC driver, as in live-frames mode.
//!
//! The sender's own cost (socket, skb, the copy into `gen1`'s XDP buffer) is several times a
//! filter's, so it is kept out of the figure: the CORE end's NAPI runs threaded (its `threaded`
//! sysfs switch), in a kernel thread of its own, and that thread's CPU time (schedstat) is the
//! receive side alone: veth's handling of the frame, the filter, and for frames a filter passes
//! (or nftables, which needs one) the skb built from the frame and the stack above it. `gen1`'s
//! NAPI runs threaded too. Both threads are pinned to the sender's CPU, and the sender runs at
//! SCHED_FIFO, so they run only while it waits: it sends a burst that fits veth's ring (256
//! frames) and waits until both threads have drained it and gone back to sleep. The CORE end then
//! takes each burst in NAPI polls of up to 64 frames, as under load from a NIC, instead of being
//! woken for every frame. (The threads at SCHED_IDLE would do the same on a quiet machine, but
//! any other task on that CPU starves them.)
//!
//! The bursts go out at a fixed pace, the same for every filter (`Relay::send`): left to each
//! filter's own speed, a cheaper filter would be offered more frames a second, and a per-device
//! limit would pass a different share of the attack through each.

use std::ffi::CString;
use std::io;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::programs::{Xdp, XdpMode};

use crate::affinity;
use crate::bench::sys;
use crate::generator::{FrameSocket, Sent};
use crate::lab::Lab;
use crate::netns::{Netns, VethEnd, VethPair};

const GEN_TX: &str = "gen0";
const GEN_RX: &str = "gen1";
/// Frames per burst: three NAPI polls' worth, inside veth's 256-frame ring (`VETH_RING_SIZE`).
const BURST: usize = 192;
/// Frames per `sendmmsg`.
const BATCH: usize = 64;
/// The least first wait per frame of a burst, ns.
const MIN_DRAIN_NS: u64 = 50;
/// The longest the sender waits for one burst to drain before it calls the run failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// The longest one run may take (a run of 1,000,000 frames takes ~5 s on the project's VM).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// A NAPI kernel thread: pid and name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NapiThread {
    pid: i32,
    comm: String,
}

/// The relay's veth pair, `gen1`'s NAPI thread and the CORE end's.
pub struct Relay {
    // Deleted with its namespace at the latest; dropped first so the lab's drop finds it gone.
    _pair: VethPair,
    relay: NapiThread,
    receiver: NapiThread,
    cpu: usize,
}

/// One relayed run: wall time, the sending side's CPU time (the sending thread and `gen1`'s NAPI
/// thread), the receiving thread's CPU time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relayed {
    pub wall_s: f64,
    pub sender_ns: u64,
    pub receiver_ns: u64,
}

impl Relay {
    /// Build the relay in `lab`'s RAN namespace with `sender` (`xdp_live_sender`, configured by
    /// the caller to redirect to the RAN veth) on `gen1`; switch the CORE end's NAPI to a thread
    /// pinned to `cpu`. The CORE end's GRO must be on (its NAPI exists).
    pub fn new(lab: &Lab, sender: &mut Xdp, cpu: usize) -> Result<Relay> {
        // No IPv6 on the relay's pair: its link-local chatter (router solicitations, MLD) would
        // be relayed to the CORE end as G-PDUs with a rewritten "TEID".
        lab.ran
            .exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .context("disabling IPv6 on new interfaces in the RAN namespace")?;
        let pair = VethPair::new(VethEnd::new(&lab.ran, GEN_TX), VethEnd::new(&lab.ran, GEN_RX), lab.mtu)
            .context("creating the relay's veth pair in the RAN namespace")?;
        lab.ran
            .run(|| sender.attach(GEN_RX, XdpMode::Driver))?
            .context("attaching xdp_live_sender natively to the relay's veth")?;
        let relay = threaded_napi(&lab.ran, GEN_RX, cpu).context("the relay veth's NAPI")?;
        let receiver = threaded_napi(&lab.core, lab.core_ifname(), cpu).context("the CORE veth's NAPI")?;
        Ok(Relay { _pair: pair, relay, receiver, cpu })
    }

    /// The two NAPI threads' run times so far, ns: (`gen1`'s, the CORE end's).
    fn napi_ns(&self) -> Result<(u64, u64)> {
        Ok((self.relay.runtime_ns()?, self.receiver.runtime_ns()?))
    }

    /// Whether both NAPI threads are asleep: `gen1`'s has redirected every frame sent (it wakes
    /// the CORE end's before it sleeps) and the CORE end's has polled every one.
    fn drained(&self) -> bool {
        [&self.relay, &self.receiver].iter().all(|t| asleep(t.pid))
    }

    /// Send `frames` copies of `frame` in bursts from the RAN namespace, each burst drained by
    /// the receiving thread before the next, and none before its time at `pace` frames a second
    /// (so every filter is offered the same rate, whatever its cost: a per-device limit then
    /// passes the same share of the attack through each).
    pub fn send(&self, lab: &Lab, frame: &[u8], frames: u64, pace: f64) -> Result<Relayed> {
        if !(pace.is_finite() && pace > 0.0) {
            bail!("the relay's pace must be a positive number of frames a second, not {pace}");
        }
        let cpu = self.cpu;
        let ifname = CString::new(GEN_TX).context("ifname")?;
        let (g0, r0) = self.napi_ns()?;
        let (wall_s, sender_ns) = lab.ran.run(|| -> Result<(f64, u64)> {
            affinity::pin_to_cpu(cpu)?;
            // Real-time: the NAPI threads it wakes cannot preempt it mid-burst (it sleeps after
            // each burst, and the kernel's RT throttling bounds it anyway). This thread ends with
            // the run.
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: the calling thread (pid 0), a valid parameter.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                return Err(io::Error::last_os_error()).context("setting the relay's sender to SCHED_FIFO");
            }
            // SAFETY: valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
            if ifindex == 0 {
                bail!("no {GEN_TX} in the RAN namespace");
            }
            let one = [frame];
            let mut sock = FrameSocket::open(ifindex, &one, BATCH, true).context("the relay's packet socket")?;
            let t0 = sys::thread_cpu_ns();
            let w0 = Instant::now();
            // The sender's sleeps wake it within 1 µs, not the default 50 µs slack.
            // SAFETY: prctl with an integer argument, on the calling thread.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
            // The wait after a burst, per frame, ns: about the time the threads take to drain it,
            // so the sender seldom wakes (and preempts) them mid-burst, nor idles long after.
            let mut drain_ns_per_frame = 1_000u64;
            let mut sent = 0u64;
            while sent < frames {
                if w0.elapsed() > RUN_LIMIT {
                    bail!("the relay sent {sent} of {frames} frames in {RUN_LIMIT:?}: stopped");
                }
                let burst = (frames - sent).min(BURST as u64);
                let mut in_burst = 0u64;
                while in_burst < burst {
                    let n = (burst - in_burst).min(BATCH as u64) as usize;
                    match sock.send(0, n).context("sendmmsg on the relay's veth")? {
                        Sent::Took(took) => in_burst += took as u64,
                        Sent::Busy => {
                            if w0.elapsed() > RUN_LIMIT {
                                bail!("sendmmsg on the relay's veth pushed back past the run's limit ({RUN_LIMIT:?})");
                            }
                            std::thread::sleep(Duration::from_micros(20));
                        }
                    }
                }
                sent += burst;
                let b0 = Instant::now();
                std::thread::sleep(Duration::from_nanos(drain_ns_per_frame * burst));
                if self.drained() {
                    // Drained within the guess: guess a little less (the sleep only idles the
                    // CPU), slowly, so that few bursts are cut into by the sender waking.
                    drain_ns_per_frame = (drain_ns_per_frame * 31 / 32).max(MIN_DRAIN_NS);
                } else {
                    while !self.drained() {
                        if b0.elapsed() > DRAIN_LIMIT {
                            bail!("the NAPI threads did not drain a burst of {burst} frames in {DRAIN_LIMIT:?}");
                        }
                        std::thread::sleep(Duration::from_micros(10));
                    }
                    drain_ns_per_frame = (b0.elapsed().as_nanos() as u64 * 9 / 8 / burst).clamp(MIN_DRAIN_NS, 20_000);
                }
                // The next burst at its time on the pace (none, if the filter could not keep up).
                let due = w0 + Duration::from_secs_f64(sent as f64 / pace);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            Ok((w0.elapsed().as_secs_f64(), sys::thread_cpu_ns() - t0))
        })??;
        let (g1, r1) = self.napi_ns()?;
        Ok(Relayed { wall_s, sender_ns: sender_ns + (g1 - g0), receiver_ns: r1 - r0 })
    }
}

impl NapiThread {
    /// Its run time so far, ns (schedstat's first field); an error if the pid is no longer this
    /// thread (the interface's NAPI was rebuilt).
    fn runtime_ns(&self) -> Result<u64> {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
        if comm.trim() != self.comm {
            bail!("the NAPI thread {} (pid {}) is gone (now {:?})", self.comm, self.pid, comm.trim());
        }
        let s = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid)).context("reading schedstat")?;
        s.split_whitespace().next().and_then(|x| x.parse().ok()).context("parsing schedstat")
    }
}

/// Switch `ifname`'s NAPI (in `ns`) to a kernel thread of its own, pinned to `cpu`.
fn threaded_napi(ns: &Netns, ifname: &str, cpu: usize) -> Result<NapiThread> {
    let before = napi_threads();
    ns.exec_ok(&["sh", "-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")])
        .with_context(|| format!("switching {ifname}'s NAPI to a thread (/sys/class/net/{ifname}/threaded)"))?;
    let fresh: Vec<NapiThread> = napi_threads().into_iter().filter(|t| !before.contains(t)).collect();
    let [t] = fresh.as_slice() else {
        bail!("expected one new NAPI thread for {ifname}, found {fresh:?}");
    };
    affinity::pin_thread_to_cpu(t.pid, cpu)?;
    Ok(t.clone())
}

/// Whether thread `pid` is asleep ('S': a NAPI thread waits interruptibly for work).
fn asleep(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next().map(|st| st == "S")))
        .unwrap_or(false)
}

/// Kernel threads named `napi/...`.
fn napi_threads() -> Vec<NapiThread> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
            if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
                if c.starts_with("napi/") {
                    v.push(NapiThread { pid, comm: c.trim().to_owned() });
                }
            }
        }
    }
    v
}
