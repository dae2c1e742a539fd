//! N3 (GTP-U): the `guard_n3` program and its controller, in the same roles as [`crate::n2`].
//!
//! - [`load`]: load, attach, pin and detach `guard_n3`; [`maps`]: read and write its maps;
//!   [`local`]: the host's N3 address table; [`chain`]: the next program in an XDP chain;
//! - [`engine`]: the pure decision engine (baselines, classification, graduated escalation);
//! - [`controller`]: the loop that feeds the engine from the maps (and the event ring,
//!   [`events`]) and applies its decisions; [`manual`]: operator pins as the maps store them;
//!   [`bound`]: fleet UE pins on a data plane keyed by TEID, the mailbox between the fleet task
//!   and the controller's device walk.

pub mod audit;
pub mod bound;
pub mod chain;
pub mod controller;
pub mod engine;
pub mod events;
pub mod load;
pub mod local;
pub mod manual;
pub mod maps;
pub mod metrics;
pub mod staged;

pub use load::*;
