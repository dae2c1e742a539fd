//! Drains the data plane's event ring (`N3_EVENTS`) on its own thread, into a bounded backlog the
//! control loop takes once per tick.
//!
//! The ring is small (`abi::EVENTS_RING_BYTES`), and the data plane drops events when it is full.
//! Drained only between ticks, it overflowed whenever a tick took long (a device-map walk at 1M
//! devices took seconds): over-limit events are the controller's fast evidence, so losing them
//! delayed pinning offenders. The pump waits on the ring's descriptor (the kernel wakes it when
//! records are committed) and empties it within milliseconds, whatever the tick is doing.

use std::{
    os::fd::AsRawFd as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use guard_common::abi::Event;

/// How long the pump sleeps in `poll` before it checks whether it should stop.
const POLL_MS: i32 = 50;

#[derive(Default)]
struct Backlog {
    events: Vec<Event>,
    /// Events drained but discarded because the backlog was full (cumulative).
    discarded: u64,
}

struct Shared {
    backlog: Mutex<Backlog>,
    stop: AtomicBool,
}

/// The draining thread; stopped and joined on drop.
pub struct EventPump {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl EventPump {
    /// Start draining `ring`, keeping at most `capacity` events until [`EventPump::take`].
    pub fn start(ring: RingBuf<MapData>, capacity: usize) -> Result<Self> {
        let shared = Arc::new(Shared { backlog: Mutex::new(Backlog::default()), stop: AtomicBool::new(false) });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("guard-events".into())
            .spawn(move || pump(ring, &s, capacity))
            .context("starting the event-ring thread")?;
        Ok(EventPump { shared, thread: Some(thread) })
    }

    /// The events drained since the last call, oldest first, into `buf` (cleared first; its
    /// allocation goes to the pump, so the two buffers are reused instead of reallocated every
    /// tick), and how many were discarded so far because the backlog was full.
    pub fn take_into(&self, buf: &mut Vec<Event>) -> u64 {
        buf.clear();
        match self.shared.backlog.lock() {
            Ok(mut b) => {
                std::mem::swap(&mut b.events, buf);
                b.discarded
            }
            // A panicked pump thread: nothing more will come.
            Err(_) => 0,
        }
    }
}

impl Drop for EventPump {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump(mut ring: RingBuf<MapData>, shared: &Shared, capacity: usize) {
    let fd = ring.as_raw_fd();
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    while !shared.stop.load(Ordering::Relaxed) {
        while batch.len() < 4096 {
            let Some(item) = ring.next() else { break };
            if item.len() >= core::mem::size_of::<Event>() {
                // SAFETY: the data plane writes exactly one `Event` per record; `read_unaligned`
                // copes with the ring's alignment.
                batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const Event) });
            }
        }
        if batch.is_empty() {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; the ring's descriptor lives as long as `ring`.
            unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
            continue;
        }
        let Ok(mut b) = shared.backlog.lock() else { return };
        let room = capacity.saturating_sub(b.events.len());
        let n = batch.len().min(room);
        b.events.extend(batch.drain(..n));
        b.discarded += batch.len() as u64;
        batch.clear();
    }
}
