//! Shared between the XDP programs (`guard-ebpf`, `no_std`, BPF target) and the controller
//! (`guard-userspace`, feature `user`).
//!
//! Two kinds of things live here:
//! - the ABI of the BPF maps: `#[repr(C)]` keys, values, config and event records with no implicit
//!   padding (each has a `const` size assertion), and the map names and schema version;
//! - pure logic that runs unchanged in the kernel and on the host, so it can be unit-tested,
//!   property-tested and fuzzed: the packet parsers ([`parse`]), the GCRA rate limiter ([`rate`])
//!   and the per-packet policy ([`policy`]).
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod parse;
pub mod policy;
pub mod rate;
pub mod units;

// The N2 modules under their paths before issue 26 moved them into `abi/` and `policy/`
// (guard-ebpf, guard-userspace and the tests use these paths).
pub use abi::n2 as abi_n2;
pub use policy::n2 as policy_n2;

#[cfg(feature = "user")]
mod pod;
