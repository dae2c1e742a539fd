//! The overload guard's userspace: loader, pinned-map access, controller, metrics and audit.
//!
//! Module map (see ARCHITECTURE.md):
//! - [`clock`]: the monotonic clock the data plane also reads;
//! - [`pins`], [`loader`], [`maps`]: load/attach/pin the XDP program and read/write its maps;
//! - [`config`]: the operator's TOML file, validated before anything is applied;
//! - [`engine`]: the pure decision engine (baselines, classification, graduated escalation);
//! - [`audit`]: the JSON-lines audit trail of every decision.

pub mod audit;
pub mod clock;
pub mod config;
pub mod engine;
pub mod loader;
pub mod maps;
pub mod pins;
