//! Whether a protection that would drop a packet drops it, or only counts it (shadow mode).

use guard_common::{
    abi::GuardConfig,
    policy::{self, Gate, Verdict},
};

use crate::counters;

/// Whether a protection that would drop this packet actually drops it. In shadow mode the
/// would-be drop is counted in `N3_SHADOW` and the packet goes on.
#[inline(always)]
pub(super) fn enforced(cfg: &GuardConfig, prot: u32, v: Verdict, len: u64) -> bool {
    match policy::gate(cfg, prot) {
        Gate::Off => false,
        Gate::Shadow => {
            counters::shadow(v, len);
            false
        }
        Gate::Enforce => true,
    }
}
