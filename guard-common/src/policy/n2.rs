//! Per-packet decisions of the N2 program that do not touch maps: verdict codes, gates, and what
//! a peer's stage says about one SCTP packet. The XDP program does the lookups and calls these;
//! host tests call them directly.
//!
//! The rule that shapes all of it (DESIGN §2 "Enforcement must respect the protocol"): dropping
//! a DATA chunk of a live association sheds no load (it is retransmitted) and stalls the stream.
//! So below the top stage only association setup (INIT, COOKIE-ECHO) is limited, and a packet that
//! carries DATA is never dropped by a setup limit: it is counted as "spared" instead. An INIT is
//! always alone in its packet (RFC 9260 §6.10), so an INIT flood cannot hide behind DATA; a
//! COOKIE-ECHO + DATA bundle can, but only with a valid cookie, which costs the sender a round
//! trip through a (limited) INIT. Only stage 3, whole-peer quarantine, drops everything.

use super::Gate;
use crate::abi::n2::{N2Config, N2_PROT_QUARANTINE, N2_PROT_SETUP_LIMIT, N2_PROT_SETUP_STRICT};
use crate::abi::{n2::N2StageEntry, Limit, STAGE_FLAG_EXEMPT, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};
use crate::rate;

/// The outcome of one packet; the index into `N2_VERDICTS` and `N2_SHADOW`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum N2Verdict {
    /// Not SCTP to the NGAP/S1AP port (other traffic, IP fragments): passed untouched.
    PassNotN2 = 0,
    /// Malformed but passed: below SCTP, or malformed SCTP while `N2_PROT_MALFORMED` is not
    /// enforced.
    PassMalformed = 1,
    /// Carries DATA (an association's traffic).
    PassData = 2,
    /// INIT / COOKIE-ECHO within limits.
    PassSetup = 3,
    /// Other control chunks (SACK, HEARTBEAT, ABORT, SHUTDOWN, INIT-ACK, COOKIE-ACK, ...).
    PassControl = 4,
    /// A setup limit would have dropped it, but it carries DATA: passed (never drop DATA below
    /// the top stage).
    PassDataSpared = 5,
    /// A map operation failed; the guard passes rather than drop on its own failure.
    PassFailOpen = 6,
    /// A later IP fragment of SCTP from an allowed, not quarantined source.
    PassFragment = 7,
    /// Stage 3: the whole peer is quarantined.
    DropQuarantine = 8,
    /// Stage 1: above the peer's setup limit.
    DropSetupLimit = 9,
    /// Stage 2: above the peer's strict setup limit.
    DropSetupStrict = 10,
    /// The allow-list is on and the source is not in it.
    DropNotAllowed = 11,
    DropMalformed = 12,
}

impl N2Verdict {
    pub const COUNT: u32 = 13;

    pub const ALL: [N2Verdict; Self::COUNT as usize] = [
        N2Verdict::PassNotN2,
        N2Verdict::PassMalformed,
        N2Verdict::PassData,
        N2Verdict::PassSetup,
        N2Verdict::PassControl,
        N2Verdict::PassDataSpared,
        N2Verdict::PassFailOpen,
        N2Verdict::PassFragment,
        N2Verdict::DropQuarantine,
        N2Verdict::DropSetupLimit,
        N2Verdict::DropSetupStrict,
        N2Verdict::DropNotAllowed,
        N2Verdict::DropMalformed,
    ];

    pub const fn is_drop(self) -> bool {
        self as u32 >= N2Verdict::DropQuarantine as u32
    }

    pub const fn name(self) -> &'static str {
        match self {
            N2Verdict::PassNotN2 => "pass_not_n2",
            N2Verdict::PassMalformed => "pass_malformed",
            N2Verdict::PassData => "pass_data",
            N2Verdict::PassSetup => "pass_setup",
            N2Verdict::PassControl => "pass_control",
            N2Verdict::PassDataSpared => "pass_data_spared",
            N2Verdict::PassFailOpen => "pass_fail_open",
            N2Verdict::PassFragment => "pass_fragment",
            N2Verdict::DropQuarantine => "drop_quarantine",
            N2Verdict::DropSetupLimit => "drop_setup_limit",
            N2Verdict::DropSetupStrict => "drop_setup_strict",
            N2Verdict::DropNotAllowed => "drop_not_allowed",
            N2Verdict::DropMalformed => "drop_malformed",
        }
    }
}

/// Off / shadow / enforce of one N2 protection.
#[inline(always)]
pub fn gate(cfg: &N2Config, prot: u32) -> Gate {
    if cfg.enabled & prot == 0 {
        Gate::Off
    } else if cfg.shadow & prot != 0 {
        Gate::Shadow
    } else {
        Gate::Enforce
    }
}

/// The pass verdict of a packet nothing drops.
#[inline(always)]
pub fn pass_verdict(has_data: bool, has_setup: bool) -> N2Verdict {
    if has_data {
        N2Verdict::PassData
    } else if has_setup {
        N2Verdict::PassSetup
    } else {
        N2Verdict::PassControl
    }
}

/// The pass verdict of a parsed packet nothing drops (a later IP fragment has no chunks to
/// classify: `PassFragment`).
#[inline(always)]
pub fn pass_verdict_of(p: &crate::parse::n2::N2Packet) -> N2Verdict {
    if p.frag == crate::parse::n2::FRAG_LATER {
        N2Verdict::PassFragment
    } else {
        pass_verdict(p.has_data(), p.has_setup())
    }
}

/// What a peer's stage entry says about one packet at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerDecision {
    /// No live stage (or an exempt peer, or a packet the stage does not concern).
    Pass,
    /// The stage would drop this packet; `prot` gates it.
    Exceed { prot: u32, verdict: N2Verdict },
}

/// Which budget a packet's setup chunk is charged to while its peer is setup-limited.
pub enum Setup<'a> {
    /// No INIT or COOKIE ECHO: no setup limit concerns the packet.
    None,
    /// A COOKIE ECHO carrying the Initiate Tag of an INIT ACK the AMF sent to this address and
    /// port within the cookie's life (`N2_COOKIES`): the answer to the AMF's own invitation, which
    /// a blind forger cannot give. Never limited: its INIT already passed the limit.
    Issued,
    /// An INIT from an address and port the AMF had an association with (`N2_ASSOC`): charged to
    /// that port's own GCRA (`tat`), so a forger using the same address from other ports cannot
    /// exhaust it.
    Lane { tat: &'a mut u64, limit: &'a Limit },
    /// Any other INIT or COOKIE ECHO: the peer's stage GCRA (`entry.tat`).
    Peer,
}

/// Apply `entry` (if live) to one packet. Stages 1 and 2 charge a packet with a setup chunk to
/// the budget `setup` names; stage 3 concerns every packet.
#[inline(always)]
pub fn peer_stage(entry: &mut N2StageEntry, now: u64, setup: Setup<'_>) -> PeerDecision {
    if entry.flags & STAGE_FLAG_EXEMPT != 0 || entry.expires_ns <= now {
        return PeerDecision::Pass;
    }
    let exceed = |stage: u32| {
        if stage == STAGE_SHAPE {
            PeerDecision::Exceed { prot: N2_PROT_SETUP_LIMIT, verdict: N2Verdict::DropSetupLimit }
        } else {
            PeerDecision::Exceed { prot: N2_PROT_SETUP_STRICT, verdict: N2Verdict::DropSetupStrict }
        }
    };
    match entry.stage {
        STAGE_QUARANTINE => PeerDecision::Exceed { prot: N2_PROT_QUARANTINE, verdict: N2Verdict::DropQuarantine },
        STAGE_SHAPE | STAGE_STRICT => match setup {
            Setup::None | Setup::Issued => PeerDecision::Pass,
            Setup::Lane { tat, limit } => {
                if rate::admit(tat, now, limit) {
                    PeerDecision::Pass
                } else {
                    exceed(entry.stage)
                }
            }
            Setup::Peer => {
                let limit = Limit { interval_ns: entry.interval_ns, tau_ns: entry.tau_ns };
                if rate::admit(&mut entry.tat, now, &limit) {
                    PeerDecision::Pass
                } else {
                    exceed(entry.stage)
                }
            }
        },
        _ => PeerDecision::Pass,
    }
}

/// Whether a would-be drop must be turned into a pass because the packet carries (or may carry)
/// DATA: always, except at the top stage (whole-peer quarantine), for the allow-list and
/// malformed packets, which are not about load, and for a COOKIE ECHO the AMF never issued while
/// the egress classifier watches (`unissued_cookie`): no association exists for its DATA to
/// belong to (RFC 9260 §5.1.5: the AMF discards the packet), so dropping it loses nothing.
#[inline(always)]
pub fn spares_data(verdict: N2Verdict, has_data: bool, unissued_cookie: bool) -> bool {
    has_data && !unissued_cookie && matches!(verdict, N2Verdict::DropSetupLimit | N2Verdict::DropSetupStrict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stage: u32, pps: u64, burst: u64, expires: u64) -> N2StageEntry {
        let l = Limit::per_second(pps, burst);
        N2StageEntry { stage, interval_ns: l.interval_ns, tau_ns: l.tau_ns, expires_ns: expires, ..Default::default() }
    }

    #[test]
    fn setup_limit_charges_only_setup_packets() {
        let mut e = entry(STAGE_SHAPE, 1, 2, u64::MAX);
        let now = 10_000_000_000;
        assert_eq!(peer_stage(&mut e, now, Setup::Peer), PeerDecision::Pass);
        assert_eq!(peer_stage(&mut e, now, Setup::Peer), PeerDecision::Pass);
        assert!(matches!(
            peer_stage(&mut e, now, Setup::Peer),
            PeerDecision::Exceed { verdict: N2Verdict::DropSetupLimit, .. }
        ));
        // Non-setup packets and issued cookies are not the stage's business.
        for _ in 0..10 {
            assert_eq!(peer_stage(&mut e, now, Setup::None), PeerDecision::Pass);
            assert_eq!(peer_stage(&mut e, now, Setup::Issued), PeerDecision::Pass);
        }
        let mut s = entry(STAGE_STRICT, 1, 1, u64::MAX);
        assert_eq!(peer_stage(&mut s, now, Setup::Peer), PeerDecision::Pass);
        assert!(matches!(
            peer_stage(&mut s, now, Setup::Peer),
            PeerDecision::Exceed { verdict: N2Verdict::DropSetupStrict, .. }
        ));
    }

    #[test]
    fn an_association_lane_is_apart_from_the_peer_budget() {
        let now = 10_000_000_000;
        let mut e = entry(STAGE_STRICT, 1, 1, u64::MAX);
        // The forger has used up the peer's budget.
        assert_eq!(peer_stage(&mut e, now, Setup::Peer), PeerDecision::Pass);
        assert!(matches!(peer_stage(&mut e, now, Setup::Peer), PeerDecision::Exceed { .. }));
        // The association's port has its own: 2 at once, then 1/s.
        let lane = Limit::per_second(1, 2);
        let mut tat = 0;
        assert_eq!(peer_stage(&mut e, now, Setup::Lane { tat: &mut tat, limit: &lane }), PeerDecision::Pass);
        assert_eq!(peer_stage(&mut e, now, Setup::Lane { tat: &mut tat, limit: &lane }), PeerDecision::Pass);
        assert!(matches!(
            peer_stage(&mut e, now, Setup::Lane { tat: &mut tat, limit: &lane }),
            PeerDecision::Exceed { verdict: N2Verdict::DropSetupStrict, .. }
        ));
        assert_eq!(
            peer_stage(&mut e, now + 1_000_000_000, Setup::Lane { tat: &mut tat, limit: &lane }),
            PeerDecision::Pass
        );
        // Quarantine still concerns the lane and issued cookies.
        let mut q = entry(STAGE_QUARANTINE, 0, 0, u64::MAX);
        assert!(matches!(peer_stage(&mut q, now, Setup::Issued), PeerDecision::Exceed { .. }));
    }

    #[test]
    fn quarantine_concerns_everything_until_expiry() {
        let mut e = entry(STAGE_QUARANTINE, 0, 0, 100);
        assert!(matches!(
            peer_stage(&mut e, 99, Setup::None),
            PeerDecision::Exceed { verdict: N2Verdict::DropQuarantine, .. }
        ));
        assert_eq!(peer_stage(&mut e, 100, Setup::None), PeerDecision::Pass);
        e.flags = STAGE_FLAG_EXEMPT;
        assert_eq!(peer_stage(&mut e, 5, Setup::Peer), PeerDecision::Pass);
    }

    #[test]
    fn data_is_spared_below_the_top_stage_only() {
        assert!(spares_data(N2Verdict::DropSetupLimit, true, false));
        assert!(spares_data(N2Verdict::DropSetupStrict, true, false));
        assert!(!spares_data(N2Verdict::DropSetupLimit, false, false));
        assert!(!spares_data(N2Verdict::DropSetupLimit, true, true));
        assert!(!spares_data(N2Verdict::DropQuarantine, true, false));
        assert!(!spares_data(N2Verdict::DropNotAllowed, true, false));
        assert_eq!(pass_verdict(true, true), N2Verdict::PassData);
        assert_eq!(pass_verdict(false, true), N2Verdict::PassSetup);
        assert_eq!(pass_verdict(false, false), N2Verdict::PassControl);
    }

    #[test]
    fn gates_read_enabled_then_shadow_bits_of_their_own_protection() {
        use crate::abi::n2::{N2_PROT_ALLOWLIST, N2_PROT_MALFORMED};
        let cfg = |enabled, shadow| N2Config { enabled, shadow, ..Default::default() };
        let (a, m) = (N2_PROT_ALLOWLIST, N2_PROT_MALFORMED);
        assert_eq!(gate(&cfg(0, 0), a), Gate::Off);
        assert_eq!(gate(&cfg(a, 0), a), Gate::Enforce);
        assert_eq!(gate(&cfg(a, a), a), Gate::Shadow);
        // Another protection's bits never gate this one.
        assert_eq!(gate(&cfg(m, 0), a), Gate::Off);
        assert_eq!(gate(&cfg(a | m, m), a), Gate::Enforce);
        assert_eq!(gate(&cfg(a | m, m), m), Gate::Shadow);
    }

    #[test]
    fn drops_are_exactly_the_drop_verdicts_and_names_are_distinct() {
        let mut names = std::collections::BTreeSet::new();
        for v in N2Verdict::ALL {
            assert_eq!(v.is_drop(), v.name().starts_with("drop_"), "{v:?}");
            assert!(names.insert(v.name()), "{} twice", v.name());
        }
        assert_eq!(N2Verdict::PassFragment.name(), "pass_fragment");
        assert_eq!(N2Verdict::DropSetupStrict.name(), "drop_setup_strict");
    }

    #[test]
    fn a_later_fragment_passes_as_a_fragment_and_a_first_one_by_its_chunks() {
        use crate::abi::n2::CHUNK_CLASS_INIT;
        use crate::parse::n2::{N2Packet, FRAG_FIRST, FRAG_LATER};
        let mut p = N2Packet::EMPTY;
        p.frag = FRAG_LATER;
        assert_eq!(pass_verdict_of(&p), N2Verdict::PassFragment);
        p.frag = FRAG_FIRST;
        p.chunk_counts[CHUNK_CLASS_INIT] = 1;
        assert_eq!(pass_verdict_of(&p), N2Verdict::PassSetup);
    }

    #[test]
    fn verdict_all_in_order() {
        for (i, v) in N2Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
    }
}
