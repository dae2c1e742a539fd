//! The system allocator, asking for transparent huge pages on large blocks.
//!
//! At 1M devices the engine's per-device table is close to 1 GiB, and every reading is a random
//! access into it: with 4 KiB pages nearly every access also misses the TLB, and under a
//! hypervisor a page walk is expensive. On hosts where THP is `madvise` (the Debian default),
//! `MADV_HUGEPAGE` on blocks of 4 MiB and more (glibc serves those with fresh `mmap`s, so the
//! advice precedes the first touch) lets the kernel back them with 2 MiB pages. Small blocks are
//! left alone, and a failed `madvise` changes nothing but speed.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are advised.
const HUGE_MIN: usize = 4 << 20;
const PAGE: usize = 4096;

pub struct HugeAlloc;

fn advise(p: *mut u8, size: usize) {
    if p.is_null() || size < HUGE_MIN {
        return;
    }
    // Whole pages inside the block only.
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + size) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies within a block this allocator just handed out; MADV_HUGEPAGE
        // only changes how the kernel backs it, never its contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

// SAFETY: every call is forwarded to `System` unchanged; `advise` only adds a hint.
unsafe impl GlobalAlloc for HugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's contract.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}
