//! [`Packet`] over an XDP frame: every read is checked against `data_end` right before the load,
//! in the form the verifier tracks (`data + off + N <= data_end`, with `off` bounded).

use aya_ebpf::programs::{TcContext, XdpContext};
use guard_common::parse::{Packet, MAX_PARSE_OFFSET, WIDE_PARSE_OFFSET};

pub struct XdpPacket<'a> {
    ctx: &'a XdpContext,
}

impl<'a> XdpPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        XdpPacket { ctx }
    }
}

impl Packet for XdpPacket<'_> {
    #[inline(always)]
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.read_within::<N, MAX_PARSE_OFFSET>(off)
    }

    #[inline(always)]
    fn read_wide<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.read_within::<N, WIDE_PARSE_OFFSET>(off)
    }

    /// Word loads (`*(u32 *)`), through asm: the BPF backend would split an unaligned `u32` read
    /// into four octet loads, and a misaligned `*const u32` read is undefined in Rust. The
    /// verifier allows unaligned packet loads where the architecture does (x86-64 and arm64:
    /// `CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`, unless the program is loaded with
    /// `BPF_F_STRICT_ALIGNMENT`, which the guard never sets).
    #[inline(always)]
    fn read_u32s<const K: usize>(&self, off: usize) -> Option<[u32; K]> {
        let off = opaque(off);
        if off > MAX_PARSE_OFFSET {
            return None;
        }
        let start = self.ctx.data();
        let end = self.ctx.data_end();
        if start + off + 4 * K > end {
            return None;
        }
        let mut w = [0u32; K];
        for (i, x) in w.iter_mut().enumerate() {
            let v: u64;
            // SAFETY: [start + off, start + off + 4K) was just checked to lie inside the frame;
            // the asm is one load (LDX W, zero-extending) from `start + off + 4i`.
            unsafe {
                core::arch::asm!(
                    "{0} = *(u32 *)({1} + 0)",
                    out(reg) v,
                    in(reg) start + off + 4 * i,
                    options(readonly, nostack, preserves_flags)
                )
            };
            *x = v as u32;
        }
        Some(w)
    }

    /// Opaque to the optimiser on purpose: the parsers compare header lengths with `len()`, and
    /// LLVM would otherwise use those scalar comparisons to delete later pointer bounds checks,
    /// which the verifier cannot follow.
    #[inline(always)]
    fn len(&self) -> usize {
        opaque(self.ctx.data_end() - self.ctx.data())
    }
}

impl XdpPacket<'_> {
    #[inline(always)]
    fn read_within<const N: usize, const W: usize>(&self, off: usize) -> Option<[u8; N]> {
        const { assert!(N >= 2, "reads must be at least 2 octets; see `Packet`") };
        // `off` is made opaque so LLVM cannot reassociate `data + (x - k) + N` into a check on one
        // register and a load through another (the verifier tracks ranges per register lineage).
        let off = opaque(off);
        // Bounding `off` first gives the verifier a range for the pointer arithmetic below.
        if off > W {
            return None;
        }
        let start = self.ctx.data();
        let end = self.ctx.data_end();
        if start + off + N > end {
            return None;
        }
        // SAFETY: [start + off, start + off + N) was just checked to lie inside the frame.
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
    }
}

/// [`Packet`] over the linear part of a socket buffer (a TC classifier), checked the same way.
pub struct TcPacket<'a> {
    ctx: &'a TcContext,
}

impl<'a> TcPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        TcPacket { ctx }
    }
}

impl Packet for TcPacket<'_> {
    #[inline(always)]
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.read_within::<N, MAX_PARSE_OFFSET>(off)
    }

    #[inline(always)]
    fn read_wide<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.read_within::<N, WIDE_PARSE_OFFSET>(off)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        opaque(self.ctx.data_end() - self.ctx.data())
    }
}

impl TcPacket<'_> {
    #[inline(always)]
    fn read_within<const N: usize, const W: usize>(&self, off: usize) -> Option<[u8; N]> {
        const { assert!(N >= 2, "reads must be at least 2 octets; see `Packet`") };
        let off = opaque(off);
        if off > W {
            return None;
        }
        let start = self.ctx.data();
        let end = self.ctx.data_end();
        if start + off + N > end {
            return None;
        }
        // SAFETY: [start + off, start + off + N) was just checked to lie inside the linear data.
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
    }
}

/// libbpf's `barrier_var`: an asm (`rX = rX`, one real instruction: an empty asm leaves a BTF line_info entry
/// with no instruction, which the kernel rejects) that LLVM must assume changes `v`, so it cannot fold the
/// value into surrounding arithmetic. Unlike `black_box` it stays in a register (no stack slot;
/// the BPF stack is 512 bytes in all).
#[inline(always)]
fn opaque(mut v: usize) -> usize {
    // SAFETY: the asm is empty; it only tells LLVM that `v` may have changed.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) v, options(pure, nomem, nostack, preserves_flags)) };
    v
}
