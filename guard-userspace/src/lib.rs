//! The overload guard's userspace: loaders, map access, controllers, metrics and audit, for N3
//! (GTP-U) and N2 (SCTP: NGAP / S1AP).
//!
//! Module map, in data-flow order (see ARCHITECTURE.md):
//! - [`bpf`]: the BPF plumbing both sides share: the object, pin directories and layout checks,
//!   attaching through pinned links, map handles, batched reads;
//! - [`n3`] and [`n2`], each with the same roles: `load` (load, attach, pin), `maps` (typed map
//!   access), `engine/` (pure decisions), `controller` (the loop: maps → engine → maps), `audit`
//!   and `metrics` (its audit lines and Prometheus series); N3 also `events` (the ring-buffer
//!   thread), `local`, `chain`, `manual`; N2 also `hook` (the storm response);
//! - [`config`]: the operator's TOML files (one file per section, N2's settings in `config/n2.rs`),
//!   validated before anything is applied;
//! - [`fleet`]: fleet mode through etcd (`[fleet]`, docs/fleet.md);
//! - shared services that know neither side: [`clock`] (the monotonic clock the data plane also
//!   reads), [`addr`] (addresses as people read them), [`audit`] (the JSON-lines trail),
//!   [`metrics`] (the registry and the HTTP listener), [`service`] (systemd notify, `/healthz`,
//!   `/readyz`), [`runlock`] (one controller per interface), [`hugealloc`];
//! - [`replay`]: `guard replay`, the programs and the N3 controller on a capture's clock;
//! - [`cli`]: the `guard` command line; `guard run`'s wiring is `cli/run.rs`.

pub mod addr;
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
pub mod replay;
pub mod runlock;
pub mod service;
