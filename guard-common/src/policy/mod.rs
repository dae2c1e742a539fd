//! Per-packet decisions that do not touch maps, in the programs' own terms: [`n3`] for `guard_n3`
//! (GTP-U), [`n2`] for `guard_n2` (SCTP). The XDP programs do the map lookups and call these;
//! host tests call them directly. What both share lives here.

pub mod n2;
pub mod n3;

// `guard_common::policy::X` names N3's decisions too, as it did before they moved to `n3`
// (guard-ebpf and the tests use that path).
pub use n3::*;

/// How one protection treats a packet it would drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Not configured: do not even compute it.
    Off,
    /// Count "would drop" and pass.
    Shadow,
    Enforce,
}
