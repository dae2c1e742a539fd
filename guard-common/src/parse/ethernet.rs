//! Ethernet II with up to two VLAN tags (IEEE 802.1Q C-tag 0x8100, 802.1ad S-tag 0x88A8).

use super::{be16, Malformed, Packet};

pub const ETH_HLEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// Q-in-Q is two tags; a third is not something an N3 link carries.
pub const MAX_VLAN_TAGS: usize = 2;

/// The EtherType of the payload and its offset, after any VLAN tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2 {
    pub ethertype: u16,
    pub next: usize,
    pub vlan_tags: u8,
}

#[inline(always)]
pub fn parse<P: Packet + ?Sized>(pkt: &P) -> Result<L2, Malformed> {
    // dst(6) src(6) ethertype(2)
    let mut ethertype = be16(pkt.read::<2>(12).ok_or(Malformed::EthTruncated)?);
    let mut off = ETH_HLEN;
    let mut tags = 0u8;
    // Bounded: at most MAX_VLAN_TAGS tags are peeled; a VLAN ethertype after that is refused.
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        // TCI(2) then the inner ethertype(2).
        let tag = pkt.read::<4>(off).ok_or(Malformed::VlanTruncated)?;
        ethertype = be16([tag[2], tag[3]]);
        off += 4;
        tags += 1;
    }
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        return Err(Malformed::VlanTooDeep);
    }
    Ok(L2 { ethertype, next: off, vlan_tags: tags })
}
