//! The overload guard's userspace: loader, pinned-map access, controller, metrics and audit.
//!
//! Module map (see ARCHITECTURE.md):
//! - [`clock`]: the monotonic clock the data plane also reads;
//! - [`pins`], [`loader`], [`maps`]: load/attach/pin the XDP program and read/write its maps;
//! - [`config`]: the operator's TOML file, validated before anything is applied;
//! - [`engine`]: the pure decision engine (baselines, classification, graduated escalation);
//! - [`audit`]: the JSON-lines audit trail of every decision;
//! - [`controller`]: the tokio loop that feeds the engine from the maps and applies its decisions;
//! - [`metrics`]: Prometheus metrics; [`service`]: systemd notify, `/healthz`, `/readyz`;
//! - [`manual`]: operator overrides as the maps store them (local and fleet pins alike);
//! - [`fleet`]: fleet mode through etcd (`[fleet]`, docs/fleet.md);
//! - [`cli`]: the `guard` command line.

pub mod audit;
pub mod bpf;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fleet;
pub mod hugealloc;
pub mod metrics;
pub mod n2;
pub mod n3;
pub mod runlock;
pub mod service;
