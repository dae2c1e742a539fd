//! The bpf(2) commands aya 0.14 does not offer (batched map reads and writes, pinning and
//! opening objects by path, a program array slot read by descriptor, a link's program update),
//! through one raw call.

use std::io;

/// The `enum bpf_cmd` values used here (include/uapi/linux/bpf.h).
pub const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub const BPF_OBJ_PIN: libc::c_long = 6;
pub const BPF_OBJ_GET: libc::c_long = 7;
pub const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
pub const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
pub const BPF_LINK_UPDATE: libc::c_long = 29;

/// bpf(2) command `cmd` on `attr` (the prefix of `union bpf_attr` that `cmd` reads, passed with
/// its size; the kernel zero-extends the rest and may write results back into it). The
/// command's non-negative result (a new descriptor for `BPF_OBJ_GET`, else 0), or the error.
///
/// # Safety
/// `A` must be `cmd`'s layout of `bpf_attr`, and every pointer in it must satisfy `cmd` for the
/// duration of the call (buffers of the sizes the command reads or writes, NUL-terminated paths).
pub unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<i64> {
    // SAFETY: `attr` lives across the call and is `size_of::<A>()` bytes; the caller vouches for
    // its layout and what it points to.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, core::mem::size_of::<A>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
