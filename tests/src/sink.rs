//! A counting sink: an AF_PACKET raw socket (ETH_P_ALL) on the core-side interface that counts
//! what each device delivered, independently of the guard's own counters. It sees only what
//! arrives on the interface and was not dropped by XDP (XDP_PASS frames reach AF_PACKET, XDP_DROP
//! frames do not). Outgoing frames are ignored.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::decode::{decode, Decoded};
use crate::frames::GTPU_PORT;
use crate::generator::{packet_socket, setsockopt_int};
use crate::netns::Netns;

const BATCH: usize = 64;
/// Bytes kept per received frame; longer frames are counted from their first bytes.
pub const SNAPLEN: usize = 16 * 1024;

/// Options of a [`Sink`].
#[derive(Clone, Debug)]
pub struct SinkOpts {
    /// UDP destination port that counts as GTP-U.
    pub gtpu_port: u16,
    /// Keep the first `sample` received frames (of any kind) in the report.
    pub sample: usize,
    /// Count GTP-U messages per F-TEID (outer destination, TEID: TS 29.281 §5.1) in
    /// [`SinkReport::per_fteid`] *instead of* per TEID: for hosts with several N3 addresses, where
    /// two sessions may share a TEID.
    pub by_fteid: bool,
    /// Inner source prefixes whose G-PDUs are also counted in [`SinkReport::per_fteid_marked`]
    /// (the lab's forged sources).
    pub marked: Vec<(IpAddr, u8)>,
}

impl Default for SinkOpts {
    fn default() -> Self {
        SinkOpts { gtpu_port: GTPU_PORT, sample: 0, by_fteid: false, marked: Vec::new() }
    }
}

fn in_prefix(a: IpAddr, (n, len): (IpAddr, u8)) -> bool {
    match (a, n) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// What arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// GTP-U messages (any message type) per TEID (unless [`SinkOpts::by_fteid`]).
    pub per_teid: BTreeMap<u32, u64>,
    /// With [`SinkOpts::by_fteid`]: GTP-U messages per (outer destination, TEID).
    pub per_fteid: BTreeMap<(IpAddr, u32), u64>,
    /// Of those, G-PDUs whose inner source is in one of [`SinkOpts::marked`].
    pub per_fteid_marked: BTreeMap<(IpAddr, u32), u64>,
    /// G-PDUs per inner source (UE) address.
    pub per_ue: BTreeMap<IpAddr, u64>,
    /// GTP-U messages per outer source (gNB) address.
    pub per_gnb: BTreeMap<IpAddr, u64>,
    /// GTP-U messages per message type.
    pub per_msg_type: BTreeMap<u8, u64>,
    /// Signalling messages per (message type, tag): the tag is an Echo Request's Sequence Number
    /// or an Error Indication's TEID Data I ([`crate::decode::GtpSummary::tag`]), so the lab
    /// tells senders of the same message type (a real gNB and a forger with its address) apart.
    pub per_tag: BTreeMap<(u8, u32), u64>,
    /// First fragments of outer IPv4 datagrams among the GTP-U messages (counted there too).
    pub first_fragments: u64,
    /// Later fragments of outer IPv4 UDP datagrams per (source, Identification) (RFC 791 §3.2).
    pub per_fragment: BTreeMap<(Ipv4Addr, u16), u64>,
    /// All GTP-U messages.
    pub gtp: u64,
    /// UDP to the GTP-U port without a sane GTP-U v1 header.
    pub bad_gtp: u64,
    /// Everything else received (ARP, ND, ...).
    pub other: u64,
    /// Frames the kernel dropped because the socket's buffer was full (PACKET_STATISTICS).
    pub kernel_drops: u64,
    /// The first received frames, if asked for (at most [`SNAPLEN`] bytes each).
    pub sample: Vec<Vec<u8>>,
}

impl SinkReport {
    pub fn teid(&self, teid: u32) -> u64 {
        self.per_teid.get(&teid).copied().unwrap_or(0)
    }
}

/// A running sink; stop it with [`Sink::stop`] (dropping it stops it too, discarding the report).
pub struct Sink {
    stop: Arc<AtomicBool>,
    gtp_seen: Arc<AtomicU64>,
    report: Arc<Mutex<SinkReport>>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Sink {
    /// Start counting on `ifname` in `ns` with default options.
    pub fn start(ns: &Netns, ifname: &str) -> Result<Sink> {
        Sink::start_with(ns, ifname, SinkOpts::default())
    }

    /// Start counting; returns once the socket is bound, so nothing sent afterwards is missed.
    pub fn start_with(ns: &Netns, ifname: &str, opts: SinkOpts) -> Result<Sink> {
        let ifindex = ns.ifindex(ifname)?;
        let stop = Arc::new(AtomicBool::new(false));
        let gtp_seen = Arc::new(AtomicU64::new(0));
        let report = Arc::new(Mutex::new(SinkReport::default()));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let (st, seen, rep) = (stop.clone(), gtp_seen.clone(), report.clone());
        let handle = ns.spawn("labkit-sink", move || {
            let sock = match open_sink_socket(ifindex) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let _ = ready_tx.send(Err(e));
                    return Err(anyhow!(msg));
                }
            };
            sink_loop(sock, ifindex, &opts, &st, &seen, &rep)
        })?;
        let mut sink = Sink { stop, gtp_seen, report, handle: Some(handle) };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(sink),
            Ok(Err(e)) => {
                let _ = sink.join_thread();
                Err(e)
            }
            Err(_) => {
                let r = sink.join_thread();
                Err(r.err().unwrap_or_else(|| anyhow!("sink did not start")))
            }
        }
    }

    /// GTP-U messages counted so far.
    pub fn gtp_seen(&self) -> u64 {
        self.gtp_seen.load(Ordering::Relaxed)
    }

    /// A copy of the counts so far.
    pub fn snapshot(&self) -> SinkReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Wait until at least `n` GTP-U messages were counted; false on timeout.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.gtp_seen() < n {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Wait until the GTP-U count has not changed for `quiet` (or `timeout` passed).
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) {
        let end = Instant::now() + timeout;
        let mut last = self.gtp_seen();
        let mut since = Instant::now();
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
            let now = self.gtp_seen();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Stop, drain what is already queued on the socket, and return the counts.
    pub fn stop(mut self) -> Result<SinkReport> {
        self.join_thread()?;
        let r = self.report.lock().map_err(|_| anyhow!("sink report lock poisoned"))?;
        Ok(r.clone())
    }

    fn join_thread(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|p| anyhow!("sink thread panicked: {p:?}"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.join_thread();
    }
}

fn open_sink_socket(ifindex: u32) -> Result<crate::generator::Fd> {
    let (fd, _) = packet_socket(ifindex, libc::ETH_P_ALL as u16)?;
    // Skip our own transmissions in the kernel (Linux >= 4.20); pkttype is checked as well.
    let _ = setsockopt_int(fd.0, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
    configure_receiver(&fd)?;
    Ok(fd)
}

/// A receive buffer large enough that a burst is not lost in the socket (forced past rmem_max
/// when allowed), and a 20 ms receive timeout so the receive loop sees its stop flag.
pub(crate) fn configure_receiver(fd: &crate::generator::Fd) -> Result<()> {
    setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20)
        .or_else(|_| setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20))
        .context("SO_RCVBUF")?;
    let tv = libc::timeval { tv_sec: 0, tv_usec: 20_000 };
    // SAFETY: pointer to a live timeval and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_RCVTIMEO");
    }
    Ok(())
}

/// Frames the kernel dropped because the socket's buffer was full (`PACKET_STATISTICS`).
pub(crate) fn kernel_drops(fd: libc::c_int) -> u64 {
    // SAFETY: tpacket_stats is plain old data.
    let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: buffer and length describe `st`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        u64::from(st.tp_drops)
    } else {
        0
    }
}

/// One `recvmmsg` batch of frames from a packet socket: the slots (buffers of `snap` bytes, their
/// iovecs, the source addresses), kept across calls. Used by the sink and the bench's receiver.
pub(crate) struct RxBatch {
    snap: usize,
    bufs: Vec<u8>,
    iov: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    msgs: Vec<libc::mmsghdr>,
    got: usize,
}

impl RxBatch {
    pub(crate) fn new(batch: usize, snap: usize) -> RxBatch {
        RxBatch {
            snap,
            bufs: vec![0u8; batch * snap],
            // SAFETY: plain old data; all-zero is valid.
            iov: vec![unsafe { mem::zeroed() }; batch],
            // SAFETY: as above.
            addrs: vec![unsafe { mem::zeroed() }; batch],
            // SAFETY: as above.
            msgs: vec![unsafe { mem::zeroed() }; batch],
            got: 0,
        }
    }

    /// Receive one batch: wait for the first frame unless `draining` (then take only what is
    /// queued). `Ok(false)`: draining and nothing is left. A timeout or a signal while not
    /// draining is an empty batch, so the caller can look at its stop flag.
    pub(crate) fn recv(&mut self, fd: &crate::generator::Fd, draining: bool) -> Result<bool> {
        self.got = 0;
        for j in 0..self.msgs.len() {
            self.iov[j].iov_base = self.bufs[j * self.snap..].as_mut_ptr().cast();
            self.iov[j].iov_len = self.snap;
            let h = &mut self.msgs[j].msg_hdr;
            h.msg_name = (&mut self.addrs[j] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_iov = &mut self.iov[j];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.msgs[j].msg_len = 0;
        }
        let flags = if draining { libc::MSG_DONTWAIT } else { libc::MSG_WAITFORONE };
        // SAFETY: every mmsghdr points at a live buffer of `snap` bytes and a sockaddr_ll.
        let rc = unsafe {
            libc::recvmmsg(fd.0, self.msgs.as_mut_ptr(), self.msgs.len() as u32, flags, std::ptr::null_mut())
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(!draining),
                _ => Err(e).context("recvmmsg"),
            };
        }
        self.got = rc as usize;
        Ok(true)
    }

    /// The frames of the last batch that arrived on `ifindex` (not the host's own outgoing
    /// ones), each cut to the snap length.
    pub(crate) fn incoming(&self, ifindex: u32) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.got).filter_map(move |j| {
            let a = &self.addrs[j];
            if a.sll_pkttype == libc::PACKET_OUTGOING || a.sll_ifindex != ifindex as i32 {
                return None;
            }
            let len = (self.msgs[j].msg_len as usize).min(self.snap);
            Some(&self.bufs[j * self.snap..j * self.snap + len])
        })
    }
}

fn sink_loop(
    fd: crate::generator::Fd,
    ifindex: u32,
    opts: &SinkOpts,
    stop: &AtomicBool,
    seen: &AtomicU64,
    report: &Mutex<SinkReport>,
) -> Result<()> {
    let mut rx = RxBatch::new(BATCH, SNAPLEN);
    let mut draining = false;
    loop {
        if !draining && stop.load(Ordering::Relaxed) {
            draining = true;
        }
        if !rx.recv(&fd, draining)? {
            break;
        }
        let mut r = report.lock().map_err(|_| anyhow!("sink report lock poisoned"))?;
        let mut gtp = 0;
        for frame in rx.incoming(ifindex) {
            if r.sample.len() < opts.sample {
                r.sample.push(frame.to_vec());
            }
            match decode(frame, opts.gtpu_port) {
                Decoded::Gtp(s) => {
                    gtp += 1;
                    r.gtp += 1;
                    if opts.by_fteid {
                        *r.per_fteid.entry((s.outer_dst, s.teid)).or_default() += 1;
                        if s.msg_type == 255 && s.ue_src.is_some_and(|a| opts.marked.iter().any(|&p| in_prefix(a, p))) {
                            *r.per_fteid_marked.entry((s.outer_dst, s.teid)).or_default() += 1;
                        }
                    } else {
                        *r.per_teid.entry(s.teid).or_default() += 1;
                    }
                    *r.per_gnb.entry(s.outer_src).or_default() += 1;
                    *r.per_msg_type.entry(s.msg_type).or_default() += 1;
                    if let Some(ue) = s.ue_src {
                        *r.per_ue.entry(ue).or_default() += 1;
                    }
                    if let (Some(tag), true) = (s.tag, s.msg_type != 255) {
                        *r.per_tag.entry((s.msg_type, tag)).or_default() += 1;
                    }
                    r.first_fragments += u64::from(s.first_fragment);
                }
                Decoded::Fragment { src, id } => *r.per_fragment.entry((src, id)).or_default() += 1,
                Decoded::BadGtp => r.bad_gtp += 1,
                Decoded::Other => r.other += 1,
            }
        }
        drop(r);
        seen.fetch_add(gtp, Ordering::Relaxed);
    }
    let drops = kernel_drops(fd.0);
    if let Ok(mut r) = report.lock() {
        r.kernel_drops += drops;
    }
    Ok(())
}
