//! The mailboxes between the N2 controller thread and the fleet task (docs/fleet.md "Cell
//! summaries", "Device back-off lists"): the controller leaves the hot cells and the listed
//! devices it wants published and takes the sums of the other members' cells and their lists
//! (and the operators' 5G-S-TMSI pins); the fleet task does the etcd side. No etcd here, no I/O:
//! with no mailbox (no `[fleet]`) the controller is exactly the local one.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guard_common::abi::L3Addr;
use guard_common::abi_n2::N2DeviceKey;

use super::engine::{FleetBackoff, FleetCell, FleetCells, FleetDevice, FleetOrigin, HotCell};
use crate::config::{FleetBackoff as BackoffCfg, FleetCells as CellsCfg};

/// Per-cell summaries of the N2 controller (the cells' rates and baselines).
pub type CellExchange = Exchange<HotCell>;

/// Shared by a controller (N2's thread, N3's loop) and the fleet task: what this member
/// publishes, and the other members' contributions of type `C` per cell.
#[derive(Debug)]
pub struct Exchange<C> {
    /// What to publish: a cell at this fraction of its threshold, at most `max_cells`.
    pub fraction: f64,
    pub max_cells: usize,
    max_members: usize,
    stale: Duration,
    inner: Mutex<Inner<C>>,
}

#[derive(Debug)]
struct Inner<C> {
    outgoing: Vec<C>,
    /// The other members' contributions and when each was last refreshed here.
    others: BTreeMap<String, (Vec<C>, Instant)>,
}

impl<C: Clone> Exchange<C> {
    pub fn new(cfg: &CellsCfg) -> Exchange<C> {
        Exchange {
            fraction: cfg.publish_fraction,
            max_cells: cfg.max_cells as usize,
            max_members: cfg.max_members as usize,
            stale: cfg.stale_after(),
            inner: Mutex::new(Inner { outgoing: Vec::new(), others: BTreeMap::new() }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner<C>) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// The controller, after its tick: the cells this member publishes next.
    pub fn publish(&self, cells: Vec<C>) {
        self.with(|i| i.outgoing = cells);
    }

    /// The fleet task: what to publish now.
    pub fn outgoing(&self) -> Vec<C> {
        self.with(|i| i.outgoing.clone())
    }

    /// The others' live contributions. Contributions not refreshed within three publish
    /// intervals are dropped (a member whose controller hangs while its lease lives must not keep
    /// a cell hot).
    pub fn live(&self, now: Instant) -> Vec<Vec<C>> {
        self.live_members(now).into_iter().map(|(_, c)| c).collect()
    }

    /// [`Exchange::live`] with each contribution's member, in key order.
    pub fn live_members(&self, now: Instant) -> Vec<(String, Vec<C>)> {
        let stale = self.stale;
        self.with(|i| {
            i.others.retain(|_, (_, at)| now.saturating_duration_since(*at) < stale);
            i.others.iter().map(|(m, (c, _))| (m.clone(), c.clone())).collect()
        })
    }

    /// The fleet task: a member's contribution arrived (replacing its previous one). Refused
    /// (false) when `max_members` others already contribute and this one is new.
    pub fn set(&self, member: &str, cells: Vec<C>, now: Instant) -> bool {
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

impl Exchange<HotCell> {
    /// The N2 controller, before its tick: the others' sums per cell (live contributions only).
    pub fn sums(&self, now: Instant) -> FleetCells {
        let mut out = FleetCells::new();
        for cells in self.live(now) {
            for c in cells {
                let e: &mut FleetCell = out.entry(c.key).or_default();
                e.rate += c.rate;
                e.baseline += c.baseline;
                e.members += 1;
            }
        }
        out
    }
}

/// Lists other members publish under their leases, each with its own end (back-off devices,
/// known gNBs), and this member's own outgoing list: the part of a list mailbox both share.
#[derive(Debug)]
pub struct ListBox<T> {
    /// The most items one member publishes, and the most taken from one member.
    pub max_items: usize,
    max_members: usize,
    inner: Mutex<ListInner<T>>,
}

#[derive(Debug)]
struct ListInner<T> {
    outgoing: Vec<T>,
    /// The other members' lists, each with its end (its own expiry as read).
    lists: BTreeMap<String, (Vec<T>, Instant)>,
}

impl<T: Clone + PartialEq> ListBox<T> {
    pub fn new(max_items: u32, max_members: u32) -> ListBox<T> {
        ListBox {
            max_items: max_items as usize,
            max_members: max_members as usize,
            inner: Mutex::new(ListInner { outgoing: Vec::new(), lists: BTreeMap::new() }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ListInner<T>) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// The controller, after its tick: its own list (at most `max_items`).
    pub fn publish(&self, items: &[T]) {
        let max = self.max_items;
        self.with(|i| {
            if i.outgoing.as_slice() != &items[..items.len().min(max)] {
                i.outgoing = items.iter().take(max).cloned().collect();
            }
        });
    }

    /// The fleet task: what to publish now.
    pub fn outgoing(&self) -> Vec<T> {
        self.with(|i| i.outgoing.clone())
    }

    /// The fleet task: a member's list arrived (replacing its previous one), living `remaining`
    /// from `now`. Refused (false) when `max_members` others already have a list and this one is
    /// new. At most `max_items` of it are kept.
    pub fn set_list(&self, member: &str, items: Vec<T>, now: Instant, remaining: Duration) -> bool {
        let (max_m, max_i) = (self.max_members, self.max_items);
        self.with(|i| {
            if !i.lists.contains_key(member) && i.lists.len() >= max_m {
                return false;
            }
            let d: Vec<_> = items.into_iter().take(max_i).collect();
            i.lists.insert(member.to_owned(), (d, now + remaining));
            true
        })
    }

    /// The fleet task: a member's list is gone (deleted, its lease expired, or invalid now).
    pub fn remove_list(&self, member: &str) {
        self.with(|i| i.lists.remove(member));
    }

    /// The fleet task lost etcd: the others' lists can no longer follow their publishers' leases.
    pub fn clear_lists(&self) {
        self.with(|i| i.lists.clear());
    }

    /// Items held from the others' lists (live ones), for the metric.
    pub fn listed(&self, now: Instant) -> usize {
        self.with(|i| i.lists.values().filter(|(_, end)| *end > now).map(|(d, _)| d.len()).sum())
    }

    /// The live lists (ended ones dropped), by member in key order, with their ends.
    pub fn live(&self, now: Instant) -> Vec<(String, Vec<T>, Instant)> {
        self.with(|i| {
            i.lists.retain(|_, (_, end)| *end > now);
            i.lists.iter().map(|(m, (d, end))| (m.clone(), d.clone(), *end)).collect()
        })
    }
}

/// Known gNB addresses learned from real N2 sessions, shared by the N2 controller and the fleet
/// task (docs/fleet.md "Known gNB addresses").
pub type GnbExchange = ListBox<L3Addr>;

impl ListBox<L3Addr> {
    /// The controller, before its tick: every address a live list of another member names.
    pub fn union(&self, now: Instant) -> HashSet<L3Addr> {
        self.live(now).into_iter().flat_map(|(_, g, _)| g).collect()
    }
}

/// Device back-off lists and 5G-S-TMSI pins, shared by the N2 controller and the fleet task.
#[derive(Debug)]
pub struct BackoffExchange {
    /// The members' lists ([`ListBox`]).
    pub lists: ListBox<(N2DeviceKey, u32)>,
    /// Operators' pins by their key below `pins/`.
    pins: Mutex<BTreeMap<String, HeldPin>>,
}

/// A 5G-S-TMSI pin as the controller uses it.
#[derive(Debug, Clone, PartialEq)]
struct HeldPin {
    device: N2DeviceKey,
    expires: Instant,
    author: String,
}

impl BackoffExchange {
    pub fn new(cfg: &BackoffCfg) -> BackoffExchange {
        BackoffExchange { lists: ListBox::new(cfg.max_devices, cfg.max_members), pins: Mutex::new(BTreeMap::new()) }
    }

    fn pins<R>(&self, f: impl FnOnce(&mut BTreeMap<String, HeldPin>) -> R) -> R {
        let mut g = self.pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// The controller, after its tick: its own listed devices (the response in force).
    pub fn publish(&self, devices: &[(N2DeviceKey, u32)]) {
        self.lists.publish(devices);
    }

    /// The fleet task: an operator's 5G-S-TMSI pin (by its key below `pins/`), until `expires`.
    pub fn set_pin(&self, suffix: &str, device: N2DeviceKey, expires: Instant, author: &str) {
        self.pins(|p| p.insert(suffix.to_owned(), HeldPin { device, expires, author: author.to_owned() }));
    }

    pub fn remove_pin(&self, suffix: &str) {
        self.pins(|p| p.remove(suffix));
    }

    /// The controller, before its tick: every live entry, with its end on the engine's clock
    /// (`now_ns` is CLOCK_MONOTONIC at `now`). A device on several lists: the longest T3346 and
    /// the latest end; a pinned device is the pin's (an operator's decision outranks a list).
    /// Pins stay when etcd is lost, each until its own expiry, like the data plane's fleet pins.
    pub fn view(&self, now: Instant, now_ns: u64) -> FleetBackoff {
        let at = |end: Instant| now_ns.saturating_add(end.saturating_duration_since(now).as_nanos() as u64);
        let mut out = FleetBackoff::new();
        for (member, devices, end) in self.lists.live(now) {
            for (k, t) in devices {
                let e = out.entry(k).or_insert_with(|| FleetDevice {
                    t3346_s: t,
                    expires_ns: at(end),
                    origin: FleetOrigin::List { member: member.clone() },
                });
                e.t3346_s = e.t3346_s.max(t);
                e.expires_ns = e.expires_ns.max(at(end));
            }
        }
        self.pins(|pins| {
            pins.retain(|_, p| p.expires > now);
            for p in pins.values() {
                // T3346 as long as the pin still holds (the engine caps it at t3346_max_s).
                let left = p.expires.saturating_duration_since(now).as_secs().max(1);
                out.insert(
                    p.device,
                    FleetDevice {
                        t3346_s: u32::try_from(left).unwrap_or(u32::MAX),
                        expires_ns: at(p.expires),
                        origin: FleetOrigin::Pin { author: p.author.clone() },
                    },
                );
            }
        });
        out
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

    #[test]
    fn back_off_lists_merge_expire_and_pins_outrank_them() {
        let x = BackoffExchange::new(&BackoffCfg { max_members: 2, max_devices: 2, ..BackoffCfg::default() });
        let t0 = Instant::now();
        let d = |t: u32| N2DeviceKey::five_g_s_tmsi(1, 1, t);
        let s = Duration::from_secs;
        assert!(x.lists.set_list("a", vec![(d(1), 600), (d(2), 600), (d(3), 600)], t0, s(10)));
        assert!(x.lists.set_list("b", vec![(d(1), 1200)], t0, s(30)));
        assert!(!x.lists.set_list("c", vec![(d(9), 600)], t0, s(30)), "a third member is over max_members");
        assert_eq!(x.lists.listed(t0), 3, "at most max_devices from one member");
        let v = x.view(t0, 1_000);
        assert_eq!(v.len(), 2);
        assert_eq!(v[&d(1)].t3346_s, 1200, "the longest T3346");
        assert_eq!(v[&d(1)].expires_ns, 1_000 + 30_000_000_000, "the latest end, on the engine's clock");
        x.set_pin("tmsi/x", d(2), t0 + s(100), "root on ops");
        let v = x.view(t0 + s(11), 0);
        assert_eq!(v.len(), 2, "a's list expired: d(1) from b, d(2) pinned");
        assert_eq!(v[&d(2)].origin, FleetOrigin::Pin { author: "root on ops".into() });
        assert_eq!(v[&d(2)].t3346_s, 89);
        x.lists.clear_lists();
        let v = x.view(t0 + s(11), 0);
        assert_eq!(v.keys().copied().collect::<Vec<_>>(), vec![d(2)], "etcd lost: lists go, the pin stays");
        x.remove_pin("tmsi/x");
        assert!(x.view(t0, 0).is_empty());
        x.publish(&[(d(1), 600), (d(2), 600), (d(3), 600)]);
        assert_eq!(x.lists.outgoing().len(), 2, "at most max_devices published");
    }

    #[test]
    fn the_known_gnbs_are_the_union_of_the_live_lists_bounded_per_member() {
        let x = GnbExchange::new(2, 2);
        let (t0, s) = (Instant::now(), Duration::from_secs);
        let g = |n: u8| L3Addr::v4([192, 0, 2, n]);
        assert!(x.set_list("a", vec![g(1), g(2), g(3)], t0, s(10)));
        assert!(x.set_list("b", vec![g(2), g(4)], t0, s(30)));
        assert!(!x.set_list("c", vec![g(9)], t0, s(30)), "a third member is over max_members");
        assert_eq!(x.union(t0), [g(1), g(2), g(4)].into_iter().collect(), "at most max_items from one member");
        assert_eq!(x.union(t0 + s(20)), [g(2), g(4)].into_iter().collect(), "a's list ended");
        x.remove_list("b");
        assert!(x.union(t0).is_empty());
        x.publish(&[g(1), g(2), g(3)]);
        assert_eq!(x.outgoing(), vec![g(1), g(2)], "at most max_items published");
    }
}
