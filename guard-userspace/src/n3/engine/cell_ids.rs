//! The gNBs the tracks refer to, each address stored once: a track holds a 4-byte id instead of
//! the 20-byte [`CellKey`] (at 1M devices, 15 MiB less), and a full pass sums the loads per id.
//!
//! Ids are counted: an id no track holds any more is freed and given out again, so the table
//! holds the gNBs the tracked devices were last seen behind, never more (a flood of readings
//! from ever new outer addresses cannot grow it past the tracks).

use std::collections::HashMap;

use guard_common::abi::CellKey;

use super::Hasher;

/// A gNB's id in [`CellIds`]. 0 is the unset address (`CellKey::default()`), a new track's cell;
/// it is never counted or freed.
pub(super) type CellId = u32;

#[derive(Debug)]
pub(super) struct CellIds {
    /// The address of each id, and how many tracks hold it.
    keys: Vec<(CellKey, u32)>,
    ids: HashMap<CellKey, CellId, Hasher>,
    /// Ids no track holds, to give out again.
    free: Vec<CellId>,
}

impl Default for CellIds {
    fn default() -> Self {
        let mut ids = HashMap::default();
        ids.insert(CellKey::default(), 0);
        CellIds { keys: vec![(CellKey::default(), 0)], ids, free: Vec::new() }
    }
}

impl CellIds {
    /// The address of `id` (the unset address for an id not given out).
    pub fn key(&self, id: CellId) -> CellKey {
        self.keys.get(id as usize).map(|(k, _)| *k).unwrap_or_default()
    }

    /// A track that held `*id` is now behind `cell`: `*id` becomes `cell`'s, counted.
    pub fn set(&mut self, id: &mut CellId, cell: CellKey) {
        if self.key(*id) == cell {
            return;
        }
        let new = self.acquire(cell);
        self.release(*id);
        *id = new;
    }

    fn acquire(&mut self, cell: CellKey) -> CellId {
        let id = match self.ids.get(&cell) {
            Some(&id) => id,
            None => {
                let id = match self.free.pop() {
                    Some(id) => {
                        self.keys[id as usize] = (cell, 0);
                        id
                    }
                    None => {
                        // More gNBs than ids would need more tracks than memory holds.
                        let id = CellId::try_from(self.keys.len()).unwrap_or(0);
                        if id != 0 {
                            self.keys.push((cell, 0));
                        }
                        id
                    }
                };
                if id != 0 {
                    self.ids.insert(cell, id);
                }
                id
            }
        };
        if id != 0 {
            if let Some((_, n)) = self.keys.get_mut(id as usize) {
                *n += 1;
            }
        }
        id
    }

    /// A track holding `id` is gone (or moved to another gNB).
    pub fn release(&mut self, id: CellId) {
        if id == 0 {
            return;
        }
        if let Some((k, n)) = self.keys.get_mut(id as usize) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.ids.remove(k);
                self.free.push(id);
            }
        }
    }

    /// Ids given out and held (the unset address aside).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.ids.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use guard_common::abi::L3Addr;

    use super::*;

    #[test]
    fn each_address_gets_one_id_reads_back_and_is_freed_with_its_last_track() {
        let mut c = CellIds::default();
        let a = L3Addr::v4([10, 0, 0, 1]);
        let b = L3Addr::v4([10, 0, 0, 2]);
        let (mut t1, mut t2, mut t3) = (0, 0, 0);
        c.set(&mut t1, a);
        c.set(&mut t2, a);
        c.set(&mut t3, b);
        assert_eq!(t1, t2);
        assert_ne!(t1, t3);
        assert_eq!((c.key(t1), c.key(t3), c.key(0), c.key(99)), (a, b, CellKey::default(), CellKey::default()));
        assert_eq!(c.held(), 2);
        // A handover: t1 follows t3 to b; a is still t2's.
        c.set(&mut t1, b);
        assert_eq!((t1, c.key(t2), c.held()), (t3, a, 2));
        // The last track behind a goes: its id is freed and given to the next new gNB.
        let freed = t2;
        c.release(t2);
        assert_eq!(c.held(), 1);
        let d = L3Addr::v4([10, 0, 0, 4]);
        let mut t4 = 0;
        c.set(&mut t4, d);
        assert_eq!((t4, c.key(t4), c.held()), (freed, d, 2));
        // The unset address is never counted.
        c.set(&mut t4, CellKey::default());
        assert_eq!((t4, c.held()), (0, 1));
    }
}
