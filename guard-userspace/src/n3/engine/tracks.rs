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
//! outside this file a position is only ever a *hint* ([`Tracks::get_mut_at`]), checked against
//! the key of the track it points to before it is used.
//!
//! Why hints (issue 19, the controller's steady CPU at 1M devices): a walk reads the device map
//! in the kernel's bucket order, which is the order its devices were first read and so inserted
//! here; a reading's track is then most often the one after the last reading's. Checking that
//! slot first (its key is in the cache line the hardware prefetcher already brought, the slots
//! being read in order) skips the index probe, a cache miss into its 10 MiB at 1M devices; a
//! miss costs one key comparison more and falls back to the index. The same track is found
//! either way, so nothing the engine decides depends on a hint.

use std::hash::BuildHasher;

use guard_common::abi::DeviceKey;
use hashbrown::hash_table::{Entry, HashTable};

use super::track::Track;
use super::Hasher;

/// [`Tracks::locate`]'s position of a key with no track: past any table (see `Tracks::index`).
pub(super) const ABSENT: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct Tracks {
    hasher: Hasher,
    /// Positions in `slots`, hashed by their key. `u32`: the engine holds at most
    /// `guard.max_devices` (a `u32`) tracks plus the one being inserted, far below 2^32 in any
    /// memory.
    index: HashTable<u32>,
    /// The tracks, each holding its key (`Track::key`).
    slots: Vec<Track>,
    /// The position after the track [`Tracks::get_or_insert_with`] found last: where the next
    /// reading of a walk most likely finds its own (see the module documentation).
    next: usize,
}

impl Tracks {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn position(&self, key: &DeviceKey) -> Option<usize> {
        let slots = &self.slots;
        self.index.find(self.hasher.hash_one(key), |&i| slots[i as usize].key == *key).map(|&i| i as usize)
    }

    /// The position of `key`'s track: `hint` if the track there is `key`'s, else from the index.
    fn position_at(&self, key: &DeviceKey, hint: u32) -> Option<usize> {
        let hint = hint as usize;
        if self.slots.get(hint).is_some_and(|t| t.key == *key) {
            return Some(hint);
        }
        self.position(key)
    }

    pub fn get(&self, key: &DeviceKey) -> Option<&Track> {
        self.position(key).map(|i| &self.slots[i])
    }

    pub fn get_mut(&mut self, key: &DeviceKey) -> Option<&mut Track> {
        self.position(key).map(|i| &mut self.slots[i])
    }

    /// `key`'s track and its position, looked for at the position `hint` first (a position
    /// this table gave out earlier, which removals may have moved: it is checked).
    pub fn get_mut_at(&mut self, key: &DeviceKey, hint: u32) -> Option<(u32, &mut Track)> {
        self.position_at(key, hint).map(|i| (i as u32, &mut self.slots[i]))
    }

    /// `key`'s track and its position, as [`Tracks::get_mut_at`].
    pub fn get_at(&self, key: &DeviceKey, hint: u32) -> Option<(u32, &Track)> {
        self.position_at(key, hint).map(|i| (i as u32, &self.slots[i]))
    }

    /// The track of `key` and its position, inserted from `new` if absent: looked for just after
    /// the track this found last (a walk's order, see the module documentation), else one index
    /// lookup, known device or new.
    pub fn get_or_insert_with(&mut self, key: DeviceKey, new: impl FnOnce() -> Track) -> (u32, &mut Track) {
        let hint = self.next as u32;
        self.get_or_insert_at(key, hint, new)
    }

    /// As [`Tracks::get_or_insert_with`], looked for at the position `hint` first (one
    /// [`Tracks::locate`] gave, which a removal since may have moved: it is checked).
    pub fn get_or_insert_at(&mut self, key: DeviceKey, hint: u32, new: impl FnOnce() -> Track) -> (u32, &mut Track) {
        let hint = hint as usize;
        if self.slots.get(hint).is_some_and(|t| t.key == key) {
            self.next = hint + 1;
            return (hint as u32, &mut self.slots[hint]);
        }
        let Tracks { hasher, index, slots, next: after } = self;
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
        *after = i as usize + 1;
        (i, &mut slots[i as usize])
    }

    /// Where the tracks of `keys` are, in `out` (cleared first; [`ABSENT`] for a key with none),
    /// each looked for after the last one found, as [`Tracks::get_or_insert_with`] does, else in
    /// the index. Why a batch (issue 19, the controller's CPU): a reading whose track is not
    /// where the walk's order puts it costs an index probe, two or three cache misses into tens
    /// of MiB at 1M devices. Inside the fold of a reading the CPU waits for them one reading at
    /// a time (~440 ns each, this table alone at 1M tracks in random order); in a loop that only
    /// looks up, it overlaps the next readings' misses with them (~100 ns). The positions are hints:
    /// the fold checks each ([`Tracks::get_or_insert_at`]), so a removal in between costs a
    /// probe, never another device's track.
    pub fn locate<'k>(&mut self, keys: impl IntoIterator<Item = &'k DeviceKey>, out: &mut Vec<u32>) {
        out.clear();
        // `position_at` does the same test, but through it this loop cost 2-3x as much out of
        // order (548-615 against 262 ns a reading, `a_walk_in_and_out_of_order_at_scale`, same
        // machine and hour): the probes overlap only while the loop body stays this small; why
        // the call enlarges it (inlining, most likely) was not looked into.
        for key in keys {
            let found = if self.slots.get(self.next).is_some_and(|t| t.key == *key) {
                Some(self.next)
            } else {
                self.position(key)
            };
            out.push(match found {
                Some(i) => {
                    self.next = i + 1;
                    i as u32
                }
                None => ABSENT,
            });
        }
    }

    pub fn remove(&mut self, key: &DeviceKey) -> Option<Track> {
        let Tracks { hasher, index, slots, .. } = self;
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

    /// The key of the track at `position`, if there is one.
    pub fn key_at(&self, position: usize) -> Option<DeviceKey> {
        self.slots.get(position).map(|t| t.key)
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
        assert_eq!(t.get_or_insert_with(key(7), || panic!("7 is tracked")).1.teid, 7);
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
        assert_eq!(t.get_or_insert_with(key(1), Track::default).1.teid, 0);
        assert_eq!(t.len(), 1);
    }

    /// A hint is only a place to look first: any hint, right, stale (the track moved by a
    /// removal), out of range or pointing at another track, finds `key`'s own track or none,
    /// and the positions handed out are where the tracks are.
    #[test]
    fn hints_never_find_another_track() {
        let mut t = Tracks::default();
        let at: Vec<u32> =
            (0..100u32).map(|n| t.get_or_insert_with(key(n), || Track { teid: n, ..Track::default() }).0).collect();
        assert_eq!(at, (0..100).collect::<Vec<_>>());
        // Removing 10 moves 99 into its place: 99's hint is stale.
        t.remove(&key(10));
        for n in (0..100u32).filter(|n| *n != 10) {
            for hint in [at[n as usize], 10, 0, 98, 5000, u32::MAX] {
                let (i, tr) = t.get_at(&key(n), hint).expect("tracked");
                assert_eq!((tr.teid, t.slots[i as usize].key), (n, key(n)), "{n} from hint {hint}");
                assert_eq!(t.get_mut_at(&key(n), hint).map(|(j, tr)| (j, tr.teid)), Some((i, n)));
            }
        }
        assert!(t.get_at(&key(10), 10).is_none() && t.get_mut_at(&key(10), 99).is_none());
        // In order (a walk's), each after the last: the same tracks as through the index.
        for n in (0..100u32).rev().chain(0..100).filter(|n| *n != 10) {
            let (i, tr) = t.get_or_insert_with(key(n), || panic!("{n} is tracked"));
            assert_eq!((tr.teid, Some(i as usize)), (n, t.position(&key(n))));
        }
        // Located in a batch, in any order, absent keys included: each where the index has it.
        let keys: Vec<DeviceKey> = [5u32, 6, 7, 10, 99, 0, 1000, 98, 1, 2].into_iter().map(key).collect();
        let mut at = Vec::new();
        t.locate(&keys, &mut at);
        let want: Vec<u32> = keys.iter().map(|k| t.position(k).map_or(ABSENT, |p| p as u32)).collect();
        assert_eq!(at, want);
        assert_eq!(at[3], ABSENT, "10 was removed");
        // Each position, or a stale one, or none, finds the key's own track or makes it.
        t.remove(&key(5));
        for (k, hint) in keys.iter().zip(at) {
            let (i, tr) = t.get_or_insert_at(*k, hint, || Track { teid: 7777, ..Track::default() });
            let made = tr.teid == 7777;
            assert_eq!(t.slots[i as usize].key, *k);
            assert_eq!(made, [key(5), key(10), key(1000)].contains(k), "{k:?} made anew only if untracked");
        }
    }
}
