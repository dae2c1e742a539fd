//! `N3_STAGED` mapped into this process: the bits that tell the data plane a never-seen device
//! may have a stage entry (`guard_common::abi::staged_bit`, docs/dataplane.md "A new device's
//! first packet").
//!
//! The map is `BPF_F_MMAPABLE`, so a bit is set by an atomic OR on its word in shared memory: two
//! processes writing stages at once (the controller and `guard device pin`) never lose each
//! other's bits, which a whole-value `BPF_MAP_UPDATE_ELEM` of a word both touch would.
//!
//! Bits are cleared only by [`StagedMarks::rebuild`], the controller's: without it
//! every device ever staged would keep its bit, and over a long life the marks would fill up and
//! the first-packet saving fade. A bit cleared while its entry exists would let that device's
//! first packet skip its stage (its second finds it: the stage write replaced the generation the
//! known-device path checks), so the rebuild never clears a bit a writer may have just set.

use std::{
    os::fd::BorrowedFd,
    sync::atomic::{AtomicU64, Ordering},
};

use guard_common::abi::{staged_bit, DeviceId, STAGED_WORDS};
use memmap2::{MmapOptions, MmapRaw};

/// The mapped words of `N3_STAGED` (a shared, writable mapping; unmapped on drop).
pub struct StagedMarks {
    map: MmapRaw,
}

const LEN: usize = STAGED_WORDS as usize * 8;

impl StagedMarks {
    /// Map the array behind `fd` (an `N3_STAGED` of this build's layout: `STAGED_WORDS` u64
    /// values, `BPF_F_MMAPABLE`; the caller checked the pins' layout). The mapping holds its own
    /// reference to the map, so `fd` may be closed afterwards.
    pub fn map(fd: BorrowedFd<'_>) -> std::io::Result<Self> {
        // LEN bytes (whole pages, asserted in guard-common) of the map's value area, shared and
        // writable; the kernel refuses a map that is not mmapable or is smaller.
        let map = MmapOptions::new().len(LEN).map_raw(&fd)?;
        Ok(StagedMarks { map })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is LEN bytes = STAGED_WORDS u64s, page-aligned so 8-byte aligned,
        // and lives as long as `self`; the data plane reads these words and nothing writes them
        // non-atomically.
        unsafe { std::slice::from_raw_parts(self.map.as_mut_ptr().cast::<AtomicU64>(), STAGED_WORDS as usize) }
    }

    fn word(&self, i: u32) -> &AtomicU64 {
        &self.words()[(i % STAGED_WORDS) as usize]
    }

    /// Set the bit of `key` (a device's id, `abi::device_id`). Call it after the key's stage
    /// entry is in `N3_STAGES` (`SeqCst`: the insert, a completed syscall, is visible to any CPU
    /// that sees the bit).
    pub fn mark(&self, key: DeviceId) {
        let (w, b) = staged_bit(key);
        self.word(w).fetch_or(1 << b, Ordering::SeqCst);
    }

    /// Whether `key`'s bit is set.
    pub fn is_marked(&self, key: DeviceId) -> bool {
        let (w, b) = staged_bit(key);
        self.word(w).load(Ordering::SeqCst) >> b & 1 != 0
    }

    /// How many bits are set (how full the marks are: `guard status`, tests).
    pub fn count(&self) -> u32 {
        (0..STAGED_WORDS).map(|i| self.word(i).load(Ordering::Relaxed).count_ones()).sum()
    }

    /// Clear the bits no live stage entry has: see [`rebuild`]. `walk` reads `N3_STAGES` and
    /// returns every key's `(word, bit)`; it is called twice. Returns how many bits were cleared
    /// for good (cleared by the swap and not set again by the second walk).
    pub fn rebuild(&self, walk: impl FnMut() -> Vec<(u32, u32)>) -> u32 {
        rebuild(self.words(), walk)
    }
}

/// A rebuild of the marks beside writers that insert an entry, then set its bit, with no lock:
///
/// 1. snapshot the words;
/// 2. walk the entries; swap each word from its snapshot to the bits the walk found in it
///    (compare-and-swap: a word a writer changed since the snapshot is left as it is);
/// 3. walk again and set every bit found.
///
/// A bit set before the snapshot belongs to an entry inserted before the first walk, which that
/// walk reads if the entry still exists. A bit set after the snapshot fails its word's swap. What
/// step 2 alone gets wrong is an entry inserted during the first walk (missed by it) whose bit was
/// already set, by a removed entry: its writer's OR changes nothing, the swap clears the bit.
/// That entry was inserted before the second walk began, so step 3 sets its bit again. So after a
/// rebuild every entry's bit is set; between the swap and step 3 (one walk, milliseconds) such an
/// entry's bit may be clear, which costs at most that device's first packet if it has never been
/// seen (docs/dataplane.md). Returns the bits cleared for good.
fn rebuild(words: &[AtomicU64], mut walk: impl FnMut() -> Vec<(u32, u32)>) -> u32 {
    let before: Vec<u64> = words.iter().map(|w| w.load(Ordering::SeqCst)).collect();
    let mut want = vec![0u64; words.len()];
    for (w, b) in walk() {
        if let Some(x) = want.get_mut(w as usize) {
            *x |= 1 << (b % 64);
        }
    }
    for ((word, &old), &new) in words.iter().zip(&before).zip(&want) {
        // Only ever clear: a bit the walk found but the word lacks is set by its writer.
        let new = old & new;
        if new != old {
            let _ = word.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
    for (w, b) in walk() {
        if let Some(word) = words.get(w as usize) {
            word.fetch_or(1 << (b % 64), Ordering::SeqCst);
        }
    }
    words.iter().zip(&before).map(|(w, &old)| (old & !w.load(Ordering::SeqCst)).count_ones()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn set(words: &[AtomicU64], (w, b): (u32, u32)) {
        words[w as usize].fetch_or(1 << b, Ordering::SeqCst);
    }

    fn is_set(words: &[AtomicU64], (w, b): (u32, u32)) -> bool {
        words[w as usize].load(Ordering::SeqCst) >> b & 1 != 0
    }

    #[test]
    fn bits_of_removed_entries_are_cleared_and_live_ones_kept() {
        let m = words(4);
        for bit in [(0, 1), (0, 2), (1, 63), (3, 0)] {
            set(&m, bit);
        }
        // (0, 2) and (3, 0) lost their entries.
        assert_eq!(rebuild(&m, || vec![(0, 1), (1, 63)]), 2);
        assert!(is_set(&m, (0, 1)) && is_set(&m, (1, 63)));
        assert!(!is_set(&m, (0, 2)) && !is_set(&m, (3, 0)));
    }

    #[test]
    fn a_bit_set_during_the_first_walk_fails_its_words_swap() {
        let m = words(2);
        set(&m, (0, 5));
        let mut calls = 0;
        let cleared = rebuild(&m, || {
            calls += 1;
            if calls == 1 {
                // A writer's entry and new bit, missed by this walk; its bit changes the word.
                set(&m, (0, 9));
                vec![]
            } else {
                vec![(0, 9)]
            }
        });
        assert_eq!(cleared, 0, "the word changed: left for the next rebuild");
        assert!(is_set(&m, (0, 9)) && is_set(&m, (0, 5)));
        assert_eq!(rebuild(&m, || vec![(0, 9)]), 1, "the next rebuild clears the stale bit");
        assert!(is_set(&m, (0, 9)) && !is_set(&m, (0, 5)));
    }

    /// The case the swap alone gets wrong: an entry inserted during the first walk whose bit a
    /// removed entry had set (its writer's OR changes nothing). The second walk sets it again.
    #[test]
    fn an_entry_inserted_during_the_walk_on_a_stale_bit_keeps_its_bit() {
        let m = words(1);
        set(&m, (0, 3)); // a removed entry's, stale
        let mut calls = 0;
        rebuild(&m, || {
            calls += 1;
            if calls == 1 {
                set(&m, (0, 3)); // the new entry's writer: no change to the word
                vec![]
            } else {
                vec![(0, 3)]
            }
        });
        assert!(is_set(&m, (0, 3)), "a live entry's bit was cleared");
    }

    /// A writer thread inserting entries (then setting their bits) and removing some, beside a
    /// rebuild loop: after each rebuild, every entry inserted before it began has its bit.
    #[test]
    fn rebuilds_beside_a_writer_leave_every_earlier_entrys_bit_set() {
        let m = Arc::new(words(8));
        let entries: Arc<Mutex<BTreeSet<(u32, u32)>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (m, entries, done) = (m.clone(), entries.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let bit = ((i * 7) % 8, (i * 13) % 64);
                    // Insert, then mark, as `N3Maps::set_stage` does.
                    entries.lock().expect("entries").insert(bit);
                    set(&m, bit);
                    if i % 3 == 0 {
                        let gone = ((i * 5) % 8, (i * 11) % 64);
                        entries.lock().expect("entries").remove(&gone);
                    }
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut rebuilds = 0;
        while !done.load(Ordering::SeqCst) && rebuilds < 100_000 {
            // Entries present before the rebuild began, whose bits their writers had set.
            let earlier: Vec<(u32, u32)> =
                entries.lock().expect("entries").iter().copied().filter(|b| is_set(&m, *b)).collect();
            rebuild(&m, || entries.lock().expect("entries").iter().copied().collect());
            let still: BTreeSet<(u32, u32)> = entries.lock().expect("entries").iter().copied().collect();
            for b in earlier.iter().filter(|b| still.contains(b)) {
                assert!(is_set(&m, *b), "{b:?}: an entry's bit cleared by rebuild {rebuilds}");
            }
            rebuilds += 1;
        }
        writer.join().expect("writer");
        assert!(rebuilds > 1, "the rebuild ran beside the writer");
    }
}
