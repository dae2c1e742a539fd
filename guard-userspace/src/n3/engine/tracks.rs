//! The engine's per-device tracks: a dense table of `(key, track)` with a hash index of table
//! positions.
//!
//! Why not a `HashMap<DeviceKey, Track>`: a hash table keeps between an eighth and a half of its
//! buckets empty (it doubles when 7/8 full), and each bucket holds a whole track (~460 bytes). At
//! 1M devices that is 2^21 buckets and ~1 GB resident (issue 19 measured 983.8 MiB for the
//! controller). Here an empty bucket costs the index entry (24 bytes) and the tracks sit packed;
//! a full pass walks them in memory order, which is also faster than walking buckets.
//!
//! Removal swaps the last track into the hole (one index update), so positions are not stable:
//! nothing outside this file keeps one.

use std::collections::HashMap;

use guard_common::abi::DeviceKey;

use super::track::Track;
use super::Hasher;

#[derive(Debug, Default)]
pub(super) struct Tracks {
    /// Position of each key in `slots`. `u32`: the engine holds at most `guard.max_devices`
    /// (a `u32`) tracks plus the one being inserted, far below 2^32 in any memory.
    index: HashMap<DeviceKey, u32, Hasher>,
    slots: Vec<(DeviceKey, Track)>,
}

impl Tracks {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, key: &DeviceKey) -> Option<&Track> {
        self.index.get(key).map(|&i| &self.slots[i as usize].1)
    }

    pub fn get_mut(&mut self, key: &DeviceKey) -> Option<&mut Track> {
        self.index.get(key).map(|&i| &mut self.slots[i as usize].1)
    }

    /// The track of `key`, inserted from `new` if absent: one index lookup either way.
    pub fn get_or_insert_with(&mut self, key: DeviceKey, new: impl FnOnce() -> Track) -> &mut Track {
        let next = self.slots.len() as u32;
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.slots.push((key, new()));
        }
        &mut self.slots[i as usize].1
    }

    pub fn remove(&mut self, key: &DeviceKey) -> Option<Track> {
        let i = self.index.remove(key)? as usize;
        let (_, t) = self.slots.swap_remove(i);
        if let Some((moved, _)) = self.slots.get(i) {
            self.index.insert(*moved, i as u32);
        }
        Some(t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&DeviceKey, &Track)> {
        self.slots.iter().map(|(k, t)| (k, t))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&DeviceKey, &mut Track)> {
        self.slots.iter_mut().map(|(k, t)| (&*k, t))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Track> {
        self.slots.iter_mut().map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> DeviceKey {
        DeviceKey::teid(n)
    }

    /// Inserts, lookups and removals (first, middle, last, absent) agree with a `HashMap` doing
    /// the same, and every key still finds its own track after the swaps.
    #[test]
    fn behaves_as_a_map_through_swap_removals() {
        let mut t = Tracks::default();
        let mut m: std::collections::HashMap<DeviceKey, u32> = Default::default();
        for n in 0..1000u32 {
            t.get_or_insert_with(key(n), || Track { teid: n, ..Track::default() });
            m.insert(key(n), n);
        }
        // Present: the existing track is returned, `new` not called.
        assert_eq!(t.get_or_insert_with(key(7), || panic!("7 is tracked")).teid, 7);
        for n in [0u32, 500, 999, 998, 3, 5000] {
            assert_eq!(t.remove(&key(n)).map(|x| x.teid), m.remove(&key(n)), "remove {n}");
        }
        assert_eq!(t.len(), m.len());
        for n in 0..1000u32 {
            assert_eq!(t.get(&key(n)).map(|x| x.teid), m.get(&key(n)).copied(), "get {n}");
        }
        for (k, tr) in t.iter_mut() {
            assert_eq!(*k, key(tr.teid));
            tr.packets = u64::from(tr.teid);
        }
        assert!(t.iter().all(|(k, tr)| *k == key(tr.packets as u32)));
        assert_eq!(t.values_mut().count(), 995);
        // Down to empty and back.
        for n in 0..1000u32 {
            t.remove(&key(n));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.get_or_insert_with(key(1), Track::default).teid, 0);
        assert_eq!(t.len(), 1);
    }
}
