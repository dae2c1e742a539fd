//! The BPF plumbing both programs share: the object ([`object`]), pin directories and layout
//! checks ([`pins`]), attaching through pinned links ([`link`]), map handles ([`maps`]) and
//! batched map reads ([`batch`]), the raw bpf(2) commands aya does not offer ([`sys`]). Nothing
//! here knows N3 or N2.

pub mod batch;
pub mod link;
pub mod maps;
pub mod object;
pub mod pins;
pub mod sys;
