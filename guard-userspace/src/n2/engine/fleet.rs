//! Split storms (issue 23, docs/fleet.md "Cell summaries"): what the other members of a fleet see
//! of a cell, fed into the engine as an input, and what this member tells them.
//!
//! An AMF set shares its cells (TS 23.501 §5.21.1; the gNB spreads new UEs over the set's AMFs by
//! their weight factors, NGAP load balancing, TS 23.501 §5.21.2.1), so a registration storm in one
//! cell reaches each AMF-side guard at a fraction of its rate and may stay below every local
//! threshold. Each member publishes its *hot-ish* cells (its own rate and baseline, never a sum:
//! sums of sums would count a member twice); each sums the others'. A cell is then also hot when
//! the **fleet's** rate is at least `cell_ratio` × the **fleet's** baseline and `cell_min_rate`,
//! which is what one host carrying the whole cell would have judged.
//!
//! The engine stays pure: the fleet's view is an argument ([`N2Engine::set_fleet`]); with none
//! (no `[fleet]`, etcd lost, nothing published) the decision is exactly the local one. Only the
//! cell's *hotness* widens: who is answered is still decided on this host's own evidence (its
//! repeaters, its SUCI-only share), so a member that forges contributions can make cells look
//! hotter here (bounded by what it may publish), never invent an offender.

use super::*;

/// How many device windows of a cell's warm-up the fleet may hold back, in all, over the cell's
/// life in this engine.
const FLEET_HOLD_DEVICE_WINDOWS: f64 = 5.0;

/// The other members' view of one cell: the sums of their published rates and baselines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetCell {
    /// InitialUEMessages per second, summed over the other members that published the cell.
    pub rate: f64,
    /// Their baselines, summed likewise (the same members: a cell's fleet baseline is the part of
    /// the cell those members normally carry).
    pub baseline: f64,
    /// How many members contributed.
    pub members: u32,
}

/// The other members' view of every cell they published.
pub type FleetCells = HashMap<N2CellKey, FleetCell>;

/// One cell this member publishes: its own smoothed rate and its learned baseline (0 while it
/// is still at the prior).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotCell {
    pub key: N2CellKey,
    pub rate: f64,
    pub baseline: f64,
}

impl N2Engine {
    /// The other members' view for the next [`N2Engine::tick`]s (replaces the previous one; an
    /// empty map is the local-only engine).
    pub fn set_fleet(&mut self, others: FleetCells) {
        self.fleet = others;
    }

    /// The cells to publish after this tick: those read this tick whose own rate is at least
    /// `fraction` of their own hot threshold (`max(cell_min_rate, cell_ratio × baseline)`), the
    /// closest to hot first, at most `max`. With an even split over `k` members a cell at the
    /// whole-cell threshold is published by each while `fraction ≤ 1/k` (docs/fleet.md).
    pub fn hot_cells_for_fleet(&self, fraction: f64, max: usize) -> Vec<HotCell> {
        let s = &self.s;
        let mut out: Vec<(f64, HotCell)> = self
            .cells
            .iter()
            .filter(|(_, t)| t.last_at == self.last_tick_ns && t.primed)
            .filter_map(|(k, t)| {
                let base = t.baseline_or_prior(s);
                let threshold = s.cell_min_rate.max(s.cell_ratio * base);
                let score = if threshold > 0.0 { t.rate / threshold } else { 0.0 };
                // A baseline still at the prior is not published: the prior stands for a whole
                // cell, and k members each adding it would raise the fleet's threshold k-fold.
                let learned = if t.windows >= s.warmup_windows { base } else { 0.0 };
                (t.rate > 0.0 && score >= fraction)
                    .then_some((score, HotCell { key: *k, rate: t.rate, baseline: learned }))
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.key.cell_id.cmp(&b.1.key.cell_id)));
        out.into_iter().take(max).map(|(_, c)| c).collect()
    }

    /// Whether this window of a cell still warming up is held back from its baseline: the others
    /// publish it (their summaries are live: the mailbox drops a contribution not refreshed
    /// within 3 intervals, and all of them when etcd is lost) at least `cell_ratio` × the
    /// baseline **they learned** for it. An AMF set shares its cells (TS 23.501 §5.21.1), so a
    /// cell new to this member at a storm's onset is one the others already know; their
    /// baseline is the only normal the fleet has for it, and a window the others see far above
    /// it is the storm, not this member's normal. With no learned baseline among them (0: all
    /// still at the prior) they know no more than this member, and nothing is held. The bound
    /// (`fleet_hold_bound_s`) is applied by `learn_baselines`.
    pub(super) fn holds_warmup(s: &N2Settings, fleet: &FleetCells, k: &N2CellKey, t: &CellTrack) -> bool {
        if t.windows >= s.warmup_windows || t.warm_held_s >= Self::fleet_hold_bound_s(s) {
            return false;
        }
        fleet.get(k).is_some_and(|f| f.members > 0 && f.baseline > 0.0 && f.rate >= s.cell_ratio * f.baseline)
    }

    /// Whether the fleet's sums make `t` hot; sets the cell's fleet figures either way.
    pub(super) fn judge_with_fleet(s: &N2Settings, fleet: &FleetCells, k: &N2CellKey, t: &mut CellTrack) -> bool {
        let Some(f) = fleet.get(k).filter(|f| f.members > 0) else {
            t.others_rate = 0.0;
            t.others_base = 0.0;
            return false;
        };
        t.others_rate = f.rate;
        t.others_base = f.baseline;
        let rate = t.rate + f.rate;
        let base = t.baseline_or_prior(s) + f.baseline;
        rate >= s.cell_min_rate && rate >= s.cell_ratio * base
    }

    /// The seconds of warm-up windows the fleet may hold back per cell: 5 device windows (300 s
    /// by default), enough for a split storm to be judged T2 here (consistency needs the
    /// repeaters of one device window again in the next, then `persist_windows`), and the most a
    /// forged or stale summary can delay this member's warm-up of a cell.
    pub(super) fn fleet_hold_bound_s(s: &N2Settings) -> f64 {
        FLEET_HOLD_DEVICE_WINDOWS * s.device_window_s
    }
}
