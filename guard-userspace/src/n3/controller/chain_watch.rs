//! What the controller keeps of the chaining (`[attach] next` / `into`): re-resolved every tick,
//! each change logged once and exported.

use super::*;

/// What the controller keeps of the chaining (`[attach]`), to say each change once.
pub(super) struct ChainWatch {
    pub(super) pins: crate::bpf::pins::PinDir,
    pub(super) into: Option<crate::n3::chain::IntoSlot>,
    pub(super) own_prog: (aya::programs::ProgramFd, u32),
    /// The last next-program state reported (None: none yet).
    pub(super) next: Option<crate::n3::chain::NextState>,
    pub(super) in_slot: Option<crate::n3::chain::IntoState>,
}

/// Re-resolve the next program's pin and the guard's own slot (every tick), log each change
/// once, and export the state.
pub(super) fn sync_chain(w: &mut ChainWatch, m: &Exported) {
    use crate::n3::chain::{IntoState, NextState};
    match crate::n3::chain::sync_next(&w.pins) {
        Ok(st) => {
            let label = match &st {
                NextState::Unset => "unset",
                NextState::Linked { .. } => "linked",
                NextState::Gone { .. } => "gone",
            };
            let changed = match (&w.next, &st) {
                (Some(NextState::Linked { id: a, .. }), NextState::Linked { id: b, changed: false, .. }) => a != b,
                (Some(prev), _) => {
                    std::mem::discriminant(prev) != std::mem::discriminant(&st)
                        || matches!(st, NextState::Linked { changed: true, .. })
                }
                (None, _) => true,
            };
            if changed {
                match &st {
                    NextState::Linked { id, name, .. } => info!(id, name, "next program linked: passed packets go on to it"),
                    NextState::Gone { .. } => warn!(
                        "the next program's pin is gone: its slot is emptied and passed packets go to the kernel stack (counted as chain_miss) until a program is pinned there again"
                    ),
                    NextState::Unset => info!("no next program: passed packets go to the kernel stack"),
                }
            }
            for l in ["unset", "linked", "gone"] {
                m.n3.chain_next
                    .get_or_create(&crate::metrics::OutcomeLabel { outcome: l.into() })
                    .set(i64::from(l == label));
            }
            w.next = Some(st);
        }
        Err(e) => warn!(error = %e, "re-resolving the next program"),
    }
    if let Some(into) = &w.into {
        match crate::n3::chain::sync_into(&w.pins, into, &w.own_prog.0, w.own_prog.1) {
            Ok(st) => {
                if w.in_slot.as_ref() != Some(&st) {
                    match &st {
                        IntoState::InSlot { replaced: true } => {
                            warn!(array = %into.array.display(), slot = into.slot, "the guard's slot was empty (root restarted?): guard_n3 put back")
                        }
                        IntoState::InSlot { replaced: false } => {
                            info!(array = %into.array.display(), slot = into.slot, "guard_n3 is in its slot")
                        }
                        IntoState::ArrayGone => {
                            warn!(array = %into.array.display(), "the program array the guard sits in is no longer pinned: the guard runs only if the root still holds it")
                        }
                        IntoState::Taken(id) => {
                            warn!(array = %into.array.display(), slot = into.slot, id, "another program took the guard's slot: it is left there; the guard does not run")
                        }
                    }
                }
                m.n3.chain_into.set(i64::from(matches!(st, IntoState::InSlot { .. })));
                // Report a put-back once, then as in the slot.
                w.in_slot = Some(match st {
                    IntoState::InSlot { .. } => IntoState::InSlot { replaced: false },
                    s => s,
                });
            }
            Err(e) => warn!(error = %e, "checking the guard's program-array slot"),
        }
    }
}
