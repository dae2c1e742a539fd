//! A minimal GTP-U decoder for counting, deliberately separate from `guard_common::parse` so the
//! sink and the generator account for traffic independently of the code under test. It reads
//! only what is needed: VLAN tags, outer IPv4/IPv6 (no IPv6 extension headers), UDP destination
//! port, GTP-U message type and TEID, and for a G-PDU the inner source address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the counters key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GtpSummary {
    pub outer_src: IpAddr,
    /// The outer destination: which of the host's N3 addresses (the F-TEID's, TS 29.281 §5.1).
    pub outer_dst: IpAddr,
    pub msg_type: u8,
    pub teid: u32,
    /// Inner source of a G-PDU whose T-PDU is IP.
    pub ue_src: Option<IpAddr>,
    /// What tells one sender of a signalling message from another in the lab: the Sequence
    /// Number of a message with the S flag (an Echo Request, TS 29.281 §7.2.1), else the TEID
    /// Data I of an Error Indication (§7.3.1, when it is the first IE).
    pub tag: Option<u32>,
    /// The first fragment of an outer IPv4 datagram (offset 0, More Fragments, RFC 791 §3.2):
    /// it carries the UDP and GTP-U headers of the whole; the lengths point past it.
    pub first_fragment: bool,
}

/// Result of looking at one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A GTP-U message to `port`.
    Gtp(GtpSummary),
    /// UDP to `port` that does not hold a sane GTP-U v1 header.
    BadGtp,
    /// A later fragment (offset > 0) of an outer IPv4 UDP datagram: no UDP header, known only by
    /// its source and Identification (RFC 791 §3.2).
    Fragment { src: Ipv4Addr, id: u16 },
    /// Anything else (ARP, ICMP, IPv6 ND, other ports).
    Other,
}

fn get<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    get::<2>(b, o).map(u16::from_be_bytes)
}

/// Decode `frame`, treating UDP destination `port` as GTP-U.
pub fn decode(frame: &[u8], port: u16) -> Decoded {
    decode_opt(frame, port).unwrap_or(Decoded::Other)
}

fn decode_opt(f: &[u8], port: u16) -> Option<Decoded> {
    let mut off = 12;
    let mut ethertype = u16_at(f, off)?;
    let mut tags = 0;
    while (ethertype == 0x8100 || ethertype == 0x88a8) && tags < 2 {
        off += 4;
        tags += 1;
        ethertype = u16_at(f, off)?;
    }
    off += 2;
    let mut first_fragment = false;
    let (src, udp) = match ethertype {
        0x0800 => {
            let v = get::<20>(f, off)?;
            let ihl = usize::from(v[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([v[6], v[7]]) & 0x3fff;
            if v[0] >> 4 != 4 || ihl < 20 || v[9] != 17 {
                return Some(Decoded::Other);
            }
            let src = Ipv4Addr::new(v[12], v[13], v[14], v[15]);
            if frag & 0x1fff != 0 {
                return Some(Decoded::Fragment { src, id: u16::from_be_bytes([v[4], v[5]]) });
            }
            first_fragment = frag & 0x2000 != 0;
            ((IpAddr::V4(src), IpAddr::V4(Ipv4Addr::new(v[16], v[17], v[18], v[19]))), off + ihl)
        }
        0x86dd => {
            let v = get::<40>(f, off)?;
            if v[0] >> 4 != 6 || v[6] != 17 {
                return Some(Decoded::Other);
            }
            let a: [u8; 16] = v[8..24].try_into().ok()?;
            let b: [u8; 16] = v[24..40].try_into().ok()?;
            ((IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))), off + 40)
        }
        _ => return Some(Decoded::Other),
    };
    if u16_at(f, udp + 2)? != port {
        return Some(Decoded::Other);
    }
    Some(decode_gtp(f, src, udp + 8, first_fragment).unwrap_or(Decoded::BadGtp))
}

fn decode_gtp(f: &[u8], (outer_src, outer_dst): (IpAddr, IpAddr), g: usize, first_fragment: bool) -> Option<Decoded> {
    let h = get::<8>(f, g)?;
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 {
        return Some(Decoded::BadGtp);
    }
    let msg_type = h[1];
    let teid = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let end = g + 8 + usize::from(u16::from_be_bytes([h[2], h[3]]));
    let mut ue_src = None;
    let mut tag = None;
    if h[0] & 0x02 != 0 {
        tag = u16_at(f, g + 8).map(u32::from);
    } else if msg_type == 26 && h[0] & 0x07 == 0 && f.get(g + 8) == Some(&16) {
        tag = get::<4>(f, g + 9).map(u32::from_be_bytes);
    }
    if msg_type == 255 {
        let mut cur = g + 8;
        if h[0] & 0x07 != 0 {
            let mut next = if h[0] & 0x04 != 0 { *f.get(cur + 3)? } else { 0 };
            cur += 4;
            let mut n = 0;
            while next != 0 && n < 16 {
                let units = usize::from(*f.get(cur)?);
                if units == 0 {
                    return Some(Decoded::BadGtp);
                }
                cur += units * 4;
                next = *f.get(cur - 1)?;
                n += 1;
            }
        }
        if cur < end {
            ue_src = match f.get(cur)? >> 4 {
                4 => get::<4>(f, cur + 12).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                6 => get::<16>(f, cur + 8).map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                _ => None,
            };
        }
    }
    Some(Decoded::Gtp(GtpSummary { outer_src, outer_dst, msg_type, teid, ue_src, tag, first_fragment }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::GtpFrame;

    #[test]
    fn decodes_builder_frames() {
        let ue = Ipv4Addr::new(10, 45, 1, 2);
        let f = GtpFrame::gpdu(42).inner_v4(ue, Ipv4Addr::new(192, 0, 2, 1)).qfi(3).qinq(1, 2).build();
        let Decoded::Gtp(s) = decode(&f, 2152) else { panic!("not GTP: {f:02x?}") };
        assert_eq!((s.teid, s.msg_type, s.ue_src), (42, 255, Some(IpAddr::V4(ue))));
        assert_eq!(decode(&f, 2153), Decoded::Other);
        assert_eq!(decode(&GtpFrame::gpdu(1).gtp_version(2).build(), 2152), Decoded::BadGtp);
        assert_eq!(decode(&GtpFrame::gpdu(1).zero_length_ext(0x85).build(), 2152), Decoded::BadGtp);
        let Decoded::Gtp(s) = decode(&GtpFrame::echo_request(1).build(), 2152) else { panic!("echo") };
        assert_eq!((s.teid, s.msg_type, s.ue_src, s.tag), (0, 1, None, Some(1)));
        let ei = GtpFrame::error_indication(0x0bad_0007, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).build();
        let Decoded::Gtp(s) = decode(&ei, 2152) else { panic!("error indication") };
        assert_eq!((s.msg_type, s.tag), (26, Some(0x0bad_0007)));
    }

    #[test]
    fn decodes_fragments() {
        let f = GtpFrame::gpdu(42)
            .inner_v4(Ipv4Addr::new(10, 45, 1, 2), Ipv4Addr::new(192, 0, 2, 1))
            .payload_len(1400)
            .build();
        let frags = crate::frames::fragment_ipv4(&f, 14, 1400, 77).expect("fragments");
        assert_eq!(frags.len(), 2);
        let Decoded::Gtp(s) = decode(&frags[0], 2152) else { panic!("first fragment") };
        assert_eq!((s.teid, s.first_fragment, s.ue_src), (42, true, Some(IpAddr::V4(Ipv4Addr::new(10, 45, 1, 2)))));
        assert_eq!(decode(&frags[1], 2152), Decoded::Fragment { src: Ipv4Addr::new(10, 200, 0, 11), id: 77 });
        let Decoded::Gtp(s) = decode(&f, 2152) else { panic!("whole") };
        assert!(!s.first_fragment);
    }
}
