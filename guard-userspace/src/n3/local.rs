//! The host's N3 addresses (`N3_LOCAL`, [`guard_common::abi::LocalAddr`]): the table that gives
//! each local address the small index a device's F-TEID carries (TS 29.281 §5.1: a TEID is
//! unique only with the address it was allocated on; TS 29.244 §8.2.3).
//!
//! Placement is the data plane's probe run backwards: an address goes into the first free slot
//! of the [`LOCAL_PROBES`] from its home slot, and once placed it never moves and is never
//! removed while the pins live, so every index stays bound to one address (an address dropped
//! from the configuration keeps its index; it only loses its flags).

use std::net::IpAddr;

use guard_common::abi::{local_home_slot, L3Addr, LocalAddr, FAMILY_NONE, LOCAL_INDEX_NONE, LOCAL_PROBES, LOCAL_SLOTS};

/// A snapshot of `N3_LOCAL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTable {
    pub slots: Vec<LocalAddr>,
}

impl Default for LocalTable {
    fn default() -> Self {
        LocalTable { slots: vec![LocalAddr::default(); LOCAL_SLOTS as usize] }
    }
}

pub fn l3_of(ip: IpAddr) -> L3Addr {
    match ip {
        IpAddr::V4(v4) => L3Addr::v4(v4.octets()),
        IpAddr::V6(v6) => L3Addr::v6(v6.octets()),
    }
}

fn ip_of(a: &L3Addr) -> Option<IpAddr> {
    match a.family {
        guard_common::abi::FAMILY_IPV4 => Some(IpAddr::from([a.addr[0], a.addr[1], a.addr[2], a.addr[3]])),
        guard_common::abi::FAMILY_IPV6 => Some(IpAddr::from(a.addr)),
        _ => None,
    }
}

impl LocalTable {
    /// The index the data plane gives `ip` (slot + 1), or `None` when the table does not list it
    /// (the data plane then uses [`LOCAL_INDEX_NONE`]). The same probe as `guard_n3`'s.
    pub fn index_of(&self, ip: IpAddr) -> Option<u32> {
        let a = l3_of(ip);
        let home = local_home_slot(&a);
        for i in 0..LOCAL_PROBES {
            let slot = (home + i) & (LOCAL_SLOTS - 1);
            let e = self.slots.get(slot as usize)?;
            if e.addr.family == FAMILY_NONE {
                return None;
            }
            if e.addr == a {
                return Some(slot + 1);
            }
        }
        None
    }

    /// The address of index `index`, if it names one.
    pub fn addr_of(&self, index: u32) -> Option<IpAddr> {
        if index == LOCAL_INDEX_NONE {
            return None;
        }
        self.slots.get(index as usize - 1).and_then(|e| ip_of(&e.addr))
    }

    /// Every listed address: (index, address, flags).
    pub fn listed(&self) -> Vec<(u32, IpAddr, u32)> {
        self.slots.iter().enumerate().filter_map(|(i, e)| Some((i as u32 + 1, ip_of(&e.addr)?, e.flags))).collect()
    }

    /// Place `wanted` (address, flags): addresses already listed keep their slot and take the
    /// flags given, new ones take the first free slot of their probe, listed addresses not in
    /// `wanted` keep their slot with no flags. The slots that changed, to be written; `Err` when
    /// an address finds no free slot in its probe (then nothing is changed).
    pub fn place(&mut self, wanted: &[(IpAddr, u32)]) -> Result<Vec<u32>, String> {
        let mut next = self.clone();
        for e in next.slots.iter_mut() {
            if e.addr.family != FAMILY_NONE {
                e.flags = 0;
            }
        }
        for &(ip, flags) in wanted {
            let a = l3_of(ip);
            let home = local_home_slot(&a);
            let mut placed = false;
            for i in 0..LOCAL_PROBES {
                let slot = ((home + i) & (LOCAL_SLOTS - 1)) as usize;
                let e = &mut next.slots[slot];
                if e.addr == a || e.addr.family == FAMILY_NONE {
                    *e = LocalAddr { addr: a, flags };
                    placed = true;
                    break;
                }
            }
            if !placed {
                return Err(format!(
                    "no room for N3 address {ip} in the local-address table: the {LOCAL_PROBES} slots it may use \
                     are taken by other addresses (purge the pins, `guard detach --purge`, to rebuild the table)"
                ));
            }
        }
        let changed = (0..LOCAL_SLOTS).filter(|&i| next.slots[i as usize] != self.slots[i as usize]).collect();
        *self = next;
        Ok(changed)
    }

    /// How operators read a device's F-TEID: `teid 0x00001f00 @ 10.200.0.1`, or `teid 0x00001f00`
    /// on an unlisted (or the only) address.
    pub fn fteid_str(&self, local: u32, teid: u32) -> String {
        match (local, self.addr_of(local)) {
            (LOCAL_INDEX_NONE, _) => format!("teid {teid:#010x}"),
            (_, Some(ip)) => format!("teid {teid:#010x} @ {ip}"),
            (i, None) => format!("teid {teid:#010x} @ local#{i} (no address)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_found_by_the_probe() {
        let a: IpAddr = "10.200.0.1".parse().expect("ip");
        let b: IpAddr = "10.200.0.2".parse().expect("ip");
        let c: IpAddr = "fd00:200::1".parse().expect("ip");
        let mut t = LocalTable::default();
        assert_eq!(t.index_of(a), None);
        t.place(&[(a, 0), (b, 1)]).expect("room");
        let (ia, ib) = (t.index_of(a).expect("a"), t.index_of(b).expect("b"));
        assert_ne!(ia, ib);
        assert_eq!((t.addr_of(ia), t.addr_of(ib)), (Some(a), Some(b)));
        // Reordered, one added, one dropped: the indexes stay, the dropped one keeps its slot.
        let changed = t.place(&[(c, 0), (a, 0)]).expect("room");
        assert_eq!(t.index_of(a), Some(ia));
        assert_eq!(t.index_of(b), Some(ib), "a dropped address keeps its index");
        assert!(t.listed().iter().any(|&(i, ip, f)| i == ib && ip == b && f == 0));
        assert!(t.index_of(c).is_some());
        assert_eq!(changed.len(), 2, "b's flags and c's slot changed");
        assert_eq!(t.fteid_str(ia, 0x1f00), "teid 0x00001f00 @ 10.200.0.1");
        assert_eq!(t.fteid_str(LOCAL_INDEX_NONE, 0x1f00), "teid 0x00001f00");
    }

    #[test]
    fn a_full_probe_is_refused_and_changes_nothing() {
        // Addresses sharing one home slot: the fifth has no room in its probe.
        let mut same = Vec::new();
        let target = local_home_slot(&l3_of("10.0.0.0".parse().expect("ip")));
        for i in 0..=u32::from(u16::MAX) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if local_home_slot(&l3_of(ip)) == target {
                same.push((ip, 0));
            }
            if same.len() == LOCAL_PROBES as usize + 1 {
                break;
            }
        }
        let mut t = LocalTable::default();
        let before = t.clone();
        assert!(t.place(&same).is_err());
        assert_eq!(t, before);
    }
}
