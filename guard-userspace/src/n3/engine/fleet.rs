//! Per-cell summaries on N3 (issue 23, docs/fleet.md "Cell summaries on N3"): several UPFs behind
//! the same gNBs each see a share of a gNB's G-PDUs (its PDU sessions are spread over the UPFs of
//! a pool, TS 23.501 §6.3.3), so a gNB-level overload split over k UPFs reaches each at a k-th
//! of its rate and may stay under every local cell capacity. Each member publishes the gNBs whose
//! **own** demand is close to the cell capacity; each sums the others', and the last-resort cell
//! cap ([`super::capacity`]) judges the gNB on the fleet's demand and offenders, as one UPF
//! carrying the whole gNB would.
//!
//! Pure like the rest of the engine: the fleet's view is an argument ([`Engine::set_fleet`]); with
//! none the decision is exactly the local one. Two bounds keep a forged summary cheap (T4):
//! - the fleet's sums count for a gNB only where this member's **own** demand from it is at
//!   least `publish_fraction` of the cell capacity and it has at least one offender of its own:
//!   a member that sees nothing of a gNB is never made to cap it;
//! - the cap this member sets is its share of the gNB's cap (`cap_pps` × its own demand / the
//!   fleet's), never below `publish_fraction` of it: together the members admit what one host
//!   would, and a forged huge demand cannot squeeze a member's share to nothing.

use super::*;

/// The other members' view of one gNB: their demands and offenders, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetCellLoad {
    /// G-PDUs per second left after device stages, summed over the other members.
    pub demand: f64,
    /// Devices under engine stages, summed.
    pub offenders: u64,
    pub members: u32,
    /// The members summed, by name (at most `fleet.cells.max_members`), for the audit trail.
    pub by: Vec<String>,
}

/// What a gNB cap judged on the fleet's sums says in its evidence (the audit line): the demand
/// and offenders in `demand_pps` / `offenders` are the fleet's; these say whose, and which part
/// was this member's own, so an operator can tell a fleet-derived cap from a local one and find
/// the members whose summaries made it (docs/fleet.md "Cell summaries on N3").
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FleetEvidence {
    /// The other members whose summaries were summed.
    pub members: Vec<String>,
    /// This member's own demand (G-PDUs/s after device stages) and offenders.
    pub local_demand_pps: f64,
    pub local_offenders: u64,
    /// The others' summed.
    pub others_demand_pps: f64,
    pub others_offenders: u64,
    /// This member's part of the gNB's cap (its demand of the fleet's, at least `publish_fraction`).
    pub share: f64,
}

/// The other members' view of every gNB they published.
pub type N3FleetCells = HashMap<CellKey, FleetCellLoad>;

/// One gNB this member publishes: its own demand and offenders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct N3HotCell {
    pub cell: CellKey,
    pub demand: f64,
    pub offenders: u64,
}

impl Engine {
    /// The other members' view for the next ticks (replaces the previous one; empty: local only).
    pub fn set_fleet(&mut self, others: N3FleetCells) {
        self.fleet = others;
    }

    /// The gNBs to publish: those of the last full pass whose own demand is at least `fraction`
    /// of the cell capacity, the largest first, at most `max`.
    pub fn hot_cells_for_fleet(&self, fraction: f64, max: usize) -> Vec<N3HotCell> {
        let floor = fraction * self.cfg.capacity.cell.capacity_pps as f64;
        let mut v: Vec<N3HotCell> = self
            .loads
            .0
            .iter()
            .filter(|(_, l)| l.demand > 0.0 && l.demand >= floor)
            .map(|(k, l)| N3HotCell { cell: *k, demand: l.demand, offenders: l.offenders })
            .collect();
        v.sort_by(|a, b| b.demand.total_cmp(&a.demand).then(a.cell.addr.cmp(&b.cell.addr)));
        v.truncate(max);
        v
    }

    /// The load `cell` is judged on, this member's share of its cap (1: the local judgement) and,
    /// when the fleet's sums were used, what the audit line says of them.
    pub(super) fn fleet_load(&self, cell: &CellKey, local: &Load) -> (Load, f64, Option<FleetEvidence>) {
        let fraction = self.cfg.fleet.as_ref().map_or(1.0, |f| f.cells.publish_fraction);
        let floor = fraction * self.cfg.capacity.cell.capacity_pps as f64;
        let Some(f) = self.fleet.get(cell).filter(|f| f.members > 0) else { return (*local, 1.0, None) };
        if local.demand < floor || local.offenders == 0 {
            return (*local, 1.0, None);
        }
        let demand = local.demand + f.demand;
        let load = Load {
            offered: local.offered + f.demand,
            demand,
            offenders: local.offenders.saturating_add(f.offenders),
            devices: local.devices,
            // The summaries carry G-PDU rates only: the judgement in octets stays this host's.
            ..*local
        };
        let share = if demand > 0.0 { (local.demand / demand).clamp(fraction, 1.0) } else { 1.0 };
        let evidence = FleetEvidence {
            members: f.by.clone(),
            local_demand_pps: local.demand,
            local_offenders: local.offenders,
            others_demand_pps: f.demand,
            others_offenders: f.offenders,
            share,
        };
        (load, share, Some(evidence))
    }
}

/// Mark the cap decisions one step made for a gNB judged on the fleet's sums (`out` holds only
/// that step's decisions): its set, refresh or release says so, with whose sums.
pub(super) fn mark_fleet(out: &mut [Decision], fleet: &FleetEvidence) {
    for d in out {
        if let Decision::SetCellCap { evidence, .. } | Decision::ReleaseCell { evidence, .. } = d {
            evidence.fleet = Some(fleet.clone());
        }
    }
}
