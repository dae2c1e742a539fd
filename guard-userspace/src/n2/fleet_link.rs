//! The mailbox between the N2 controller thread and the fleet task (docs/fleet.md "Cell
//! summaries"): the controller leaves the hot cells it wants published and takes the sums of the
//! other members' contributions; the fleet task does the etcd side. No etcd here, no I/O: with no
//! mailbox (no `[fleet]`) the controller is exactly the local one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::engine::{FleetCell, FleetCells, HotCell};
use crate::config::FleetCells as CellsCfg;

/// Shared by the N2 controller (one thread) and the fleet task.
#[derive(Debug)]
pub struct CellExchange {
    /// What to publish: a cell at this fraction of its threshold, at most `max_cells`.
    pub fraction: f64,
    pub max_cells: usize,
    max_members: usize,
    stale: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    outgoing: Vec<HotCell>,
    /// The other members' contributions and when each was last refreshed here.
    others: BTreeMap<String, (Vec<HotCell>, Instant)>,
}

impl CellExchange {
    pub fn new(cfg: &CellsCfg) -> CellExchange {
        CellExchange {
            fraction: cfg.publish_fraction,
            max_cells: cfg.max_cells as usize,
            max_members: cfg.max_members as usize,
            stale: cfg.stale_after(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// The controller, after its tick: the cells this member publishes next.
    pub fn publish(&self, cells: Vec<HotCell>) {
        self.with(|i| i.outgoing = cells);
    }

    /// The fleet task: what to publish now.
    pub fn outgoing(&self) -> Vec<HotCell> {
        self.with(|i| i.outgoing.clone())
    }

    /// The controller, before its tick: the others' sums per cell. Contributions not refreshed
    /// within three publish intervals are dropped (a member whose controller hangs while its
    /// lease lives must not keep a cell hot).
    pub fn sums(&self, now: Instant) -> FleetCells {
        let stale = self.stale;
        self.with(|i| {
            i.others.retain(|_, (_, at)| now.saturating_duration_since(*at) < stale);
            let mut out = FleetCells::new();
            for (cells, _) in i.others.values() {
                for c in cells {
                    let e: &mut FleetCell = out.entry(c.key).or_default();
                    e.rate += c.rate;
                    e.baseline += c.baseline;
                    e.members += 1;
                }
            }
            out
        })
    }

    /// The fleet task: a member's contribution arrived (replacing its previous one). Refused
    /// (false) when `max_members` others already contribute and this one is new.
    pub fn set(&self, member: &str, cells: Vec<HotCell>, now: Instant) -> bool {
        let max = self.max_members;
        self.with(|i| {
            if !i.others.contains_key(member) && i.others.len() >= max {
                return false;
            }
            i.others.insert(member.to_owned(), (cells, now));
            true
        })
    }

    /// The fleet task: a member's summary is gone (deleted, its lease expired, or invalid now).
    pub fn remove(&self, member: &str) {
        self.with(|i| i.others.remove(member));
    }

    /// The fleet task lost etcd: nothing it holds is current any more; back to the local view.
    pub fn clear(&self) {
        self.with(|i| i.others.clear());
    }

    /// How many other members contribute now.
    pub fn members(&self) -> usize {
        self.with(|i| i.others.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::abi_n2::{N2CellKey, CELL_KIND_NR};

    fn hot(id: u64, rate: f64) -> HotCell {
        HotCell { key: N2CellKey { kind: CELL_KIND_NR, plmn: [0, 0xf1, 0x10, 0], cell_id: id }, rate, baseline: 0.5 }
    }

    #[test]
    fn sums_add_members_and_drop_the_stale_and_the_excess() {
        let x = CellExchange::new(&CellsCfg { max_members: 2, ..CellsCfg::default() });
        let t0 = Instant::now();
        assert!(x.set("a", vec![hot(1, 2.0), hot(2, 1.0)], t0));
        assert!(x.set("b", vec![hot(1, 3.0)], t0));
        assert!(!x.set("c", vec![hot(1, 100.0)], t0), "a third member is over max_members");
        let s = x.sums(t0);
        let k1 = hot(1, 0.0).key;
        assert_eq!(s[&k1], FleetCell { rate: 5.0, baseline: 1.0, members: 2 });
        assert_eq!(s.len(), 2);
        assert!(x.set("b", vec![hot(1, 1.0)], t0 + Duration::from_secs(2)));
        let s = x.sums(t0 + Duration::from_millis(3500));
        assert_eq!(s[&k1].rate, 1.0, "a's contribution, older than 3 intervals, is dropped");
        x.remove("b");
        assert!(x.sums(t0 + Duration::from_millis(3500)).is_empty());
        x.set("a", vec![hot(1, 2.0)], t0);
        x.clear();
        assert_eq!(x.members(), 0);
    }
}
