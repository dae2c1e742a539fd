//! The gNBs the tracks refer to, each address stored once: a track holds a 4-byte id instead of
//! the 20-byte [`CellKey`] (at 1M devices, 15 MiB less), and a full pass sums the loads per id.
//!
//! Ids are never reused or dropped: the table grows with the distinct gNB addresses ever seen,
//! which a UPF's N3 peers bound (thousands; `N3_CELLS` holds the data plane's view of them), not
//! with the devices.

use std::collections::HashMap;

use guard_common::abi::CellKey;

use super::Hasher;

/// A gNB's id in [`CellIds`]. 0 is the unset address (`CellKey::default()`), a new track's cell.
pub(super) type CellId = u32;

#[derive(Debug)]
pub(super) struct CellIds {
    keys: Vec<CellKey>,
    ids: HashMap<CellKey, CellId, Hasher>,
}

impl Default for CellIds {
    fn default() -> Self {
        let mut ids = HashMap::default();
        ids.insert(CellKey::default(), 0);
        CellIds { keys: vec![CellKey::default()], ids }
    }
}

impl CellIds {
    /// The id of `cell`, given one if it is new.
    pub fn intern(&mut self, cell: CellKey) -> CellId {
        let next = CellId::try_from(self.keys.len()).unwrap_or(CellId::MAX);
        let id = *self.ids.entry(cell).or_insert(next);
        if id == next && self.keys.len() < CellId::MAX as usize {
            self.keys.push(cell);
        }
        id
    }

    /// The address of `id` (the unset address for an id never given out).
    pub fn key(&self, id: CellId) -> CellKey {
        self.keys.get(id as usize).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use guard_common::abi::L3Addr;

    use super::*;

    #[test]
    fn each_address_gets_one_id_and_reads_back() {
        let mut c = CellIds::default();
        assert_eq!(c.intern(CellKey::default()), 0);
        let a = L3Addr::v4([10, 0, 0, 1]);
        let b = L3Addr::v4([10, 0, 0, 2]);
        let (ia, ib) = (c.intern(a), c.intern(b));
        assert_ne!(ia, ib);
        assert_eq!(c.intern(a), ia);
        assert_eq!((c.key(ia), c.key(ib), c.key(0)), (a, b, CellKey::default()));
        assert_eq!(c.key(99), CellKey::default());
    }
}
