//! UDP header (RFC 768).

use super::{be16, Malformed, Packet};

pub const UDP_HLEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP Length field: header plus payload.
    pub length: u16,
    pub next: usize,
}

#[inline(always)]
pub fn parse<P: Packet + ?Sized>(pkt: &P, off: usize) -> Result<Udp, Malformed> {
    let h = pkt.read::<UDP_HLEN>(off).ok_or(Malformed::UdpTruncated)?;
    Ok(Udp {
        src_port: be16([h[0], h[1]]),
        dst_port: be16([h[2], h[3]]),
        length: be16([h[4], h[5]]),
        next: off + UDP_HLEN,
    })
}
