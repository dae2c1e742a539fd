//! The engine's per-device tracks: a dense table of tracks, each holding its key, with a hash
//! index of table positions.
//!
//! Why not a `HashMap<DeviceKey, Track>`: a hash table keeps between an eighth and a half of its
//! buckets empty (it doubles when 7/8 full), and each bucket holds a whole track. At 1M devices
//! that is 2^21 buckets and ~1 GB resident (issue 19 measured 983.8 MiB for the controller). Here
//! the tracks sit packed, and the index holds only their positions: a bucket is 4 bytes and a
//! control byte (a `HashMap<DeviceKey, u32>` bucket was 24 and one: 52 MB at 2^21 buckets, now
//! 10.5 MB), the key being read from the table when a probe's hash tag matches. A full pass walks
//! the tracks in memory order, which is also faster than walking buckets.
//!
//! Removal swaps the last track into the hole (one index update), so positions are not stable:
//! nothing outside this file keeps one.

use std::hash::BuildHasher;

use guard_common::abi::DeviceKey;
use hashbrown::hash_table::{Entry, HashTable};

use super::track::Track;
use super::Hasher;

#[derive(Debug, Default)]
pub(super) struct Tracks {
    hasher: Hasher,
    /// Positions in `slots`, hashed by their key. `u32`: the engine holds at most
    /// `guard.max_devices` (a `u32`) tracks plus the one being inserted, far below 2^32 in any
    /// memory.
    index: HashTable<u32>,
    /// The tracks, each holding its key (`Track::key`).
    slots: Vec<Track>,
}

impl Tracks {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn position(&self, key: &DeviceKey) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(self.hasher.hash_one(key), |&i| slots[i as usize].key == *key).map(|&i| i as usize)
    }

    pub fn get(&self, key: &DeviceKey) -> Option<&Track> {
        self.position(key).map(|i| &self.slots[i])
    }

    pub fn get_mut(&mut self, key: &DeviceKey) -> Option<&mut Track> {
        self.position(key).map(|i| &mut self.slots[i])
    }

    /// The track of `key`, inserted from `new` if absent: one index lookup either way.
    pub fn get_or_insert_with(&mut self, key: DeviceKey, new: impl FnOnce() -> Track) -> &mut Track {
        let Tracks { hasher, index, slots } = self;
        let next = slots.len() as u32;
        let i = match index.entry(
            hasher.hash_one(key),
            |&i| slots[i as usize].key == key,
            |&i| hasher.hash_one(slots[i as usize].key),
        ) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                e.insert(next);
                let mut t = new();
                t.key = key;
                slots.push(t);
                next
            }
        };
        &mut slots[i as usize]
    }

    pub fn remove(&mut self, key: &DeviceKey) -> Option<Track> {
        let Tracks { hasher, index, slots } = self;
        let i = match index.find_entry(hasher.hash_one(key), |&i| slots[i as usize].key == *key) {
            Ok(e) => e.remove().0 as usize,
            Err(_) => return None,
        };
        let last = slots.len() - 1;
        let t = slots.swap_remove(i);
        if let Some(moved) = slots.get(i) {
            // The moved track's index entry still says `last`.
            if let Some(p) = index.find_mut(hasher.hash_one(moved.key), |&p| p as usize == last) {
                *p = i as u32;
            }
        }
        Some(t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&DeviceKey, &Track)> {
        self.slots.iter().map(|t| (&t.key, t))
    }

    /// Each track, its key in it (`Track::key`: a track must not change it).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Track> {
        self.slots.iter_mut()
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
        for tr in t.values_mut() {
            assert_eq!(tr.key, key(tr.teid));
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
