//! Bounded memory: which tracks make room when the engine holds more than `guard.max_devices`.

use guard_common::abi::DeviceKey;

use super::{stamp, Engine};

impl Engine {
    /// Bounded memory: over `max_devices`, evict the 1/16 of the devices (`keep` aside) that hold
    /// no stage and were least recently active (sent packets; a new device counts as active when
    /// first seen), ties by place in the table (first tracked first). Staged, manual and exempt
    /// devices are never evicted: the engine must keep refreshing or releasing them. Batches keep
    /// the cost amortised O(1) per new device.
    ///
    /// The candidates are kept in a heap of the `n` oldest seen so far (512 KiB at 1M devices):
    /// a list of every device's age, as before, was 24 MiB at 1M devices, allocated on each
    /// batch, and the allocator kept it (the controller's resident memory rose by ~15 MiB under
    /// session churn, `cargo xtask bench`'s churn phase).
    pub(super) fn make_room(&mut self, keep: &DeviceKey, now: u64) -> bool {
        use std::cmp::Reverse;
        let now = stamp::ms(now);
        let max = self.cfg.guard.max_devices as usize;
        if self.tracks.len() <= max {
            return true;
        }
        let n = (max / 16).max(1);
        // A min-heap of (age, Reverse(position)): its top is the candidate to give up first, the
        // youngest, and among equal ages the one further into the table.
        let mut oldest: std::collections::BinaryHeap<Reverse<(u32, Reverse<u32>)>> =
            std::collections::BinaryHeap::with_capacity(n + 1);
        for (i, (k, t)) in self.tracks.iter().enumerate() {
            if t.stage.stage != 0 || t.stage.manual || t.stage.exempt || k == keep {
                continue;
            }
            let c = (stamp::age(now, t.active_ms), Reverse(i as u32));
            if oldest.len() < n {
                oldest.push(Reverse(c));
            } else if oldest.peek().is_some_and(|Reverse(top)| c > *top) {
                oldest.pop();
                oldest.push(Reverse(c));
            }
        }
        if oldest.is_empty() {
            return false;
        }
        // Keys first: each removal moves the last track into the hole, so positions change.
        let victims: Vec<DeviceKey> =
            oldest.into_iter().filter_map(|Reverse((_, Reverse(i)))| self.tracks.key_at(i as usize)).collect();
        for k in &victims {
            if let Some(t) = self.tracks.remove(k) {
                self.cell_ids.release(t.cell);
                self.dst_ids.release(t.dst);
            }
            self.notable.remove(k);
        }
        self.evicted += victims.len() as u64;
        true
    }
}
