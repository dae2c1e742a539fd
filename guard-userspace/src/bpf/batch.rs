//! Batched reads of a BPF hash map (`BPF_MAP_LOOKUP_BATCH`, kernel ≥ 5.6), in resumable slices,
//! and batched writes (`BPF_MAP_UPDATE_BATCH`, used by the benchmark to advance many devices'
//! counters at once).
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

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    maps::{MapData, MapError},
    Pod,
};

use super::sys::{bpf, BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH};

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

/// Where a walk of one map stands between slices, and the buffers its batches are read into
/// (kept, so a walk in slices does not allocate per slice).
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    /// The kernel's token for the next bucket; `None` before the first slice of a walk.
    token: Option<u64>,
    /// The last slice reached the end of the map: the next one starts a new walk.
    done: bool,
    keys: Vec<u8>,
    values: Vec<u8>,
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
    read_slice_keyed(map, cursor, max, chunk, out, |k| k)
}

/// [`read_slice`], each key converted by `key` on the way out (the device map's 8-byte ids to the
/// keys userspace names devices by), so the entries are copied once.
pub fn read_slice_keyed<K: Pod, V: Pod, U>(
    map: &MapData,
    cursor: &mut Cursor,
    max: usize,
    chunk: usize,
    out: &mut Vec<(U, V)>,
    key: impl Fn(K) -> U,
) -> Result<usize, MapError> {
    if cursor.done {
        cursor.token = None;
        cursor.done = false;
    }
    let chunk = chunk.max(1);
    let (ksz, vsz) = (core::mem::size_of::<K>(), core::mem::size_of::<V>());
    cursor.keys.resize(chunk * ksz, 0);
    cursor.values.resize(chunk * vsz, 0);
    let mut read = 0usize;
    while read < max && !cursor.done {
        let mut next: u64 = 0;
        let mut attr = BatchAttr {
            in_batch: cursor.token.as_ref().map_or(0, |t| t as *const u64 as u64),
            out_batch: &mut next as *mut u64 as u64,
            keys: cursor.keys.as_mut_ptr() as u64,
            values: cursor.values.as_mut_ptr() as u64,
            // Never fewer than `chunk`: a call with room for less than one bucket fails (ENOSPC).
            count: u32::try_from(chunk).unwrap_or(u32::MAX),
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the key and value buffers have room for `count` elements of the map's key and
        // value sizes (K and V are the map's types, checked by aya when the typed map was
        // opened), the tokens point to 8 writable bytes (hash maps use 4).
        if let Err(e) = unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) } {
            // End of the map: `count` still says how many the last call copied.
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(MapError::SyscallError(aya::sys::SyscallError {
                    call: "bpf_map_lookup_batch",
                    io_error: e,
                }));
            }
            cursor.done = true;
        }
        let got = (attr.count as usize).min(chunk);
        out.reserve(got);
        for i in 0..got {
            // SAFETY: the kernel wrote `got` ≤ `chunk` whole elements to each buffer; K and V are
            // Pod (any bit pattern is valid); unaligned reads from the byte buffers.
            let (k, v) = unsafe {
                (
                    std::ptr::read_unaligned(cursor.keys.as_ptr().add(i * ksz) as *const K),
                    std::ptr::read_unaligned(cursor.values.as_ptr().add(i * vsz) as *const V),
                )
            };
            out.push((key(k), v));
        }
        read += got;
        cursor.token = Some(next);
    }
    Ok(read)
}

/// Write `keys[i]` → `values[i]` into the hash map `map` (`BPF_MAP_UPDATE_BATCH`, `BPF_ANY`: an
/// entry is created or replaced), as few syscalls as the kernel takes them in.
pub fn write_batch<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> Result<(), MapError> {
    let n = keys.len().min(values.len());
    let mut done = 0usize;
    while done < n {
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: u32::try_from(n - done).unwrap_or(u32::MAX),
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the key and value arrays hold `count` contiguous elements of the map's key and
        // value types (K and V, checked by aya when the typed map was opened), which the kernel
        // only reads.
        let r = unsafe { bpf(BPF_MAP_UPDATE_BATCH, &mut attr) };
        // `count` says how many the call wrote, also when it failed part way.
        done += attr.count as usize;
        if let Err(io_error) = r.map(drop) {
            return Err(MapError::SyscallError(aya::sys::SyscallError { call: "bpf_map_update_batch", io_error }));
        }
        if attr.count == 0 {
            break;
        }
    }
    Ok(())
}
