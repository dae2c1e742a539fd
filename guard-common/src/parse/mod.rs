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
pub mod ngap;
pub mod reason;
pub mod sctp;
pub mod udp;

pub use reason::Malformed;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_n2;

/// No header is read beyond this offset. Real N3 headers end well before it: Ethernet + 2 VLAN
/// tags (22) + IPv6 with a few extension headers + UDP + GTP-U with its extension chain.
pub const MAX_PARSE_OFFSET: usize = 512;

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
    /// Total length in bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Packet for [u8] {
    #[inline(always)]
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        const { assert!(N >= 2, "reads must be at least 2 octets; see `Packet`") };
        if off > MAX_PARSE_OFFSET {
            return None;
        }
        let end = off.checked_add(N)?;
        let s = self.get(off..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Some(out)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
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
