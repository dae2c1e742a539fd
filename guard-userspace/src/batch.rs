//! Batched reads of a BPF hash map (`BPF_MAP_LOOKUP_BATCH`, kernel ≥ 5.6), in resumable slices.
//!
//! aya 0.14 reads a hash map one entry at a time, with two `bpf()` calls per entry (next key,
//! then lookup): about 3.5 µs per device on this class of machine, so a walk of a 1M-device map
//! took 3.7 s and blocked the control loop for as long. A batch call copies whole hash buckets,
//! thousands of entries per syscall (kernel `__htab_map_lookup_and_delete_batch`,
//! `Documentation/bpf/map_hash.rst`).
//!
//! The cursor is the kernel's opaque batch token (for hash maps, a bucket index), so the
//! controller can read a slice each tick and carry on from there the next tick. Like any
//! iteration of a live hash map, a walk may miss entries inserted or deleted meanwhile, and reads
//! each entry at most once.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{
    maps::{MapData, MapError},
    Pod,
};

/// `enum bpf_cmd` value of `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h), as the kernel reads it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(core::mem::size_of::<BatchAttr>() == 56);

/// Where a walk of one map stands between slices.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The kernel's token for the next bucket; `None` before the first slice of a walk.
    token: Option<u64>,
    /// The last slice reached the end of the map: the next one starts a new walk.
    done: bool,
}

impl Cursor {
    /// The last slice ended the walk.
    pub fn finished(&self) -> bool {
        self.done
    }
}

/// Read up to `max` entries of the hash map `map` from `cursor` into `out` (appended), as few
/// syscalls as the buffer allows (`chunk` entries per call). Returns how many were read.
/// A cursor that finished a walk starts a new one.
pub fn read_slice<K: Pod, V: Pod>(
    map: &MapData,
    cursor: &mut Cursor,
    max: usize,
    chunk: usize,
    out: &mut Vec<(K, V)>,
) -> Result<usize, MapError> {
    if cursor.done {
        *cursor = Cursor::default();
    }
    let chunk = chunk.max(1);
    let mut keys: Vec<K> = Vec::with_capacity(chunk);
    let mut values: Vec<V> = Vec::with_capacity(chunk);
    let mut read = 0usize;
    while read < max && !cursor.done {
        // Never fewer than `chunk`: a call with room for less than one bucket fails (ENOSPC).
        let want = chunk;
        let mut next: u64 = 0;
        let mut attr = BatchAttr {
            in_batch: cursor.token.as_ref().map_or(0, |t| t as *const u64 as u64),
            out_batch: &mut next as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(want).unwrap_or(u32::MAX),
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is the kernel's `batch` layout; `keys` and `values` have room for
        // `count` elements of the map's key and value sizes (K and V are the map's types, checked
        // by aya when the typed map was opened), the tokens point to 8 writable bytes (hash maps
        // use 4).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                core::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let got = attr.count as usize;
        match &err {
            None => {}
            // End of the map: `count` still says how many the last call copied.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => cursor.done = true,
            Some(e) => {
                return Err(MapError::SyscallError(aya::sys::SyscallError {
                    call: "bpf_map_lookup_batch",
                    io_error: io::Error::new(e.kind(), e.to_string()),
                }))
            }
        }
        let got = got.min(want);
        // SAFETY: the kernel wrote `got` ≤ capacity elements to each buffer; K and V are Pod.
        unsafe {
            keys.set_len(got);
            values.set_len(got);
        }
        out.extend(keys.drain(..).zip(values.drain(..)));
        read += got;
        cursor.token = Some(next);
    }
    Ok(read)
}
