//! `N3_STAGED` mapped into this process: the bits that tell the data plane a never-seen device
//! may have a stage entry (`guard_common::abi::staged_bit`, docs/dataplane.md "A new device's
//! first packet").
//!
//! The map is `BPF_F_MMAPABLE`, so a bit is set by an atomic OR on its word in shared memory: two
//! processes writing stages at once (the controller and `guard device pin`) never lose each
//! other's bits, which a whole-value `BPF_MAP_UPDATE_ELEM` of a word both touch would.

use std::{
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use guard_common::abi::{staged_bit, DeviceId, STAGED_WORDS};

/// The mapped words of `N3_STAGED`; unmapped on drop.
pub struct StagedMarks {
    words: NonNull<AtomicU64>,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for StagedMarks {}
// SAFETY: as above.
unsafe impl Sync for StagedMarks {}

const LEN: usize = STAGED_WORDS as usize * 8;

impl StagedMarks {
    /// Map the array behind `fd` (an `N3_STAGED` of this build's layout: `STAGED_WORDS` u64
    /// values, `BPF_F_MMAPABLE`; the caller checked the pins' layout). The mapping holds its own
    /// reference to the map, so `fd` may be closed afterwards.
    pub fn map(fd: BorrowedFd<'_>) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of LEN bytes (whole pages, asserted in guard-common) of
        // the map's value area; the kernel refuses a map that is not mmapable or is smaller.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let words = NonNull::new(p.cast::<AtomicU64>()).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(StagedMarks { words })
    }

    fn word(&self, i: u32) -> &AtomicU64 {
        // SAFETY: `i < STAGED_WORDS` (`staged_bit`), inside the mapping, page-aligned so 8-byte
        // aligned; the data plane reads these words and nothing writes them non-atomically.
        unsafe { &*self.words.as_ptr().add((i % STAGED_WORDS) as usize) }
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
}

impl Drop for StagedMarks {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of LEN bytes, unmapped once.
        unsafe { libc::munmap(self.words.as_ptr().cast(), LEN) };
    }
}
