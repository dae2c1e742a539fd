//! N2 / S1-MME: the `guard_n2` program and its controller, in the same roles as [`crate::n3`].
//!
//! - [`load`]: load, attach, pin and detach `guard_n2` (and its egress classifier); [`maps`]: read
//!   and write its maps;
//! - [`engine`]: the pure storm engine (access attempts per cell and device in, a graduated
//!   3GPP-native response out) and the per-peer setup ladder;
//! - [`controller`]: the loop that samples the maps, runs the engine, applies stages and sends
//!   responses through the [`hook`];
//! - [`fleet_link`]: the mailbox to the fleet task for split storms (per-cell summaries);
//! - [`audit`], [`metrics`]: its audit lines and Prometheus series.

pub mod audit;
pub mod controller;
pub mod engine;
pub mod fleet_link;
pub mod hook;
pub mod load;
pub mod maps;
pub mod metrics;

pub use load::*;
pub use maps::N2Maps;
