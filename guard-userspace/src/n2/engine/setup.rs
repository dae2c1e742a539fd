//! The per-peer association-setup ladder: INIT / COOKIE-ECHO floods per SCTP source, answered in
//! the data plane (`N2_PEER_STAGES`), the one N2 load that XDP may safely shed (DESIGN §2).
//!
//! Evidence is the data plane's: a peer's setup packets above the stage-0 profile
//! (`N2PeerState::setup_over_limit`) and, once staged, those its limit dropped
//! (`setup_dropped`). A peer that is over profile for `trigger_windows` consecutive windows goes to
//! stage 1 (setup limit); one whose setups keep being dropped at stage 1 for `escalate_windows`
//! (the sender does not back off: a flood, not a recovering gNB) goes to stage 2 (strict limit).
//! Stage 3, whole-peer quarantine, drops the peer's DATA too (every UE behind that gNB): the
//! engine only reaches it when `allow_quarantine` is set, after `quarantine_windows` of drops at
//! stage 2. Every level steps down one after `quiet_windows` without evidence. Entries carry a
//! TTL and are re-issued while wanted: a dead controller means decaying limits. Entries flagged
//! `STAGE_FLAG_MANUAL` (operators) are never touched.

use std::collections::{HashMap, HashSet};

use guard_common::abi::{n2::N2StageEntry as StageEntry, L3Addr, Limit, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};
use guard_common::abi_n2::N2PeerState;
use serde::Serialize;

/// Reason codes written in `StageEntry::reason` by this ladder.
pub const REASON_SETUP_FLOOD: u32 = 0x4e32_0001;

pub use crate::config::n2::SetupSettings;

/// One peer's cumulative setup counters (from `N2_PEERS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSample {
    pub peer: L3Addr,
    pub setups: u64,
    pub setup_over_limit: u64,
    pub setup_dropped: u64,
}

impl PeerSample {
    pub fn from_state(peer: L3Addr, s: &N2PeerState) -> Self {
        PeerSample { peer, setups: s.setups, setup_over_limit: s.setup_over_limit, setup_dropped: s.setup_dropped }
    }
}

/// What to do with one `N2_PEER_STAGES` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PeerStageDecision {
    Set {
        #[serde(serialize_with = "ser_addr")]
        peer: L3Addr,
        stage: u32,
        limit_pps: u64,
        burst: u64,
        ttl_ns: u64,
        /// A re-issue of the same stage (not audited).
        refresh: bool,
        /// Setups over profile / dropped in the last window.
        over_limit: u64,
        dropped: u64,
    },
    Release {
        #[serde(serialize_with = "ser_addr")]
        peer: L3Addr,
    },
}

fn ser_addr<S: serde::Serializer>(a: &L3Addr, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::addr::addr_str(a))
}

impl PeerStageDecision {
    /// The map entry to write for a `Set` at `now_ns`.
    pub fn entry(&self, now_ns: u64) -> Option<StageEntry> {
        match self {
            PeerStageDecision::Set { stage, limit_pps, burst, ttl_ns, .. } => {
                let l = Limit::per_second(*limit_pps, *burst);
                Some(StageEntry {
                    stage: *stage,
                    interval_ns: l.interval_ns,
                    tau_ns: l.tau_ns,
                    expires_ns: now_ns.saturating_add(*ttl_ns),
                    set_ns: now_ns,
                    reason: REASON_SETUP_FLOOD,
                    ..StageEntry::default()
                })
            }
            PeerStageDecision::Release { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct PeerTrack {
    last: Option<PeerSample>,
    over_streak: u32,
    drop_streak: u32,
    quiet_streak: u32,
    stage: u32,
    last_issued_ns: u64,
}

/// The ladder; pure like the rest of `n2::engine`.
#[derive(Debug, Default)]
pub struct SetupLadder {
    s: SetupSettings,
    peers: HashMap<L3Addr, PeerTrack>,
    /// The allow-list (`[dataplane] allow`): known RAN nodes. Their address is what a forger
    /// borrows to lock them out, so the ladder never takes them past stage 1 (the setup limit,
    /// which the AMF's issued cookies and the association ports' own lanes bypass): not the
    /// strict stage, and never quarantine (issue 18).
    allowed: HashSet<L3Addr>,
    /// Known gNBs learned from real sessions, here and by the other members of the fleet
    /// (`super::known_gnbs`; empty without fleet mode): treated as the allow-list is, here only
    /// (never written to the data plane's `N2_ALLOW`).
    learned: HashSet<L3Addr>,
}

impl SetupLadder {
    pub fn new(s: &SetupSettings) -> Self {
        SetupLadder { s: s.clone(), peers: HashMap::new(), allowed: HashSet::new(), learned: HashSet::new() }
    }

    /// The ladder with an allow-list (see [`SetupLadder::allowed`]).
    pub fn with_allowed(s: &SetupSettings, allowed: impl IntoIterator<Item = L3Addr>) -> Self {
        SetupLadder {
            s: s.clone(),
            peers: HashMap::new(),
            allowed: allowed.into_iter().collect(),
            learned: HashSet::new(),
        }
    }

    /// The known gNBs learned from real sessions for the next windows (replaces the previous set).
    pub fn set_learned(&mut self, learned: HashSet<L3Addr>) {
        self.learned = learned;
    }

    /// Whether `peer` is a known RAN node here: allow-listed, or a gNB learned from real sessions.
    pub fn knows(&self, peer: &L3Addr) -> bool {
        self.allowed.contains(peer) || self.learned.contains(peer)
    }

    pub fn stage_of(&self, peer: &L3Addr) -> u32 {
        self.peers.get(peer).map_or(0, |t| t.stage)
    }

    /// One window. `manual`: peers an operator staged (never touched).
    pub fn tick(&mut self, now_ns: u64, peers: &[PeerSample], manual: &[L3Addr]) -> Vec<PeerStageDecision> {
        let s = &self.s;
        let ttl_ns = s.ttl_s.saturating_mul(1_000_000_000);
        let mut out = Vec::new();
        for p in peers {
            let t = self.peers.entry(p.peer).or_default();
            let Some(last) = t.last.replace(*p) else { continue };
            if manual.contains(&p.peer) {
                t.stage = 0;
                continue;
            }
            let over = p.setup_over_limit.saturating_sub(last.setup_over_limit);
            let dropped = p.setup_dropped.saturating_sub(last.setup_dropped);
            t.over_streak = if over > 0 { t.over_streak + 1 } else { 0 };
            t.drop_streak = if dropped > 0 { t.drop_streak + 1 } else { 0 };
            t.quiet_streak = if over == 0 && dropped == 0 { t.quiet_streak + 1 } else { 0 };
            let prev = t.stage;
            let known = self.allowed.contains(&p.peer) || self.learned.contains(&p.peer);
            match t.stage {
                0 if t.over_streak >= s.trigger_windows => t.stage = STAGE_SHAPE,
                STAGE_SHAPE if !known && t.drop_streak >= s.escalate_windows => t.stage = STAGE_STRICT,
                STAGE_STRICT if !known && s.allow_quarantine && t.drop_streak >= s.quarantine_windows => {
                    t.stage = STAGE_QUARANTINE
                }
                st if st > 0 && t.quiet_streak >= s.quiet_windows => {
                    t.stage -= 1;
                    t.quiet_streak = 0;
                }
                _ => {}
            }
            if t.stage != prev {
                t.drop_streak = 0;
                t.over_streak = 0;
            }
            let due = now_ns.saturating_sub(t.last_issued_ns) >= ttl_ns / 3;
            if t.stage == 0 {
                if prev != 0 {
                    out.push(PeerStageDecision::Release { peer: p.peer });
                }
                continue;
            }
            if t.stage != prev || due {
                t.last_issued_ns = now_ns;
                let (limit_pps, burst) = match t.stage {
                    STAGE_SHAPE => (s.limit_pps, s.limit_burst),
                    STAGE_STRICT => (s.strict_pps, s.strict_burst),
                    _ => (0, 0),
                };
                out.push(PeerStageDecision::Set {
                    peer: p.peer,
                    stage: t.stage,
                    limit_pps,
                    burst,
                    ttl_ns,
                    refresh: t.stage == prev,
                    over_limit: over,
                    dropped,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// A peer sending `setups` per window, of which the data plane counts `over` above profile
    /// and drops `dropped` (as the stage the ladder set would).
    struct Sim {
        l: SetupLadder,
        p: PeerSample,
        now: u64,
    }

    impl Sim {
        fn new(s: SetupSettings) -> Sim {
            Sim {
                l: SetupLadder::new(&s),
                p: PeerSample { peer: L3Addr::v4([10, 0, 0, 9]), ..Default::default() },
                now: 0,
            }
        }
        fn window(&mut self, setups: u64) -> Vec<PeerStageDecision> {
            self.now += SEC;
            let stage = self.l.stage_of(&self.p.peer);
            let allowed = match stage {
                0 => u64::MAX,
                STAGE_SHAPE => 5,
                STAGE_STRICT => 1,
                _ => 0,
            };
            self.p.setups += setups;
            self.p.setup_over_limit += setups.saturating_sub(5);
            if stage > 0 {
                self.p.setup_dropped += setups.saturating_sub(allowed);
            }
            self.l.tick(self.now, &[self.p], &[])
        }
    }

    fn stages(d: &[PeerStageDecision]) -> Vec<u32> {
        d.iter()
            .filter_map(|d| match d {
                PeerStageDecision::Set { stage, refresh: false, .. } => Some(*stage),
                PeerStageDecision::Release { .. } => Some(0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_persistent_init_flood_is_limited_then_strictly_and_released_when_quiet() {
        let mut sim = Sim::new(SetupSettings::default());
        let mut d = Vec::new();
        for _ in 0..40 {
            d.extend(sim.window(100));
        }
        assert_eq!(stages(&d), vec![STAGE_SHAPE, STAGE_STRICT], "never quarantine unless allowed");
        let e = d[0].entry(7).expect("entry");
        assert_eq!((e.stage, e.expires_ns, e.reason), (STAGE_SHAPE, 7 + 60 * SEC, REASON_SETUP_FLOOD));
        assert_eq!(e.interval_ns, 200_000_000);
        // Re-issued before the TTL runs out.
        assert!(d.iter().any(|x| matches!(x, PeerStageDecision::Set { refresh: true, .. })));
        let mut d = Vec::new();
        for _ in 0..70 {
            d.extend(sim.window(1));
        }
        assert_eq!(stages(&d), vec![STAGE_SHAPE, 0], "one step per quiet period");
    }

    #[test]
    fn a_gnb_recovering_within_its_limit_is_not_escalated() {
        let mut sim = Sim::new(SetupSettings::default());
        let mut d = Vec::new();
        // A burst of re-associations, then within the stage-1 limit.
        for _ in 0..5 {
            d.extend(sim.window(20));
        }
        for _ in 0..30 {
            d.extend(sim.window(4));
        }
        assert_eq!(stages(&d), vec![STAGE_SHAPE, 0]);
    }

    #[test]
    fn an_allow_listed_peer_is_never_taken_past_the_setup_limit() {
        let s = SetupSettings { allow_quarantine: true, quarantine_windows: 5, ..SetupSettings::default() };
        let mut sim = Sim::new(s.clone());
        sim.l = SetupLadder::with_allowed(&s, [sim.p.peer]);
        let mut d = Vec::new();
        // A forged INIT flood with the gNB's address, for minutes.
        for _ in 0..300 {
            d.extend(sim.window(1000));
        }
        assert_eq!(stages(&d), vec![STAGE_SHAPE], "limited, never strict, never quarantined");
    }

    #[test]
    fn quarantine_only_when_allowed_and_manual_entries_are_left_alone() {
        let mut sim =
            Sim::new(SetupSettings { allow_quarantine: true, quarantine_windows: 5, ..SetupSettings::default() });
        let mut d = Vec::new();
        for _ in 0..40 {
            d.extend(sim.window(100));
        }
        assert_eq!(stages(&d), vec![STAGE_SHAPE, STAGE_STRICT, STAGE_QUARANTINE]);
        let mut l = SetupLadder::new(&SetupSettings::default());
        let p = PeerSample { peer: L3Addr::v4([10, 0, 0, 1]), ..Default::default() };
        let mut q = p;
        for i in 0..10 {
            q.setup_over_limit += 100;
            assert!(l.tick(i * SEC, &[q], &[p.peer]).is_empty());
        }
    }
}
