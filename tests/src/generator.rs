//! A bounded GTP-U traffic generator: from inside a namespace, send prebuilt Ethernet frames over
//! an AF_PACKET raw socket bound to one interface, with `sendmmsg` batches. Both a packet cap and
//! a deadline are mandatory; pacing is optional. Frames are sent round-robin from the list, so
//! the mix of devices is the mix of the list.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::decode::{decode, Decoded};
use crate::frames::GTPU_PORT;
use crate::netns::{enter_netns, Netns};

/// Limits and pacing of one run.
#[derive(Clone, Debug)]
pub struct SendOpts {
    /// Stop after this many packets in total (over all threads).
    pub max_packets: u64,
    /// Stop at this time after the start, whatever was sent.
    pub deadline: Duration,
    /// Packets per second in total; `None` sends as fast as the kernel takes them.
    pub pps: Option<u64>,
    /// Frames per `sendmmsg` call (1..=1024).
    pub batch: usize,
    /// Sending threads (1..=16); each has its own socket and a share of the cap and rate.
    pub threads: usize,
    /// Set PACKET_QDISC_BYPASS (skip the qdisc layer; veth's default is noqueue anyway).
    pub qdisc_bypass: bool,
    /// UDP port that counts as GTP-U when accounting per TEID.
    pub gtpu_port: u16,
    /// Pin the sending threads to this CPU. On a veth the receiver's XDP program runs on the
    /// sending CPU, so this puts every packet on one CPU, as a NIC does with the packets of one
    /// path (one RSS hash) or a single receive queue.
    pub cpu: Option<usize>,
}

impl SendOpts {
    /// Both limits are mandatory.
    pub fn new(max_packets: u64, deadline: Duration) -> Self {
        SendOpts {
            max_packets,
            deadline,
            pps: None,
            batch: 64,
            threads: 1,
            qdisc_bypass: false,
            gtpu_port: GTPU_PORT,
            cpu: None,
        }
    }

    pub fn cpu(mut self, cpu: Option<usize>) -> Self {
        self.cpu = cpu;
        self
    }

    pub fn pps(mut self, pps: u64) -> Self {
        self.pps = Some(pps);
        self
    }

    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    pub fn qdisc_bypass(mut self, on: bool) -> Self {
        self.qdisc_bypass = on;
        self
    }
}

/// What was actually handed to the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Packets accepted by `sendmmsg`.
    pub sent: u64,
    /// Sent G-PDUs and other GTP-U messages per TEID (decoded by labkit's own decoder).
    pub per_teid: BTreeMap<u32, u64>,
    /// Sent count per index of the input frame list.
    pub per_frame: Vec<u64>,
    /// Sent frames that are not GTP-U to `gtpu_port` (or malformed GTP-U).
    pub non_gtp: u64,
    pub elapsed: Duration,
    /// True when the deadline, not the cap, ended the run.
    pub hit_deadline: bool,
    /// `sendmmsg` calls that failed with ENOBUFS/EAGAIN/EINTR and were retried.
    pub retries: u64,
}

impl SendReport {
    /// Achieved rate.
    pub fn pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.sent as f64 / s
        } else {
            0.0
        }
    }
}

/// Send `frames` round-robin from namespace `ns` out of `ifname`, within the limits of `opts`.
pub fn send_frames(ns: &Netns, ifname: &str, frames: &[Vec<u8>], opts: &SendOpts) -> Result<SendReport> {
    if frames.is_empty() {
        bail!("no frames to send");
    }
    if opts.max_packets == 0 || opts.deadline.is_zero() {
        bail!("both a packet cap and a deadline are required (got {} packets, {:?})", opts.max_packets, opts.deadline);
    }
    if !(1..=1024).contains(&opts.batch) || !(1..=16).contains(&opts.threads) || opts.pps == Some(0) {
        bail!("batch must be 1..=1024, threads 1..=16, pps > 0");
    }
    let ifindex = ns.ifindex(ifname)?;
    let threads = opts.threads as u64;
    let start = Instant::now();
    let results: Vec<Result<ThreadResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let cap = opts.max_packets / threads + u64::from(t < opts.max_packets % threads);
                let pps = opts.pps.map(|p| (p / threads).max(1));
                let name = ns.name();
                s.spawn(move || -> Result<ThreadResult> {
                    enter_netns(name)?;
                    if let Some(cpu) = opts.cpu {
                        crate::affinity::pin_to_cpu(cpu).context("pinning the sender")?;
                    }
                    let offset = (t as usize * frames.len()) / threads as usize;
                    send_loop(ifindex, frames, offset, cap, pps, start, opts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| Err(anyhow::anyhow!("sender thread panicked: {p:?}"))))
            .collect()
    });
    let mut report = SendReport { per_frame: vec![0; frames.len()], ..SendReport::default() };
    for r in results {
        let r = r?;
        for (i, n) in r.per_frame.iter().enumerate() {
            report.per_frame[i] += n;
        }
        report.retries += r.retries;
        report.hit_deadline |= r.hit_deadline;
    }
    report.elapsed = start.elapsed();
    for (i, &n) in report.per_frame.iter().enumerate() {
        report.sent += n;
        match decode(&frames[i], opts.gtpu_port) {
            Decoded::Gtp(s) => *report.per_teid.entry(s.teid).or_default() += n,
            Decoded::BadGtp | Decoded::Other | Decoded::Fragment { .. } => report.non_gtp += n,
        }
    }
    report.per_teid.retain(|_, n| *n > 0);
    Ok(report)
}

struct ThreadResult {
    per_frame: Vec<u64>,
    retries: u64,
    hit_deadline: bool,
}

pub(crate) struct Fd(pub(crate) libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor.
        unsafe { libc::close(self.0) };
    }
}

pub(crate) fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passing a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(fd, level, opt, (&val as *const libc::c_int).cast(), mem::size_of::<libc::c_int>() as u32)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An AF_PACKET raw socket bound to `ifindex` (in the calling thread's namespace).
pub(crate) fn packet_socket(ifindex: u32, protocol: u16) -> Result<(Fd, libc::sockaddr_ll)> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol.to_be())) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_PACKET, SOCK_RAW)");
    }
    let fd = Fd(fd);
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binding with a valid sockaddr_ll of the right size.
    let rc = unsafe {
        libc::bind(fd.0, (&sll as *const libc::sockaddr_ll).cast(), mem::size_of::<libc::sockaddr_ll>() as u32)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("bind AF_PACKET to ifindex {ifindex}"));
    }
    Ok((fd, sll))
}

/// An AF_PACKET socket that sends prebuilt Ethernet frames with `sendmmsg`, each to the address
/// its own header names (destination MAC, EtherType), round-robin from a list: what the
/// generator's threads and the bench's relay share.
pub(crate) struct FrameSocket<'f, F> {
    fd: Fd,
    frames: &'f [F],
    addrs: Vec<libc::sockaddr_ll>,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

/// What one [`FrameSocket::send`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The kernel took this many frames.
    Took(usize),
    /// It pushed back (ENOBUFS, EAGAIN, EINTR): wait a little and send again.
    Busy,
}

impl<'f, F: AsRef<[u8]>> FrameSocket<'f, F> {
    /// Open on `ifindex` (in the calling thread's namespace), for sends of up to `batch` frames.
    /// A frame shorter than an Ethernet header is an error: it names no address to send to.
    pub(crate) fn open(ifindex: u32, frames: &'f [F], batch: usize, qdisc_bypass: bool) -> Result<Self> {
        // Protocol 0: this socket receives nothing.
        let (fd, base) = packet_socket(ifindex, 0)?;
        if qdisc_bypass {
            setsockopt_int(fd.0, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1).context("PACKET_QDISC_BYPASS")?;
        }
        // Best effort: a larger send buffer only means fewer pushbacks.
        let _ = setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 4 << 20);
        let addrs = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let f = f.as_ref();
                let (Some(dst), Some(ethertype)) = (f.get(..6), f.get(12..14)) else {
                    bail!("frame {i} is {} octets, shorter than an Ethernet header", f.len());
                };
                let mut a = base;
                a.sll_protocol = u16::from_be_bytes([ethertype[0], ethertype[1]]).to_be();
                a.sll_halen = 6;
                a.sll_addr[..6].copy_from_slice(dst);
                Ok(a)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = batch.max(1);
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid.
        let iov = vec![unsafe { mem::zeroed::<libc::iovec>() }; batch];
        // SAFETY: as above.
        let msgs = vec![unsafe { mem::zeroed::<libc::mmsghdr>() }; batch];
        Ok(FrameSocket { fd, frames, addrs, iov, msgs })
    }

    /// Hand the kernel up to `n` frames (at most the batch), round-robin from frame `pos`.
    pub(crate) fn send(&mut self, pos: usize, n: usize) -> Result<Sent> {
        let n = n.min(self.msgs.len());
        let len = self.frames.len();
        if n == 0 || len == 0 {
            return Ok(Sent::Took(0));
        }
        for j in 0..n {
            let idx = (pos + j) % len;
            let frame = self.frames[idx].as_ref();
            self.iov[j].iov_base = frame.as_ptr() as *mut libc::c_void;
            self.iov[j].iov_len = frame.len();
            let h = &mut self.msgs[j].msg_hdr;
            h.msg_name = (&mut self.addrs[idx] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_iov = &mut self.iov[j];
            h.msg_iovlen = 1;
        }
        // SAFETY: msgs[..n] point at live iovecs, addresses and frame buffers (only read).
        let rc = unsafe { libc::sendmmsg(self.fd.0, self.msgs.as_mut_ptr(), n as u32, 0) };
        if rc >= 0 {
            return Ok(Sent::Took(rc as usize));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Sent::Busy),
            _ => Err(e).context("sendmmsg"),
        }
    }
}

fn send_loop(
    ifindex: u32,
    frames: &[Vec<u8>],
    offset: usize,
    cap: u64,
    pps: Option<u64>,
    start: Instant,
    opts: &SendOpts,
) -> Result<ThreadResult> {
    let mut res = ThreadResult { per_frame: vec![0; frames.len()], retries: 0, hit_deadline: false };
    if cap == 0 {
        return Ok(res);
    }
    let batch = match pps {
        // Keep bursts to about 1 ms of traffic when pacing.
        Some(p) => opts.batch.min(usize::try_from(p / 1000).unwrap_or(usize::MAX).max(1)),
        None => opts.batch,
    };
    let mut sock = FrameSocket::open(ifindex, frames, batch, opts.qdisc_bypass)?;
    let deadline = start + opts.deadline;
    let mut sent = 0u64;
    let mut pos = offset % frames.len();
    while sent < cap {
        let now = Instant::now();
        if now >= deadline {
            res.hit_deadline = true;
            break;
        }
        if let Some(p) = pps {
            let due = start + Duration::from_nanos(sent.saturating_mul(1_000_000_000) / p);
            if due > now {
                std::thread::sleep((due - now).min(deadline - now));
                continue;
            }
        }
        let n = batch.min(usize::try_from(cap - sent).unwrap_or(usize::MAX));
        let done = match sock.send(pos, n)? {
            Sent::Took(done) => done,
            Sent::Busy => {
                res.retries += 1;
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
        };
        for j in 0..done {
            res.per_frame[(pos + j) % frames.len()] += 1;
        }
        sent += done as u64;
        pos = (pos + done) % frames.len();
    }
    Ok(res)
}
