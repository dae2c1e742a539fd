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
use guard_common::abi::{Event, EventRecord};

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

/// The draining thread; stopped and joined on drop. A replay's pump ([`EventPump::inline`]) has
/// no thread: the replay drains the ring after each packet ([`EventPump::drain_now`]), so which
/// events a tick sees depends on the capture alone, never on thread timing.
pub struct EventPump {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    inline: Option<(RingBuf<MapData>, usize)>,
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
        Ok(EventPump { shared, thread: Some(thread), inline: None })
    }

    /// A pump without a thread, for `guard replay`: [`EventPump::drain_now`] empties the ring.
    pub fn inline(ring: RingBuf<MapData>, capacity: usize) -> Self {
        let shared = Arc::new(Shared { backlog: Mutex::new(Backlog::default()), stop: AtomicBool::new(false) });
        EventPump { shared, thread: None, inline: Some((ring, capacity)) }
    }

    /// Move what the ring holds into the backlog now, on the calling thread (an inline pump
    /// only; a threaded pump does this on its own).
    pub fn drain_now(&mut self) {
        let Some((ring, capacity)) = self.inline.as_mut() else { return };
        let mut batch = Vec::new();
        loop {
            read_batch(ring, &mut batch);
            if batch.is_empty() {
                return;
            }
            if !push(&self.shared, &mut batch, *capacity) {
                return;
            }
        }
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

/// Up to 4096 events from the ring into `batch`.
fn read_batch(ring: &mut RingBuf<MapData>, batch: &mut Vec<Event>) {
    while batch.len() < 4096 {
        let Some(item) = ring.next() else { break };
        if item.len() >= core::mem::size_of::<EventRecord>() {
            // SAFETY: the data plane writes exactly one `EventRecord` per record (integers only);
            // `read_unaligned` copes with the ring's alignment.
            let r = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const EventRecord) };
            // The device by its key, as the rest of userspace names devices (`abi::device_id`).
            batch.push(Event::from(&r));
        }
    }
}

/// `batch` into the backlog (what does not fit is counted as discarded); false if the backlog's
/// lock is poisoned.
fn push(shared: &Shared, batch: &mut Vec<Event>, capacity: usize) -> bool {
    let Ok(mut b) = shared.backlog.lock() else { return false };
    let room = capacity.saturating_sub(b.events.len());
    let n = batch.len().min(room);
    b.events.extend(batch.drain(..n));
    b.discarded += batch.len() as u64;
    batch.clear();
    true
}

fn pump(mut ring: RingBuf<MapData>, shared: &Shared, capacity: usize) {
    let fd = ring.as_raw_fd();
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    while !shared.stop.load(Ordering::Relaxed) {
        read_batch(&mut ring, &mut batch);
        if batch.is_empty() {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; the ring's descriptor lives as long as `ring`.
            unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
            continue;
        }
        if !push(shared, &mut batch, capacity) {
            return;
        }
    }
}
