//! Verdict tests of the XDP programs through BPF_PROG_TEST_RUN (DESIGN §5), in one test binary
//! with a module per behaviour group: `n3::*` for `guard_n3`, `n2::*` for `guard_n2` (and its
//! egress classifier). Frames come from labkit's spec-written builders or from scapy (checked by
//! tshark), never from the guard's own parser; each test loads its own program instance with its
//! own pinned maps, so the tests run in parallel.
//!
//! `cargo test -p guard-tests --test verdict -- --include-ignored n3::stages` runs one group.

mod n2;
mod n3;
