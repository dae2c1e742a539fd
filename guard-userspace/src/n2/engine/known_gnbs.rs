//! Known gNB addresses learned from real N2 sessions (issue 23 item 2, docs/fleet.md "Known gNB
//! addresses"). Pure: the maps' readings and the clock are arguments.
//!
//! An address is learned only when both hold, on this host's own counters:
//! - the AMF has an SCTP association with it that it still talks to: `N2_ASSOC` holds one of its
//!   (address, port) pairs, written by the egress classifier when the AMF sent it a COOKIE ACK,
//!   DATA, SACK or HEARTBEAT (docs/n2.md §1.1), refreshed within [`LEARN_RECENT_NS`]. The AMF
//!   sends those only on an association whose four-way handshake completed (RFC 9260 §5.1): the
//!   peer echoed the State Cookie of an INIT ACK sent to that address, which a blind forger
//!   spoofing the address never receives;
//! - an NG Setup Request (TS 38.413 §8.7.1, procedure code 21; S1 Setup, TS 36.413 §8.7.3, on
//!   S1-MME) came from that address: a RAN node set itself up here, not just any SCTP peer.
//!
//! A learned address is used as the allow-list is by the setup ladder (never past stage 1, so a
//! forger borrowing a real gNB's address cannot lock it out), never written to `N2_ALLOW`: what
//! the data plane admits stays the operator's. In fleet mode the members share their learned
//! addresses (`fleet::gnbs`), so a gNB known to one AMF of the set is known to the others before
//! it has set itself up there (after an AMF restart, a re-selection).

use std::collections::HashSet;

use guard_common::abi::L3Addr;
use guard_common::abi_n2::{N2AssocState, N2PeerState, N2PortKey, PROC_SETUP};

/// How recently the AMF must have sent an association chunk to one of the address's ports: five
/// minutes, ten of SCTP's default heartbeat intervals (RFC 9260 §16, HB.interval 30 s), so a
/// live but idle association stays learned and a gone one is forgotten.
pub const LEARN_RECENT_NS: u64 = 300 * 1_000_000_000;

/// The addresses learned at `now_ns` from `peers` (`N2_PEERS`) and `assoc` (`N2_ASSOC`), in
/// address order, at most `max`.
pub fn learned_gnbs(
    peers: &[(L3Addr, N2PeerState)],
    assoc: &[(N2PortKey, N2AssocState)],
    now_ns: u64,
    max: usize,
) -> Vec<L3Addr> {
    let live: HashSet<L3Addr> = assoc
        .iter()
        .filter(|(_, a)| a.up_ns != 0 && now_ns.saturating_sub(a.up_ns) <= LEARN_RECENT_NS)
        .map(|(k, _)| k.peer)
        .collect();
    let mut out: Vec<L3Addr> =
        peers.iter().filter(|(a, s)| s.procs[PROC_SETUP] > 0 && live.contains(a)).map(|(a, _)| *a).collect();
    out.sort_unstable();
    out.dedup();
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::n2::engine::setup::{PeerSample, PeerStageDecision, SetupLadder, SetupSettings};
    use guard_common::abi::STAGE_SHAPE;

    const SEC: u64 = 1_000_000_000;

    fn peer(a: u8, ng_setups: u64) -> (L3Addr, N2PeerState) {
        let mut s = N2PeerState::default();
        s.procs[PROC_SETUP] = ng_setups;
        (L3Addr::v4([10, 0, 0, a]), s)
    }

    fn port(a: u8, up_ns: u64) -> (N2PortKey, N2AssocState) {
        (
            N2PortKey { peer: L3Addr::v4([10, 0, 0, a]), port: 38412, _pad: 0 },
            N2AssocState { up_ns, ..Default::default() },
        )
    }

    #[test]
    fn only_an_address_with_a_live_association_and_an_ng_setup_is_learned() {
        let now = 1000 * SEC;
        let peers = [peer(1, 1), peer(2, 0), peer(3, 5), peer(4, 1)];
        // 1: association and NG Setup. 2: association, no NG Setup (any SCTP peer). 3: NG Setup
        // but no association (a spoofed DATA chunk: the AMF never answered it). 4: an association
        // the AMF stopped talking to long ago.
        let assoc = [port(1, now - SEC), port(2, now), port(4, now - LEARN_RECENT_NS - 1)];
        assert_eq!(learned_gnbs(&peers, &assoc, now, 16), vec![L3Addr::v4([10, 0, 0, 1])]);
        // Bounded, in address order.
        let peers: Vec<_> = (1..=20).map(|a| peer(a, 1)).collect();
        let assoc: Vec<_> = (1..=20).rev().map(|a| port(a, now)).collect();
        let got = learned_gnbs(&peers, &assoc, now, 4);
        assert_eq!(got, (1..=4).map(|a| L3Addr::v4([10, 0, 0, a])).collect::<Vec<_>>());
    }

    /// The setup ladder with a forged INIT flood from `peer`'s address for minutes.
    fn flood(l: &mut SetupLadder, peer: L3Addr) -> Vec<u32> {
        let mut p = PeerSample { peer, ..Default::default() };
        let mut out = Vec::new();
        for w in 1..=300 {
            let stage = l.stage_of(&peer);
            p.setups += 1000;
            p.setup_over_limit += 995;
            if stage > 0 {
                p.setup_dropped += 995;
            }
            for d in l.tick(w * SEC, &[p], &[]) {
                match d {
                    PeerStageDecision::Set { stage, refresh: false, .. } => out.push(stage),
                    PeerStageDecision::Release { .. } => out.push(0),
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn a_learned_gnb_is_never_taken_past_the_setup_limit_and_an_unlearned_one_is() {
        let s = SetupSettings { allow_quarantine: true, quarantine_windows: 5, ..SetupSettings::default() };
        let gnb = L3Addr::v4([10, 0, 0, 1]);
        let mut alone = SetupLadder::new(&s);
        assert!(flood(&mut alone, gnb).len() > 1, "without the list the flood escalates");
        let mut known = SetupLadder::new(&s);
        known.set_learned([gnb].into_iter().collect());
        assert_eq!(flood(&mut known, gnb), vec![STAGE_SHAPE], "limited, never strict, never quarantined");
    }
}
