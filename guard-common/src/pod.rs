//! `aya::Pod` for the map ABI types. Only padding-free `#[repr(C)]` types may be `Pod`; each type
//! listed here has a `const` size assertion next to its definition in [`crate::abi`].
use crate::abi::*;

// SAFETY: every type below is `#[repr(C)]`, made only of integers and integer arrays, and has a
// compile-time assertion that its size equals the sum of its fields (no implicit padding).
unsafe impl aya::Pod for DeviceKey {}
unsafe impl aya::Pod for DeviceState {}
unsafe impl aya::Pod for StageEntry {}
unsafe impl aya::Pod for CellKey {}
unsafe impl aya::Pod for FragKey {}
unsafe impl aya::Pod for FragEntry {}
unsafe impl aya::Pod for CellRecord {}
unsafe impl aya::Pod for CellHot {}
unsafe impl aya::Pod for CellCounts {}
unsafe impl aya::Pod for CellStageEntry {}
unsafe impl aya::Pod for GuardConfig {}
unsafe impl aya::Pod for Counter {}
unsafe impl aya::Pod for EventRecord {}
unsafe impl aya::Pod for Meta {}
unsafe impl aya::Pod for TatSlot {}
unsafe impl aya::Pod for N3TatSlot {}
unsafe impl aya::Pod for LocalAddr {}
unsafe impl aya::Pod for ChainConfig {}

// N2 (guard_n2): the same rules; size assertions in `crate::abi::n2`. `L3Addr` (the peer key) is
// `CellKey` above; `TatSlot` and `u32` values are already `Pod`.
unsafe impl aya::Pod for crate::abi::n2::N2StageEntry {}
unsafe impl aya::Pod for crate::abi::n2::N2PeerState {}
unsafe impl aya::Pod for crate::abi::n2::N2CellKey {}
unsafe impl aya::Pod for crate::abi::n2::N2CellState {}
unsafe impl aya::Pod for crate::abi::n2::N2DeviceKey {}
unsafe impl aya::Pod for crate::abi::n2::N2DeviceState {}
unsafe impl aya::Pod for crate::abi::n2::N2Config {}
unsafe impl aya::Pod for crate::abi::n2::N2Event {}
unsafe impl aya::Pod for crate::abi::n2::N2TagKey {}
unsafe impl aya::Pod for crate::abi::n2::N2PortKey {}
unsafe impl aya::Pod for crate::abi::n2::N2AssocState {}
unsafe impl aya::Pod for crate::abi::n2::N2VtagKey {}
