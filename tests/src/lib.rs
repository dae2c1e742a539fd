//! labkit: the test and lab kit of the overload guard.
//!
//! - [`affinity`]: pin a thread to a CPU (the CPU a veth's or a test run's packets are seen on).
//! - [`bpf`]: load the guard's XDP program for BPF_PROG_TEST_RUN verdict tests (unique pins,
//!   removed on drop) and read its counters as deltas.
//! - [`netns`]: RAII network namespaces and veth pairs, running code inside a namespace.
//! - [`lab`]: the RAN ⇄ CORE topology the XDP end-to-end tests and `cargo xtask lab` use.
//! - [`frames`]: a GTP-U frame builder written from the specs (independent of the parser).
//! - [`pcap`]: classic pcap read/write, to hand frames to tshark and read scapy's.
//! - [`decode`]: a minimal, independent GTP-U decoder for counting.
//! - [`generator`]: a bounded AF_PACKET GTP-U sender.
//! - [`sink`]: a counting AF_PACKET receiver on the core side.
//! - [`oracle`]: tshark and scapy runners.
//! - [`n2lab`]: the N2 harness (`guard_n2` through BPF_PROG_TEST_RUN) and the `lab_n2` lab.
//! - [`population`]: device populations of a lab scenario and their seeded traffic schedule.
//! - [`scenario`]: lab scenario files, the generated guard config, and the runner of one mode
//!   (guard off / naive cell cap / guard).
//! - [`variants`]: real PDU session variants of lab devices (IPv6, IPv4v6, framed routes,
//!   non-IP, forged inner sources).
//! - [`score`]: the scores of a run and issue 4's acceptance checks.
//! - [`report`]: report.md, report.json and the timeline plots.
//! - [`realpeers`], [`real_n3`], [`real_n2`]: the lab scenarios against real peers (osmo-ggsn /
//!   sgsnemu, libusrsctp endpoints carrying pycrate-encoded NGAP) and their oracles.
//! - [`replay_check`]: a live run's decisions against `guard replay`'s on its capture.

pub mod affinity;
pub mod bench;
pub mod bpf;
pub mod capture;
pub mod corpus;
pub mod decode;
pub mod fleetlab;
pub mod frames;
pub mod generator;
pub mod guard_bin;
pub mod lab;
pub mod n2lab;
pub mod netns;
pub mod oracle;
pub mod pcap;
pub mod population;
pub mod real_n2;
pub mod real_n3;
pub mod realpeers;
pub mod replay_check;
pub mod report;
pub mod scenario;
pub mod score;
pub mod sctp_frames;
pub mod sessions;
pub mod short_lab;
pub mod sink;
pub mod variants;
pub mod xdpprog;

pub use frames::GtpFrame;
pub use generator::{send_frames, SendOpts, SendReport};
pub use lab::{Lab, LabBuilder};
pub use netns::{assert_root, Netns, VethEnd, VethPair};
pub use sink::{Sink, SinkOpts, SinkReport};
