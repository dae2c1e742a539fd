//! Fleet mode (issue 23, docs/fleet.md): guards on many hosts share operator pins that are not
//! host-local (by UE address or prefix, by gNB address) through etcd.
//!
//! - [`pins`]: keys and JSON values, their bounds and checks (pure);
//! - [`client`]: the etcd connection from `[fleet]` (TLS unless `insecure`);
//! - [`apply`]: a pin into this host's data plane, through the same code path as
//!   `guard device pin` ([`crate::n3::manual`]), audited with the pin's author;
//! - [`status`]: what the member reports: metrics and the `/readyz` detail line;
//! - [`sync`]: the member's task: list, then watch; on loss of etcd keep what it has and catch up.
//!
//! Nothing here runs without `[fleet]` in the configuration.

pub mod apply;
pub mod client;
pub mod pins;
pub mod status;
pub mod sync;

pub use pins::{PinStage, PinTarget, PinValue};

/// Unix time in milliseconds (pins carry wall-clock expiries: they cross hosts).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
