//! What both sides of a replay (N3, `run.rs`; N2, `n2.rs`) do with each frame of the capture:
//! pace it, admit it, move the programs' clock to its time, and run it through the program.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::{
    maps::{Array, MapData},
    programs::{TestRun, TestRunOptions, TestRunResult},
};
use guard_common::abi;

use super::{
    capture::Frame,
    report::CaptureSummary,
    run::{Pacing, REPLAY_EPOCH_NS},
};

/// The largest frame BPF_PROG_TEST_RUN takes for a non-frags XDP program: a 4 KiB page less
/// `XDP_PACKET_HEADROOM` (256) and `skb_shared_info` (320 on x86-64).
pub(super) const MAX_FRAME: usize = 4096 - 256 - 320;

/// The replay clock (the object's `.bss`, `REPLAY_NOW_NS`) and the pace of one replay.
pub(super) struct Feed {
    pacing: Pacing,
    started: Instant,
    clock: Array<MapData, u64>,
    /// The time last written to `clock` (written only when it moves).
    clock_set: u64,
}

impl Feed {
    /// Takes the object's `.bss` map: the replay clock's global, a u64 alone.
    pub(super) fn new(ebpf: &mut aya::Ebpf, pacing: Pacing) -> Result<Feed> {
        let clock = Array::try_from(
            ebpf.take_map(abi::MAP_BSS).context("the object has no .bss map (the replay clock's global)")?,
        )
        .context("the object's .bss is not the replay clock alone (a u64)")?;
        Ok(Feed { pacing, started: Instant::now(), clock, clock_set: 0 })
    }

    /// Wall time since the replay started.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// With `--speed`, wait until the frame at replayed time `now` is due.
    pub(super) fn pace(&self, now: u64) {
        if let Pacing::Speed(x) = self.pacing {
            // `--speed` is at least 0.001, so `due` fits a `Duration`; were it not to, no pause.
            let due = Duration::try_from_secs_f64((now - REPLAY_EPOCH_NS) as f64 / 1e9 / x).ok();
            if let Some(wait) = due.and_then(|d| d.checked_sub(self.started.elapsed())) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Count the frame as read, and whether it can be replayed: not cut by the snap length (a
    /// shorter frame would not get the verdict the whole one gets), and the size
    /// BPF_PROG_TEST_RUN takes (at least an Ethernet header, at most [`MAX_FRAME`]: GRO-merged
    /// frames of a host capture are larger). The others are counted as skipped.
    pub(super) fn admit(f: &Frame, c: &mut CaptureSummary) -> bool {
        c.frames_read += 1;
        if f.snapped {
            c.skipped_snapped += 1;
            return false;
        }
        if f.data.len() < 14 || f.data.len() > MAX_FRAME {
            c.skipped_size += 1;
            return false;
        }
        true
    }

    /// Run `data` through `prog` at replayed time `now` (the clock written first, when it
    /// moved); the program's return value (an XDP action; for the N2 egress classifier a TC
    /// action). `frame` numbers it in an error.
    pub(super) fn run<P>(&mut self, prog: &P, now: u64, data: &[u8], frame: u64) -> Result<u32>
    where
        P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
    {
        if now != self.clock_set {
            self.clock.set(0, now, 0).context("writing the replay clock")?;
            self.clock_set = now;
        }
        Ok(prog
            .test_run(TestRunOptions { data_in: Some(data), ..Default::default() })
            .with_context(|| format!("BPF_PROG_TEST_RUN on frame {frame}"))?
            .return_value)
    }
}
