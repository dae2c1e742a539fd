//! Bounded memory: which tracks make room when the engine holds `guard.max_devices`.
//!
//! Gone first. The walk reads every device the map holds once a walk, so a track the last
//! complete walk did not read belongs to a session that ended (or whose entry the data plane's
//! LRU evicted): it is *gone*. A new device over the bound evicts a batch (1/16 of the bound) of
//! gone tracks, least recently active first.
//!
//! Evidence before history. When no track is known gone, a device still in the map would have
//! to go, and which one decides whether history is lost. A new device the walk read only (no
//! evidence about it yet: its first reading primes its counters, nothing more) is then not
//! tracked this time (`untracked_readings`); the walk reads it again next time, by when the walk
//! has shown which sessions ended. A new device that reports itself over its limit (an event)
//! evicts a small batch (1/256 of the bound) of the least recently active, so a flood is always
//! followed. Staged, manual and exempt devices are never evicted.
//!
//! Why (before): with activity alone and a walk reading free to evict, under session churn the
//! least recently active tracks were sessions at rest since their first reading, which are the
//! ones the walk under way reads next. Each batch evicted 65,536 live sessions just ahead of the
//! walk, which tracked them again as new devices (their history lost) and so called the next
//! batch, 1.8M evictions for 0.7M sessions replaced (docs/controller.md "CPU"). Gone first alone
//! does not stop it: a session that ends during a walk is known gone only at the end of the next
//! walk without it, and the cascade needs one batch to start. Nor does room to spare without
//! costing memory (1/16 more tracks held under churn: 302-306 MiB at 1M devices, against
//! 288-296; BENCHMARKS.md section 19).
//!
//! What it costs, and what an attacker can do with it: a new device on a map that is full of
//! live devices is tracked one walk later (~40 s at 1M devices), unless it floods. To
//! make a live device's track go, an attacker must make the data plane lose its entry (then the
//! track describes nothing the data plane holds), or flood from new devices, each of which is
//! then tracked and staged; idle new sessions, forged or not, evict nothing still in the map.

use guard_common::abi::DeviceKey;

use super::stamp::{self, Ms};
use super::Engine;

/// The times of the last two full passes, each the end of a walk of the device map: a device in
/// the map all along was read after the earlier one.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WalkEnds {
    last: Option<Ms>,
    before: Option<Ms>,
    /// Every unstaged gone track has been evicted since the last walk's end: none can become
    /// gone before the next (a track's last reading only moves forward), so a new device need
    /// not look through the table again (at 1M devices, one look is a few ms).
    none_gone: bool,
}

impl WalkEnds {
    /// A full pass at `now`: a walk ended (the controller asks for one when its walk completes).
    pub fn ended(&mut self, now: Ms) {
        self.before = self.last.replace(now);
        self.none_gone = false;
    }

    /// Whether a track last read at `seen` was missed by the last complete walk (which read
    /// after `before`, up to `last`). Before two walks have ended, nothing is known gone.
    pub fn gone(&self, seen: Ms) -> bool {
        self.before.is_some_and(|b| !stamp::after(seen, b))
    }
}

impl Engine {
    /// Room for one new track (`key`, just inserted; the caller calls this only over the bound):
    /// a batch of gone tracks (1/16 of the bound); if none is known gone and `evidence` (the
    /// reading is an over-limit event), a small batch (1/256) of the least recently active.
    /// False if nothing was evicted: the new track is not kept.
    pub(super) fn make_room(&mut self, keep: &DeviceKey, evidence: bool, now: u64) -> bool {
        let max = self.cfg.guard.max_devices as usize;
        if !self.walks.none_gone {
            let batch = (max / 16).max(1);
            let gone = self.evict(batch, keep, true, now);
            // Fewer than asked for: those were all.
            self.walks.none_gone = gone < batch;
            if gone > 0 {
                return true;
            }
        }
        evidence && self.evict((max / 256).max(1), keep, false, now) > 0
    }

    /// Evict up to `n` unstaged tracks (`keep` aside; only gone ones if `only_gone`): gone ones
    /// first, then the least recently active (sent packets; a new device counts as active when
    /// first seen), ties by place in the table (first tracked first). Returns how many.
    ///
    /// The candidates are kept in a heap of the `n` oldest seen so far (768 KiB at 1M devices):
    /// a list of every device's age, as before, was 24 MiB at 1M devices, allocated on each
    /// batch, and the allocator kept it (the controller's resident memory rose by ~15 MiB under
    /// session churn, `cargo xtask bench`'s churn phase).
    fn evict(&mut self, n: usize, keep: &DeviceKey, only_gone: bool, now: u64) -> usize {
        use std::cmp::Reverse;
        let now = stamp::ms(now);
        // A min-heap of (gone, age, Reverse(position)): its top is the candidate to give up
        // first, a device still in the map before a gone one, then the youngest, and among
        // equal ages the one further into the table.
        type Candidate = (bool, u32, Reverse<u32>);
        let mut oldest: std::collections::BinaryHeap<Reverse<Candidate>> =
            std::collections::BinaryHeap::with_capacity(n + 1);
        let walks = self.walks;
        for (i, (k, t)) in self.tracks.iter().enumerate() {
            if t.stage.stage != 0 || t.stage.manual || t.stage.exempt || k == keep {
                continue;
            }
            let gone = walks.gone(t.seen_ms);
            if only_gone && !gone {
                continue;
            }
            let c = (gone, stamp::age(now, t.active_ms), Reverse(i as u32));
            if oldest.len() < n {
                oldest.push(Reverse(c));
            } else if oldest.peek().is_some_and(|Reverse(top)| c > *top) {
                oldest.pop();
                oldest.push(Reverse(c));
            }
        }
        // From the last position down: each removal moves the last track into the hole, which is
        // then never a victim still to come (those sit lower), so every position stays true.
        let mut victims: Vec<u32> = oldest.into_iter().map(|Reverse((_, _, Reverse(i)))| i).collect();
        victims.sort_unstable_by(|a, b| b.cmp(a));
        for &i in &victims {
            let Some(k) = self.tracks.key_at(i as usize) else {
                continue;
            };
            if let Some(t) = self.tracks.remove(&k) {
                self.cell_ids.release(t.cell);
                self.dst_ids.release(t.dst);
            }
            self.notable.remove(&k);
        }
        self.evicted += victims.len() as u64;
        victims.len()
    }
}

#[cfg(test)]
mod tests {
    use guard_common::abi::DeviceKey;

    use super::super::{DeviceSample, Engine, Pass};
    use super::WalkEnds;
    use crate::config::Config;

    const SEC: u64 = 1_000_000_000;

    fn sample(i: u32) -> DeviceSample {
        DeviceSample { key: DeviceKey::teid(i), packets: 1, teid: i, ..DeviceSample::default() }
    }

    fn engine(max_devices: u32) -> Engine {
        let mut cfg = Config::default();
        cfg.guard.max_devices = max_devices;
        Engine::new(&cfg)
    }

    /// One walk of the map as the controller reads it: `order`, 8 devices a tick, one tick a
    /// second, a full pass when the walk completes ([`Pass::Full`]), only the changed between.
    fn walk(engine: &mut Engine, now: &mut u64, order: &[u32]) {
        let chunks: Vec<&[u32]> = order.chunks(8).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            *now += SEC;
            let samples: Vec<DeviceSample> = chunk.iter().map(|&i| sample(i)).collect();
            let pass = if n + 1 == chunks.len() { Pass::Full } else { Pass::Changed };
            let _ = engine.tick_pass(*now, &samples, &[], pass);
        }
    }

    fn first_seen(e: &Engine, i: u32) -> Option<u32> {
        e.tracks.get(&DeviceKey::teid(i)).map(|t| t.active_ms)
    }

    /// Session churn at a full table, every session at rest (active only when first seen): each
    /// walk, 4 sessions end and 4 new ones start, at places in the map's order the walk reaches
    /// early, midway or last. No live session is ever evicted and tracked again; the ended ones
    /// make room once a walk has shown they are gone, and each new session is tracked by the
    /// walk after its first. By activity alone, the oldest live sessions went first, just ahead
    /// of the walk, and came back as new devices (their history lost), calling the next batch.
    #[test]
    fn under_churn_the_ended_sessions_make_room_and_the_live_keep_their_tracks() {
        let mut engine = engine(64);
        let mut now = 0;
        let mut live: Vec<u32> = (0..64).collect();
        for _ in 0..3 {
            walk(&mut engine, &mut now, &live);
        }
        let history = |e: &Engine, live: &[u32]| -> Vec<(u32, Option<u32>)> {
            live.iter().filter(|&&i| i < 1000).map(|&i| (i, first_seen(e, i))).collect()
        };
        let mut ended = Vec::new();
        for w in 0..6u32 {
            // Four end (two from the back, one midway, the first), four start (at the front, at
            // the back, two midway).
            for at in [live.len() - 2, live.len() - 3, live.len() / 2, 0] {
                let i = live.remove(at);
                // A new session may end before it was ever tracked.
                ended.push((i, first_seen(&engine, i).is_some()));
            }
            let before = history(&engine, &live);
            let new = |j: u32| 1000 + 4 * w + j;
            live.insert(0, new(0));
            live.push(new(1));
            live.insert(20, new(2));
            live.insert(40, new(3));
            walk(&mut engine, &mut now, &live);
            assert_eq!(history(&engine, &live), before, "walk {w}: the live sessions keep their tracks");
            assert!(engine.tracks.len() <= 64, "bounded by max_devices");
        }
        // Churn stops: the walk after the last new sessions' first tracks them.
        walk(&mut engine, &mut now, &live);
        assert!(live.iter().all(|&i| first_seen(&engine, i).is_some()), "every live session is tracked");
        assert!(ended.iter().all(|&(i, _)| first_seen(&engine, i).is_none()), "the ended sessions made room");
        let st = engine.snapshot();
        let had_tracks = ended.iter().filter(|(_, tracked)| *tracked).count() as u64;
        assert!(had_tracks * 2 >= ended.len() as u64, "most ended sessions had tracks: {had_tracks}");
        assert_eq!(st.evicted_devices, had_tracks, "one eviction per tracked session ended, none more");
        assert!(st.untracked_readings > 0, "new sessions waited for a walk to show room");
    }

    /// Half the sessions replaced at once: the new ones wait one walk, then take the ended ones'
    /// room; the live keep their tracks and the table its bound.
    #[test]
    fn a_replacement_at_once_waits_one_walk() {
        let mut engine = engine(32);
        let mut now = 0;
        let all: Vec<u32> = (0..32).collect();
        for _ in 0..3 {
            walk(&mut engine, &mut now, &all);
        }
        let before: Vec<_> = (0..16).map(|i| first_seen(&engine, i)).collect();
        let now_live: Vec<u32> = (0..16).chain(100..116).collect();
        walk(&mut engine, &mut now, &now_live);
        assert!(engine.tracks.len() <= 32);
        assert!((100..116).all(|i| first_seen(&engine, i).is_none()), "nothing known gone yet: not tracked");
        walk(&mut engine, &mut now, &now_live);
        assert_eq!(engine.tracks.len(), 32);
        assert_eq!((0..16).map(|i| first_seen(&engine, i)).collect::<Vec<_>>(), before, "the live keep their tracks");
        assert!((100..116).all(|i| first_seen(&engine, i).is_some()), "the new sessions are tracked");
        assert!((16..32).all(|i| first_seen(&engine, i).is_none()), "the ended sessions made room");
        assert_eq!(engine.snapshot().evicted_devices, 16);
    }

    /// A batch whose victims sit at the table's end: each removal moves the last track into its
    /// hole, so the victims must be removed from the last position down (from the first up, the
    /// victim last in the table moves into an earlier hole and its position then names nothing,
    /// or another track).
    #[test]
    fn a_batch_evicts_exactly_its_victims_wherever_they_sit() {
        let mut engine = engine(48);
        let all: Vec<DeviceSample> = (0..48).map(sample).collect();
        let _ = engine.tick(SEC, &all, &[]);
        // The next walk misses the devices at positions 5, 46 and 47 (the batch is 48 / 16 = 3).
        let again: Vec<DeviceSample> = (0..48).filter(|i| ![5, 46, 47].contains(i)).map(sample).collect();
        let _ = engine.tick(2 * SEC, &again, &[]);
        let _ = engine.tick_pass(3 * SEC, &[sample(100)], &[], Pass::Changed);
        let tracked = |i: u32| engine.tracks.get(&DeviceKey::teid(i)).is_some();
        assert!([5, 46, 47].iter().all(|&i| !tracked(i)), "the three the last walk missed make room");
        assert!((0..48).filter(|i| ![5, 46, 47].contains(i)).all(tracked) && tracked(100), "nothing else goes");
        assert_eq!(engine.snapshot().evicted_devices, 3);
    }

    #[test]
    fn gone_is_missed_by_the_last_complete_walk() {
        let mut w = WalkEnds::default();
        assert!(!w.gone(0), "no walk ended: nothing known gone");
        w.ended(1000);
        assert!(!w.gone(0), "one walk ended: its start is not known");
        w.ended(2000);
        assert!(w.gone(999) && w.gone(1000), "read at or before the walk began");
        assert!(!w.gone(1001) && !w.gone(2000) && !w.gone(2500), "read in the walk or since");
        // Across the wrap of the times.
        let mut w = WalkEnds::default();
        w.ended(u32::MAX - 10);
        w.ended(5);
        assert!(w.gone(u32::MAX - 20) && !w.gone(u32::MAX - 3) && !w.gone(7));
    }
}
