//! The overload guard's XDP programs. One program or protocol per file:
//! - [`n3`]: the N3/S1-U (GTP-U) program `guard_n3` (its device key, stage cache and fragments
//!   in files of their own);
//! - [`n2`]: the N2/S1-MME (SCTP: NGAP/S1AP) program `guard_n2`, its maps in [`maps_n2`];
//! - [`n2_egress`]: the N2 NIC's egress classifier `guard_n2_egress` (the AMF's INIT ACKs and
//!   association ports, for `guard_n2`'s setup lanes);
//! - [`maps`]: the pinned maps (layout in `guard_common::abi`);
//! - [`cursor`]: the bounds-checked packet reader the shared parsers run on;
//! - [`counters`]: per-CPU counters and the rate-limited event ring.
#![no_std]
#![no_main]
// `atomic_xadd` for shared counters and `atomic_or` for marks: the BPF target lacks
// `AtomicU64::fetch_add` and `fetch_or`. Built with RUSTC_BOOTSTRAP=1 (as `-Z build-std` already
// requires).
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "core_intrinsics is the only atomic add and or on the BPF target")]
// `asm!` on BPF (an optimisation barrier for the verifier, see `cursor::opaque`).
#![feature(asm_experimental_arch)]

mod baseline;
mod cells;
mod clock;
mod counters;
mod cursor;
mod maps;
mod maps_n2;
mod n2;
mod n2_egress;
mod n3;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path, so this is never called at run time.
    loop {}
}
