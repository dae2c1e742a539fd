//! IP packets around a GTP-U or any L4 segment, written from the RFCs: UDP segments, IPv4 (RFC 791)
//! and its fragmentation, IPv6 (RFC 8200), and the Internet checksum (RFC 1071) with the IPv4/IPv6
//! pseudo-headers (RFC 768, RFC 8200 §8.1).

use super::*;

/// UDP header + payload; `csum` receives the segment with a zero checksum and returns the
/// checksum to store (0 = none; a computed 0 is sent as 0xffff per RFC 768).
pub(super) fn udp_segment(sport: u16, dport: u16, payload: &[u8], csum: impl Fn(&[u8]) -> u16) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = csum(&u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An IPv4 packet with a valid header checksum (DF set, no fragmentation).
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    id: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = u16::try_from(hlen + payload.len()).unwrap_or(u16::MAX);
    let mut h = Vec::with_capacity(hlen + payload.len());
    h.push(0x40 | u8::try_from(hlen / 4).unwrap_or(0x0f));
    h.push(0); // DSCP/ECN
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
    h.push(ttl);
    h.push(proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = internet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// Cut the outer IPv4 datagram of an Ethernet frame into fragments of at most `max_ip_len` bytes
/// of IP (header included), as a router or the sending gNB does on a path with that MTU
/// (RFC 791 §3.2): every fragment but the last carries a multiple of 8 data octets and More
/// Fragments; Fragment Offset counts 8-octet units; all carry the datagram's Identification `id`
/// (which is written into the header) and DF cleared; the first fragment keeps every option,
/// the others only those with the copied flag (RFC 791 §3.1). Each fragment gets its own total
/// length and header checksum and the frame's L2 header (`l2_len` bytes). `None` when the frame
/// holds no IPv4 header, the datagram is already a fragment, or `max_ip_len` leaves no room for
/// 8 data octets; a datagram that fits is returned as one frame (with `id` set and DF cleared).
pub fn fragment_ipv4(frame: &[u8], l2_len: usize, max_ip_len: usize, id: u16) -> Option<Vec<Vec<u8>>> {
    let ip = frame.get(l2_len..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if *ip.first()? >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    if flags & 0x3fff != 0 || total < ihl {
        return None;
    }
    let (l2, hdr, data) = (&frame[..l2_len], &ip[..ihl], &ip[ihl..total]);
    // Options copied into the later fragments: those whose type has the copied flag (0x80).
    let mut later_opts = Vec::new();
    let mut o = 20;
    while o < ihl {
        let t = hdr[o];
        match t {
            0 => break,
            1 => o += 1,
            _ => {
                let len = usize::from(*hdr.get(o + 1)?).max(2);
                let opt = hdr.get(o..o + len)?;
                if t & 0x80 != 0 {
                    later_opts.extend_from_slice(opt);
                }
                o += len;
            }
        }
    }
    while later_opts.len() % 4 != 0 {
        later_opts.push(0);
    }
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let first = off == 0;
        let h_len = if first { ihl } else { 20 + later_opts.len() };
        // Data per fragment: what fits, rounded down to 8 octets unless it is the rest.
        let room = max_ip_len.checked_sub(h_len)? / 8 * 8;
        if room == 0 {
            return None;
        }
        let rest = data.len() - off;
        let (n, more) = if rest <= max_ip_len - h_len { (rest, false) } else { (room, true) };
        let mut h = Vec::with_capacity(h_len);
        h.extend_from_slice(&hdr[..20]);
        if first {
            h.extend_from_slice(&hdr[20..]);
        } else {
            h.extend_from_slice(&later_opts);
        }
        h[0] = 0x40 | u8::try_from(h_len / 4).unwrap_or(0x0f);
        h[2..4].copy_from_slice(&u16::try_from(h_len + n).unwrap_or(u16::MAX).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = u16::try_from(off / 8).unwrap_or(0x1fff) & 0x1fff;
        h[6..8].copy_from_slice(&(fo | if more { 0x2000 } else { 0 }).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::with_capacity(l2.len() + h.len() + n);
        f.extend_from_slice(l2);
        f.extend_from_slice(&h);
        f.extend_from_slice(&data[off..off + n]);
        out.push(f);
        off += n;
        if !more {
            return Some(out);
        }
    }
}

/// An IPv6 packet (no extension headers).
pub fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(40 + payload.len());
    h.extend_from_slice(&[0x60, 0, 0, 0]);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap_or(u16::MAX).to_be_bytes());
    h.push(next);
    h.push(hop_limit);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// RFC 1071 one's-complement sum, folded, not yet complemented.
pub(super) fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !(ones_sum(0, data) as u16)
}

fn finish_l4(sum: u32) -> u16 {
    let c = !(sum as u16);
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// UDP/TCP checksum with the IPv4 pseudo-header.
pub fn checksum_v4_pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let mut s = ones_sum(0, &src.octets());
    s = ones_sum(s, &dst.octets());
    s = ones_sum(s, &[0, proto]);
    s = ones_sum(s, &u16::try_from(segment.len()).unwrap_or(u16::MAX).to_be_bytes());
    finish_l4(ones_sum(s, segment))
}

/// UDP/TCP checksum with the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn checksum_v6_pseudo(src: Ipv6Addr, dst: Ipv6Addr, next: u8, segment: &[u8]) -> u16 {
    let mut s = ones_sum(0, &src.octets());
    s = ones_sum(s, &dst.octets());
    s = ones_sum(s, &u32::try_from(segment.len()).unwrap_or(u32::MAX).to_be_bytes());
    s = ones_sum(s, &[0, 0, 0, next]);
    finish_l4(ones_sum(s, segment))
}
