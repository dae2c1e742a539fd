//! A counting AF_PACKET receiver on the CORE side of the N2 veth: what got past XDP, per SCTP
//! source and frame kind (first chunk type). It decodes Ethernet / IPv4 / the SCTP chunk header
//! itself (a few fixed offsets), independently of the guard's parser.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::ran::TxKind;
use crate::netns::Netns;

/// Counts per (source, kind).
pub type Counts = BTreeMap<(Ipv4Addr, TxKind), u64>;

/// The running receiver; [`Capture::stop`] returns the counts and the socket's kernel drops.
pub struct Capture {
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<Counts>>,
    handle: Option<JoinHandle<Result<u64>>>,
}

/// Source and first chunk type of an untagged IPv4 SCTP frame.
pub fn classify(f: &[u8]) -> Option<(Ipv4Addr, TxKind)> {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 || f[23] != 132 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let t = *f.get(14 + ihl + 12)?;
    Some((Ipv4Addr::new(f[26], f[27], f[28], f[29]), TxKind::of_chunk(t)))
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live value of its own size.
    let rc = unsafe { libc::setsockopt(fd, level, opt, (val as *const T).cast(), mem::size_of::<T>() as u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Capture {
    pub fn start(ns: &Netns, ifname: &str) -> Result<Capture> {
        let ifindex = ns.ifindex(ifname)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(Counts::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let (st, c) = (stop.clone(), counts.clone());
        let handle = ns.spawn("n2lab-capture", move || {
            let fd = match open(ifindex) {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return Err(e);
                }
            };
            receive(fd, ifindex, &st, &c)
        })?;
        let mut cap = Capture { stop, counts, handle: Some(handle) };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(cap),
            Ok(Err(e)) => {
                let _ = cap.join();
                Err(anyhow!(e))
            }
            Err(_) => {
                let _ = cap.join();
                Err(anyhow!("the capture thread did not start"))
            }
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Stop (after draining what is queued): the counts and the kernel's drops on the socket.
    pub fn stop(mut self) -> Result<(Counts, u64)> {
        let drops = self.join()?;
        Ok((self.snapshot(), drops))
    }

    fn join(&mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|p| anyhow!("capture thread panicked: {p:?}"))?,
            None => Ok(0),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

fn open(ifindex: u32) -> Result<crate::generator::Fd> {
    let (fd, _) = crate::generator::packet_socket(ifindex, libc::ETH_P_ALL as u16)?;
    // Our own transmissions are not counted (Linux >= 4.20); pkttype is checked as well.
    let _ = setsockopt(fd.0, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1 as &libc::c_int);
    setsockopt(fd.0, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(32 << 20) as &libc::c_int)
        .or_else(|_| setsockopt(fd.0, libc::SOL_SOCKET, libc::SO_RCVBUF, &(8 << 20) as &libc::c_int))
        .context("SO_RCVBUF")?;
    let tv = libc::timeval { tv_sec: 0, tv_usec: 20_000 };
    setsockopt(fd.0, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv).context("SO_RCVTIMEO")?;
    Ok(fd)
}

fn receive(fd: crate::generator::Fd, ifindex: u32, stop: &AtomicBool, counts: &Mutex<Counts>) -> Result<u64> {
    let mut buf = [0u8; 256];
    let mut draining = false;
    loop {
        if !draining && stop.load(Ordering::Relaxed) {
            draining = true;
        }
        // SAFETY: plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let flags = if draining { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `buf` and `sll` are live and their sizes are passed.
        let n = unsafe {
            libc::recvfrom(
                fd.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags | libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    if draining {
                        break;
                    }
                    continue;
                }
                _ => return Err(e).context("recvfrom"),
            }
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING || sll.sll_ifindex != ifindex as i32 {
            continue;
        }
        let got = (n as usize).min(buf.len());
        if let Some(k) = classify(&buf[..got]) {
            if let Ok(mut c) = counts.lock() {
                *c.entry(k).or_default() += 1;
            }
        }
    }
    // SAFETY: tpacket_stats is plain old data.
    let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: buffer and length describe `st`.
    let rc = unsafe {
        libc::getsockopt(
            fd.0,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    Ok(if rc == 0 { u64::from(st.tp_drops) } else { 0 })
}
