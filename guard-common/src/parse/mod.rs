//! Bounds-checked, cursor-style packet parsers (in the manner of xdp-tools' `parsing_helpers.h`):
//! one function per header, each reading through a [`Packet`] and returning where the next header
//! starts. They are generic over [`Packet`], so the same code parses a `&[u8]` in host tests and
//! fuzzers and an `XdpContext` in the kernel.
//!
//! Every read goes through [`Packet::read`], which refuses offsets beyond [`MAX_PARSE_OFFSET`].
//! That cap is what lets the BPF verifier bound the variable offsets (IHL, extension headers).

pub mod ethernet;
pub mod gtpu;
pub mod ip;
pub mod n2;
pub mod n3;
mod nas;
pub mod ngap;
pub mod reason;
pub mod sctp;
pub mod udp;

pub use reason::Malformed;

#[cfg(test)]
mod tests;

/// No header is read beyond this offset. Real N3 headers end well before it: Ethernet + 2 VLAN
/// tags (22) + IPv6 with a few extension headers + UDP + GTP-U with its extension chain.
pub const MAX_PARSE_OFFSET: usize = 512;

/// The window of [`Packet::read_wide`]: every offset an IP packet can have (IPv4 Total Length and
/// IPv6 Payload Length are 16 bits), and below the verifier's limit on a packet pointer's offset
/// (`MAX_PACKET_OFF`, 0xffff). The N2 chunk and IE walks read through it, so for them the window
/// is the packet: bundled InitialUEMessages and a long NAS-PDU (which precedes the
/// UserLocationInformation, TS 38.413 §9.2.5.1) no longer push IEs out of sight. An XDP frame's
/// linear part is at most a page, well inside it.
pub const WIDE_PARSE_OFFSET: usize = 0xff00;

/// Read access to a packet's bytes.
///
/// Reads are at least 2 octets wide: for a 1-octet read LLVM rewrites the bounds check
/// `p + 1 > end` into `p >= end`, a form from which the BPF verifier derives no readable range.
/// Every header field read alone is inside a header of at least 2 octets, so parsers read a wider
/// window and pick the octet.
pub trait Packet {
    /// Copy `N` bytes starting at `off`; `None` if they are not all inside the packet or `off` is
    /// beyond [`MAX_PARSE_OFFSET`].
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]>;
    /// As [`Packet::read`], up to [`WIDE_PARSE_OFFSET`]: for walks whose offsets come from
    /// length fields (SCTP chunks, NGAP IEs), which only the packet's end bounds.
    fn read_wide<const N: usize>(&self, off: usize) -> Option<[u8; N]>;
    /// `K` 4-octet words starting at `off`, each as `u32::from_ne_bytes` reads its octets (so
    /// storing them writes the octets back in wire order); `None` unless all `4 * K` octets are
    /// inside the packet. The kernel's reader loads whole words here (the BPF backend splits a
    /// [`Packet::read`] of an unaligned array into one load per octet, plus the shifts and ors
    /// that put a word back together): addresses are read this way (issue 19).
    #[inline(always)]
    fn read_u32s<const K: usize>(&self, off: usize) -> Option<[u32; K]> {
        let mut w = [0u32; K];
        for (i, x) in w.iter_mut().enumerate() {
            *x = u32::from_ne_bytes(self.read::<4>(off + 4 * i)?);
        }
        Some(w)
    }
    /// Total length in bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Packet for [u8] {
    #[inline(always)]
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        slice_read::<N, MAX_PARSE_OFFSET>(self, off)
    }

    #[inline(always)]
    fn read_wide<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        slice_read::<N, WIDE_PARSE_OFFSET>(self, off)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

#[inline(always)]
fn slice_read<const N: usize, const W: usize>(s: &[u8], off: usize) -> Option<[u8; N]> {
    const { assert!(N >= 2, "reads must be at least 2 octets; see `Packet`") };
    if off > W {
        return None;
    }
    let end = off.checked_add(N)?;
    let b = s.get(off..end)?;
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    Some(out)
}

/// Big-endian helpers: every multi-octet field on the wire is in network byte order.
#[inline(always)]
pub fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
pub fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}
